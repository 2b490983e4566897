"""Objects the stand-in starts with: the demo's sandra-api, or a seed file.

A seed is a list of Kubernetes objects: a YAML file (several documents
allowed), a JSON file, or a ``List`` with ``items``. Objects without a
namespace go to ``default``.
"""

import copy
from pathlib import Path
from typing import Any

import yaml

from devstack.kube.replicasets import sync_replica_sets
from devstack.kube.store import DEPLOYMENTS, RESOURCE_TYPES_BY_KIND, ApiError, Store

SANDRA_LABELS = {"app": "sandra-api"}

SANDRA_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "sandra-api",
        "namespace": "default",
        "labels": dict(SANDRA_LABELS),
        "annotations": {"bastion.example/owner": "platform-team"},
    },
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": dict(SANDRA_LABELS)},
        "template": {
            "metadata": {
                "labels": dict(SANDRA_LABELS),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": "8000",
                },
            },
            "spec": {
                "containers": [
                    {
                        "name": "sandra-api",
                        "image": "sandra-api:1.4.2",
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "env": [
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "CIRCUIT_BREAKER", "value": "off"},
                            {
                                "name": "CONFIG_PATH",
                                "value": "/etc/sandra-api/config.yaml",
                            },
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"memory": "512Mi"},
                        },
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/sandra-api"}
                        ],
                    }
                ],
                "volumes": [
                    {"name": "config", "configMap": {"name": "sandra-api-config"}}
                ],
            },
        },
    },
}

SANDRA_CONFIG_MAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "sandra-api-config",
        "namespace": "default",
        "labels": dict(SANDRA_LABELS),
    },
    "data": {
        "log_level": "info",
        "circuit_breaker": "off",
        "rate_limit_per_minute": "600",
    },
}


def default_seed() -> list[dict[str, Any]]:
    return [copy.deepcopy(SANDRA_DEPLOYMENT), copy.deepcopy(SANDRA_CONFIG_MAP)]


def seed_items(document: Any) -> list[dict[str, Any]]:
    """Return the objects of a seed document: a list, a List, or one object."""
    if document is None:
        return []
    if isinstance(document, list):
        return [item for part in document for item in seed_items(part)]
    if isinstance(document, dict):
        if document.get("kind") == "List" or (
            "items" in document and "kind" not in document
        ):
            return seed_items(document.get("items") or [])
        return [document]
    raise ValueError(
        f"a seed must contain Kubernetes objects, not {type(document).__name__}"
    )


def load_seed_file(path: Path) -> list[dict[str, Any]]:
    """Read the objects of a YAML or JSON seed file (JSON is valid YAML)."""
    with path.open() as stream:
        documents = list(yaml.safe_load_all(stream))
    return seed_items(documents)


def apply_seed(store: Store, objects: list[dict[str, Any]]) -> list[str]:
    """Create or replace each object; return ``kind/namespace/name`` of each."""
    loaded = []
    for obj in objects:
        kind = obj.get("kind")
        resource = RESOURCE_TYPES_BY_KIND.get(kind or "")
        if resource is None:
            raise ValueError(
                f"seed object of kind {kind!r} is not served; use one of "
                f"{sorted(RESOURCE_TYPES_BY_KIND)}"
            )
        metadata = obj.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        with store.lock:
            try:
                stored = store.create(resource, namespace, obj)
            except ApiError as error:
                if error.reason != "AlreadyExists":
                    raise
                body = copy.deepcopy(obj)
                body["metadata"].pop("resourceVersion", None)
                stored = store.update(resource, namespace, metadata["name"], body)
            if resource is DEPLOYMENTS:
                sync_replica_sets(store, stored)
        loaded.append(f"{kind}/{namespace}/{stored['metadata']['name']}")
    return loaded
