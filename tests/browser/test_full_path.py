"""From a metric breach to a step approved in the page, with every real part.

A real Prometheus scrapes a gauge the test sets. Celery beat and a worker
evaluate the watcher, open the incident, escalate it and hold its step for
approval. daphne serves the pages and the websocket, and Chromium shows the
row appear, approves the step, and shows it succeed. The step calls a local
HTTP receiver, whose log proves it ran once.
"""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devstack.processes import ProcessGroup
from devstack.receiver import HttpReceiver
from tests.browser.helpers import (
    LIVE_REDIS_URL,
    DaphneServer,
    expect_status,
    sign_in,
)
from tests.processes import database_url, start_celery

pytestmark = [
    pytest.mark.browser,
    pytest.mark.prometheus,
    pytest.mark.django_db(transaction=True),
]

SERIES = "browser-path"
QUERY = f'bastion_test_value{{series="{SERIES}"}}'
# Beat, the worker and Prometheus each add a second or two between the
# breach and the row; the window adds two more.
BREACH_TIMEOUT_MS = 45_000
STEP_TIMEOUT_MS = 30_000


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def stack(transactional_db, prometheus, tmp_path) -> Iterator[dict[str, Any]]:
    """Start daphne, Celery beat and a Celery worker on the test database."""
    env = {
        "BASTION_DATABASE_URL": database_url(),
        "BASTION_REDIS_URL": LIVE_REDIS_URL,
        "BASTION_PROMETHEUS_URL": prometheus.url,
        "BASTION_DISPATCH_EVERY_SECONDS": "0.5",
        # Verification would start a second attempt while the test looks at
        # the first; an hour keeps it out of the way.
        "BASTION_VERIFY_EVERY_SECONDS": "3600",
    }
    group = ProcessGroup(tmp_path / "logs")
    start_celery(group, env, tmp_path)
    web = DaphneServer(env["BASTION_DATABASE_URL"], env)
    web.start()
    try:
        yield {"web": web, "celery": group}
    finally:
        web.stop()
        group.stop()


def breaching_watcher(receiver_url: str):
    from mitigations.models import MitigationStep
    from tests.watchers.factories import make_watcher

    watcher = make_watcher(
        name="checkout-latency",
        query=QUERY,
        threshold=1.0,
        unit="s",
        window_seconds=2,
        interval_seconds=1,
        severity="high",
        # Escalate as soon as the incident opens, so the page shows that too.
        escalation_delay_seconds=0,
    )
    MitigationStep.objects.create(
        watcher=watcher,
        position=1,
        action="disable_feature_flags",
        parameters={"url": f"{receiver_url}/flags/checkout-v2/off"},
        approval="always",
    )
    return watcher


def incident_of(watcher_id: int):
    from watchers.models import Incident

    return Incident.objects.filter(watcher_id=watcher_id).first()


def run_of(incident_id: int) -> dict[str, Any]:
    from mitigations.models import ActionRun

    return (
        ActionRun.objects.filter(incident_id=incident_id)
        .values("status", "output", "started_at", "finished_at")
        .get()
    )


def wait_for(check, stack: dict[str, Any], timeout_seconds: float) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        stack["celery"].check_alive()
        found = check()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"not met within {timeout_seconds}s")


def test_breach_to_approved_step(
    browser, stack, viewer, orm, exporter, settle, receiver, screenshot
):
    web = stack["web"]
    exporter.set(0.2, series=SERIES)
    settle(QUERY, lambda result: len(result) == 1)
    watcher = orm(breaching_watcher, receiver.url)
    page = sign_in(browser, web, viewer)
    expect_status(page, "live")
    page.evaluate("window.loadedOnce = true")

    exporter.set(3.0, series=SERIES)
    row = page.locator("tr[data-incident-id]").filter(has_text="checkout-latency")
    expect(row).to_be_visible(timeout=BREACH_TIMEOUT_MS)
    expect(row.locator(".badge.escalated")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(row.locator(".step-cell")).to_contain_text(
        "waiting for approval", timeout=STEP_TIMEOUT_MS
    )
    expect(row.locator('[data-cell="value"]')).to_contain_text("> 1 s")
    row.get_by_role("button", name="Approve").click()

    expect(page.locator("#decide-result")).to_have_text(
        "You approved disable_feature_flags.", timeout=STEP_TIMEOUT_MS
    )
    expect(row.locator(".step-cell")).to_contain_text(
        "succeeded", timeout=STEP_TIMEOUT_MS
    )
    expect(row.locator(".pending-approval")).to_have_count(0)
    assert page.evaluate("window.loadedOnce") is True
    assert receiver.paths() == ["/flags/checkout-v2/off"]
    incident = orm(incident_of, watcher.pk)
    run = orm(run_of, incident.pk)
    assert run["status"] == "succeeded"
    assert run["output"]["status"] == 200
    assert run["started_at"] <= timezone.now()

    page.goto(f"{web.url}/incidents/{incident.pk}/")
    expect_status(page, "live")
    timeline = page.locator("#incident-timeline")
    expect(timeline).to_contain_text("Step 1 of 1: disable_feature_flags")
    expect(timeline).to_contain_text("disable_feature_flags: approved")
    expect(timeline).to_contain_text("Escalated to high")
    expect(page.locator("#incident-chart polyline.series")).not_to_have_count(0)
    expect(page.locator("#incident-chart line.threshold")).to_have_count(1)
    screenshot(page, "incident")
