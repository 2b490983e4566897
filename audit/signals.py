"""Record every change made through the Django admin in the audit log.

ModelAdmin.log_addition, log_change and log_deletion write a LogEntry row
for each object, in every ModelAdmin, including those of django.contrib.auth.
A post_save handler on LogEntry therefore receives them all without each admin
class having to opt in.

The admin's "delete selected" action writes the LogEntry rows of two or
more objects with bulk_create, which sends no post_save; audit.admin
replaces that action with one that records those deletions itself.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.contrib.admin.models import ADDITION, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from audit import services
from audit.middleware import current_address

ACTION_WORDS = {ADDITION: "added", DELETION: "deleted"}

# Old and new values of what an admin form changed. AuditedModelAdmin sets
# them while Django writes the LogEntry, and the event stores them.
admin_change_details: ContextVar[dict[str, Any] | None] = ContextVar(
    "admin_change_details", default=None
)


@contextmanager
def change_details(details: dict[str, Any]) -> Iterator[None]:
    """Add ``details`` to the audit event of the LogEntry written in this block."""
    token = admin_change_details.set(details)
    try:
        yield
    finally:
        admin_change_details.reset(token)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit_admin_change")
def record_admin_change(
    sender: type[LogEntry], instance: LogEntry, created: bool, **kwargs: Any
) -> None:
    if not created:
        return
    record_log_entry(instance)


def record_log_entry(entry: LogEntry) -> None:
    verb = ACTION_WORDS.get(entry.action_flag, "changed")
    model = entry.content_type.model if entry.content_type else "object"
    message = entry.get_change_message()
    summary = f"admin {verb} {model} {entry.object_repr!r}"
    if message and verb == "changed":
        summary = f"{summary}: {message}"
    details = {
        "log_entry_id": entry.pk,
        "action": verb,
        "app_label": entry.content_type.app_label if entry.content_type else "",
        "model": model,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "change_message": message,
        **(admin_change_details.get() or {}),
    }
    services.record(
        "admin.changed",
        summary,
        actor=entry.user,
        address=current_address.get(),
        details=details,
    )
