"""A test action for Celery workers started by tests (loaded with --include)."""

from typing import Any

from mitigations.actions.base import Action, ActionContext, Parameter
from mitigations.choices import Risk
from mitigations.registry import register
from mitigations.services.clients import http_request


@register("test_worker_ping")
class WorkerPing(Action):
    risk = Risk.SAFE
    parameters = (Parameter("url", kind="url"),)

    def target(self, params: dict[str, Any]) -> str:
        return params["url"]

    def run(self, context: ActionContext) -> dict[str, Any]:
        response = http_request(
            "POST",
            f"{context.params['url']}/{context.incident_id}",
            retries=0,
            timeout_seconds=60,
        )
        return {"status": response.status_code}
