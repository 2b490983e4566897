"""The dashboard websocket: who may connect, snapshots, and pushed changes."""

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.db import connection, connections
from django.utils import timezone

from bastion.asgi import application
from bastion.settings import channel_layers
from tests.watchers.factories import make_watcher
from watchers.choices import IncidentKind, IncidentState
from watchers.models import Incident, Watcher
from watchers.services import live

pytestmark = pytest.mark.django_db(transaction=True)

# A Redis database of its own, so other test runs on this server do not
# receive these messages or move this counter.
LIVE_REDIS_URL = "redis://127.0.0.1:6379/5"
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 5


@pytest.fixture(autouse=True)
def live_channel_layer(settings):
    settings.CHANNEL_LAYERS = channel_layers(LIVE_REDIS_URL)
    redis.Redis.from_url(LIVE_REDIS_URL).delete(live.SEQUENCE_KEY)


@pytest_asyncio.fixture(autouse=True)
async def close_consumer_connections():
    """Close the connection the consumer thread opened, so the test database drops."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def viewer(persona_factory):
    return persona_factory("viewer", "watchers.view_incident")


@pytest.fixture
def outsider(persona_factory):
    return persona_factory("outsider")


def make_incident(watcher: Watcher, number: int = 1, **fields: Any) -> Incident:
    values: dict[str, Any] = {
        "kind": IncidentKind.SERIES,
        "watcher": watcher,
        "fingerprint": f"fp-{number}",
        "labels": {"instance": f"app-{number}:9100"},
        "comparison": ">",
        "threshold": 0.8,
        "last_value": 0.93,
        "opened_at": timezone.now() - timedelta(minutes=5),
    }
    values.update(fields)
    return Incident.objects.create(**values)


def communicator_for(user=None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1")]
    if user is not None:
        from django.test import Client

        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/dashboard/", headers=headers)


async def connected(user) -> WebsocketCommunicator:
    communicator = await database_sync_to_async(communicator_for)(user)
    accepted, _ = await communicator.connect(timeout=TIMEOUT_SECONDS)
    assert accepted
    return communicator


async def receive_type(communicator: WebsocketCommunicator, kind: str) -> dict:
    """Return the next message of one type, skipping others."""
    while True:
        message = await communicator.receive_json_from(timeout=TIMEOUT_SECONDS)
        if message["type"] == kind:
            return message


@pytest.mark.asyncio
async def test_anonymous_connection_closed_4401():
    communicator = communicator_for()
    await communicator.connect(timeout=TIMEOUT_SECONDS)

    closed = await communicator.receive_output(timeout=TIMEOUT_SECONDS)

    assert closed["type"] == "websocket.close"
    assert closed["code"] == 4401


@pytest.mark.asyncio
async def test_user_without_permission_closed_4403(outsider):
    communicator = await connected(outsider)

    closed = await communicator.receive_output(timeout=TIMEOUT_SECONDS)

    assert closed["type"] == "websocket.close"
    assert closed["code"] == 4403


@pytest.mark.asyncio
async def test_foreign_origin_rejected(viewer):
    communicator = await database_sync_to_async(communicator_for)(viewer)
    communicator.scope["headers"] = [
        (b"origin", b"http://evil.example") if name == b"origin" else (name, value)
        for name, value in communicator.scope["headers"]
    ]

    accepted, _ = await communicator.connect(timeout=TIMEOUT_SECONDS)

    assert not accepted


@pytest.mark.asyncio
async def test_viewer_gets_snapshot_of_open_incidents(viewer):
    watcher = await database_sync_to_async(make_watcher)()
    incident = await database_sync_to_async(make_incident)(watcher)
    communicator = await connected(viewer)

    snapshot = await receive_type(communicator, "snapshot")

    assert [entry["id"] for entry in snapshot["incidents"]] == [incident.pk]
    assert snapshot["incidents"][0]["state"] == "firing"
    assert f'id="incident-{incident.pk}"' in snapshot["incidents"][0]["html"]
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_ping_answered_with_pong(viewer):
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await communicator.send_json_to({"type": "ping"})

    assert await communicator.receive_json_from(timeout=TIMEOUT_SECONDS) == {
        "type": "pong",
        "seq": 0,
    }
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_pong_carries_last_sequence(viewer):
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")
    await database_sync_to_async(live.publish)("values", {"values": []})
    await receive_type(communicator, "values")

    await communicator.send_json_to({"type": "ping"})
    pong = await receive_type(communicator, "pong")

    assert pong["seq"] == 1
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_resume_returns_fresh_snapshot(viewer):
    communicator = await connected(viewer)
    first = await receive_type(communicator, "snapshot")
    watcher = await database_sync_to_async(make_watcher)()
    incident = await database_sync_to_async(make_incident)(watcher)
    await receive_type(communicator, "incident")

    await communicator.send_json_to({"type": "resume", "after": first["seq"]})
    fresh = await receive_type(communicator, "snapshot")

    assert [entry["id"] for entry in fresh["incidents"]] == [incident.pk]
    assert fresh["seq"] > first["seq"]
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_committed_incident_pushed_with_next_seq(viewer):
    communicator = await connected(viewer)
    snapshot = await receive_type(communicator, "snapshot")
    watcher = await database_sync_to_async(make_watcher)()

    incident = await database_sync_to_async(make_incident)(watcher)
    message = await receive_type(communicator, "incident")

    assert message["incident"]["id"] == incident.pk
    assert message["incident"]["listed"] is True
    assert message["seq"] == snapshot["seq"] + 1
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_change_carries_open_summary(viewer):
    communicator = await connected(viewer)
    snapshot = await receive_type(communicator, "snapshot")
    watcher = await database_sync_to_async(make_watcher)()

    incident = await database_sync_to_async(make_incident)(watcher)
    opened = await receive_type(communicator, "incident")
    incident.state = IncidentState.RESOLVED
    incident.resolved_at = timezone.now()
    await database_sync_to_async(incident.save)()
    resolved = await receive_type(communicator, "incident")

    assert "Nothing is open." in snapshot["summary_html"]
    assert "1 open" in opened["summary_html"]
    assert "1 medium" in opened["summary_html"]
    assert "Nothing is open." in resolved["summary_html"]
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_decide_buttons_only_for_deciders(viewer, persona_factory):
    decider = await database_sync_to_async(persona_factory)(
        "decider", "watchers.view_incident", "mitigations.decide_approval"
    )
    watching = await connected(viewer)
    deciding = await connected(decider)
    await receive_type(watching, "snapshot")
    await receive_type(deciding, "snapshot")
    watcher = await database_sync_to_async(make_watcher)()

    await database_sync_to_async(waiting_approval)(watcher)
    seen = await receive_type(watching, "approval")
    decided = await receive_type(deciding, "approval")
    await watching.send_json_to({"type": "resume"})
    snapshot = await receive_type(watching, "snapshot")

    assert "data-decision" not in seen["incident"]["html"]
    assert "data-decision" not in snapshot["incidents"][0]["html"]
    assert 'data-decision="reject"' in decided["incident"]["html"]
    await watching.disconnect()
    await deciding.disconnect()


@pytest.mark.asyncio
async def test_resolved_incident_pushed_as_resolved(viewer):
    watcher = await database_sync_to_async(make_watcher)()
    incident = await database_sync_to_async(make_incident)(watcher)
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    incident.state = IncidentState.RESOLVED
    incident.resolved_at = timezone.now()
    await database_sync_to_async(incident.save)()
    message = await receive_type(communicator, "incident")

    assert message["incident"]["state"] == "resolved"
    assert 'data-state="resolved"' in message["incident"]["html"]
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_unknown_message_type_answered_with_error(viewer):
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await communicator.send_json_to({"type": "subscribe"})
    reply = await communicator.receive_json_from(timeout=TIMEOUT_SECONDS)

    assert reply["type"] == "error"
    assert "'subscribe'" in reply["error"]
    await communicator.disconnect()


def run_shell(code: str) -> subprocess.CompletedProcess:
    """Run Django's shell in a new process against this test database."""
    database = connection.settings_dict
    environment = {
        **os.environ,
        "BASTION_DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}"
            f"/{database['NAME']}"
        ),
        "BASTION_REDIS_URL": LIVE_REDIS_URL,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.asyncio
async def test_incident_saved_in_other_process_reaches_socket(viewer):
    watcher = await database_sync_to_async(make_watcher)()
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")
    code = (
        "from django.utils import timezone\n"
        "from watchers.models import Incident\n"
        f"Incident.objects.create(watcher_id={watcher.pk}, fingerprint='remote',"
        " comparison='>', threshold=0.8, last_value=0.9,"
        " opened_at=timezone.now())\n"
    )

    result = await asyncio.to_thread(run_shell, code)
    message = await receive_type(communicator, "incident")

    assert result.returncode == 0, result.stderr
    assert message["incident"]["state"] == "firing"
    assert await database_sync_to_async(
        Incident.objects.filter(
            pk=message["incident"]["id"], fingerprint="remote"
        ).exists
    )()
    await communicator.disconnect()


def test_publish_without_channel_layer_sends_nothing(settings):
    settings.CHANNEL_LAYERS = {}

    assert live.publish("incident", {}) is None


def test_channel_redis_url_follows_channel_layer():
    assert live.channel_redis_url() == LIVE_REDIS_URL
    host = django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0]
    assert host["address"] == LIVE_REDIS_URL


# Changes written with QuerySet.update(), which sends no post_save.


def waiting_approval(watcher: Watcher):
    from mitigations.choices import RunStatus
    from mitigations.models import ActionRun, Approval, MitigationAttempt

    incident = make_incident(watcher)
    now = timezone.now()
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=now
    )
    run = ActionRun.objects.create(
        attempt=attempt,
        incident=incident,
        position=1,
        action="clear_caches",
        risk="destructive",
        status=RunStatus.WAITING_APPROVAL,
        queued_at=now,
    )
    return Approval.objects.create(
        run=run, requested_at=now, expires_at=now + timedelta(minutes=30)
    )


@pytest.mark.asyncio
async def test_decision_pushes_approval_message(viewer, persona_factory):
    from mitigations.services import approvals

    decider = await database_sync_to_async(persona_factory)(
        "decider", "mitigations.decide_approval"
    )
    watcher = await database_sync_to_async(make_watcher)()
    approval = await database_sync_to_async(waiting_approval)(watcher)
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await database_sync_to_async(approvals.decide)(
        approval.pk, decider, approve=False, comment="not now"
    )
    message = await receive_type(communicator, "approval")

    assert message["approval"]["id"] == approval.pk
    assert message["approval"]["decision"] == "rejected"
    assert message["incident"]["pending_approvals"] == []
    assert "rejected by a person" in message["incident"]["html"]
    await communicator.disconnect()


def finish(run_id: int) -> None:
    from mitigations.models import ActionRun
    from mitigations.services import chain

    run = ActionRun.objects.get(pk=run_id)
    chain.finish_run(run, "succeeded", output={"flushed": True})


@pytest.mark.asyncio
async def test_finished_step_pushes_run_message(viewer):
    from mitigations.models import ActionRun

    watcher = await database_sync_to_async(make_watcher)()
    approval = await database_sync_to_async(waiting_approval)(watcher)
    await database_sync_to_async(ActionRun.objects.filter(pk=approval.run_id).update)(
        status="running"
    )
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await database_sync_to_async(finish)(approval.run_id)
    message = await receive_type(communicator, "run")

    assert message["run"] == {"id": approval.run_id, "status": "succeeded"}
    assert "succeeded" in message["incident"]["html"]
    await communicator.disconnect()


def evaluate(watcher_id: int, index: int, prometheus_url: str):
    from datetime import UTC, datetime

    from watchers.services.evaluation import evaluate_watchers
    from watchers.services.prometheus import PrometheusClient

    slot = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=15 * index)
    client = PrometheusClient(url=prometheus_url, timeout_seconds=5)
    return evaluate_watchers([watcher_id], slot, client=client)


@pytest.mark.prometheus
@pytest.mark.asyncio
async def test_evaluation_pushes_values_then_resolution(
    viewer, exporter, settle, prometheus
):
    query = 'bastion_test_value{series="live-eval"}'
    exporter.set(2, series="live-eval")
    await asyncio.to_thread(settle, query, lambda r: r and r[0]["value"][1] == "2")
    watcher = await database_sync_to_async(make_watcher)(
        query=query, threshold=1, unit="s", window_seconds=0, interval_seconds=15
    )
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await database_sync_to_async(evaluate)(watcher.pk, 0, prometheus.url)
    opened = await receive_type(communicator, "incident")
    exporter.set(3, series="live-eval")
    await asyncio.to_thread(settle, query, lambda r: r and r[0]["value"][1] == "3")
    await database_sync_to_async(evaluate)(watcher.pk, 1, prometheus.url)
    values = await receive_type(communicator, "values")
    exporter.set(0, series="live-eval")
    await asyncio.to_thread(settle, query, lambda r: r and r[0]["value"][1] == "0")
    for index in (2, 3, 4):
        await database_sync_to_async(evaluate)(watcher.pk, index, prometheus.url)
    resolved = await receive_type(communicator, "incidents")

    assert opened["incident"]["state"] == "firing"
    assert values["values"] == [
        {
            "id": opened["incident"]["id"],
            "value": "3 s (threshold > 1 s)",
            "peak": "3 s",
        }
    ]
    assert [entry["id"] for entry in resolved["incidents"]] == [
        opened["incident"]["id"]
    ]
    assert resolved["incidents"][0]["state"] == "resolved"
    await communicator.disconnect()


@pytest.mark.asyncio
async def test_idle_socket_outlives_redis_read_timeout(viewer):
    # channels_redis blocks 5 s per wait; redis-py 8 reads with a 5 s timeout
    # unless the channel layer sets a longer one. Two waits must pass.
    communicator = await connected(viewer)
    await receive_type(communicator, "snapshot")

    await asyncio.sleep(11)
    watcher = await database_sync_to_async(make_watcher)()
    incident = await database_sync_to_async(make_incident)(watcher)
    message = await receive_type(communicator, "incident")

    assert message["incident"]["id"] == incident.pk
    await communicator.disconnect()
