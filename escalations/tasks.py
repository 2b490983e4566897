from celery import shared_task
from django.utils import timezone

from escalations.services import delivery, evaluation


# acks_late: a lost worker's delivery is redelivered; the claim in deliver()
# keeps it from being sent twice.
@shared_task(name="escalations.send_notification", ignore_result=True, acks_late=True)
def send_notification(delivery_id: int) -> str:
    return delivery.deliver(delivery_id)


@shared_task(name="escalations.evaluate_escalations", ignore_result=True)
def evaluate_escalations() -> int:
    report = evaluation.evaluate_open_incidents()
    # Deliveries whose send task never ran (broker down, worker lost).
    delivery.enqueue(delivery.due_ids(timezone.now()))
    return len(report.escalated)
