"""sandra-api's added latency falls as its Deployment's ready replicas rise.

A Kubernetes API stand-in runs in-process with the demo's seed. The
``kubernetes`` client scales the Deployment, and real requests to a real
sandra-api server are timed.
"""

import threading
import time

import httpx
import kubernetes
import pytest

from demo import REPOSITORY
from demo.sandra_api import DeploymentSource, SandraApi, SandraServer
from devstack.kube.seed import load_seed_file
from devstack.kube.server import KubeStandin

NAMESPACE = "demo"
CONFIGURED_LATENCY_SECONDS = 1.0


@pytest.fixture
def standin(tmp_path):
    seed = load_seed_file(REPOSITORY / "demo" / "kube-seed.yaml")
    with KubeStandin(token="demo-token", seed=seed, ready_delay_seconds=0.2) as kube:
        kube.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
        yield kube


@pytest.fixture
def source(standin, tmp_path) -> DeploymentSource:
    return DeploymentSource(tmp_path / "kubeconfig", NAMESPACE)


@pytest.fixture
def sandra(source):
    api = SandraApi()
    server = SandraServer(("127.0.0.1", 0), api)
    stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Thread(
        target=api.follow_replicas, args=(source, stopping, 0.1), daemon=True
    ).start()
    url = f"http://127.0.0.1:{server.server_port}"
    httpx.post(f"{url}/control", json={"latency_seconds": CONFIGURED_LATENCY_SECONDS})
    yield url, api
    stopping.set()
    server.shutdown()
    server.server_close()


def scale(source: DeploymentSource, replicas: int) -> None:
    client = kubernetes.config.new_client_from_config(str(source.kubeconfig))
    with client:
        kubernetes.client.AppsV1Api(client).patch_namespaced_deployment_scale(
            "sandra-api", NAMESPACE, {"spec": {"replicas": replicas}}
        )


def wait_for_replicas(api: SandraApi, replicas: int, timeout_seconds: float = 10):
    deadline = time.monotonic() + timeout_seconds
    while api.ready_replicas != replicas and time.monotonic() < deadline:
        time.sleep(0.05)
    return api.ready_replicas


def request_seconds(url: str, requests: int = 3) -> float:
    """Return the fastest of ``requests`` timed requests.

    The fastest is the one least delayed by other load on the machine.
    """
    durations = []
    for _ in range(requests):
        started = time.monotonic()
        httpx.get(f"{url}/api/items", timeout=10).raise_for_status()
        durations.append(time.monotonic() - started)
    return min(durations)


def test_source_reads_seeded_ready_replicas(source):
    deadline = time.monotonic() + 5
    while source.read_ready_replicas() != 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert source.read_ready_replicas() == 2


def test_status_shows_ready_replicas(sandra):
    url, api = sandra
    wait_for_replicas(api, 2)

    status = httpx.get(f"{url}/control").json()

    assert status["ready_replicas"] == 2
    assert status["latency_factor"] == 1.0


def test_latency_halves_at_four_replicas(sandra, source):
    url, api = sandra
    wait_for_replicas(api, 2)
    # The configured 1.0 s varies by ±20 %, so two replicas take 0.8 s or more.
    at_two = request_seconds(url)

    scale(source, 4)

    assert wait_for_replicas(api, 4) == 4
    at_four = request_seconds(url)
    assert at_two >= 0.8
    assert at_four < 0.7


def test_latency_falls_step_by_step(sandra, source):
    url, api = sandra
    wait_for_replicas(api, 2)
    factors = []
    for replicas in (3, 4):
        scale(source, replicas)
        wait_for_replicas(api, replicas)
        factors.append(httpx.get(f"{url}/control").json()["latency_factor"])

    assert factors == [0.667, 0.5]
