"""The incident list page at / and the filters that format its values."""

import itertools
import math
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from mitigations.choices import RunStatus
from mitigations.models import (
    ActionRun,
    Approval,
    AutomationSwitch,
    MitigationAttempt,
)
from tests.watchers.factories import make_watcher
from watchers.choices import Health, IncidentKind, IncidentState, Mode, Severity
from watchers.models import Incident, Watcher
from watchers.templatetags.incident_format import metric_value

pytestmark = pytest.mark.django_db

URL = reverse("watchers:incident-list")
_fingerprints = itertools.count(1)


def make_incident(watcher: Watcher | None, **fields: Any) -> Incident:
    values: dict[str, Any] = {
        "kind": IncidentKind.SERIES if watcher else IncidentKind.DATASOURCE,
        "watcher": watcher,
        "fingerprint": f"fp-{next(_fingerprints)}",
        "labels": {"instance": "app-1:9100"},
        "comparison": ">",
        "threshold": 0.8,
        "last_value": 0.93,
        "peak_value": 0.97,
        "opened_at": timezone.now() - timedelta(minutes=12),
    }
    values.update(fields)
    return Incident.objects.create(**values)


def resolved(hours_ago: float, **fields: Any) -> dict[str, Any]:
    resolved_at = timezone.now() - timedelta(hours=hours_ago)
    return {
        "state": IncidentState.RESOLVED,
        "resolved_at": resolved_at,
        "opened_at": resolved_at - timedelta(minutes=30),
        **fields,
    }


@pytest.fixture
def owner(persona_factory):
    return persona_factory(
        "owner", "watchers.view_incident", "watchers.change_watcher", staff=True
    )


@pytest.fixture
def approver(persona_factory):
    return persona_factory("approver", "watchers.view_incident")


@pytest.fixture
def decider(persona_factory):
    return persona_factory(
        "decider", "watchers.view_incident", "mitigations.decide_approval"
    )


@pytest.fixture
def outsider(persona_factory):
    return persona_factory("outsider")


@pytest.fixture
def approver_client(client, approver):
    client.force_login(approver)
    return client


def page_html(client, url: str = URL) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_anonymous_user_is_redirected_to_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url == f"{reverse('login')}?next={URL}"


def test_outsider_gets_403(client, outsider):
    client.force_login(outsider)

    response = client.get(URL)

    assert response.status_code == 403


def test_owner_and_approver_can_open_page(client, owner, approver):
    for user in (owner, approver):
        client.force_login(user)
        assert client.get(URL).status_code == 200


def test_page_lists_open_and_recently_resolved(approver_client):
    watcher = make_watcher(name="api-latency")
    firing = make_incident(watcher)
    recent = make_incident(watcher, **resolved(hours_ago=3))
    old = make_incident(watcher, **resolved(hours_ago=25))

    html = page_html(approver_client)

    assert f'id="incident-{firing.pk}"' in html
    assert f'id="incident-{recent.pk}"' in html
    assert f'id="incident-{old.pk}"' not in html


def test_open_incidents_come_first_by_severity(approver_client):
    watcher = make_watcher()
    recent = make_incident(watcher, **resolved(hours_ago=0.1))
    older_resolved = make_incident(watcher, **resolved(hours_ago=5))
    low = make_incident(watcher, severity=Severity.LOW)
    critical = make_incident(watcher, severity=Severity.CRITICAL)

    response = approver_client.get(URL)

    listed = [incident.pk for incident in response.context["incidents"]]
    assert listed == [critical.pk, low.pk, recent.pk, older_resolved.pk]


def test_row_shows_value_against_threshold(approver_client):
    make_incident(make_watcher(), last_value=0.93, comparison=">", threshold=0.8)

    html = page_html(approver_client)

    assert "0.93 (threshold &gt; 0.8)" in html


def test_resolved_row_value_reads_true(approver_client):
    make_incident(
        make_watcher(unit="s"),
        last_value=0.689,
        threshold=0.8,
        **resolved(hours_ago=1),
    )

    html = page_html(approver_client)

    assert "0.689 s (threshold &gt; 0.8 s)" in html
    assert "0.689 s &gt; 0.8 s" not in html


def test_row_shows_peak_group_and_watcher(approver_client):
    watcher = make_watcher(name="disk-usage", group="infrastructure")
    incident = make_incident(watcher, peak_value=1234567.0)

    html = page_html(approver_client)
    row = html[html.index(f'id="incident-{incident.pk}"') :]

    assert "disk-usage" in row
    assert "infrastructure" in row
    assert "1.23M" in row
    assert f"#{incident.pk}" in row


def test_row_shows_labels_as_chips(approver_client):
    make_incident(make_watcher(), labels={"pod": "web-7", "items": "3"})

    html = page_html(approver_client)

    assert '<span class="label-name">pod</span>=<span class="label-value">web-7' in html
    assert '<span class="label-name">items</span>=<span class="label-value">3' in html


def test_label_values_are_escaped(approver_client):
    hostile = '<script>alert(1)</script> & "x"'
    make_incident(make_watcher(), labels={"path": hostile}, summary=hostile)

    html = page_html(approver_client)

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;" in html


def test_datasource_incident_row_says_data_source(approver_client):
    incident = make_incident(
        None,
        labels={"url": "http://127.0.0.1:9090"},
        comparison="",
        threshold=None,
        last_value=None,
        peak_value=None,
        summary="Prometheus at http://127.0.0.1:9090 failed 3 times in a row",
    )

    html = page_html(approver_client)
    row = html[html.index(f'id="incident-{incident.pk}"') :]

    assert "data source" in row
    assert "Prometheus at http://127.0.0.1:9090 failed 3 times in a row" in row


def test_shadow_incident_has_badge(approver_client):
    make_incident(make_watcher(mode=Mode.SHADOW), is_shadow=True)

    html = page_html(approver_client)

    assert '<span class="badge shadow"' in html


def test_normal_incident_has_no_shadow_badge(approver_client):
    make_incident(make_watcher())

    html = page_html(approver_client)

    assert '<span class="badge shadow"' not in html


def test_firing_row_shows_open_for_age(approver_client):
    opened_at = timezone.now() - timedelta(minutes=12, seconds=5)
    make_incident(make_watcher(), opened_at=opened_at)

    html = page_html(approver_client)

    assert "open for <time" in html
    assert f'datetime="{timezone.localtime(opened_at).isoformat()}"' in html
    assert ">12 min</time>" in html


def test_resolved_row_shows_resolved_ago(approver_client):
    make_incident(make_watcher(), **resolved(hours_ago=3.1))

    html = page_html(approver_client)

    assert "resolved <time" in html
    assert ">3 h</time> ago" in html


def test_empty_page_says_nothing_is_open(approver_client):
    html = page_html(approver_client)

    assert "Nothing is open." in html
    assert "No incident is open and none resolved in the last 24 hours." in html


def test_summary_counts_open_by_severity(approver_client):
    watcher = make_watcher()
    make_incident(watcher, severity=Severity.CRITICAL)
    make_incident(watcher, severity=Severity.HIGH)
    make_incident(watcher, severity=Severity.HIGH, is_shadow=True)
    make_incident(watcher, severity=Severity.LOW, **resolved(hours_ago=1))

    html = page_html(approver_client)
    start = html.index('id="open-summary"')
    summary = html[start : html.index("</p>", start)]

    assert "<strong>3 open</strong>" in summary
    assert "1 critical</span>" in summary
    assert "2 high</span>" in summary
    assert "(1 of them shadow)" in summary
    assert "low" not in summary


def test_pages_hold_fifty_incidents(approver_client):
    watcher = make_watcher()
    for _ in range(120):
        make_incident(watcher)

    first = page_html(approver_client)
    third = page_html(approver_client, f"{URL}?page=3")

    assert first.count('<tr id="incident-') == 50
    assert third.count('<tr id="incident-') == 20
    assert '<a href="?page=3">3</a>' in first
    assert "101\N{EN DASH}120 of 120" in third


def test_page_links_work_with_thousand_incidents(approver_client):
    watcher = make_watcher()
    opened_at = timezone.now() - timedelta(hours=1)
    Incident.objects.bulk_create(
        Incident(
            watcher=watcher,
            fingerprint=f"bulk-{number}",
            threshold=0.8,
            comparison=">",
            last_value=0.9,
            opened_at=opened_at,
        )
        for number in range(1000)
    )

    first = page_html(approver_client)
    last = page_html(approver_client, f"{URL}?page=20")

    assert '<a href="?page=20">20</a>' in first
    assert '<span class="ellipsis">…</span>' in first
    assert "951\N{EN DASH}1,000 of 1,000" in last
    assert last.count('<tr id="incident-') == 50


@pytest.mark.parametrize("page", ["9", "abc", "0", "-1"])
def test_page_out_of_range_shows_nearest(approver_client, page):
    incident = make_incident(make_watcher())

    response = approver_client.get(f"{URL}?page={page}")

    assert response.status_code == 200
    assert f'id="incident-{incident.pk}"' in response.content.decode()


def count_page_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL)
    assert response.status_code == 200
    return len(queries)


def with_step_and_approval(incident: Incident) -> Incident:
    run = add_run(incident, status=RunStatus.WAITING_APPROVAL)
    now = timezone.now()
    approval = Approval.objects.create(
        run=run, requested_at=now, expires_at=now + timedelta(minutes=30)
    )
    incident.pending_approval_pk = approval.pk  # type: ignore[attr-defined]
    return incident


def test_query_count_does_not_grow_with_rows(approver_client):
    for _ in range(10):
        with_step_and_approval(make_incident(make_watcher(group="performance")))
    make_watcher(health=Health.ERROR, last_error="parse error")
    with_ten = count_page_queries(approver_client)

    for _ in range(110):
        with_step_and_approval(make_incident(make_watcher(group="security")))
    with_hundred_twenty = count_page_queries(approver_client)

    assert with_hundred_twenty == with_ten


def add_run(incident: Incident, position: int = 1, **fields: Any) -> ActionRun:
    attempt, _ = MitigationAttempt.objects.get_or_create(
        incident=incident,
        number=fields.pop("attempt", 1),
        defaults={"started_at": timezone.now()},
    )
    values: dict[str, Any] = {
        "attempt": attempt,
        "incident": incident,
        "position": position,
        "action": "scale_replicas",
        "risk": "disruptive",
        "status": RunStatus.QUEUED,
        "queued_at": timezone.now(),
    }
    values.update(fields)
    return ActionRun.objects.create(**values)


def row_html(html: str, incident: Incident) -> str:
    start = html.index(f'id="incident-{incident.pk}"')
    return html[start : html.index("</tr>", start)]


def test_row_shows_running_step(approver_client):
    incident = make_incident(make_watcher())
    add_run(incident, 1, status=RunStatus.SUCCEEDED, action="scale_replicas")
    add_run(incident, 2, status=RunStatus.RUNNING, action="clear_caches")
    add_run(incident, 3, status=RunStatus.QUEUED, action="activate_circuit_breaker")

    row = row_html(page_html(approver_client), incident)

    assert "2/3 <code>clear_caches</code>" in row
    assert "running" in row


def test_row_shows_step_waiting_in_newest_attempt(approver_client):
    incident = make_incident(make_watcher())
    add_run(incident, 1, attempt=1, status=RunStatus.FAILED)
    add_run(
        incident, 1, attempt=2, status=RunStatus.WAITING_APPROVAL, action="rollback"
    )

    row = row_html(page_html(approver_client), incident)

    assert "<code>rollback</code>" in row
    assert "waiting for approval" in row
    assert "attempt 2" in row


def test_row_shows_last_finished_step(approver_client):
    incident = make_incident(make_watcher())
    now = timezone.now()
    add_run(incident, 1, status=RunStatus.SUCCEEDED, finished_at=now)
    add_run(
        incident,
        2,
        status=RunStatus.FAILED,
        action="clear_caches",
        finished_at=now + timedelta(seconds=1),
    )

    row = row_html(page_html(approver_client), incident)

    assert "2/2 <code>clear_caches</code>" in row
    assert "failed" in row


def test_row_without_steps_shows_dash(approver_client):
    incident = make_incident(make_watcher())

    row = row_html(page_html(approver_client), incident)
    step_cell = row[row.index('data-label="Step"') :]

    assert step_cell.split("</td>")[0].count("—") == 1


def test_rendered_row_has_decide_buttons(client, decider):
    incident = with_step_and_approval(make_incident(make_watcher()))
    client.force_login(decider)

    row = row_html(page_html(client), incident)

    assert 'data-decision="approve"' in row
    assert 'data-decision="reject"' in row


def test_row_has_no_decide_buttons_for_viewer(approver_client):
    incident = with_step_and_approval(make_incident(make_watcher()))

    row = row_html(page_html(approver_client), incident)

    assert f"/approvals/{incident.pending_approval_pk}/" in row
    assert "data-decision" not in row


def test_row_shows_escalation(approver_client):
    incident = make_incident(
        make_watcher(), escalated_at=timezone.now(), escalation_severity="critical"
    )

    row = row_html(page_html(approver_client), incident)

    assert "escalated: critical" in row


def test_row_shows_unit(approver_client):
    incident = make_incident(
        make_watcher(unit="req/s"), last_value=0.93, peak_value=1.2
    )

    row = row_html(page_html(approver_client), incident)

    assert "0.93 req/s (threshold &gt; 0.8 req/s)" in row
    assert "1.2 req/s" in row


def test_automation_off_shows_notice(approver_client, approver):
    AutomationSwitch.objects.update_or_create(
        pk=1,
        defaults={"enabled": False, "reason": "freeze", "changed_by": approver},
    )

    html = page_html(approver_client)

    assert 'id="automation-notice"' in html
    assert "Automation is switched off by approver: freeze." in html


def test_exhausted_budget_shows_notice(approver_client, settings):
    settings.AUTOMATION_BUDGET_PER_HOUR = 0

    html = page_html(approver_client)

    assert "Budget exhausted: 0 automated actions in the last hour" in html


def test_automation_on_shows_no_notice(approver_client):
    assert 'id="automation-notice"' not in page_html(approver_client)


def test_failing_watcher_appears_in_notice(approver_client):
    broken = make_watcher(
        name="broken-query",
        health=Health.ERROR,
        consecutive_errors=4,
        last_error='bad_data: parse error at char 5: unexpected "<"',
    )

    html = page_html(approver_client)

    assert f'id="watcher-health-{broken.pk}"' in html
    assert "4 failed evaluations in a row" in html
    assert "parse error at char 5: unexpected &quot;&lt;&quot;" in html


def test_too_many_series_watcher_appears_in_notice(approver_client):
    make_watcher(
        name="per-pod-cpu", health=Health.TOO_MANY_SERIES, last_series_count=5000
    )

    html = page_html(approver_client)

    assert "too many series" in html
    assert "returned 5,000 series" in html


def test_healthy_and_paused_watchers_stay_out_of_notice(approver_client):
    healthy = make_watcher(health=Health.OK)
    paused = make_watcher(health=Health.ERROR, mode=Mode.PAUSED)

    html = page_html(approver_client)

    assert 'id="watcher-health"' not in html
    assert f'id="watcher-health-{healthy.pk}"' not in html
    assert f'id="watcher-health-{paused.pk}"' not in html


def test_admin_link_shown_to_staff_only(client, owner, approver):
    client.force_login(owner)
    owner_html = page_html(client)
    client.force_login(approver)
    approver_html = page_html(client)

    assert 'href="/admin/"' in owner_html
    assert 'href="/admin/"' not in approver_html


def test_logout_is_post_form_with_csrf(approver_client):
    html = page_html(approver_client)

    form_start = html.index(f'<form method="post" action="{reverse("logout")}">')
    assert 'name="csrfmiddlewaretoken"' in html[form_start : form_start + 300]


def test_logout_post_signs_user_out(approver_client):
    approver_client.post(reverse("logout"))

    response = approver_client.get(URL)

    assert response.status_code == 302


def test_login_page_signs_user_in(client, approver):
    form = client.get(reverse("login"))
    response = client.post(
        reverse("login"),
        {"username": "approver", "password": "approver-password-1", "next": URL},
    )

    assert form.status_code == 200
    assert response.status_code == 302
    assert response.url == URL


def test_login_page_shows_wrong_password_error(client, approver):
    response = client.post(
        reverse("login"), {"username": "approver", "password": "wrong"}
    )

    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (0.0, "0"),
        (0.93, "0.93"),
        (0.123456, "0.123"),
        (12.5, "12.5"),
        (999.7, "1k"),
        (1500.0, "1.5k"),
        (-1500.0, "-1.5k"),
        (1234567.0, "1.23M"),
        (2.5e12, "2.5T"),
        (1e21, "1e+21"),
        (0.0000123456, "1.23e-05"),
    ],
)
def test_metric_value_formats(value, text):
    assert metric_value(value) == text
