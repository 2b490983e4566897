from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.models import AuditEvent


class AuditFilterForm(forms.Form):
    """Filters of the audit page; every field is optional and they combine."""

    kind = forms.CharField(
        required=False, max_length=60, label="Kind (or its start, such as approval.)"
    )
    incident = forms.IntegerField(required=False, min_value=1, label="Incident #")
    actor = forms.CharField(required=False, max_length=150, label="Username")
    since = forms.DateField(
        required=False, label="From day", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False,
        label="To day (inclusive)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    q = forms.CharField(required=False, max_length=200, label="Text")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            raise forms.ValidationError(
                f"the start day {since} is after the end day {until}: swap them"
            )
        return cleaned

    def error_text(self) -> str:
        """Return every error of the filters on one line, each with its field."""
        parts: list[str] = []
        for name, errors in self.errors.items():
            where = "" if name == NON_FIELD_ERRORS else f"{name}: "
            parts.extend(f"{where}{error}" for error in errors)
        return "; ".join(parts)

    def filter(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """Narrow ``events`` to the filters, or to nothing when one is invalid.

        Every row would be the opposite of what someone who asked for one
        incident, or for a range of days, meant to see or export.
        """
        if not self.is_bound:
            return events
        if not self.is_valid():
            return events.none()
        data = self.cleaned_data
        if data["kind"]:
            events = events.filter(kind__startswith=data["kind"])
        if data["incident"]:
            events = events.filter(incident_number=data["incident"])
        if data["actor"]:
            events = events.filter(actor_name__iexact=data["actor"])
        if data["since"]:
            events = events.filter(created_at__gte=_day_start(data["since"]))
        if data["until"]:
            next_day = data["until"] + timedelta(days=1)
            events = events.filter(created_at__lt=_day_start(next_day))
        if data["q"]:
            text = data["q"]
            events = events.filter(
                Q(summary__icontains=text) | Q(details__icontains=text)
            )
        return events


def _day_start(day: date) -> datetime:
    """Return midnight at the start of ``day`` in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))
