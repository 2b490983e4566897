"""The periodic pass over open incidents: rules, watcher delays, repeats, resolves.

Each pass is safe to run twice or from two beats at once: escalations are
unique per incident and level, and every notification is unique per
incident, transition key and receiver.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from escalations.choices import DeliveryStatus
from escalations.models import Delivery, Escalation, EscalationRule, Receiver
from escalations.services import conditions, delivery, messages
from escalations.services.escalation import escalate, rank
from escalations.services.loss import read_loss
from watchers.choices import Mode
from watchers.models import Incident
from watchers.services.durations import format_duration

logger = logging.getLogger(__name__)

# Resolves older than this are not announced: the pass stays cheap after an outage.
RESOLVE_LOOKBACK = timedelta(days=1)


@dataclass
class EvaluationReport:
    """Incident ids that one pass escalated, notified again or announced resolved."""

    escalated: dict[int, str] = field(default_factory=dict)
    repeated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    errors: int = 0


@dataclass(frozen=True)
class Candidate:
    severity: str
    reason: str
    rule: str | None


def repeat_seconds() -> int:
    return settings.ESCALATION_REPEAT_SECONDS


def evaluate_open_incidents(now: datetime | None = None) -> EvaluationReport:
    """Escalate what rules and watcher delays call for; send repeats and resolves."""
    now = now or timezone.now()
    report = EvaluationReport()
    rules = _enabled_rules()
    # A paused or shadow watcher's open incidents are frozen: nothing judges
    # them while paused, and a shadow watcher sends no notification.
    # Meta-incidents of a data source have no watcher and always count.
    incidents = (
        Incident.objects.filter(resolved_at__isnull=True, is_shadow=False)
        .filter(Q(watcher__isnull=True) | Q(watcher__mode=Mode.ACTIVE))
        .select_related("watcher")
    )
    for incident in incidents:
        try:
            _evaluate_one(incident, rules, now, report)
        except Exception:
            # One broken incident or rule must not stop the others.
            report.errors += 1
            logger.exception("escalation pass failed for incident %s", incident.pk)
    report.resolved = announce_resolved(now)
    return report


def _enabled_rules() -> list[tuple[EscalationRule, conditions.Condition]]:
    parsed = []
    for rule in EscalationRule.objects.filter(enabled=True):
        try:
            parsed.append((rule, conditions.from_json(rule.condition)))
        except conditions.ConditionError as error:
            logger.error("escalation rule %s is skipped: %s", rule.name, error)
    parsed.sort(key=lambda item: rank(item[0].severity), reverse=True)
    return parsed


def _evaluate_one(
    incident: Incident,
    rules: list[tuple[EscalationRule, conditions.Condition]],
    now: datetime,
    report: EvaluationReport,
) -> None:
    candidate = best_candidate(incident, rules, now)
    if candidate is not None and escalate(
        incident.pk, candidate.severity, candidate.reason, candidate.rule, now=now
    ):
        report.escalated[incident.pk] = candidate.severity
        return
    if incident.escalation_severity and send_repeat(incident, now):
        report.repeated.append(incident.pk)


def best_candidate(
    incident: Incident,
    rules: list[tuple[EscalationRule, conditions.Condition]],
    now: datetime,
) -> Candidate | None:
    """Return the highest escalation the incident is due for, above its level."""
    current = rank(incident.escalation_severity)
    best = watcher_delay_candidate(incident, now)
    if best is not None and rank(best.severity) <= current:
        best = None
    facts = conditions.IncidentFacts(incident, now, loss=read_loss)
    # Rules come highest severity first, so the first rule that matches wins.
    for rule, condition in rules:
        floor = max(current, rank(best.severity) if best is not None else -1)
        if rank(rule.severity) <= floor or not _applies(rule, incident):
            continue
        reason = conditions.holds(condition, facts)
        if reason is not None:
            best = Candidate(rule.severity, f"{rule.name}: {reason}", rule.name)
    return best


def _applies(rule: EscalationRule, incident: Incident) -> bool:
    if not rule.groups:
        return True
    return incident.watcher is not None and incident.watcher.group in rule.groups


def watcher_delay_candidate(incident: Incident, now: datetime) -> Candidate | None:
    """Return the watcher's own escalation once the incident outlived its delay.

    A delay of 0 escalates at once.
    """
    watcher = incident.watcher
    if watcher is None or watcher.escalation_delay_seconds is None:
        return None
    delay = watcher.escalation_delay_seconds
    if (now - incident.opened_at).total_seconds() < delay:
        return None
    if delay == 0:
        reason = f"watcher {watcher.name} escalates as soon as an incident opens"
    else:
        reason = f"not resolved within {format_duration(delay)}"
    return Candidate(watcher.severity, reason, None)


def send_repeat(incident: Incident, now: datetime) -> bool:
    """Notify the current level's receivers again every repeat interval."""
    latest = (
        Escalation.objects.filter(
            incident=incident, severity=incident.escalation_severity
        )
        .order_by("-escalated_at")
        .first()
    )
    interval = repeat_seconds()
    if latest is None or interval <= 0:
        return False
    elapsed = int((now - latest.escalated_at).total_seconds())
    count = elapsed // interval
    if count < 1:
        return False
    receivers = Receiver.objects.filter(
        deliveries__incident=incident,
        deliveries__key=f"escalated:{latest.severity}",
    ).distinct()
    message = messages.repeated(incident, latest.severity, count * interval)
    with transaction.atomic():
        created = delivery.record(
            incident, f"repeated:{latest.severity}:{count}", receivers, message, now
        )
    return bool(created)


def announce_resolved(now: datetime) -> list[int]:
    """Tell every receiver notified about a resolved incident that it resolved."""
    incidents = (
        Incident.objects.filter(
            resolved_at__gte=now - RESOLVE_LOOKBACK, deliveries__isnull=False
        )
        .exclude(deliveries__key="resolved")
        .select_related("watcher")
        .distinct()
    )
    announced = []
    for incident in incidents:
        receivers = Receiver.objects.filter(
            pk__in=Delivery.objects.filter(incident=incident)
            .exclude(status=DeliveryStatus.FAILED)
            .values("receiver_id")
        )
        with transaction.atomic():
            created = delivery.record(
                incident, "resolved", receivers, messages.resolved(incident), now
            )
        if created:
            announced.append(incident.pk)
    return announced


def escalate_if_immediate(incident_id: int, now: datetime | None = None) -> bool:
    """Escalate a new incident whose watcher's escalation delay is 0."""
    incident = Incident.objects.select_related("watcher").filter(pk=incident_id).first()
    if incident is None or incident.watcher is None:
        return False
    if incident.watcher.escalation_delay_seconds != 0:
        return False
    candidate = watcher_delay_candidate(incident, now or timezone.now())
    if candidate is None:
        return False
    return escalate(incident.pk, candidate.severity, candidate.reason, now=now)
