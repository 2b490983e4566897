"""The audit log: who did what, when and from where. Rows are only ever added."""

from typing import Any, NoReturn

from django.conf import settings
from django.db import models


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event."""


def _refuse(operation: str) -> NoReturn:
    raise AppendOnlyError(
        f"audit events cannot be {operation}: the audit log is append-only; "
        "record a new event instead"
    )


# Deleting a user or an incident sets these to NULL. The snapshot columns
# keep who and which, so the event keeps its meaning.
DETACHABLE_FIELDS = frozenset({"actor", "actor_id", "incident", "incident_id"})


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        detaching = all(
            name in DETACHABLE_FIELDS and value is None
            for name, value in kwargs.items()
        )
        if not kwargs or not detaching:
            _refuse("updated")
        return super().update(**kwargs)

    def delete(self) -> NoReturn:
        _refuse("deleted")

    def _raw_delete(self, using: Any) -> NoReturn:
        _refuse("deleted")


class AuditEvent(models.Model):
    """One thing that happened: a decision, a notification, an admin change."""

    kind = models.CharField(max_length=60, db_index=True)
    summary = models.CharField(max_length=500)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty: Bastion's automation acted.",
    )
    # Snapshots, so the event still reads right after the user or the
    # incident is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    incident = models.ForeignKey(
        "watchers.Incident",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
    )
    incident_number = models.BigIntegerField(null=True, blank=True, db_index=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.summary}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            _refuse("updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleted")
