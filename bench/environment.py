"""The benchmark's own database, Django set-up, and facts about the machine."""

import os
import platform
import secrets
import subprocess
import threading
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bastion_bench"


def prepare_django() -> str:
    """Create the benchmark database if needed, set up Django and migrate it.

    Returns the database URL in use. DEBUG is switched off unless the caller
    set it, because with DEBUG on Django keeps every query in memory, which
    a production worker does not pay for.
    """
    url = os.environ.setdefault("BASTION_DATABASE_URL", DEFAULT_DATABASE_URL)
    os.environ.setdefault("BASTION_DEBUG", "false")
    os.environ.setdefault("BASTION_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    create_database(url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    return url


def create_database(url: str) -> None:
    """Create the database named in ``url`` on its server unless it exists."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise ValueError(
            f"BASTION_DATABASE_URL={url!r} names no database: add one, "
            "e.g. /bastion_bench"
        )
    if "bench" not in name:
        raise ValueError(
            f"BASTION_DATABASE_URL names the database {name!r}: the benchmark "
            "empties the watcher tables, so it runs only on a database whose "
            "name contains 'bench', e.g. " + DEFAULT_DATABASE_URL
        )
    server = parts._replace(path="/postgres").geturl()
    with psycopg.connect(server, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if found is None:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            )


def machine_facts(prometheus_binary: str) -> dict[str, str]:
    """Describe the CPU, memory and software versions the figures come from."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres_version = cursor.fetchone()[0]
    return {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "Python": platform.python_version(),
        "Prometheus": _prometheus_version(prometheus_binary),
        "PostgreSQL": postgres_version,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average() -> str:
    one_minute, five_minutes, fifteen_minutes = os.getloadavg()
    return f"{one_minute:.2f} / {five_minutes:.2f} / {fifteen_minutes:.2f}"


class LoadMonitor:
    """Samples the 1 min load average every few seconds and keeps the peak."""

    def __init__(self, every_seconds: float = 5.0) -> None:
        self.every_seconds = every_seconds
        self.peak = os.getloadavg()[0]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> "LoadMonitor":
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stopped.set()
        self._thread.join()
        return self.peak

    def _sample(self) -> None:
        while not self._stopped.wait(self.every_seconds):
            self.peak = max(self.peak, os.getloadavg()[0])


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_total() -> str:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                kibibytes = int(line.split()[1])
                return f"{kibibytes / 1024 / 1024:.1f} GiB"
    return "unknown"


def _prometheus_version(binary: str) -> str:
    completed = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    first_line = (completed.stdout or completed.stderr).splitlines()[:1]
    # "prometheus, version 2.42.0+ds (branch: ...)" -> "2.42.0+ds"
    words = first_line[0].split() if first_line else []
    return words[2] if len(words) > 2 else "unknown"
