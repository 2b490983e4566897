from django import forms
from django.contrib import admin

from mitigations.models import MitigationStep
from mitigations.registry import KNOWN_ACTIONS


class MitigationStepForm(forms.ModelForm):
    """Step form that accepts only the names of built-in actions."""

    action = forms.ChoiceField(
        choices=[("", "---------")] + [(name, name) for name in sorted(KNOWN_ACTIONS)],
        error_messages={
            "invalid_choice": "%(value)s is not a known mitigation action: "
            "choose one of the built-in actions in the list."
        },
    )

    class Meta:
        model = MitigationStep
        fields = ["watcher", "position", "action", "parameters"]


class MitigationStepInline(admin.TabularInline):
    """A watcher's steps, edited on the watcher's own admin page in run order."""

    model = MitigationStep
    form = MitigationStepForm
    fields = ["position", "action", "parameters"]
    ordering = ["position"]
    extra = 0


@admin.register(MitigationStep)
class MitigationStepAdmin(admin.ModelAdmin):
    form = MitigationStepForm
    list_display = ["watcher", "position", "action"]
    list_filter = ["action"]
    list_select_related = ["watcher"]
    autocomplete_fields = ["watcher"]
    search_fields = ["watcher__name", "action"]
    ordering = ["watcher__name", "position"]
