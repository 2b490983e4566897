"""Pausing, resuming and shadowing a watcher from the watchers page."""

import logging

from django.contrib.auth.models import AnonymousUser, User
from django.db import transaction

from audit.services import record
from watchers.choices import Mode, SeriesStatus
from watchers.models import SeriesState, Watcher

logger = logging.getLogger(__name__)

MODE_VERBS = {Mode.ACTIVE: "resumed", Mode.SHADOW: "shadowed", Mode.PAUSED: "paused"}


class ModeUnchanged(Exception):
    """The watcher already had the mode asked for; nothing was recorded."""


def change_mode(
    watcher_id: int,
    mode: str,
    user: User | AnonymousUser,
    address: str | None = None,
) -> Watcher:
    """Set a watcher's mode and record who changed it, from where.

    Pausing deletes the states of the watcher's pending series, because
    nothing checks them while it is paused. After a resume their window
    starts again instead of counting the pause as time in breach. Firing series and
    their open incidents stay as they are. Raises Watcher.DoesNotExist or
    ModeUnchanged.
    """
    mode = Mode(mode)
    with transaction.atomic():
        watcher = Watcher.objects.select_for_update().get(pk=watcher_id)
        previous = watcher.mode
        if previous == mode:
            raise ModeUnchanged(f"watcher {watcher.name} is already {mode.value}")
        watcher.mode = mode
        watcher.save(update_fields=["mode", "updated_at"])
        forgotten = 0
        if mode == Mode.PAUSED:
            forgotten, _ = SeriesState.objects.filter(
                watcher=watcher, status=SeriesStatus.PENDING
            ).delete()
        record(
            "watcher.mode",
            f"{user.get_username()} {MODE_VERBS[mode]} watcher {watcher.name} "
            f"(was {previous})",
            actor=user,
            address=address,
            details={
                "watcher_id": watcher.pk,
                "from": previous,
                "to": mode.value,
                "pending_series_forgotten": forgotten,
            },
        )
    logger.info(
        "watcher %s %s by %s (was %s)",
        watcher.name,
        MODE_VERBS[mode],
        user.get_username(),
        previous,
    )
    return watcher
