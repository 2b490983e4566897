"""The per-cycle write of every evaluated watcher, timed two ways.

The cycle writes the evaluated watchers with one PostgreSQL
``UPDATE ... FROM (VALUES ...)`` per chunk (watchers/services/bulk.py).
Django's ``bulk_update``, timed beside it, builds one
``CASE WHEN id = ... THEN ...`` per field and row in Python; the cycle used
it before, and SQLite still does. Both writes run on the bench watchers,
inside a transaction as the cycle does.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction

from bench.cycles import CycleRunner
from watchers.models import Watcher
from watchers.services.bulk import write_fields

# The fields that evaluation.py's _persist writes for every watcher.
PERSISTED_FIELDS = [
    "health",
    "last_error",
    "consecutive_errors",
    "last_evaluated_at",
    "last_value",
    "last_series_count",
]
CHUNK_SIZE = 500


@dataclass
class WriteComparison:
    """Per repeat: a whole cycle, then both writes of the same watchers."""

    cycles: list[float] = field(default_factory=list)
    bulk_update: list[float] = field(default_factory=list)
    values_update: list[float] = field(default_factory=list)


def compare_watcher_writes(
    runner: CycleRunner, watcher_ids: list[int], repeats: int
) -> WriteComparison:
    """Time a cycle and both writes, interleaved so they see the same load.

    The first repeat is a warm-up and is not kept.
    """
    comparison = WriteComparison()
    for repeat in range(repeats + 1):
        report = runner.cycle(watcher_ids)
        watchers = list(Watcher.objects.filter(id__in=watcher_ids))
        bulk = _timed_write(watchers, repeat, _bulk_update)
        values = _timed_write(watchers, repeat, _values_update)
        if repeat > 0:
            comparison.cycles.append(report.total_seconds)
            comparison.bulk_update.append(bulk)
            comparison.values_update.append(values)
    _check_written(watcher_ids, _marker(repeats))
    return comparison


def _values_update(watchers: list[Watcher], fields: list[str]) -> None:
    write_fields(Watcher, watchers, fields)


def _bulk_update(watchers: list[Watcher], fields: list[str]) -> None:
    Watcher.objects.bulk_update(watchers, fields, batch_size=CHUNK_SIZE)


def _marker(repeat: int) -> float:
    return 0.5 + repeat / 100


def _timed_write(
    watchers: list[Watcher],
    repeat: int,
    write: Callable[[list[Watcher], list[str]], None],
) -> float:
    # A new last_value each time, so each write changes every row as a
    # cycle with moving values does.
    for watcher in watchers:
        watcher.last_value = _marker(repeat)
    started = time.perf_counter()
    with transaction.atomic():
        write(watchers, PERSISTED_FIELDS)
    return time.perf_counter() - started


def _check_written(watcher_ids: list[int], expected: float) -> None:
    found = set(
        Watcher.objects.filter(id__in=watcher_ids).values_list("last_value", flat=True)
    )
    if found != {expected}:
        raise RuntimeError(
            f"the timed writes left last_value at {sorted(found)[:5]}, "
            f"not {expected}: the UPDATE ... FROM (VALUES ...) statement is wrong"
        )
