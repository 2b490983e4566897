"""A no-op action the latency benchmark's worker loads with ``--include``."""

from typing import Any

from mitigations.actions.base import Action, ActionContext
from mitigations.choices import Risk
from mitigations.registry import register


@register("bench_noop")
class NoOp(Action):
    risk = Risk.SAFE
    description = "Do nothing; measures the chain's own cost."

    def target(self, params: dict[str, Any]) -> str:
        return "nothing"

    def run(self, context: ActionContext) -> dict[str, Any]:
        return {}
