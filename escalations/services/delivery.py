"""Deliveries: one row per incident, transition and receiver, claimed before sending.

``record`` creates the rows; the unique constraint on (incident, key,
receiver) makes a second call a no-op. ``deliver`` sends one row only after
its conditional UPDATE moved it from pending to sending, so two workers with
the same delivery send it once. A claim older than ``CLAIM_STALE_SECONDS``
belongs to a lost worker and may be taken over; the receiver gets the same
``Idempotency-Key`` both times.
"""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from escalations.choices import DeliveryStatus
from escalations.models import Delivery, Receiver
from escalations.services import auditing
from escalations.services.receivers import ReceiverNotConfigured, receiver_config
from escalations.transports import DeliveryError, get_transport
from watchers.models import Incident

logger = logging.getLogger(__name__)

# Longer than a full send with every retry (4 tries of 10 s plus pauses).
CLAIM_STALE_SECONDS = 120
# A pending row older than this lost its task (broker down): the sweep resends.
PENDING_GRACE_SECONDS = 10


def record(
    incident: Incident,
    key: str,
    receivers: Iterable[Receiver],
    message: dict[str, Any],
    now: datetime,
) -> list[int]:
    """Create a pending delivery per receiver unless one exists; return new ids.

    The new rows are queued for sending once the transaction commits.
    """
    created_ids = []
    for receiver in _unique(receivers):
        if not receiver.enabled:
            continue
        delivery, created = Delivery.objects.get_or_create(
            incident=incident,
            key=key,
            receiver=receiver,
            defaults={
                "transition": message["transition"],
                "severity": message["severity"],
                "message": message,
                "created_at": now,
            },
        )
        if created:
            created_ids.append(delivery.pk)
    if created_ids:
        transaction.on_commit(lambda: enqueue(created_ids))
    return created_ids


def _unique(receivers: Iterable[Receiver]) -> list[Receiver]:
    seen: dict[int, Receiver] = {}
    for receiver in receivers:
        seen.setdefault(receiver.pk, receiver)
    return list(seen.values())


def enqueue(delivery_ids: list[int]) -> None:
    """Queue a send task per delivery; a broker failure leaves them to the sweep."""
    from escalations.tasks import send_notification

    for delivery_id in delivery_ids:
        try:
            send_notification.delay(delivery_id)
        except Exception:
            logger.exception(
                "cannot queue delivery %s; the next sweep sends it", delivery_id
            )


def deliver(delivery_id: int, now: datetime | None = None) -> str:
    """Send one delivery if this caller claims it; return its status afterwards."""
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        status = Delivery.objects.filter(pk=delivery_id).values_list(
            "status", flat=True
        )
        return status.first() or "missing"

    delivery = Delivery.objects.select_related("receiver").get(pk=delivery_id)
    receiver = delivery.receiver
    try:
        config = receiver_config(receiver)
        transport = get_transport(receiver.kind)
        result = transport.send(
            config.url,
            delivery.message,
            recipient=receiver.recipient or receiver.target,
            idempotency_key=str(delivery.idempotency_key),
            token=config.token,
        )
    except ReceiverNotConfigured as error:
        return _fail(delivery, str(error), None, 0)
    except DeliveryError as error:
        kind = "permanent" if error.permanent else "gave up after retries"
        return _fail(delivery, f"{error} ({kind})", error.status_code, error.attempts)
    return _succeed(delivery, result.status_code, result.attempts)


def _claim(delivery_id: int, now: datetime) -> bool:
    stale = now - timedelta(seconds=CLAIM_STALE_SECONDS)
    claimed = (
        Delivery.objects.filter(pk=delivery_id)
        .filter(
            Q(status=DeliveryStatus.PENDING)
            | Q(status=DeliveryStatus.SENDING, claimed_at__lt=stale)
        )
        .update(status=DeliveryStatus.SENDING, claimed_at=now)
    )
    return claimed == 1


def _succeed(delivery: Delivery, status_code: int, attempts: int) -> str:
    _finish(delivery, DeliveryStatus.DELIVERED, "", status_code, attempts)
    logger.info(
        "delivery %s (%s) of incident %s to %s: delivered after %s tries",
        delivery.pk,
        delivery.key,
        delivery.incident_id,
        delivery.receiver.name,
        attempts,
    )
    auditing.record(
        "notification.sent",
        f"{delivery.key} sent to {delivery.receiver}",
        incident_id=delivery.incident_id,
        details=_details(delivery, status_code, attempts),
    )
    return DeliveryStatus.DELIVERED


def _fail(
    delivery: Delivery, error: str, status_code: int | None, attempts: int
) -> str:
    _finish(delivery, DeliveryStatus.FAILED, error, status_code, attempts)
    logger.error(
        "delivery %s (%s) of incident %s to %s failed: %s",
        delivery.pk,
        delivery.key,
        delivery.incident_id,
        delivery.receiver.name,
        error,
    )
    auditing.record(
        "notification.failed",
        f"{delivery.key} to {delivery.receiver} failed: {error}"[:500],
        incident_id=delivery.incident_id,
        details={**_details(delivery, status_code, attempts), "error": error},
    )
    return DeliveryStatus.FAILED


def _finish(
    delivery: Delivery,
    status: str,
    error: str,
    status_code: int | None,
    attempts: int,
) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status,
        last_error=error[:2000],
        response_code=status_code,
        attempts=F("attempts") + attempts,
        finished_at=timezone.now(),
    )


def _details(
    delivery: Delivery, status_code: int | None, attempts: int
) -> dict[str, Any]:
    return {
        "delivery_id": delivery.pk,
        "receiver": delivery.receiver.name,
        "key": delivery.key,
        "response_code": status_code,
        "attempts": attempts,
    }


def due_ids(now: datetime) -> list[int]:
    """Deliveries whose task was lost: pending for a while, or claimed long ago."""
    pending_before = now - timedelta(seconds=PENDING_GRACE_SECONDS)
    stale = now - timedelta(seconds=CLAIM_STALE_SECONDS)
    return list(
        Delivery.objects.filter(
            Q(status=DeliveryStatus.PENDING, created_at__lt=pending_before)
            | Q(status=DeliveryStatus.SENDING, claimed_at__lt=stale)
        ).values_list("pk", flat=True)[:500]
    )


def send_pending(now: datetime | None = None) -> dict[int, str]:
    """Send every pending delivery here and now; return each one's status.

    For the management shell and tests; workers send through the task.
    """
    ids = Delivery.objects.filter(status=DeliveryStatus.PENDING).values_list(
        "pk", flat=True
    )
    return {delivery_id: deliver(delivery_id, now) for delivery_id in list(ids)}
