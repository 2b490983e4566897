"""One evaluation of a set of watchers: claim, query, judge, persist.

A watcher is evaluated at most once per slot. The slot is claimed with a
conditional UPDATE before Prometheus is queried, and that UPDATE also
returns the columns the evaluation reads (claimed.py). Results are written
only while the watcher's row still carries that slot. The first statement
of the persisting transaction updates the watcher rows on the condition
that ``evaluated_slot`` is still this slot, which locks them until the
transaction ends, and series states and incidents are written only for the
rows it updated. That one UPDATE takes the row locks and re-checks the slot
under them, as a SELECT ... FOR UPDATE followed by an UPDATE would. A task
delivered twice therefore does nothing the second time, and a slow task for
an older slot never overwrites what a newer one wrote.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import record
from watchers.choices import Health
from watchers.models import Incident, Watcher
from watchers.services import datasource
from watchers.services.batching import BatchItem, BatchOutcome, query_all
from watchers.services.claimed import ClaimedWatcher, claim_slot
from watchers.services.judging import Rule
from watchers.services.prometheus import PrometheusClient
from watchers.services.promql import PromQLError, check_instant_query
from watchers.services.results import WatcherResult, result_for, write_results
from watchers.services.series import SeriesWriter
from watchers.signals import incident_opened, incident_resolved

logger = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one call to ``evaluate_watchers`` did, for logs and benchmarks."""

    requested: int = 0
    evaluated: int = 0
    requests: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    errors: int = 0
    too_many_series: int = 0
    query_seconds: float = 0.0
    total_seconds: float = 0.0


@lru_cache(maxsize=20000)
def _is_scalar(query: str) -> bool:
    try:
        return check_instant_query(query) == "scalar"
    except PromQLError:
        return False  # Prometheus will reject it and the watcher shows the error


def rule_for(watcher: Watcher | ClaimedWatcher) -> Rule:
    return Rule(
        comparison=watcher.comparison,
        threshold=watcher.threshold,
        window_seconds=watcher.window_seconds,
        resolve_delay_seconds=watcher.effective_resolve_delay_seconds,
        clear_threshold=watcher.clear_threshold,
    )


def evaluate_watchers(
    watcher_ids: Sequence[int],
    slot: datetime | None = None,
    now: datetime | None = None,
    client: PrometheusClient | None = None,
) -> CycleReport:
    """Evaluate the watchers for ``slot``; the query runs at ``now``.

    ``slot`` is the evaluation's time on the watcher's schedule and drives the
    pending and resolve clocks; ``now`` is when Prometheus is asked about.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    slot = (slot or now).replace(microsecond=0)
    client = client or PrometheusClient()
    report = CycleReport(requested=len(watcher_ids))

    watchers = claim_slot(watcher_ids, slot)
    if not watchers:
        report.total_seconds = time.perf_counter() - started
        return report

    items = [BatchItem(w.id, w.query, _is_scalar(w.query)) for w in watchers]
    query_started = time.perf_counter()
    outcome = query_all(
        client,
        items,
        at=now,
        batch_size=settings.EVALUATION_BATCH_SIZE,
        concurrency=settings.EVALUATION_CONCURRENCY,
    )
    report.query_seconds = time.perf_counter() - query_started
    report.requests = outcome.requests

    _persist(watchers, outcome, slot, now, report)
    _record_datasource(client.url, outcome, now, report)
    report.total_seconds = time.perf_counter() - started
    logger.info(
        "evaluated %s of %s watchers for slot %s in %.3fs (%s requests, "
        "%s opened, %s resolved, %s errors)",
        report.evaluated,
        report.requested,
        slot.isoformat(),
        report.total_seconds,
        report.requests,
        len(report.opened),
        len(report.resolved),
        report.errors,
    )
    return report


def _record_datasource(
    url: str, outcome: BatchOutcome, now: datetime, report: CycleReport
) -> None:
    if outcome.unavailable is not None:
        incident = datasource.record_failure(url, outcome.unavailable, now)
        if incident is not None:
            report.opened.append(incident.pk)
    else:
        datasource.record_success(url, now)


def _persist(
    claimed: list[ClaimedWatcher],
    outcome: BatchOutcome,
    slot: datetime,
    now: datetime,
    report: CycleReport,
) -> None:
    results = {watcher.id: result_for(watcher, outcome) for watcher in claimed}
    with transaction.atomic():
        # The first write: it locks the rows and skips those whose slot a
        # newer claim has taken since.
        written = write_results(results, slot, now)
        watchers = [w for w in claimed if w.id in written]
        for watcher in watchers:
            _report_health(watcher, results[watcher.id], report)

        judged = [w for w in watchers if results[w.id].samples is not None]
        writer = SeriesWriter([w.id for w in judged], slot, now)
        for watcher in judged:
            samples = results[watcher.id].samples
            assert samples is not None
            writer.apply(watcher, rule_for(watcher), samples)
        writer.flush()

        opened = list(writer.opened_now)
        resolved = [incident.pk for incident in writer.resolved]
        transaction.on_commit(lambda: _announce(opened, resolved))
        report.opened.extend(opened)
        report.resolved.extend(resolved)
        report.evaluated = len(watchers)


def _report_health(
    watcher: ClaimedWatcher, result: WatcherResult, report: CycleReport
) -> None:
    """Count, log and audit the watcher's health when it is unhealthy or changed."""
    if result.health == Health.ERROR:
        report.errors += 1
    elif result.health == Health.TOO_MANY_SERIES:
        report.too_many_series += 1
    if result.health != Health.OK and (
        watcher.health != result.health or watcher.last_error != result.last_error
    ):
        logger.warning(
            "watcher %s (%s): %s", watcher.name, result.health, result.last_error
        )
    if watcher.health == result.health:
        return
    if result.health == Health.OK and watcher.health == Health.UNKNOWN:
        return  # a first successful evaluation is not news
    summary = f"watcher {watcher.name}: {watcher.health} -> {result.health}"
    if result.health != Health.OK:
        summary += f": {result.last_error}"
    record(
        "watcher.health",
        summary,
        details={"watcher_id": watcher.id, "health": result.health},
    )


def _announce(opened: list[int], resolved: list[int]) -> None:
    for incident_id in opened:
        incident_opened.send(sender=Incident, incident_id=incident_id)
    for incident_id in resolved:
        incident_resolved.send(sender=Incident, incident_id=incident_id)
