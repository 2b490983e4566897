"""Roll a Deployment back to the pod template of its previous ReplicaSet.

This is what ``kubectl rollout undo`` does to the template: the previous
ReplicaSet is the one with the highest ``deployment.kubernetes.io/revision``
below the current one, and its template, without the ``pod-template-hash``
label, becomes the Deployment's. The deployment controller then gives that
ReplicaSet the next revision number.
"""

import logging
from collections.abc import Mapping
from typing import Any

from mitigations.actions.base import Action, ActionContext, PermanentError
from mitigations.actions.kubernetes.common import (
    DEPLOYMENT,
    JSON_PATCH,
    NAMESPACE,
    POD_TEMPLATE_HASH,
    REVISION,
    Cluster,
    deployment_target,
    namespace_of,
    retry_on_conflict,
)
from mitigations.choices import Risk
from mitigations.registry import register

logger = logging.getLogger(__name__)


def revision_of(obj: Any) -> int:
    annotations = obj.metadata.annotations or {}
    try:
        return int(annotations.get(REVISION, "0"))
    except ValueError:
        return 0


def template_patch(template: dict[str, Any], resource_version: str) -> list[Any]:
    """Build the JSON patch that makes ``template`` the Deployment's template.

    The patch replaces the template whole, so no field of the current one
    survives by merging, and the resourceVersion makes the write conditional.
    """
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(POD_TEMPLATE_HASH, None)
    return [
        {
            "op": "replace",
            "path": "/metadata/resourceVersion",
            "value": resource_version,
        },
        {"op": "replace", "path": "/spec/template", "value": template},
    ]


@register("rollback_deployment")
class RollbackDeployment(Action):
    risk = Risk.DISRUPTIVE
    description = (
        "Roll a Deployment back to the pod template of its previous ReplicaSet, "
        "as kubectl rollout undo does."
    )
    parameters = (DEPLOYMENT, NAMESPACE)

    def target(self, params: Mapping[str, Any]) -> str:
        return deployment_target(params)

    def run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        output = retry_on_conflict(
            self.target(context.params), lambda: self.roll_back(cluster, context)
        )
        logger.info(
            "%s: %s from revision %s to %s for incident %s",
            self.name,
            self.target(context.params),
            output["from_revision"],
            output["to_revision"],
            context.incident_id,
        )
        return output

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        deployment, current, previous = self.revisions(cluster, context)
        return {
            "deployment": deployment.metadata.name,
            "namespace": deployment.metadata.namespace,
            "from_revision": revision_of(current),
            "to_revision": revision_of(previous),
            "replica_set": previous.metadata.name,
        }

    def roll_back(self, cluster: Cluster, context: ActionContext) -> dict[str, Any]:
        deployment, current, previous = self.revisions(cluster, context)
        key = f"rollback:{self.target(context.params)}"
        # The first rollback of the incident is remembered: rolling back again
        # (a retry whose write went through, or a later attempt) would return
        # to the revision the first one left.
        chosen = context.remember(key, previous.metadata.name)

        if chosen == current.metadata.name:
            return {
                "deployment": deployment.metadata.name,
                "namespace": deployment.metadata.namespace,
                "from_revision": revision_of(current),
                "to_revision": revision_of(current),
                "replica_set": chosen,
                "changed": False,
            }

        patch = template_patch(
            cluster.to_json(previous.spec.template),
            deployment.metadata.resource_version,
        )
        updated = cluster.call(
            self.target(context.params),
            cluster.apps.patch_namespaced_deployment,
            deployment.metadata.name,
            deployment.metadata.namespace,
            patch,
            _content_type=JSON_PATCH,
        )
        return {
            "deployment": deployment.metadata.name,
            "namespace": deployment.metadata.namespace,
            "from_revision": revision_of(current),
            "to_revision": revision_of(previous),
            "new_revision": revision_of(updated),
            "replica_set": previous.metadata.name,
            "changed": True,
        }

    def revisions(
        self, cluster: Cluster, context: ActionContext
    ) -> tuple[Any, Any, Any]:
        """Return the Deployment, its current ReplicaSet and the previous one."""
        name, namespace = context.params["deployment"], namespace_of(context.params)
        deployment = cluster.call(
            self.target(context.params),
            cluster.apps.read_namespaced_deployment,
            name,
            namespace,
        )
        replica_sets = sorted(
            self.replica_sets(cluster, deployment), key=revision_of, reverse=True
        )
        if not replica_sets:
            raise PermanentError(
                f"{self.target(context.params)} has no ReplicaSets yet, so there "
                "is no revision to roll back to"
            )
        current = replica_sets[0]
        if len(replica_sets) < 2:
            raise PermanentError(
                f"{self.target(context.params)} has only revision "
                f"{revision_of(current)} ({current.metadata.name}), so there is no "
                "previous revision to roll back to; its revisionHistoryLimit may "
                "have removed older ReplicaSets"
            )
        return deployment, current, replica_sets[1]

    def replica_sets(self, cluster: Cluster, deployment: Any) -> list[Any]:
        """List the ReplicaSets the Deployment owns, found by its selector's labels."""
        metadata = deployment.metadata
        match_labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        listed: Any = cluster.call(
            f"ReplicaSets of deployment {metadata.namespace}/{metadata.name}",
            cluster.apps.list_namespaced_replica_set,
            metadata.namespace,
            label_selector=selector,
        )
        uid = metadata.uid
        return [
            replica_set
            for replica_set in listed.items
            if any(
                ref.uid == uid for ref in replica_set.metadata.owner_references or []
            )
        ]
