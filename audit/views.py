import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views import View
from django.views.generic import ListView

from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from bastion.pagination import NearestPageMixin

EVENTS_PER_PAGE = 50
EXPORT_CHUNK_ROWS = 500
EXPORT_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "summary",
    "actor_name",
    "address",
    "incident_number",
    "details",
]


def filtered_events(
    request: HttpRequest,
) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET or None)
    return form, form.filter(AuditEvent.objects.all())


class AuditEventListView(
    LoginRequiredMixin, PermissionRequiredMixin, NearestPageMixin, ListView
):
    """The audit log, newest first, with filters and links to export them."""

    permission_required = "audit.view_auditevent"
    template_name = "audit/event_list.html"
    context_object_name = "events"
    paginate_by = EVENTS_PER_PAGE

    def get_queryset(self) -> QuerySet[AuditEvent]:
        self.form, events = filtered_events(self.request)
        return events

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        page = context["page_obj"]
        context.update(
            form=self.form,
            filter_query=query.urlencode(),
            page_range=page.paginator.get_elided_page_range(page.number),
        )
        return context


class AuditEventExportView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """Stream the filtered events as CSV or JSON Lines, oldest first."""

    permission_required = "audit.view_auditevent"

    def get(self, request: HttpRequest, export_format: str) -> HttpResponseBase:
        form, events = filtered_events(request)
        if form.is_bound and not form.is_valid():
            return HttpResponseBadRequest(
                f"invalid filter, nothing exported: {form.error_text()}",
                content_type="text/plain; charset=utf-8",
            )
        rows = events.order_by("created_at", "pk").iterator(
            chunk_size=EXPORT_CHUNK_ROWS
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if export_format == "csv":
            response = StreamingHttpResponse(
                _csv_lines(rows), content_type="text/csv; charset=utf-8"
            )
        else:
            response = StreamingHttpResponse(
                _json_lines(rows), content_type="application/jsonl; charset=utf-8"
            )
        filename = f"bastion-audit-{stamp}.{export_format}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


def _as_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "kind": event.kind,
        "summary": event.summary,
        "actor_name": event.actor_name,
        "address": event.address or "",
        "incident_number": event.incident_number,
        "details": event.details,
    }


class _Echo:
    """A file-like object whose write returns the line, for csv.writer."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    for event in events:
        row = _as_row(event)
        row["details"] = json.dumps(row["details"], sort_keys=True)
        yield writer.writerow([_defuse(row[column]) for column in EXPORT_COLUMNS])


def _defuse(value: Any) -> Any:
    """Keep spreadsheets from running a cell that starts like a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return f"'{value}"
    return value


def _json_lines(events: Iterator[AuditEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(_as_row(event), sort_keys=True) + "\n"
