"""Debian's Prometheus exporters started on loopback ports, one process each.

Each ``start_*`` function starts the exporter in a ``ProcessGroup``, waits
until its metrics page answers and returns the ``host:port`` to scrape.
"""

import shutil
from pathlib import Path

import yaml

from devstack.processes import ProcessGroup, free_port, wait_for_http
from devstack.prometheus import INSTALL_HINT

DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
}
BLACKBOX_TLS_MODULE = "https_insecure"


def missing_packages() -> list[str]:
    """Return the Debian packages whose binary is neither on PATH nor in /usr/bin."""
    return [
        package
        for package, binary in DEBIAN_PACKAGES.items()
        if find_binary(binary) is None
    ]


def find_binary(name: str) -> str | None:
    path = shutil.which(name)
    if path is None and Path("/usr/bin", name).exists():
        path = f"/usr/bin/{name}"
    return path


def _require_binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed; as root run: {INSTALL_HINT}")
    return path


def _start_and_wait(
    group: ProcessGroup,
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str] | None = None,
) -> str:
    group.start(name, command, env=env)
    address = f"127.0.0.1:{port}"
    try:
        wait_for_http(f"http://{address}/metrics", timeout_seconds=30)
    except TimeoutError:
        group.check_alive()
        raise
    return address


def start_node_exporter(group: ProcessGroup, port: int | None = None) -> str:
    """Start node_exporter with its default collectors."""
    port = port or free_port()
    command = [
        _require_binary("prometheus-node-exporter"),
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return _start_and_wait(group, "node-exporter", command, port)


def start_postgres_exporter(
    group: ProcessGroup, data_source_name: str, port: int | None = None
) -> str:
    """Start postgres_exporter reading the server that ``data_source_name`` names."""
    port = port or free_port()
    command = [
        _require_binary("prometheus-postgres-exporter"),
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    env = {"DATA_SOURCE_NAME": data_source_name}
    return _start_and_wait(group, "postgres-exporter", command, port, env=env)


def write_blackbox_config(workdir: Path) -> Path:
    """Write a blackbox config with one HTTPS module that skips verification.

    The demo's certificate is self-signed, so with verification on the TLS
    handshake fails and the probe reports no probe_ssl_earliest_cert_expiry.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "modules": {
            BLACKBOX_TLS_MODULE: {
                "prober": "http",
                "timeout": "5s",
                "http": {
                    "method": "GET",
                    "fail_if_not_ssl": True,
                    "tls_config": {"insecure_skip_verify": True},
                },
            }
        }
    }
    path = workdir / "blackbox.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_blackbox_exporter(
    group: ProcessGroup, workdir: Path, port: int | None = None
) -> str:
    """Start blackbox_exporter with the config from ``write_blackbox_config``."""
    port = port or free_port()
    command = [
        _require_binary("prometheus-blackbox-exporter"),
        f"--config.file={write_blackbox_config(workdir)}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return _start_and_wait(group, "blackbox-exporter", command, port)
