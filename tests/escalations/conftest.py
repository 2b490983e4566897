"""Fixtures for escalation tests: the example rules, and a local HTTP receiver each."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.receiver import HttpReceiver
from escalations.models import Receiver
from escalations.services import delivery
from escalations.services.catalog import import_escalations
from tests.watchers.factories import make_watcher
from watchers.models import Incident

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "escalation.yaml"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

_fingerprints = 0


@pytest.fixture(autouse=True)
def _fast_retries(settings):
    settings.NOTIFICATION_BACKOFF_SECONDS = 0.01
    settings.NOTIFICATION_TIMEOUT_SECONDS = 2.0
    settings.BASE_URL = "https://bastion.example"


def point_at(monkeypatch, receiver: Receiver, server: HttpReceiver) -> None:
    monkeypatch.setenv(
        f"BASTION_{receiver.env_prefix}_URL", f"{server.url}/{receiver.name}"
    )


@pytest.fixture
def routed(db, monkeypatch):
    """Import the example file and give every receiver its own local server."""
    import_escalations(EXAMPLE)
    servers: dict[str, HttpReceiver] = {}
    for receiver in Receiver.objects.all():
        servers[receiver.name] = HttpReceiver()
        point_at(monkeypatch, receiver, servers[receiver.name])
    yield servers
    for server in servers.values():
        server.stop()


def make_incident(watcher=None, opened_at: datetime = NOW, **fields: Any) -> Incident:
    global _fingerprints
    _fingerprints += 1
    watcher = watcher or make_watcher()
    values: dict[str, Any] = {
        "watcher": watcher,
        "fingerprint": f"fp-{_fingerprints}",
        "labels": {"service": "sandra-api"},
        "opened_at": opened_at,
        "severity": watcher.severity,
        "threshold": watcher.threshold,
        "comparison": watcher.comparison,
        "last_value": watcher.threshold + 1,
        "is_shadow": False,
    }
    values.update(fields)
    return Incident.objects.create(**values)


def minutes(count: float) -> timedelta:
    return timedelta(minutes=count)


def send_all(now: datetime = NOW) -> dict[int, str]:
    return delivery.send_pending(now)


def bodies(server: HttpReceiver) -> list[Any]:
    return [request.json() for request in server.requests]
