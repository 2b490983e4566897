import uuid

from django.db import models

from escalations.choices import DeliveryStatus, ReceiverKind, Transition
from watchers.choices import Severity


class Receiver(models.Model):
    """A place notifications go: a Slack channel's webhook or an SMS gateway.

    The URL and token are not stored: they are read at send time from
    ``BASTION_RECEIVER_<NAME>_URL`` (or ``_URL_FILE``) and ``_TOKEN`` (or
    ``_TOKEN_FILE``), so the database contains no secret.
    """

    name = models.SlugField(
        max_length=100,
        unique=True,
        help_text="Also names the environment variables, e.g. slack_executive "
        "reads BASTION_RECEIVER_SLACK_EXECUTIVE_URL.",
    )
    kind = models.CharField(max_length=10, choices=ReceiverKind.choices)
    target = models.CharField(
        max_length=100, help_text="Who or what it reaches, as the routing names it."
    )
    recipient = models.CharField(
        max_length=200,
        blank=True,
        help_text="The 'to' field of webhook messages. Empty: the target.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def env_prefix(self) -> str:
        return "RECEIVER_" + self.name.upper().replace("-", "_")


class Route(models.Model):
    """One receiver of an escalation severity."""

    severity = models.CharField(max_length=10, choices=Severity.choices)
    receiver = models.ForeignKey(
        Receiver, on_delete=models.CASCADE, related_name="routes"
    )
    position = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["severity", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["severity", "receiver"], name="one_route_per_receiver"
            )
        ]

    def __str__(self) -> str:
        return f"{self.severity} -> {self.receiver}"


class EscalationRule(models.Model):
    """A condition on an open incident that escalates it to a severity."""

    name = models.SlugField(max_length=200, unique=True)
    condition_text = models.TextField(
        help_text="As the team wrote it, e.g. '3 consecutive auto-healing "
        "attempts failed'. Parts join with OR and AND."
    )
    condition = models.JSONField(
        help_text="The parsed condition, written from the text on save."
    )
    action = models.CharField(
        max_length=200,
        blank=True,
        help_text="Who to alert besides the severity's route, e.g. "
        "'alert_security_team + ceo'.",
    )
    severity = models.CharField(max_length=10, choices=Severity.choices)
    groups = models.JSONField(
        default=list,
        blank=True,
        help_text="Watcher groups the rule applies to. Empty: every group.",
    )
    receivers = models.ManyToManyField(
        Receiver,
        blank=True,
        related_name="rules",
        help_text="Receivers the action names; notified with the severity's route.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LossEstimate(models.Model):
    """A PromQL estimate of the revenue a watcher's incident costs per hour."""

    watcher = models.OneToOneField(
        "watchers.Watcher", on_delete=models.CASCADE, related_name="loss_estimate"
    )
    query = models.TextField(
        help_text="Instant PromQL query returning the estimated loss per hour. "
        "With several series, those whose labels agree with the incident's count."
    )
    currency = models.CharField(
        max_length=3, default="EUR", help_text="ISO 4217 code, e.g. EUR."
    )

    def __str__(self) -> str:
        return f"loss estimate for {self.watcher_id} ({self.currency}/hour)"


class Escalation(models.Model):
    """An incident raised to a severity: at most one row per incident and level."""

    incident = models.ForeignKey(
        "watchers.Incident", on_delete=models.CASCADE, related_name="escalations"
    )
    severity = models.CharField(max_length=10, choices=Severity.choices)
    rule = models.CharField(max_length=200, blank=True)
    reason = models.TextField()
    escalated_at = models.DateTimeField()
    held_run_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["incident", "escalated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "severity"], name="one_escalation_per_level"
            )
        ]

    def __str__(self) -> str:
        return f"incident {self.incident_id} -> {self.severity}"


class Delivery(models.Model):
    """One notification to one receiver: the row is the delivery log.

    ``key`` names the transition (``escalated:high``, ``repeated:high:2``,
    ``resolved``, ``decision_needed:17``); the unique constraint makes every
    transition reach each receiver once, however many workers race for it.
    """

    incident = models.ForeignKey(
        "watchers.Incident", on_delete=models.CASCADE, related_name="deliveries"
    )
    receiver = models.ForeignKey(
        Receiver, on_delete=models.PROTECT, related_name="deliveries"
    )
    transition = models.CharField(max_length=20, choices=Transition.choices)
    key = models.CharField(max_length=100)
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    message = models.JSONField(default=dict)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "key", "receiver"], name="one_delivery_per_key"
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.key} for incident {self.incident_id} to {self.receiver_id}"
