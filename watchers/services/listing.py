"""The incident list: which incidents it shows, in what order, and row details.

The list page and the live stream both read from here, so a row pushed over
the websocket is built from the same query and the same details as a row
rendered with the page.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from watchers.choices import Health, IncidentState, Mode, Severity
from watchers.models import Incident, Watcher

RECENTLY_RESOLVED = timedelta(hours=24)
INCIDENTS_PER_PAGE = 50


def _severity_rank() -> Case:
    """Sort key that puts critical incidents first and ranks resolved ones alike."""
    whens = [
        When(state=IncidentState.FIRING, severity=severity, then=Value(rank))
        for rank, severity in enumerate(Severity)
    ]
    return Case(*whens, default=Value(len(Severity)), output_field=IntegerField())


def listed_incidents() -> QuerySet[Incident]:
    """Return open incidents, then those resolved in the last 24 hours.

    Open incidents come most severe first, then newest first. Resolved ones come
    by resolution time, newest first.
    """
    resolved_after = timezone.now() - RECENTLY_RESOLVED
    listed = Q(state=IncidentState.FIRING) | Q(
        state=IncidentState.RESOLVED, resolved_at__gte=resolved_after
    )
    open_first = Case(
        When(state=IncidentState.FIRING, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        Incident.objects.filter(listed)
        .select_related("watcher")
        .annotate(open_rank=open_first, severity_rank=_severity_rank())
        .order_by(
            "open_rank",
            "severity_rank",
            F("resolved_at").desc(nulls_last=True),
            "-opened_at",
            "-pk",
        )
    )


def is_listed(incident: Incident) -> bool:
    """Return whether the list page shows the incident: open or resolved recently."""
    if incident.state == IncidentState.FIRING:
        return True
    resolved_after = timezone.now() - RECENTLY_RESOLVED
    return incident.resolved_at is not None and incident.resolved_at >= resolved_after


def open_incident_summary() -> dict[str, Any]:
    """Count open incidents by severity, most severe first, and the shadow ones."""
    rows = list(
        Incident.objects.filter(state=IncidentState.FIRING)
        .values("severity")
        .annotate(count=Count("pk"), shadow=Count("pk", filter=Q(is_shadow=True)))
    )
    counts = {row["severity"]: row["count"] for row in rows}
    by_severity = [
        {"severity": severity.value, "label": severity.label, "count": count}
        for severity in Severity
        if (count := counts.get(severity.value))
    ]
    return {
        "total": sum(counts.values()),
        "by_severity": by_severity,
        "shadow": sum(row["shadow"] for row in rows),
    }


def unhealthy_watchers() -> QuerySet[Watcher]:
    """Return watchers whose last evaluation failed or returned too many series.

    Paused watchers are left out because nothing evaluates them, so their
    health is stale until they are resumed.
    """
    return (
        Watcher.objects.filter(health__in=[Health.ERROR, Health.TOO_MANY_SERIES])
        .exclude(mode=Mode.PAUSED)
        .order_by("-consecutive_errors", "name")
    )


@dataclass(frozen=True)
class StepSummary:
    """The step a row shows: the one running or waiting, else the last one."""

    attempt: int
    position: int
    steps_in_attempt: int
    action: str
    status: str
    status_label: str
    dry_run: bool


def attach_row_details(incidents: Iterable[Incident]) -> list[Incident]:
    """Set ``pending_approvals`` and ``current_step`` on each incident.

    One query reads the runs of every incident with their attempts and
    approvals, so a page of rows costs the same as one row.
    """
    from mitigations.models import ActionRun, Approval, Decision

    listed = list(incidents)
    runs_by_incident: dict[int, list[ActionRun]] = {i.pk: [] for i in listed}
    runs = (
        ActionRun.objects.filter(incident_id__in=list(runs_by_incident))
        .select_related("attempt", "approval")
        .defer("inputs", "output", "error")
    )
    for run in runs:
        runs_by_incident[run.incident_id].append(run)

    for incident in listed:
        incident_runs = runs_by_incident[incident.pk]
        pending: list[Approval] = []
        for run in incident_runs:
            approval = _approval_of(run)
            if approval is not None and approval.decision == Decision.PENDING:
                pending.append(approval)
        pending.sort(key=lambda approval: (approval.requested_at, approval.pk))
        incident.pending_approvals = pending  # type: ignore[attr-defined]
        incident.current_step = current_step(incident_runs)  # type: ignore[attr-defined]
    return listed


def _approval_of(run: Any) -> Any:
    """Return the run's approval, or None for a run that never needed one."""
    from django.core.exceptions import ObjectDoesNotExist

    try:
        return run.approval
    except ObjectDoesNotExist:
        return None


def current_step(runs: list[Any]) -> StepSummary | None:
    """Pick the step a person wants to see first among an incident's runs.

    A running step wins. Otherwise the first step still to run in the newest
    attempt that has one (queued, approved or waiting for approval), and when
    every step has finished, the one that finished last.
    """
    from mitigations.choices import FINISHED_STATUSES, RunStatus

    if not runs:
        return None
    running = [run for run in runs if run.status == RunStatus.RUNNING]
    still_to_run = [run for run in runs if run.status not in FINISHED_STATUSES]
    if running:
        chosen = max(running, key=lambda run: run.attempt.number)
    elif still_to_run:
        chosen = min(still_to_run, key=lambda run: (-run.attempt.number, run.position))
    else:
        chosen = max(
            runs,
            key=lambda run: (run.finished_at or timezone.now(), run.attempt.number),
        )
    in_attempt = sum(1 for run in runs if run.attempt_id == chosen.attempt_id)
    return StepSummary(
        attempt=chosen.attempt.number,
        position=chosen.position,
        steps_in_attempt=in_attempt,
        action=chosen.action,
        status=chosen.status,
        status_label=RunStatus(chosen.status).label,
        dry_run=chosen.dry_run,
    )


def listed_watchers(
    *, group: str = "", mode: str = "", health: str = "", text: str = ""
) -> QuerySet[Watcher]:
    """Return watchers by group and name, each with its count of open incidents.

    Empty filters select everything, and ``text`` matches the name or the query.
    """
    watchers = Watcher.objects.annotate(
        # distinct, because the join with the steps repeats each incident.
        open_incidents=Count(
            "incidents",
            filter=Q(incidents__state=IncidentState.FIRING),
            distinct=True,
        ),
        steps_count=Count("steps", distinct=True),
    ).order_by("group", "name")
    if group:
        watchers = watchers.filter(group=group)
    if mode:
        watchers = watchers.filter(mode=mode)
    if health:
        watchers = watchers.filter(health=health)
    if text:
        watchers = watchers.filter(Q(name__icontains=text) | Q(query__icontains=text))
    return watchers
