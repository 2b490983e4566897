from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db.models import QuerySet
from django.views.generic import ListView

from watchers.models import Incident
from watchers.services.listing import (
    INCIDENTS_PER_PAGE,
    attach_row_details,
    listed_incidents,
    open_incident_summary,
    unhealthy_watchers,
)

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
