"""Escalating incidents: raise the level, hold the automation, notify by route.

An incident is escalated at most once per severity (a unique constraint on
Escalation), and only upwards: the highest severity wins. The incident row is
locked while it is escalated, so two beats or workers cannot both notify.
"""

import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from escalations.choices import NEXT_SEVERITY, SEVERITY_RANK
from escalations.models import Escalation, EscalationRule, Receiver
from escalations.services import auditing, delivery, messages
from watchers.choices import Severity
from watchers.models import Incident

logger = logging.getLogger(__name__)


def rank(severity: str) -> int:
    """Order of a severity; an empty one (never escalated) is below all."""
    return SEVERITY_RANK.get(severity, -1)  # type: ignore[call-overload]


def route_receivers(severity: str) -> list[Receiver]:
    return list(
        Receiver.objects.filter(routes__severity=severity, enabled=True).order_by(
            "routes__position", "name"
        )
    )


def _receivers_for(severity: str, rule: str | None) -> list[Receiver]:
    receivers = route_receivers(severity)
    if rule:
        found = EscalationRule.objects.filter(name=rule).first()
        if found is not None:
            receivers += list(found.receivers.filter(enabled=True))
    if not receivers:
        logger.warning(
            "no receiver is routed for severity %s: add a route in the admin or "
            "the routing of the escalation file",
            severity,
        )
    return receivers


def escalate(
    incident_id: int,
    severity: str,
    reason: str,
    rule: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Escalate the incident to ``severity``; return False if it was no raise.

    Marks the incident escalated, puts its queued steps on hold (or, when
    every automatic attempt failed, starts one more whose steps wait for a
    decision), records the escalation and notifies the severity's route and
    the rule's receivers.
    Shadow and resolved incidents are never escalated.
    """
    from mitigations.services.chain import hold_remaining, offer_retry
    from mitigations.tasks import run_mitigation_step

    now = now or timezone.now()
    with transaction.atomic():
        incident = (
            Incident.objects.select_for_update(of=("self",))
            .select_related("watcher")
            .filter(pk=incident_id)
            .first()
        )
        if not _can_raise(incident, severity):
            return False
        assert incident is not None
        incident.escalated_at = incident.escalated_at or now
        incident.escalation_severity = severity
        incident.save(update_fields=["escalated_at", "escalation_severity"])

        held = hold_remaining(incident.pk)
        retry = offer_retry(incident.pk)
        if retry is not None:
            retry_id = retry.pk
            transaction.on_commit(lambda: run_mitigation_step.delay(retry_id))
        Escalation.objects.create(
            incident=incident,
            severity=severity,
            rule=rule or "",
            reason=reason,
            escalated_at=now,
            held_run_ids=held,
        )
        message = messages.escalated(incident, severity, reason)
        receivers = _receivers_for(severity, rule)
        delivery.record(incident, f"escalated:{severity}", receivers, message, now)
        _audit_escalation(incident, severity, reason, rule, held, receivers)

    logger.info(
        "incident %s escalated to %s (%s): %s; %s steps held",
        incident.pk,
        severity,
        rule or "no rule",
        reason,
        len(held),
    )
    return True


def _can_raise(incident: Incident | None, severity: str) -> bool:
    if incident is None or incident.resolved_at is not None or incident.is_shadow:
        return False
    return rank(severity) > rank(incident.escalation_severity)


def _audit_escalation(
    incident: Incident,
    severity: str,
    reason: str,
    rule: str | None,
    held: list[int],
    receivers: list[Receiver],
) -> None:
    auditing.record(
        "escalation.raised",
        f"incident #{incident.pk} escalated to {severity}: {reason}"[:500],
        incident_id=incident.pk,
        details={
            "severity": severity,
            "rule": rule,
            "reason": reason,
            "held_run_ids": held,
            "receivers": [receiver.name for receiver in receivers],
        },
    )


def escalate_one_level(
    incident_id: int, reason: str, now: datetime | None = None
) -> bool:
    """Raise the incident one level (medium, high, critical).

    An incident already critical is not raised further; its critical route
    is notified again instead. Returns whether anyone was (to be) notified.
    """
    now = now or timezone.now()
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None or incident.resolved_at is not None or incident.is_shadow:
        return False
    current = incident.escalation_severity or Severity.MEDIUM
    if not incident.escalation_severity:
        return escalate(incident_id, current, reason, now=now)
    if current != Severity.CRITICAL:
        return escalate(incident_id, NEXT_SEVERITY[current], reason, now=now)  # type: ignore[index]
    return _notify_again(incident, reason, now)


def _notify_again(incident: Incident, reason: str, now: datetime) -> bool:
    message = messages.escalated(incident, Severity.CRITICAL, reason)
    key = f"escalated:critical:again:{now:%Y%m%dT%H%M%S}"
    with transaction.atomic():
        created = delivery.record(
            incident, key, route_receivers(Severity.CRITICAL), message, now
        )
        auditing.record(
            "escalation.raised",
            f"incident #{incident.pk} is critical already, notified again: {reason}"[
                :500
            ],
            incident_id=incident.pk,
            details={"severity": Severity.CRITICAL, "reason": reason, "again": True},
        )
    return bool(created)


def notify_decision_needed(approval_id: int, now: datetime | None = None) -> None:
    """Post the approval link to the receivers of the incident's current severity.

    An incident not escalated goes to the medium route.
    """
    from mitigations.models import Approval

    now = now or timezone.now()
    approval = Approval.objects.select_related("run").filter(pk=approval_id).first()
    if approval is None:
        logger.warning("approval %s not found: no notification sent", approval_id)
        return
    run = approval.run
    incident = Incident.objects.select_related("watcher").get(pk=run.incident_id)
    severity = incident.escalation_severity or Severity.MEDIUM
    message = messages.decision_needed(incident, severity, approval, run)
    with transaction.atomic():
        delivery.record(
            incident,
            f"decision_needed:{approval.pk}",
            _receivers_for(severity, None),
            message,
            now,
        )
