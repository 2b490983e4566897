from django.urls import path

from watchers import views

app_name = "watchers"

urlpatterns = [
    path("", views.IncidentListView.as_view(), name="incident-list"),
]
