"""Running a watcher's steps for an incident, one attempt at a time.

Every step of an attempt gets its ActionRun row before anything acts. A
worker runs a step only after its conditional UPDATE moved the row from
queued (or approved) to running, so a task delivered twice runs the step
once. Before acting, the step rechecks that the incident is still firing.
A failed step ends the attempt unless the step may continue; after the
last step the attempt waits to see the metric recover.

The functions return what should happen next (the next run, a verification)
and leave the scheduling to the Celery tasks.
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from mitigations.actions.base import (
    Action,
    ActionContext,
    ActionError,
    ParameterError,
)
from mitigations.choices import FINISHED_STATUSES, AttemptStatus, RunStatus
from mitigations.models import (
    ActionRun,
    Approval,
    AutomationSwitch,
    Decision,
    MitigationAttempt,
    MitigationBaseline,
)
from mitigations.registry import UnknownActionError, get_action
from mitigations.services import guardrails, parameters
from watchers.choices import Mode
from watchers.models import Incident
from watchers.services import live

logger = logging.getLogger(__name__)

SECRET_WORDS = ("password", "token", "secret", "credential")
# Runs that have not acted yet, which a resolved incident skips.
NOT_STARTED_STATUSES = (
    RunStatus.QUEUED,
    RunStatus.APPROVED,
    RunStatus.WAITING_APPROVAL,
)
IN_FLIGHT_STATUSES = (
    RunStatus.RUNNING,
    RunStatus.WAITING_APPROVAL,
    RunStatus.APPROVED,
)
# What _claim returns when another worker changed the run first.
CLAIMED_ELSEWHERE = "claimed elsewhere"


# Step outcomes after which a new attempt may help: the action failed. A
# rejection or a guardrail is a decision against the step, and a lost run
# may have acted, so repeating it would not be safe.
RETRYABLE_STATUSES = frozenset({RunStatus.FAILED})


@dataclass(frozen=True)
class StepResult:
    run_id: int
    status: str
    next_run_id: int | None = None
    verify_attempt_id: int | None = None
    # Set when a failed step ended its attempt and the next attempt is due.
    failed_attempt_id: int | None = None


def start_attempt(
    incident_id: int,
    number: int,
    now: datetime | None = None,
    *,
    beyond_maximum: bool = False,
) -> ActionRun | None:
    """Create attempt ``number`` and its runs; return the first run to execute.

    The number makes the call idempotent: a second call for the same number
    finds the attempt already there and starts nothing. Numbers above
    MAX_MITIGATION_ATTEMPTS start only with ``beyond_maximum``.
    """
    now = now or timezone.now()
    incident = Incident.objects.select_related("watcher").filter(pk=incident_id).first()
    if incident is None or incident.resolved_at is not None or incident.watcher is None:
        return None
    watcher = incident.watcher
    steps = list(watcher.steps.order_by("position"))
    if watcher.mode == Mode.PAUSED or not steps:
        return None
    if number > settings.MAX_MITIGATION_ATTEMPTS and not beyond_maximum:
        return None
    dry_run = incident.is_shadow or watcher.mode == Mode.SHADOW
    try:
        with transaction.atomic():
            attempt = MitigationAttempt.objects.create(
                incident=incident, number=number, dry_run=dry_run, started_at=now
            )
            ActionRun.objects.bulk_create(
                ActionRun(
                    attempt=attempt,
                    incident=incident,
                    step=step,
                    position=step.position,
                    action=step.action,
                    risk=_risk_of(step.action),
                    dry_run=dry_run or step.dry_run,
                    continue_on_failure=step.continue_on_failure,
                    timeout_seconds=step.timeout_seconds,
                    queued_at=now,
                )
                for step in steps
            )
    except IntegrityError:
        return None
    logger.info(
        "mitigation attempt %s started for incident %s (%s steps%s)",
        number,
        incident.pk,
        len(steps),
        ", dry run" if dry_run else "",
    )
    _record_attempt(
        "attempt.started",
        attempt,
        f"started with {len(steps)} steps" + (", dry run" if dry_run else ""),
    )
    return attempt.runs.order_by("position").first()


def _record_attempt(
    kind: str, attempt: MitigationAttempt, outcome: str, **details: Any
) -> None:
    from audit.services import record

    record(
        kind,
        f"attempt {attempt.number} of incident {attempt.incident_id} {outcome}",
        incident_id=attempt.incident_id,
        details={"attempt_id": attempt.pk, "number": attempt.number, **details},
    )


def resumable_attempts(now: datetime | None = None) -> list[tuple[int, int]]:
    """Return (incident id, next attempt number) for incidents to mitigate again.

    An attempt stopped by a guardrail (the switch, the hourly budget, a
    paused watcher) is not retried when it ends. Once nothing blocks any
    more, an incident still firing gets its next attempt, if its last
    automatic attempt was that one and numbers remain.
    """
    if guardrails.automation_pauses(now):
        return []
    maximum = settings.MAX_MITIGATION_ATTEMPTS
    latest = (
        MitigationAttempt.objects.filter(
            incident_id=OuterRef("incident_id"), number__lte=maximum
        )
        .order_by("-number")
        .values("pk")[:1]
    )
    in_progress = MitigationAttempt.objects.filter(
        incident_id=OuterRef("incident_id"),
        status__in=[AttemptStatus.RUNNING, AttemptStatus.VERIFYING],
    )
    stopped = (
        MitigationAttempt.objects.filter(
            pk=Subquery(latest),
            status=AttemptStatus.STOPPED,
            number__lt=maximum,
            runs__status=RunStatus.BLOCKED,
            incident__resolved_at__isnull=True,
            incident__is_shadow=False,
            incident__watcher__mode=Mode.ACTIVE,
        )
        .exclude(Exists(in_progress))
        .values_list("incident_id", "number")
        .distinct()
    )
    return [(incident_id, number + 1) for incident_id, number in stopped]


def _risk_of(action_name: str) -> str:
    try:
        return str(get_action(action_name).risk)
    except UnknownActionError:
        return ""


def execute_run(run_id: int, now: datetime | None = None) -> StepResult:
    """Run one step if it is still to run, and say what comes next."""
    now = now or timezone.now()
    run = (
        ActionRun.objects.select_related(
            "attempt", "incident", "incident__watcher", "step"
        )
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        return StepResult(run_id, "missing")
    if run.status in FINISHED_STATUSES or run.status in (
        RunStatus.RUNNING,
        RunStatus.WAITING_APPROVAL,
    ):
        return StepResult(run.pk, run.status)

    if earlier_steps_open(run):
        # An approval can come before the steps ahead of it have finished.
        # The run stays approved and starts when the chain reaches it.
        return StepResult(run.pk, run.status)

    if run.incident.resolved_at is not None:
        finish_run(
            run, RunStatus.SKIPPED, error="the incident resolved before this step ran"
        )
        end_attempt(run.attempt, AttemptStatus.STOPPED, "the incident resolved", now)
        return StepResult(run.pk, RunStatus.SKIPPED)

    # The watcher's mode may have changed since the attempt started. It governs
    # the automatic steps only: a step a person proposed runs as approved.
    watcher = run.incident.watcher
    mode = watcher.mode if watcher is not None and run.step_id else Mode.ACTIVE
    if mode == Mode.PAUSED:
        # Blocked, not skipped: the incident resumes once the watcher does.
        finish_run(run, RunStatus.BLOCKED, error="not run: the watcher is paused")
        end_attempt(run.attempt, AttemptStatus.STOPPED, "the watcher was paused", now)
        return StepResult(run.pk, RunStatus.BLOCKED)
    if mode == Mode.SHADOW and not run.dry_run:
        ActionRun.objects.filter(pk=run.pk).update(dry_run=True)
        run.dry_run = True

    prepared = _prepare(run)
    if isinstance(prepared, str):
        finish_run(run, RunStatus.FAILED, error=prepared, now=now)
        return after_run(run, RunStatus.FAILED, prepared, now)
    action, params = prepared

    policy = run.step.approval if run.step else "default"
    if run.status == RunStatus.QUEUED and guardrails.needs_approval(
        run, action, policy
    ):
        ActionRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.WAITING_APPROVAL, inputs=run.inputs, target=run.target
        )
        live.publish_after_commit("run", run.pk)
        logger.info("run %s (%s) waits for approval", run.pk, run.action)
        from mitigations.services import approvals

        transaction.on_commit(lambda: approvals.request_approval(run.pk))
        return StepResult(run.pk, RunStatus.WAITING_APPROVAL)

    verdict = _claim(run, now)
    if verdict.status != RunStatus.RUNNING:
        if verdict.status in (RunStatus.BLOCKED, RunStatus.SKIPPED):
            return after_run(run, verdict.status, verdict.reason, now)
        return StepResult(run.pk, verdict.status)

    status, output, error, tries = _perform(
        action, build_context(run, params), run.dry_run
    )
    if not finish_run(
        run, status, output=output, error=error, tries=tries, now=timezone.now()
    ):
        # The reconciler declared the run lost while it ran; its word stands.
        return StepResult(run.pk, RunStatus.LOST)
    return after_run(run, status, error, timezone.now())


def earlier_steps_open(run: ActionRun) -> bool:
    return (
        run.attempt.runs.filter(position__lt=run.position)
        .exclude(status__in=FINISHED_STATUSES)
        .exists()
    )


def _prepare(run: ActionRun) -> tuple[Action, dict[str, Any]] | str:
    """Resolve the action and its parameters, or return why that failed."""
    try:
        action = get_action(run.action)
    except UnknownActionError:
        return f"unknown action {run.action!r}"
    # A manual proposal has no step: its parameters are the ones proposed.
    step_values = run.step.parameters if run.step else run.inputs
    try:
        params = parameters.resolve(action, step_values, run.incident.labels)
    except ParameterError as error:
        return f"invalid parameters for {run.action}: {error}"
    run.inputs = redact(params)
    run.target = action.target(params)[:300]
    return action, params


def _claim(run: ActionRun, now: datetime) -> guardrails.Verdict:
    """Apply the guardrails and move the run to running, under the switch's lock."""
    with transaction.atomic():
        switch = _locked_switch()
        verdict = guardrails.ALLOWED
        if not run.dry_run:
            verdict = guardrails.check_switch(switch)
            if verdict == guardrails.ALLOWED:
                verdict = guardrails.check_cooldown(run, now)
            if verdict == guardrails.ALLOWED:
                verdict = guardrails.check_budget(now)
        if verdict != guardrails.ALLOWED:
            updated = ActionRun.objects.filter(
                pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.APPROVED]
            ).update(
                status=verdict.status,
                error=verdict.reason,
                inputs=run.inputs,
                target=run.target,
                finished_at=now,
            )
            if not updated:
                return guardrails.Verdict(CLAIMED_ELSEWHERE)
            live.publish_after_commit("run", run.pk)
            logger.warning(
                "run %s (%s) %s: %s", run.pk, run.action, verdict.status, verdict.reason
            )
            record_step(run, verdict.status, verdict.reason)
            return verdict
        claimed = ActionRun.objects.filter(
            pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.APPROVED]
        ).update(
            status=RunStatus.RUNNING,
            started_at=now,
            deadline_at=now + timedelta(seconds=run.timeout_seconds),
            inputs=run.inputs,
            target=run.target,
        )
    if claimed != 1:
        return guardrails.Verdict(CLAIMED_ELSEWHERE)
    live.publish_after_commit("run", run.pk)
    return guardrails.Verdict(RunStatus.RUNNING)


def _locked_switch() -> AutomationSwitch:
    """Lock the kill switch row, creating it on first use."""
    try:
        return AutomationSwitch.objects.select_for_update().get(pk=1)
    except AutomationSwitch.DoesNotExist:
        guardrails.automation_switch()
        return AutomationSwitch.objects.select_for_update().get(pk=1)


def build_context(run: ActionRun, params: dict[str, Any]) -> ActionContext:
    """The context a step runs with; reconciliation reads through the same one."""
    earlier_runs = run.attempt.runs.filter(position__lt=run.position).order_by(
        "position"
    )
    previous = (
        {earlier.action: earlier.output for earlier in earlier_runs}
        if run.position > 1
        else {}
    )

    def remember(key: str, value: Any) -> Any:
        baseline, _ = MitigationBaseline.objects.get_or_create(
            incident_id=run.incident_id, key=key, defaults={"value": value}
        )
        return baseline.value

    return ActionContext(
        incident_id=run.incident_id,
        labels=dict(run.incident.labels),
        params=params,
        previous=previous,
        deadline=time.monotonic() + run.timeout_seconds,
        run_id=run.pk,
        remember=remember,
    )


def _perform(
    action: Action, context: ActionContext, dry_run: bool
) -> tuple[str, dict[str, Any], str, int]:
    """Run the action, retrying what a retry can fix; never raises."""
    tries = 0
    while True:
        tries += 1
        try:
            if dry_run:
                return RunStatus.DRY_RUN, action.dry_run(context), "", tries
            return RunStatus.SUCCEEDED, action.run(context), "", tries
        except ActionError as error:
            can_retry = (
                error.retryable
                and tries <= settings.STEP_RETRIES
                and context.remaining_seconds() > 1
            )
            logger.warning(
                "run %s (%s) failed on try %s%s: %s",
                context.run_id,
                action.name,
                tries,
                ", retrying" if can_retry else "",
                error,
            )
            if not can_retry:
                return RunStatus.FAILED, {}, str(error), tries
            time.sleep(min(2.0, 0.25 * 2 ** (tries - 1), context.remaining_seconds()))
        except ParameterError as error:
            # Some values (a label an earlier step produced) only show as
            # invalid while the step runs; no retry can fix them.
            return RunStatus.FAILED, {}, f"invalid parameters: {error}", tries
        except Exception as error:
            logger.exception("run %s (%s) raised", context.run_id, action.name)
            return RunStatus.FAILED, {}, f"unexpected error: {error!r}", tries


def finish_run(
    run: ActionRun,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    error: str = "",
    tries: int = 0,
    now: datetime | None = None,
) -> bool:
    """Record the outcome if the run is still open; return whether it was."""
    updated = (
        ActionRun.objects.filter(pk=run.pk)
        .exclude(status__in=FINISHED_STATUSES)
        .update(
            status=status,
            output=output or {},
            error=error,
            tries=tries,
            inputs=run.inputs,
            target=run.target,
            finished_at=now or timezone.now(),
        )
    )
    if updated:
        live.publish_after_commit("run", run.pk)
        logger.info(
            "run %s (%s on %s) for incident %s: %s%s",
            run.pk,
            run.action,
            run.target or "-",
            run.incident_id,
            status,
            f": {error}" if error else "",
        )
        record_step(run, status, error)
    return bool(updated)


def record_step(run: ActionRun, status: str, error: str = "") -> None:
    """Write a step's outcome to the audit log."""
    from audit.services import record

    record(
        "step.finished",
        f"step {run.position} {run.action} on {run.target or '-'}: {status}"
        + (f": {error}" if error else ""),
        incident_id=run.incident_id,
        details={"run_id": run.pk, "status": status, "dry_run": run.dry_run},
    )


def after_run(run: ActionRun, status: str, error: str, now: datetime) -> StepResult:
    """Pick the next run, or end the attempt."""
    went_on = status in (RunStatus.SUCCEEDED, RunStatus.DRY_RUN, RunStatus.SKIPPED)
    if not went_on and not run.continue_on_failure:
        end_attempt(
            run.attempt,
            AttemptStatus.FAILED
            if status != RunStatus.BLOCKED
            else AttemptStatus.STOPPED,
            f"step {run.position} ({run.action}) {status}: {error}",
            now,
        )
        retry = status in RETRYABLE_STATUSES
        return StepResult(
            run.pk, status, failed_attempt_id=run.attempt_id if retry else None
        )
    following = (
        run.attempt.runs.filter(position__gt=run.position).order_by("position").first()
    )
    if following is not None and following.status in FINISHED_STATUSES:
        # A person rejected it, or its request expired, before the chain got
        # here: its outcome counts now, in order.
        return after_run(following, following.status, following.error, now)
    if following is not None:
        return StepResult(run.pk, status, next_run_id=following.pk)
    attempt = run.attempt
    if attempt.dry_run or all(r.dry_run for r in attempt.runs.all()):
        end_attempt(attempt, AttemptStatus.STOPPED, "dry run: nothing was changed", now)
        return StepResult(run.pk, status)
    MitigationAttempt.objects.filter(
        pk=attempt.pk, status=AttemptStatus.RUNNING
    ).update(
        status=AttemptStatus.VERIFYING,
        verify_at=now + timedelta(seconds=settings.VERIFY_WINDOW_SECONDS),
    )
    return StepResult(run.pk, status, verify_attempt_id=attempt.pk)


def end_attempt(
    attempt: MitigationAttempt,
    status: str,
    note: str,
    now: datetime,
    skip_reason: str | None = None,
) -> list[int]:
    """End ``attempt`` and skip the steps it never started; return their ids.

    A step that was queued, approved early, or waiting for a person does not
    outlive its attempt: it is skipped with ``skip_reason`` and its pending
    approval is withdrawn, so no person is asked to decide about it any more.
    """
    updated = MitigationAttempt.objects.filter(
        pk=attempt.pk, status__in=[AttemptStatus.RUNNING, AttemptStatus.VERIFYING]
    ).update(status=status, note=note[:2000], finished_at=now)
    if updated:
        logger.info(
            "mitigation attempt %s of incident %s %s: %s",
            attempt.number,
            attempt.incident_id,
            status,
            note,
        )
    left = attempt.runs.filter(status__in=NOT_STARTED_STATUSES)
    skipped = list(left.values_list("pk", flat=True))
    withdrawn: list[int] = []
    if skipped:
        ActionRun.objects.filter(
            pk__in=skipped, status__in=NOT_STARTED_STATUSES
        ).update(
            status=RunStatus.SKIPPED,
            error=skip_reason or f"not run: the attempt {status}",
            finished_at=now,
        )
        pending = Approval.objects.filter(run_id__in=skipped, decision=Decision.PENDING)
        withdrawn = list(pending.values_list("pk", flat=True))
        pending.update(decision=Decision.WITHDRAWN, decided_at=now)
        live.publish_after_commit("incident", attempt.incident_id)
    if updated or skipped:
        outcome = f"ended {status}: {note}" if updated else "ended"
        if skipped:
            outcome += f"; steps not run: {len(skipped)}"
        if withdrawn:
            outcome += f", approval requests withdrawn: {len(withdrawn)}"
        _record_attempt(
            "attempt.ended",
            attempt,
            outcome,
            status=status,
            skipped_run_ids=skipped,
            withdrawn_approval_ids=withdrawn,
        )
    return skipped


def stop_for_resolved(incident_id: int, now: datetime | None = None) -> list[int]:
    """End the open attempts of a resolved incident; return the runs skipped.

    Steps still queued or waiting for a decision are not run, and their
    pending approvals are withdrawn, so no person is asked to decide about an
    incident that is over. A step already running finishes. An attempt counts as
    mitigated when one of its steps acted before the incident resolved,
    otherwise as stopped.
    """
    now = now or timezone.now()
    skipped: list[int] = []
    with transaction.atomic():
        attempts = MitigationAttempt.objects.select_for_update().filter(
            incident_id=incident_id,
            status__in=[AttemptStatus.RUNNING, AttemptStatus.VERIFYING],
        )
        for attempt in attempts:
            acted = attempt.runs.filter(
                status=RunStatus.SUCCEEDED, dry_run=False
            ).exists()
            status = AttemptStatus.MITIGATED if acted else AttemptStatus.STOPPED
            skipped.extend(
                end_attempt(
                    attempt,
                    status,
                    "the incident resolved",
                    now,
                    skip_reason="not run: the incident resolved first",
                )
            )
    if skipped:
        logger.info(
            "incident %s resolved: %s steps not run, their approvals withdrawn",
            incident_id,
            len(skipped),
        )
    return skipped


def hold_remaining(incident_id: int) -> list[int]:
    """Put the incident's remaining steps on hold for a person; return their ids.

    Called when an incident escalates. In each running attempt the step in
    flight finishes, or, when none is, the next one in line still runs: an
    incident that escalates as it opens still gets its first, containing
    step (the IP block of a security watcher). The steps after it wait.
    """
    held: list[int] = []
    attempts = MitigationAttempt.objects.filter(
        incident_id=incident_id, status=AttemptStatus.RUNNING
    )
    for attempt in attempts:
        runs = list(attempt.runs.order_by("position"))
        queued = [r for r in runs if r.status == RunStatus.QUEUED and not r.dry_run]
        # A step running or waiting for a person is the one in flight: the
        # queued ones behind it have not been handed to a worker yet.
        in_flight = any(r.status in IN_FLIGHT_STATUSES for r in runs)
        held.extend(r.pk for r in (queued if in_flight else queued[1:]))
    moved = ActionRun.objects.filter(pk__in=held, status=RunStatus.QUEUED).update(
        status=RunStatus.WAITING_APPROVAL
    )
    if moved:
        live.publish_after_commit("incident", incident_id)
    from mitigations.services import approvals

    for run_id in held:
        transaction.on_commit(partial(approvals.request_approval, run_id))
    if held:
        logger.info(
            "incident %s escalated: %s queued steps wait for a decision",
            incident_id,
            len(held),
        )
    return held


def offer_retry(incident_id: int) -> ActionRun | None:
    """Start one more attempt for people to approve, once automation gave up.

    Called when an incident escalates. When every automatic attempt failed
    and none is open, the chain starts again, and because the incident is
    escalated each of its steps waits for a decision. Without it, such an
    escalation would leave people nothing to approve. Returns the first run.
    """
    attempts = list(
        MitigationAttempt.objects.filter(incident_id=incident_id).order_by("number")
    )
    if any(
        a.status in (AttemptStatus.RUNNING, AttemptStatus.VERIFYING) for a in attempts
    ):
        return None
    automatic = [a for a in attempts if a.number <= settings.MAX_MITIGATION_ATTEMPTS]
    if len(automatic) < settings.MAX_MITIGATION_ATTEMPTS:
        return None
    if automatic[-1].status != AttemptStatus.FAILED:
        return None
    number = attempts[-1].number + 1
    first = start_attempt(incident_id, number, beyond_maximum=True)
    if first is not None:
        logger.info(
            "incident %s: every automatic attempt failed, attempt %s waits for a "
            "decision",
            incident_id,
            number,
        )
    return first


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """Hide values whose names suggest secrets before a run stores its inputs."""
    return {
        name: "***" if any(word in name.lower() for word in SECRET_WORDS) else value
        for name, value in params.items()
    }
