from celery import shared_task
from django.conf import settings

from mitigations.choices import AttemptStatus
from mitigations.models import MitigationAttempt
from mitigations.services import chain, verification


def follow(result: chain.StepResult) -> None:
    """Queue what comes after a step: the next step, a verification or a retry."""
    if result.next_run_id is not None:
        run_mitigation_step.delay(result.next_run_id)
    if result.verify_attempt_id is not None:
        verify_mitigation.apply_async(
            (result.verify_attempt_id,), countdown=settings.VERIFY_EVERY_SECONDS
        )
    if result.failed_attempt_id is not None:
        attempt = MitigationAttempt.objects.get(pk=result.failed_attempt_id)
        start_mitigation.apply_async(
            (attempt.incident_id, attempt.number + 1),
            countdown=settings.ATTEMPT_RETRY_SECONDS,
        )


@shared_task(name="mitigations.start_mitigation", ignore_result=True)
def start_mitigation(incident_id: int, number: int = 1) -> None:
    first = chain.start_attempt(incident_id, number)
    if first is not None:
        run_mitigation_step.delay(first.pk)


# acks_late: a worker that dies mid-step leaves the task to be redelivered;
# the claim in execute_run turns the redelivery into a no-op.
@shared_task(name="mitigations.run_mitigation_step", ignore_result=True, acks_late=True)
def run_mitigation_step(run_id: int) -> str:
    result = chain.execute_run(run_id)
    follow(result)
    return result.status


@shared_task(name="mitigations.verify_mitigation", ignore_result=True)
def verify_mitigation(attempt_id: int) -> str:
    status = verification.verify_attempt(attempt_id)
    if status == AttemptStatus.VERIFYING:
        verify_mitigation.apply_async(
            (attempt_id,), countdown=settings.VERIFY_EVERY_SECONDS
        )
    elif status == AttemptStatus.FAILED:
        attempt = MitigationAttempt.objects.get(pk=attempt_id)
        start_mitigation.delay(attempt.incident_id, attempt.number + 1)
    return status


@shared_task(name="mitigations.reconcile_mitigations", ignore_result=True)
def reconcile_mitigations() -> int:
    results = verification.reconcile_stale_runs()
    for result in results:
        follow(result)
    for run_id in verification.stranded_runs():
        run_mitigation_step.delay(run_id)
    for incident_id, number in chain.resumable_attempts():
        start_mitigation.delay(incident_id, number)
    return len(results)


@shared_task(name="mitigations.restore_rate_limits", ignore_result=True)
def restore_rate_limits() -> int:
    from mitigations.actions import redis_store

    return len(redis_store.restore_rate_limits())


@shared_task(name="mitigations.expire_approvals", ignore_result=True)
def expire_approvals() -> int:
    from mitigations.services import approvals

    return len(approvals.expire_approvals())
