from django.db import models
from django.db.models import Q

from watchers.choices import (
    Comparison,
    Health,
    IncidentKind,
    IncidentState,
    Mode,
    SeriesStatus,
    Severity,
)


class Watcher(models.Model):
    """An instant PromQL query judged against a threshold on a schedule."""

    name = models.SlugField(max_length=200, unique=True)
    group = models.CharField(max_length=100, default="other")
    query = models.TextField(help_text="Instant PromQL query.")
    comparison = models.CharField(
        max_length=2, choices=Comparison.choices, default=Comparison.GREATER
    )
    threshold = models.FloatField()
    unit = models.CharField(
        max_length=20,
        blank=True,
        help_text="Unit of the query's value, written after values and the "
        "threshold on the pages, such as s, %, req/s or days. Empty: none.",
    )
    clear_threshold = models.FloatField(
        null=True,
        blank=True,
        help_text="A firing series counts as clear only past this value. "
        "Empty: clear as soon as it stops breaching the threshold.",
    )
    window_seconds = models.PositiveIntegerField(
        help_text="How long the condition must hold before an incident opens."
    )
    interval_seconds = models.PositiveIntegerField(
        help_text="Time between evaluations."
    )
    resolve_delay_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How long a series must stay clear before its incident "
        "resolves. Empty: two evaluation intervals.",
    )
    escalation_delay_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Escalate an incident not resolved within this delay; 0 "
        "escalates when it opens. Empty: no escalation of its own.",
    )
    severity = models.CharField(
        max_length=10, choices=Severity.choices, default=Severity.MEDIUM
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ACTIVE)
    labels = models.JSONField(default=dict, blank=True)
    max_series = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Above this many series the watcher stops judging them. "
        "Empty: the site-wide BASTION_MAX_SERIES_PER_WATCHER.",
    )

    # Scheduling: a dispatcher claims a slot by moving next_evaluation_at
    # forward, an evaluation claims it by moving evaluated_slot forward.
    next_evaluation_at = models.DateTimeField(null=True, blank=True, db_index=True)
    evaluated_slot = models.DateTimeField(null=True, blank=True)

    health = models.CharField(
        max_length=20, choices=Health.choices, default=Health.UNKNOWN
    )
    last_error = models.TextField(blank=True)
    consecutive_errors = models.PositiveIntegerField(default=0)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_series_count = models.PositiveIntegerField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["group", "name"]
        permissions = [("change_watcher_mode", "Can pause, resume and shadow watchers")]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_resolve_delay_seconds(self) -> int:
        return effective_resolve_delay(
            self.resolve_delay_seconds, self.interval_seconds
        )


def effective_resolve_delay(resolve_delay_seconds: int | None, interval: int) -> int:
    """Return the resolve delay in seconds: the one set, else two intervals."""
    if resolve_delay_seconds is not None:
        return resolve_delay_seconds
    return 2 * interval


class SeriesState(models.Model):
    """Evaluation state of one series of a watcher that is not normal.

    A series with no row is normal: rows exist only while a series is
    pending, firing or waiting out its resolve delay, as in Prometheus.
    """

    watcher = models.ForeignKey(
        Watcher, on_delete=models.CASCADE, related_name="series"
    )
    fingerprint = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=SeriesStatus.choices)
    pending_since = models.DateTimeField()
    cleared_since = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField()
    incident = models.ForeignKey(
        "Incident", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["watcher", "fingerprint"], name="one_state_per_series"
            )
        ]

    def __str__(self) -> str:
        return f"{self.watcher_id}/{self.fingerprint[:12]} {self.status}"


class Incident(models.Model):
    """A breach that held for its watcher's window, or an unreachable data source."""

    kind = models.CharField(
        max_length=12, choices=IncidentKind.choices, default=IncidentKind.SERIES
    )
    watcher = models.ForeignKey(
        Watcher,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="incidents",
    )
    fingerprint = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    state = models.CharField(
        max_length=10, choices=IncidentState.choices, default=IncidentState.FIRING
    )
    is_shadow = models.BooleanField(
        default=False, help_text="Opened by a shadow watcher: recorded, nothing runs."
    )
    summary = models.CharField(max_length=500, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    comparison = models.CharField(max_length=2, choices=Comparison.choices, blank=True)
    severity = models.CharField(
        max_length=10, choices=Severity.choices, default=Severity.MEDIUM
    )
    last_value = models.FloatField(null=True, blank=True)
    peak_value = models.FloatField(
        null=True,
        blank=True,
        help_text="Most extreme value in the breaching direction.",
    )
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When people were first called in; from then on every "
        "automated step waits for a decision.",
    )
    escalation_severity = models.CharField(
        max_length=10, choices=Severity.choices, blank=True
    )

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["watcher", "fingerprint"],
                condition=Q(resolved_at__isnull=True, kind=IncidentKind.SERIES),
                name="one_open_incident_per_series",
            ),
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(resolved_at__isnull=True, kind=IncidentKind.DATASOURCE),
                name="one_open_incident_per_datasource",
            ),
            models.CheckConstraint(
                condition=Q(resolved_at__isnull=True, state=IncidentState.FIRING)
                | Q(resolved_at__isnull=False, state=IncidentState.RESOLVED),
                name="incident_state_matches_resolved_at",
            ),
        ]

    def __str__(self) -> str:
        name = self.watcher.name if self.watcher is not None else "data source"
        return f"#{self.pk} {name} {self.state}"


class DataSource(models.Model):
    """Health of a Prometheus server, shared by every watcher that queries it."""

    url = models.URLField(unique=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.url
