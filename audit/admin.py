import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.db.models import Model, QuerySet
from django.forms.models import BaseModelFormSet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy

from audit import services
from audit.models import AuditEvent
from audit.signals import change_details

PENDING_CHANGES_ATTRIBUTE = "_audit_admin_changes"


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Browse the audit log; nobody adds, changes or deletes events here."""

    list_display = ["created_at", "kind", "actor_name", "address", "incident_number"]
    list_filter = ["kind"]
    search_fields = ["summary", "actor_name", "kind"]
    date_hierarchy = "created_at"
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The same description as Django's action, so its translations still apply.
@admin.action(
    permissions=["delete"],
    description=gettext_lazy("Delete selected %(verbose_name_plural)s"),
)
def delete_selected_with_audit(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Model]
) -> HttpResponse | None:
    """Run Django's "delete selected" action and record what it deleted.

    For two or more objects Django writes the LogEntry rows with bulk_create,
    which sends no post_save, so the LogEntry hook in audit.signals misses
    them. A single object goes through save() and is recorded there.
    """
    confirmed = bool(request.POST.get("post"))
    doomed = [(obj.pk, str(obj)) for obj in queryset] if confirmed else []
    response = delete_selected(modeladmin, request, queryset)
    if response is not None or len(doomed) < 2:
        return response
    address = services.client_address(request)
    meta = modeladmin.model._meta
    for pk, text in doomed:
        services.record(
            "admin.changed",
            f"admin deleted {meta.model_name} {text!r}",
            actor=request.user,
            address=address,
            details={
                "action": "deleted",
                "app_label": meta.app_label,
                "model": meta.model_name,
                "object_id": str(pk),
                "object_repr": text,
            },
        )
    return None


admin.site.add_action(delete_selected_with_audit, "delete_selected")


class AuditedModelAdmin(admin.ModelAdmin):
    """A ModelAdmin whose audit events contain each changed field's old and new value.

    Every admin change is recorded through its LogEntry (see audit.signals),
    but Django's change message names the fields only. This class adds
    ``fields`` (``{"name": {"from": old, "to": new}}``) to the event's
    details, and ``inlines`` with the same for each inline object, or
    ``"deleted": true`` for one deleted.
    """

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        _pending_changes(request)["fields"] = form_changes(form)
        super().save_model(request, obj, form, change)

    def save_formset(
        self,
        request: HttpRequest,
        form: forms.ModelForm,
        formset: BaseModelFormSet,
        change: bool,
    ) -> None:
        inlines = _pending_changes(request).setdefault("inlines", [])
        inlines.extend(formset_changes(formset))
        super().save_formset(request, form, formset, change)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        with change_details(_take_changes(request)):
            return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        with change_details(_take_changes(request)):
            return super().log_change(request, obj, message)


def _pending_changes(request: HttpRequest) -> dict[str, Any]:
    pending: dict[str, Any] = request.__dict__.setdefault(PENDING_CHANGES_ATTRIBUTE, {})
    return pending


def _take_changes(request: HttpRequest) -> dict[str, Any]:
    changes: dict[str, Any] = request.__dict__.pop(PENDING_CHANGES_ATTRIBUTE, {})
    return changes


def form_changes(form: forms.BaseForm) -> dict[str, dict[str, Any]]:
    """Return ``{"field": {"from": old, "to": new}}`` for each changed field."""
    return {
        name: {
            "from": plain_value(form.initial.get(name)),
            "to": plain_value(form.cleaned_data.get(name)),
        }
        for name in form.changed_data
    }


def formset_changes(formset: BaseModelFormSet) -> list[dict[str, Any]]:
    """Describe each added, changed or deleted object of an inline formset."""
    changes = []
    deleted = set(map(id, formset.deleted_forms))
    for form in formset.forms:
        instance = form.instance
        label = f"{instance._meta.model_name} {instance}"
        if id(form) in deleted:
            if instance.pk is not None:
                changes.append({"object": label, "deleted": True})
        elif form.has_changed():
            changes.append(
                {
                    "object": label,
                    "added": instance.pk is None,
                    "fields": form_changes(form),
                }
            )
    return changes


def plain_value(value: Any) -> Any:
    """Return ``value`` as JSON can store it: model objects become their text."""
    if isinstance(value, Model):
        return str(value)
    if isinstance(value, QuerySet | list | tuple | set):
        return [plain_value(item) for item in value]
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
