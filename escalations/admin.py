from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from audit.admin import AuditedModelAdmin
from escalations.models import (
    Delivery,
    Escalation,
    EscalationRule,
    LossEstimate,
    Receiver,
    Route,
)
from escalations.services import conditions
from escalations.services.catalog import parse_action
from escalations.services.receivers import ReceiverNotConfigured, receiver_config
from watchers.services.promql import PromQLError, check_instant_query


class EscalationRuleForm(forms.ModelForm):
    """Rule form that parses the condition text, as the import does."""

    class Meta:
        model = EscalationRule
        fields = [
            "name",
            "condition_text",
            "action",
            "severity",
            "groups",
            "receivers",
            "enabled",
        ]

    def clean_groups(self) -> list[str]:
        groups = self.cleaned_data["groups"]
        if groups in (None, ""):
            return []
        if not isinstance(groups, list) or not all(
            isinstance(group, str) and group.strip() for group in groups
        ):
            raise forms.ValidationError(
                f"{groups!r} is not a list of group names: write a JSON list "
                'such as ["security"], or [] for every group'
            )
        return [group.strip() for group in groups]

    def clean_action(self) -> str:
        action = str(self.cleaned_data["action"]).strip()
        if not action:
            return ""  # only the severity's route is notified
        targets = Route.objects.values_list("receiver__target", flat=True).distinct()
        try:
            parse_action(action, sorted(targets))
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return action

    def clean_condition_text(self) -> str:
        text = self.cleaned_data["condition_text"]
        try:
            self.instance.condition = conditions.to_json(
                conditions.parse_condition(text)
            )
        except conditions.ConditionError as error:
            raise forms.ValidationError(f"Cannot read the condition: {error}") from None
        return str(text)


@admin.register(EscalationRule)
class EscalationRuleAdmin(AuditedModelAdmin):
    form = EscalationRuleForm
    list_display = ["name", "severity", "condition_text", "enabled"]
    list_filter = ["severity", "enabled"]
    search_fields = ["name", "condition_text", "action"]
    filter_horizontal = ["receivers"]


class RouteInline(admin.TabularInline):
    model = Route
    extra = 0


@admin.register(Receiver)
class ReceiverAdmin(AuditedModelAdmin):
    list_display = ["name", "kind", "target", "enabled", "url_status"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "target"]
    inlines = [RouteInline]

    @admin.display(description="URL")
    def url_status(self, receiver: Receiver) -> str:
        try:
            receiver_config(receiver)
        except ReceiverNotConfigured as error:
            return str(error)
        return "configured"


@admin.register(Route)
class RouteAdmin(AuditedModelAdmin):
    list_display = ["severity", "position", "receiver"]
    list_filter = ["severity"]
    list_select_related = ["receiver"]


class LossEstimateForm(forms.ModelForm):
    class Meta:
        model = LossEstimate
        fields = ["watcher", "query", "currency"]

    def clean_query(self) -> str:
        query = self.cleaned_data["query"]
        try:
            check_instant_query(query)
        except PromQLError as error:
            raise forms.ValidationError(f"Invalid PromQL: {error}") from None
        return str(query)

    def clean_currency(self) -> str:
        currency = str(self.cleaned_data["currency"]).upper()
        if len(currency) != 3 or not currency.isalpha():
            raise forms.ValidationError(
                f"{currency!r} is not a currency code: write three letters, e.g. EUR"
            )
        return currency


@admin.register(LossEstimate)
class LossEstimateAdmin(AuditedModelAdmin):
    form = LossEstimateForm
    list_display = ["watcher", "currency", "query"]
    autocomplete_fields = ["watcher"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """The log of what happened: shown, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "incident",
        "key",
        "receiver",
        "status",
        "attempts",
        "response_code",
    ]
    list_filter = ["status", "transition", "receiver"]
    search_fields = ["key", "last_error"]
    list_select_related = ["incident__watcher", "receiver"]


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdmin):
    list_display = ["escalated_at", "incident", "severity", "rule", "reason"]
    list_filter = ["severity", "rule"]
    list_select_related = ["incident__watcher"]
