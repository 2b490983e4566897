from datetime import datetime

from celery import shared_task

from watchers.services import evaluation, scheduling


def _enqueue_evaluation(watcher_ids: list[int], slot: datetime) -> None:
    evaluate_watchers.delay(watcher_ids, slot.isoformat())


@shared_task(name="watchers.dispatch_due_watchers", ignore_result=True)
def dispatch_due_watchers() -> int:
    dispatched = scheduling.dispatch_due_watchers(_enqueue_evaluation)
    return sum(len(chunk) for _, chunk in dispatched)


# A redelivered evaluation is harmless: the slot claim makes it a no-op.
@shared_task(name="watchers.evaluate_watchers", ignore_result=True, acks_late=True)
def evaluate_watchers(watcher_ids: list[int], slot: str) -> int:
    report = evaluation.evaluate_watchers(watcher_ids, datetime.fromisoformat(slot))
    return report.evaluated
