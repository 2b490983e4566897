"""Whether an attempt worked: the metric must recover within the window.

After the last step, the watcher's query runs again for the incident's
series. The attempt counts as mitigated when the series is clear (or gone,
or the incident resolved) before the verification window ends; otherwise it
is a failed attempt, and the next attempt may follow.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import ActionRun, MitigationAttempt
from mitigations.registry import UnknownActionError, get_action
from mitigations.services import parameters
from mitigations.services.chain import (
    StepResult,
    after_run,
    build_context,
    end_attempt,
    finish_run,
)
from watchers.models import Incident
from watchers.services.evaluation import rule_for
from watchers.services.judging import breaches, fingerprint, is_clear
from watchers.services.prometheus import PrometheusClient, PrometheusError

logger = logging.getLogger(__name__)


def series_recovered(
    incident: Incident, client: PrometheusClient | None = None
) -> tuple[bool | None, str]:
    """Query the incident's series now: True when clear, None when unknown."""
    watcher = incident.watcher
    if watcher is None:
        return None, "the incident has no watcher"
    client = client or PrometheusClient()
    try:
        samples = client.query(watcher.query)
    except PrometheusError as error:
        return None, f"the query failed: {error}"
    rule = rule_for(watcher)
    for sample in samples:
        if fingerprint(sample.labels) == incident.fingerprint:
            if breaches(rule, sample.value) or not is_clear(rule, sample.value):
                return False, f"the value is still {sample.value:g}"
            return True, f"the value recovered to {sample.value:g}"
    return True, "the series is no longer in the result"


def verify_attempt(
    attempt_id: int, now: datetime | None = None, client: PrometheusClient | None = None
) -> str:
    """Check a verifying attempt once; return its status after the check."""
    now = now or timezone.now()
    attempt = (
        MitigationAttempt.objects.select_related("incident", "incident__watcher")
        .filter(pk=attempt_id)
        .first()
    )
    if attempt is None:
        return "missing"
    if attempt.status != AttemptStatus.VERIFYING:
        return attempt.status
    if attempt.incident.resolved_at is not None:
        end_attempt(attempt, AttemptStatus.MITIGATED, "the incident resolved", now)
        return AttemptStatus.MITIGATED
    recovered, detail = series_recovered(attempt.incident, client)
    if recovered:
        end_attempt(attempt, AttemptStatus.MITIGATED, detail, now)
        return AttemptStatus.MITIGATED
    if attempt.verify_at is not None and now >= attempt.verify_at:
        end_attempt(
            attempt,
            AttemptStatus.FAILED,
            f"the metric did not recover within {settings.VERIFY_WINDOW_SECONDS}s "
            f"after the last step: {detail}",
            now,
        )
        return AttemptStatus.FAILED
    return AttemptStatus.VERIFYING


def reconcile_stale_runs(now: datetime | None = None) -> list[StepResult]:
    """Settle runs whose worker was lost, without running them again.

    A run still marked running well past its timeout had its worker die or
    hang. The action may be able to tell whether its change is in place;
    otherwise the run is recorded as lost and the chain goes on as after a
    failure.
    """
    now = now or timezone.now()
    results = []
    stale = ActionRun.objects.select_related("attempt", "incident", "step").filter(
        status=RunStatus.RUNNING,
        deadline_at__lt=now - timedelta(seconds=settings.RECONCILE_GRACE_SECONDS),
    )
    for run in stale:
        status, message = _reconcile_one(run)
        if finish_run(run, status, error=message, now=now):
            results.append(after_run(run, status, message, now))
    return results


def _reconcile_one(run: ActionRun) -> tuple[str, str]:
    lost = "the worker running this step was lost"
    try:
        action = get_action(run.action)
        params = parameters.resolve(
            action, run.step.parameters if run.step else {}, run.incident.labels
        )
        outcome = action.reconcile(build_context(run, params))
    except (UnknownActionError, ValueError) as error:
        return RunStatus.LOST, f"{lost}; its outcome is unknown ({error})"
    except Exception as error:  # the reconcile check itself failed
        logger.warning("reconciling run %s failed: %r", run.pk, error)
        outcome = None
    if outcome is None:
        return RunStatus.LOST, f"{lost}; its outcome is unknown, and it is not repeated"
    if outcome.get("took_effect"):
        return RunStatus.SUCCEEDED, f"{lost}, but its change is in place"
    return RunStatus.FAILED, f"{lost}, and its change is not in place"


def stranded_runs(now: datetime | None = None) -> list[int]:
    """Queued runs whose task never arrived: the first open run of a running attempt."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.RECONCILE_GRACE_SECONDS)
    found = []
    attempts = MitigationAttempt.objects.filter(status=AttemptStatus.RUNNING)
    for attempt in attempts:
        runs = list(attempt.runs.order_by("position"))
        if any(
            r.status in (RunStatus.RUNNING, RunStatus.WAITING_APPROVAL) for r in runs
        ):
            continue
        waiting = [
            r for r in runs if r.status in (RunStatus.QUEUED, RunStatus.APPROVED)
        ]
        if not waiting:
            continue
        earlier = [r for r in runs if r.position < waiting[0].position]
        settled_at = max(
            [r.finished_at for r in earlier if r.finished_at] or [waiting[0].queued_at]
        )
        if settled_at < cutoff:
            found.append(waiting[0].pk)
    return found
