"""Bench watchers in the database, and timed calls to ``evaluate_watchers``.

Import this module only after Django is set up (see bench.environment).
"""

import math
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.test import override_settings
from django.utils import timezone

from bench.stack import THRESHOLD, fanout_expression, value_expression
from watchers.models import DataSource, Incident, SeriesState, Watcher
from watchers.services.evaluation import CycleReport, evaluate_watchers
from watchers.services.prometheus import PrometheusClient

PREFIX = "bench-"
INTERVAL_SECONDS = 15
WINDOW_SECONDS = 2 * INTERVAL_SECONDS


@dataclass
class CycleTimes:
    """Reports of the measured cycles of one case, the warm-up left out."""

    reports: list[CycleReport] = field(default_factory=list)

    def total(self) -> list[float]:
        return [r.total_seconds for r in self.reports]

    def query(self) -> list[float]:
        return [r.query_seconds for r in self.reports]

    def requests(self) -> int:
        return int(statistics.median(r.requests for r in self.reports))


def median(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """Return the interpolated 95th percentile, close to the maximum for few samples."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def create_watchers(value_watchers: int, fanouts: list[int]) -> dict[str, list[int]]:
    """Empty the watcher tables, create the watchers and return their ids.

    Keys are "value" (one watcher per bench_value series, in id order) and
    "fanout-<series>".
    """
    _empty_watcher_tables()

    rows = [
        _watcher(f"value-{i:05d}", value_expression(i)) for i in range(value_watchers)
    ]
    for series in fanouts:
        rows.append(
            _watcher(f"fanout-{series}", fanout_expression(series), max_series=series)
        )
    Watcher.objects.bulk_create(rows, batch_size=1000)

    ids = {"value": _ids_by_name(f"{PREFIX}value-")}
    for series in fanouts:
        # By exact name: "fanout-1" is also the start of "fanout-1000".
        fanout = Watcher.objects.get(name=f"{PREFIX}fanout-{series}")
        ids[f"fanout-{series}"] = [fanout.pk]
    return ids


def _empty_watcher_tables() -> None:
    # TRUNCATE ... CASCADE also empties the tables that point at incidents
    # and watchers (mitigations, escalations), which ORM deletes would have
    # to visit one model at a time. environment.prepare_django refuses a
    # database whose name does not say it is a benchmark's.
    tables = [
        connection.ops.quote_name(model._meta.db_table)
        for model in (SeriesState, Incident, Watcher, DataSource)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def _watcher(name: str, query: str, max_series: int | None = None) -> Watcher:
    return Watcher(
        name=PREFIX + name,
        group="bench",
        query=query,
        threshold=THRESHOLD,
        window_seconds=WINDOW_SECONDS,
        interval_seconds=INTERVAL_SECONDS,
        max_series=max_series,
    )


def _ids_by_name(prefix: str) -> list[int]:
    found = Watcher.objects.filter(name__startswith=prefix).order_by("name")
    return list(found.values_list("id", flat=True))


class SlotClock:
    """Hands out evaluation slots one interval apart, each later than the last.

    A watcher evaluates a slot once, so every cycle needs a slot of its own.
    """

    def __init__(self) -> None:
        self.base = timezone.now().replace(microsecond=0)
        self.issued = 0

    def next(self) -> datetime:
        self.issued += 1
        return self.base + timedelta(seconds=self.issued * INTERVAL_SECONDS)


class CycleRunner:
    """Runs cycles against one Prometheus, optionally with other settings."""

    def __init__(self, prometheus_url: str) -> None:
        self.client = PrometheusClient(url=prometheus_url, timeout_seconds=30)
        self.clock = SlotClock()

    def cycle(
        self,
        watcher_ids: list[int],
        batch_size: int | None = None,
        concurrency: int | None = None,
    ) -> CycleReport:
        """Run one cycle, with other batching settings when they are given."""
        overrides = {}
        if batch_size is not None:
            overrides["EVALUATION_BATCH_SIZE"] = batch_size
        if concurrency is not None:
            overrides["EVALUATION_CONCURRENCY"] = concurrency
        with override_settings(**overrides):
            report = evaluate_watchers(
                watcher_ids, self.clock.next(), client=self.client
            )
        if report.evaluated != len(watcher_ids) or report.errors:
            raise RuntimeError(
                f"a cycle evaluated {report.evaluated} of {len(watcher_ids)} "
                f"watchers with {report.errors} errors; see the log above"
            )
        return report

    def measure(
        self,
        watcher_ids: list[int],
        cycles: int,
        batch_size: int | None = None,
        concurrency: int | None = None,
    ) -> CycleTimes:
        """Run ``cycles`` cycles and keep all but the first, a warm-up."""
        times = CycleTimes()
        for index in range(cycles):
            report = self.cycle(watcher_ids, batch_size, concurrency)
            if index > 0:
                times.reports.append(report)
        return times


def count_open_incidents(watcher_ids: list[int]) -> int:
    return Incident.objects.filter(
        watcher_id__in=watcher_ids, resolved_at__isnull=True
    ).count()


def breaching_indexes(watchers: int, share: float) -> list[int]:
    """Spread ``share`` of ``watchers`` evenly, e.g. every tenth for 0.1."""
    step = max(1, round(1 / share))
    return list(range(0, watchers, step))[: math.ceil(watchers * share)]
