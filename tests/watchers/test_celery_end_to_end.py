"""A real Celery beat and worker evaluate a watcher against a real Prometheus."""

import os
import time

import pytest

from devstack.processes import ProcessGroup
from tests.processes import database_url, start_celery
from tests.watchers.factories import make_watcher
from watchers.choices import IncidentState
from watchers.models import Incident
from watchers.services.scheduling import current_slot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.prometheus]


@pytest.fixture
def celery(prometheus, tmp_path):
    # A Redis database of its own keeps this broker queue away from a demo
    # or another test run on the same server.
    redis_db = 10 + os.getpid() % 5
    env = {
        "BASTION_DATABASE_URL": database_url(),
        "BASTION_REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
        "BASTION_PROMETHEUS_URL": prometheus.url,
        "BASTION_DISPATCH_EVERY_SECONDS": "0.5",
    }
    group = ProcessGroup(tmp_path / "logs")
    start_celery(group, env, tmp_path)
    yield group
    group.stop()


def wait_for(condition, group: ProcessGroup, timeout_seconds: float = 45.0):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        group.check_alive()
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"condition not met within {timeout_seconds}s")


def test_beat_and_worker_open_and_resolve_an_incident(exporter, settle, celery):
    exporter.set(5, series="celery")
    settle('bastion_test_value{series="celery"}', lambda r: len(r) == 1)
    watcher = make_watcher(
        query='bastion_test_value{series="celery"}',
        threshold=1,
        window_seconds=2,
        interval_seconds=1,
    )

    incident = wait_for(
        lambda: Incident.objects.filter(watcher=watcher).first(), celery
    )
    assert incident.state == IncidentState.FIRING
    assert incident.last_value == 5

    exporter.set(0, series="celery")
    wait_for(
        lambda: Incident.objects.filter(
            pk=incident.pk, state=IncidentState.RESOLVED
        ).exists(),
        celery,
    )
    assert Incident.objects.filter(watcher=watcher).count() == 1
    # The earliest slot is the grid point at or before creation; the window
    # of 2 s must pass after it before the incident can open.
    first_slot = current_slot(watcher.created_at, 1)
    assert (incident.opened_at - first_slot).total_seconds() >= 2
