"""Escalation services: the functions other apps and the tasks call."""

from escalations.services.escalation import (
    escalate,
    escalate_one_level,
    notify_decision_needed,
)

__all__ = ["escalate", "escalate_one_level", "notify_decision_needed"]
