"""The Kubernetes stand-in, driven by the real ``kubernetes`` client.

Every test starts its own stand-in on a free port and configures the client
only through a kubeconfig file, as Bastion's client factory will.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.utils.retry import retry_on_conflict

from devstack.kube import KubeStandin

TOKEN = "standin-test-token"
NAMESPACE = "default"
DEPLOYMENT = "sandra-api"
CONFIG_MAP = "sandra-api-config"
READY_DELAY_SECONDS = 0.1
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def standin() -> Iterator[KubeStandin]:
    server = KubeStandin(token=TOKEN, ready_delay_seconds=READY_DELAY_SECONDS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api_client(standin: KubeStandin, tmp_path: Path) -> Iterator[client.ApiClient]:
    kubeconfig = standin.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def wait_until(condition: Callable[[], Any], timeout_seconds: float = 5.0) -> Any:
    """Poll ``condition`` until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_seconds}s")


def ready_replicas(apps: client.AppsV1Api) -> int:
    deployment = apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE)
    return deployment.status.ready_replicas or 0


def replica_sets(apps: client.AppsV1Api) -> dict[str, Any]:
    listed = apps.list_namespaced_replica_set(
        NAMESPACE, label_selector="app=sandra-api"
    )
    return {rs.metadata.name: rs for rs in listed.items}


def revision(obj: Any) -> str:
    return obj.metadata.annotations["deployment.kubernetes.io/revision"]


def restart(apps: client.AppsV1Api, when: str) -> Any:
    patch = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": when}}
            }
        }
    }
    return apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        patch,
        _content_type="application/strategic-merge-patch+json",
    )


def error_body(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def test_read_deployment_returns_seed(apps: client.AppsV1Api) -> None:
    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)

    assert deployment.spec.replicas == 2
    assert deployment.spec.template.spec.containers[0].name == "sandra-api"
    assert deployment.status.ready_replicas == 2
    assert revision(deployment) == "1"
    assert deployment.metadata.uid
    assert deployment.metadata.creation_timestamp is not None


def test_scale_patch_raises_ready_replicas(apps: client.AppsV1Api) -> None:
    scale = apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 4}}
    )

    assert scale.spec.replicas == 4
    assert ready_replicas(apps) < 4
    wait_until(lambda: ready_replicas(apps) == 4, timeout_seconds=2.0)
    assert len(replica_sets(apps)) == 1


def test_ready_replicas_climb_one_pod_at_a_time(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    # A longer delay for this one Deployment leaves room to see every step.
    standin.set_ready_delay(0.3, deployment=DEPLOYMENT)
    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 5}}
    )
    seen = set()

    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        ready = ready_replicas(apps)
        if ready == 5:
            break
        seen.add(ready)
        time.sleep(0.02)

    assert seen == {2, 3, 4}


def test_scale_replace_to_zero_removes_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    scale = apps.read_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE)
    scale.spec.replicas = 0

    apps.replace_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE, scale)

    wait_until(lambda: not core.list_namespaced_pod(NAMESPACE).items)
    status = apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE).status
    assert status.replicas is None
    assert status.ready_replicas is None


def test_scale_reports_selector(apps: client.AppsV1Api) -> None:
    scale = apps.read_namespaced_deployment_scale(DEPLOYMENT, NAMESPACE)

    assert scale.status.selector == "app=sandra-api"
    assert scale.status.replicas == 2


def test_restart_annotation_keeps_other_annotations(apps: client.AppsV1Api) -> None:
    deployment = restart(apps, "2026-12-03T10:00:00Z")

    annotations = deployment.spec.template.metadata.annotations
    assert annotations["kubectl.kubernetes.io/restartedAt"] == "2026-12-03T10:00:00Z"
    assert annotations["prometheus.io/scrape"] == "true"
    assert deployment.metadata.annotations["bastion.example/owner"] == "platform-team"


def test_restart_creates_replica_set_revision_two(apps: client.AppsV1Api) -> None:
    deployment = restart(apps, "2026-12-03T10:00:00Z")

    sets = replica_sets(apps)
    assert revision(deployment) == "2"
    assert deployment.metadata.generation == 2
    assert sorted(revision(rs) for rs in sets.values()) == ["1", "2"]
    newest = next(rs for rs in sets.values() if revision(rs) == "2")
    assert newest.metadata.owner_references[0].uid == deployment.metadata.uid
    assert newest.metadata.name.startswith("sandra-api-")


def test_restart_replaces_every_pod(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    before = {pod.metadata.name for pod in core.list_namespaced_pod(NAMESPACE).items}

    restart(apps, "2026-12-03T10:00:00Z")

    def replaced() -> bool:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=sandra-api")
        names = {pod.metadata.name for pod in pods.items}
        return len(names) == 2 and not names & before

    wait_until(replaced, timeout_seconds=2.0)
    wait_until(lambda: ready_replicas(apps) == 2)
    status = apps.read_namespaced_deployment_status(DEPLOYMENT, NAMESPACE).status
    assert status.updated_replicas == 2
    assert status.observed_generation == 2


def test_scale_does_not_create_replica_set(apps: client.AppsV1Api) -> None:
    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 3}}
    )

    deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    assert revision(deployment) == "1"
    assert len(replica_sets(apps)) == 1


def test_rollback_reuses_previous_replica_set(
    apps: client.AppsV1Api, api_client: client.ApiClient
) -> None:
    original = next(iter(replica_sets(apps).values()))
    restart(apps, "2026-12-03T10:00:00Z")
    template = api_client.sanitize_for_serialization(original.spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]

    deployment = apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        [{"op": "replace", "path": "/spec/template", "value": template}],
        _content_type="application/json-patch+json",
    )

    sets = replica_sets(apps)
    assert revision(deployment) == "3"
    assert len(sets) == 2
    reused = apps.read_namespaced_replica_set(original.metadata.name, NAMESPACE)
    assert revision(reused) == "3"
    assert (
        reused.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    )
    assert reused.spec.replicas == 2


def test_env_strategic_patch_merges_by_name(apps: client.AppsV1Api) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "sandra-api",
                            "env": [{"name": "CIRCUIT_BREAKER", "value": "on"}],
                        }
                    ]
                }
            }
        }
    }

    deployment = apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        patch,
        _content_type="application/strategic-merge-patch+json",
    )

    container = deployment.spec.template.spec.containers[0]
    env = {variable.name: variable.value for variable in container.env}
    assert env["CIRCUIT_BREAKER"] == "on"
    assert env["LOG_LEVEL"] == "info"
    assert container.image == "sandra-api:1.4.2"
    assert revision(deployment) == "2"


def test_strategic_patch_deletes_env_item(apps: client.AppsV1Api) -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "sandra-api",
                            "env": [{"name": "LOG_LEVEL", "$patch": "delete"}],
                        }
                    ]
                }
            }
        }
    }

    deployment = apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        patch,
        _content_type="application/strategic-merge-patch+json",
    )

    names = [v.name for v in deployment.spec.template.spec.containers[0].env]
    assert names == ["CIRCUIT_BREAKER", "CONFIG_PATH"]


def test_config_map_merge_patch(core: client.CoreV1Api) -> None:
    patch = {"data": {"circuit_breaker": "on", "log_level": None}}

    config_map = core.patch_namespaced_config_map(
        CONFIG_MAP, NAMESPACE, patch, _content_type="application/merge-patch+json"
    )

    assert config_map.data == {"circuit_breaker": "on", "rate_limit_per_minute": "600"}


def test_config_map_json_patch(core: client.CoreV1Api) -> None:
    operations = [
        {"op": "test", "path": "/data/circuit_breaker", "value": "off"},
        {"op": "replace", "path": "/data/circuit_breaker", "value": "on"},
        {"op": "add", "path": "/data/debug", "value": "true"},
        {"op": "move", "from": "/data/log_level", "path": "/data/level"},
    ]

    config_map = core.patch_namespaced_config_map(
        CONFIG_MAP, NAMESPACE, operations, _content_type="application/json-patch+json"
    )

    assert config_map.data == {
        "circuit_breaker": "on",
        "rate_limit_per_minute": "600",
        "debug": "true",
        "level": "info",
    }


def test_json_patch_failed_test_returns_422(core: client.CoreV1Api) -> None:
    operations = [
        {"op": "test", "path": "/data/circuit_breaker", "value": "on"},
        {"op": "replace", "path": "/data/circuit_breaker", "value": "off"},
    ]

    with pytest.raises(ApiException) as raised:
        core.patch_namespaced_config_map(
            CONFIG_MAP,
            NAMESPACE,
            operations,
            _content_type="application/json-patch+json",
        )

    assert raised.value.status == 422
    assert error_body(raised.value)["kind"] == "Status"
    stored = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE)
    assert stored.data["circuit_breaker"] == "off"


def test_stale_resource_version_replace_returns_409(core: client.CoreV1Api) -> None:
    stale = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE)
    core.patch_namespaced_config_map(
        CONFIG_MAP,
        NAMESPACE,
        {"data": {"log_level": "debug"}},
        _content_type="application/merge-patch+json",
    )
    stale.data["circuit_breaker"] = "on"

    with pytest.raises(ApiException) as raised:
        core.replace_namespaced_config_map(CONFIG_MAP, NAMESPACE, stale)

    body = error_body(raised.value)
    assert raised.value.status == 409
    assert body["reason"] == "Conflict"
    assert body["code"] == 409
    assert "the object has been modified" in body["message"]


def test_retry_on_conflict_rereads_and_succeeds(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    standin.inject_fault(conflicts=2)
    attempts = []

    def enable_circuit_breaker() -> Any:
        attempts.append(1)
        config_map = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE)
        config_map.data["circuit_breaker"] = "on"
        return core.replace_namespaced_config_map(CONFIG_MAP, NAMESPACE, config_map)

    replaced = retry_on_conflict(enable_circuit_breaker)

    assert len(attempts) == 3
    assert replaced.data["circuit_breaker"] == "on"


def test_dry_run_patch_stores_nothing(core: client.CoreV1Api) -> None:
    patch = {"data": {"log_level": "debug"}}

    answered = core.patch_namespaced_config_map(
        CONFIG_MAP, NAMESPACE, patch, dry_run="All"
    )

    stored = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE)
    assert answered.data["log_level"] == "debug"
    assert stored.data["log_level"] == "info"


def test_config_map_create_and_delete(core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": "flags"}, "data": {"beta": "on"}}

    created = core.create_namespaced_config_map(NAMESPACE, body)
    core.delete_namespaced_config_map("flags", NAMESPACE)

    assert created.metadata.resource_version
    names = [c.metadata.name for c in core.list_namespaced_config_map(NAMESPACE).items]
    assert names == [CONFIG_MAP]


def test_version_and_discovery(api_client: client.ApiClient) -> None:
    version = client.VersionApi(api_client).get_code()
    groups = client.ApisApi(api_client).get_api_versions()

    assert version.major == "1"
    assert {group.name for group in groups.groups} == {"apps", "autoscaling"}


def test_replace_with_current_version_succeeds(core: client.CoreV1Api) -> None:
    current = core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE)
    current.data["circuit_breaker"] = "on"

    replaced = core.replace_namespaced_config_map(CONFIG_MAP, NAMESPACE, current)

    assert replaced.data["circuit_breaker"] == "on"
    assert int(replaced.metadata.resource_version) > int(
        current.metadata.resource_version
    )


def test_injected_errors_then_success(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    standin.inject_fault(
        method="PATCH", path_regex="/configmaps/sandra-api-config$", status=500, times=3
    )
    patch = {"data": {"log_level": "debug"}}
    statuses = []

    for _ in range(3):
        with pytest.raises(ApiException) as raised:
            core.patch_namespaced_config_map(CONFIG_MAP, NAMESPACE, patch)
        statuses.append(raised.value.status)
    patched = core.patch_namespaced_config_map(CONFIG_MAP, NAMESPACE, patch)

    assert statuses == [500, 500, 500]
    assert patched.data["log_level"] == "debug"


def test_conflict_fault_then_retry_succeeds(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(conflicts=1)

    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment_scale(
            DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 3}}
        )
    scale = apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 3}}
    )

    assert raised.value.status == 409
    assert error_body(raised.value)["details"]["name"] == DEPLOYMENT
    assert scale.spec.replicas == 3


def test_stalled_patch_times_out_client(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    # urllib3 retries a GET after a read timeout, but never a PATCH.
    standin.inject_fault(method="PATCH", stall_seconds=5)
    patch = {"data": {"log_level": "debug"}}

    started = time.monotonic()
    with pytest.raises(Exception, match="timed out"):
        core.patch_namespaced_config_map(
            CONFIG_MAP, NAMESPACE, patch, _request_timeout=0.3
        )

    assert time.monotonic() - started < 2


def test_stalled_get_is_retried_by_client(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(method="GET", stall_seconds=5, times=1)

    deployment = apps.read_namespaced_deployment(
        DEPLOYMENT, NAMESPACE, _request_timeout=0.3
    )

    assert deployment.metadata.name == DEPLOYMENT
    assert standin.faults.describe() == []


def test_stall_ready_keeps_ready_replicas_below_spec(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    standin.inject_fault(stall_ready=DEPLOYMENT)

    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 3}}
    )
    time.sleep(READY_DELAY_SECONDS * 4)

    assert ready_replicas(apps) == 2
    standin.clear_faults()
    wait_until(lambda: ready_replicas(apps) == 3)


def test_deleted_pod_is_replaced(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=sandra-api").items
    victim = pods[0].metadata.name

    deleted = core.delete_namespaced_pod(victim, NAMESPACE)

    assert deleted.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_pod(victim, NAMESPACE)
    assert raised.value.status == 404

    def replacement() -> list[str]:
        listed = core.list_namespaced_pod(NAMESPACE, label_selector="app=sandra-api")
        return [
            pod.metadata.name for pod in listed.items if pod.metadata.name != victim
        ]

    wait_until(lambda: len(replacement()) == 2)
    wait_until(lambda: ready_replicas(apps) == 2)


def test_pods_carry_template_hash_label(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    replica_set = next(iter(replica_sets(apps).values()))
    pod_hash = replica_set.metadata.labels["pod-template-hash"]

    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector=f"app=sandra-api,pod-template-hash={pod_hash}"
    ).items

    assert len(pods) == 2
    assert pods[0].metadata.owner_references[0].name == replica_set.metadata.name
    assert pods[0].status.phase == "Running"


def test_hpa_list_and_get(api_client: client.ApiClient) -> None:
    autoscaling = client.AutoscalingV2Api(api_client)
    body = {
        "metadata": {"name": "sandra-api"},
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

    autoscaling.create_namespaced_horizontal_pod_autoscaler(NAMESPACE, body)

    listed = autoscaling.list_namespaced_horizontal_pod_autoscaler(NAMESPACE)
    fetched = autoscaling.read_namespaced_horizontal_pod_autoscaler(
        "sandra-api", NAMESPACE
    )
    assert [hpa.spec.scale_target_ref.name for hpa in listed.items] == [DEPLOYMENT]
    assert fetched.spec.max_replicas == 6


def test_hpa_keeps_replicas_at_its_maximum(
    api_client: client.ApiClient, apps: client.AppsV1Api
) -> None:
    autoscaling = client.AutoscalingV2Api(api_client)
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT}
    autoscaling.create_namespaced_horizontal_pod_autoscaler(
        NAMESPACE,
        {
            "metadata": {"name": "sandra-api"},
            "spec": {"scaleTargetRef": target, "maxReplicas": 3},
        },
    )

    apps.patch_namespaced_deployment_scale(
        DEPLOYMENT, NAMESPACE, {"spec": {"replicas": 8}}
    )

    wait_until(
        lambda: (
            apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE).spec.replicas == 3
        )
    )


def test_unknown_deployment_returns_404(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment("no-such-app", NAMESPACE)

    body = error_body(raised.value)
    assert raised.value.status == 404
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "no-such-app" not found'


def test_create_existing_deployment_returns_409(
    apps: client.AppsV1Api, api_client: client.ApiClient
) -> None:
    existing = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    existing.metadata.resource_version = None

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment(NAMESPACE, existing)

    assert raised.value.status == 409
    assert error_body(raised.value)["reason"] == "AlreadyExists"


def test_create_deployment_in_new_namespace(apps: client.AppsV1Api) -> None:
    labels = {"app": "worker"}
    body = {
        "metadata": {"name": "worker", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "worker", "image": "worker:1"}]},
            },
        },
    }

    created = apps.create_namespaced_deployment("batch", body)

    assert created.metadata.namespace == "batch"
    assert revision(created) == "1"
    wait_until(
        lambda: apps.read_namespaced_deployment("worker", "batch").status.ready_replicas
    )
    listed = apps.list_namespaced_deployment(NAMESPACE, label_selector="app=worker")
    assert listed.items == []


def test_invalid_deployment_returns_422(apps: client.AppsV1Api) -> None:
    body = {
        "metadata": {"name": "broken"},
        "spec": {
            "selector": {"matchLabels": {"app": "broken"}},
            "template": {
                "metadata": {"labels": {"app": "other"}},
                "spec": {"containers": [{"name": "broken", "image": "broken:1"}]},
            },
        },
    }

    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment(NAMESPACE, body)

    assert raised.value.status == 422
    assert "spec.template.metadata.labels" in error_body(raised.value)["message"]


def test_delete_deployment_removes_its_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.delete_namespaced_deployment(DEPLOYMENT, NAMESPACE)

    wait_until(lambda: not core.list_namespaced_pod(NAMESPACE).items)
    assert apps.list_namespaced_replica_set(NAMESPACE).items == []


def test_bad_token_returns_401(standin: KubeStandin, tmp_path: Path) -> None:
    path = tmp_path / "wrong-kubeconfig"
    standin.write_kubeconfig(path)
    path.write_text(path.read_text().replace(TOKEN, "wrong-token"))
    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(path)))

    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)

    assert raised.value.status == 401


def test_unsupported_patch_type_returns_415(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment(
            DEPLOYMENT,
            NAMESPACE,
            {"spec": {"replicas": 3}},
            _content_type="application/apply-patch+yaml",
        )

    assert raised.value.status == 415
    assert error_body(raised.value)["reason"] == "UnsupportedMediaType"


def test_client_picks_patch_type_from_body(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    apps.patch_namespaced_deployment(
        DEPLOYMENT, NAMESPACE, {"metadata": {"labels": {"tier": "web"}}}
    )
    apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        [{"op": "add", "path": "/metadata/labels/team", "value": "sre"}],
    )
    apps.patch_namespaced_deployment(
        DEPLOYMENT,
        NAMESPACE,
        {"metadata": {"labels": {"tier": None}}},
        _content_type="application/merge-patch+json",
    )

    patches = [r["contentType"] for r in standin.requests if r["method"] == "PATCH"]
    assert patches == [
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/merge-patch+json",
    ]
    labels = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE).metadata.labels
    assert labels == {"app": "sandra-api", "team": "sre"}


def test_control_endpoints_over_http(
    standin: KubeStandin, apps: client.AppsV1Api
) -> None:
    fault = {"method": "GET", "path_regex": "/deployments/", "status": 503, "times": 1}

    added = httpx.post(f"{standin.url}/_standin/faults", json=fault)
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    state = httpx.get(f"{standin.url}/_standin/state").json()

    assert added.status_code == 201
    assert raised.value.status == 503
    assert [d["metadata"]["name"] for d in state["objects"]["deployments"]] == [
        DEPLOYMENT
    ]
    assert state["requests"][-1]["status"] == 503


def test_reset_restores_seed(standin: KubeStandin, core: client.CoreV1Api) -> None:
    core.delete_namespaced_config_map(CONFIG_MAP, NAMESPACE)

    response = httpx.post(f"{standin.url}/_standin/reset")

    assert response.status_code == 200
    assert (
        core.read_namespaced_config_map(CONFIG_MAP, NAMESPACE).data["log_level"]
        == "info"
    )


def test_seed_endpoint_adds_objects(
    standin: KubeStandin, core: client.CoreV1Api
) -> None:
    seed = {
        "kind": "List",
        "items": [{"kind": "ConfigMap", "metadata": {"name": "flags"}, "data": {}}],
    }

    response = httpx.post(f"{standin.url}/_standin/seed", json=seed)

    assert response.json() == {"loaded": ["ConfigMap/default/flags"]}
    assert core.read_namespaced_config_map("flags", NAMESPACE).metadata.uid


def test_bad_fault_is_rejected(standin: KubeStandin) -> None:
    response = httpx.post(f"{standin.url}/_standin/faults", json={"status": 200})

    assert response.status_code == 400
    assert "status must be an HTTP error code" in response.json()["message"]


def test_command_writes_kubeconfig_and_stops(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: flags\n"
        "data:\n  beta: 'on'\n"
    )
    command = [
        sys.executable,
        "-m",
        "devstack.kube",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--seed",
        str(seed),
        "--token",
        TOKEN,
    ]
    log = (tmp_path / "standin.log").open("w")
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    try:
        url = process.stdout.readline().strip()
        core = client.CoreV1Api(
            config.new_client_from_config(config_file=str(kubeconfig))
        )
        flags = core.read_namespaced_config_map("flags", NAMESPACE)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
        log.close()

    assert url.startswith("http://127.0.0.1:")
    assert flags.data == {"beta": "on"}
    assert exit_code == 0
