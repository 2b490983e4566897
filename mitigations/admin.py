from typing import Any

from django import forms
from django.contrib import admin

from audit.admin import AuditedModelAdmin
from mitigations.actions.base import ParameterError
from mitigations.models import (
    ActionRun,
    AutomationSwitch,
    MitigationAttempt,
    MitigationStep,
    TemporaryMitigation,
)
from mitigations.registry import action_names, get_action
from mitigations.services.parameters import check_step

STEP_FIELDS = [
    "position",
    "action",
    "parameters",
    "timeout_seconds",
    "continue_on_failure",
    "approval",
    "dry_run",
]


def _action_choices() -> list[tuple[str, str]]:
    return [("", "---------")] + [(name, name) for name in sorted(action_names())]


class MitigationStepForm(forms.ModelForm):
    """Step form that accepts built-in actions and parameters they validate."""

    action = forms.ChoiceField(
        choices=_action_choices,
        error_messages={
            "invalid_choice": "%(value)s is not a known mitigation action: "
            "choose one of the built-in actions in the list."
        },
    )

    class Meta:
        model = MitigationStep
        fields = ["watcher", *STEP_FIELDS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name = cleaned.get("action")
        values = cleaned.get("parameters")
        if not name or values is None:
            return cleaned
        if not isinstance(values, dict):
            self.add_error("parameters", "write the parameters as a JSON object")
            return cleaned
        try:
            check_step(get_action(name), values)
        except ParameterError as error:
            self.add_error("parameters", f"{name}: {error}")
        return cleaned


class MitigationStepInline(admin.TabularInline):
    """A watcher's steps, edited on the watcher's own admin page in run order."""

    model = MitigationStep
    form = MitigationStepForm
    fields = tuple(STEP_FIELDS)
    ordering = ["position"]
    extra = 0


@admin.register(MitigationStep)
class MitigationStepAdmin(AuditedModelAdmin):
    form = MitigationStepForm
    list_display = ["watcher", "position", "action", "approval", "dry_run"]
    list_filter = ["action", "approval", "dry_run"]
    list_select_related = ["watcher"]
    autocomplete_fields = ["watcher"]
    search_fields = ["watcher__name", "action"]
    ordering = ["watcher__name", "position"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the product writes; people read them here and change nothing."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(MitigationAttempt)
class MitigationAttemptAdmin(ReadOnlyAdmin):
    list_display = ["incident", "number", "status", "dry_run", "started_at"]
    list_filter = ["status", "dry_run"]


@admin.register(ActionRun)
class ActionRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "incident", "position", "action", "target", "status"]
    list_filter = ["status", "action", "risk", "dry_run"]
    search_fields = ["action", "target", "error"]


@admin.register(TemporaryMitigation)
class TemporaryMitigationAdmin(ReadOnlyAdmin):
    list_display = ["kind", "target", "expires_at", "lifted_at"]
    list_filter = ["kind"]


@admin.register(AutomationSwitch)
class AutomationSwitchAdmin(AuditedModelAdmin):
    list_display = ["__str__", "reason", "changed_at", "changed_by"]
    fields = ["enabled", "reason"]

    def has_add_permission(self, request: Any) -> bool:
        return not AutomationSwitch.objects.exists()

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: Any, obj: AutomationSwitch, form: Any, change: bool
    ) -> None:
        from django.utils import timezone

        obj.changed_at = timezone.now()
        obj.changed_by = request.user
        super().save_model(request, obj, form, change)
