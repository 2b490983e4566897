"""Checks that kube-apiserver makes before it stores an object.

Only the rules that keep stored objects readable by the ``kubernetes`` client
(its models require some fields) and the ones a mitigation can break are here.
A failure raises 422 Invalid with one cause per problem, as the real server.
"""

import copy
import re
from typing import Any

from devstack.kube.store import (
    CONFIG_MAPS,
    DEPLOYMENTS,
    HORIZONTAL_POD_AUTOSCALERS,
    ApiError,
    ResourceType,
    resource_details,
)

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

Problem = tuple[str, str]

DEPLOYMENT_DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "strategy": {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    },
    "revisionHistoryLimit": 10,
    "progressDeadlineSeconds": 600,
}


def admit(
    resource: ResourceType, new: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """Fill the API's defaults into ``new``, then validate it."""
    apply_defaults(resource, new)
    validate(resource, new, old)


def apply_defaults(resource: ResourceType, new: dict[str, Any]) -> None:
    """Set the defaults of apps/v1 Deployments and autoscaling/v2 HPAs."""
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return
    if resource is DEPLOYMENTS:
        for field, default in DEPLOYMENT_DEFAULTS.items():
            spec.setdefault(field, copy.deepcopy(default))
    elif resource is HORIZONTAL_POD_AUTOSCALERS:
        spec.setdefault("minReplicas", 1)


def validate(
    resource: ResourceType, new: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """Raise ApiError 422 naming every invalid field of ``new``."""
    problems = name_problems(new)
    if resource is DEPLOYMENTS:
        problems += deployment_problems(new, old)
    elif resource is CONFIG_MAPS:
        problems += config_map_problems(new)
    elif resource is HORIZONTAL_POD_AUTOSCALERS:
        problems += autoscaler_problems(new)
    if problems:
        raise invalid(resource, new["metadata"].get("name", ""), problems)


def invalid(resource: ResourceType, name: str, problems: list[Problem]) -> ApiError:
    summary = ", ".join(f"{field}: {message}" for field, message in problems)
    details = resource_details(resource, name)
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": message, "field": field}
        for field, message in problems
    ]
    kind = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    return ApiError(422, f'{kind} "{name}" is invalid: {summary}', details=details)


def name_problems(obj: dict[str, Any]) -> list[Problem]:
    name = obj["metadata"].get("name")
    if not name:
        return [("metadata.name", "Required value: name or generateName is required")]
    if not DNS_SUBDOMAIN.match(name):
        return [
            (
                "metadata.name",
                f"Invalid value: {name!r}: must be a lowercase RFC 1123 subdomain",
            )
        ]
    return []


def deployment_problems(
    new: dict[str, Any], old: dict[str, Any] | None
) -> list[Problem]:
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    problems = replicas_problems(spec.get("replicas"), "spec.replicas")
    selector = spec.get("selector")
    match_labels = (
        (selector or {}).get("matchLabels") if isinstance(selector, dict) else None
    )
    if not match_labels:
        problems.append(("spec.selector.matchLabels", "Required value"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*problems, ("spec.template", "Required value")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if match_labels and any(
        labels.get(key) != value for key, value in match_labels.items()
    ):
        problems.append(
            (
                "spec.template.metadata.labels",
                f"Invalid value: {labels!r}: "
                "`selector` does not match template `labels`",
            )
        )
    if old is not None and selector != old.get("spec", {}).get("selector"):
        problems.append(("spec.selector", "Invalid value: field is immutable"))
    return problems + container_problems(template.get("spec"))


def replicas_problems(replicas: Any, field: str) -> list[Problem]:
    if replicas is None:
        return []
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        return [(field, f"Invalid value: {replicas!r}: must be an integer >= 0")]
    return []


def container_problems(pod_spec: Any) -> list[Problem]:
    field = "spec.template.spec.containers"
    if not isinstance(pod_spec, dict) or not pod_spec.get("containers"):
        return [(field, "Required value")]
    problems: list[Problem] = []
    names = set()
    for index, container in enumerate(pod_spec["containers"]):
        if not isinstance(container, dict) or not container.get("name"):
            problems.append((f"{field}[{index}].name", "Required value"))
            continue
        if container["name"] in names:
            problems.append(
                (f"{field}[{index}].name", f"Duplicate value: {container['name']!r}")
            )
        names.add(container["name"])
        if not container.get("image"):
            problems.append((f"{field}[{index}].image", "Required value"))
        for env_index, variable in enumerate(container.get("env") or []):
            if not isinstance(variable, dict) or not variable.get("name"):
                problems.append(
                    (f"{field}[{index}].env[{env_index}].name", "Required value")
                )
    return problems


def config_map_problems(config_map: dict[str, Any]) -> list[Problem]:
    data = config_map.get("data")
    if data is None:
        return []
    if not isinstance(data, dict):
        return [("data", "Invalid value: must be a map of strings")]
    return [
        (f"data[{key}]", f"Invalid value: {value!r}: must be a string")
        for key, value in data.items()
        if not isinstance(value, str)
    ]


def autoscaler_problems(autoscaler: dict[str, Any]) -> list[Problem]:
    spec = autoscaler.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    problems = []
    target = spec.get("scaleTargetRef")
    if not isinstance(target, dict) or not target.get("kind") or not target.get("name"):
        problems.append(("spec.scaleTargetRef", "Required value: kind and name"))
    maximum = spec.get("maxReplicas")
    if not isinstance(maximum, int) or maximum < 1:
        problems.append(
            ("spec.maxReplicas", f"Invalid value: {maximum!r}: must be >= 1")
        )
    minimum = spec.get("minReplicas", 1)
    if not isinstance(minimum, int) or (isinstance(maximum, int) and minimum > maximum):
        problems.append(
            ("spec.minReplicas", f"Invalid value: {minimum!r}: must be <= maxReplicas")
        )
    return problems
