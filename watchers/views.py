from datetime import timedelta
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone
from django.views.generic import ListView

from watchers.choices import Health, IncidentState, Mode, Severity
from watchers.models import Incident, Watcher

RECENTLY_RESOLVED = timedelta(hours=24)
INCIDENTS_PER_PAGE = 50
MAX_WATCHER_NOTICES = 20


def _severity_rank() -> Case:
    """Sort key that puts critical incidents first and ranks resolved ones alike."""
    whens = [
        When(state=IncidentState.FIRING, severity=severity, then=Value(rank))
        for rank, severity in enumerate(Severity)
    ]
    return Case(*whens, default=Value(len(Severity)), output_field=IntegerField())


def listed_incidents() -> QuerySet[Incident]:
    """Return open incidents, then those resolved in the last 24 hours.

    Open incidents come most severe first, then newest first. Resolved ones come
    by resolution time, newest first.
    """
    resolved_after = timezone.now() - RECENTLY_RESOLVED
    listed = Q(state=IncidentState.FIRING) | Q(
        state=IncidentState.RESOLVED, resolved_at__gte=resolved_after
    )
    open_first = Case(
        When(state=IncidentState.FIRING, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        Incident.objects.filter(listed)
        .select_related("watcher")
        .annotate(open_rank=open_first, severity_rank=_severity_rank())
        .order_by(
            "open_rank",
            "severity_rank",
            F("resolved_at").desc(nulls_last=True),
            "-opened_at",
            "-pk",
        )
    )


def open_incident_summary() -> dict[str, Any]:
    """Count open incidents by severity, most severe first, and the shadow ones."""
    rows = list(
        Incident.objects.filter(state=IncidentState.FIRING)
        .values("severity")
        .annotate(count=Count("pk"), shadow=Count("pk", filter=Q(is_shadow=True)))
    )
    counts = {row["severity"]: row["count"] for row in rows}
    by_severity = [
        {"severity": severity.value, "label": severity.label, "count": count}
        for severity in Severity
        if (count := counts.get(severity.value))
    ]
    return {
        "total": sum(counts.values()),
        "by_severity": by_severity,
        "shadow": sum(row["shadow"] for row in rows),
    }


def unhealthy_watchers() -> QuerySet[Watcher]:
    """Return watchers whose last evaluation failed or returned too many series.

    Paused watchers are left out because nothing evaluates them, so their
    health is stale until they are resumed.
    """
    return (
        Watcher.objects.filter(health__in=[Health.ERROR, Health.TOO_MANY_SERIES])
        .exclude(mode=Mode.PAUSED)
        .order_by("-consecutive_errors", "name")
    )


class IncidentListView(LoginRequiredMixin, PermissionRequiredMixin, ListView):
    """Open incidents and those resolved in the last day, for on-call staff.

    Anonymous users are sent to the login page. Signed-in users without the
    view permission get 403 from PermissionRequiredMixin.
    """

    permission_required = "watchers.view_incident"
    template_name = "watchers/incident_list.html"
    context_object_name = "incidents"
    paginate_by = INCIDENTS_PER_PAGE

    def get_queryset(self) -> QuerySet[Incident]:
        return listed_incidents()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        page = context["page_obj"]
        watchers = unhealthy_watchers()
        context.update(
            summary=open_incident_summary(),
            unhealthy_watchers=watchers[:MAX_WATCHER_NOTICES],
            unhealthy_watcher_count=watchers.count(),
            page_range=page.paginator.get_elided_page_range(page.number),
        )
        return context
