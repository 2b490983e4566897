"""Series states and incidents of the evaluated watchers, read and written in bulk.

A series has a state row only while it is pending, firing or resolving, so
in a steady state the two reads return nothing and nothing is written.
Incidents open one at a time, each behind the unique constraint that allows
one open incident per series.
"""

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL

from audit.services import record
from watchers.choices import IncidentKind, IncidentState, Mode
from watchers.models import Incident, SeriesState
from watchers.services import live
from watchers.services.bulk import write_fields
from watchers.services.claimed import ClaimedWatcher
from watchers.services.judging import Rule, SeriesMemory, Status, Verdict, judge, worse
from watchers.services.prometheus import Sample

logger = logging.getLogger(__name__)


def _of_watchers(ids: Sequence[int]) -> Q | RawSQL:
    """Select rows of these watchers, as one array parameter on PostgreSQL."""
    if connection.vendor == "postgresql":
        return RawSQL("watcher_id = ANY(%s)", (list(ids),), BooleanField())
    return Q(watcher_id__in=ids)


class SeriesWriter:
    """Collects series-state and incident writes, then writes them in bulk."""

    def __init__(
        self, watcher_ids: Sequence[int], slot: datetime, now: datetime
    ) -> None:
        # The slot drives the pending and resolve clocks; ``now`` is what
        # people read: when the incident opened or resolved.
        self.slot = slot
        self.now = now
        self.states: dict[tuple[int, str], SeriesState] = {}
        self.keys_by_watcher: dict[int, set[str]] = defaultdict(set)
        self.incidents: dict[tuple[int, str], Incident] = {}
        if watcher_ids:
            self._load(watcher_ids)
        self.opened_now: list[int] = []
        self.created: list[SeriesState] = []
        self.changed: list[SeriesState] = []
        self.deleted: list[int] = []
        self.touched_incidents: list[Incident] = []
        self.resolved: list[Incident] = []

    def _load(self, watcher_ids: Sequence[int]) -> None:
        for state in SeriesState.objects.filter(_of_watchers(watcher_ids)):
            self.states[(state.watcher_id, state.fingerprint)] = state
            self.keys_by_watcher[state.watcher_id].add(state.fingerprint)
        open_incidents = Incident.objects.filter(
            _of_watchers(watcher_ids),
            kind=IncidentKind.SERIES,
            resolved_at__isnull=True,
        )
        for incident in open_incidents:
            assert incident.watcher_id is not None
            self.incidents[(incident.watcher_id, incident.fingerprint)] = incident
            self.keys_by_watcher[incident.watcher_id].add(incident.fingerprint)

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

    def apply(self, watcher: ClaimedWatcher, rule: Rule, samples: list[Sample]) -> None:
        verdict = judge(rule, self.memories(watcher.id), samples, self.slot)
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

    def _keep(self, watcher: ClaimedWatcher, memory: SeriesMemory) -> None:
        state = self.states.get((watcher.id, memory.fingerprint))
        if state is None:
            state = SeriesState(watcher_id=watcher.id, fingerprint=memory.fingerprint)
            self.created.append(state)
        else:
            self.changed.append(state)
        state.labels = memory.labels
        state.status = memory.status
        state.pending_since = memory.pending_since
        state.cleared_since = memory.cleared_since
        state.last_value = storable(memory.last_value)
        state.last_evaluated_at = self.now
        state.incident = self.incidents.get((watcher.id, memory.fingerprint))

    def _open(self, watcher: ClaimedWatcher, memory: SeriesMemory) -> None:
        value = storable(memory.last_value)
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    kind=IncidentKind.SERIES,
                    watcher_id=watcher.id,
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
                watcher_id=watcher.id,
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
                details={"labels": memory.labels, "value": json_value(value)},
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

    def _resolve(self, watcher: ClaimedWatcher, key: str) -> None:
        incident = self.incidents.pop((watcher.id, key), None)
        if incident is None:
            return
        incident.state = IncidentState.RESOLVED
        incident.resolved_at = self.now
        self.resolved.append(incident)
        logger.info("incident %s resolved: watcher %s", incident.pk, watcher.name)

    def _track_values(self, watcher: ClaimedWatcher, verdict: Verdict) -> None:
        for key, value in verdict.observed.items():
            incident = self.incidents.get((watcher.id, key))
            if incident is None or value is None:
                continue
            last_value = storable(value)
            peak_value = storable(worse(watcher.comparison, incident.peak_value, value))
            if (last_value, peak_value) == (incident.last_value, incident.peak_value):
                continue
            incident.last_value = last_value
            incident.peak_value = peak_value
            self.touched_incidents.append(incident)

    def flush(self) -> None:
        """Write the collected changes and log the resolved incidents."""
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
        # Bulk writes send no post_save, so this publishes to open dashboards.
        resolved_ids = {incident.pk for incident in self.resolved}
        live.publish_evaluation_after_commit(
            sorted(resolved_ids),
            [i.pk for i in self.touched_incidents if i.pk not in resolved_ids],
        )
        for incident in self.resolved:
            record(
                "incident.resolved",
                f"incident {incident.pk} resolved: {incident.summary}",
                incident_id=incident.pk,
                details={"last_value": json_value(incident.last_value)},
            )


def json_value(value: float | None) -> float | str | None:
    """JSON has no infinity; write it as Prometheus does."""
    if value is None or math.isfinite(value):
        return value
    return "+Inf" if value > 0 else "-Inf"


def storable(value: float | None) -> float | None:
    """PostgreSQL stores NaN and ±Inf in a float column, but JSON and forms do not."""
    if value is None or math.isnan(value):
        return None
    return value
