"""The stand-in's HTTP server, its control endpoints and the ``KubeStandin`` API.

Kubernetes paths go to ``api.KubeApi`` after the bearer token check and the
injected faults. Paths under ``/_standin/`` control the stand-in and need no
token, since the server listens on loopback only:

- ``POST /_standin/faults`` adds a fault (see ``faults``), ``GET`` lists
  them, ``DELETE`` removes them all and lets stalled pods become ready;
- ``GET /_standin/state`` dumps every object, the faults and the requests;
- ``POST /_standin/reset`` restores the objects the server started with;
- ``POST /_standin/seed`` creates or replaces the objects in the body;
- ``POST /_standin/ready-delay`` sets ``{"seconds": 0.2}`` for every
  Deployment, or for one with ``"deployment"`` and ``"namespace"``.
"""

import collections
import hmac
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.kube.api import ROUTE, ApiRequest, ApiResponse, KubeApi, find_resource
from devstack.kube.controller import Controller
from devstack.kube.faults import Fault, FaultError, FaultSet
from devstack.kube.kubeconfig import write_kubeconfig
from devstack.kube.seed import apply_seed, default_seed, seed_items
from devstack.kube.store import ApiError, Store, conflict
from devstack.kube.validation import admit

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_standin/"
REQUEST_LOG_SIZE = 1000


class KubeStandin:
    """A Kubernetes API stand-in on 127.0.0.1, for tests, demos and devstack.

    ``seed`` is the objects to start with (the demo's sandra-api by default);
    ``token``, when set, must come as ``Authorization: Bearer <token>``.
    """

    def __init__(
        self,
        port: int = 0,
        token: str | None = None,
        seed: list[dict[str, Any]] | None = None,
        ready_delay_seconds: float = 1.0,
    ) -> None:
        self.port = port
        self.token = token
        self.seed = default_seed() if seed is None else seed
        self.store = Store(admit)
        self.controller = Controller(self.store, ready_delay_seconds)
        self.faults = FaultSet()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=REQUEST_LOG_SIZE
        )
        self.api = KubeApi(self.store, "127.0.0.1:0")
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "KubeStandin":
        self.load(self.seed)
        server = ThreadingHTTPServer(("127.0.0.1", self.port), StandinHandler)
        server.standin = self  # type: ignore[attr-defined]
        self._server = server
        self.port = int(server.server_address[1])
        self.api.server_address = f"127.0.0.1:{self.port}"
        self._stopping.clear()
        self.controller.start()
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kube-standin-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("Kubernetes stand-in listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving; requests held by a stall fault return at once."""
        self._stopping.set()
        self.controller.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        logger.info("Kubernetes stand-in on port %d stopped", self.port)

    def __enter__(self) -> "KubeStandin":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: Path | str, namespace: str = "default") -> Path:
        return write_kubeconfig(Path(path), self.url, self.token, namespace)

    def load(self, objects: list[dict[str, Any]]) -> list[str]:
        """Create or replace ``objects`` and bring their pods up at once."""
        loaded = apply_seed(self.store, objects)
        self.controller.settle()
        return loaded

    def reset(self) -> None:
        """Restore the starting objects and drop all faults and the request log."""
        with self.store.lock:
            self.store.clear()
            self.controller.forget()
            self.clear_faults()
            self.requests.clear()
            self.load(self.seed)

    def inject_fault(self, **spec: Any) -> dict[str, Any]:
        """Add a fault, as ``POST /_standin/faults`` does; see ``faults``."""
        stall_ready = spec.pop("stall_ready", None)
        if stall_ready is not None:
            namespace = spec.pop("namespace", None) or "default"
            if spec:
                raise FaultError(
                    f"stall_ready takes only namespace, not {sorted(spec)}"
                )
            self.controller.stalled.add((namespace, stall_ready))
            return {"stall_ready": stall_ready, "namespace": namespace}
        return self.faults.add(spec).describe()

    def clear_faults(self) -> None:
        self.faults.clear()
        self.controller.stalled.clear()
        self.store.changed.set()  # stalled pods become ready without waiting

    def set_ready_delay(
        self, seconds: float, deployment: str | None = None, namespace: str = "default"
    ) -> None:
        if deployment is None:
            self.controller.ready_delay_seconds = seconds
        else:
            self.controller.deployment_delays[(namespace, deployment)] = seconds

    def state(self) -> dict[str, Any]:
        return {
            "resourceVersion": self.store.resource_version,
            "objects": self.store.dump(),
            "faults": self.faults.describe(),
            "stalledReady": [
                {"namespace": namespace, "deployment": name}
                for namespace, name in sorted(self.controller.stalled)
            ],
            "readyDelaySeconds": self.controller.ready_delay_seconds,
            "requests": list(self.requests),
        }

    def respond(self, request: ApiRequest) -> ApiResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return self.control(request)
        response = self.serve_kubernetes(request)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query,
                "contentType": request.content_type,
                "status": response.status,
                "time": time.time(),
            }
        )
        return response

    def serve_kubernetes(self, request: ApiRequest) -> ApiResponse:
        if self.token and not hmac.compare_digest(
            request.authorization.encode(), f"Bearer {self.token}".encode()
        ):
            return ApiResponse(401, ApiError(401, "Unauthorized").status())
        fault = self.faults.take(request.method, request.path)
        if fault is not None:
            logger.info(
                "Injecting fault %d into %s %s", fault.id, request.method, request.path
            )
            if fault.stall_seconds:
                self._stopping.wait(fault.stall_seconds)
            if fault.status is not None:
                return fault_response(fault, request)
        return self.api.handle(request)

    def control(self, request: ApiRequest) -> ApiResponse:
        try:
            return self.control_action(request)
        except (FaultError, ValueError) as error:
            logger.warning("Rejected %s %s: %s", request.method, request.path, error)
            return ApiResponse(400, ApiError(400, str(error)).status())
        except ApiError as error:
            return ApiResponse(error.code, error.status())

    def control_action(self, request: ApiRequest) -> ApiResponse:
        action = (request.method, request.path.removeprefix(CONTROL_PREFIX).rstrip("/"))
        if action == ("GET", "state"):
            return ApiResponse(200, self.state())
        if action == ("GET", "faults"):
            return ApiResponse(200, {"faults": self.faults.describe()})
        if action == ("DELETE", "faults"):
            self.clear_faults()
            return ApiResponse(200, {"faults": []})
        if action == ("POST", "faults"):
            body = request.json()
            specs = body if isinstance(body, list) else [body]
            return ApiResponse(
                201,
                {"added": [self.inject_fault(**check_object(spec)) for spec in specs]},
            )
        if action == ("POST", "reset"):
            self.reset()
            return ApiResponse(200, {"resourceVersion": self.store.resource_version})
        if action == ("POST", "seed"):
            return ApiResponse(200, {"loaded": self.load(seed_items(request.json()))})
        if action == ("POST", "ready-delay"):
            body = check_object(request.json())
            self.set_ready_delay(
                float(body["seconds"]),
                body.get("deployment"),
                body.get("namespace") or "default",
            )
            return ApiResponse(200, body)
        raise ApiError(404, f"unknown control endpoint {request.method} {request.path}")


def check_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, not {value!r}")
    return value


def fault_response(fault: Fault, request: ApiRequest) -> ApiResponse:
    """Build the response kube-apiserver would send with this status."""
    status = fault.status or 500
    match = ROUTE.match(request.path)
    error = ApiError(
        status, f"{fault.message} ({status} for {request.method} {request.path})"
    )
    if status == 409 and match is not None and match["name"]:
        try:
            resource = find_resource(
                match["group"] or "", match["version"] or "v1", match["plural"]
            )
            error = conflict(resource, match["name"])
        except ApiError:
            pass
    headers = {}
    if fault.retry_after_seconds is not None:
        headers["Retry-After"] = str(fault.retry_after_seconds)
    return ApiResponse(status, error.status(), headers)


class StandinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bastion-kube-standin"

    def do_GET(self) -> None:
        self.serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {
            key: values[-1]
            for key, values in parse_qs(parts.query, keep_blank_values=True).items()
        }
        request = ApiRequest(
            method=self.command,
            path=parts.path,
            query=query,
            content_type=self.headers.get("Content-Type", ""),
            body=body,
            authorization=self.headers.get("Authorization", ""),
        )
        standin: KubeStandin = self.server.standin  # type: ignore[attr-defined]
        try:
            response = standin.respond(request)
        except Exception as error:
            logger.exception("Stand-in failed on %s %s", self.command, self.path)
            response = ApiResponse(
                500, ApiError(500, f"stand-in error: {error}").status()
            )
        try:
            self.send(response)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first, as after its own read timeout.
            logger.debug(
                "Client closed the connection before the response to %s %s",
                self.command,
                self.path,
            )

    def send(self, response: ApiResponse) -> None:
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)
