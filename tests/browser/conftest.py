"""Fixtures of the browser tests: Chromium, daphne, users and screenshots.

ORM calls run in a worker thread because Playwright's sync API keeps an
event loop in the test thread, where Django refuses database access.

Screenshots go to BASTION_SCREENSHOTS_DIR when it is set (the documented
command sets docs/screenshots), and to the test's temporary folder
otherwise, so a test run leaves the git tree as it was.
"""

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connections
from playwright.sync_api import sync_playwright

from bastion.settings import channel_layers
from tests.browser.helpers import CHROMIUM, LIVE_REDIS_URL, DaphneServer
from tests.processes import database_url


@pytest.fixture
def orm() -> Iterator[Callable[..., Any]]:
    """Return a function that runs ORM code in a thread outside the event loop."""
    executor = ThreadPoolExecutor(max_workers=1)

    def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return executor.submit(function, *args, **kwargs).result()

    yield run
    executor.submit(connections.close_all).result()
    executor.shutdown()


@pytest.fixture(autouse=True)
def live_channel_layer(settings):
    settings.CHANNEL_LAYERS = channel_layers(LIVE_REDIS_URL)
    redis.Redis.from_url(LIVE_REDIS_URL).delete("bastion:live:seq")


@pytest.fixture
def server(transactional_db) -> Iterator[DaphneServer]:
    # Nothing listens on the discard port, so the incident page's range
    # queries fail at once instead of reaching a Prometheus on this machine.
    daphne = DaphneServer(
        database_url(), {"BASTION_PROMETHEUS_URL": "http://127.0.0.1:9"}
    )
    daphne.start()
    yield daphne
    daphne.stop()


@pytest.fixture
def viewer(orm, persona_factory):
    return orm(
        persona_factory,
        "viewer",
        "watchers.view_incident",
        "watchers.view_watcher",
        "watchers.change_watcher_mode",
        "mitigations.view_approval",
        "mitigations.decide_approval",
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture
def screenshot(tmp_path) -> Callable[[Any, str], Path]:
    """Return a function that saves a full-page screenshot and returns its path."""
    chosen = os.environ.get("BASTION_SCREENSHOTS_DIR")
    folder = Path(chosen) if chosen else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def save(page: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
