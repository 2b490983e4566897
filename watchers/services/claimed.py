"""The slot claim, which also returns what the evaluation reads of each watcher.

Claiming a slot is a conditional UPDATE of ``evaluated_slot``. Its
``RETURNING`` clause returns the columns the evaluation reads, so a cycle of
a thousand watchers needs no second SELECT and no model instances.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from watchers.choices import Mode
from watchers.models import Watcher, effective_resolve_delay
from watchers.services.claims import update_returning


class ClaimedWatcher(NamedTuple):
    """A watcher's columns as its slot claim left them; names match the model.

    A tuple, because a thousand of them are built per cycle from database
    rows, and a tuple is the cheapest object to build from one.
    """

    id: int
    name: str
    query: str
    comparison: str
    threshold: float
    clear_threshold: float | None
    window_seconds: int
    interval_seconds: int
    resolve_delay_seconds: int | None
    severity: str
    mode: str
    max_series: int | None
    health: str
    last_error: str
    consecutive_errors: int
    last_value: float | None
    last_series_count: int | None

    @property
    def effective_resolve_delay_seconds(self) -> int:
        return effective_resolve_delay(
            self.resolve_delay_seconds, self.interval_seconds
        )


COLUMNS = list(ClaimedWatcher._fields)


def claim_slot(watcher_ids: Sequence[int], slot: datetime) -> list[ClaimedWatcher]:
    """Mark ``slot`` as evaluated for each watcher not yet evaluated for it.

    Returns the watchers claimed; paused ones and those already evaluated
    for this slot or a later one are left out.
    """
    rows = update_returning(
        Watcher,
        watcher_ids,
        {"evaluated_slot": slot},
        "(evaluated_slot IS NULL OR evaluated_slot < %s) AND mode <> %s",
        [slot, Mode.PAUSED],
        returning=COLUMNS,
    )
    return [ClaimedWatcher._make(row) for row in rows]
