"""The mitigation chain: claims, ordering, guardrails and reconciliation.

Steps use small test actions that make a real HTTP call to a local
receiver, so a step that ran twice shows up as a second request.
"""

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from devstack.receiver import HttpReceiver
from mitigations.actions.base import Action, ActionContext, Parameter
from mitigations.choices import AttemptStatus, Risk, RunStatus
from mitigations.models import ActionRun, AutomationSwitch, MitigationStep
from mitigations.registry import register
from mitigations.services import chain, verification
from mitigations.services.clients import http_request
from tests.watchers.factories import make_watcher
from watchers.choices import IncidentState, Mode
from watchers.models import Incident

pytestmark = pytest.mark.django_db


class Ping(Action):
    risk = Risk.DISRUPTIVE
    parameters = (
        Parameter("url", kind="url"),
        Parameter("service", labels=("service",)),
    )

    def target(self, params: dict[str, Any]) -> str:
        return f"service {params['service']}"

    def run(self, context: ActionContext) -> dict[str, Any]:
        response = http_request(
            "POST",
            f"{context.params['url']}/{self.name}/{context.incident_id}",
            retries=0,
        )
        return {"status": response.status_code}


@register("test_ping", "test_ping_other")
class SafePing(Ping):
    pass


@register("test_ping_destructive")
class DestructivePing(Ping):
    risk = Risk.DESTRUCTIVE


@pytest.fixture
def receiver():
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _guardrail_settings(settings):
    settings.ACTION_COOLDOWN_SECONDS = 0
    settings.AUTOMATION_BUDGET_PER_HOUR = 100
    settings.STEP_RETRIES = 0


def firing_incident(receiver, *steps, mode=Mode.ACTIVE, shadow=False, labels=None):
    watcher = make_watcher(mode=mode)
    for position, step in enumerate(steps, start=1):
        action, extra = (step, {}) if isinstance(step, str) else step
        MitigationStep.objects.create(
            watcher=watcher,
            position=position,
            action=action,
            parameters={"url": receiver.url},
            **extra,
        )
    return Incident.objects.create(
        watcher=watcher,
        fingerprint=f"{watcher.pk:032d}",
        labels=labels or {"service": "sandra-api"},
        opened_at=timezone.now(),
        is_shadow=shadow,
    )


def drive(incident: Incident, number: int = 1) -> list[chain.StepResult]:
    """Run an attempt's steps in order, as the Celery tasks would."""
    first = chain.start_attempt(incident.pk, number)
    results = []
    next_id = first.pk if first else None
    while next_id is not None:
        result = chain.execute_run(next_id)
        results.append(result)
        next_id = result.next_run_id
    return results


def statuses(incident: Incident) -> list[str]:
    return list(
        ActionRun.objects.filter(incident=incident)
        .order_by("attempt__number", "position")
        .values_list("status", flat=True)
    )


def test_steps_run_in_order_then_verification_starts(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other")

    results = drive(incident)

    assert receiver.paths() == [
        f"/test_ping/{incident.pk}",
        f"/test_ping_other/{incident.pk}",
    ]
    assert statuses(incident) == [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    assert results[-1].verify_attempt_id is not None
    assert incident.attempts.get().status == AttemptStatus.VERIFYING


def test_run_records_inputs_output_target_and_times(receiver):
    incident = firing_incident(receiver, "test_ping")
    drive(incident)

    run = ActionRun.objects.get(incident=incident)
    assert run.inputs == {"url": receiver.url, "service": "sandra-api"}
    assert run.output == {"status": 200}
    assert run.target == "service sandra-api"
    assert run.started_at <= run.finished_at
    assert run.tries == 1


def test_same_attempt_started_twice_creates_it_once(receiver):
    incident = firing_incident(receiver, "test_ping")

    first = chain.start_attempt(incident.pk, 1)
    second = chain.start_attempt(incident.pk, 1)

    assert first is not None
    assert second is None
    assert incident.attempts.count() == 1


def test_duplicate_delivery_runs_the_step_once(receiver):
    incident = firing_incident(receiver, "test_ping")
    run = chain.start_attempt(incident.pk, 1)

    chain.execute_run(run.pk)
    again = chain.execute_run(run.pk)

    assert len(receiver.requests) == 1
    assert again.status == RunStatus.SUCCEEDED
    assert again.next_run_id is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_delivery_runs_the_step_once(receiver):
    receiver.delay_seconds = 0.3
    incident = firing_incident(receiver, "test_ping")
    run = chain.start_attempt(incident.pk, 1)
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait()
        chain.execute_run(run.pk)
        connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(receiver.requests) == 1
    assert ActionRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_resolved_incident_runs_no_queued_step(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    run = chain.start_attempt(incident.pk, 1)
    Incident.objects.filter(pk=incident.pk).update(
        state=IncidentState.RESOLVED, resolved_at=timezone.now()
    )

    result = chain.execute_run(run.pk)

    assert receiver.requests == []
    assert result.status == RunStatus.SKIPPED
    assert statuses(incident) == [RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert incident.attempts.get().status == AttemptStatus.STOPPED


def test_failed_step_stops_the_chain(receiver):
    receiver.statuses = [400]
    incident = firing_incident(receiver, "test_ping", "test_ping_other")

    drive(incident)

    assert statuses(incident) == [RunStatus.FAILED, RunStatus.SKIPPED]
    attempt = incident.attempts.get()
    assert attempt.status == AttemptStatus.FAILED
    assert "HTTP 400" in attempt.note


def test_failed_step_asks_for_next_attempt(receiver):
    receiver.statuses = [400]
    incident = firing_incident(receiver, "test_ping")

    results = drive(incident)
    second = drive(incident, number=2)

    attempt = incident.attempts.get(number=1)
    assert results[-1].failed_attempt_id == attempt.pk
    assert second[-1].status == RunStatus.SUCCEEDED
    assert len(receiver.requests) == 2


def test_blocked_step_asks_for_no_retry(receiver):
    AutomationSwitch.objects.update_or_create(pk=1, defaults={"enabled": False})
    incident = firing_incident(receiver, "test_ping")

    results = drive(incident)

    assert results[-1].status == RunStatus.BLOCKED
    assert results[-1].failed_attempt_id is None


def test_lost_step_asks_for_no_retry(receiver):
    incident = firing_incident(receiver, "test_ping")
    run = chain.start_attempt(incident.pk, 1)

    result = chain.after_run(run, RunStatus.LOST, "worker lost", timezone.now())

    assert result.failed_attempt_id is None
    assert incident.attempts.get().status == AttemptStatus.FAILED


def test_no_attempt_beyond_the_maximum(receiver, settings):
    settings.MAX_MITIGATION_ATTEMPTS = 2
    incident = firing_incident(receiver, "test_ping")

    assert chain.start_attempt(incident.pk, 3) is None


def test_step_marked_to_continue_lets_the_chain_go_on(receiver):
    receiver.statuses = [400]
    incident = firing_incident(
        receiver, ("test_ping", {"continue_on_failure": True}), "test_ping_other"
    )

    drive(incident)

    assert statuses(incident) == [RunStatus.FAILED, RunStatus.SUCCEEDED]


def test_retryable_failure_is_retried_within_the_step(receiver, settings):
    settings.STEP_RETRIES = 2
    receiver.statuses = [503, 503]
    incident = firing_incident(receiver, "test_ping")

    drive(incident)

    run = ActionRun.objects.get(incident=incident)
    assert run.status == RunStatus.SUCCEEDED
    assert run.tries == 3
    assert len(receiver.requests) == 3


def test_destructive_step_waits_for_approval(receiver):
    incident = firing_incident(receiver, "test_ping_destructive", "test_ping")

    results = drive(incident)

    assert receiver.requests == []
    assert results[-1].status == RunStatus.WAITING_APPROVAL
    assert statuses(incident) == [RunStatus.WAITING_APPROVAL, RunStatus.QUEUED]


def test_approval_override_never_lets_destructive_step_run(receiver):
    incident = firing_incident(
        receiver, ("test_ping_destructive", {"approval": "never"})
    )
    drive(incident)
    assert len(receiver.requests) == 1


def test_approval_override_always_holds_a_safe_step(receiver):
    incident = firing_incident(receiver, ("test_ping", {"approval": "always"}))
    drive(incident)
    assert receiver.requests == []
    assert statuses(incident) == [RunStatus.WAITING_APPROVAL]


def test_approved_step_runs(receiver):
    incident = firing_incident(receiver, "test_ping_destructive")
    run = chain.start_attempt(incident.pk, 1)
    chain.execute_run(run.pk)

    ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.APPROVED)
    result = chain.execute_run(run.pk)

    assert result.status == RunStatus.SUCCEEDED
    assert len(receiver.requests) == 1


def test_cooldown_skips_the_same_action_on_the_same_target(receiver, settings):
    settings.ACTION_COOLDOWN_SECONDS = 300
    first = firing_incident(receiver, "test_ping")
    second = firing_incident(receiver, "test_ping")

    drive(first)
    drive(second)

    assert len(receiver.requests) == 1
    run = ActionRun.objects.get(incident=second)
    assert run.status == RunStatus.SKIPPED
    assert "cooldown: test_ping on service sandra-api" in run.error


def test_cooldown_is_per_target(receiver, settings):
    settings.ACTION_COOLDOWN_SECONDS = 300
    drive(firing_incident(receiver, "test_ping", labels={"service": "a"}))
    drive(firing_incident(receiver, "test_ping", labels={"service": "b"}))
    assert len(receiver.requests) == 2


def test_budget_blocks_actions_beyond_the_hourly_limit(receiver, settings):
    settings.AUTOMATION_BUDGET_PER_HOUR = 2
    incident = firing_incident(receiver, "test_ping", "test_ping_other", "test_ping")

    drive(incident)

    assert len(receiver.requests) == 2
    run = ActionRun.objects.get(incident=incident, position=3)
    assert run.status == RunStatus.BLOCKED
    assert "budget exhausted: 2 automated actions in the last hour" in run.error
    assert incident.attempts.get().status == AttemptStatus.STOPPED


def test_kill_switch_blocks_every_step(receiver):
    AutomationSwitch.objects.create(pk=1, enabled=False, reason="migration night")
    incident = firing_incident(receiver, "test_ping")

    drive(incident)

    assert receiver.requests == []
    run = ActionRun.objects.get(incident=incident)
    assert run.status == RunStatus.BLOCKED
    assert "automation is switched off: migration night" in run.error


def test_dry_run_step_records_and_does_not_act(receiver):
    incident = firing_incident(receiver, ("test_ping", {"dry_run": True}))

    drive(incident)

    assert receiver.requests == []
    run = ActionRun.objects.get(incident=incident)
    assert run.status == RunStatus.DRY_RUN
    assert run.output["would_run"] == "test_ping"


def test_dry_run_is_allowed_while_automation_is_off(receiver):
    AutomationSwitch.objects.create(pk=1, enabled=False)
    incident = firing_incident(receiver, ("test_ping", {"dry_run": True}))
    drive(incident)
    assert statuses(incident) == [RunStatus.DRY_RUN]


def test_shadow_incident_records_what_would_run(receiver):
    incident = firing_incident(
        receiver, "test_ping", "test_ping_destructive", mode=Mode.SHADOW, shadow=True
    )

    drive(incident)

    assert receiver.requests == []
    assert statuses(incident) == [RunStatus.DRY_RUN, RunStatus.DRY_RUN]
    assert incident.attempts.get().status == AttemptStatus.STOPPED


def test_paused_watcher_starts_no_attempt(receiver):
    incident = firing_incident(receiver, "test_ping", mode=Mode.PAUSED)
    assert chain.start_attempt(incident.pk, 1) is None


def test_attempts_stop_at_the_configured_maximum(receiver, settings):
    settings.MAX_MITIGATION_ATTEMPTS = 2
    incident = firing_incident(receiver, "test_ping")
    assert chain.start_attempt(incident.pk, 2) is not None
    assert chain.start_attempt(incident.pk, 3) is None


def test_invalid_parameters_fail_the_step_with_the_field(receiver):
    incident = firing_incident(receiver, "test_ping", labels={"pod": "x"})

    drive(incident)

    run = ActionRun.objects.get(incident=incident)
    assert run.status == RunStatus.FAILED
    assert "field 'service'" in run.error


def test_unknown_action_fails_the_step(receiver):
    incident = firing_incident(receiver, "no_such_action")
    drive(incident)
    run = ActionRun.objects.get(incident=incident)
    assert run.error == "unknown action 'no_such_action'"


def test_lost_run_is_reconciled_and_not_repeated(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    run = chain.start_attempt(incident.pk, 1)
    long_ago = timezone.now() - timedelta(minutes=10)
    ActionRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=long_ago, deadline_at=long_ago
    )

    results = verification.reconcile_stale_runs()
    redelivered = chain.execute_run(run.pk)

    assert receiver.requests == []
    assert redelivered.status == RunStatus.LOST
    assert [r.status for r in results] == [RunStatus.LOST]
    lost = ActionRun.objects.get(pk=run.pk)
    assert "outcome is unknown, and it is not repeated" in lost.error
    assert incident.attempts.get().status == AttemptStatus.FAILED


def test_stranded_queued_run_is_found_for_redelivery(receiver):
    incident = firing_incident(receiver, "test_ping")
    run = chain.start_attempt(incident.pk, 1)
    ActionRun.objects.filter(pk=run.pk).update(
        queued_at=timezone.now() - timedelta(minutes=5)
    )
    assert verification.stranded_runs() == [run.pk]


def test_escalated_incident_holds_every_step(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    Incident.objects.filter(pk=incident.pk).update(escalated_at=timezone.now())

    results = drive(incident)

    assert receiver.requests == []
    assert results[-1].status == RunStatus.WAITING_APPROVAL


def test_hold_lets_next_step_run(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other", "test_ping")
    first = chain.start_attempt(incident.pk, 1)

    held = chain.hold_remaining(incident.pk)
    chain.execute_run(first.pk)

    assert len(held) == 2
    assert len(receiver.requests) == 1
    assert statuses(incident) == [
        RunStatus.SUCCEEDED,
        RunStatus.WAITING_APPROVAL,
        RunStatus.WAITING_APPROVAL,
    ]


def test_hold_behind_running_step(receiver):
    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    first = chain.start_attempt(incident.pk, 1)
    ActionRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)

    held = chain.hold_remaining(incident.pk)

    assert len(held) == 1
    assert statuses(incident) == [RunStatus.RUNNING, RunStatus.WAITING_APPROVAL]


def test_hold_behind_waiting_step(receiver):
    incident = firing_incident(
        receiver, "test_ping_destructive", "test_ping", "test_ping_other"
    )
    first = chain.start_attempt(incident.pk, 1)
    chain.execute_run(first.pk)

    held = chain.hold_remaining(incident.pk)

    assert len(held) == 2
    assert statuses(incident) == [RunStatus.WAITING_APPROVAL] * 3


def test_cooldown_counts_running_step(receiver, settings):
    settings.ACTION_COOLDOWN_SECONDS = 300
    first = firing_incident(receiver, "test_ping")
    second = firing_incident(receiver, "test_ping")
    running = chain.start_attempt(first.pk, 1)
    ActionRun.objects.filter(pk=running.pk).update(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        target="service sandra-api",
    )

    drive(second)

    run = ActionRun.objects.get(incident=second)
    assert receiver.requests == []
    assert run.status == RunStatus.SKIPPED
    assert f"is running now (run {running.pk}" in run.error


def test_approved_step_waits_for_the_steps_before_it(receiver):
    incident = firing_incident(
        receiver, ("test_ping", {"approval": "always"}), "test_ping_destructive"
    )
    first = chain.start_attempt(incident.pk, 1)
    chain.execute_run(first.pk)
    second = ActionRun.objects.get(incident=incident, position=2)
    ActionRun.objects.filter(pk=second.pk).update(status=RunStatus.APPROVED)

    early = chain.execute_run(second.pk)
    ActionRun.objects.filter(pk=first.pk).update(status=RunStatus.APPROVED)
    after_first = chain.execute_run(first.pk)
    chain.execute_run(after_first.next_run_id)

    assert early.status == RunStatus.APPROVED
    assert receiver.paths() == [
        f"/test_ping/{incident.pk}",
        f"/test_ping_destructive/{incident.pk}",
    ]


def test_each_step_outcome_is_in_the_audit_log(receiver):
    from audit.models import AuditEvent

    receiver.statuses = [200, 400]
    incident = firing_incident(receiver, "test_ping", "test_ping_other")

    drive(incident)

    summaries = list(
        AuditEvent.objects.filter(incident_id=incident.pk, kind="step.finished")
        .order_by("created_at")
        .values_list("summary", flat=True)
    )
    assert summaries[0] == "step 1 test_ping on service sandra-api: succeeded"
    assert summaries[1].startswith(
        "step 2 test_ping_other on service sandra-api: failed"
    )


def test_resolve_skips_waiting_steps_and_withdraws_approvals(
    receiver, django_capture_on_commit_callbacks
):
    from mitigations.models import Approval, Decision, MitigationAttempt

    incident = firing_incident(receiver, "test_ping", "test_ping_destructive")
    with django_capture_on_commit_callbacks(execute=True):
        results = drive(incident)
    approval = Approval.objects.get(run__incident=incident)

    skipped = chain.stop_for_resolved(incident.pk)

    approval.refresh_from_db()
    attempt = MitigationAttempt.objects.get(incident=incident)
    assert results[-1].status == RunStatus.WAITING_APPROVAL
    assert statuses(incident) == [RunStatus.SUCCEEDED, RunStatus.SKIPPED]
    assert skipped == [results[-1].run_id]
    assert approval.decision == Decision.WITHDRAWN
    assert attempt.status == AttemptStatus.MITIGATED
    assert len(receiver.requests) == 1


def test_resolve_before_any_step_acted_stops_attempt(receiver):
    from mitigations.models import MitigationAttempt

    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    first = chain.start_attempt(incident.pk, 1)

    chain.stop_for_resolved(incident.pk)
    result = chain.execute_run(first.pk)

    attempt = MitigationAttempt.objects.get(incident=incident)
    assert result.status == RunStatus.SKIPPED
    assert statuses(incident) == [RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert attempt.status == AttemptStatus.STOPPED
    assert receiver.requests == []


def test_resolve_lets_running_step_finish(receiver):
    from mitigations.models import MitigationAttempt

    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    first = chain.start_attempt(incident.pk, 1)
    ActionRun.objects.filter(pk=first.pk).update(status=RunStatus.RUNNING)

    chain.stop_for_resolved(incident.pk)

    attempt = MitigationAttempt.objects.get(incident=incident)
    assert statuses(incident) == [RunStatus.RUNNING, RunStatus.SKIPPED]
    assert attempt.status == AttemptStatus.STOPPED


def test_failed_attempt_withdraws_approvals_of_held_steps(
    receiver, django_capture_on_commit_callbacks
):
    from mitigations.models import Approval, Decision

    receiver.statuses = [400]
    incident = firing_incident(receiver, "test_ping", "test_ping_other", "test_ping")
    first = chain.start_attempt(incident.pk, 1)
    with django_capture_on_commit_callbacks(execute=True):
        held = chain.hold_remaining(incident.pk)
    requests = Approval.objects.filter(run__incident=incident)
    assert requests.filter(decision=Decision.PENDING).count() == len(held) == 2

    result = chain.execute_run(first.pk)

    assert result.status == RunStatus.FAILED
    assert statuses(incident) == [
        RunStatus.FAILED,
        RunStatus.SKIPPED,
        RunStatus.SKIPPED,
    ]
    assert sorted(requests.values_list("decision", flat=True)) == [
        Decision.WITHDRAWN,
        Decision.WITHDRAWN,
    ]
    assert len(receiver.requests) == 1


def test_failed_attempt_skips_a_step_approved_early(receiver):
    receiver.statuses = [400]
    incident = firing_incident(
        receiver, ("test_ping", {"approval": "always"}), "test_ping_destructive"
    )
    first = chain.start_attempt(incident.pk, 1)
    chain.execute_run(first.pk)
    second = ActionRun.objects.get(incident=incident, position=2)
    ActionRun.objects.filter(pk__in=[first.pk, second.pk]).update(
        status=RunStatus.APPROVED
    )

    chain.execute_run(first.pk)
    late = chain.execute_run(second.pk)

    assert late.status == RunStatus.SKIPPED
    assert statuses(incident) == [RunStatus.FAILED, RunStatus.SKIPPED]
    assert len(receiver.requests) == 1


def test_step_of_paused_watcher_is_blocked(receiver):
    from watchers.models import Watcher

    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    first = chain.start_attempt(incident.pk, 1)
    Watcher.objects.filter(pk=incident.watcher_id).update(mode=Mode.PAUSED)

    result = chain.execute_run(first.pk)

    assert result.status == RunStatus.BLOCKED
    assert statuses(incident) == [RunStatus.BLOCKED, RunStatus.SKIPPED]
    assert incident.attempts.get().status == AttemptStatus.STOPPED
    assert receiver.requests == []


def test_shadow_watcher_step_runs_dry(receiver):
    from watchers.models import Watcher

    incident = firing_incident(receiver, ("test_ping", {"approval": "always"}))
    first = chain.start_attempt(incident.pk, 1)
    chain.execute_run(first.pk)
    Watcher.objects.filter(pk=incident.watcher_id).update(mode=Mode.SHADOW)
    ActionRun.objects.filter(pk=first.pk).update(status=RunStatus.APPROVED)

    result = chain.execute_run(first.pk)

    assert result.status == RunStatus.DRY_RUN
    assert receiver.requests == []


def test_stopped_by_switch_resumes_when_on(receiver):
    AutomationSwitch.objects.update_or_create(pk=1, defaults={"enabled": False})
    incident = firing_incident(receiver, "test_ping")
    drive(incident)
    assert chain.resumable_attempts() == []

    AutomationSwitch.objects.filter(pk=1).update(enabled=True)
    resumable = chain.resumable_attempts()
    second = drive(incident, number=2)

    assert resumable == [(incident.pk, 2)]
    assert second[-1].status == RunStatus.SUCCEEDED
    assert chain.resumable_attempts() == []


def test_stopped_by_pause_resumes_with_watcher(receiver):
    from watchers.models import Watcher

    incident = firing_incident(receiver, "test_ping")
    first = chain.start_attempt(incident.pk, 1)
    Watcher.objects.filter(pk=incident.watcher_id).update(mode=Mode.PAUSED)
    chain.execute_run(first.pk)
    assert chain.resumable_attempts() == []

    Watcher.objects.filter(pk=incident.watcher_id).update(mode=Mode.ACTIVE)

    assert chain.resumable_attempts() == [(incident.pk, 2)]


def test_resolved_or_failed_incident_is_not_resumed(receiver):
    AutomationSwitch.objects.update_or_create(pk=1, defaults={"enabled": False})
    resolved = firing_incident(receiver, "test_ping")
    drive(resolved)
    Incident.objects.filter(pk=resolved.pk).update(
        state=IncidentState.RESOLVED, resolved_at=timezone.now()
    )
    AutomationSwitch.objects.filter(pk=1).update(enabled=True)
    receiver.statuses = [400]
    failed = firing_incident(receiver, "test_ping")
    drive(failed)

    assert failed.attempts.get().status == AttemptStatus.FAILED
    assert chain.resumable_attempts() == []


def test_attempt_start_end_and_requests_audited(
    receiver, django_capture_on_commit_callbacks
):
    from audit.models import AuditEvent
    from mitigations.models import Approval

    receiver.statuses = [400]
    incident = firing_incident(receiver, "test_ping", "test_ping_other")
    first = chain.start_attempt(incident.pk, 1)
    with django_capture_on_commit_callbacks(execute=True):
        chain.hold_remaining(incident.pk)
    chain.execute_run(first.pk)

    events = AuditEvent.objects.filter(incident_id=incident.pk)
    kinds = list(events.order_by("created_at").values_list("kind", flat=True))
    ended = events.get(kind="attempt.ended")
    approval = Approval.objects.get(run__incident=incident)
    assert kinds == [
        "attempt.started",
        "approval.requested",
        "step.finished",
        "attempt.ended",
    ]
    assert ended.summary.startswith(f"attempt 1 of incident {incident.pk} ended failed")
    assert ended.summary.endswith("steps not run: 1, approval requests withdrawn: 1")
    assert ended.details["withdrawn_approval_ids"] == [approval.pk]
