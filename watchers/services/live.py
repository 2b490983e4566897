"""Typed messages for the live dashboard, sent to every open browser.

Every message carries a sequence number taken from one Redis counter, so
numbers are shared by all processes (web, Celery workers, shell). A browser
that receives a number past the next one requests a fresh snapshot instead of
guessing what it missed.
"""

import asyncio
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.template.loader import render_to_string

from watchers.models import Incident
from watchers.services.formatting import (
    incident_unit,
    metric_value_with_unit,
    value_against_threshold,
)
from watchers.services.listing import (
    INCIDENTS_PER_PAGE,
    attach_row_details,
    is_listed,
    listed_incidents,
    open_incident_summary,
)

logger = logging.getLogger(__name__)

GROUP = "dashboard"
SEQUENCE_KEY = "bastion:live:seq"

SEND_TIMEOUT_SECONDS = 5.0

_redis_clients: dict[str, redis.Redis] = {}
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None
_loop_lock = threading.Lock()


def channel_redis_url() -> str:
    """Return the URL of the Redis server that carries the channel layer.

    The sequence counter lives there too, so tests that move the channel layer
    to another Redis database move the counter with it.
    """
    layers: dict[str, Any] = settings.CHANNEL_LAYERS
    config = layers.get("default", {}).get("CONFIG", {})
    hosts = config.get("hosts") or [settings.REDIS_URL]
    host = hosts[0]
    if isinstance(host, dict):
        return str(host["address"])
    return str(host)


def _redis() -> redis.Redis:
    url = channel_redis_url()
    if url not in _redis_clients:
        _redis_clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _redis_clients[url]


def current_sequence() -> int:
    """Return the last sequence number handed out, 0 before the first message."""
    value = _redis().get(SEQUENCE_KEY)
    return int(value) if value is not None else 0


def publish(
    kind: str,
    payload: dict[str, Any],
    decider_payload: dict[str, Any] | None = None,
) -> int | None:
    """Send one typed message to the dashboard group and return its sequence number.

    ``decider_payload``, when given, is what users who may decide approvals
    receive instead of ``payload``: its rows carry approve and reject buttons.

    Return None when no channel layer is configured or Redis cannot be
    reached. A dashboard that misses a message catches up from its next
    snapshot, so a Redis outage must not fail the change that was saved.
    """
    layer = get_channel_layer()
    if layer is None:
        return None

    try:
        sequence = int(_redis().incr(SEQUENCE_KEY))
        # Encoded once here rather than by each of the group's consumers.
        event = {"type": "dashboard.message", "text": _encode(kind, sequence, payload)}
        if decider_payload is not None:
            event["decider_text"] = _encode(kind, sequence, decider_payload)
        sending = asyncio.run_coroutine_threadsafe(
            layer.group_send(GROUP, event), _sending_loop()
        )
        try:
            sending.result(timeout=SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            sending.cancel()
            raise
    except (redis.RedisError, OSError, TimeoutError) as error:
        logger.warning("sending live %s message failed: %r", kind, error)
        return None
    return sequence


def _encode(kind: str, sequence: int, payload: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "seq": sequence, **payload})


def _sending_loop() -> asyncio.AbstractEventLoop:
    """Return this process's event loop for channel layer sends, started once.

    channels_redis keeps its connections per event loop, and async_to_sync
    would run each send in a new loop that opens new connections, which
    took about 4 ms a send on the 2-core benchmark machine. A loop that
    lives in a daemon thread keeps them open. A forked process, such as a Celery prefork
    worker, starts its own, because the parent's thread does not survive
    the fork.
    """
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="live-publish", daemon=True
            )
            thread.start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def incident_entry(incident: Incident, *, can_decide: bool) -> dict[str, Any]:
    """Describe one incident row: ids, state, values and the row's HTML.

    The row has approve and reject buttons only when ``can_decide``. The
    incident needs the attributes that ``attach_row_details`` sets.
    """
    return {
        "id": incident.pk,
        "state": incident.state,
        "severity": incident.severity,
        "listed": is_listed(incident),
        "last_value": _json_number(incident.last_value),
        "pending_approvals": [a.pk for a in incident.pending_approvals],  # type: ignore[attr-defined]
        "html": render_to_string(
            "watchers/incident_row.html",
            {"incident": incident, "can_decide": can_decide},
        ).strip(),
    }


def summary_html() -> str:
    """Render the count of open incidents that heads the list."""
    return render_to_string(
        "watchers/open_summary.html", {"summary": open_incident_summary()}
    ).strip()


def _json_number(value: float | None) -> float | None:
    """Return None for NaN and infinities, which JSON cannot carry."""
    if value is None or not math.isfinite(value):
        return None
    return value


def row_incidents(incident_ids: Iterable[int]) -> list[Incident]:
    """Return the incidents that still exist, in id order, with their row details."""
    incidents = (
        Incident.objects.select_related("watcher")
        .filter(pk__in=list(incident_ids))
        .order_by("pk")
    )
    return attach_row_details(incidents)


def publish_rows(kind: str, build: Callable[[bool], dict[str, Any]]) -> int | None:
    """Send a message that carries incident rows, with the open count.

    ``build(can_decide)`` returns the payload for one audience, so viewers
    and deciders each get rows with only the buttons they may use. Every
    such message can open or resolve an incident, so the count goes along.
    """
    summary = summary_html()
    return publish(
        kind,
        {**build(False), "summary_html": summary},
        {**build(True), "summary_html": summary},
    )


def publish_incident(incident_id: int) -> int | None:
    """Send the current row of one incident."""
    incidents = row_incidents([incident_id])
    if not incidents:
        return None
    return publish_rows(
        "incident",
        lambda can_decide: {
            "incident": incident_entry(incidents[0], can_decide=can_decide)
        },
    )


def publish_incidents(incident_ids: Iterable[int]) -> int | None:
    """Send the current rows of several incidents in one message."""
    incidents = row_incidents(incident_ids)
    if not incidents:
        return None
    return publish_rows(
        "incidents",
        lambda can_decide: {
            "incidents": [
                incident_entry(incident, can_decide=can_decide)
                for incident in incidents
            ]
        },
    )


def publish_values(incident_ids: Iterable[int]) -> int | None:
    """Send new last and peak values of incidents whose rows stay as they are.

    Each evaluation can change the value of every open incident, so this
    message carries the two formatted cells, not whole rows.
    """
    incidents = Incident.objects.select_related("watcher").filter(
        pk__in=list(incident_ids)
    )
    values = [
        {
            "id": incident.pk,
            "value": value_against_threshold(incident),
            "peak": metric_value_with_unit(
                incident.peak_value, incident_unit(incident)
            ),
        }
        for incident in incidents.order_by("pk")
    ]
    if not values:
        return None
    return publish("values", {"values": values})


def publish_run(run_id: int) -> int | None:
    """Send a run's status with the row of its incident, whose step cell changes."""
    from mitigations.models import ActionRun

    run = ActionRun.objects.filter(pk=run_id).values("incident_id", "status").first()
    if run is None:
        return None
    incidents = row_incidents([run["incident_id"]])
    if not incidents:
        return None
    status = {"id": run_id, "status": run["status"]}
    return publish_rows(
        "run",
        lambda can_decide: {
            "run": status,
            "incident": incident_entry(incidents[0], can_decide=can_decide),
        },
    )


def publish_approval(approval_id: int) -> int | None:
    """Send an approval's decision with the row of its incident."""
    from mitigations.models import Approval

    approval = (
        Approval.objects.filter(pk=approval_id)
        .values("run_id", "run__incident_id", "decision")
        .first()
    )
    if approval is None:
        return None
    incidents = row_incidents([approval["run__incident_id"]])
    if not incidents:
        return None
    decision = {
        "id": approval_id,
        "run_id": approval["run_id"],
        "decision": approval["decision"],
    }
    return publish_rows(
        "approval",
        lambda can_decide: {
            "approval": decision,
            "incident": incident_entry(incidents[0], can_decide=can_decide),
        },
    )


def snapshot(*, can_decide: bool) -> dict[str, Any]:
    """Build the first page of the list as a snapshot message.

    The sequence number is read before the query, so any message numbered
    after it may repeat a change the snapshot already shows (harmless, rows
    are replaced whole) but none numbered up to it is missing from it.
    """
    sequence = current_sequence()
    incidents = attach_row_details(listed_incidents()[:INCIDENTS_PER_PAGE])
    entries = [
        incident_entry(incident, can_decide=can_decide) for incident in incidents
    ]
    return {
        "type": "snapshot",
        "seq": sequence,
        "incidents": entries,
        "summary_html": summary_html(),
    }


def publish_after_commit(kind: str, object_id: int) -> None:
    """Publish once the current transaction commits, so readers see the change.

    Outside a transaction the message leaves at once. Code that changes rows
    with QuerySet.update(), which sends no post_save, calls this itself.
    """
    senders = {
        "incident": publish_incident,
        "run": publish_run,
        "approval": publish_approval,
    }
    transaction.on_commit(partial(senders[kind], object_id))


def publish_evaluation_after_commit(
    changed_rows: list[int], changed_values: list[int]
) -> None:
    """Publish what an evaluation changed once it commits.

    ``changed_rows`` are incidents whose row changes as a whole (resolved);
    ``changed_values`` those whose value or peak changed and nothing else.
    """
    if changed_rows:
        transaction.on_commit(partial(publish_incidents, list(changed_rows)))
    if changed_values:
        transaction.on_commit(partial(publish_values, list(changed_values)))


def incident_saved(sender: type, instance: Incident, **kwargs: Any) -> None:
    publish_after_commit("incident", instance.pk)


def run_saved(sender: type, instance: Any, **kwargs: Any) -> None:
    publish_after_commit("run", instance.pk)


def approval_saved(sender: type, instance: Any, **kwargs: Any) -> None:
    publish_after_commit("approval", instance.pk)
