"""Shared parts of the step-latency benchmarks: a Celery worker, percentiles, the page.

``bench.mitigation_latency`` and ``bench.approval_latency`` each measure how
soon a real Celery worker starts a step after an event. Both run the worker
started here, with a no-op action, on the benchmark database.
"""

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

from bench.environment import load_average, machine_facts, prepare_django
from bench.pages import write_section
from devstack.processes import ProcessGroup

REPOSITORY = Path(__file__).resolve().parents[1]
REDIS_DATABASE = 12
GOAL_SECONDS = 0.100
WARM_UP_RUNS = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


def start_worker(database_url: str) -> ProcessGroup:
    env = {
        "BASTION_DATABASE_URL": database_url,
        "BASTION_REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DATABASE}",
        "BASTION_AUTOMATION_BUDGET_PER_HOUR": "1000000",
        "BASTION_ACTION_COOLDOWN_SECONDS": "0",
        # Verification would query Prometheus during the measurement; push
        # it past the end of the run.
        "BASTION_VERIFY_EVERY_SECONDS": "3600",
        "BASTION_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPOSITORY),
    }
    group = ProcessGroup(Path(mkdtemp(prefix="bastion-bench-")) / "logs")
    command = [sys.executable, "-m", "celery", "-A", "bastion", "worker"]
    command += ["--concurrency=2", "--loglevel=warning", "--include=bench.noop"]
    group.start("worker", [*command, "--purge"], env=env)
    return group


def wait_until_ready(group: ProcessGroup, timeout: float = 60.0) -> None:
    """Wait until the worker replies to a ping, so no task is sent before it listens."""
    from bastion.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.check_alive()
        if app.control.ping(timeout=0.5):
            return
    raise TimeoutError(f"the Celery worker did not reply to a ping in {timeout}s")


def wait_for_run(incident_id: int, group: ProcessGroup, timeout: float = 30.0):
    """Return the incident's first finished run, as a dict of its times and status."""
    from mitigations.models import ActionRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = (
            ActionRun.objects.filter(incident_id=incident_id, finished_at__isnull=False)
            .values("started_at", "finished_at", "status")
            .first()
        )
        if run is not None:
            return run
        time.sleep(0.002)
    group.check_alive()
    raise TimeoutError(f"incident {incident_id}: no finished step after {timeout}s")


def table(
    count_name: str, rows: list[tuple[str, list[float]]], goal_name: str, facts: dict
) -> str:
    """Render p50 and p95 of each row, and whether the first row meets the goal."""
    lines = [f"| interval | {count_name} | p50 | p95 |", "|---|---|---|---|"]
    for name, values in rows:
        lines.append(
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.1f} ms "
            f"| {percentile(values, 0.95) * 1000:.1f} ms |"
        )
    p95 = percentile(rows[0][1], 0.95)
    verdict = "meets" if p95 < GOAL_SECONDS else "misses"
    lines += [
        "",
        f"The p95 from {goal_name}, {p95 * 1000:.1f} ms, {verdict} the goal of "
        f"{GOAL_SECONDS * 1000:.0f} ms. One Celery worker (prefork, concurrency 2) "
        "and the benchmark shared the machine with Redis and PostgreSQL; load "
        f"average {facts['load']}.",
    ]
    return "\n".join(lines)


def page_section(section: str, intro: str, command: str, body: str, facts: dict) -> str:
    machine = ", ".join(
        f"{name} {facts[name]}" for name in ("CPU", "cores", "memory", "PostgreSQL")
    )
    return "\n".join(
        [
            f"## {section}",
            "",
            intro,
            "",
            "Command (the figures come from one run of it):",
            "",
            f"    {command}",
            "",
            body,
            "",
            f"Machine: {machine}; measured {facts['date']}.",
        ]
    )


Measure = Callable[[int, ProcessGroup], Any]
Render = Callable[[Any, dict], str]


def run(
    argv: list[str] | None,
    description: str,
    module: str,
    section: str,
    intro: str,
    measure: Measure,
    render: Render,
) -> int:
    """Parse the common options, run ``measure`` against a worker, print and write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=200, help="measured runs")
    parser.add_argument(
        "--write",
        type=Path,
        metavar="PATH",
        help="also write the results into the page at PATH, e.g. docs/benchmarks.md",
    )
    args = parser.parse_args(argv)

    # The benchmark enqueues through the same broker database the worker reads.
    os.environ["BASTION_REDIS_URL"] = f"redis://127.0.0.1:6379/{REDIS_DATABASE}"
    database_url = prepare_django()
    group = start_worker(database_url)
    try:
        wait_until_ready(group)
        measured = measure(args.runs, group)
    finally:
        group.stop()
    facts = machine_facts("/usr/bin/prometheus")
    facts["load"] = load_average()
    body = render(measured, facts)
    print(body)
    if args.write is not None:
        command = f"python -m {module} --runs {args.runs} --write docs/benchmarks.md"
        write_section(
            args.write, section, page_section(section, intro, command, body, facts)
        )
        print(f"wrote {args.write}")
    return 0
