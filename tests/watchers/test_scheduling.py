"""Dispatching due watchers: slots, catch-up, and races between dispatchers."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.watchers.factories import make_watcher
from watchers.choices import Mode
from watchers.models import Incident, Watcher
from watchers.services.evaluation import evaluate_watchers
from watchers.services.prometheus import PrometheusClient
from watchers.services.scheduling import current_slot, dispatch_due_watchers

NOW = datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list[int], datetime]] = []
        self.lock = threading.Lock()

    def __call__(self, ids: list[int], slot: datetime) -> None:
        with self.lock:
            self.calls.append((list(ids), slot))

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.calls for i in ids]


def test_current_slot_is_the_grid_point_at_or_before_now():
    assert current_slot(NOW, 15) == datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert current_slot(NOW, 60) == datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert current_slot(NOW, 86400) == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_new_watcher_is_due_at_once_and_then_once_per_interval():
    watcher = make_watcher(interval_seconds=15)
    record = Recorder()

    dispatch_due_watchers(record, now=NOW)
    dispatch_due_watchers(record, now=NOW + timedelta(seconds=5))
    dispatch_due_watchers(record, now=NOW + timedelta(seconds=7))
    assert record.calls == [([watcher.id], current_slot(NOW, 15))]
    watcher.refresh_from_db()
    assert watcher.next_evaluation_at == datetime(2026, 1, 1, 12, 0, 15, tzinfo=UTC)

    dispatch_due_watchers(record, now=NOW + timedelta(seconds=8))
    assert record.calls[1] == ([watcher.id], watcher.next_evaluation_at)


@pytest.mark.django_db
def test_watcher_down_for_an_hour_gets_one_catch_up():
    watcher = make_watcher(
        interval_seconds=15, next_evaluation_at=NOW - timedelta(hours=1)
    )
    record = Recorder()

    dispatch_due_watchers(record, now=NOW)
    dispatch_due_watchers(record, now=NOW)
    assert record.ids == [watcher.id]
    assert record.calls[0][1] == current_slot(NOW, 15)


@pytest.mark.django_db
def test_paused_watcher_is_never_dispatched():
    make_watcher(mode=Mode.PAUSED)
    record = Recorder()
    dispatch_due_watchers(record, now=NOW)
    assert record.calls == []


@pytest.mark.django_db
def test_watchers_are_grouped_by_interval_and_chunked(settings):
    settings.EVALUATION_TASK_SIZE = 2
    fast = [make_watcher(interval_seconds=15) for _ in range(3)]
    slow = [make_watcher(interval_seconds=60) for _ in range(2)]
    record = Recorder()

    dispatch_due_watchers(record, now=NOW)
    assert sorted(record.ids) == sorted(w.id for w in fast + slow)
    assert all(len(ids) <= 2 for ids, _ in record.calls)
    assert len(record.calls) == 3


def race(target, count: int) -> list:
    """Run ``target`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_dispatch_each_watcher_once():
    watchers = [make_watcher(interval_seconds=15) for _ in range(300)]
    record = Recorder()

    race(lambda: dispatch_due_watchers(record, now=NOW), 2)
    assert len(record.ids) == len(set(record.ids))
    assert sorted(record.ids) == sorted(w.id for w in watchers)


@pytest.mark.django_db(transaction=True)
@pytest.mark.prometheus
def test_two_evaluations_of_one_slot_open_each_incident_once(
    prometheus, exporter, settle
):
    for index in range(20):
        exporter.set(9, series=f"race-{index}")
    settle('bastion_test_value{series=~"race-.*"}', lambda r: len(r) == 20)
    watchers = [
        make_watcher(
            query=f'bastion_test_value{{series="race-{index}"}}',
            threshold=1,
            window_seconds=0,
        )
        for index in range(20)
    ]
    ids = [w.id for w in watchers]
    client = PrometheusClient(url=prometheus.url)

    reports = race(lambda: evaluate_watchers(ids, NOW, client=client), 4)
    assert sum(r.evaluated for r in reports) == 20
    assert Incident.objects.filter(watcher__in=watchers).count() == 20
    assert sum(len(r.opened) for r in reports) == 20


@pytest.mark.django_db(transaction=True)
@pytest.mark.prometheus
def test_dispatch_then_redelivery_opens_one_incident(prometheus, exporter, settle):
    exporter.set(9, series="redelivery")
    settle('bastion_test_value{series="redelivery"}', lambda r: len(r) == 1)
    watcher = make_watcher(
        query='bastion_test_value{series="redelivery"}', threshold=1, window_seconds=0
    )
    client = PrometheusClient(url=prometheus.url)
    record = Recorder()

    dispatch_due_watchers(record, now=NOW)
    ((ids, slot_time),) = record.calls
    for _ in range(3):
        evaluate_watchers(ids, slot_time, client=client)
    assert Incident.objects.filter(watcher=watcher).count() == 1
    assert Watcher.objects.get(pk=watcher.pk).evaluated_slot == slot_time
