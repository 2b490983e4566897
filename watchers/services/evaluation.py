"""One evaluation of a set of watchers: claim, query, judge, persist.

A watcher is evaluated at most once per slot: the slot is claimed with a
conditional UPDATE before Prometheus is queried, and results are written only
while the watcher's row still carries that slot, under a row lock. A task
delivered twice therefore does nothing the second time, and a slow task for
an older slot never overwrites what a newer one wrote.
"""

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import record
from watchers.choices import Health, IncidentKind, IncidentState, Mode
from watchers.models import Incident, SeriesState, Watcher
from watchers.services import datasource, live
from watchers.services.batching import BatchItem, BatchOutcome, query_all
from watchers.services.bulk import write_fields
from watchers.services.claims import update_returning_ids
from watchers.services.judging import (
    Rule,
    SeriesMemory,
    Status,
    Verdict,
    judge,
    worse,
)
from watchers.services.prometheus import PrometheusClient, Sample
from watchers.services.promql import PromQLError, check_instant_query
from watchers.signals import incident_opened

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


def rule_for(watcher: Watcher) -> Rule:
    return Rule(
        comparison=watcher.comparison,
        threshold=watcher.threshold,
        window_seconds=watcher.window_seconds,
        resolve_delay_seconds=watcher.effective_resolve_delay_seconds,
        clear_threshold=watcher.clear_threshold,
    )


def claim_slot(watcher_ids: Sequence[int], slot: datetime) -> list[int]:
    """Mark ``slot`` as evaluated for each watcher not yet evaluated for it."""
    return update_returning_ids(
        Watcher,
        watcher_ids,
        {"evaluated_slot": slot},
        "(evaluated_slot IS NULL OR evaluated_slot < %s) AND mode <> %s",
        [slot, Mode.PAUSED],
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

    claimed = claim_slot(watcher_ids, slot)
    watchers = list(Watcher.objects.filter(id__in=claimed))
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
    watchers: list[Watcher],
    outcome: BatchOutcome,
    slot: datetime,
    now: datetime,
    report: CycleReport,
) -> None:
    with transaction.atomic():
        # Lock the rows and keep only those whose slot is still ours.
        current = set(
            Watcher.objects.select_for_update()
            .filter(id__in=[w.id for w in watchers], evaluated_slot=slot)
            .values_list("id", flat=True)
        )
        watchers = [w for w in watchers if w.id in current]
        judged = [w for w in watchers if w.id in outcome.samples]
        writer = _SeriesWriter(judged, slot, now)
        for watcher in watchers:
            _evaluate_one(watcher, outcome, writer, now, report)
        writer.flush(report)
        opened = list(writer.opened_now)
        transaction.on_commit(lambda: _announce_opened(opened))
        write_fields(
            Watcher,
            watchers,
            [
                "health",
                "last_error",
                "consecutive_errors",
                "last_evaluated_at",
                "last_value",
                "last_series_count",
            ],
        )
        report.evaluated = len(watchers)


def _evaluate_one(
    watcher: Watcher,
    outcome: BatchOutcome,
    writer: "_SeriesWriter",
    now: datetime,
    report: CycleReport,
) -> None:
    watcher.last_evaluated_at = now
    error = outcome.errors.get(watcher.id)
    if error is not None:
        _mark_unhealthy(watcher, Health.ERROR, error)
        report.errors += 1
        return

    samples = outcome.samples[watcher.id]
    watcher.last_series_count = len(samples)
    limit = watcher.max_series or settings.MAX_SERIES_PER_WATCHER
    if len(samples) > limit:
        _mark_unhealthy(
            watcher,
            Health.TOO_MANY_SERIES,
            f"the query returned {len(samples)} series, above the limit of {limit}: "
            "narrow it with label matchers or an aggregation, or raise the "
            "watcher's max_series",
        )
        report.too_many_series += 1
        return

    if watcher.health not in (Health.OK, Health.UNKNOWN):
        record(
            "watcher.health",
            f"watcher {watcher.name}: {watcher.health} -> ok",
            details={"watcher_id": watcher.pk, "health": Health.OK},
        )
    watcher.health = Health.OK
    watcher.last_error = ""
    watcher.consecutive_errors = 0
    watcher.last_value = _headline_value(watcher, samples)
    writer.apply(watcher, samples)


def _announce_opened(incident_ids: list[int]) -> None:
    for incident_id in incident_ids:
        incident_opened.send(sender=Incident, incident_id=incident_id)


def _mark_unhealthy(watcher: Watcher, health: str, message: str) -> None:
    # Open incidents and series states stay as they are: a failed query says
    # nothing about whether the condition still holds.
    if watcher.health != health or watcher.last_error != message:
        logger.warning("watcher %s (%s): %s", watcher.name, health, message)
    if watcher.health != health:
        record(
            "watcher.health",
            f"watcher {watcher.name}: {watcher.health} -> {health}: {message}",
            details={"watcher_id": watcher.pk, "health": health},
        )
    watcher.health = health
    watcher.last_error = message
    watcher.consecutive_errors += 1


def _headline_value(watcher: Watcher, samples: list[Sample]) -> float | None:
    """The series value furthest in the breaching direction, for display."""
    value: float | None = None
    for sample in samples:
        value = worse(watcher.comparison, value, sample.value)
    return value


class _SeriesWriter:
    """Collects series-state and incident writes, then writes them in bulk."""

    def __init__(self, watchers: list[Watcher], slot: datetime, now: datetime) -> None:
        # The slot drives the pending and resolve clocks; ``now`` is what
        # people read: when the incident opened or resolved.
        self.slot = slot
        self.now = now
        ids = [w.id for w in watchers]
        self.states: dict[tuple[int, str], SeriesState] = {}
        self.keys_by_watcher: dict[int, set[str]] = defaultdict(set)
        for state in SeriesState.objects.filter(watcher_id__in=ids):
            self.states[(state.watcher_id, state.fingerprint)] = state
            self.keys_by_watcher[state.watcher_id].add(state.fingerprint)
        self.incidents: dict[tuple[int, str], Incident] = {}
        for incident in Incident.objects.filter(
            watcher_id__in=ids, kind=IncidentKind.SERIES, resolved_at__isnull=True
        ):
            assert incident.watcher_id is not None
            self.incidents[(incident.watcher_id, incident.fingerprint)] = incident
            self.keys_by_watcher[incident.watcher_id].add(incident.fingerprint)
        self.opened_now: list[int] = []
        self.created: list[SeriesState] = []
        self.changed: list[SeriesState] = []
        self.deleted: list[int] = []
        self.touched_incidents: list[Incident] = []
        self.revalued: list[int] = []
        self.resolved: list[Incident] = []

    def memories(self, watcher_id: int) -> list[SeriesMemory]:
        found = []
        for key in self.keys_by_watcher.get(watcher_id, ()):
            state = self.states.get((watcher_id, key))
            incident = self.incidents.get((watcher_id, key))
            if state is not None:
                found.append(
                    SeriesMemory(
                        fingerprint=key,
                        labels=state.labels,
                        status=Status(state.status),
                        pending_since=state.pending_since,
                        cleared_since=state.cleared_since,
                        last_value=state.last_value,
                        incident_open=incident is not None,
                    )
                )
            elif incident is not None:
                # An open incident whose state row is gone must still resolve.
                found.append(
                    SeriesMemory(
                        fingerprint=key,
                        labels=incident.labels,
                        status=Status.FIRING,
                        pending_since=incident.opened_at,
                        last_value=incident.last_value,
                        incident_open=True,
                    )
                )
        return found

    def apply(self, watcher: Watcher, samples: list[Sample]) -> None:
        verdict = judge(
            rule_for(watcher), self.memories(watcher.id), samples, self.slot
        )
        for memory in verdict.open:
            self._open(watcher, memory)
        for memory in verdict.keep:
            self._keep(watcher, memory)
        for key in verdict.forget:
            state = self.states.get((watcher.id, key))
            if state is not None:
                self.deleted.append(state.pk)
        for key in verdict.resolve:
            self._resolve(watcher, key)
        self._track_values(watcher, verdict)

    def _keep(self, watcher: Watcher, memory: SeriesMemory) -> None:
        state = self.states.get((watcher.id, memory.fingerprint))
        if state is None:
            state = SeriesState(watcher=watcher, fingerprint=memory.fingerprint)
            self.created.append(state)
        else:
            self.changed.append(state)
        state.labels = memory.labels
        state.status = memory.status
        state.pending_since = memory.pending_since
        state.cleared_since = memory.cleared_since
        state.last_value = _storable(memory.last_value)
        state.last_evaluated_at = self.now
        state.incident = self.incidents.get((watcher.id, memory.fingerprint))

    def _open(self, watcher: Watcher, memory: SeriesMemory) -> None:
        value = _storable(memory.last_value)
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    kind=IncidentKind.SERIES,
                    watcher=watcher,
                    fingerprint=memory.fingerprint,
                    labels=memory.labels,
                    is_shadow=watcher.mode == Mode.SHADOW,
                    threshold=watcher.threshold,
                    comparison=watcher.comparison,
                    severity=watcher.severity,
                    summary=f"{watcher.name} {watcher.comparison} "
                    f"{watcher.threshold:g}",
                    last_value=value,
                    peak_value=value,
                    opened_at=self.now,
                )
        except IntegrityError:
            # The unique constraint says this series already has an open
            # incident; adopt it instead of opening a second one.
            incident = Incident.objects.get(
                watcher=watcher,
                fingerprint=memory.fingerprint,
                kind=IncidentKind.SERIES,
                resolved_at__isnull=True,
            )
        else:
            self.opened_now.append(incident.pk)
            record(
                "incident.opened",
                f"incident {incident.pk} opened: {incident.summary} with value "
                f"{value}{' (shadow)' if incident.is_shadow else ''}",
                incident_id=incident.pk,
                details={"labels": memory.labels, "value": _json_value(value)},
            )
            logger.info(
                "incident %s opened: watcher %s, series %s, value %s %s %s%s",
                incident.pk,
                watcher.name,
                memory.labels,
                value,
                watcher.comparison,
                watcher.threshold,
                " (shadow)" if incident.is_shadow else "",
            )
        self.incidents[(watcher.id, memory.fingerprint)] = incident

    def _resolve(self, watcher: Watcher, key: str) -> None:
        incident = self.incidents.pop((watcher.id, key), None)
        if incident is None:
            return
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = self.now
        self.resolved.append(incident)
        logger.info("incident %s resolved: watcher %s", incident.pk, watcher.name)

    def _track_values(self, watcher: Watcher, verdict: Verdict) -> None:
        for key, value in verdict.observed.items():
            incident = self.incidents.get((watcher.id, key))
            if incident is None or value is None:
                continue
            previous = (incident.last_value, incident.peak_value)
            incident.last_value = _storable(value)
            incident.peak_value = _storable(
                worse(watcher.comparison, incident.peak_value, value)
            )
            self.touched_incidents.append(incident)
            if (incident.last_value, incident.peak_value) != previous:
                self.revalued.append(incident.pk)

    def flush(self, report: CycleReport) -> None:
        SeriesState.objects.filter(pk__in=self.deleted).delete()
        SeriesState.objects.bulk_create(self.created, batch_size=500)
        write_fields(
            SeriesState,
            self.changed,
            [
                "labels",
                "status",
                "pending_since",
                "cleared_since",
                "last_value",
                "last_evaluated_at",
                "incident",
            ],
        )
        write_fields(Incident, self.touched_incidents, ["last_value", "peak_value"])
        if self.resolved:
            Incident.objects.filter(
                Q(pk__in=[i.pk for i in self.resolved]), resolved_at__isnull=True
            ).update(state=IncidentState.RESOLVED, resolved_at=self.now)
        report.opened.extend(self.opened_now)
        report.resolved.extend(i.pk for i in self.resolved)
        resolved_ids = {i.pk for i in self.resolved}
        live.publish_evaluation_after_commit(
            sorted(resolved_ids),
            [pk for pk in self.revalued if pk not in resolved_ids],
        )
        for incident in self.resolved:
            record(
                "incident.resolved",
                f"incident {incident.pk} resolved: {incident.summary}",
                incident_id=incident.pk,
                details={"last_value": _json_value(incident.last_value)},
            )


def _json_value(value: float | None) -> float | str | None:
    """JSON has no infinity; write it as Prometheus does."""
    if value is None or math.isfinite(value):
        return value
    return "+Inf" if value > 0 else "-Inf"


def _storable(value: float | None) -> float | None:
    """PostgreSQL stores NaN and ±Inf in a float column, but JSON and forms do not."""
    if value is None or math.isnan(value):
        return None
    return value
