"""The demo's monitored side: sandra-api under load, exporters and Prometheus.

The demo orchestrator adds Bastion (Celery and the web server) on top; the
tests start only this part.
"""

import logging
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import yaml

from demo.rules import recording_rule_groups
from devstack.exporters import (
    BLACKBOX_TLS_MODULE,
    start_blackbox_exporter,
    start_node_exporter,
    start_postgres_exporter,
)
from devstack.processes import ProcessGroup, free_port, port_is_open, wait_for_http
from devstack.prometheus import PrometheusServer, ScrapeTarget, start_prometheus

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent
POSTGRES_PORT = 5432
POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=disable"
# Labels that the catalog's container_* names carry in Kubernetes, given to
# sandra-api's own scrape target.
SANDRA_POD_LABELS = {
    "namespace": "demo",
    "pod": "sandra-api-0",
    "container": "sandra-api",
}


@dataclass
class MonitoringStack:
    """The running parts' addresses, and the ``group`` that stops them all."""

    group: ProcessGroup
    sandra_api_url: str
    tls_endpoint_url: str
    prometheus: PrometheusServer
    exporters: dict[str, str] = field(default_factory=dict)
    postgres_skipped: bool = False
    kubeconfig: Path | None = None


def start_python_service(
    group: ProcessGroup, name: str, module: str, arguments: list[str]
) -> None:
    """Start ``python -m module`` from this repository under ``group``."""
    command = [sys.executable, "-m", module, *arguments]
    group.start(name, command, env={"PYTHONPATH": str(REPOSITORY)})


def start_kube_standin(
    group: ProcessGroup, kubeconfig: Path, seed: Path, ready_delay_seconds: float
) -> Path:
    """Start the Kubernetes API stand-in; return its kubeconfig once written.

    The kubeconfig carries a bearer token made at each start, which the
    stand-in then requires of every client.
    """
    kubeconfig.unlink(missing_ok=True)
    arguments = [
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        "--seed",
        str(seed),
        "--ready-delay",
        str(ready_delay_seconds),
        # One argument with "=": a URL-safe token may start with "-", which
        # argparse would take for an option.
        f"--token={secrets.token_urlsafe(16)}",
        "--namespace",
        SANDRA_POD_LABELS["namespace"],
    ]
    start_python_service(group, "kube-standin", "devstack.kube", arguments)
    deadline = time.monotonic() + 30
    while not _kubeconfig_server(kubeconfig):
        group.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stand-in did not write {kubeconfig} within 30s")
        time.sleep(0.2)
    return kubeconfig


def _kubeconfig_server(path: Path) -> str | None:
    # The stand-in writes the file after it listens; a partly written file
    # parses to nothing or fails, and the caller tries again.
    try:
        config = yaml.safe_load(path.read_text())
        return str(config["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, IndexError):
        return None


def start_sandra_api(
    group: ProcessGroup,
    rate_per_second: float = 20.0,
    kubeconfig: Path | None = None,
) -> str:
    """Start sandra-api and its load generator, and return the service's URL.

    With ``kubeconfig``, sandra-api follows its Deployment's ready replicas
    in the namespace of its scrape labels.
    """
    port = free_port()
    arguments = ["--port", str(port)]
    if kubeconfig is not None:
        namespace = SANDRA_POD_LABELS["namespace"]
        arguments += ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    start_python_service(group, "sandra-api", "demo.sandra_api", arguments)
    url = f"http://127.0.0.1:{port}"
    _wait_or_report(group, f"{url}/metrics")
    start_python_service(
        group, "loadgen", "demo.loadgen", ["--url", url, "--rate", str(rate_per_second)]
    )
    return url


def start_tls_endpoint(group: ProcessGroup, workdir: Path) -> str:
    port = free_port()
    arguments = ["--port", str(port), "--cert-dir", str(workdir / "tls")]
    start_python_service(group, "tls-endpoint", "demo.tls_endpoint", arguments)
    _wait_for_port(group, port)
    return f"https://127.0.0.1:{port}/"


def start_monitoring(
    workdir: Path,
    group: ProcessGroup,
    scrape_interval: str = "2s",
    kubeconfig: Path | None = None,
) -> MonitoringStack:
    """Start every monitored part and Prometheus, each ready before it returns.

    The PostgreSQL exporter is skipped when nothing listens on
    127.0.0.1:5432, and ``postgres_skipped`` is then true. ``kubeconfig``
    names the Kubernetes API that sandra-api reads its replicas from.
    """
    tls_url = start_tls_endpoint(group, workdir)
    exporters = {"node": start_node_exporter(group)}
    postgres_skipped = not port_is_open(POSTGRES_PORT)
    if postgres_skipped:
        logger.warning("PostgreSQL is not reachable on port %s", POSTGRES_PORT)
    else:
        exporters["postgres"] = start_postgres_exporter(group, POSTGRES_DSN)
    exporters["blackbox"] = start_blackbox_exporter(group, workdir / "blackbox")
    sandra_url = start_sandra_api(group, kubeconfig=kubeconfig)
    prometheus = start_prometheus(
        workdir / "prometheus",
        scrape_targets(exporters, sandra_url, tls_url),
        rule_groups=recording_rule_groups(),
        scrape_interval=scrape_interval,
        evaluation_interval=scrape_interval,
        group=group,
    )
    return MonitoringStack(
        group, sandra_url, tls_url, prometheus, exporters, postgres_skipped, kubeconfig
    )


def scrape_targets(
    exporters: dict[str, str], sandra_url: str, tls_url: str
) -> list[ScrapeTarget]:
    """Return the scrape targets, each with an ``instance`` label that stays put.

    The ports are new at every start, so the default ``instance`` (host:port)
    would give every series a new label set, and Bastion a new incident, after
    each restart of the demo.
    """
    targets = [
        ScrapeTarget(
            job="sandra-api",
            address=sandra_url.removeprefix("http://"),
            labels={"instance": "sandra-api-0", **SANDRA_POD_LABELS},
        ),
        ScrapeTarget(
            job="node", address=exporters["node"], labels={"instance": "demo-host"}
        ),
        ScrapeTarget(
            job="blackbox-tls",
            address=exporters["blackbox"],
            metrics_path="/probe",
            params={"module": [BLACKBOX_TLS_MODULE], "target": [tls_url]},
            labels={"instance": "tls-endpoint"},
        ),
    ]
    if "postgres" in exporters:
        targets.append(
            ScrapeTarget(
                job="postgres",
                address=exporters["postgres"],
                labels={"instance": f"127.0.0.1:{POSTGRES_PORT}"},
            )
        )
    return targets


def _wait_or_report(group: ProcessGroup, url: str) -> None:
    try:
        wait_for_http(url, timeout_seconds=30)
    except TimeoutError:
        group.check_alive()
        raise


def _wait_for_port(group: ProcessGroup, port: int, timeout_seconds: float = 30) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not port_is_open(port):
        group.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"nothing listens on 127.0.0.1:{port} after {timeout_seconds}s"
            )
        time.sleep(0.2)


def catalog_queries(catalog: Path) -> dict[str, str]:
    """Return each watcher's query from a catalog file, keyed by watcher name."""
    groups = yaml.safe_load(catalog.read_text())
    return {
        name: str(watcher["query"])
        for watchers in groups.values()
        for name, watcher in watchers.items()
    }


def metric_names(query: str) -> set[str]:
    """Return the metric names that a PromQL query selects."""
    names: set[str] = set()
    pending = [promql_parser.parse(query)]
    while pending:
        node = pending.pop()
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            continue
        for attribute in ("expr", "lhs", "rhs", "vector_selector"):
            child = getattr(node, attribute, None)
            if child is not None:
                pending.append(child)
        pending.extend(getattr(node, "args", None) or [])
    return names


def metrics_without_value(prometheus: PrometheusServer, names: set[str]) -> list[str]:
    """Return the names, sorted, for which Prometheus has no current sample."""
    return sorted(name for name in names if not prometheus.query(name))
