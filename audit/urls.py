from django.urls import path

from audit import views

app_name = "audit"

export_view = views.AuditEventExportView.as_view()

urlpatterns = [
    path("", views.AuditEventListView.as_view(), name="event-list"),
    path("export.csv", export_view, {"export_format": "csv"}, name="event-export-csv"),
    path(
        "export.jsonl",
        export_view,
        {"export_format": "jsonl"},
        name="event-export-jsonl",
    ),
]
