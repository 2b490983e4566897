"""An incident's timeline, built from the rows the product already keeps.

Each step (ActionRun), attempt, approval, escalation and notification
(Delivery) is a row with its own times and status. The audit log adds what
no such row records, such as a step proposed by hand. The timeline reads
them in a fixed number of queries, whatever the incident's length.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from watchers.models import Incident, SeriesState
from watchers.services.formatting import (
    duration_text,
    incident_unit,
    metric_value_with_unit,
)

# Audit kinds that a row of the timeline already shows in more detail.
SHOWN_BY_ROWS = frozenset(
    {
        "incident.opened",
        "incident.resolved",
        "step.finished",
        "approval.decided",
        "approval.expired",
        "escalation.raised",
        "notification.sent",
        "notification.failed",
    }
)
MAX_AUDIT_EVENTS = 200


@dataclass
class Entry:
    """One moment of the timeline: what happened, its status and its details."""

    at: datetime
    kind: str
    title: str
    status: str = ""
    status_label: str = ""
    actor: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    order: int = 0


def incident_timeline(incident: Incident) -> list[Entry]:
    """Return the incident's entries, oldest first."""
    entries = [
        *_incident_entries(incident),
        *_attempt_entries(incident),
        *_run_entries(incident),
        *_approval_entries(incident),
        *_escalation_entries(incident),
        *_delivery_entries(incident),
        *_audit_entries(incident),
    ]
    return sorted(entries, key=lambda entry: (entry.at, entry.order))


def _incident_entries(incident: Incident) -> list[Entry]:
    unit = incident_unit(incident)
    entries = []
    state = (
        SeriesState.objects.filter(incident=incident)
        .only("pending_since", "status")
        .first()
    )
    if state is not None and state.pending_since < incident.opened_at:
        entries.append(
            Entry(
                at=state.pending_since,
                kind="pending",
                title="The series started to breach (pending)",
                facts=[("window", duration_text(_window_seconds(incident)))],
                order=0,
            )
        )
    entries.append(
        Entry(
            at=incident.opened_at,
            kind="opened",
            title="Incident opened"
            + (" by a shadow watcher: nothing runs" if incident.is_shadow else ""),
            status="firing",
            status_label="firing",
            facts=[
                ("rule", incident.summary or "—"),
                ("peak so far", metric_value_with_unit(incident.peak_value, unit)),
            ],
            order=1,
        )
    )
    if incident.resolved_at is not None:
        entries.append(
            Entry(
                at=incident.resolved_at,
                kind="resolved",
                title="Incident resolved",
                status="resolved",
                status_label="resolved",
                facts=[
                    (
                        "open for",
                        duration_text(
                            (incident.resolved_at - incident.opened_at).total_seconds()
                        ),
                    ),
                    ("last value", metric_value_with_unit(incident.last_value, unit)),
                ],
                order=9,
            )
        )
    return entries


def _window_seconds(incident: Incident) -> int:
    return incident.watcher.window_seconds if incident.watcher is not None else 0


def _attempt_entries(incident: Incident) -> list[Entry]:
    from mitigations.models import MitigationAttempt

    entries = []
    for attempt in MitigationAttempt.objects.filter(incident=incident):
        if attempt.finished_at is None:
            continue
        entries.append(
            Entry(
                at=attempt.finished_at,
                kind="attempt",
                title=f"Attempt {attempt.number} ended: {attempt.get_status_display()}",
                status=attempt.status,
                status_label=attempt.status,
                facts=[("note", attempt.note)] if attempt.note else [],
                order=6,
            )
        )
    return entries


def _run_entries(incident: Incident) -> list[Entry]:
    from mitigations.models import ActionRun

    runs = (
        ActionRun.objects.filter(incident=incident)
        .select_related("attempt")
        .order_by("attempt__number", "position")
    )
    steps_per_attempt: dict[int, int] = {}
    listed = list(runs)
    for run in listed:
        steps_per_attempt[run.attempt_id] = steps_per_attempt.get(run.attempt_id, 0) + 1
    return [_run_entry(run, steps_per_attempt[run.attempt_id]) for run in listed]


def _run_entry(run: Any, steps_in_attempt: int) -> Entry:
    facts = [
        ("attempt", str(run.attempt.number)),
        ("risk", run.get_risk_display() or "unknown"),
        ("queued", _clock(run.queued_at)),
    ]
    if run.started_at:
        facts.append(("started", _clock(run.started_at)))
    if run.finished_at:
        facts.append(("finished", _clock(run.finished_at)))
    if run.duration_seconds is not None:
        facts.append(("duration", f"{run.duration_seconds:.2f} s"))
    if run.tries:
        facts.append(("tries", str(run.tries)))
    if run.dry_run:
        facts.append(("dry run", "yes: recorded, not executed"))
    target = f" on {run.target}" if run.target else ""
    return Entry(
        at=run.started_at or run.queued_at,
        kind="step",
        title=f"Step {run.position} of {steps_in_attempt}: {run.action}{target}",
        status=run.status,
        status_label=run.get_status_display(),
        facts=facts,
        blocks=[("parameters", _json(run.inputs)), ("output", _json(run.output))],
        error=run.error,
        order=3,
    )


def _approval_entries(incident: Incident) -> list[Entry]:
    from mitigations.models import Approval, Decision

    approvals = Approval.objects.filter(run__incident=incident).select_related(
        "run", "requested_by", "decided_by"
    )
    entries = []
    for approval in approvals:
        requester = approval.requested_by
        entries.append(
            Entry(
                at=approval.requested_at,
                kind="approval-request",
                title=f"Approval requested for {approval.run.action}",
                actor=requester.get_username() if requester else "the automation",
                facts=[("expires", _clock(approval.expires_at))],
                order=4,
            )
        )
        if approval.decision == Decision.PENDING or approval.decided_at is None:
            continue
        decider = approval.decided_by
        facts = []
        if approval.decided_from:
            facts.append(("from", approval.decided_from))
        if approval.comment:
            facts.append(("comment", approval.comment))
        entries.append(
            Entry(
                at=approval.decided_at,
                kind="decision",
                title=f"{approval.run.action}: {approval.get_decision_display()}",
                status=approval.decision,
                status_label=approval.decision,
                actor=decider.get_username() if decider else "",
                facts=facts,
                order=5,
            )
        )
    return entries


def _escalation_entries(incident: Incident) -> list[Entry]:
    from escalations.models import Escalation

    return [
        Entry(
            at=escalation.escalated_at,
            kind="escalation",
            title=f"Escalated to {escalation.get_severity_display()}",
            status="escalated",
            status_label=escalation.severity,
            facts=[
                ("reason", escalation.reason),
                ("rule", escalation.rule or "the watcher's own delay"),
                ("steps held for a decision", str(len(escalation.held_run_ids))),
            ],
            order=2,
        )
        for escalation in Escalation.objects.filter(incident=incident)
    ]


def _delivery_entries(incident: Incident) -> list[Entry]:
    from escalations.models import Delivery

    deliveries = Delivery.objects.filter(incident=incident).select_related("receiver")
    entries = []
    for delivery in deliveries:
        facts = [("key", delivery.key), ("tries", str(delivery.attempts))]
        if delivery.response_code is not None:
            facts.append(("HTTP status", str(delivery.response_code)))
        if delivery.finished_at is not None:
            facts.append(("finished", _clock(delivery.finished_at)))
        entries.append(
            Entry(
                at=delivery.created_at,
                kind="notification",
                title=f"Notification ({delivery.get_transition_display()}) "
                f"to {delivery.receiver.name}",
                status=delivery.status,
                status_label=delivery.get_status_display(),
                facts=facts,
                error=delivery.last_error,
                order=7,
            )
        )
    return entries


def _audit_entries(incident: Incident) -> list[Entry]:
    from audit.models import AuditEvent

    events = (
        AuditEvent.objects.filter(incident_number=incident.pk)
        .exclude(kind__in=SHOWN_BY_ROWS)
        .order_by("-created_at", "-pk")[:MAX_AUDIT_EVENTS]
    )
    return [
        Entry(
            at=event.created_at,
            kind="event",
            title=event.summary,
            status_label=event.kind,
            actor=event.actor_name,
            facts=[("from", event.address)] if event.address else [],
            order=8,
        )
        for event in events
    ]


def _clock(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> str:
    if not value:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, default=str)
