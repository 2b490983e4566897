"""Steps that tell people, through the receivers the escalation routes use."""

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from mitigations.actions.base import Action, ActionContext, Parameter, PermanentError
from mitigations.choices import Risk
from mitigations.registry import register


@register("security_team_alert")
class TeamAlert(Action):
    """Queue one notification per receiver; delivery retries happen there."""

    risk = Risk.SAFE
    description = "Notify the security team's receivers about the incident."
    parameters = (
        Parameter(
            "receivers",
            kind="string_list",
            default=["slack_security_team"],
            help="Receiver names, as import_escalations creates them.",
        ),
        Parameter("severity", default="critical"),
        Parameter(
            "text",
            default="a mitigation step asks the security team to look at this",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        return "receivers " + ",".join(params["receivers"])

    def run(self, context: ActionContext) -> dict[str, Any]:
        from escalations.models import Receiver
        from escalations.services import delivery, messages
        from watchers.models import Incident

        names = context.params["receivers"]
        receivers = list(Receiver.objects.filter(name__in=names, enabled=True))
        missing = sorted(set(names) - {r.name for r in receivers})
        if missing:
            raise PermanentError(
                f"no enabled receiver named {', '.join(missing)}: import "
                "escalation.yaml with import_escalations, or add the receiver in "
                "Django admin"
            )
        incident = Incident.objects.select_related("watcher").get(
            pk=context.incident_id
        )
        message = messages.alerted(
            incident, context.params["severity"], context.params["text"]
        )
        # One key per run: a retried step finds its deliveries already there.
        created = delivery.record(
            incident, f"step:{context.run_id}", receivers, message, timezone.now()
        )
        return {"receivers": names, "queued_deliveries": created}

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        return {"would_notify": context.params["receivers"]}
