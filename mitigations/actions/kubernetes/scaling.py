"""Scale a Deployment up within limits, then wait for the new pods to be ready.

The limits: each step adds ``increase_percent`` of the current replicas (at
least one), never past twice the replicas the Deployment had when the
incident first got a scale step, nor past BASTION_SCALE_MAX_REPLICAS or the
step's ``max_replicas``. A Deployment scaled to zero, or one that a
HorizontalPodAutoscaler owns, is left alone.
"""

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    PermanentError,
    RetryableError,
)
from mitigations.actions.kubernetes.common import (
    DEPLOYMENT,
    MERGE_PATCH,
    NAMESPACE,
    Cluster,
    deployment_target,
    namespace_of,
    retry_on_conflict,
    wait_for,
)
from mitigations.choices import Risk
from mitigations.registry import register

logger = logging.getLogger(__name__)


def planned_replicas(
    current: int, baseline: int, increase_percent: int, maximum: int
) -> int:
    """Return the replicas to scale to, or raise PermanentError saying why not.

    ``baseline`` is the replicas when the incident first got a scale step, and
    ``maximum`` is the configured ceiling. The result is at most
    ``min(2 * baseline, maximum)`` and always above ``current``.
    """
    if baseline <= 0:
        raise PermanentError(
            f"the Deployment had {baseline} replicas when the incident first got "
            "a scale step, so it was scaled to zero on purpose; Bastion does not "
            "scale it up: scale it by hand if it should run"
        )
    if current <= 0:
        raise PermanentError(
            f"the Deployment has 0 replicas now (it had {baseline} when the "
            "incident first got a scale step); Bastion does not scale up from "
            "zero: scale it by hand if it should run"
        )
    if increase_percent <= 0 or maximum <= 0:
        raise PermanentError(
            f"increase_percent ({increase_percent}) and the maximum ({maximum}) "
            "must be at least 1"
        )
    cap = replica_cap(baseline, maximum)
    if current >= cap:
        raise PermanentError(
            f"the Deployment already has {current} replicas, at or above its cap "
            f"of {cap} ({cap_reason(baseline, maximum)}); Bastion scales no further"
        )
    step = max(1, math.ceil(current * increase_percent / 100))
    return min(current + step, cap)


def replica_cap(baseline: int, maximum: int) -> int:
    return min(2 * baseline, maximum)


def cap_reason(baseline: int, maximum: int) -> str:
    if 2 * baseline <= maximum:
        return f"twice the {baseline} it had when the incident first got a scale step"
    return (
        f"the configured maximum: BASTION_SCALE_MAX_REPLICAS or the step's "
        f"max_replicas, whichever is lower, is {maximum}"
    )


@dataclass
class ScalePlan:
    deployment: str
    namespace: str
    before: int
    after: int
    baseline: int
    cap: int


@register("scale_replicas", "scale_horizontally")
class ScaleReplicas(Action):
    risk = Risk.DISRUPTIVE
    description = (
        "Scale a Deployment up by a share of its replicas, within twice its "
        "replicas at the incident's first scale step and the configured maximum, "
        "then wait for the new pods to be ready."
    )
    parameters = (
        DEPLOYMENT,
        NAMESPACE,
        Parameter(
            "increase_percent",
            kind="integer",
            required=False,
            default=50,
            minimum=1,
            help="Replicas to add, in percent of the current replicas (at least 1).",
        ),
        Parameter(
            "max_replicas",
            kind="integer",
            required=False,
            minimum=1,
            help="Ceiling for this step; BASTION_SCALE_MAX_REPLICAS still applies.",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        return deployment_target(params)

    def run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        plan = retry_on_conflict(
            self.target(context.params), lambda: self.scale(cluster, context)
        )
        ready, waited = self.wait_until_ready(cluster, plan)
        logger.info(
            "%s: scaled %s from %d to %d replicas for incident %s",
            self.name,
            self.target(context.params),
            plan.before,
            plan.after,
            context.incident_id,
        )
        return {**asdict(plan), "ready": ready, "waited_seconds": round(waited, 2)}

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        """Plan from the live scale, as run does, and change nothing.

        The baseline is still recorded: it describes the incident, not the
        Deployment, and a later real step must compare against the same one.
        """
        cluster = Cluster(context)
        scale = self.read_scale(cluster, context)
        plan = self.plan(cluster, context, scale.spec.replicas or 0)
        return {**asdict(plan), "would_scale": plan.after > plan.before}

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        """Compare the live replicas with the count this run planned.

        Only the plan that ``run`` recorded under the run's id can show it.
        Without that plan (a context that remembers nothing) the outcome is
        unknown.
        """
        # An empty mapping means "no plan", because a baseline cannot be null.
        planned = context.remember(self.plan_key(context), {})
        if not planned:
            return None
        scale = self.read_scale(Cluster(context), context)
        replicas = scale.spec.replicas or 0
        return {
            "took_effect": replicas >= planned["after"],
            "replicas": replicas,
            "planned": planned["after"],
        }

    def scale(self, cluster: Cluster, context: ActionContext) -> ScalePlan:
        scale = self.read_scale(cluster, context)
        current = scale.spec.replicas or 0
        plan = self.plan(cluster, context, current)
        if current >= plan.after:
            # An earlier try of this run already wrote the planned count.
            return plan
        # The resourceVersion makes the write conditional, so a change by
        # someone else since the read is a conflict, not silently overwritten.
        patch = {
            "metadata": {"resourceVersion": scale.metadata.resource_version},
            "spec": {"replicas": plan.after},
        }
        cluster.call(
            self.target(context.params),
            cluster.apps.patch_namespaced_deployment_scale,
            plan.deployment,
            plan.namespace,
            patch,
            _content_type=MERGE_PATCH,
        )
        return plan

    def read_scale(self, cluster: Cluster, context: ActionContext) -> Any:
        return cluster.call(
            self.target(context.params),
            cluster.apps.read_namespaced_deployment_scale,
            context.params["deployment"],
            namespace_of(context.params),
        )

    def plan(self, cluster: Cluster, context: ActionContext, current: int) -> ScalePlan:
        """Compute the new count once per run; later tries of the run reuse it."""
        name, namespace = context.params["deployment"], namespace_of(context.params)
        baseline = int(context.remember(f"replicas:{namespace}/{name}", current))
        self.check_autoscalers(cluster, context)
        maximum = min(
            settings.SCALE_MAX_REPLICAS,
            context.params.get("max_replicas") or settings.SCALE_MAX_REPLICAS,
        )
        try:
            after = planned_replicas(
                current, baseline, context.params["increase_percent"], maximum
            )
        except PermanentError as rejection:
            # A retry of a run whose write went through finds the cap reached.
            earlier = context.remember(self.plan_key(context), {})
            if not earlier or current < earlier["after"]:
                raise PermanentError(
                    f"{self.target(context.params)}: {rejection}"
                ) from None
            after = earlier["after"]
        recorded = context.remember(
            self.plan_key(context), {"before": current, "after": after}
        )
        return ScalePlan(
            deployment=name,
            namespace=namespace,
            before=recorded["before"],
            after=recorded["after"],
            baseline=baseline,
            cap=replica_cap(baseline, maximum),
        )

    def plan_key(self, context: ActionContext) -> str:
        name, namespace = context.params["deployment"], namespace_of(context.params)
        return f"replicas-planned:{namespace}/{name}:run-{context.run_id}"

    def check_autoscalers(self, cluster: Cluster, context: ActionContext) -> None:
        name, namespace = context.params["deployment"], namespace_of(context.params)
        listed: Any = cluster.call(
            f"HorizontalPodAutoscalers in namespace {namespace}",
            cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler,
            namespace,
        )
        for autoscaler in listed.items:
            reference = autoscaler.spec.scale_target_ref
            if reference.kind == "Deployment" and reference.name == name:
                raise PermanentError(
                    f"{self.target(context.params)} is scaled by the "
                    f"HorizontalPodAutoscaler {autoscaler.metadata.name} "
                    f"(maxReplicas {autoscaler.spec.max_replicas}), which would "
                    "undo a change to its replicas; raise that HPA's maxReplicas "
                    "instead"
                )

    def wait_until_ready(self, cluster: Cluster, plan: ScalePlan) -> tuple[int, float]:
        """Wait for readyReplicas to reach the new count; raise when it does not."""
        reached = {"ready": 0}

        def ready_count() -> int | None:
            try:
                deployment: Any = cluster.call(
                    f"deployment {plan.namespace}/{plan.deployment}",
                    cluster.apps.read_namespaced_deployment_status,
                    plan.deployment,
                    plan.namespace,
                )
            except RetryableError as error:
                # The scale is written, and a failed read must not make the
                # chain run the whole step again, so polling goes on.
                logger.warning("%s: status read failed: %s", self.name, error)
                return None
            status = deployment.status
            reached["ready"] = status.ready_replicas or 0
            observed = (status.observed_generation or 0) >= (
                deployment.metadata.generation or 0
            )
            return (
                reached["ready"]
                if observed and reached["ready"] >= plan.after
                else None
            )

        timeout = settings.SCALE_READY_TIMEOUT_SECONDS
        ready, waited = wait_for(cluster, timeout, ready_count)
        if ready is None:
            raise PermanentError(
                f"deployment {plan.namespace}/{plan.deployment}: only "
                f"{reached['ready']} of {plan.after} replicas were ready after "
                f"{waited:.1f} s (BASTION_SCALE_READY_TIMEOUT_SECONDS is {timeout:g}); "
                f"its replicas stay at {plan.after}: check the new pods' events"
            )
        return ready, waited
