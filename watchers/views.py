from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import DetailView, ListView

from audit.services import client_address
from bastion.pagination import NearestPageMixin
from mitigations.services.approvals import can_decide
from mitigations.services.guardrails import automation_pauses
from watchers.choices import Mode
from watchers.forms import WatcherFilterForm, WatcherModeForm
from watchers.models import Incident, Watcher
from watchers.services import charts, modes
from watchers.services.listing import (
    INCIDENTS_PER_PAGE,
    attach_row_details,
    listed_incidents,
    listed_watchers,
    open_incident_summary,
    unhealthy_watchers,
)
from watchers.services.timeline import incident_timeline

MAX_WATCHER_NOTICES = 20
WATCHERS_PER_PAGE = 100
VIEW_INCIDENT = "watchers.view_incident"


class IncidentListView(
    LoginRequiredMixin, PermissionRequiredMixin, NearestPageMixin, ListView
):
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
            can_decide=can_decide(self.request.user),
            automation_pauses=automation_pauses(),
        )
        return context


class _IncidentView(LoginRequiredMixin, PermissionRequiredMixin, DetailView):
    """One incident, for users who may view incidents."""

    permission_required = VIEW_INCIDENT
    context_object_name = "incident"
    queryset = Incident.objects.select_related("watcher")


class IncidentDetailView(_IncidentView):
    """One incident: its facts, the metric around it, and its timeline."""

    template_name = "watchers/incident_detail.html"

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


class IncidentTimelineView(_IncidentView):
    """The parts of the incident page that change, for the page to fetch live.

    It leaves out the chart and the evaluations, so a refresh sends no
    query to Prometheus.
    """

    template_name = "watchers/incident_live.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(timeline_context(self.object))
        return context


def timeline_context(incident: Incident) -> dict[str, Any]:
    attach_row_details([incident])
    return {"timeline": incident_timeline(incident)}


class WatcherListView(
    LoginRequiredMixin, PermissionRequiredMixin, NearestPageMixin, ListView
):
    """Every watcher with its mode, state, last value and last error."""

    permission_required = "watchers.view_watcher"
    template_name = "watchers/watcher_list.html"
    context_object_name = "watchers"
    paginate_by = WATCHERS_PER_PAGE

    def get_queryset(self) -> QuerySet[Watcher]:
        self.form = WatcherFilterForm(self.request.GET or None)
        return listed_watchers(**self.form.filters())

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        page = context["page_obj"]
        context.update(
            form=self.form,
            filter_query=query.urlencode(),
            page_range=page.paginator.get_elided_page_range(page.number),
            mode_form=WatcherModeForm(),
            automation_pauses=automation_pauses(),
        )
        return context


class WatcherModeView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """Pause, resume or shadow a watcher (POST only), recorded in the audit log."""

    permission_required = "watchers.change_watcher_mode"
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        watcher = get_object_or_404(Watcher, pk=pk)
        form = WatcherModeForm(request.POST)
        if not form.is_valid():
            return HttpResponseBadRequest(
                f"invalid mode {request.POST.get('mode')!r}: send one of "
                + ", ".join(Mode.values)
            )
        try:
            changed = modes.change_mode(
                watcher.pk,
                form.cleaned_data["mode"],
                request.user,
                client_address(request),
            )
        except modes.ModeUnchanged as error:
            messages.info(request, str(error))
        else:
            verb = modes.MODE_VERBS[Mode(changed.mode)]
            messages.success(request, f"You {verb} watcher {changed.name}.")
        return redirect(_back_to(request))


def _back_to(request: HttpRequest) -> str:
    """Return the page the form came from, if it is on this site."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "watchers:watcher-list"
