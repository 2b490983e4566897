"""Delete pods one at a time, each after the one before has a ready replacement."""

import logging
from collections.abc import Mapping
from typing import Any

import kubernetes

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    PermanentError,
)
from mitigations.actions.kubernetes.common import (
    NAMESPACE,
    Cluster,
    ConflictError,
    NotFoundError,
    namespace_of,
    wait_for,
)
from mitigations.choices import Risk
from mitigations.registry import register

logger = logging.getLogger(__name__)

# Seconds kept back from the step's timeout for the last replacement's wait,
# so the step records its outcome before the chain's deadline passes.
DEADLINE_MARGIN_SECONDS = 1.0


def is_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def controller_of(pod: Any) -> Any | None:
    references = pod.metadata.owner_references or []
    return next((ref for ref in references if ref.controller), None)


@register("restart_high_memory_pods")
class RestartHighMemoryPods(Action):
    risk = Risk.DESTRUCTIVE
    description = (
        "Delete the named pods one at a time so that their controller replaces "
        "them, waiting for each replacement to be ready before the next deletion."
    )
    parameters = (
        Parameter(
            "pods",
            kind="string_list",
            labels=("pod", "pod_name"),
            help="Names of the pods to delete.",
        ),
        NAMESPACE,
    )

    def target(self, params: Mapping[str, Any]) -> str:
        return f"pods {namespace_of(params)}/{','.join(params['pods'])}"

    def run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        namespace = namespace_of(context.params)
        deleted: list[dict[str, Any]] = []
        already_gone: list[str] = []
        for name in context.params["pods"]:
            pod = self.read_pod(cluster, namespace, name)
            if pod is None:
                logger.info("%s: pod %s/%s is already gone", self.name, namespace, name)
                already_gone.append(name)
                continue
            deleted.append(self.replace(cluster, pod, context, deleted))
        return {
            "namespace": namespace,
            "deleted": deleted,
            "already_gone": already_gone,
        }

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        namespace = namespace_of(context.params)
        would_delete, already_gone = [], []
        for name in context.params["pods"]:
            pod = self.read_pod(cluster, namespace, name)
            if pod is None:
                already_gone.append(name)
                continue
            owner = self.require_controller(pod)
            would_delete.append({"pod": name, "owner": f"{owner.kind}/{owner.name}"})
        return {
            "namespace": namespace,
            "would_delete": would_delete,
            "already_gone": already_gone,
        }

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        """Report the change in place when no named pod exists any more.

        A StatefulSet's replacement keeps the name of the pod it replaces,
        so a pod found by name there could be either: the outcome is unknown.
        """
        cluster = Cluster(context)
        namespace = namespace_of(context.params)
        remaining = []
        for name in context.params["pods"]:
            pod = self.read_pod(cluster, namespace, name)
            if pod is None:
                continue
            owner = controller_of(pod)
            if owner is not None and owner.kind == "StatefulSet":
                return None
            remaining.append(name)
        return {"took_effect": not remaining, "remaining": remaining}

    def read_pod(self, cluster: Cluster, namespace: str, name: str) -> Any | None:
        try:
            return cluster.call(
                f"pod {namespace}/{name}",
                cluster.core.read_namespaced_pod,
                name,
                namespace,
            )
        except NotFoundError:
            return None

    def require_controller(self, pod: Any) -> Any:
        owner = controller_of(pod)
        if owner is None:
            raise PermanentError(
                f"pod {pod.metadata.namespace}/{pod.metadata.name} has no "
                "controller, so nothing would replace it after deletion; delete "
                "it by hand if it should go"
            )
        return owner

    def replace(
        self,
        cluster: Cluster,
        pod: Any,
        context: ActionContext,
        deleted: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Delete ``pod`` and wait for a ready pod of the same controller."""
        owner = self.require_controller(pod)
        namespace, name = pod.metadata.namespace, pod.metadata.name
        before = {p.metadata.uid for p in self.siblings(cluster, pod, owner.uid)}
        self.delete(cluster, pod, context)

        def ready_replacement() -> str | None:
            for sibling in self.siblings(cluster, pod, owner.uid):
                if sibling.metadata.uid not in before and is_ready(sibling):
                    return str(sibling.metadata.name)
            return None

        timeout = context.remaining_seconds() - DEADLINE_MARGIN_SECONDS
        replacement, waited = wait_for(cluster, timeout, ready_replacement)
        if replacement is None:
            done = ", ".join(item["pod"] for item in deleted) or "none"
            raise PermanentError(
                f"pod {namespace}/{name} was deleted, but no replacement from "
                f"{owner.kind} {owner.name} was ready after {waited:.1f} s, so the "
                f"remaining pods were not deleted (deleted before it: {done}); "
                "check the new pod's events"
            )
        return {
            "pod": name,
            "replacement": replacement,
            "waited_seconds": round(waited, 2),
        }

    def delete(self, cluster: Cluster, pod: Any, context: ActionContext) -> None:
        namespace, name = pod.metadata.namespace, pod.metadata.name
        # The uid precondition keeps a same-named replacement (a StatefulSet
        # pod) from being deleted in place of the pod that was read.
        options = kubernetes.client.V1DeleteOptions(
            preconditions=kubernetes.client.V1Preconditions(uid=pod.metadata.uid)
        )
        try:
            cluster.call(
                f"pod {namespace}/{name}",
                cluster.core.delete_namespaced_pod,
                name,
                namespace,
                body=options,
            )
        except (NotFoundError, ConflictError) as error:
            # Gone between the read and the delete (a 409 means the uid
            # precondition failed), so it is being replaced already.
            logger.info(
                "%s: pod %s/%s was gone or replaced before the delete: %s",
                self.name,
                namespace,
                name,
                error,
            )
            return
        logger.info(
            "%s: deleted pod %s/%s for incident %s",
            self.name,
            namespace,
            name,
            context.incident_id,
        )

    def siblings(self, cluster: Cluster, pod: Any, owner_uid: str) -> list[Any]:
        """Pods with the same labels and controller as ``pod``, itself included."""
        labels = pod.metadata.labels or {}
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        listed: Any = cluster.call(
            f"pods of {pod.metadata.name}'s controller",
            cluster.core.list_namespaced_pod,
            pod.metadata.namespace,
            label_selector=selector,
        )
        return [
            item
            for item in listed.items
            if any(ref.uid == owner_uid for ref in item.metadata.owner_references or [])
        ]
