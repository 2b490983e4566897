import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class EscalationsConfig(AppConfig):
    name = "escalations"
    verbose_name = "Escalations and notifications"

    def ready(self) -> None:
        from watchers.signals import incident_opened

        incident_opened.connect(escalate_on_open, dispatch_uid="escalations-open")


def escalate_on_open(sender: Any, incident_id: int, **kwargs: Any) -> None:
    """Escalate at once an incident whose watcher escalates ``immediate``.

    Runs in the evaluation's process right after its commit. It only writes
    rows and queues the sends, and it never raises, because the signal's
    sender does not expect receivers to fail.
    """
    from escalations.services.evaluation import escalate_if_immediate

    try:
        escalate_if_immediate(incident_id)
    except Exception:
        logger.exception("immediate escalation of incident %s failed", incident_id)
