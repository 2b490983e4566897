"""The limits every automated step passes before it acts.

In order: the kill switch, approval, the cooldown per action and target, and
the global budget of automated actions per hour. Dry runs change nothing, so
none of these limits applies to them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mitigations.actions.base import Action
from mitigations.choices import ApprovalPolicy, Risk, RunStatus
from mitigations.models import ActionRun, AutomationSwitch

EXECUTED_STATUSES = (
    RunStatus.RUNNING,
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.LOST,
)


@dataclass(frozen=True)
class Verdict:
    status: str  # a RunStatus; QUEUED means the step may run
    reason: str = ""


ALLOWED = Verdict(RunStatus.QUEUED)


def automation_switch() -> AutomationSwitch:
    switch, _ = AutomationSwitch.objects.get_or_create(pk=1)
    return switch


def needs_approval(run: ActionRun, action: Action, policy: str) -> bool:
    """Dry runs never wait; steps queued after the incident escalated do.

    Steps queued before the escalation were put on hold by hold_remaining,
    which lets the step in flight, or the next one in line, finish.
    """
    if run.dry_run:
        return False
    escalated_at = run.incident.escalated_at
    if escalated_at is not None and run.queued_at >= escalated_at:
        return True
    if policy == ApprovalPolicy.ALWAYS:
        return True
    if policy == ApprovalPolicy.NEVER:
        return False
    return action.risk == Risk.DESTRUCTIVE


def check_switch(switch: AutomationSwitch) -> Verdict:
    if switch.enabled:
        return ALLOWED
    who = f" by {switch.changed_by}" if switch.changed_by_id else ""
    reason = f": {switch.reason}" if switch.reason else ""
    return Verdict(RunStatus.BLOCKED, f"automation is switched off{who}{reason}")


def check_cooldown(run: ActionRun, now: datetime) -> Verdict:
    seconds = settings.ACTION_COOLDOWN_SECONDS
    if not seconds or not run.target:
        return ALLOWED
    since = now - timedelta(seconds=seconds)
    # A run still in progress counts too, so two incidents on one target
    # cannot both act at once (claims are serialised by the switch lock).
    recent = (
        ActionRun.objects.filter(action=run.action, target=run.target, dry_run=False)
        .filter(
            Q(status=RunStatus.SUCCEEDED, finished_at__gte=since)
            | Q(status=RunStatus.RUNNING)
        )
        .exclude(pk=run.pk)
        .order_by("-started_at")
        .first()
    )
    if recent is None:
        return ALLOWED
    if recent.status == RunStatus.RUNNING:
        return Verdict(
            RunStatus.SKIPPED,
            f"cooldown: {run.action} on {run.target} is running now (run "
            f"{recent.pk}, incident {recent.incident_id})",
        )
    assert recent.finished_at is not None
    allowed_at = recent.finished_at + timedelta(seconds=seconds)
    return Verdict(
        RunStatus.SKIPPED,
        f"cooldown: {run.action} on {run.target} succeeded at "
        f"{recent.finished_at:%H:%M:%S} (run {recent.pk}); it may run again from "
        f"{allowed_at:%H:%M:%S}",
    )


def check_budget(now: datetime) -> Verdict:
    """Must run while the automation switch row is locked, so counts cannot race."""
    budget = settings.AUTOMATION_BUDGET_PER_HOUR
    used = ActionRun.objects.filter(
        dry_run=False,
        status__in=EXECUTED_STATUSES,
        started_at__gte=now - timedelta(hours=1),
    ).count()
    if used < budget:
        return ALLOWED
    return Verdict(
        RunStatus.BLOCKED,
        f"budget exhausted: {used} automated actions in the last hour, the limit "
        f"is {budget} (BASTION_AUTOMATION_BUDGET_PER_HOUR); automation is paused "
        "until older actions leave the hour",
    )


def automation_pauses(now: datetime | None = None) -> list[str]:
    """Return why no automated step would run now: the switch or the budget.

    For the pages only. The budget is counted without the switch lock, so a
    step claimed at the same moment may change it. Each step checks again.
    """
    # Read, not get_or_create: a page view must not write, and a missing row
    # means the switch was never turned off.
    switch = AutomationSwitch.objects.select_related("changed_by").filter(pk=1).first()
    verdicts = [
        check_switch(switch or AutomationSwitch()),
        check_budget(now or timezone.now()),
    ]
    return [verdict.reason for verdict in verdicts if verdict != ALLOWED]
