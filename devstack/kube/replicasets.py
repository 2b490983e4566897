"""ReplicaSets and pods of a Deployment, built as the real controllers build them."""

import copy
import json
import logging
import math
import uuid
from typing import Any

from devstack.kube.store import (
    DEPLOYMENTS,
    PODS,
    REPLICA_SETS,
    Store,
    now_timestamp,
)

logger = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
POD_TEMPLATE_HASH = "pod-template-hash"
# The characters Kubernetes uses in generated names, with no vowels so that
# no words appear.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NODE_NAME = "standin-node"


def template_hash(template: dict[str, Any]) -> str:
    """Hash a pod template (FNV-1a, 32 bit) into the alphabet of names."""
    text = json.dumps(without_hash_label(template), sort_keys=True)
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(NAME_ALPHABET[ord(char) % len(NAME_ALPHABET)] for char in str(value))


def without_hash_label(template: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy(template)
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(POD_TEMPLATE_HASH, None)
    return template


def random_suffix() -> str:
    digits = uuid.uuid4().int
    return "".join(
        NAME_ALPHABET[(digits >> (5 * i)) % len(NAME_ALPHABET)] for i in range(5)
    )


def revision_of(obj: dict[str, Any]) -> int:
    annotations = obj["metadata"].get("annotations") or {}
    return int(annotations.get(REVISION, "0"))


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    metadata = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    references = obj["metadata"].get("ownerReferences") or []
    return any(reference.get("uid") == uid for reference in references)


def desired_replicas(obj: dict[str, Any]) -> int:
    replicas = obj.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def replica_sets_of(store: Store, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    namespace = deployment["metadata"]["namespace"]
    return [
        replica_set
        for replica_set in store.list_objects(REPLICA_SETS, namespace)
        if is_owned_by(replica_set, deployment)
    ]


def pods_of(store: Store, replica_set: dict[str, Any]) -> list[dict[str, Any]]:
    namespace = replica_set["metadata"]["namespace"]
    return [
        pod
        for pod in store.list_objects(PODS, namespace)
        if is_owned_by(pod, replica_set)
    ]


def sync_replica_sets(
    store: Store, deployment: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find or create the ReplicaSet of the Deployment's pod template.

    Returns the Deployment as stored, with its revision annotation set to the
    revision of that ReplicaSet, and the ReplicaSet.
    """
    with store.lock:
        replica_sets = replica_sets_of(store, deployment)
        template = without_hash_label(deployment["spec"]["template"])
        current = next(
            (
                rs
                for rs in replica_sets
                if without_hash_label(rs["spec"]["template"]) == template
            ),
            None,
        )
        newest = max((revision_of(rs) for rs in replica_sets), default=0)
        if current is None:
            current = create_replica_set(store, deployment, newest + 1)
        elif revision_of(current) < newest:
            current = promote_replica_set(store, current, newest + 1)
        scale_replica_sets(store, deployment, current["metadata"]["uid"])
        deployment = set_revision(store, deployment, revision_of(current))
        return deployment, current


def create_replica_set(
    store: Store, deployment: dict[str, Any], revision: int
) -> dict[str, Any]:
    metadata, spec = deployment["metadata"], deployment["spec"]
    pod_hash = template_hash(spec["template"])
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = (
        pod_hash
    )
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key not in (REVISION, REVISION_HISTORY)
    }
    annotations.update(
        {REVISION: str(revision), DESIRED_REPLICAS: str(desired_replicas(deployment))}
    )
    match_labels = dict(spec["selector"].get("matchLabels") or {})
    body = {
        "metadata": {
            "name": f"{metadata['name']}-{pod_hash}",
            "labels": template["metadata"]["labels"],
            "annotations": annotations,
            "ownerReferences": [owner_reference(deployment)],
        },
        "spec": {
            "replicas": desired_replicas(deployment),
            "selector": {"matchLabels": {**match_labels, POD_TEMPLATE_HASH: pod_hash}},
            "template": template,
        },
    }
    logger.info(
        "Created ReplicaSet %s/%s at revision %d",
        metadata["namespace"],
        body["metadata"]["name"],
        revision,
    )
    return store.create(REPLICA_SETS, metadata["namespace"], body)


def promote_replica_set(
    store: Store, replica_set: dict[str, Any], revision: int
) -> dict[str, Any]:
    """Give an older ReplicaSet the newest revision, as a rollback does."""
    annotations = replica_set["metadata"].setdefault("annotations", {})
    history = [
        part for part in annotations.get(REVISION_HISTORY, "").split(",") if part
    ]
    history.append(annotations.get(REVISION, "0"))
    annotations[REVISION_HISTORY] = ",".join(history)
    annotations[REVISION] = str(revision)
    return store.write(REPLICA_SETS, replica_set)


def scale_replica_sets(
    store: Store, deployment: dict[str, Any], current_uid: str
) -> None:
    """Give the current ReplicaSet the Deployment's replicas and the others 0."""
    replicas = desired_replicas(deployment)
    for replica_set in replica_sets_of(store, deployment):
        is_current = replica_set["metadata"]["uid"] == current_uid
        replica_set["spec"]["replicas"] = replicas if is_current else 0
        if is_current:
            annotations = replica_set["metadata"].setdefault("annotations", {})
            annotations[DESIRED_REPLICAS] = str(replicas)
        store.write(REPLICA_SETS, replica_set)


def set_revision(
    store: Store, deployment: dict[str, Any], revision: int
) -> dict[str, Any]:
    latest = store.get(DEPLOYMENTS, **name_of(deployment))
    latest["metadata"].setdefault("annotations", {})[REVISION] = str(revision)
    return store.write(DEPLOYMENTS, latest)


def name_of(obj: dict[str, Any]) -> dict[str, str]:
    return {"namespace": obj["metadata"]["namespace"], "name": obj["metadata"]["name"]}


def new_pod(replica_set: dict[str, Any]) -> dict[str, Any]:
    metadata, template = replica_set["metadata"], replica_set["spec"]["template"]
    template_metadata = template.get("metadata") or {}
    pod_spec = {**copy.deepcopy(template["spec"]), "nodeName": NODE_NAME}
    pod_metadata = {
        "name": f"{metadata['name']}-{random_suffix()}",
        "generateName": f"{metadata['name']}-",
        "labels": dict(template_metadata.get("labels") or {}),
        "ownerReferences": [owner_reference(replica_set)],
    }
    if template_metadata.get("annotations"):
        pod_metadata["annotations"] = dict(template_metadata["annotations"])
    return {
        "metadata": pod_metadata,
        "spec": pod_spec,
        "status": pod_status(pod_spec, False),
    }


def pod_status(pod_spec: dict[str, Any], ready: bool) -> dict[str, Any]:
    now = now_timestamp()
    flag = "True" if ready else "False"
    state = (
        {"running": {"startedAt": now}}
        if ready
        else {"waiting": {"reason": "ContainerCreating"}}
    )
    return {
        "phase": "Running" if ready else "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
            {"type": "Ready", "status": flag, "lastTransitionTime": now},
        ],
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container.get("image", ""),
                "imageID": "",
                "ready": ready,
                "started": ready,
                "restartCount": 0,
                "state": state,
            }
            for container in pod_spec.get("containers", [])
        ],
        "startTime": now,
        "qosClass": "BestEffort",
    }


def nonzero(**counts: int) -> dict[str, int]:
    """Keep only the counts above zero, as Go's omitempty drops the others."""
    return {key: value for key, value in counts.items() if value}


def condition(
    old_status: dict[str, Any], kind: str, status: bool, reason: str, message: str
) -> dict[str, Any]:
    """Build a condition, keeping its old timestamps while status and reason stay."""
    flag = "True" if status else "False"
    old = next(
        (c for c in old_status.get("conditions") or [] if c["type"] == kind), None
    )
    now = now_timestamp()
    if old and old["status"] == flag and old.get("reason") == reason:
        return old
    transition = old["lastTransitionTime"] if old and old["status"] == flag else now
    return {
        "type": kind,
        "status": flag,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def deployment_status(
    deployment: dict[str, Any],
    current: dict[str, Any],
    pods: list[dict[str, Any]],
    updated: int,
) -> dict[str, Any]:
    desired = desired_replicas(deployment)
    ready = sum(1 for pod in pods if is_ready(pod))
    old_status = deployment.get("status") or {}
    name = current["metadata"]["name"]
    complete = updated == desired and ready >= desired and len(pods) == desired
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        **nonzero(
            replicas=len(pods),
            updatedReplicas=updated,
            readyReplicas=ready,
            availableReplicas=ready,
            unavailableReplicas=max(0, desired - ready),
        ),
    }
    # The default rolling update allows a quarter of the pods to be missing.
    available = ready >= desired - math.floor(desired * 0.25)
    status["conditions"] = [
        condition(
            old_status,
            "Available",
            available,
            "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
        ),
        condition(
            old_status,
            "Progressing",
            True,
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{name}" is progressing.',
        ),
    ]
    return status


def replica_set_status(
    replica_set: dict[str, Any], pods: list[dict[str, Any]]
) -> dict[str, Any]:
    ready = sum(1 for pod in pods if is_ready(pod))
    return {
        "replicas": len(pods),
        **nonzero(
            fullyLabeledReplicas=len(pods), readyReplicas=ready, availableReplicas=ready
        ),
        "observedGeneration": replica_set["metadata"].get("generation", 1),
    }
