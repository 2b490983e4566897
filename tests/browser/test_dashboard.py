"""The live incident list in Chromium, served by daphne with websockets."""

import signal
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser.helpers import (
    LIVE_REDIS_URL,
    PHONE,
    UPDATE_TIMEOUT_MS,
    DaphneServer,
    expect_status,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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
    browser,
    server: DaphneServer,
    viewer,
    init_script: str | None = None,
    viewport: dict[str, int] | None = None,
) -> Any:
    page = sign_in(browser, server, viewer, init_script=init_script, viewport=viewport)
    expect_status(page, "live")
    return page


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


def approval_comment(approval_id: int) -> str:
    from mitigations.models import Approval

    return Approval.objects.get(pk=approval_id).comment


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

    expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.loadedOnce") is True
    assert "api-latency" in row(page, incident).inner_text()


def test_two_pages_see_same_update(browser, server, viewer, orm):
    first = signed_in_page(browser, server, viewer)
    second = signed_in_page(browser, server, viewer)

    incident = orm(make_incident, "disk-full")

    expect(row(first, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    expect(row(second, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)


def test_resolved_incident_moves_to_resolved_section(browser, server, viewer, orm):
    incident = orm(make_incident, "queue-depth")
    page = signed_in_page(browser, server, viewer)
    expect(row(page, incident)).to_have_attribute("data-state", "firing")

    orm(resolve, incident)

    expect(row(page, incident)).to_have_attribute(
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
    expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)


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
    expect(row(page, incident)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)


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
    expect(row(page, hidden)).to_have_count(0)

    announced = orm(make_incident, "next-message")

    expect(row(page, announced)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    expect(row(page, hidden)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.loadedOnce") is True


def test_reject_button_decides_pending_approval(browser, server, viewer, orm):
    incident = orm(make_incident, "cache-hit-ratio")
    approval = orm(add_pending_approval, incident, "restart_deployment")
    page = signed_in_page(browser, server, viewer)
    pending = page.locator(f'.pending-approval[data-approval-id="{approval.pk}"]')
    expect(pending).to_be_visible(timeout=UPDATE_TIMEOUT_MS)

    page.once("dialog", lambda dialog: dialog.accept("cache is warming"))
    pending.get_by_role("button", name="Reject").click()

    expect(page.locator("#decide-result")).to_have_text(
        "You rejected restart_deployment.", timeout=UPDATE_TIMEOUT_MS
    )
    expect(pending).to_have_count(0, timeout=UPDATE_TIMEOUT_MS)
    decided = orm(approval_decision, approval.pk)
    assert decided == "rejected"
    comment = orm(approval_comment, approval.pk)
    assert comment == "cache is warming"


def test_reject_cancelled_sends_nothing(browser, server, viewer, orm):
    incident = orm(make_incident, "cache-hit-ratio")
    approval = orm(add_pending_approval, incident, "restart_deployment")
    page = signed_in_page(browser, server, viewer)
    pending = page.locator(f'.pending-approval[data-approval-id="{approval.pk}"]')
    expect(pending).to_be_visible(timeout=UPDATE_TIMEOUT_MS)

    page.once("dialog", lambda dialog: dialog.dismiss())
    pending.get_by_role("button", name="Reject").click()

    expect(pending.get_by_role("button", name="Reject")).to_be_enabled()
    decided = orm(approval_decision, approval.pk)
    assert decided == "pending"


def escalate(incident, severity: str) -> None:
    incident.escalated_at = timezone.now()
    incident.escalation_severity = severity
    incident.save()


def start_running_step(approval_id: int) -> None:
    """Approve without a worker and move the step to running, as a worker does."""
    from mitigations.models import ActionRun, Approval

    approval = Approval.objects.get(pk=approval_id)
    Approval.objects.filter(pk=approval_id).update(decision="approved")
    ActionRun.objects.filter(pk=approval.run_id).update(
        status="running", started_at=timezone.now()
    )
    from watchers.services import live

    live.publish_run(approval.run_id)


def test_escalation_shows_without_reload(browser, server, viewer, orm):
    incident = orm(make_incident, "checkout-latency")
    page = signed_in_page(browser, server, viewer)
    page.evaluate("window.loadedOnce = true")

    orm(escalate, incident, "critical")

    expect(row(page, incident).locator(".badge.escalated")).to_have_text(
        "▲ escalated: critical", timeout=UPDATE_TIMEOUT_MS
    )
    assert page.evaluate("window.loadedOnce") is True


def test_step_status_updates_in_row(browser, server, viewer, orm):
    incident = orm(make_incident, "queue-lag")
    approval = orm(add_pending_approval, incident, "scale_replicas")
    page = signed_in_page(browser, server, viewer)
    step = row(page, incident).locator(".step-cell")
    expect(step).to_contain_text("waiting for approval")

    orm(start_running_step, approval.pk)

    expect(step).to_contain_text("running", timeout=UPDATE_TIMEOUT_MS)
    expect(row(page, incident).locator(".pending-approval")).to_have_count(0)


def publish_new_value(incident, value: float) -> None:
    from watchers.models import Incident
    from watchers.services import live

    Incident.objects.filter(pk=incident.pk).update(last_value=value)
    live.publish_values([incident.pk])


def test_value_updates_in_place(browser, server, viewer, orm):
    incident = orm(make_incident, "api-latency-p95", last_value=0.93)
    page = signed_in_page(browser, server, viewer)
    value = row(page, incident).locator('[data-cell="value"]')
    expect(value).to_have_text("0.93 (threshold > 0.8)")

    orm(publish_new_value, incident, 1.75)

    expect(value).to_have_text("1.75 (threshold > 0.8)", timeout=UPDATE_TIMEOUT_MS)


def test_phone_layout_fits_the_screen(browser, server, viewer, orm):
    incident = orm(make_incident, "memory-usage", severity="critical")
    orm(add_pending_approval, incident, "restart_high_memory_pods")
    page = signed_in_page(browser, server, viewer, viewport=PHONE)

    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    state_label = page.evaluate(
        "getComputedStyle(document.querySelector('td[data-label=State]'),"
        " '::before').content"
    )

    assert overflow <= 0
    assert state_label == '"State"'
    expect(row(page, incident).get_by_role("button", name="Approve")).to_be_visible()
    expect(row(page, incident).locator(".badge.state-firing")).to_have_text("● firing")


def test_dashboard_screenshot(browser, server, viewer, orm, screenshot):
    critical = orm(make_incident, "checkout-errors", severity="critical")
    orm(add_pending_approval, critical, "scale_replicas")
    orm(escalate, critical, "critical")
    orm(make_incident, "api-latency-p99", severity="high", last_value=1.42)
    orm(make_incident, "worker-queue", severity="medium", last_value=0.85)
    old = orm(make_incident, "disk-usage", severity="low")
    orm(resolve, old)
    page = signed_in_page(browser, server, viewer)
    expect(page.locator("tr[data-incident-id]")).to_have_count(4)
    expect(page.locator(".pending-approval")).to_be_visible()

    path = screenshot(page, "dashboard")
    phone = signed_in_page(browser, server, viewer, viewport=PHONE)
    expect(phone.locator(".pending-approval")).to_be_visible()
    phone_path = screenshot(phone, "dashboard-phone")

    assert path.stat().st_size > 0
    assert phone_path.stat().st_size > 0


def test_lost_last_message_found_by_heartbeat(browser, server, viewer, orm):
    page = signed_in_page(browser, server, viewer, init_script=SHORT_HEARTBEAT)
    page.evaluate("window.loadedOnce = true")

    hidden = orm(create_unannounced, "lost-last-message")

    # No later change arrives; the pong's sequence number reveals the gap.
    expect(row(page, hidden)).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    assert page.evaluate("window.loadedOnce") is True
