"""Switch an application setting in a ConfigMap or a container's environment.

With ``target: configmap`` the ConfigMap's data is merge-patched and the
Deployment then gets a rollout restart, because pods read a ConfigMap's
values at start (environment variables) or with a delay (mounted files).
The restart also writes the annotation ``bastion/<action name>`` with the
values it applied, so that a repeated step changes nothing and restarts
nothing, but a retry after a failed restart still restarts.

With ``target: env`` one strategic merge patch sets the variables and the
restart annotation together, so the pods roll once.
"""

import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    ParameterError,
    PermanentError,
)
from mitigations.actions.kubernetes.common import (
    DEPLOYMENT,
    MERGE_PATCH,
    NAMESPACE,
    RESTARTED_AT,
    STRATEGIC_MERGE_PATCH,
    Cluster,
    NotFoundError,
    deployment_target,
    namespace_of,
    restart_patch,
    retry_on_conflict,
)
from mitigations.choices import Risk
from mitigations.registry import register

logger = logging.getLogger(__name__)

TARGETS = ("configmap", "env")


def as_setting(field: str, key: str, value: Any) -> str:
    """Return a ConfigMap or environment value as the string the API needs."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ParameterError(
        field, f"the value of {key!r} is {value!r}; use a string, number or boolean"
    )


class SettingsPatch(Action):
    """Base of the two settings actions; they differ only in their default data."""

    risk = Risk.DISRUPTIVE
    default_data: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.parameters = (
            DEPLOYMENT,
            NAMESPACE,
            Parameter(
                "target",
                required=False,
                default="configmap",
                help="Where the setting lives: 'configmap' or 'env'.",
            ),
            Parameter(
                "configmap",
                required=False,
                help="ConfigMap to patch; '<deployment>-config' when not set.",
            ),
            Parameter(
                "container",
                required=False,
                help="Container whose environment to patch; the first when not set.",
            ),
            Parameter(
                "data",
                kind="mapping",
                required=False,
                default=dict(cls.default_data),
                help=f"Keys and values to set; {cls.default_data} when not set.",
            ),
        )

    def clean(
        self, values: Mapping[str, Any], labels: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        cleaned = super().clean(values, labels)
        if cleaned.get("target", "configmap") not in TARGETS:
            raise ParameterError(
                "target", f"{cleaned['target']!r} is not one of {list(TARGETS)}"
            )
        data = cleaned.get("data", {})
        if not data:
            raise ParameterError("data", "is empty: name at least one key to set")
        cleaned["data"] = {
            str(key): as_setting("data", key, value) for key, value in data.items()
        }
        return cleaned

    def target(self, params: Mapping[str, Any]) -> str:
        return deployment_target(params)

    def run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        if context.params["target"] == "env":
            output = retry_on_conflict(
                self.target(context.params), lambda: self.patch_env(cluster, context)
            )
        else:
            output = self.patch_config_map(cluster, context)
        logger.info(
            "%s: %s on %s for incident %s: changed %s, restarted %s",
            self.name,
            output["setting"],
            self.target(context.params),
            context.incident_id,
            sorted(output["changed"]),
            output["restarted"],
        )
        return output

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        cluster = Cluster(context)
        if context.params["target"] == "env":
            deployment = self.read_deployment(cluster, context)
            changes = env_changes(self.container(deployment, context), context)
            restart = bool(changes)
        else:
            config_map = self.read_config_map(cluster, context)
            changes = data_changes(config_map, context.params["data"])
            deployment = self.read_deployment(cluster, context)
            restart = bool(changes) or not self.marked(deployment, context)
        return {
            **self.describe(context),
            "would_change": changes,
            "would_restart": restart,
        }

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        """Report the change in place when the values are set and pods restarted."""
        cluster = Cluster(context)
        deployment = self.read_deployment(cluster, context)
        if context.params["target"] == "env":
            missing = env_changes(self.container(deployment, context), context)
            return {"took_effect": not missing, "missing": sorted(missing)}
        config_map = self.read_config_map(cluster, context)
        missing = data_changes(config_map, context.params["data"])
        restarted = self.marked(deployment, context)
        return {"took_effect": not missing and restarted, "missing": sorted(missing)}

    def describe(self, context: ActionContext) -> dict[str, Any]:
        params = context.params
        if params["target"] == "env":
            where = f"env of container {params.get('container') or '(first)'}"
        else:
            where = f"configmap {self.config_map_name(params)}"
        return {
            "deployment": params["deployment"],
            "namespace": namespace_of(params),
            "setting": where,
        }

    def patch_config_map(
        self, cluster: Cluster, context: ActionContext
    ) -> dict[str, Any]:
        changes = retry_on_conflict(
            f"configmap {self.config_map_name(context.params)}",
            lambda: self.write_data(cluster, context),
        )
        deployment = self.read_deployment(cluster, context)
        restart = bool(changes) or not self.marked(deployment, context)
        restarted_at = None
        if restart:
            patch = restart_patch({self.marker_key(): self.marker(context)})
            restarted_at = patch["spec"]["template"]["metadata"]["annotations"][
                RESTARTED_AT
            ]
            retry_on_conflict(
                self.target(context.params),
                lambda: self.write_deployment(cluster, context, patch),
            )
        return {
            **self.describe(context),
            "changed": changes,
            "restarted": restart,
            "restarted_at": restarted_at,
        }

    def write_data(
        self, cluster: Cluster, context: ActionContext
    ) -> dict[str, dict[str, str | None]]:
        config_map = self.read_config_map(cluster, context)
        changes = data_changes(config_map, context.params["data"])
        if not changes:
            return changes
        patch = {
            "metadata": {"resourceVersion": config_map.metadata.resource_version},
            "data": {key: change["to"] for key, change in changes.items()},
        }
        cluster.call(
            f"configmap {config_map.metadata.namespace}/{config_map.metadata.name}",
            cluster.core.patch_namespaced_config_map,
            config_map.metadata.name,
            config_map.metadata.namespace,
            patch,
            _content_type=MERGE_PATCH,
        )
        return changes

    def patch_env(self, cluster: Cluster, context: ActionContext) -> dict[str, Any]:
        deployment = self.read_deployment(cluster, context)
        container = self.container(deployment, context)
        changes = env_changes(container, context)
        output = {
            **self.describe(context),
            "setting": f"env of container {container.name}",
            "changed": changes,
            "restarted": bool(changes),
            "restarted_at": None,
        }
        if not changes:
            return output

        current = {item.name: item for item in container.env or []}
        variables = []
        for key, change in changes.items():
            variable: dict[str, Any] = {"name": key, "value": change["to"]}
            if key in current and current[key].value_from is not None:
                # A variable may not have both value and valueFrom.
                variable["valueFrom"] = None
            variables.append(variable)

        patch = restart_patch()
        patch["metadata"] = {"resourceVersion": deployment.metadata.resource_version}
        patch["spec"]["template"]["spec"] = {
            "containers": [{"name": container.name, "env": variables}]
        }
        self.write_deployment(cluster, context, patch)

        output["restarted_at"] = patch["spec"]["template"]["metadata"]["annotations"][
            RESTARTED_AT
        ]
        return output

    def write_deployment(
        self, cluster: Cluster, context: ActionContext, patch: dict[str, Any]
    ) -> Any:
        return cluster.call(
            self.target(context.params),
            cluster.apps.patch_namespaced_deployment,
            context.params["deployment"],
            namespace_of(context.params),
            patch,
            _content_type=STRATEGIC_MERGE_PATCH,
        )

    def read_deployment(self, cluster: Cluster, context: ActionContext) -> Any:
        return cluster.call(
            self.target(context.params),
            cluster.apps.read_namespaced_deployment,
            context.params["deployment"],
            namespace_of(context.params),
        )

    def read_config_map(self, cluster: Cluster, context: ActionContext) -> Any:
        name = self.config_map_name(context.params)
        namespace = namespace_of(context.params)
        try:
            return cluster.call(
                f"configmap {namespace}/{name}",
                cluster.core.read_namespaced_config_map,
                name,
                namespace,
            )
        except NotFoundError as error:
            raise PermanentError(
                f"{error}; set the step's configmap parameter, or 'target: env' "
                "to change the container's environment instead"
            ) from None

    def config_map_name(self, params: Mapping[str, Any]) -> str:
        return params.get("configmap") or f"{params['deployment']}-config"

    def container(self, deployment: Any, context: ActionContext) -> Any:
        containers = deployment.spec.template.spec.containers or []
        requested = context.params.get("container")
        if requested is None and containers:
            return containers[0]
        for container in containers:
            if container.name == requested:
                return container
        raise PermanentError(
            f"{self.target(context.params)} has no container {requested!r}; its "
            f"containers are {[c.name for c in containers]}"
        )

    def marker_key(self) -> str:
        return f"bastion/{self.name}"

    def marker(self, context: ActionContext) -> str:
        applied = {
            "configmap": self.config_map_name(context.params),
            "data": context.params["data"],
        }
        return json.dumps(applied, sort_keys=True)

    def marked(self, deployment: Any, context: ActionContext) -> bool:
        """Check that the pods were restarted after these values were written."""
        annotations = deployment.spec.template.metadata.annotations or {}
        return annotations.get(self.marker_key()) == self.marker(context)


def data_changes(
    config_map: Any, data: Mapping[str, str]
) -> dict[str, dict[str, str | None]]:
    current = config_map.data or {}
    return {
        key: {"from": current.get(key), "to": value}
        for key, value in data.items()
        if current.get(key) != value
    }


def env_changes(
    container: Any, context: ActionContext
) -> dict[str, dict[str, str | None]]:
    current = {item.name: item for item in container.env or []}
    changes = {}
    for key, value in context.params["data"].items():
        variable = current.get(key)
        if variable is None or variable.value_from is not None:
            changes[key] = {"from": None, "to": value}
        elif variable.value != value:
            changes[key] = {"from": variable.value, "to": value}
    return changes


@register("activate_circuit_breaker")
class ActivateCircuitBreaker(SettingsPatch):
    description = (
        "Set CIRCUIT_BREAKER=on (or the step's data) in a ConfigMap or a "
        "container's environment, then restart the Deployment's pods."
    )
    default_data = {"CIRCUIT_BREAKER": "on"}


@register("enhanced_logging")
class EnhancedLogging(SettingsPatch):
    description = (
        "Set LOG_LEVEL=debug (or the step's data) in a ConfigMap or a "
        "container's environment, then restart the Deployment's pods."
    )
    default_data = {"LOG_LEVEL": "debug"}
