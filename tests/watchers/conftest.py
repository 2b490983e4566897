import time
from pathlib import Path

import pytest

from devstack.gauges import GaugeExporter
from devstack.prometheus import PrometheusServer, ScrapeTarget, start_prometheus


@pytest.fixture(scope="session")
def exporter():
    exporter = GaugeExporter().start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def prometheus(exporter, tmp_path_factory) -> PrometheusServer:
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    server = start_prometheus(
        workdir, [ScrapeTarget("test", exporter.address)], scrape_interval="1s"
    )
    yield server
    server.stop()


@pytest.fixture
def settle(prometheus):
    """Return a function that waits until Prometheus returns what a test expects."""

    def wait(expression: str, check, timeout_seconds: float = 15.0) -> list:
        deadline = time.monotonic() + timeout_seconds
        result: list = []
        while time.monotonic() < deadline:
            result = prometheus.query(expression)
            if check(result):
                return result
            time.sleep(0.2)
        raise AssertionError(f"{expression} never met the check; last result {result}")

    return wait
