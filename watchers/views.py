from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import QuerySet
from django.views.generic import DetailView, ListView

from watchers.models import Incident
from watchers.services import charts
from watchers.services.listing import (
    INCIDENTS_PER_PAGE,
    attach_row_details,
    listed_incidents,
    open_incident_summary,
    unhealthy_watchers,
)
from watchers.services.timeline import incident_timeline

MAX_WATCHER_NOTICES = 20
VIEW_INCIDENT = "watchers.view_incident"


class IncidentListView(LoginRequiredMixin, PermissionRequiredMixin, ListView):
    """Open incidents and those resolved in the last day, for on-call staff.

    Anonymous users are sent to the login page. Signed-in users without the
    view permission get 403 from PermissionRequiredMixin.
    """

    permission_required = VIEW_INCIDENT
    template_name = "watchers/incident_list.html"
    context_object_name = "incidents"
    paginate_by = INCIDENTS_PER_PAGE

    def get_queryset(self) -> QuerySet[Incident]:
        return listed_incidents()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        page = context["page_obj"]
        page.object_list = attach_row_details(page.object_list)
        watchers = unhealthy_watchers()
        context.update(
            incidents=page.object_list,
            summary=open_incident_summary(),
            unhealthy_watchers=watchers[:MAX_WATCHER_NOTICES],
            unhealthy_watcher_count=watchers.count(),
            page_range=page.paginator.get_elided_page_range(page.number),
        )
        return context


class IncidentDetailView(LoginRequiredMixin, PermissionRequiredMixin, DetailView):
    """One incident: its facts, the metric around it, and its timeline."""

    permission_required = VIEW_INCIDENT
    template_name = "watchers/incident_detail.html"
    context_object_name = "incident"
    queryset = Incident.objects.select_related("watcher")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        incident = self.object
        history = charts.incident_history(incident)
        evaluations, evaluation_history = charts.evaluations_around_opening(incident)
        context.update(
            timeline_context(incident),
            history=history,
            chart=charts.chart_for(incident, history),
            evaluations=evaluations,
            evaluation_history=evaluation_history,
        )
        return context


class IncidentTimelineView(IncidentDetailView):
    """The parts of the incident page that change, for the page to fetch live."""

    template_name = "watchers/incident_live.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = DetailView.get_context_data(self, **kwargs)
        context.update(timeline_context(self.object))
        return context


def timeline_context(incident: Incident) -> dict[str, Any]:
    attach_row_details([incident])
    return {"timeline": incident_timeline(incident)}
