"""sandra-api: the small HTTP service the demo monitors, with faults on request.

Its metrics use the names and labels of the watcher catalog. POST /control
sets the faults (added latency, error share, throttling, failed logins) that
the load generator and the watchers then see through Prometheus.

With ``--kubeconfig``, the service reads its Deployment's ready replicas from
that Kubernetes API every 2 s, and the added latency shrinks as replicas are
added, so a scale-up by Bastion shows in the p95. POST /admin/<name> and
POST /cdn/purge record the calls that Bastion's HTTP actions make, and
GET /admin/calls lists them.

Run: ``python -m demo.sandra_api --port 8081``.
"""

import argparse
import ipaddress
import json
import logging
import random
import signal
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

SERVICE = "sandra-api"
# Fine steps around the catalog's 0.8 s threshold, so the p95 that
# histogram_quantile interpolates lands close to the real one.
LATENCY_BUCKETS = (
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    1.0,
    1.25,
    1.5,
    2.0,
    2.5,
    3.0,
    4.0,
    5.0,
)
API_ROUTES = ("/api/items", "/login")
STATUSES = ("200", "401", "429", "500")
BASELINE_LATENCY_SECONDS = 0.02
MAX_LATENCY_SECONDS = 30.0
DEMO_PASSWORD = "sandra-demo-password"  # noqa: S105 (a demo account, not a secret)
DEFAULT_MEMORY_LIMIT_BYTES = 256 * 1024 * 1024
# The configured latency applies unscaled at this many ready replicas, and
# at twice as many it halves.
BASELINE_REPLICAS = 2
REPLICA_POLL_SECONDS = 2.0
MAX_RECORDED_CALLS = 200


@dataclass
class Faults:
    """What POST /control sets; the defaults are a healthy service."""

    latency_seconds: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    failed_logins_per_second: float = 0.0
    attacker_ip: str = "203.0.113.7"


class ControlError(ValueError):
    pass


def effective_latency(
    configured_seconds: float, ready_replicas: int | None = None
) -> float:
    """Return how long one request takes, given the latency set by the control.

    The added latency is the configured value times BASELINE_REPLICAS /
    ``ready_replicas``, so more replicas share the load. When the replicas are
    unknown or none is ready, the configured value applies unscaled. It varies
    by ±20 %, like a slow dependency does, on top of a small baseline.
    """
    added = configured_seconds * replica_factor(ready_replicas)
    added *= random.uniform(0.8, 1.2)
    return BASELINE_LATENCY_SECONDS * random.uniform(0.5, 1.5) + added


def replica_factor(ready_replicas: int | None) -> float:
    if not ready_replicas:
        return 1.0
    return BASELINE_REPLICAS / ready_replicas


@dataclass(frozen=True)
class DeploymentSource:
    """The Deployment that sandra-api reads: a kubeconfig, a namespace and a name."""

    kubeconfig: Path
    namespace: str
    name: str = SERVICE

    def read_ready_replicas(self) -> int:
        """GET the Deployment and return ``status.readyReplicas`` (0 when absent)."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"].get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = (
            f"{server}/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.name}"
        )
        response = httpx.get(url, headers=headers, timeout=2)
        response.raise_for_status()
        return int(response.json().get("status", {}).get("readyReplicas") or 0)


def _check_fraction(name: str, value: Any) -> float:
    number = _check_number(name, value)
    if not 0.0 <= number <= 1.0:
        raise ControlError(f"{name}={number} is outside 0..1: give a fraction")
    return number


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{name}={value!r} is not a number")
    return float(value)


def _check_ip(name: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        raise ControlError(f"{name}={value!r} is not an IP address") from None


def apply_control(faults: Faults, body: dict[str, Any]) -> Faults:
    """Return ``faults`` updated from a POST /control body, validating each field."""
    unknown = set(body) - set(asdict(faults))
    if unknown:
        raise ControlError(
            f"unknown control fields {sorted(unknown)}: use {sorted(asdict(faults))}"
        )
    values = asdict(faults)
    for name, value in body.items():
        if name in ("error_rate", "throttle_rate"):
            values[name] = _check_fraction(name, value)
        elif name == "attacker_ip":
            values[name] = _check_ip(name, value)
        else:
            values[name] = _check_number(name, value)
    if not 0.0 <= values["latency_seconds"] <= MAX_LATENCY_SECONDS:
        raise ControlError(
            f"latency_seconds={values['latency_seconds']} is outside "
            f"0..{MAX_LATENCY_SECONDS}"
        )
    if values["failed_logins_per_second"] < 0:
        raise ControlError("failed_logins_per_second must be 0 or more")
    return Faults(**values)


class SandraMetrics:
    """sandra-api's metrics in their own registry, so /metrics shows only these."""

    def __init__(self, memory_limit_bytes: int) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from request to response.",
            ["service", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "http_requests_total",
            "Requests answered, by route and status.",
            ["service", "route", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "auth_failures_total",
            "Rejected logins, by client address.",
            ["service", "source_ip"],
            registry=self.registry,
        )
        self.memory_limit = Gauge(
            "sandra_api_memory_limit_bytes",
            "The memory limit the service runs under.",
            registry=self.registry,
        )
        self.memory_limit.set(memory_limit_bytes)
        ProcessCollector(registry=self.registry)
        self._create_zero_series()

    def _create_zero_series(self) -> None:
        # Series that exist at 0 from the start let rate() return 0 instead
        # of nothing before the first error or throttled request.
        for route in API_ROUTES:
            self.duration.labels(SERVICE, route)
            for status in STATUSES:
                self.requests.labels(SERVICE, route, status)

    def record(self, route: str, status: int, seconds: float) -> None:
        self.duration.labels(SERVICE, route).observe(seconds)
        self.requests.labels(SERVICE, route, str(status)).inc()


class SandraApi:
    """The service's state: its faults, under a lock, and its metrics."""

    def __init__(self, memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES) -> None:
        self.metrics = SandraMetrics(memory_limit_bytes)
        self._faults = Faults()
        self._lock = threading.Lock()
        self.ready_replicas: int | None = None
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_CALLS)

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    def update_faults(self, body: dict[str, Any]) -> Faults:
        with self._lock:
            self._faults = apply_control(self._faults, body)
            logger.info("control set %s", asdict(self._faults))
            return self._faults

    def status(self) -> dict[str, Any]:
        """Return the faults, the ready replicas and the latency factor they give."""
        return {
            **asdict(self.faults),
            "ready_replicas": self.ready_replicas,
            "latency_factor": round(replica_factor(self.ready_replicas), 3),
        }

    def record_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        call = {"time": time.time(), "path": path, "body": body}
        with self._lock:
            self.calls.append(call)
        logger.info("call %s %s", path, json.dumps(body))
        return call

    def follow_replicas(
        self,
        source: DeploymentSource,
        stop: threading.Event,
        every_seconds: float = REPLICA_POLL_SECONDS,
    ) -> None:
        """Poll ``source`` into ``ready_replicas`` until ``stop`` is set."""
        while not stop.is_set():
            self.poll_replicas(source)
            stop.wait(every_seconds)

    def poll_replicas(self, source: DeploymentSource) -> None:
        try:
            ready = source.read_ready_replicas()
        except (OSError, ValueError, KeyError, httpx.HTTPError) as error:
            # The last value stays, so a brief API outage does not move latency.
            logger.warning("reading deployment %s failed: %s", source.name, error)
            return
        if ready != self.ready_replicas:
            logger.info("deployment %s: %s ready replicas", source.name, ready)
        self.ready_replicas = ready

    def fault_status(self, faults: Faults) -> int | None:
        """Return the status a request fails with under ``faults``, or None."""
        if random.random() < faults.throttle_rate:
            return 429
        if random.random() < faults.error_rate:
            return 500
        return None


class SandraHandler(BaseHTTPRequestHandler):
    server: "SandraServer"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = generate_latest(self.server.api.metrics.registry)
            self._send(200, body, CONTENT_TYPE_LATEST)
        elif self.path == "/control":
            self._send_json(200, self.server.api.status())
        elif self.path == "/health":
            self._send_json(200, {"status": "ok"})
        elif self.path == "/admin/calls":
            self._send_json(200, {"calls": list(self.server.api.calls)})
        elif self.path == "/api/items":
            self._serve_api("/api/items", self._items)
        else:
            self._send_json(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        body = self._read_json()
        if body is None:
            return
        if self.path == "/control":
            self._control(body)
        elif self.path == "/login":
            self._serve_api("/login", lambda: self._login(body))
        elif self.path.startswith("/admin/") or self.path == "/cdn/purge":
            self._send_json(200, self.server.api.record_call(self.path, body))
        else:
            self._send_json(404, {"error": f"no route {self.path}"})

    def _serve_api(self, route: str, respond: Any) -> None:
        started = time.monotonic()
        faults = self.server.api.faults
        api = self.server.api
        time.sleep(effective_latency(faults.latency_seconds, api.ready_replicas))
        status = self.server.api.fault_status(faults)
        if status is None:
            status, payload = respond()
        else:
            payload = {"error": "throttled" if status == 429 else "internal error"}
        self._send_json(status, payload)
        self.server.api.metrics.record(route, status, time.monotonic() - started)

    def _items(self) -> tuple[int, dict[str, Any]]:
        return 200, {"items": [{"id": n, "name": f"item {n}"} for n in range(5)]}

    def _login(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("password") == DEMO_PASSWORD:
            return 200, {"user": body.get("username", "")}
        self.server.api.metrics.auth_failures.labels(SERVICE, self._client_ip()).inc()
        return 401, {"error": "invalid username or password"}

    def _control(self, body: dict[str, Any]) -> None:
        try:
            faults = self.server.api.update_faults(body)
        except ControlError as error:
            self._send_json(400, {"error": str(error)})
            return
        self._send_json(200, {**self.server.api.status(), **asdict(faults)})

    def _client_ip(self) -> str:
        # The first X-Forwarded-For entry is the client as the proxy saw it.
        forwarded = self.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            return self.client_address[0]

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as error:
            self._send_json(400, {"error": f"the body is not valid JSON: {error}"})
            return None
        if not isinstance(body, dict):
            self._send_json(400, {"error": "the body must be a JSON object"})
            return None
        return body

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request would drown the log at 20 requests/s.
        pass


class SandraServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: SandraApi) -> None:
        super().__init__(address, SandraHandler)
        self.api = api


def serve(
    port: int, memory_limit_bytes: int, source: DeploymentSource | None = None
) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    api = SandraApi(memory_limit_bytes)
    server = SandraServer(("127.0.0.1", port), api)
    stopping = threading.Event()
    if source is not None:
        threading.Thread(
            target=api.follow_replicas, args=(source, stopping), daemon=True
        ).start()

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever, so it must run in another thread.
        stopping.set()
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("sandra-api listening on http://127.0.0.1:%s", port)
    server.serve_forever()
    server.server_close()
    logger.info("sandra-api stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument(
        "--memory-limit-mib",
        type=int,
        default=DEFAULT_MEMORY_LIMIT_BYTES // (1024 * 1024),
        help="memory limit reported as sandra_api_memory_limit_bytes, in MiB",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="kubeconfig of the Kubernetes API to read the Deployment's ready "
        "replicas from (default: none read, the latency is not scaled)",
    )
    parser.add_argument(
        "--namespace", default="default", help="namespace of the Deployment"
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    source = None
    if arguments.kubeconfig:
        source = DeploymentSource(arguments.kubeconfig, arguments.namespace)
    serve(arguments.port, arguments.memory_limit_mib * 1024 * 1024, source)


if __name__ == "__main__":
    main()
