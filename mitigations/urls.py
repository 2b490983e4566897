from django.urls import path

from mitigations import views

app_name = "mitigations"

urlpatterns = [
    path("approvals/", views.ApprovalListView.as_view(), name="approval-list"),
    path(
        "approvals/<int:pk>/",
        views.ApprovalDetailView.as_view(),
        name="approval-detail",
    ),
    path(
        "approvals/<int:pk>/decide/",
        views.ApprovalDecideView.as_view(),
        name="approval-decide",
    ),
    path(
        "approvals/link/<str:token>/",
        views.ApprovalLinkView.as_view(),
        name="approval-link",
    ),
    path(
        "approvals/incidents/<int:pk>/",
        views.IncidentApprovalsView.as_view(),
        name="incident-approvals",
    ),
    path(
        "mitigations/temporary/",
        views.TemporaryMitigationListView.as_view(),
        name="temporary-list",
    ),
    path(
        "mitigations/temporary/<int:pk>/lift/",
        views.TemporaryMitigationLiftView.as_view(),
        name="temporary-lift",
    ),
    path(
        "approvals/incidents/<int:pk>/propose/",
        views.ProposeActionView.as_view(),
        name="incident-propose",
    ),
]
