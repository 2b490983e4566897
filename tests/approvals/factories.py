"""Incidents with a step that waits for approval, built from the models.

The test actions make a real HTTP call to a local receiver, so a step that
ran shows up as a request there.
"""

from typing import Any

from django.utils import timezone

from mitigations.actions.base import Action, ActionContext, Parameter
from mitigations.choices import Risk, RunStatus
from mitigations.models import ActionRun, MitigationAttempt, MitigationStep
from mitigations.registry import register
from mitigations.services.clients import http_request
from tests.watchers.factories import make_watcher
from watchers.models import Incident


class ApprovalPing(Action):
    risk = Risk.DISRUPTIVE
    parameters = (
        Parameter("url", kind="url"),
        Parameter("service", labels=("service",)),
    )

    def target(self, params: dict[str, Any]) -> str:
        return f"service {params.get('service', '-')}"

    def run(self, context: ActionContext) -> dict[str, Any]:
        response = http_request(
            "POST",
            f"{context.params['url']}/{self.name}/{context.incident_id}",
            retries=0,
        )
        return {"status": response.status_code}


@register("test_approval_ping")
class DisruptiveApprovalPing(ApprovalPing):
    pass


@register("test_approval_wipe")
class DestructiveApprovalPing(ApprovalPing):
    risk = Risk.DESTRUCTIVE


def firing_incident(
    *steps: tuple[str, dict[str, Any]], labels: dict[str, str] | None = None, **watcher
) -> Incident:
    """Create a firing incident whose watcher has ``steps`` (action, fields)."""
    watcher_row = make_watcher(**watcher)
    for position, (action, fields) in enumerate(steps, start=1):
        MitigationStep.objects.create(
            watcher=watcher_row, position=position, action=action, **fields
        )
    return Incident.objects.create(
        watcher=watcher_row,
        fingerprint=f"{watcher_row.pk:032d}",
        labels=labels or {"service": "sandra-api"},
        threshold=watcher_row.threshold,
        comparison=watcher_row.comparison,
        last_value=watcher_row.threshold + 1,
        opened_at=timezone.now(),
    )


def waiting_runs(incident: Incident, count: int = 1) -> list[ActionRun]:
    """Start attempt 1 with the incident's steps, each waiting for approval."""
    now = timezone.now()
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=now
    )
    runs = []
    for step in incident.watcher.steps.order_by("position")[:count]:
        runs.append(
            ActionRun.objects.create(
                attempt=attempt,
                incident=incident,
                step=step,
                position=step.position,
                action=step.action,
                risk=Risk.DESTRUCTIVE
                if step.action == "test_approval_wipe"
                else Risk.DISRUPTIVE,
                status=RunStatus.WAITING_APPROVAL,
                continue_on_failure=step.continue_on_failure,
                inputs=dict(step.parameters),
                queued_at=now,
            )
        )
    return runs
