from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from audit.admin import AuditedModelAdmin
from mitigations.admin import MitigationStepInline
from watchers.forms import DurationSecondsField
from watchers.models import DataSource, Incident, SeriesState, Watcher
from watchers.services.catalog.validation import FieldError, parse_labels
from watchers.services.definitions import (
    DefinitionError,
    check_clear_threshold,
    check_max_series,
    check_window_and_interval,
)
from watchers.services.durations import format_duration
from watchers.services.formatting import metric_value, metric_value_with_unit
from watchers.services.promql import PromQLError, check_instant_query

# Fields that the scheduler and the evaluator write. An edit in the admin would be
# overwritten by the next evaluation or would break the scheduling claims.
WATCHER_RUNTIME_FIELDS = [
    "next_evaluation_at",
    "evaluated_slot",
    "health",
    "last_error",
    "consecutive_errors",
    "last_evaluated_at",
    "last_value",
    "last_series_count",
]

# DefinitionError uses the catalog's field names, which the model stores in seconds.
_DEFINITION_FIELDS = {"window": "window_seconds", "interval": "interval_seconds"}


DURATION_HELP = "A duration such as 90s, 10m or 1h30m; a plain number is seconds."


class WatcherAdminForm(forms.ModelForm):
    """Watcher form that applies the same checks as the catalog import."""

    window_seconds = DurationSecondsField(
        label="Window",
        help_text="How long the condition must hold before an incident opens. "
        + DURATION_HELP,
    )
    interval_seconds = DurationSecondsField(
        label="Interval", help_text="Time between evaluations. " + DURATION_HELP
    )
    resolve_delay_seconds = DurationSecondsField(
        label="Resolve delay",
        required=False,
        help_text="How long a series must stay clear before its incident "
        "resolves. Empty: two evaluation intervals. " + DURATION_HELP,
    )
    escalation_delay_seconds = DurationSecondsField(
        label="Escalation delay",
        required=False,
        zero_word="immediate",
        help_text="Escalate an incident not resolved within this delay; "
        "'immediate' escalates when it opens. Empty: no escalation of its own. "
        + DURATION_HELP,
    )

    class Meta:
        model = Watcher
        fields = [
            "name",
            "group",
            "query",
            "comparison",
            "threshold",
            "unit",
            "clear_threshold",
            "severity",
            "mode",
            "labels",
            "window_seconds",
            "interval_seconds",
            "resolve_delay_seconds",
            "escalation_delay_seconds",
            "max_series",
        ]

    def clean_query(self) -> str:
        query: str = self.cleaned_data["query"]
        try:
            check_instant_query(query)
        except PromQLError as error:
            raise forms.ValidationError(str(error), code="invalid_promql") from None
        return query

    def clean_labels(self) -> dict[str, str]:
        labels = self.cleaned_data["labels"]
        try:
            return parse_labels(labels if labels is not None else {})
        except FieldError as error:
            raise forms.ValidationError(str(error), code="invalid_labels") from None

    def clean_max_series(self) -> int | None:
        max_series: int | None = self.cleaned_data["max_series"]
        if max_series is not None:
            try:
                check_max_series(max_series)
            except DefinitionError as error:
                raise forms.ValidationError(
                    error.message, code="invalid_max_series"
                ) from None
        return max_series

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._check_window_and_interval(cleaned)
        self._check_clear_threshold(cleaned)
        return cleaned

    def _check_window_and_interval(self, cleaned: dict[str, Any]) -> None:
        window = cleaned.get("window_seconds")
        interval = cleaned.get("interval_seconds")
        if window is None or interval is None:
            return  # the field's own error is already shown
        try:
            check_window_and_interval(window, interval)
        except DefinitionError as error:
            self.add_error(_DEFINITION_FIELDS.get(error.field), error.message)

    def _check_clear_threshold(self, cleaned: dict[str, Any]) -> None:
        comparison = cleaned.get("comparison")
        threshold = cleaned.get("threshold")
        clear_threshold = cleaned.get("clear_threshold")
        if not comparison or threshold is None or clear_threshold is None:
            return
        try:
            check_clear_threshold(comparison, threshold, clear_threshold)
        except DefinitionError as error:
            self.add_error(error.field, error.message)


@admin.register(Watcher)
class WatcherAdmin(AuditedModelAdmin):
    form = WatcherAdminForm
    inlines = [MitigationStepInline]
    list_display = [
        "name",
        "group",
        "mode",
        "health",
        "threshold",
        "comparison",
        "window",
        "interval",
        "last_value_display",
        "last_evaluated_at",
    ]
    list_filter = ["group", "mode", "health", "severity"]
    search_fields = ["name", "query"]
    readonly_fields = [*WATCHER_RUNTIME_FIELDS, "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "group",
                    "query",
                    ("comparison", "threshold", "unit"),
                    "clear_threshold",
                    "severity",
                    "mode",
                    "labels",
                ]
            },
        ),
        (
            "Timing",
            {
                "fields": [
                    ("window_seconds", "interval_seconds"),
                    "resolve_delay_seconds",
                    "escalation_delay_seconds",
                    "max_series",
                ]
            },
        ),
        ("Last evaluation", {"fields": [*readonly_fields]}),
    ]

    @admin.display(description="window", ordering="window_seconds")
    def window(self, watcher: Watcher) -> str:
        return format_duration(watcher.window_seconds)

    @admin.display(description="interval", ordering="interval_seconds")
    def interval(self, watcher: Watcher) -> str:
        return format_duration(watcher.interval_seconds)

    @admin.display(description="last value", ordering="last_value")
    def last_value_display(self, watcher: Watcher) -> str:
        return metric_value_with_unit(watcher.last_value, watcher.unit)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin for rows that only evaluations write, so people can view but not edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(AuditedModelAdmin):
    list_display = [
        "number",
        "watcher_name",
        "kind",
        "state",
        "severity",
        "is_shadow",
        "last_value_display",
        "threshold",
        "opened_at",
        "resolved_at",
    ]
    list_filter = ["state", "kind", "severity", "is_shadow", "watcher__group"]
    list_select_related = ["watcher"]
    search_fields = ["watcher__name", "labels"]
    date_hierarchy = "opened_at"
    # Severity and summary stay editable so people can correct them. The other
    # fields record what the evaluator saw.
    readonly_fields = [
        "kind",
        "watcher",
        "fingerprint",
        "labels",
        "state",
        "is_shadow",
        "comparison",
        "threshold",
        "last_value",
        "peak_value",
        "opened_at",
        "resolved_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # incidents open from evaluations only

    @admin.display(description="incident", ordering="pk")
    def number(self, incident: Incident) -> str:
        return f"#{incident.pk}"

    @admin.display(description="watcher", ordering="watcher__name")
    def watcher_name(self, incident: Incident) -> str:
        return incident.watcher.name if incident.watcher else "data source"

    @admin.display(description="last value", ordering="last_value")
    def last_value_display(self, incident: Incident) -> str:
        return metric_value(incident.last_value)


@admin.register(SeriesState)
class SeriesStateAdmin(ReadOnlyAdmin):
    list_display = [
        "watcher",
        "short_fingerprint",
        "status",
        "labels",
        "pending_since",
        "last_value",
        "last_evaluated_at",
        "incident",
    ]
    list_filter = ["status", "watcher__group"]
    list_select_related = ["watcher", "incident__watcher"]
    search_fields = ["watcher__name", "labels"]

    @admin.display(description="fingerprint", ordering="fingerprint")
    def short_fingerprint(self, state: SeriesState) -> str:
        return state.fingerprint[:12]


@admin.register(DataSource)
class DataSourceAdmin(ReadOnlyAdmin):
    list_display = [
        "url",
        "consecutive_failures",
        "last_success_at",
        "last_failure_at",
        "last_error",
    ]
    search_fields = ["url"]
