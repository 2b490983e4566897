"""A real Prometheus server (Debian's package) with a generated configuration."""

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from devstack.processes import ProcessGroup, free_port, wait_for_http

PROMETHEUS_BINARY = "/usr/bin/prometheus"
INSTALL_HINT = (
    "apt-get update && apt-get install -y prometheus prometheus-node-exporter "
    "prometheus-postgres-exporter prometheus-blackbox-exporter"
)


def find_prometheus() -> str:
    """Return the path of the prometheus binary, or raise naming the install."""
    path = shutil.which("prometheus") or (
        PROMETHEUS_BINARY if Path(PROMETHEUS_BINARY).exists() else None
    )
    if path is None:
        raise FileNotFoundError(
            f"prometheus is not installed; as root run: {INSTALL_HINT}"
        )
    return path


@dataclass
class ScrapeTarget:
    job: str
    address: str
    metrics_path: str = "/metrics"
    params: dict[str, list[str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PrometheusServer:
    """A running Prometheus; ``url`` is its base address on loopback."""

    url: str
    port: int
    workdir: Path
    group: ProcessGroup

    def reload(self) -> None:
        httpx.post(f"{self.url}/-/reload", timeout=10).raise_for_status()

    def query(self, expression: str, at: float | None = None) -> list[dict]:
        params = {"query": expression}
        if at is not None:
            params["time"] = str(at)
        response = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=30)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def stop(self) -> None:
        self.group.stop()


def write_config(
    workdir: Path,
    targets: list[ScrapeTarget],
    rule_groups: list[dict] | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> Path:
    """Write prometheus.yml (and rules.yml when there are rule groups)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict = {
        "global": {
            # Without scrape_timeout, Prometheus uses the interval when it is
            # shorter than its 10s default.
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "scrape_configs": [],
    }
    for target in targets:
        job: dict = {
            "job_name": target.job,
            "metrics_path": target.metrics_path,
            "static_configs": [{"targets": [target.address], "labels": target.labels}],
        }
        if target.params:
            job["params"] = target.params
        config["scrape_configs"].append(job)
    if rule_groups:
        rules_path = workdir / "rules.yml"
        rules_path.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        config["rule_files"] = [str(rules_path)]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_prometheus(
    workdir: Path,
    targets: list[ScrapeTarget],
    rule_groups: list[dict] | None = None,
    port: int | None = None,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    extra_args: list[str] | None = None,
    group: ProcessGroup | None = None,
) -> PrometheusServer:
    """Start Prometheus on 127.0.0.1 and wait until it reports ready.

    With ``group``, Prometheus joins it (and logs to its folder) instead of
    getting a group of its own under ``workdir/logs``.
    """
    binary = find_prometheus()
    config = write_config(
        workdir, targets, rule_groups, scrape_interval, evaluation_interval
    )
    port = port or free_port()
    group = group or ProcessGroup(workdir / "logs")
    group.start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            *(extra_args or []),
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/-/ready", timeout_seconds=60)
    except TimeoutError:
        group.check_alive()
        group.stop()
        raise
    return PrometheusServer(url=url, port=port, workdir=workdir, group=group)
