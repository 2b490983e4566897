"""Which watchers are due, claimed so that no slot is dispatched twice.

Slots lie on a grid of each watcher's interval counted from the Unix epoch.
The dispatcher claims the current slot by moving ``next_evaluation_at`` to
the next grid point with a conditional UPDATE, so two beats, or a beat and a
manual run, never both dispatch a watcher. After beat has been down, a
watcher is due once, for the current slot, and not once per missed slot.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from watchers.choices import Mode
from watchers.models import Watcher
from watchers.services.claims import update_returning_ids

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Enqueue = Callable[[list[int], datetime], None]


def current_slot(now: datetime, interval_seconds: int) -> datetime:
    """Return the latest grid point of ``interval_seconds`` at or before ``now``."""
    elapsed = int((now - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=elapsed - elapsed % interval_seconds)


def due_watchers(now: datetime) -> dict[int, list[int]]:
    """Return the ids of due watchers, grouped by interval."""
    rows = (
        Watcher.objects.exclude(mode=Mode.PAUSED)
        .filter(Q(next_evaluation_at__isnull=True) | Q(next_evaluation_at__lte=now))
        .values_list("id", "interval_seconds")
    )
    groups: dict[int, list[int]] = defaultdict(list)
    for watcher_id, interval in rows:
        groups[interval].append(watcher_id)
    return groups


def claim_due(
    ids: Sequence[int], slot: datetime, next_at: datetime, now: datetime
) -> list[int]:
    return update_returning_ids(
        Watcher,
        ids,
        {"next_evaluation_at": next_at},
        "(next_evaluation_at IS NULL OR next_evaluation_at <= %s) AND mode <> %s",
        [now, Mode.PAUSED],
    )


def dispatch_due_watchers(
    enqueue: Enqueue, now: datetime | None = None
) -> list[tuple[datetime, list[int]]]:
    """Claim every due watcher's current slot and hand it to ``enqueue``.

    ``enqueue`` receives chunks of at most ``BASTION_EVALUATION_TASK_SIZE``
    watcher ids sharing one slot. Returns what was dispatched.
    """
    now = now or timezone.now()
    dispatched = []
    for interval, ids in due_watchers(now).items():
        slot = current_slot(now, interval)
        claimed = claim_due(ids, slot, slot + timedelta(seconds=interval), now)
        size = settings.EVALUATION_TASK_SIZE
        for start in range(0, len(claimed), size):
            chunk = claimed[start : start + size]
            enqueue(chunk, slot)
            dispatched.append((slot, chunk))
    if dispatched:
        logger.info(
            "dispatched %s watchers in %s tasks",
            sum(len(chunk) for _, chunk in dispatched),
            len(dispatched),
        )
    return dispatched
