"""Find the heaviest clients with a PromQL top-k query.

The output's ``clients`` list, heaviest first, is what a later blocking step
(temporary_ip_block, selective_blocking) reads from ``context.previous``.
"""

import logging
import math
from collections.abc import Mapping
from typing import Any

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    ParameterError,
    RetryableError,
    expand_labels,
    placeholder_names,
)
from mitigations.choices import Risk
from mitigations.registry import register
from watchers.services.prometheus import PrometheusClient, PrometheusError
from watchers.services.promql import PromQLError, check_instant_query

logger = logging.getLogger(__name__)

QUERY_HELP = (
    "PromQL giving one series per client. The action wraps it in topk(k, ...). "
    "A bare label name in braces, such as {service}, is replaced by the "
    'incident\'s label; matchers such as {job="api"} are left as they are.'
)


def analysis_parameters(default_query: str) -> tuple[Parameter, ...]:
    return (
        Parameter("query", default=default_query, help=QUERY_HELP),
        Parameter(
            "label",
            default="source_ip",
            help="Label of each series that contains the client's IP address.",
        ),
        Parameter(
            "k", kind="integer", default=10, minimum=1, help="Clients to return."
        ),
    )


class ClientAnalysis(Action):
    risk = Risk.SAFE
    description = "Run a PromQL top-k query for the heaviest clients."

    def clean(
        self,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        cleaned = super().clean(values, labels)
        query = _topk(cleaned)
        if labels is None:
            # Labels are filled in only when the step runs, so check the query
            # with a stand-in value for each of them.
            stand_ins = {name: "label" for name in placeholder_names(query)}
            query = expand_labels(query, stand_ins, "query")
        try:
            check_instant_query(query)
        except PromQLError as error:
            raise ParameterError("query", str(error)) from None
        return cleaned

    def target(self, params: Mapping[str, Any]) -> str:
        return f"prometheus top {params.get('k', 10)} by {params.get('label')}"

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        # Reading is all this action does, so a dry run runs the query too.
        return self.run(context)

    def run(self, context: ActionContext) -> dict[str, Any]:
        query, label = _topk(context.params), context.params["label"]
        timeout = max(1.0, min(10.0, context.remaining_seconds()))
        try:
            samples = PrometheusClient(timeout_seconds=timeout).query(query)
        except PrometheusError as error:
            raise RetryableError(f"the query {query!r} failed: {error}") from None
        ranked = [s for s in samples if s.labels.get(label) and not math.isnan(s.value)]
        ranked.sort(key=lambda sample: sample.value, reverse=True)
        clients = [
            {"ip": sample.labels[label], "value": _json_number(sample.value)}
            for sample in ranked
        ]
        logger.info(
            "%s for incident %s found %s clients",
            self.name,
            context.incident_id,
            len(clients),
        )
        return {
            "query": query,
            "label": label,
            "clients": clients,
            "skipped_series": len(samples) - len(ranked),
        }


def _topk(params: Mapping[str, Any]) -> str:
    return f"topk({params.get('k', 10)}, {params.get('query')})"


def _json_number(value: float) -> float | str:
    """JSON has no infinity, so ±Inf is written as Prometheus writes it."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


@register("analyze_client_patterns")
class AnalyzeClientPatterns(ClientAnalysis):
    parameters = analysis_parameters(
        "sum by (source_ip) (rate(http_requests_total[5m]))"
    )


@register("traffic_analysis")
class TrafficAnalysis(ClientAnalysis):
    parameters = analysis_parameters(
        "sum by (source_ip) (rate(auth_failures_total[5m]))"
    )
