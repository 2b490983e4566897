"""Evaluation against a real Prometheus scraping an exporter the test controls.

Slots are given explicitly, one interval apart, so each test states at which
evaluation an incident must open or resolve; the queries themselves run
against what Prometheus scraped a moment ago.
"""

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests.watchers.factories import make_watcher
from watchers.choices import Health, IncidentState, Mode
from watchers.models import Incident, SeriesState, Watcher
from watchers.services.claimed import claim_slot
from watchers.services.evaluation import evaluate_watchers
from watchers.services.prometheus import PrometheusClient

pytestmark = [pytest.mark.django_db, pytest.mark.prometheus]

BASE = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = 15


def slot(index: int) -> datetime:
    return BASE + timedelta(seconds=index * INTERVAL)


def has_value(expected: float):
    def check(result: list) -> bool:
        if len(result) != 1:
            return False
        value = float(result[0]["value"][1])
        return value == expected or (math.isnan(expected) and math.isnan(value))

    return check


@pytest.fixture
def client(prometheus) -> PrometheusClient:
    return PrometheusClient(url=prometheus.url, timeout_seconds=5)


def series_watcher(series: str, **fields) -> Watcher:
    values = {
        "query": f'bastion_test_value{{series="{series}"}}',
        "threshold": 0.8,
        "window_seconds": 30,
        "interval_seconds": INTERVAL,
    }
    values.update(fields)
    return make_watcher(**values)


def open_incidents(watcher: Watcher):
    return Incident.objects.filter(watcher=watcher, resolved_at__isnull=True)


def test_incident_opens_after_window_and_resolves_after_delay(exporter, settle, client):
    watcher = series_watcher("latency")
    exporter.set(0.95, series="latency")
    settle('bastion_test_value{series="latency"}', has_value(0.95))

    for index in (0, 1):
        evaluate_watchers([watcher.id], slot(index), client=client)
        assert not open_incidents(watcher).exists(), f"opened early at {index}"
    assert SeriesState.objects.get(watcher=watcher).status == "pending"

    report = evaluate_watchers([watcher.id], slot(2), client=client)
    incident = open_incidents(watcher).get()
    assert report.opened == [incident.pk]
    assert abs(incident.opened_at - timezone.now()) < timedelta(seconds=30)
    assert SeriesState.objects.get(watcher=watcher).pending_since == slot(0)
    assert incident.last_value == pytest.approx(0.95)
    assert incident.labels["series"] == "latency"

    exporter.set(0.1, series="latency")
    settle('bastion_test_value{series="latency"}', has_value(0.1))
    for index in (3, 4):
        evaluate_watchers([watcher.id], slot(index), client=client)
        assert open_incidents(watcher).exists(), f"resolved early at {index}"

    report = evaluate_watchers([watcher.id], slot(5), client=client)
    incident.refresh_from_db()
    assert report.resolved == [incident.pk]
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolved_at >= incident.opened_at
    assert incident.peak_value == pytest.approx(0.95)
    assert not SeriesState.objects.filter(watcher=watcher).exists()


def test_same_slot_is_evaluated_once(exporter, settle, client):
    watcher = series_watcher("redelivered", window_seconds=0)
    exporter.set(2, series="redelivered")
    settle('bastion_test_value{series="redelivered"}', has_value(2))

    first = evaluate_watchers([watcher.id], slot(0), client=client)
    second = evaluate_watchers([watcher.id], slot(0), client=client)
    assert first.evaluated == 1
    assert second.evaluated == 0
    assert open_incidents(watcher).count() == 1


def test_older_slot_after_newer_one_is_ignored(exporter, settle, client):
    watcher = series_watcher("late", window_seconds=0)
    exporter.set(2, series="late")
    settle('bastion_test_value{series="late"}', has_value(2))

    evaluate_watchers([watcher.id], slot(5), client=client)
    late = evaluate_watchers([watcher.id], slot(4), client=client)
    assert late.evaluated == 0
    assert Watcher.objects.get(pk=watcher.pk).evaluated_slot == slot(5)


class OvertakingClient(PrometheusClient):
    """Lets a newer slot of the watcher be claimed while its query runs."""

    def __init__(self, url: str, watcher_id: int, newer_slot: datetime) -> None:
        super().__init__(url=url, timeout_seconds=5)
        self.watcher_id = watcher_id
        self.newer_slot = newer_slot

    def query(self, expression: str, at: datetime | None = None) -> list:
        assert claim_slot([self.watcher_id], self.newer_slot)
        return super().query(expression, at)


def test_newer_claim_during_query_discards_results(exporter, settle, prometheus):
    watcher = series_watcher("overtaken", window_seconds=0)
    exporter.set(2, series="overtaken")
    settle('bastion_test_value{series="overtaken"}', has_value(2))
    client = OvertakingClient(prometheus.url, watcher.id, slot(1))

    report = evaluate_watchers([watcher.id], slot(0), client=client)
    watcher.refresh_from_db()
    assert report.evaluated == 0
    assert report.opened == []
    assert watcher.evaluated_slot == slot(1)
    assert watcher.last_evaluated_at is None
    assert watcher.health == Health.UNKNOWN
    assert not SeriesState.objects.filter(watcher=watcher).exists()
    assert not Incident.objects.filter(watcher=watcher).exists()


def test_one_incident_per_series_of_a_vector(exporter, settle, client):
    for pod in ("a", "b", "c"):
        exporter.set(5, series=f"pods-{pod}")
    exporter.set(0, series="pods-d")
    settle('bastion_test_value{series=~"pods-.*"} > 1', lambda r: len(r) == 3)
    watcher = make_watcher(
        query='bastion_test_value{series=~"pods-.*"}',
        threshold=1,
        window_seconds=0,
        interval_seconds=INTERVAL,
    )

    evaluate_watchers([watcher.id], slot(0), client=client)
    evaluate_watchers([watcher.id], slot(1), client=client)
    labels = sorted(i.labels["series"] for i in open_incidents(watcher))
    assert labels == ["pods-a", "pods-b", "pods-c"]
    assert Watcher.objects.get(pk=watcher.pk).last_series_count == 4


def test_scalar_query_opens_an_incident_without_labels(exporter, settle, client):
    exporter.set(3, series="scalar")
    settle('bastion_test_value{series="scalar"}', has_value(3))
    watcher = make_watcher(
        query='scalar(bastion_test_value{series="scalar"})',
        threshold=1,
        window_seconds=0,
        interval_seconds=INTERVAL,
    )

    evaluate_watchers([watcher.id], slot(0), client=client)
    incident = open_incidents(watcher).get()
    assert incident.labels == {}
    assert incident.last_value == 3


def test_empty_result_changes_nothing(client):
    watcher = make_watcher(
        query='bastion_test_value{series="never-set"}', window_seconds=0
    )
    report = evaluate_watchers([watcher.id], slot(0), client=client)
    watcher.refresh_from_db()
    assert report.evaluated == 1
    assert watcher.health == Health.OK
    assert watcher.last_series_count == 0
    assert not Incident.objects.filter(watcher=watcher).exists()


@pytest.mark.parametrize(
    ("value", "comparison", "opens"),
    [(math.nan, ">", False), (math.inf, ">", True), (-math.inf, "<", True)],
    ids=["nan", "plus-inf", "minus-inf"],
)
def test_special_values_from_prometheus(
    exporter, settle, client, value, comparison, opens
):
    series = f"special-{value}"
    exporter.set(value, series=series)
    settle(f'bastion_test_value{{series="{series}"}}', has_value(value))
    watcher = series_watcher(
        series, comparison=comparison, threshold=0, window_seconds=0
    )

    evaluate_watchers([watcher.id], slot(0), client=client)
    assert open_incidents(watcher).exists() is opens


def test_shadow_watcher_records_a_shadow_incident(exporter, settle, client):
    exporter.set(2, series="shadow")
    settle('bastion_test_value{series="shadow"}', has_value(2))
    watcher = series_watcher("shadow", window_seconds=0, mode=Mode.SHADOW)

    evaluate_watchers([watcher.id], slot(0), client=client)
    assert open_incidents(watcher).get().is_shadow is True


def test_paused_watcher_is_not_evaluated(exporter, settle, client):
    exporter.set(2, series="paused")
    settle('bastion_test_value{series="paused"}', has_value(2))
    watcher = series_watcher("paused", window_seconds=0, mode=Mode.PAUSED)

    report = evaluate_watchers([watcher.id], slot(0), client=client)
    assert report.evaluated == 0
    assert not Incident.objects.filter(watcher=watcher).exists()


def test_too_many_series_opens_nothing(exporter, settle, client):
    for index in range(12):
        exporter.set(5, series=f"fanout-{index}")
    settle('bastion_test_value{series=~"fanout-.*"}', lambda r: len(r) == 12)
    watcher = make_watcher(
        query='bastion_test_value{series=~"fanout-.*"}',
        threshold=1,
        window_seconds=0,
        max_series=10,
    )

    report = evaluate_watchers([watcher.id], slot(0), client=client)
    watcher.refresh_from_db()
    assert report.too_many_series == 1
    assert watcher.health == Health.TOO_MANY_SERIES
    assert "12 series" in watcher.last_error
    assert not Incident.objects.filter(watcher=watcher).exists()


def test_failing_query_is_isolated_from_its_batch(exporter, settle, client, settings):
    settings.EVALUATION_BATCH_SIZE = 10
    exporter.set(2, series="neighbour")
    settle('bastion_test_value{series="neighbour"}', has_value(2))
    good = [series_watcher("neighbour", window_seconds=0) for _ in range(7)]
    broken = make_watcher(query="rate(bastion_test_value[1m]", window_seconds=0)

    ids = [w.id for w in good[:3]] + [broken.id] + [w.id for w in good[3:]]
    report = evaluate_watchers(ids, slot(0), client=client)
    broken.refresh_from_db()
    assert report.errors == 1
    assert broken.health == Health.ERROR
    assert "bad_data" in broken.last_error
    assert Incident.objects.filter(watcher__in=good).count() == 7


def test_failed_query_keeps_open_incidents(exporter, settle, client):
    watcher = series_watcher("kept", window_seconds=0)
    exporter.set(2, series="kept")
    settle('bastion_test_value{series="kept"}', has_value(2))
    evaluate_watchers([watcher.id], slot(0), client=client)

    Watcher.objects.filter(pk=watcher.pk).update(query="rate(nothing[1m]")
    for index in (1, 2, 3, 4):
        evaluate_watchers([watcher.id], slot(index), client=client)
    watcher.refresh_from_db()
    assert watcher.health == Health.ERROR
    assert watcher.consecutive_errors == 4
    assert open_incidents(watcher).count() == 1


def test_open_and_resolve_are_in_the_audit_log(exporter, settle, client):
    from audit.models import AuditEvent

    watcher = series_watcher("audited", window_seconds=0, resolve_delay_seconds=0)
    exporter.set(2, series="audited")
    settle('bastion_test_value{series="audited"}', has_value(2))
    evaluate_watchers([watcher.id], slot(0), client=client)
    exporter.set(0, series="audited")
    settle('bastion_test_value{series="audited"}', has_value(0))
    evaluate_watchers([watcher.id], slot(1), client=client)

    incident = Incident.objects.get(watcher=watcher)
    kinds = list(
        AuditEvent.objects.filter(incident_id=incident.pk)
        .order_by("created_at")
        .values_list("kind", flat=True)
    )
    assert kinds == ["incident.opened", "incident.resolved"]


def test_watcher_health_change_is_in_the_audit_log(client):
    from audit.models import AuditEvent

    watcher = make_watcher(query="rate(nothing[1m]", window_seconds=0)
    evaluate_watchers([watcher.id], slot(0), client=client)
    evaluate_watchers([watcher.id], slot(1), client=client)

    events = AuditEvent.objects.filter(kind="watcher.health")
    assert events.count() == 1
    assert "unknown -> error" in events.get().summary


def test_resolve_stops_the_waiting_mitigation(
    exporter, settle, client, django_capture_on_commit_callbacks
):
    from mitigations.choices import AttemptStatus, RunStatus
    from mitigations.models import ActionRun, MitigationAttempt, MitigationStep

    watcher = series_watcher("queue", resolve_delay_seconds=INTERVAL)
    # A destructive step always waits for a person, so it is still waiting
    # when the metric recovers.
    MitigationStep.objects.create(watcher=watcher, position=1, action="clear_caches")
    exporter.set(0.95, series="queue")
    settle('bastion_test_value{series="queue"}', has_value(0.95))
    with django_capture_on_commit_callbacks(execute=True):
        for index in (0, 1, 2):
            evaluate_watchers([watcher.id], slot(index), client=client)
    run = ActionRun.objects.get(incident__watcher=watcher)
    run.status = RunStatus.WAITING_APPROVAL
    run.save(update_fields=["status"])

    exporter.set(0.1, series="queue")
    settle('bastion_test_value{series="queue"}', has_value(0.1))
    with django_capture_on_commit_callbacks(execute=True):
        for index in (3, 4):
            evaluate_watchers([watcher.id], slot(index), client=client)

    run.refresh_from_db()
    attempt = MitigationAttempt.objects.get(incident__watcher=watcher)
    assert not open_incidents(watcher).exists()
    assert run.status == RunStatus.SKIPPED
    assert attempt.status == AttemptStatus.STOPPED
