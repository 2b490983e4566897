from typing import Any

from django.contrib import admin
from django.contrib.admin.actions import delete_selected
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy

from audit import services
from audit.models import AuditEvent


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
