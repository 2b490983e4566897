"""Each watcher's health and values after one evaluation, and their write.

``result_for`` is pure. It decides health, error text and the values shown
for the watcher from the query outcome. ``write_results`` writes every
watcher's result in one statement that also checks the slot, which is what
lets the evaluation keep only the watchers it still owns.
"""

from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import connection

from watchers.choices import Health
from watchers.models import Watcher
from watchers.services.batching import BatchOutcome
from watchers.services.bulk import update_columns
from watchers.services.claimed import ClaimedWatcher
from watchers.services.judging import worse
from watchers.services.prometheus import Sample


class WatcherResult(NamedTuple):
    """The watcher row's new health and values, and the samples to judge.

    ``samples`` is None when the watcher is unhealthy. A failed query, or one
    with too many series, does not show whether a condition still holds, so
    the watcher's series states and incidents stay as they are.
    """

    health: str
    last_error: str
    consecutive_errors: int
    last_value: float | None
    last_series_count: int | None
    samples: list[Sample] | None = None


def result_for(watcher: ClaimedWatcher, outcome: BatchOutcome) -> WatcherResult:
    """Decide the watcher's health and values from its query's outcome."""
    error = outcome.errors.get(watcher.id)
    if error is not None:
        return _unhealthy(watcher, Health.ERROR, error, watcher.last_series_count)

    samples = outcome.samples[watcher.id]
    limit = watcher.max_series or settings.MAX_SERIES_PER_WATCHER
    if len(samples) > limit:
        message = (
            f"the query returned {len(samples)} series, above the limit of {limit}: "
            "narrow it with label matchers or an aggregation, or raise the "
            "watcher's max_series"
        )
        return _unhealthy(watcher, Health.TOO_MANY_SERIES, message, len(samples))

    return WatcherResult(
        health=Health.OK,
        last_error="",
        consecutive_errors=0,
        last_value=headline_value(watcher.comparison, samples),
        last_series_count=len(samples),
        samples=samples,
    )


def _unhealthy(
    watcher: ClaimedWatcher, health: str, message: str, series_count: int | None
) -> WatcherResult:
    return WatcherResult(
        health=health,
        last_error=message,
        consecutive_errors=watcher.consecutive_errors + 1,
        last_value=watcher.last_value,
        last_series_count=series_count,
    )


def headline_value(comparison: str, samples: list[Sample]) -> float | None:
    """Return the series value furthest in the breaching direction, for display."""
    value: float | None = None
    for sample in samples:
        value = worse(comparison, value, sample.value)
    return value


def write_results(
    results: dict[int, WatcherResult], slot: datetime, now: datetime
) -> set[int]:
    """Write each watcher's result while its row still carries ``slot``.

    Returns the ids written. On PostgreSQL the UPDATE re-checks
    ``evaluated_slot`` on the row's latest version and keeps the row locked
    until the transaction ends. A newer claim of the watcher therefore waits
    for this transaction, and a newer claim that committed first leaves the
    row out. On SQLite the transaction holds the database's write lock.

    NOTE: when a cycle outlasts its interval, this UPDATE and the next
    slot's claim lock the same rows, and PostgreSQL picks no fixed row order
    for either. It can then abort one of them as a deadlock. That task's
    watchers are evaluated at their next slot, and no incident is lost.
    """
    ids = list(results)
    values = list(results.values())
    evaluated_at = Watcher._meta.get_field("last_evaluated_at")
    stamp = evaluated_at.get_db_prep_save(now, connection)
    written = update_columns(
        Watcher,
        ids,
        {
            "health": [r.health for r in values],
            "last_error": [r.last_error for r in values],
            "consecutive_errors": [r.consecutive_errors for r in values],
            "last_value": [r.last_value for r in values],
            "last_series_count": [r.last_series_count for r in values],
        },
        shared={"last_evaluated_at": stamp},
        condition="evaluated_slot = %s",
        condition_params=[connection.ops.adapt_datetimefield_value(slot)],
    )
    return set(written)
