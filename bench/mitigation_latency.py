"""How fast a firing incident reaches its first step, through a real Celery worker.

Each run opens an incident, sends the same ``incident_opened`` signal that
evaluation sends once its transaction commits, and waits for the worker to
start and finish a no-op step. Two figures come out, as p50 and p95:

- firing to step start: the signal's time to the run's ``started_at``
  (the attempt's rows written where the signal is received, as in the
  evaluation worker, then one task hop through Redis to run the step);
- step start to finish: ``started_at`` to ``finished_at`` of the no-op, the
  chain's own bookkeeping (guardrails, claim, recording).

Run: ``make bench-mitigation`` (or ``python -m bench.mitigation_latency``).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from tempfile import mkdtemp

from bench.environment import load_average, machine_facts, prepare_django
from bench.pages import write_section
from devstack.processes import ProcessGroup

REPOSITORY = Path(__file__).resolve().parents[1]
REDIS_DATABASE = 12
GOAL_SECONDS = 0.100


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
    group.start(
        "worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bastion",
            "worker",
            "--concurrency=2",
            "--loglevel=warning",
            "--include=bench.noop",
            "--purge",
        ],
        env=env,
    )
    return group


def wait_until_ready(group: ProcessGroup, timeout: float = 60.0) -> None:
    """Wait for the worker to answer a ping, so no task is sent before it listens."""
    from bastion.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group.check_alive()
        if app.control.ping(timeout=0.5):
            return
    raise TimeoutError(f"the Celery worker did not answer a ping in {timeout}s")


def wait_for_run(incident_id: int, group: ProcessGroup, timeout: float = 30.0):
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


def measure(runs: int, group: ProcessGroup) -> tuple[list[float], list[float]]:
    from django.utils import timezone

    from mitigations.models import MitigationStep
    from watchers.models import Incident, Watcher
    from watchers.signals import incident_opened

    Incident.objects.all().delete()
    Watcher.objects.all().delete()
    watcher = Watcher.objects.create(
        name="bench-mitigation",
        query="vector(1)",
        threshold=0,
        window_seconds=0,
        interval_seconds=60,
    )
    MitigationStep.objects.create(
        watcher=watcher, position=1, action="bench_noop", approval="never"
    )
    to_start, to_finish = [], []
    for index in range(runs + 5):
        incident = Incident.objects.create(
            watcher=watcher,
            fingerprint=f"bench-{index}",
            opened_at=timezone.now(),
        )
        sent = time.time()
        incident_opened.send(sender=Incident, incident_id=incident.pk)
        run = wait_for_run(incident.pk, group)
        if run["status"] != "succeeded":
            raise RuntimeError(f"the no-op step ended {run['status']}")
        if index < 5:
            continue  # warm-up: the worker's first tasks import and connect
        started: datetime = run["started_at"]
        finished: datetime = run["finished_at"]
        to_start.append(started.timestamp() - sent)
        to_finish.append((finished - started).total_seconds())
    return to_start, to_finish


def render(to_start: list[float], to_finish: list[float], facts: dict) -> str:
    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.1f} ms "
            f"| {percentile(values, 0.95) * 1000:.1f} ms |"
        )

    p95 = percentile(to_start, 0.95)
    verdict = "meets" if p95 < GOAL_SECONDS else "misses"
    return "\n".join(
        [
            "| interval | runs | p50 | p95 |",
            "|---|---|---|---|",
            row("firing to step start", to_start),
            row("step start to finish (no-op)", to_finish),
            "",
            f"The p95 from firing to step start, {p95 * 1000:.1f} ms, {verdict} the "
            f"goal of {GOAL_SECONDS * 1000:.0f} ms. One Celery worker (prefork, "
            "concurrency 2) and the benchmark shared the machine with Redis and "
            f"PostgreSQL; load average {facts['load']}.",
        ]
    )


SECTION = "Firing to first step"


def page_section(table: str, facts: dict, runs: int) -> str:
    machine = ", ".join(
        f"{name} {facts[name]}" for name in ("CPU", "cores", "memory", "PostgreSQL")
    )
    return "\n".join(
        [
            f"## {SECTION}",
            "",
            "From an incident's firing transition to the start of its first step,",
            "and from a no-op step's start to its recorded finish, through a real",
            "Celery worker and Redis broker. Each run opens an incident and sends the",
            "signal that evaluation sends once its transaction commits; the worker",
            "claims and runs the step. The first 5 runs warm the worker up and are",
            "not counted.",
            "",
            "Command (the figures come from one run of it):",
            "",
            f"    python -m bench.mitigation_latency --runs {runs} "
            "--write docs/benchmarks.md",
            "",
            table,
            "",
            f"Machine: {machine}; measured {facts['date']}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        to_start, to_finish = measure(args.runs, group)
    finally:
        group.stop()
    facts = machine_facts("/usr/bin/prometheus")
    facts["load"] = load_average()
    table = render(to_start, to_finish, facts)
    print(table)
    if args.write is not None:
        write_section(args.write, SECTION, page_section(table, facts, args.runs))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    sys.exit(main())
