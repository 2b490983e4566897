"""The Celery application, with the beat schedule that drives evaluation."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

app = Celery("bastion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_dispatch(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        settings.DISPATCH_EVERY_SECONDS,
        sender.signature("watchers.dispatch_due_watchers"),
        name="dispatch due watchers",
        # A dispatch that waited longer than its period is stale: the next
        # one claims the same work, so the queue never builds a backlog.
        expires=settings.DISPATCH_EVERY_SECONDS,
    )
    sender.add_periodic_task(
        settings.RECONCILE_EVERY_SECONDS,
        sender.signature("mitigations.reconcile_mitigations"),
        name="reconcile mitigation runs",
        expires=settings.RECONCILE_EVERY_SECONDS,
    )
    sender.add_periodic_task(
        30.0,
        sender.signature("mitigations.expire_approvals"),
        name="expire approval requests",
        expires=30.0,
    )
    sender.add_periodic_task(
        60.0,
        sender.signature("mitigations.restore_rate_limits"),
        name="restore lowered rate limits",
        expires=60.0,
    )
    sender.add_periodic_task(
        settings.ESCALATE_EVERY_SECONDS,
        sender.signature("escalations.evaluate_escalations"),
        name="evaluate escalations",
        expires=settings.ESCALATE_EVERY_SECONDS,
    )
