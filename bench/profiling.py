"""Where the time of a cycle goes, from cProfile.

cProfile records only the thread that enabled it, so profiled cycles run with
EVALUATION_CONCURRENCY=1: the queries then run on the main thread too.
cProfile also slows Python code more than waiting on sockets, so the shares
it gives overstate pure-Python steps somewhat.
"""

import cProfile
import pstats
from dataclasses import dataclass

from django.test import override_settings

from bench.cycles import CycleRunner

# (label, file path suffix, function name); the cumulative time of each is
# read from the profile. Nested entries are part of the one above them.
STEPS = [
    ("whole cycle", "watchers/services/evaluation.py", "evaluate_watchers"),
    (
        "claim the slot (UPDATE ... RETURNING)",
        "watchers/services/claimed.py",
        "claim_slot",
    ),
    ("query Prometheus (query_all)", "watchers/services/batching.py", "query_all"),
    ("  HTTP request and wait (requests Session.send)", "requests/sessions.py", "send"),
    ("  JSON decoding (json.loads)", "json/__init__.py", "loads"),
    (
        "  samples from JSON (parse_result)",
        "watchers/services/prometheus.py",
        "parse_result",
    ),
    ("  samples split per watcher", "watchers/services/batching.py", "_split_samples"),
    ("persist results (_persist)", "watchers/services/evaluation.py", "_persist"),
    (
        "  health and values per watcher (result_for)",
        "watchers/services/results.py",
        "result_for",
    ),
    (
        "  write watcher rows (write_results)",
        "watchers/services/results.py",
        "write_results",
    ),
    ("  load series states and incidents", "watchers/services/series.py", "_load"),
    ("  judge series (judging.judge)", "watchers/services/judging.py", "judge"),
    (
        "  write series states and incidents (flush)",
        "watchers/services/series.py",
        "flush",
    ),
    (
        "record data source health",
        "watchers/services/evaluation.py",
        "_record_datasource",
    ),
    (
        "every SQL statement, across steps (psycopg execute)",
        "psycopg/cursor.py",
        "execute",
    ),
]


@dataclass
class ProfileLine:
    label: str
    seconds_per_cycle: float
    share: float


def profile_cycles(
    runner: CycleRunner, watcher_ids: list[int], cycles: int, batch_size: int
) -> list[ProfileLine]:
    """Profile ``cycles`` cycles after one unprofiled warm-up cycle."""
    with override_settings(EVALUATION_BATCH_SIZE=batch_size, EVALUATION_CONCURRENCY=1):
        runner.cycle(watcher_ids)
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            for _ in range(cycles):
                runner.cycle(watcher_ids)
        finally:
            profiler.disable()
    return _summarize(pstats.Stats(profiler), cycles)


def _summarize(stats: pstats.Stats, cycles: int) -> list[ProfileLine]:
    table = stats.stats  # type: ignore[attr-defined]
    whole = _cumulative(table, STEPS[0][1], STEPS[0][2]) or 1.0
    lines = []
    for label, path, function in STEPS:
        seconds = _cumulative(table, path, function)
        lines.append(ProfileLine(label, seconds / cycles, seconds / whole))
    return lines


def _cumulative(table: dict, path: str, function: str) -> float:
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, _callers) in table.items():
        if name == function and filename.endswith(path):
            total += cumulative
    return total
