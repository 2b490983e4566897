"""The live incident list in Chromium, served by daphne with websockets.

pytest-django's live_server speaks WSGI only, so these tests start daphne on a
free loopback port against the test database. ORM calls run in a worker
thread because Playwright's sync API keeps an event loop in the test thread,
where Django refuses database access.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.db import connection, connections
from django.utils import timezone

from devstack.processes import free_port, port_is_open

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
LIVE_REDIS_URL = "redis://127.0.0.1:6379/6"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "viewer-password-1"
UPDATE_TIMEOUT_MS = 5000


class DaphneServer:
    """daphne serving bastion.asgi on one port, which can be stopped and restarted."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        environment = {
            **os.environ,
            "BASTION_DATABASE_URL": self.database_url,
            "BASTION_REDIS_URL": LIVE_REDIS_URL,
        }
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1"]
        command += ["-p", str(self.port), "bastion.asgi:application"]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while not port_is_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(
                    f"daphne did not listen on {self.url}: {output.decode()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


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
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [LIVE_REDIS_URL]},
        }
    }
    redis.Redis.from_url(LIVE_REDIS_URL).delete("bastion:live:seq")


@pytest.fixture
def server(transactional_db) -> Iterator[DaphneServer]:
    database = connection.settings_dict
    database_url = (
        f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}"
        f"/{database['NAME']}"
    )
    daphne = DaphneServer(database_url)
    daphne.start()
    yield daphne
    daphne.stop()


@pytest.fixture
def viewer(orm, persona_factory):
    return orm(
        persona_factory,
        "viewer",
        "watchers.view_incident",
        "mitigations.decide_approval",
    )


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"], headless=True
        )
        yield chromium
        chromium.close()


# Sets the heartbeat interval before live.js reads it, so a test need not wait
# for two missed 15 s pongs.
SHORT_HEARTBEAT = """
new MutationObserver((changes, observer) => {
  const config = document.getElementById("dashboard");
  if (config) {
    config.dataset.heartbeatSeconds = "1";
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""


def signed_in_page(
    browser, server: DaphneServer, viewer, init_script: str | None = None
) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 800}).new_page()
    if init_script:
        page.add_init_script(init_script)
    page.goto(f"{server.url}/login/?next=/")
    page.fill("input[name=username]", viewer.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{server.url}/")
    expect_status(page, "live")
    return page


def expect_status(page, text: str) -> None:
    playwright_api.expect(page.locator("#live-status")).to_have_text(
        text, timeout=UPDATE_TIMEOUT_MS * 3
    )


def make_incident(name: str, **fields: Any):
    from tests.watchers.factories import make_watcher
    from watchers.models import Incident

    watcher = make_watcher(name=name)
    values: dict[str, Any] = {
        "watcher": watcher,
        "fingerprint": f"fp-{name}",
        "labels": {"instance": f"{name}:9100"},
        "comparison": ">",
        "threshold": 0.8,
        "last_value": 0.93,
        "peak_value": 0.97,
        "opened_at": timezone.now() - timedelta(minutes=7),
    }
    values.update(fields)
    return Incident.objects.create(**values)


def add_pending_approval(incident, action: str):
    from mitigations.choices import Risk, RunStatus
    from mitigations.models import ActionRun, Approval, MitigationAttempt

    now = timezone.now()
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=now
    )
    run = ActionRun.objects.create(
        attempt=attempt,
        incident=incident,
        position=1,
        action=action,
        risk=Risk.DISRUPTIVE,
        status=RunStatus.WAITING_APPROVAL,
        queued_at=now,
    )
    return Approval.objects.create(
        run=run, requested_at=now, expires_at=now + timedelta(hours=1)
    )


def approval_decision(approval_id: int) -> str:
    from mitigations.models import Approval

    return Approval.objects.get(pk=approval_id).decision


def resolve(incident) -> None:
    from watchers.choices import IncidentState

    incident.state = IncidentState.RESOLVED
    incident.resolved_at = timezone.now()
    incident.save()


def row(page, incident) -> Any:
    return page.locator(f"#incident-{incident.pk}")


def test_new_incident_appears_without_reload(browser, server, viewer, orm):
    page = signed_in_page(browser, server, viewer)
    page.evaluate("window.loadedOnce = true")

    incident = orm(make_incident, "api-latency")

    playwright_api.expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.loadedOnce") is True
    assert "api-latency" in row(page, incident).inner_text()


def test_two_pages_see_same_update(browser, server, viewer, orm):
    first = signed_in_page(browser, server, viewer)
    second = signed_in_page(browser, server, viewer)

    incident = orm(make_incident, "disk-full")

    playwright_api.expect(row(first, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    playwright_api.expect(row(second, incident)).to_be_visible(
        timeout=UPDATE_TIMEOUT_MS
    )


def test_resolved_incident_moves_to_resolved_section(browser, server, viewer, orm):
    incident = orm(make_incident, "queue-depth")
    page = signed_in_page(browser, server, viewer)
    playwright_api.expect(row(page, incident)).to_have_attribute("data-state", "firing")

    orm(resolve, incident)

    playwright_api.expect(row(page, incident)).to_have_attribute(
        "data-state", "resolved", timeout=UPDATE_TIMEOUT_MS
    )
    assert page.locator('tr[data-group="firing"]').count() == 0
    assert page.locator('tr[data-group="resolved"]').count() == 1


def test_page_catches_up_after_server_restart(browser, server, viewer, orm):
    page = signed_in_page(browser, server, viewer)

    server.stop()
    expect_status(page, "reconnecting…")
    incident = orm(make_incident, "while-offline")
    server.start()

    expect_status(page, "live")
    playwright_api.expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)


def test_missed_pongs_trigger_reconnect(browser, server, viewer, orm):
    page = signed_in_page(browser, server, viewer, init_script=SHORT_HEARTBEAT)

    # A stopped daphne keeps the TCP connection open but answers nothing,
    # like a server behind a dead network path.
    server.process.send_signal(signal.SIGSTOP)
    try:
        expect_status(page, "reconnecting…")
    finally:
        server.process.send_signal(signal.SIGCONT)
    incident = orm(make_incident, "after-freeze")

    expect_status(page, "live")
    playwright_api.expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)


def create_unannounced(name: str):
    """Create an incident as if its message were lost: the seq moves, nothing is sent.

    bulk_create sends no post_save, so no message leaves for this incident.
    """
    from tests.watchers.factories import make_watcher
    from watchers.models import Incident

    incident = Incident(
        watcher=make_watcher(name=name),
        fingerprint=f"fp-{name}",
        comparison=">",
        threshold=0.8,
        last_value=0.9,
        opened_at=timezone.now(),
    )
    Incident.objects.bulk_create([incident])
    redis.Redis.from_url(LIVE_REDIS_URL).incr("bastion:live:seq")
    return incident


def test_skipped_seq_brings_fresh_snapshot(browser, server, viewer, orm):
    page = signed_in_page(browser, server, viewer)
    page.evaluate("window.loadedOnce = true")
    hidden = orm(create_unannounced, "lost-message")
    playwright_api.expect(row(page, hidden)).to_have_count(0)

    announced = orm(make_incident, "next-message")

    playwright_api.expect(row(page, announced)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    playwright_api.expect(row(page, hidden)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.loadedOnce") is True


def test_reject_button_decides_pending_approval(browser, server, viewer, orm):
    incident = orm(make_incident, "cache-hit-ratio")
    approval = orm(add_pending_approval, incident, "restart_deployment")
    page = signed_in_page(browser, server, viewer)
    pending = page.locator(f'.pending-approval[data-approval-id="{approval.pk}"]')
    playwright_api.expect(pending).to_be_visible(timeout=UPDATE_TIMEOUT_MS)

    pending.get_by_role("button", name="Reject").click()

    playwright_api.expect(page.locator("#decide-result")).to_have_text(
        "You rejected restart_deployment.", timeout=UPDATE_TIMEOUT_MS
    )
    playwright_api.expect(pending).to_have_count(0, timeout=UPDATE_TIMEOUT_MS)
    decided = orm(approval_decision, approval.pk)
    assert decided == "rejected"


def test_dashboard_screenshot(browser, server, viewer, orm):
    critical = orm(make_incident, "checkout-errors", severity="critical")
    orm(add_pending_approval, critical, "scale_deployment")
    orm(make_incident, "api-latency-p99", severity="high", last_value=1.42)
    orm(make_incident, "worker-queue", severity="medium", last_value=0.85)
    old = orm(make_incident, "disk-usage", severity="low")
    orm(resolve, old)
    page = signed_in_page(browser, server, viewer)
    playwright_api.expect(page.locator("tr[data-incident-id]")).to_have_count(4)
    playwright_api.expect(page.locator(".pending-approval")).to_be_visible()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 0
