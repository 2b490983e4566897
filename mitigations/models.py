from django.conf import settings
from django.db import models
from django.db.models import Q

from mitigations.choices import (
    ApprovalPolicy,
    AttemptStatus,
    Risk,
    RunStatus,
    TemporaryKind,
)


class MitigationStep(models.Model):
    """One ordered step of a watcher's mitigation chain."""

    watcher = models.ForeignKey(
        "watchers.Watcher", on_delete=models.CASCADE, related_name="steps"
    )
    position = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=100)
    parameters = models.JSONField(
        default=dict,
        blank=True,
        help_text="Values for the action's parameters. A string may name "
        "incident labels in braces, such as {pod}.",
    )
    timeout_seconds = models.PositiveIntegerField(default=60)
    continue_on_failure = models.BooleanField(
        default=False, help_text="Run the next step even when this one fails."
    )
    approval = models.CharField(
        max_length=10, choices=ApprovalPolicy.choices, default=ApprovalPolicy.DEFAULT
    )
    dry_run = models.BooleanField(
        default=False, help_text="Record what the step would do; do not act."
    )

    class Meta:
        ordering = ["watcher", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["watcher", "position"], name="one_step_per_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.watcher_id}#{self.position} {self.action}"


class MitigationAttempt(models.Model):
    """One run of a watcher's chain for an incident, then its verification."""

    incident = models.ForeignKey(
        "watchers.Incident", on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=10, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING
    )
    dry_run = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    verify_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["incident", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "number"], name="one_attempt_per_number"
            )
        ]

    def __str__(self) -> str:
        return f"incident {self.incident_id} attempt {self.number} {self.status}"


class ActionRun(models.Model):
    """A step of one attempt: the row is written before acting and is the log."""

    attempt = models.ForeignKey(
        MitigationAttempt, on_delete=models.CASCADE, related_name="runs"
    )
    incident = models.ForeignKey(
        "watchers.Incident", on_delete=models.CASCADE, related_name="action_runs"
    )
    step = models.ForeignKey(
        MitigationStep, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    position = models.PositiveSmallIntegerField()
    action = models.CharField(max_length=100)
    risk = models.CharField(max_length=12, choices=Risk.choices)
    target = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED
    )
    dry_run = models.BooleanField(default=False)
    continue_on_failure = models.BooleanField(default=False)
    timeout_seconds = models.PositiveIntegerField(default=60)
    inputs = models.JSONField(default=dict, blank=True)
    output = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["attempt", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "position"], name="one_run_per_attempt_step"
            )
        ]
        indexes = [
            models.Index(fields=["action", "target", "finished_at"]),
            models.Index(
                fields=["started_at"],
                condition=Q(dry_run=False),
                name="executed_runs_by_start",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.action} {self.status}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class AutomationSwitch(models.Model):
    """The kill switch: one row; automation runs only while it is on."""

    enabled = models.BooleanField(default=True)
    reason = models.CharField(max_length=300, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        verbose_name_plural = "automation switch"
        permissions = [("toggle_automation", "Can switch all automation on or off")]

    def __str__(self) -> str:
        return "automation on" if self.enabled else "automation off"


class TemporaryMitigation(models.Model):
    """A change that expires by itself: an IP block or a lowered rate limit."""

    kind = models.CharField(max_length=12, choices=TemporaryKind.choices)
    target = models.CharField(max_length=300)
    redis_key = models.CharField(max_length=300)
    previous_value = models.CharField(max_length=300, blank=True)
    applied_value = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    run = models.ForeignKey(
        ActionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["expires_at"]
        permissions = [("lift_temporarymitigation", "Can lift a temporary mitigation")]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} until {self.expires_at:%H:%M}"


class MitigationBaseline(models.Model):
    """A value an action first saw for an incident, such as the replicas at open.

    The first writer wins, so later steps and attempts compare against the
    state before Bastion acted, not against their own earlier changes.
    """

    incident = models.ForeignKey(
        "watchers.Incident", on_delete=models.CASCADE, related_name="baselines"
    )
    key = models.CharField(max_length=300)
    value = models.JSONField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "key"], name="one_baseline_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"incident {self.incident_id} {self.key}={self.value!r}"


class Decision(models.TextChoices):
    PENDING = "pending", "pending"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
    EXPIRED = "expired", "expired: nobody decided in time"
    WITHDRAWN = "withdrawn", "withdrawn: its attempt ended first"


class Approval(models.Model):
    """A person's approve or reject for one step that waits; decided once."""

    run = models.OneToOneField(
        ActionRun, on_delete=models.CASCADE, related_name="approval"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The person who proposed the step. Empty: the automation.",
    )
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    decision = models.CharField(
        max_length=10, choices=Decision.choices, default=Decision.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    decided_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        permissions = [("decide_approval", "Can approve or reject a waiting step")]

    def __str__(self) -> str:
        return f"approval {self.pk} for run {self.run_id}: {self.decision}"

    @property
    def is_pending(self) -> bool:
        return self.decision == Decision.PENDING
