from django.db import models

from watchers.choices import Severity

# Escalation levels from lowest to highest: a higher level replaces a lower one.
SEVERITY_RANK = {
    Severity.LOW: 0,
    Severity.MEDIUM: 1,
    Severity.HIGH: 2,
    Severity.CRITICAL: 3,
}
NEXT_SEVERITY = {
    Severity.LOW: Severity.MEDIUM,
    Severity.MEDIUM: Severity.HIGH,
    Severity.HIGH: Severity.CRITICAL,
    Severity.CRITICAL: Severity.CRITICAL,
}


class ReceiverKind(models.TextChoices):
    SLACK = "slack", "Slack incoming webhook"
    WEBHOOK = "webhook", "JSON webhook (SMS gateway)"


class Transition(models.TextChoices):
    ESCALATED = "escalated", "escalated"
    REPEATED = "repeated", "still unresolved (repeat)"
    RESOLVED = "resolved", "resolved"
    DECISION_NEEDED = "decision_needed", "decision needed"
    ALERTED = "alerted", "alert sent by a mitigation step"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"
