from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView


class IncidentListView(LoginRequiredMixin, TemplateView):
    template_name = "watchers/incident_list.html"
