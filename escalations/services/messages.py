"""The content of each notification, stored on its Delivery before sending.

A retry or a second worker sends exactly what was decided at the transition,
even if the incident changed in between.
"""

import logging
from typing import Any

from django.conf import settings

from escalations.choices import Transition
from watchers.models import Incident
from watchers.services.durations import format_duration

logger = logging.getLogger(__name__)

HOLD_NOTE = "Automated steps for this incident wait for a person to approve them."


def incident_link(incident: Incident) -> str:
    try:
        from mitigations.services.approvals import incident_url
    except ImportError:
        return _fallback_url()
    return str(incident_url(incident))


def approval_link(approval: Any) -> str:
    try:
        from mitigations.services.approvals import approval_url
    except ImportError:
        return _fallback_url()
    return str(approval_url(approval))


def _fallback_url() -> str:
    # NOTE: used only while mitigations.services.approvals has no URL helpers.
    return settings.BASE_URL.rstrip("/") + "/"


def _base(incident: Incident, transition: str, severity: str) -> dict[str, Any]:
    watcher = incident.watcher
    name = watcher.name if watcher is not None else "data source"
    return {
        "transition": transition,
        "severity": severity,
        "incident_id": incident.pk,
        "watcher": name,
        "title": f"incident #{incident.pk} {name}",
        "summary": incident.summary,
        "labels": dict(incident.labels),
        "value_text": _value_text(incident),
        "opened_at": incident.opened_at.isoformat(),
        "incident_url": incident_link(incident),
    }


def _value_text(incident: Incident) -> str:
    if incident.last_value is None:
        return ""
    if incident.threshold is None:
        return f"{incident.last_value:g}"
    return (
        f"{incident.last_value:g} (fires when {incident.comparison or '>'} "
        f"{incident.threshold:g})"
    )


def escalated(incident: Incident, severity: str, reason: str) -> dict[str, Any]:
    message = _base(incident, Transition.ESCALATED, severity)
    message["title"] = f"Escalated {message['title']}"
    message["reason"] = reason
    message["note"] = HOLD_NOTE
    return message


def alerted(incident: Incident, severity: str, text: str) -> dict[str, Any]:
    message = _base(incident, Transition.ALERTED, severity)
    message["title"] = f"Alert: {message['title']}"
    message["reason"] = text
    return message


def repeated(incident: Incident, severity: str, seconds: int) -> dict[str, Any]:
    message = _base(incident, Transition.REPEATED, severity)
    message["title"] = f"Still unresolved: {message['title']}"
    message["reason"] = f"escalated {format_duration(seconds)} ago and still firing"
    message["note"] = HOLD_NOTE
    return message


def resolved(incident: Incident) -> dict[str, Any]:
    severity = incident.escalation_severity or incident.severity
    message = _base(incident, Transition.RESOLVED, severity)
    message["title"] = f"Resolved: {message['title']}"
    seconds = 0
    if incident.resolved_at is not None:
        seconds = int((incident.resolved_at - incident.opened_at).total_seconds())
    message["reason"] = f"resolved after {format_duration(seconds)}"
    return message


def decision_needed(
    incident: Incident, severity: str, approval: Any, run: Any
) -> dict[str, Any]:
    message = _base(incident, Transition.DECISION_NEEDED, severity)
    target = f" on {run.target}" if run.target else ""
    message["title"] = f"Decision needed: {run.action}{target}, {message['title']}"
    message["reason"] = (
        f"step {run.position} ({run.action}, {run.risk or 'unknown risk'}) waits "
        "for approval"
    )
    message["approval_url"] = approval_link(approval)
    return message
