"""The demo's monitored side against a real Prometheus: every catalog metric
has a value, and the control's faults show up in the catalog's queries.

Starts sandra-api with its load generator, the TLS endpoint, the three
exporters and Prometheus (2 s scrapes, the demo's recording rules) on free
ports, once for the module.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo import REPOSITORY
from demo.control import write_state
from devstack.monitoring import (
    catalog_queries,
    metric_names,
    metrics_without_value,
    start_monitoring,
)
from devstack.processes import ProcessGroup

pytestmark = pytest.mark.prometheus

CATALOG = REPOSITORY / "examples" / "watchers.yaml"
ATTACKER_IP = "203.0.113.7"


def wait_for(probe, timeout_seconds: float = 30.0, every_seconds: float = 1.0):
    """Call ``probe`` until it returns something truthy; return that or the last."""
    deadline = time.monotonic() + timeout_seconds
    result = probe()
    while not result and time.monotonic() < deadline:
        time.sleep(every_seconds)
        result = probe()
    return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo-stack")
    group = ProcessGroup(workdir / "logs")
    try:
        monitoring = start_monitoring(workdir, group)
        yield monitoring
    finally:
        group.stop()


@pytest.fixture(scope="module")
def state_file(stack, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo-state") / "state.json"
    write_state(path, {"sandra_api_url": stack.sandra_api_url})
    return path


def run_control(state_file: Path, *arguments: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.control",
            "--state-file",
            str(state_file),
            *arguments,
        ],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def catalog_query(name: str) -> str:
    return catalog_queries(CATALOG)[name]


def highest_value(stack, query: str) -> float:
    values = [float(series["value"][1]) for series in stack.prometheus.query(query)]
    return max(values, default=float("nan"))


def test_every_catalog_metric_has_value(stack):
    names = set().union(*map(metric_names, catalog_queries(CATALOG).values()))

    wait_for(lambda: not metrics_without_value(stack.prometheus, names))

    assert metrics_without_value(stack.prometheus, names) == []


def test_catalog_divisions_return_series(stack):
    for name in ("memory_usage", "database_connections"):
        series = wait_for(lambda n=name: stack.prometheus.query(catalog_query(n)))

        assert series, f"{name}: {catalog_query(name)} returned no series"


def test_certificate_expiry_reads_three_days(stack):
    days = wait_for(lambda: stack.prometheus.query("ssl_cert_expiry_days"))

    assert 2.9 < float(days[0]["value"][1]) <= 3.0


def test_latency_control_raises_p95(stack, state_file):
    query = catalog_query("sandra_api_latency")
    wait_for(lambda: highest_value(stack, query) < 0.8)
    before = highest_value(stack, query)

    run_control(state_file, "latency", "2")
    try:
        wait_for(lambda: highest_value(stack, query) > 0.8, 30)
        after = highest_value(stack, query)
    finally:
        run_control(state_file, "reset")

    assert before < 0.8
    assert after > 0.8


@pytest.mark.parametrize(
    ("command", "fraction", "watcher"),
    [
        ("errors", "0.2", "sandra_api_errors"),
        ("throttle", "0.3", "rate_limit_breaches"),
    ],
)
def test_fault_control_breaches_watcher_query(
    stack, state_file, command, fraction, watcher
):
    query = catalog_query(watcher)
    threshold = 0.05 if watcher == "rate_limit_breaches" else 0.01

    run_control(state_file, command, fraction)
    try:
        wait_for(lambda: highest_value(stack, query) > threshold, 20)
        after = highest_value(stack, query)
    finally:
        run_control(state_file, "reset")

    assert after > threshold


def test_failed_logins_count_for_attacker(stack, state_file):
    query = f'auth_failures_total{{source_ip="{ATTACKER_IP}"}}'

    state = run_control(state_file, "failed-logins", "30", "--ip", ATTACKER_IP)
    try:
        wait_for(lambda: highest_value(stack, query) > 0, 20)
        failures = highest_value(stack, query)
        wait_for(lambda: highest_value(stack, "anomaly_score") > 0.9, 30)
        anomaly = highest_value(stack, "anomaly_score")
    finally:
        run_control(state_file, "reset")

    assert state["attacker_ip"] == ATTACKER_IP
    assert failures > 0
    assert anomaly > 0.9
