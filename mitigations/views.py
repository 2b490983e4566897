"""Pages where people decide on waiting steps and propose steps of their own.

A GET never decides anything, because chat apps and mail scanners fetch
links to preview them. Decisions are POST forms with the CSRF token.
"""

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import ListView

from audit.services import client_address, record
from bastion.pagination import NearestPageMixin
from mitigations.actions.base import ActionError
from mitigations.actions.redis_store import lift_temporary
from mitigations.choices import RunStatus
from mitigations.models import Approval, Decision, TemporaryMitigation
from mitigations.registry import action_names
from mitigations.services import approvals
from watchers.models import Incident

VIEW_PERMISSION = "mitigations.view_approval"
PROPOSE_PERMISSION = "mitigations.add_approval"
LIFT_PERMISSION = "mitigations.lift_temporarymitigation"
APPROVALS_PER_PAGE = 50


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )


def action_choices() -> list[tuple[str, str]]:
    return [("", "---------"), *[(name, name) for name in sorted(action_names())]]


class ProposalForm(forms.Form):
    action = forms.ChoiceField(choices=action_choices)
    parameters = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text='Parameters as a JSON object, such as {"deployment": "web"}. '
        "Empty: the action's defaults and the incident's labels.",
    )

    def __init__(self, *args: Any, labels: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.labels = labels

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "action" not in cleaned:
            return cleaned
        try:
            cleaned["proposal"] = approvals.parse_proposal(
                cleaned["action"], cleaned.get("parameters", ""), self.labels
            )
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        return cleaned


def approval_queryset() -> QuerySet[Approval]:
    return Approval.objects.select_related(
        "run",
        "run__incident",
        "run__incident__watcher",
        "requested_by",
        "decided_by",
    )


class ApprovalListView(
    LoginRequiredMixin, PermissionRequiredMixin, NearestPageMixin, ListView
):
    """Pending approvals whose steps still wait, the oldest request first."""

    permission_required = VIEW_PERMISSION
    template_name = "mitigations/approval_list.html"
    context_object_name = "approvals"
    paginate_by = APPROVALS_PER_PAGE

    def get_queryset(self) -> QuerySet[Approval]:
        return (
            approval_queryset()
            .filter(decision=Decision.PENDING, run__status=RunStatus.WAITING_APPROVAL)
            .order_by("requested_at", "pk")
        )


class ApprovalDetailView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """One approval: the incident, the step, the metric now, and the decision."""

    permission_required = VIEW_PERMISSION

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        approval = get_object_or_404(approval_queryset(), pk=pk)
        return render_approval(request, approval)


def render_approval(
    request: HttpRequest,
    approval: Approval,
    *,
    error: str = "",
    status: int = 200,
    form: DecisionForm | None = None,
) -> HttpResponse:
    run = approval.run
    incident = run.incident
    can_decide = approvals.can_decide(request.user)
    waiting = approval.is_pending and run.status == RunStatus.WAITING_APPROVAL
    context = {
        "approval": approval,
        "run": run,
        "incident": incident,
        "watcher": incident.watcher,
        "parameters": json.dumps(run.inputs, indent=2, sort_keys=True),
        "reading": approvals.current_reading(incident),
        "decision_text": approvals.describe_decision(approval),
        "waiting": waiting,
        "can_decide": can_decide,
        "own_destructive_proposal": (
            approval.requested_by_id == request.user.pk and run.risk == "destructive"
        ),
        "form": form or DecisionForm(),
        "error": error,
    }
    return render(request, "mitigations/approval_detail.html", context, status=status)


class ApprovalDecideView(View):
    """Take the decision from the approval page's POST form, never from a GET.

    The sign-in check sits in post(), not in a mixin, so that a GET gets 405
    from every visitor rather than a redirect to the login page.
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(reverse("mitigations:approval-detail", args=[pk]))
        approval = get_object_or_404(approval_queryset(), pk=pk)
        form = DecisionForm(request.POST)
        if not form.is_valid():
            return render_approval(request, approval, form=form, status=400)
        try:
            decided = approvals.decide(
                approval.pk,
                request.user,
                approve=form.cleaned_data["decision"] == "approve",
                comment=form.cleaned_data["comment"],
                address=client_address(request),
            )
        except approvals.DecisionError as error:
            approval.refresh_from_db()
            return render_approval(
                request, approval, error=str(error), status=error.status_code
            )
        messages.success(request, f"You {decided.decision} {approval.run.action}.")
        return redirect("mitigations:approval-detail", pk=approval.pk)


class ApprovalLinkView(View):
    """Open the approval that a notification's signed link names.

    The token only identifies the approval. Signing in is still required,
    and the approval page checks permissions as for any visitor.
    """

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        try:
            approval_id = approvals.approval_from_token(token)
        except approvals.LinkExpired:
            return link_error(request, status=410)
        except approvals.LinkInvalid:
            return link_error(request, status=400)
        target = reverse("mitigations:approval-detail", args=[approval_id])
        if not request.user.is_authenticated:
            return redirect_to_login(target)
        return HttpResponseRedirect(target)


def link_error(request: HttpRequest, status: int) -> HttpResponse:
    context = {"expired": status == 410, "minutes": approvals.timeout_seconds() // 60}
    return render(request, "mitigations/link_error.html", context, status=status)


class IncidentApprovalsView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """An incident's approvals, and the form to propose a step by hand."""

    permission_required = VIEW_PERMISSION

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        incident = get_object_or_404(Incident.objects.select_related("watcher"), pk=pk)
        return render_incident(request, incident, ProposalForm())


def render_incident(
    request: HttpRequest, incident: Incident, form: ProposalForm, status: int = 200
) -> HttpResponse:
    context = {
        "incident": incident,
        "approvals": approval_queryset()
        .filter(run__incident=incident)
        .order_by("-requested_at", "-pk"),
        "form": form,
        "can_propose": request.user.has_perm(PROPOSE_PERMISSION),
    }
    return render(
        request, "mitigations/incident_approvals.html", context, status=status
    )


class ProposeActionView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """Create a manual step that waits for approval."""

    permission_required = PROPOSE_PERMISSION
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        incident = get_object_or_404(Incident.objects.select_related("watcher"), pk=pk)
        form = ProposalForm(request.POST, labels=incident.labels)
        if incident.resolved_at is not None:
            form.add_error(None, f"incident #{incident.pk} is resolved: nothing to do")
        if not form.is_valid():
            return render_incident(request, incident, form, status=400)
        approval = approvals.propose(
            incident,
            form.cleaned_data["proposal"],
            request.user,
            client_address(request),
        )
        messages.success(
            request,
            f"You proposed {approval.run.action}; it waits for approval.",
        )
        return redirect("mitigations:approval-detail", pk=approval.pk)


class TemporaryMitigationListView(
    LoginRequiredMixin, PermissionRequiredMixin, ListView
):
    """IP blocks and lowered rate limits in force, and those ended in the last day."""

    permission_required = "mitigations.view_temporarymitigation"
    template_name = "mitigations/temporary_list.html"
    context_object_name = "active"

    def get_queryset(self) -> QuerySet[TemporaryMitigation]:
        return TemporaryMitigation.objects.filter(
            lifted_at__isnull=True, expires_at__gt=timezone.now()
        ).select_related("run", "run__incident", "run__incident__watcher")

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        context["ended"] = (
            TemporaryMitigation.objects.filter(
                Q(lifted_at__gte=now - timedelta(days=1))
                | Q(lifted_at__isnull=True, expires_at__lte=now)
            )
            .filter(expires_at__gte=now - timedelta(days=1))
            .select_related("lifted_by")
            .order_by("-expires_at")[:100]
        )
        context["can_lift"] = self.request.user.has_perm(LIFT_PERMISSION)
        return context


class TemporaryMitigationLiftView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """End an IP block or restore a rate limit before it expires (POST only)."""

    permission_required = LIFT_PERMISSION
    http_method_names = ["post"]

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        mitigation = get_object_or_404(TemporaryMitigation, pk=pk)
        try:
            lift_temporary(mitigation, request.user)
        except ActionError as error:
            messages.error(request, f"Could not lift {mitigation.target}: {error}")
        else:
            record(
                "mitigation.lifted",
                f"{mitigation.get_kind_display()} on {mitigation.target} lifted",
                actor=request.user,
                address=client_address(request),
                incident_id=mitigation.run.incident_id if mitigation.run else None,
                details={"redis_key": mitigation.redis_key},
            )
            messages.success(request, f"Lifted {mitigation.target}.")
        return redirect("mitigations:temporary-list")
