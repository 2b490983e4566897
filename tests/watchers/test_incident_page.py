"""The incident page: facts, the metric chart, evaluations and the timeline."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.services import record
from escalations.models import Delivery, Escalation, Receiver
from mitigations.choices import AttemptStatus, Risk, RunStatus
from mitigations.models import ActionRun, Approval, MitigationAttempt
from tests.watchers.factories import make_watcher
from watchers.models import Incident, SeriesState, Watcher
from watchers.services import charts
from watchers.services.judging import fingerprint
from watchers.services.prometheus import PrometheusClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(persona_factory):
    return persona_factory(
        "viewer", "watchers.view_incident", "mitigations.decide_approval"
    )


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def unreachable_prometheus(settings):
    # Nothing listens on port 9 (discard) on loopback, so the range query fails.
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    settings.PROMETHEUS_TIMEOUT_SECONDS = 1.0


def make_incident(watcher: Watcher | None = None, **fields: Any) -> Incident:
    watcher = watcher or make_watcher(name="api-latency", unit="s", threshold=0.8)
    values: dict[str, Any] = {
        "watcher": watcher,
        "fingerprint": "fp-page",
        "labels": {"route": "/api/items"},
        "comparison": ">",
        "threshold": 0.8,
        "last_value": 2.5,
        "peak_value": 3.1,
        "summary": "api-latency > 0.8",
        "opened_at": timezone.now() - timedelta(minutes=4),
    }
    values.update(fields)
    return Incident.objects.create(**values)


def add_run(incident: Incident, **fields: Any) -> ActionRun:
    attempt, _ = MitigationAttempt.objects.get_or_create(
        incident=incident,
        number=fields.pop("attempt_number", 1),
        defaults={"started_at": incident.opened_at},
    )
    now = timezone.now()
    values: dict[str, Any] = {
        "attempt": attempt,
        "incident": incident,
        "position": 1,
        "action": "scale_replicas",
        "risk": Risk.DISRUPTIVE,
        "status": RunStatus.SUCCEEDED,
        "target": "deployment demo/sandra-api",
        "inputs": {"deployment": "sandra-api", "namespace": "demo"},
        "output": {"replicas_before": 2, "replicas_after": 3},
        "queued_at": now - timedelta(seconds=30),
        "started_at": now - timedelta(seconds=20),
        "finished_at": now - timedelta(seconds=17, milliseconds=500),
        "tries": 1,
    }
    values.update(fields)
    return ActionRun.objects.create(**values)


def page(client, incident: Incident) -> str:
    response = client.get(reverse("watchers:incident-detail", args=[incident.pk]))
    assert response.status_code == 200
    return response.content.decode()


def timeline_html(html: str) -> str:
    start = html.index('id="incident-timeline"')
    return html[start:]


def test_anonymous_visitor_sent_to_login(client):
    incident = make_incident()

    response = client.get(reverse("watchers:incident-detail", args=[incident.pk]))

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_user_without_view_permission_gets_403(client, persona_factory):
    client.force_login(persona_factory("outsider"))
    incident = make_incident()

    response = client.get(reverse("watchers:incident-detail", args=[incident.pk]))

    assert response.status_code == 403


def test_missing_incident_is_404(viewer_client):
    response = viewer_client.get(reverse("watchers:incident-detail", args=[999999]))

    assert response.status_code == 404


def test_list_row_links_to_incident_page(viewer_client):
    incident = make_incident()

    html = viewer_client.get(reverse("watchers:incident-list")).content.decode()

    assert f'href="{reverse("watchers:incident-detail", args=[incident.pk])}"' in html


def test_summary_shows_value_with_unit(viewer_client, unreachable_prometheus):
    incident = make_incident()

    html = page(viewer_client, incident)

    assert "2.5 s (threshold &gt; 0.8 s)" in html
    assert "3.1 s" in html
    assert "/api/items" in html


def test_step_shows_parameters_output_and_duration(
    viewer_client, unreachable_prometheus
):
    incident = make_incident()
    add_run(incident)

    timeline = timeline_html(page(viewer_client, incident))

    assert "Step 1 of 1: scale_replicas on deployment demo/sandra-api" in timeline
    assert "2.50 s" in timeline
    assert "&quot;replicas_after&quot;: 3" in timeline
    assert "&quot;deployment&quot;: &quot;sandra-api&quot;" in timeline
    assert 'data-status="succeeded"' in timeline


def test_failed_step_shows_its_error(viewer_client, unreachable_prometheus):
    incident = make_incident()
    add_run(incident, status=RunStatus.FAILED, error="the API answered 503")

    timeline = timeline_html(page(viewer_client, incident))

    assert "the API answered 503" in timeline
    assert 'data-status="failed"' in timeline


def test_decision_shows_who_and_from_where(
    viewer_client, viewer, unreachable_prometheus
):
    incident = make_incident()
    run = add_run(incident, status=RunStatus.REJECTED, action="clear_caches")
    now = timezone.now()
    Approval.objects.create(
        run=run,
        requested_at=now - timedelta(minutes=1),
        expires_at=now + timedelta(minutes=29),
        decision="rejected",
        decided_by=viewer,
        decided_at=now,
        comment="not during the sale",
        decided_from="192.0.2.44",
    )

    timeline = timeline_html(page(viewer_client, incident))

    assert "Approval requested for clear_caches" in timeline
    assert "clear_caches: rejected" in timeline
    assert "by viewer" in timeline
    assert "192.0.2.44" in timeline
    assert "not during the sale" in timeline


def test_notifications_show_delivery_status(viewer_client, unreachable_prometheus):
    incident = make_incident()
    receiver = Receiver.objects.create(name="slack_team", kind="slack", target="team")
    now = timezone.now()
    Delivery.objects.create(
        incident=incident,
        receiver=receiver,
        transition="escalated",
        key="escalated:medium",
        status="delivered",
        attempts=1,
        response_code=200,
        created_at=now,
        finished_at=now,
    )
    Delivery.objects.create(
        incident=incident,
        receiver=Receiver.objects.create(name="sms_ceo", kind="webhook", target="ceo"),
        transition="escalated",
        key="escalated:critical",
        status="failed",
        attempts=3,
        response_code=502,
        last_error="HTTP 502 from the gateway",
        created_at=now,
    )

    timeline = timeline_html(page(viewer_client, incident))

    assert "Notification (escalated) to slack_team" in timeline
    assert "delivered" in timeline
    assert "Notification (escalated) to sms_ceo" in timeline
    assert "HTTP 502 from the gateway" in timeline


def test_escalation_and_attempt_outcome_shown(viewer_client, unreachable_prometheus):
    incident = make_incident()
    add_run(incident)
    MitigationAttempt.objects.filter(incident=incident).update(
        status=AttemptStatus.FAILED,
        finished_at=timezone.now(),
        note="the metric did not recover within 120 s",
    )
    Escalation.objects.create(
        incident=incident,
        severity="high",
        reason="3 consecutive attempts failed",
        rule="repeated_failures",
        escalated_at=timezone.now(),
        held_run_ids=[1, 2],
    )

    timeline = timeline_html(page(viewer_client, incident))

    assert "Escalated to high" in timeline
    assert "3 consecutive attempts failed" in timeline
    assert "Attempt 1 ended: failed" in timeline
    assert "the metric did not recover within 120 s" in timeline


def test_audit_event_without_row_appears(viewer_client, viewer, unreachable_prometheus):
    incident = make_incident()
    record(
        "approval.proposed",
        f"viewer proposed clear_caches for incident {incident.pk}",
        actor=viewer,
        address="192.0.2.7",
        incident_id=incident.pk,
    )
    record("step.finished", "shown by the run row instead", incident_id=incident.pk)

    timeline = timeline_html(page(viewer_client, incident))

    assert f"viewer proposed clear_caches for incident {incident.pk}" in timeline
    assert "shown by the run row instead" not in timeline


def test_pending_series_start_shown(viewer_client, unreachable_prometheus):
    incident = make_incident()
    SeriesState.objects.create(
        watcher=incident.watcher,
        fingerprint=incident.fingerprint,
        labels=incident.labels,
        status="firing",
        pending_since=incident.opened_at - timedelta(minutes=10),
        last_evaluated_at=timezone.now(),
        incident=incident,
    )

    timeline = timeline_html(page(viewer_client, incident))

    assert "The series started to breach (pending)" in timeline


def test_timeline_is_in_time_order(viewer_client, unreachable_prometheus):
    incident = make_incident(resolved_at=timezone.now(), state="resolved")
    add_run(incident)

    timeline = timeline_html(page(viewer_client, incident))

    opened = timeline.index("Incident opened")
    step = timeline.index("Step 1 of 1")
    resolved = timeline.index("Incident resolved")
    assert opened < step < resolved


def test_labels_and_outputs_are_escaped(viewer_client, unreachable_prometheus):
    hostile = '<img src=x onerror="alert(1)">'
    incident = make_incident(labels={"path": hostile})
    add_run(incident, output={"body": hostile}, error=hostile)

    html = page(viewer_client, incident)

    assert hostile not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_failed_range_query_still_renders(viewer_client, unreachable_prometheus):
    incident = make_incident()

    html = page(viewer_client, incident)

    assert 'id="chart-missing"' in html
    assert "the range query failed" in html
    assert 'id="incident-timeline"' in html


def test_datasource_incident_has_no_chart(viewer_client):
    incident = Incident.objects.create(
        kind="datasource",
        fingerprint="prometheus",
        summary="Prometheus at http://127.0.0.1:9 failed 3 times in a row",
        opened_at=timezone.now(),
    )

    html = page(viewer_client, incident)

    assert "a data source incident has no metric to draw" in html
    assert "failed 3 times in a row" in html


def test_pending_approval_has_decide_buttons(viewer_client, unreachable_prometheus):
    incident = make_incident()
    run = add_run(incident, status=RunStatus.WAITING_APPROVAL, finished_at=None)
    now = timezone.now()
    approval = Approval.objects.create(
        run=run, requested_at=now, expires_at=now + timedelta(minutes=30)
    )

    html = page(viewer_client, incident)

    decide_url = reverse("mitigations:approval-decide", args=[approval.pk])
    assert f'data-decide-url="{decide_url}"' in html
    assert "waiting for approval" in html


def test_fragment_has_summary_and_timeline_only(viewer_client):
    incident = make_incident()

    response = viewer_client.get(
        reverse("watchers:incident-timeline", args=[incident.pk])
    )
    html = response.content.decode()

    assert response.status_code == 200
    assert 'id="incident-summary"' in html
    assert 'id="incident-timeline"' in html
    assert "<svg" not in html
    assert "<html" not in html


def test_fragment_query_count_does_not_grow(viewer_client):
    incident = make_incident()
    add_run(incident)
    url = reverse("watchers:incident-timeline", args=[incident.pk])
    with CaptureQueriesContext(connection) as one_run:
        viewer_client.get(url)

    for position in range(2, 12):
        add_run(incident, position=position, attempt_number=position % 3 + 1)
    with CaptureQueriesContext(connection) as many_runs:
        viewer_client.get(url)

    assert len(many_runs) == len(one_run)


# The chart and the evaluations, against a real Prometheus.


@pytest.fixture
def breaching_series(exporter, settle, prometheus, settings):
    settings.PROMETHEUS_URL = prometheus.url
    exporter.set(2.0, series="page-chart")
    found = settle(
        'bastion_test_value{series="page-chart"}',
        lambda result: len(result) == 1,
    )
    # Let Prometheus keep a dozen scrapes, one per second, so the chart, one
    # point every 3 s over its 10 min, has several points to join.
    settle(
        'count_over_time(bastion_test_value{series="page-chart"}[1m])',
        lambda result: result and float(result[0]["value"][1]) >= 12,
    )
    return found[0]["metric"]


def chart_incident(labels: dict[str, str]) -> Incident:
    watcher = make_watcher(
        name="page-chart",
        query='bastion_test_value{series="page-chart"}',
        threshold=1.0,
        unit="s",
        window_seconds=2,
        interval_seconds=1,
    )
    return make_incident(
        watcher,
        fingerprint=fingerprint(labels),
        labels={k: v for k, v in labels.items() if k != "__name__"},
        threshold=1.0,
        last_value=2.0,
        peak_value=2.0,
        opened_at=timezone.now() - timedelta(seconds=2),
    )


@pytest.mark.prometheus
def test_chart_draws_series_and_threshold(viewer_client, breaching_series):
    incident = chart_incident(breaching_series)

    html = page(viewer_client, incident)

    assert '<svg id="incident-chart"' in html
    assert '<polyline class="series"' in html
    assert '<line class="threshold"' in html
    assert "threshold &gt; 1 s" in html
    assert 'class="incident-span"' in html


@pytest.mark.prometheus
def test_evaluations_mark_breaches(viewer_client, breaching_series):
    incident = chart_incident(breaching_series)

    html = page(viewer_client, incident)
    start = html.index('id="incident-evaluations"')
    evaluations = html[start : html.index("</section>", start)]

    assert 'class="breached' in evaluations
    assert "2 s" in evaluations


@pytest.mark.prometheus
def test_history_selects_the_incident_series(breaching_series, prometheus):
    incident = chart_incident(breaching_series)
    client = PrometheusClient(url=prometheus.url, timeout_seconds=5)

    history = charts.incident_history(incident, client)

    assert history.error == ""
    assert history.points
    assert all(value == 2.0 for _, value in history.points)


@pytest.mark.prometheus
def test_history_of_unknown_series_says_so(breaching_series, prometheus):
    incident = chart_incident(breaching_series)
    incident.fingerprint = "not-a-series"
    client = PrometheusClient(url=prometheus.url, timeout_seconds=5)

    history = charts.incident_history(incident, client)

    assert history.points == []
    assert "no samples of this series" in history.error


def test_chart_breaks_line_at_missing_samples():
    incident = make_incident()
    start = incident.opened_at - timedelta(minutes=1)
    base = start.timestamp()
    points = [(base + 10, 1.0), (base + 20, 2.0), (base + 60, 3.0), (base + 70, 4.0)]
    history = charts.History(start, incident.opened_at, 10.0, points=points)

    chart = charts.chart_for(incident, history)

    assert chart is not None
    assert len(chart.lines) == 2
    assert chart.threshold_y is not None
    assert chart.plot_top <= chart.threshold_y <= chart.plot_bottom


def test_chart_skips_infinite_values():
    incident = make_incident()
    start = incident.opened_at - timedelta(minutes=1)
    base = start.timestamp()
    points = [(base + 10, 1.0), (base + 20, float("inf")), (base + 30, 2.0)]
    history = charts.History(start, incident.opened_at, 10.0, points=points)

    chart = charts.chart_for(incident, history)

    assert chart is not None
    assert chart.lines == []
    assert len(chart.dots) == 2
