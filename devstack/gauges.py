"""An exporter whose gauge values a test or benchmark sets directly."""

import threading
from collections.abc import Iterable
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import MetricsHandler

from devstack.processes import free_port


class GaugeExporter:
    """Serve ``/metrics`` with one gauge family on 127.0.0.1."""

    def __init__(
        self, name: str = "bastion_test_value", label_names: Iterable[str] = ("series",)
    ) -> None:
        self.registry = CollectorRegistry()
        self.gauge = Gauge(
            name, "Value set by a test", list(label_names), registry=self.registry
        )
        self.name = name
        self.port = free_port()
        handler = MetricsHandler.factory(self.registry)
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "GaugeExporter":
        self.thread.start()
        return self

    def set(self, value: float, **labels: str) -> None:
        self.gauge.labels(**labels).set(value)

    def remove(self, **labels: str) -> None:
        self.gauge.remove(*labels.values())

    def clear(self) -> None:
        self.gauge.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
