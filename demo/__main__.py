"""Start the whole demo: a monitored service, exporters, Prometheus and Bastion.

Run ``./scripts/demo`` (which sets up .venv and calls ``python -m demo``).
Bastion's mitigations act on a Kubernetes API stand-in, a Redis database of
the demo's own and sandra-api's admin endpoints. Its escalations go to a
local Slack-compatible receiver.
Every process listens on 127.0.0.1 and logs to var/demo/logs/<name>.log.
Ctrl-C stops them all. ``--check`` starts everything, checks that every
metric the catalog queries has a value in Prometheus, and stops.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from demo import DEMO_VAR_DIR, REPOSITORY, STATE_FILE
from demo.control import write_state
from demo.scenarios import SCENARIOS, run_scenarios
from devstack.exporters import missing_packages
from devstack.monitoring import (
    MonitoringStack,
    catalog_queries,
    metric_names,
    metrics_without_value,
    start_kube_standin,
    start_monitoring,
    start_python_service,
)
from devstack.processes import ProcessGroup, free_port, port_is_open, wait_for_http

CATALOG = REPOSITORY / "examples" / "watchers.yaml"
OVERLAY = REPOSITORY / "demo" / "overrides.yaml"
ESCALATIONS = REPOSITORY / "examples" / "escalation.yaml"
KUBE_SEED = REPOSITORY / "demo" / "kube-seed.yaml"
ACTION_DEFAULTS_TEMPLATE = REPOSITORY / "demo" / "action-defaults.yaml"
# About as long as a real pod takes to pass its readiness probe, so the
# scale step's wait for ready replicas shows.
KUBE_READY_DELAY_SECONDS = 2.0
# The Redis database that contains the application's rate limits and block
# list. Bastion's own broker is database 9.
TARGET_REDIS_DB = 8
# The application's cache, which demo/action-defaults.yaml gives clear_caches.
CACHE_REDIS_DB = 7
# The only program that command steps may start: it does nothing.
COMMAND_ALLOWLIST = "/bin/true"
# Path on the Slack receiver of each receiver that examples/escalation.yaml
# routes to.
RECEIVER_PATHS = {
    "SMS_CEO": "/sms",
    "SLACK_EXECUTIVE": "/hooks/executive",
    "SLACK_TECH": "/hooks/tech",
    "SLACK_TEAM": "/hooks/team",
    "SLACK_SECURITY_TEAM": "/hooks/security-team",
}
WINDOW_SCALE = 20
MACHINE_REDIS_PORT = 6379
# A database of its own on the machine's Redis, so no other Celery worker
# that uses database 0 takes the demo's tasks.
MACHINE_REDIS_URL = "redis://127.0.0.1:6379/9"
PREFERRED_WEB_PORT = 8000
READY_TIMEOUT_SECONDS = 60
CHECK_TIMEOUT_SECONDS = 60
ADMIN_USERNAME = "admin"

_ADMIN_SCRIPT = """
import os
from django.contrib.auth import get_user_model
user, _ = get_user_model().objects.get_or_create(username=os.environ["DEMO_ADMIN_USER"])
user.is_staff = True
user.is_superuser = True
user.set_password(os.environ["DEMO_ADMIN_PASSWORD"])
user.save()
"""


class Stopped(Exception):
    """Raised in the main thread by SIGINT or SIGTERM."""


class DemoFailed(RuntimeError):
    pass


def install_packages() -> None:
    """Install the Debian packages the demo runs, or exit printing the command."""
    missing = missing_packages()
    if not port_is_open(MACHINE_REDIS_PORT) and shutil.which("redis-server") is None:
        missing.append("redis-server")
    if not missing:
        return
    command = ["apt-get", "install", "-y", *missing]
    if os.geteuid() != 0:
        print(f"Missing Debian packages: {' '.join(missing)}. As root run:")
        print(f"  apt-get update && {' '.join(command)}")
        sys.exit(1)
    print(f"Installing {' '.join(missing)} with apt-get")
    subprocess.run(["apt-get", "update"], check=True)
    subprocess.run(
        command, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    )


def redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def start_redis(group: ProcessGroup) -> str:
    """Start a private redis-server, or return the machine's Redis URL.

    A private server comes first: two demos that share the machine's Redis
    share its database 9, so each Celery worker takes the other's tasks.
    """
    if shutil.which("redis-server") is not None:
        return start_private_redis(group)
    if port_is_open(MACHINE_REDIS_PORT) and redis_answers(MACHINE_REDIS_URL):
        return MACHINE_REDIS_URL
    raise DemoFailed(
        "no Redis responds to PING on 127.0.0.1:6379 and redis-server is not "
        "installed: as root run apt-get install -y redis-server"
    )


def start_private_redis(group: ProcessGroup) -> str:
    """Start redis-server on a free port, without persistence, and return its URL."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port)]
    group.start("redis", [*command, "--save", "", "--appendonly", "no"])
    # Database 9, as on the machine's Redis, so the target databases 7 and 8
    # are the same numbers whichever server runs.
    url = f"redis://127.0.0.1:{port}/9"
    wait_until(group, lambda: redis_answers(url), f"redis-server on port {port}")
    return url


def wait_until(
    group: ProcessGroup, ready: Callable[[], bool], description: str
) -> None:
    """Poll ``ready()`` until true, failing early when a child has exited."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready():
        group.check_alive()
        if time.monotonic() > deadline:
            raise DemoFailed(
                f"{description} was not ready after {READY_TIMEOUT_SECONDS}s"
            )
        time.sleep(0.3)


def log_contains(group: ProcessGroup, name: str, text: str) -> bool:
    log = group.log_dir / f"{name}.log"
    return log.exists() and text in log.read_text(errors="replace")


@dataclass
class MitigationTargets:
    """The systems that Bastion's actions and escalations reach in this run."""

    kubeconfig: Path
    target_redis_url: str
    action_defaults: Path
    receiver_url: str


def database_url(redis_url: str, db: int) -> str:
    """Return ``redis_url`` with its database number replaced by ``db``."""
    base, _, _ = redis_url.rpartition("/")
    return f"{base}/{db}"


# sandra-api's rate limit in requests per second, which tighten_rate_limits
# halves for an hour. The key must exist before the step runs.
RATE_LIMIT_KEY = "ratelimit:sandra-api"
RATE_LIMIT = 100


def prepare_target_databases(redis_url: str) -> None:
    """Empty the demo's target databases and write sandra-api's rate limit.

    Emptying them means no block from the last run remains.
    """
    for db in (CACHE_REDIS_DB, TARGET_REDIS_DB):
        client = redis.Redis.from_url(database_url(redis_url, db), socket_timeout=5)
        with client:
            client.flushdb()
            if db == TARGET_REDIS_DB:
                client.set(RATE_LIMIT_KEY, RATE_LIMIT)


def write_action_defaults(sandra_api_url: str, prometheus_url: str) -> Path:
    """Write demo/action-defaults.yaml with this run's URLs filled in."""
    template = string.Template(ACTION_DEFAULTS_TEMPLATE.read_text())
    text = template.substitute(
        SANDRA_API_URL=sandra_api_url, PROMETHEUS_URL=prometheus_url
    )
    path = DEMO_VAR_DIR / "action-defaults.yaml"
    path.write_text(text)
    return path


def start_slack_receiver(group: ProcessGroup) -> str:
    port = free_port()
    start_python_service(
        group, "slack-receiver", "demo.slack_receiver", ["--port", str(port)]
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/messages.json", timeout_seconds=30)
    return url


def mitigation_environment(targets: MitigationTargets) -> dict[str, str]:
    environment = {
        "BASTION_KUBECONFIG": str(targets.kubeconfig),
        "BASTION_TARGET_REDIS_URL": targets.target_redis_url,
        "BASTION_ACTION_DEFAULTS_FILE": str(targets.action_defaults),
        "BASTION_COMMAND_ALLOWLIST": COMMAND_ALLOWLIST,
        # The guardrail's 5 min and the pause between attempts, scaled down
        # like the windows, so a breach repeated a minute later acts again.
        "BASTION_ACTION_COOLDOWN_SECONDS": str(300 // WINDOW_SCALE),
        "BASTION_ATTEMPT_RETRY_SECONDS": str(60 / WINDOW_SCALE),
    }
    for name, path in RECEIVER_PATHS.items():
        environment[f"BASTION_RECEIVER_{name}_URL"] = targets.receiver_url + path
    return environment


def django_environment(
    redis_url: str, prometheus_url: str, web_url: str
) -> dict[str, str]:
    return {
        "BASTION_VAR_DIR": str(DEMO_VAR_DIR),
        # Empty means unset: the demo always uses its own SQLite file.
        "BASTION_DATABASE_URL": "",
        "BASTION_REDIS_URL": redis_url,
        "BASTION_BROKER_URL": redis_url,
        "BASTION_PROMETHEUS_URL": prometheus_url,
        "BASTION_DISPATCH_EVERY_SECONDS": "1",
        "BASTION_BASE_URL": web_url,
        "BASTION_DEBUG": "true",
        "PYTHONPATH": str(REPOSITORY),
    }


def manage(
    environment: dict[str, str], log_dir: Path, *arguments: str, show: bool = False
) -> None:
    """Run ``manage.py`` with the demo's settings; on failure raise with its output."""
    command = [sys.executable, str(REPOSITORY / "manage.py"), *arguments]
    result = subprocess.run(
        command,
        env={**os.environ, **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    (log_dir / f"manage-{arguments[0]}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise DemoFailed(
            f"manage.py {' '.join(arguments)} failed with status "
            f"{result.returncode}:\n{result.stdout}{result.stderr}"
        )
    if show:
        print(result.stdout.rstrip())


def prepare_bastion(environment: dict[str, str], log_dir: Path) -> str:
    """Migrate, set the admin password and import the catalog. Return the password."""
    manage(environment, log_dir, "migrate", "--noinput")
    password = secrets.token_urlsafe(12)
    admin_environment = {
        **environment,
        "DEMO_ADMIN_USER": ADMIN_USERNAME,
        "DEMO_ADMIN_PASSWORD": password,
    }
    manage(admin_environment, log_dir, "shell", "-c", _ADMIN_SCRIPT)
    print(
        f"Importing {CATALOG.relative_to(REPOSITORY)} with "
        f"{OVERLAY.relative_to(REPOSITORY)} on top: sandra_api_latency's "
        "range is 20s instead of 10m, so recovery shows within a minute, and "
        "ssl_certificate_expiry fires below its threshold."
    )
    manage(
        environment,
        log_dir,
        "import_watchers",
        str(CATALOG),
        "--overlay",
        str(OVERLAY),
        "--window-scale",
        str(WINDOW_SCALE),
        show=True,
    )
    manage(environment, log_dir, "import_escalations", str(ESCALATIONS), show=True)
    manage(environment, log_dir, "collectstatic", "--noinput")
    return password


def start_celery(group: ProcessGroup, environment: dict[str, str]) -> None:
    celery = [sys.executable, "-m", "celery", "-A", "bastion"]
    worker = [*celery, "worker", "--loglevel=info", "--concurrency=2"]
    group.start("celery-worker", worker, env=environment)
    schedule = DEMO_VAR_DIR / "celerybeat-schedule"
    beat = [*celery, "beat", "--loglevel=info", f"--schedule={schedule}"]
    group.start("celery-beat", beat, env=environment)
    wait_until(
        group, lambda: log_contains(group, "celery-worker", " ready."), "celery worker"
    )
    wait_until(
        group,
        lambda: log_contains(group, "celery-beat", "beat: Starting"),
        "celery beat",
    )


def start_web(group: ProcessGroup, environment: dict[str, str], port: int) -> None:
    command = [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "bastion.asgi:application",
    ]
    group.start("web", command, env=environment)
    wait_until(group, lambda: port_is_open(port), f"the web server on port {port}")
    wait_for_http(f"http://127.0.0.1:{port}/login/", timeout_seconds=30)


def choose_web_port() -> int:
    return PREFERRED_WEB_PORT if not port_is_open(PREFERRED_WEB_PORT) else free_port()


def check_catalog_metrics(stack: MonitoringStack) -> list[str]:
    """Wait until every catalog metric has a value; return the names still missing."""
    names = set().union(*map(metric_names, catalog_queries(CATALOG).values()))
    deadline = time.monotonic() + CHECK_TIMEOUT_SECONDS
    missing = metrics_without_value(stack.prometheus, names)
    while missing and time.monotonic() < deadline:
        stack.group.check_alive()
        time.sleep(1)
        missing = metrics_without_value(stack.prometheus, names)
    for name in sorted(names):
        print(f"  {'missing' if name in missing else 'ok':8} {name}")
    return missing


def print_summary(
    stack: MonitoringStack,
    web_url: str | None,
    password: str,
    targets: MitigationTargets,
) -> None:
    lines = ["", "Bastion demo is running."]
    if web_url:
        lines += [
            f"  Dashboard:   {web_url}/  (sign in as {ADMIN_USERNAME} / {password})",
            f"  Admin:       {web_url}/admin/",
            f"  Approvals:   {web_url}/approvals/",
            f"  Audit log:   {web_url}/audit/",
        ]
    lines += [
        f"  Prometheus:  {stack.prometheus.url}",
        f"  sandra-api:  {stack.sandra_api_url}  (HTTP action calls: /admin/calls)",
        f"  Slack:       {targets.receiver_url}/  (escalations and team alerts)",
        f"  Kubernetes:  stand-in, kubeconfig {targets.kubeconfig}",
        f"  Redis:       {targets.target_redis_url}  (rate limits and IP blocks; "
        f"caches in database {CACHE_REDIS_DB})",
        f"  Logs:        {stack.group.log_dir}/",
        "",
        "Trigger a breach (in another shell, from this folder):",
        "  .venv/bin/python -m demo.control latency 0.85   (scaling fixes it)",
        "  .venv/bin/python -m demo.control latency 2.5    (scaling is not enough)",
        "  .venv/bin/python -m demo.control errors 0.2",
        "  .venv/bin/python -m demo.control throttle 0.3",
        "  .venv/bin/python -m demo.control failed-logins 30 --ip 203.0.113.7",
        "  .venv/bin/python -m demo.control reset",
        "  .venv/bin/python -m demo.control status   (faults and ready replicas)",
        "",
        f"Watcher windows are scaled down by {WINDOW_SCALE} (10m holds for 30s), "
        "so a breach opens an incident within about a minute.",
    ]
    if stack.postgres_skipped:
        lines.append(
            "PostgreSQL is not reachable on 127.0.0.1:5432, so its exporter is "
            "skipped and the database_connections watcher has no data."
        )
    lines.append("Press Ctrl-C to stop everything.")
    print("\n".join(lines), flush=True)


def run(arguments: argparse.Namespace, group: ProcessGroup) -> int:
    log_dir = group.log_dir
    redis_url = start_redis(group)
    print("Starting the Kubernetes stand-in and the Slack receiver...", flush=True)
    kubeconfig = start_kube_standin(
        group, DEMO_VAR_DIR / "kubeconfig", KUBE_SEED, KUBE_READY_DELAY_SECONDS
    )
    receiver_url = start_slack_receiver(group)
    print("Starting sandra-api, the exporters and Prometheus...", flush=True)
    stack = start_monitoring(DEMO_VAR_DIR, group, kubeconfig=kubeconfig)
    targets = MitigationTargets(
        kubeconfig=kubeconfig,
        target_redis_url=database_url(redis_url, TARGET_REDIS_DB),
        action_defaults=write_action_defaults(
            stack.sandra_api_url, stack.prometheus.url
        ),
        receiver_url=receiver_url,
    )
    prepare_target_databases(redis_url)
    web_port = choose_web_port()
    web_url = f"http://127.0.0.1:{web_port}"
    environment = {
        **django_environment(redis_url, stack.prometheus.url, web_url),
        **mitigation_environment(targets),
    }
    write_state(
        STATE_FILE,
        {
            "sandra_api_url": stack.sandra_api_url,
            "prometheus_url": stack.prometheus.url,
            "slack_receiver_url": receiver_url,
            "target_redis_url": targets.target_redis_url,
        },
    )

    print("Preparing Bastion (migrate, admin user, catalog import)...", flush=True)
    password = prepare_bastion(environment, log_dir)
    print("Starting the Celery worker and beat...", flush=True)
    start_celery(group, environment)
    if not arguments.no_web:
        start_web(group, environment, web_port)
    write_state(
        STATE_FILE,
        {
            "sandra_api_url": stack.sandra_api_url,
            "prometheus_url": stack.prometheus.url,
            "web_url": None if arguments.no_web else web_url,
            "slack_receiver_url": receiver_url,
            "target_redis_url": targets.target_redis_url,
        },
    )

    if arguments.check:
        print("Checking that every catalog metric has a value in Prometheus:")
        return 1 if check_catalog_metrics(stack) else 0
    if arguments.scenario:
        return run_scenarios(
            arguments.scenario, environment, stack.sandra_api_url, receiver_url, group
        )
    print_summary(stack, None if arguments.no_web else web_url, password, targets)
    while True:
        group.check_alive()
        time.sleep(1)


def running_demo_url() -> str | None:
    """Return the sandra-api URL of a demo that is still running, if any."""
    try:
        url = str(json.loads(STATE_FILE.read_text())["sandra_api_url"])
    except (OSError, ValueError, KeyError):
        return None
    try:
        httpx.get(f"{url}/control", timeout=1).raise_for_status()
    except httpx.HTTPError:
        return None
    return url


def reset_var_dir() -> Path:
    """Clear the last run's logs and Prometheus data; keep the database."""
    log_dir = DEMO_VAR_DIR / "logs"
    for stale in (log_dir, DEMO_VAR_DIR / "prometheus" / "data"):
        shutil.rmtree(stale, ignore_errors=True)
    STATE_FILE.unlink(missing_ok=True)
    return log_dir


def raise_stopped(signum: int, frame: object) -> None:
    raise Stopped(signal.Signals(signum).name)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./scripts/demo", description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="start everything, check every catalog metric has a value, then stop",
    )
    parser.add_argument(
        "--no-web", action="store_true", help="do not start the web server"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="start everything, run this scripted breach and check Bastion's "
        "response, then stop (repeat the option to run several)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    install_packages()
    os.chdir(REPOSITORY)
    running = running_demo_url()
    if running:
        # Both would share var/demo, and this one would delete the other's logs.
        print(
            f"A demo is already running (sandra-api at {running}, see {STATE_FILE}): "
            "stop it with Ctrl-C first.",
            file=sys.stderr,
        )
        return 1
    group = ProcessGroup(reset_var_dir())
    signal.signal(signal.SIGINT, raise_stopped)
    signal.signal(signal.SIGTERM, raise_stopped)
    try:
        return run(arguments, group)
    except Stopped as stop:
        print(f"\n{stop}: stopping the demo...", flush=True)
        return 0
    except (DemoFailed, RuntimeError, TimeoutError) as error:
        print(f"\nThe demo failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C while stopping should not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        group.stop()
        STATE_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
