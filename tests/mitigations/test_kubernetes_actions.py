"""The Kubernetes actions against the Kubernetes API stand-in.

Each test starts its own stand-in on a free port, points BASTION_KUBECONFIG
at a kubeconfig for it and calls the actions through the registry, so every
request goes through the real ``kubernetes`` client. The seed is the demo's
sandra-api Deployment (2 replicas) with its ConfigMap sandra-api-config.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from devstack.kube import KubeStandin
from mitigations.actions.base import (
    ActionContext,
    ParameterError,
    PermanentError,
    RetryableError,
)
from mitigations.actions.kubernetes import planned_replicas
from mitigations.registry import get_action
from mitigations.services import clients

NAMESPACE = "default"
DEPLOYMENT = "sandra-api"
CONFIG_MAP = "sandra-api-config"
READY_DELAY_SECONDS = 0.3
TOKEN = "kubernetes-actions-test-token"
LABELS = {"service": DEPLOYMENT}


@pytest.fixture
def standin(settings: Any, tmp_path: Path) -> Iterator[KubeStandin]:
    server = KubeStandin(token=TOKEN, ready_delay_seconds=READY_DELAY_SECONDS)
    server.start()
    settings.KUBECONFIG = str(server.write_kubeconfig(tmp_path / "kubeconfig"))
    settings.KUBE_NAMESPACE = NAMESPACE
    settings.SCALE_MAX_REPLICAS = 20
    settings.SCALE_READY_TIMEOUT_SECONDS = 10.0
    clients.kubernetes_client.cache_clear()
    yield server
    clients.kubernetes_client.cache_clear()
    server.stop()


@pytest.fixture
def apps(standin: KubeStandin) -> client.AppsV1Api:
    return clients.apps_api()


@pytest.fixture
def core(standin: KubeStandin) -> client.CoreV1Api:
    return clients.core_api()


class Incident:
    """One incident's remembered baselines, shared by the steps run for it."""

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        self.labels = dict(LABELS if labels is None else labels)
        self.memory: dict[str, Any] = {}
        self.runs = 0

    def context(
        self,
        action_name: str,
        params: dict[str, Any] | None = None,
        run_id: int | None = None,
        timeout_seconds: float = 30.0,
    ) -> ActionContext:
        """Build the context of a new run, or of ``run_id`` once more."""
        if run_id is None:
            self.runs += 1
            run_id = self.runs
        action = get_action(action_name)
        return ActionContext(
            incident_id=1,
            labels=self.labels,
            params=action.clean(params or {}, self.labels),
            deadline=time.monotonic() + timeout_seconds,
            run_id=run_id,
            remember=self.memory.setdefault,
        )

    def run(self, action_name: str, params: dict[str, Any] | None = None) -> Any:
        return get_action(action_name).run(self.context(action_name, params))


def replicas(apps: client.AppsV1Api) -> int:
    return apps.read_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE).spec.replicas


def writes(standin: KubeStandin) -> list[dict[str, Any]]:
    return [r for r in standin.state()["requests"] if r["method"] != "GET"]


def template_annotations(apps: client.AppsV1Api) -> dict[str, str]:
    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    return deployment.spec.template.metadata.annotations or {}


def sandra_pods(core: client.CoreV1Api) -> list[Any]:
    return core.list_namespaced_pod(NAMESPACE, label_selector="app=sandra-api").items


def wait_until(condition: Any, timeout_seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_seconds}s")


HPA = {
    "apiVersion": "autoscaling/v2",
    "kind": "HorizontalPodAutoscaler",
    "metadata": {"name": "sandra-api-autoscaler", "namespace": NAMESPACE},
    "spec": {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": DEPLOYMENT,
        },
        "minReplicas": 2,
        "maxReplicas": 6,
    },
}


# planned_replicas


@pytest.mark.parametrize(
    ("current", "expected"),
    [(1, 2), (2, 3), (3, 5), (4, 6), (10, 15)],
)
def test_planned_replicas_from_baseline(current: int, expected: int) -> None:
    assert planned_replicas(current, current, 50, 20) == expected


def test_planned_replicas_rejects_zero() -> None:
    with pytest.raises(PermanentError, match="scaled to zero on purpose"):
        planned_replicas(0, 0, 50, 20)


def test_planned_replicas_rejects_zero_after_baseline() -> None:
    with pytest.raises(PermanentError, match="does not scale up from zero"):
        planned_replicas(0, 3, 50, 20)


@pytest.mark.parametrize(
    ("current", "baseline", "expected"),
    [(2, 2, 3), (3, 2, 4), (5, 4, 8), (7, 4, 8)],
)
def test_planned_replicas_caps_at_twice_baseline(
    current: int, baseline: int, expected: int
) -> None:
    assert planned_replicas(current, baseline, 50, 20) == expected


def test_planned_replicas_rejects_at_cap() -> None:
    with pytest.raises(PermanentError, match="cap of 4 \\(twice the 2"):
        planned_replicas(4, 2, 50, 20)


def test_planned_replicas_rejects_above_cap() -> None:
    with pytest.raises(PermanentError, match="already has 9 replicas"):
        planned_replicas(9, 4, 50, 20)


def test_planned_replicas_caps_at_maximum() -> None:
    assert planned_replicas(10, 10, 50, 12) == 12


def test_planned_replicas_rejects_at_maximum() -> None:
    with pytest.raises(PermanentError, match=r"configured maximum.* is 12"):
        planned_replicas(12, 10, 50, 12)


def test_planned_replicas_honours_increase_percent() -> None:
    assert planned_replicas(4, 4, 100, 20) == 8


def test_planned_replicas_adds_at_least_one() -> None:
    assert planned_replicas(3, 3, 1, 20) == 4


# scale_replicas


def test_scale_waits_for_ready_replicas(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    output = Incident().run("scale_replicas")

    status = apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE).status
    assert output["before"] == 2
    assert output["after"] == 3
    assert output["baseline"] == 2
    assert output["cap"] == 4
    assert output["ready"] == 3
    assert output["waited_seconds"] >= READY_DELAY_SECONDS * 0.8
    assert status.ready_replicas == 3
    assert replicas(apps) == 3


def test_scale_sends_merge_patch(standin: KubeStandin) -> None:
    Incident().run("scale_horizontally")

    patches = [r for r in writes(standin) if r["path"].endswith("/scale")]
    assert [r["contentType"] for r in patches] == ["application/merge-patch+json"]


def test_scale_repeated_stops_at_twice_baseline(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    incident = Incident()

    first = incident.run("scale_replicas")
    second = incident.run("scale_horizontally")
    with pytest.raises(PermanentError, match="cap of 4") as rejection:
        incident.run("scale_replicas")

    assert (first["before"], first["after"]) == (2, 3)
    assert (second["before"], second["after"]) == (3, 4)
    assert second["baseline"] == 2
    assert "twice the 2" in str(rejection.value)
    assert "deployment default/sandra-api" in str(rejection.value)
    assert replicas(apps) == 4


def test_scale_stops_at_configured_maximum(
    standin: KubeStandin, apps: client.AppsV1Api, settings: Any
) -> None:
    settings.SCALE_MAX_REPLICAS = 3
    incident = Incident()

    output = incident.run("scale_replicas")
    with pytest.raises(PermanentError, match="configured maximum"):
        incident.run("scale_replicas")

    assert output["after"] == 3
    assert output["cap"] == 3
    assert replicas(apps) == 3


def test_scale_max_replicas_parameter_lowers_cap(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 6}}
    )
    wait_until(lambda: replicas(apps) == 6)

    output = Incident().run("scale_replicas", {"max_replicas": 7})

    assert output["after"] == 7
    assert output["cap"] == 7


def test_scale_fails_when_pods_never_ready(
    standin: KubeStandin, apps: client.AppsV1Api, settings: Any
) -> None:
    settings.SCALE_READY_TIMEOUT_SECONDS = 1
    standin.inject_fault(stall_ready=DEPLOYMENT)

    started = time.monotonic()
    with pytest.raises(PermanentError, match="only 2 of 3 replicas were ready"):
        Incident().run("scale_replicas")

    assert time.monotonic() - started < 3
    assert replicas(apps) == 3


def test_scale_rejected_by_autoscaler(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.load([HPA])

    with pytest.raises(PermanentError) as rejection:
        Incident().run("scale_replicas")

    assert "sandra-api-autoscaler" in str(rejection.value)
    assert "raise that HPA's maxReplicas" in str(rejection.value)
    assert writes(standin) == []
    assert replicas(apps) == 2


def test_scale_ignores_autoscaler_of_other_deployment(standin: KubeStandin) -> None:
    other = {
        **HPA,
        "spec": {**HPA["spec"], "scaleTargetRef": {"kind": "Deployment", "name": "x"}},
    }
    standin.load([other])

    output = Incident().run("scale_replicas")

    assert output["after"] == 3


def test_scale_rejected_at_zero_replicas(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 0}}
    )

    with pytest.raises(PermanentError, match="scaled to zero on purpose"):
        Incident().run("scale_replicas")

    assert replicas(apps) == 0


def test_scale_retries_two_conflicts(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(conflicts=2)

    output = Incident().run("scale_replicas")

    statuses = [r["status"] for r in writes(standin)]
    assert statuses == [409, 409, 200]
    assert output["after"] == 3
    assert replicas(apps) == 3


def test_scale_conflicts_exhaust_retries(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(conflicts=4)

    with pytest.raises(RetryableError, match="409 Conflict"):
        Incident().run("scale_replicas")

    assert len(writes(standin)) == 4
    assert replicas(apps) == 2


def test_scale_server_error_is_retryable(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(method="PATCH", path_regex="/scale$", status=500)

    with pytest.raises(RetryableError, match="HTTP 500"):
        Incident().run("scale_replicas")

    assert replicas(apps) == 2


def test_scale_retry_after_lost_response_scales_once(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    # The stand-in delays the PATCH past the client's timeout, then applies it.
    standin.inject_fault(method="PATCH", path_regex="/scale$", stall_seconds=1.5)
    incident = Incident()
    action = get_action("scale_replicas")
    context = incident.context("scale_replicas", timeout_seconds=0.5)

    with pytest.raises(RetryableError):
        action.run(context)
    wait_until(lambda: replicas(apps) == 3)
    again = incident.context("scale_replicas", run_id=context.run_id)
    output = action.run(again)

    assert output["before"] == 2
    assert output["after"] == 3
    assert replicas(apps) == 3


def test_scale_dry_run_changes_nothing(standin: KubeStandin) -> None:
    before = standin.state()["resourceVersion"]

    output = get_action("scale_replicas").dry_run(Incident().context("scale_replicas"))

    assert output["before"] == 2
    assert output["after"] == 3
    assert output["would_scale"] is True
    assert writes(standin) == []
    assert standin.state()["resourceVersion"] == before


def test_scale_dry_run_reports_rejection(standin: KubeStandin) -> None:
    standin.load([HPA])
    context = Incident().context("scale_replicas")

    with pytest.raises(PermanentError, match="sandra-api-autoscaler"):
        get_action("scale_replicas").dry_run(context)


def test_scale_reconcile_sees_planned_replicas(standin: KubeStandin) -> None:
    incident = Incident()
    action = get_action("scale_replicas")
    context = incident.context("scale_replicas")
    action.run(context)

    outcome = action.reconcile(context)

    assert outcome == {"took_effect": True, "replicas": 3, "planned": 3}


def test_scale_reconcile_without_plan_is_unknown(standin: KubeStandin) -> None:
    context = Incident().context("scale_replicas")

    assert get_action("scale_replicas").reconcile(context) is None


def test_scale_missing_deployment_is_permanent(standin: KubeStandin) -> None:
    with pytest.raises(PermanentError, match="HTTP 404"):
        Incident().run("scale_replicas", {"deployment": "no-such-app"})


def test_scale_unreachable_api_is_retryable(standin: KubeStandin) -> None:
    context = Incident().context("scale_replicas")
    standin.stop()

    with pytest.raises(RetryableError, match="did not answer"):
        get_action("scale_replicas").run(context)


def test_missing_kubeconfig_is_permanent(settings: Any, tmp_path: Path) -> None:
    settings.KUBECONFIG = str(tmp_path / "absent")
    clients.kubernetes_client.cache_clear()

    with pytest.raises(PermanentError, match="BASTION_KUBECONFIG"):
        Incident().run("scale_replicas")

    clients.kubernetes_client.cache_clear()


# parameters


def test_deployment_from_app_label() -> None:
    params = get_action("scale_replicas").clean({}, {"app": "billing"})

    assert params["deployment"] == "billing"


def test_deployment_label_order() -> None:
    labels = {"job": "scrape-job", "deployment": "billing", "app": "other"}

    params = get_action("rollback_deployment").clean({}, labels)

    assert params["deployment"] == "billing"


def test_namespace_from_label(settings: Any) -> None:
    settings.KUBE_NAMESPACE = "apps"
    action = get_action("scale_replicas")

    labelled = action.clean({}, {"app": "billing", "namespace": "shop"})
    unlabelled = action.clean({}, {"app": "billing"})

    assert action.target(labelled) == "deployment shop/billing"
    assert action.target(unlabelled) == "deployment apps/billing"


def test_missing_deployment_label_names_field() -> None:
    with pytest.raises(ParameterError) as error:
        get_action("scale_replicas").clean({}, {"instance": "10.0.0.1:8000"})

    assert error.value.field == "deployment"
    assert "'app'" in error.value.message


def test_pods_from_pod_name_label() -> None:
    params = get_action("restart_high_memory_pods").clean({}, {"pod_name": "web-1"})

    assert params["pods"] == ["web-1"]


def test_missing_pod_label_names_field() -> None:
    with pytest.raises(ParameterError) as error:
        get_action("restart_high_memory_pods").clean({}, {"service": "web"})

    assert error.value.field == "pods"


def test_settings_target_must_be_known() -> None:
    with pytest.raises(ParameterError) as error:
        get_action("enhanced_logging").clean({"target": "secret"}, LABELS)

    assert error.value.field == "target"


def test_settings_data_values_become_strings() -> None:
    params = get_action("activate_circuit_breaker").clean(
        {"data": {"CIRCUIT_BREAKER": True, "TIMEOUT_MS": 250}}, LABELS
    )

    assert params["data"] == {"CIRCUIT_BREAKER": "true", "TIMEOUT_MS": "250"}


def test_settings_data_rejects_nested_value() -> None:
    with pytest.raises(ParameterError) as error:
        get_action("activate_circuit_breaker").clean(
            {"data": {"LIMITS": {"cpu": 1}}}, LABELS
        )

    assert error.value.field == "data"


# activate_circuit_breaker and enhanced_logging


def test_restart_keeps_other_annotations(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    output = Incident().run("activate_circuit_breaker")

    annotations = template_annotations(apps)
    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    assert output["restarted"] is True
    assert annotations["kubectl.kubernetes.io/restartedAt"] == output["restarted_at"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert deployment.metadata.annotations["bastion.example/owner"] == "platform-team"


def test_config_map_patch_keeps_other_keys(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    output = Incident().run("activate_circuit_breaker")

    data = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE).data
    assert output["changed"] == {"CIRCUIT_BREAKER": {"from": None, "to": "on"}}
    assert data["CIRCUIT_BREAKER"] == "on"
    assert data["rate_limit_per_minute"] == "600"


def test_config_map_patch_is_idempotent(standin: KubeStandin) -> None:
    incident = Incident()
    incident.run("enhanced_logging", {"data": {"log_level": "debug"}})
    writes_after_first = len(writes(standin))

    second = incident.run("enhanced_logging", {"data": {"log_level": "debug"}})

    assert second["changed"] == {}
    assert second["restarted"] is False
    assert len(writes(standin)) == writes_after_first


def test_config_map_patch_content_types(standin: KubeStandin) -> None:
    Incident().run("activate_circuit_breaker")

    content_types = {
        r["path"].split("/")[-2]: r["contentType"] for r in writes(standin)
    }
    assert content_types["configmaps"] == "application/merge-patch+json"
    assert content_types["deployments"] == "application/strategic-merge-patch+json"


def test_config_map_retry_restarts_after_failed_restart(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(method="PATCH", path_regex="/deployments/", status=500)
    incident = Incident()

    with pytest.raises(RetryableError, match="HTTP 500"):
        incident.run("activate_circuit_breaker")
    again = incident.run("activate_circuit_breaker")

    assert again["changed"] == {}
    assert again["restarted"] is True
    assert "kubectl.kubernetes.io/restartedAt" in template_annotations(apps)


def test_restart_rolls_pods(standin: KubeStandin, core: client.CoreV1Api) -> None:
    before = {pod.metadata.name for pod in sandra_pods(core)}

    Incident().run("activate_circuit_breaker")

    def replaced() -> bool:
        pods = sandra_pods(core)
        names = {pod.metadata.name for pod in pods}
        return len(pods) == 2 and not names & before

    assert wait_until(replaced)


def test_missing_config_map_suggests_env(standin: KubeStandin) -> None:
    with pytest.raises(PermanentError, match="target: env"):
        Incident().run("activate_circuit_breaker", {"configmap": "absent"})


def test_env_patch_keeps_other_variables(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    output = Incident().run("enhanced_logging", {"target": "env"})

    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert output["changed"] == {"LOG_LEVEL": {"from": "info", "to": "debug"}}
    assert output["restarted"] is True
    assert env == {
        "LOG_LEVEL": "debug",
        "CIRCUIT_BREAKER": "off",
        "CONFIG_PATH": "/etc/sandra-api/config.yaml",
    }
    assert "kubectl.kubernetes.io/restartedAt" in template_annotations(apps)
    assert template_annotations(apps)["prometheus.io/scrape"] == "true"


def test_env_patch_is_idempotent(standin: KubeStandin) -> None:
    incident = Incident()
    incident.run("activate_circuit_breaker", {"target": "env"})
    writes_after_first = len(writes(standin))

    second = incident.run("activate_circuit_breaker", {"target": "env"})

    assert second["changed"] == {}
    assert second["restarted"] is False
    assert len(writes(standin)) == writes_after_first


def test_env_patch_retries_conflict(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(conflicts=1)

    output = Incident().run("activate_circuit_breaker", {"target": "env"})

    container = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE).spec.template
    env = {e.name: e.value for e in container.spec.containers[0].env}
    assert output["restarted"] is True
    assert env["CIRCUIT_BREAKER"] == "on"


def test_env_patch_unknown_container(standin: KubeStandin) -> None:
    with pytest.raises(PermanentError, match="containers are \\['sandra-api'\\]"):
        Incident().run("enhanced_logging", {"target": "env", "container": "sidecar"})


def test_settings_dry_run_changes_nothing(standin: KubeStandin) -> None:
    before = standin.state()["resourceVersion"]
    action = get_action("activate_circuit_breaker")

    output = action.dry_run(Incident().context("activate_circuit_breaker"))

    assert output["would_change"] == {"CIRCUIT_BREAKER": {"from": None, "to": "on"}}
    assert output["would_restart"] is True
    assert writes(standin) == []
    assert standin.state()["resourceVersion"] == before


def test_settings_reconcile_after_run(standin: KubeStandin) -> None:
    incident = Incident()
    action = get_action("activate_circuit_breaker")
    context = incident.context("activate_circuit_breaker")

    before = action.reconcile(context)
    action.run(context)
    after = action.reconcile(context)

    assert before == {"took_effect": False, "missing": ["CIRCUIT_BREAKER"]}
    assert after == {"took_effect": True, "missing": []}


# rollback_deployment


def release(apps: client.AppsV1Api, image: str) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "sandra-api", "image": image}]}
            }
        }
    }
    apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        patch,
        _content_type="application/strategic-merge-patch+json",
    )


def rolled_out(apps: client.AppsV1Api) -> bool:
    """Return whether every pod runs the current template, by the status."""
    status = apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE).status
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    return (
        status.replicas == status.updated_replicas == status.ready_replicas
        and progressing.reason == "NewReplicaSetAvailable"
    )


def current_image(apps: client.AppsV1Api) -> str:
    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    return deployment.spec.template.spec.containers[0].image


def test_rollback_restores_previous_template(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    release(apps, "sandra-api:1.5.0")

    output = Incident().run("rollback_deployment")

    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    labels = deployment.spec.template.metadata.labels
    assert output["from_revision"] == 2
    assert output["to_revision"] == 1
    assert output["new_revision"] == 3
    assert current_image(apps) == "sandra-api:1.4.2"
    assert "pod-template-hash" not in labels
    assert labels["app"] == "sandra-api"


def test_rollback_sends_json_patch(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    release(apps, "sandra-api:1.5.0")
    requests_before = len(writes(standin))

    Incident().run("rollback_deployment")

    # The rollout of the release still writes the status, which changes the
    # resourceVersion, so the conditional patch may conflict and be sent again.
    rollback = writes(standin)[requests_before:]
    assert {r["contentType"] for r in rollback} == {"application/json-patch+json"}
    assert rollback[-1]["status"] == 200


def test_rollback_repeated_does_not_roll_forward(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    release(apps, "sandra-api:1.5.0")
    incident = Incident()
    incident.run("rollback_deployment")

    again = incident.run("rollback_deployment")

    assert again["changed"] is False
    assert current_image(apps) == "sandra-api:1.4.2"


def test_rollback_without_previous_revision(standin: KubeStandin) -> None:
    with pytest.raises(PermanentError, match="no previous revision"):
        Incident().run("rollback_deployment")

    assert writes(standin) == []


def test_rollback_retries_conflict(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    release(apps, "sandra-api:1.5.0")
    standin.inject_fault(conflicts=1)

    output = Incident().run("rollback_deployment")

    assert output["to_revision"] == 1
    assert current_image(apps) == "sandra-api:1.4.2"


def test_rollback_dry_run_changes_nothing(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    release(apps, "sandra-api:1.5.0")
    wait_until(lambda: rolled_out(apps))
    before = standin.state()["resourceVersion"]
    requests_before = len(writes(standin))

    output = get_action("rollback_deployment").dry_run(
        Incident().context("rollback_deployment")
    )

    assert (output["from_revision"], output["to_revision"]) == (2, 1)
    assert len(writes(standin)) == requests_before
    assert current_image(apps) == "sandra-api:1.5.0"
    assert standin.state()["resourceVersion"] == before


# restart_high_memory_pods


def test_pods_deleted_one_at_a_time(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    names = sorted(pod.metadata.name for pod in sandra_pods(core))

    output = Incident({"pod": names[0]}).run(
        "restart_high_memory_pods", {"pods": names}
    )

    deletions = [r for r in writes(standin) if r["method"] == "DELETE"]
    current = {pod.metadata.name for pod in sandra_pods(core)}
    replacements = [item["replacement"] for item in output["deleted"]]
    assert [item["pod"] for item in output["deleted"]] == names
    assert len(deletions) == 2
    assert deletions[1]["time"] - deletions[0]["time"] >= READY_DELAY_SECONDS * 0.8
    assert not current & set(names)
    assert set(replacements) <= current
    assert output["already_gone"] == []


def test_pods_from_label(standin: KubeStandin, core: client.CoreV1Api) -> None:
    name = sandra_pods(core)[0].metadata.name

    output = Incident({"pod": name}).run("restart_high_memory_pods")

    assert [item["pod"] for item in output["deleted"]] == [name]
    assert output["deleted"][0]["replacement"] != name


def test_pods_already_gone_noted(standin: KubeStandin, core: client.CoreV1Api) -> None:
    name = sandra_pods(core)[0].metadata.name

    output = Incident({"pod": "sandra-api-gone"}).run(
        "restart_high_memory_pods", {"pods": ["sandra-api-gone", name]}
    )

    assert output["already_gone"] == ["sandra-api-gone"]
    assert [item["pod"] for item in output["deleted"]] == [name]


def test_pods_stop_when_replacement_never_ready(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    names = sorted(pod.metadata.name for pod in sandra_pods(core))
    standin.inject_fault(stall_ready=DEPLOYMENT)
    incident = Incident({"pod": names[0]})
    context = incident.context(
        "restart_high_memory_pods", {"pods": names}, timeout_seconds=2.5
    )

    with pytest.raises(PermanentError, match="remaining pods were not deleted"):
        get_action("restart_high_memory_pods").run(context)

    remaining = {pod.metadata.name for pod in sandra_pods(core)}
    assert names[0] not in remaining
    assert names[1] in remaining


def test_pods_without_controller_rejected(standin: KubeStandin) -> None:
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug-shell", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "shell", "image": "busybox"}]},
    }
    standin.load([bare])

    with pytest.raises(PermanentError, match="no controller"):
        Incident({"pod": "debug-shell"}).run("restart_high_memory_pods")

    assert writes(standin) == []


def test_pods_dry_run_changes_nothing(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    name = sandra_pods(core)[0].metadata.name
    before = standin.state()["resourceVersion"]
    context = Incident({"pod": name}).context("restart_high_memory_pods")

    output = get_action("restart_high_memory_pods").dry_run(context)

    assert output["would_delete"][0]["pod"] == name
    assert output["would_delete"][0]["owner"].startswith("ReplicaSet/sandra-api-")
    assert writes(standin) == []
    assert standin.state()["resourceVersion"] == before


def test_pods_reconcile_after_run(standin: KubeStandin, core: client.CoreV1Api) -> None:
    name = sandra_pods(core)[0].metadata.name
    context = Incident({"pod": name}).context("restart_high_memory_pods")
    action = get_action("restart_high_memory_pods")

    before = action.reconcile(context)
    action.run(context)
    after = action.reconcile(context)

    assert before == {"took_effect": False, "remaining": [name]}
    assert after == {"took_effect": True, "remaining": []}
