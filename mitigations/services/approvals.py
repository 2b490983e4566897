"""Approvals: the human decision a waiting step needs before it runs.

A step waits for approval when it is destructive, when its incident has
escalated, or when an operator proposed it by hand. Each waiting run gets
one Approval row, and a person with the decide permission approves or
rejects it once. A conditional UPDATE from pending decides who was first, so
two people deciding at the same moment leave exactly one decision. A request
nobody decides in time expires, and its incident escalates one level.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from audit import services as audit
from mitigations.actions.base import ParameterError
from mitigations.choices import Risk, RunStatus
from mitigations.models import ActionRun, Approval, Decision, MitigationAttempt
from mitigations.registry import UnknownActionError, get_action
from mitigations.services import chain
from mitigations.services.parameters import check_step, resolve
from mitigations.services.verification import series_recovered
from watchers.models import Incident
from watchers.services import live
from watchers.services.judging import fingerprint
from watchers.services.prometheus import PrometheusClient, PrometheusError

logger = logging.getLogger(__name__)

Person = User | AnonymousUser

DECIDE_PERMISSION = "mitigations.decide_approval"
DEFAULT_TIMEOUT_SECONDS = 1800
LINK_SALT = "mitigations.approval-link"
MANUAL_NOTE_PREFIX = "manual:"


class DecisionError(Exception):
    """A decision that was not taken. The message tells the person why."""

    status_code = 409


class SelfApprovalError(DecisionError):
    """The person who proposed a destructive step tried to approve it."""

    status_code = 403


class AlreadyDecided(DecisionError):
    def __init__(self, approval: Approval) -> None:
        super().__init__(describe_decision(approval, already=True))
        self.approval = approval


class LinkInvalid(Exception):
    """A tampered or malformed approval link."""


class LinkExpired(Exception):
    """An approval link older than its maximum age."""


@dataclass(frozen=True)
class Proposal:
    action: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class Reading:
    """The incident's series as Prometheus returns it now."""

    value: float | None
    still_firing: bool | None  # None when unknown, with the reason in ``detail``
    detail: str


def timeout_seconds() -> int:
    return int(getattr(settings, "APPROVAL_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS))


def describe_decision(approval: Approval, *, already: bool = False) -> str:
    """Describe how the approval ended.

    ``already`` words it for someone who has just tried to decide it.
    """
    if approval.decision == Decision.PENDING:
        return f"approval {approval.pk} is still pending"
    if approval.decision == Decision.EXPIRED:
        return (
            f"approval {approval.pk} {'had ' if already else ''}expired at "
            f"{approval.decided_at:%Y-%m-%d %H:%M:%S %Z} without a decision"
        )
    if approval.decision == Decision.WITHDRAWN:
        # The run's error contains the reason its attempt ended: the incident
        # resolved, or an earlier step failed or was rejected.
        reason = f" ({approval.run.error})" if approval.run.error else ""
        return (
            f"approval {approval.pk} was {'already ' if already else ''}withdrawn "
            f"at {approval.decided_at:%Y-%m-%d %H:%M:%S %Z} before anyone "
            f"decided{reason}"
        )
    who = approval.decided_by.get_username() if approval.decided_by else "someone"
    return (
        f"approval {approval.pk} was {'already ' if already else ''}"
        f"{approval.decision} by {who} at "
        f"{approval.decided_at:%Y-%m-%d %H:%M:%S %Z}"
    )


# Links


def approval_url(approval: Approval) -> str:
    """Return the absolute link to the approval page that a notification carries.

    The signed token names the approval and expires after the approval
    timeout. It grants nothing: the page still requires signing in.
    """
    token = signing.dumps({"approval": approval.pk}, salt=LINK_SALT)
    path = reverse("mitigations:approval-link", args=[token])
    return f"{settings.BASE_URL.rstrip('/')}{path}"


def incident_url(incident: Incident) -> str:
    """Return the absolute link to the incident's approvals and proposals."""
    path = reverse("mitigations:incident-approvals", args=[incident.pk])
    return f"{settings.BASE_URL.rstrip('/')}{path}"


def approval_from_token(token: str) -> int:
    """Return the approval id that a link names, or raise LinkInvalid or LinkExpired."""
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=timeout_seconds())
    except signing.SignatureExpired:
        raise LinkExpired(token) from None
    except signing.BadSignature:
        raise LinkInvalid(token) from None
    approval_id = payload.get("approval") if isinstance(payload, dict) else None
    if not isinstance(approval_id, int):
        raise LinkInvalid(token)
    return approval_id


def current_reading(
    incident: Incident, client: PrometheusClient | None = None
) -> Reading:
    """Query the watcher now, for the person deciding whether a step still helps."""
    if incident.watcher is None:
        return Reading(None, None, "the incident has no watcher to query")
    client = client or PrometheusClient()
    try:
        samples = client.query(incident.watcher.query)
    except PrometheusError as error:
        return Reading(None, None, f"the query failed: {error}")
    value = next(
        (s.value for s in samples if fingerprint(s.labels) == incident.fingerprint),
        None,
    )
    recovered, detail = series_recovered(incident, client)
    still_firing = None if recovered is None else not recovered
    return Reading(value, still_firing, detail)


# Requests


def request_approval(
    run_id: int, requested_by: Person | None = None
) -> Approval | None:
    """Create the approval for a waiting run once, and ask people to decide.

    Calling it again for the same run returns the existing row and sends
    nothing. Returns None when the run is gone or no longer waits.
    """
    run = ActionRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    existing = Approval.objects.filter(run=run).first()
    if existing is not None:
        return existing
    if run.status != RunStatus.WAITING_APPROVAL:
        return None

    now = timezone.now()
    person = requested_by if requested_by and requested_by.is_authenticated else None
    approval, created = Approval.objects.get_or_create(
        run=run,
        defaults={
            "requested_by": person,
            "requested_at": now,
            "expires_at": now + timedelta(seconds=timeout_seconds()),
        },
    )
    if created:
        logger.info(
            "approval %s requested for run %s (%s) of incident %s",
            approval.pk,
            run.pk,
            run.action,
            run.incident_id,
        )
        audit.record(
            "approval.requested",
            f"approval requested for {run.action} (run {run.pk}) of incident "
            f"{run.incident_id}",
            actor=requested_by,
            incident_id=run.incident_id,
            details={
                "approval_id": approval.pk,
                "run_id": run.pk,
                "action": run.action,
            },
        )
        transaction.on_commit(lambda: _notify(approval.pk))
    return approval


def _notify(approval_id: int) -> None:
    try:
        from escalations.services import notify_decision_needed
    except ImportError:
        logger.warning(
            "approval %s: escalations.services.notify_decision_needed is missing; "
            "nobody was notified",
            approval_id,
        )
        return
    # A failed notification must not undo the request: the approval stays
    # pending, listed on the dashboard, and expires into an escalation.
    try:
        notify_decision_needed(approval_id)
    except Exception:
        logger.exception("approval %s: notifying the receivers failed", approval_id)


def parse_proposal(
    action_name: str, parameters_text: str, labels: dict[str, str] | None = None
) -> Proposal:
    """Validate an operator's proposed action, or raise ValueError with what to fix.

    With the incident's ``labels``, the parameters are also resolved as the
    run will resolve them, so a missing label or default fails here.
    """
    try:
        action = get_action(action_name)
    except UnknownActionError:
        raise ValueError(
            f"{action_name!r} is not a known action: choose one from the list"
        ) from None
    try:
        values = json.loads(parameters_text or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"the parameters are not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(
            'the parameters must be a JSON object, such as {"replicas": 3}'
        )
    try:
        check_step(action, values)
    except ParameterError as error:
        raise ValueError(f"invalid parameters for {action_name}: {error}") from None
    if labels is not None:
        try:
            resolve(action, values, labels)
        except ParameterError as error:
            raise ValueError(
                f"{action_name} cannot run on this incident: {error}"
            ) from None
    return Proposal(action_name, values)


def propose(
    incident: Incident, proposal: Proposal, user: Person, address: str | None
) -> Approval:
    """Create a manual step for ``incident`` that waits for someone's approval.

    The step gets an attempt of its own, numbered after every existing one
    and above the automatic attempts' maximum, so the automatic chain never
    collides with it.
    """
    now = timezone.now()
    action = get_action(proposal.action)
    with transaction.atomic():
        Incident.objects.select_for_update().filter(pk=incident.pk).first()
        attempt = MitigationAttempt.objects.create(
            incident=incident,
            number=_next_manual_number(incident),
            started_at=now,
            note=f"{MANUAL_NOTE_PREFIX} {proposal.action} proposed by "
            f"{user.get_username()}",
        )
        run = ActionRun.objects.create(
            attempt=attempt,
            incident=incident,
            position=1,
            action=proposal.action,
            risk=str(action.risk),
            status=RunStatus.WAITING_APPROVAL,
            inputs=chain.redact(proposal.parameters),
            # The target the step will act on: site defaults and labels
            # filled in, as the run resolves them.
            target=action.target(resolve(action, proposal.parameters, incident.labels))[
                :300
            ],
            queued_at=now,
        )
        approval = Approval.objects.create(
            run=run,
            requested_by=user if user.is_authenticated else None,
            requested_at=now,
            expires_at=now + timedelta(seconds=timeout_seconds()),
        )
        transaction.on_commit(lambda: _notify(approval.pk))
        audit.record(
            "approval.proposed",
            f"{user.get_username()} proposed {proposal.action} "
            f"({action.risk}) for incident {incident.pk}",
            actor=user,
            address=address,
            incident_id=incident.pk,
            details={
                "approval_id": approval.pk,
                "run_id": run.pk,
                "action": proposal.action,
                "parameters": run.inputs,
            },
        )
    return approval


def _next_manual_number(incident: Incident) -> int:
    highest = incident.attempts.aggregate(highest=Max("number"))["highest"] or 0
    return max(highest, settings.MAX_MITIGATION_ATTEMPTS) + 1


# Decisions


def can_decide(user: Person) -> bool:
    return bool(user.is_authenticated and user.has_perm(DECIDE_PERMISSION))


def check_decider(approval: Approval, user: Person, approve: bool) -> None:
    """Raise PermissionDenied or DecisionError when ``user`` may not decide."""
    if not can_decide(user):
        raise PermissionDenied(
            f"deciding approvals needs the {DECIDE_PERMISSION} permission"
        )
    # Someone whose own proposal was withdrawn or decided needs to hear that
    # nothing waits any more, not that another person must approve it.
    if approval.decision != Decision.PENDING:
        raise AlreadyDecided(approval)
    proposed_by_self = (
        approval.requested_by_id is not None and approval.requested_by_id == user.pk
    )
    if approve and proposed_by_self and approval.run.risk == Risk.DESTRUCTIVE:
        raise SelfApprovalError(
            f"you proposed this destructive step ({approval.run.action}), so "
            "another person must approve it"
        )


def decide(
    approval_id: int,
    user: Person,
    *,
    approve: bool,
    comment: str = "",
    address: str | None = None,
) -> Approval:
    """Approve or reject a pending approval once, and return it as decided.

    Approve queues the step to run at once. Reject finishes the step as
    rejected, and the chain goes on as after a failed step.
    """
    approval = Approval.objects.select_related("run", "decided_by").get(pk=approval_id)
    check_decider(approval, user, approve)

    now = timezone.now()
    decision = Decision.APPROVED if approve else Decision.REJECTED
    with transaction.atomic():
        won = Approval.objects.filter(pk=approval.pk, decision=Decision.PENDING).update(
            decision=decision,
            decided_by=user,
            decided_at=now,
            comment=comment,
            decided_from=address,
        )
        if won != 1:
            raise AlreadyDecided(Approval.objects.get(pk=approval.pk))
        _settle_run(approval.run, user, approve, comment, now)
        live.publish_after_commit("approval", approval.pk)
        audit.record(
            "approval.decided",
            f"{user.get_username()} {decision.value} {approval.run.action} "
            f"(run {approval.run_id}) for incident {approval.run.incident_id}",
            actor=user,
            address=address,
            incident_id=approval.run.incident_id,
            details={
                "approval_id": approval.pk,
                "run_id": approval.run_id,
                "action": approval.run.action,
                "decision": decision.value,
                "comment": comment,
            },
        )
    logger.info(
        "approval %s for run %s %s by %s",
        approval.pk,
        approval.run_id,
        decision.value,
        user.get_username(),
    )
    return Approval.objects.select_related("decided_by").get(pk=approval.pk)


def _settle_run(
    run: ActionRun, user: Person, approve: bool, comment: str, now: datetime
) -> None:
    """Move the run out of waiting, or raise to roll back the decision if it left."""
    waiting = ActionRun.objects.filter(pk=run.pk, status=RunStatus.WAITING_APPROVAL)
    reason = f"rejected by {user.get_username()}"
    if comment:
        reason = f"{reason}: {comment}"
    if approve:
        moved = waiting.update(status=RunStatus.APPROVED)
    else:
        moved = waiting.update(status=RunStatus.REJECTED, error=reason, finished_at=now)
    if moved != 1:
        current = ActionRun.objects.get(pk=run.pk)
        raise DecisionError(
            f"the step no longer waits for a decision: it is {current.status}"
        )

    if approve:
        transaction.on_commit(lambda: _run_now(run.pk))
    else:
        _continue_chain(run.pk, RunStatus.REJECTED, reason, now)


def _run_now(run_id: int) -> None:
    from mitigations.tasks import run_mitigation_step

    run_mitigation_step.delay(run_id)


def _continue_chain(run_id: int, status: str, reason: str, now: datetime) -> None:
    """Go on after a step that did not run, as after a failed step.

    A manual attempt has this one step, so it ends here.
    """
    run = ActionRun.objects.select_related("attempt").get(pk=run_id)
    if chain.earlier_steps_open(run):
        # The steps before it still run or wait for their own decision. The
        # chain counts this outcome when it reaches the step.
        return
    result = chain.after_run(run, status, reason, now)
    transaction.on_commit(lambda: _follow(result))


def _follow(result: chain.StepResult) -> None:
    from mitigations.tasks import follow

    follow(result)


# Expiry


def expire_approvals(now: datetime | None = None) -> list[int]:
    """Expire pending approvals past their time, and return their ids.

    A step that still waited is not run, and the chain goes on as after a
    failed step. Each open incident with such a step escalates one level,
    once per sweep however many of its steps expired.
    """
    now = now or timezone.now()
    due = Approval.objects.filter(decision=Decision.PENDING, expires_at__lte=now)
    expired: list[int] = []
    to_escalate: set[int] = set()
    for approval in due.select_related("run", "run__incident"):
        outcome = _expire_one(approval, now)
        if outcome is None:
            continue
        expired.append(approval.pk)
        if outcome and approval.run.incident.resolved_at is None:
            to_escalate.add(approval.run.incident_id)
    for incident_id in sorted(to_escalate):
        _escalate(incident_id)
    return expired


def _expire_one(approval: Approval, now: datetime) -> bool | None:
    """Expire one approval, or return None if someone decided first.

    Otherwise return whether its step still waited for the decision.
    """
    minutes = timeout_seconds() / 60
    reason = f"not run: nobody decided within {minutes:g} min, so the request expired"
    with transaction.atomic():
        won = Approval.objects.filter(pk=approval.pk, decision=Decision.PENDING).update(
            decision=Decision.EXPIRED, decided_at=now
        )
        if won != 1:
            return None
        live.publish_after_commit("approval", approval.pk)
        waited = ActionRun.objects.filter(
            pk=approval.run_id, status=RunStatus.WAITING_APPROVAL
        ).update(status=RunStatus.SKIPPED, error=reason, finished_at=now)
        if waited:
            _continue_chain(approval.run_id, Decision.EXPIRED, reason, now)
        audit.record(
            "approval.expired",
            f"approval for {approval.run.action} (run {approval.run_id}) of "
            f"incident {approval.run.incident_id} expired undecided",
            incident_id=approval.run.incident_id,
            details={
                "approval_id": approval.pk,
                "run_id": approval.run_id,
                "action": approval.run.action,
                "step_was_waiting": bool(waited),
            },
        )
    logger.warning(
        "approval %s for run %s (%s) of incident %s expired undecided",
        approval.pk,
        approval.run_id,
        approval.run.action,
        approval.run.incident_id,
    )
    return bool(waited)


def _escalate(incident_id: int) -> None:
    reason = "an approval request expired without a decision"
    try:
        from escalations.services import escalate_one_level
    except ImportError:
        logger.error(
            "incident %s: %s, but escalations.services.escalate_one_level is "
            "missing, so it did not escalate",
            incident_id,
            reason,
        )
        return
    escalate_one_level(incident_id, reason)
