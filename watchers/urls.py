from django.urls import path

from watchers import views

app_name = "watchers"

urlpatterns = [
    path("", views.IncidentListView.as_view(), name="incident-list"),
    path(
        "incidents/<int:pk>/",
        views.IncidentDetailView.as_view(),
        name="incident-detail",
    ),
    path(
        "incidents/<int:pk>/timeline/",
        views.IncidentTimelineView.as_view(),
        name="incident-timeline",
    ),
    path("watchers/", views.WatcherListView.as_view(), name="watcher-list"),
    path(
        "watchers/<int:pk>/mode/",
        views.WatcherModeView.as_view(),
        name="watcher-mode",
    ),
]
