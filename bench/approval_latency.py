"""Latency from an approval to the approved step's start, through a real Celery worker.

Each run opens an incident whose only step always waits for approval. The
worker moves the step to waiting and creates its approval request, as in
production. The benchmark then approves it through the same service call
that the approval page makes, and waits for the worker to start the step.
Two figures come out, as p50 and p95:

- decision to step start: from the call to ``approvals.decide`` to the
  run's ``started_at`` (the decision's commit, one task hop through Redis,
  the guardrails and the claim);
- the decision call itself: how long ``approvals.decide`` took to return.

Run: ``make bench-approval`` (or ``python -m bench.approval_latency``).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

from bench.environment import load_average, machine_facts, prepare_django
from bench.mitigation_latency import (
    REDIS_DATABASE,
    percentile,
    start_worker,
    wait_for_run,
    wait_until_ready,
)
from bench.pages import write_section
from devstack.processes import ProcessGroup

GOAL_SECONDS = 0.100
WARM_UP_RUNS = 5
SECTION = "Approval to step start"


def wait_for_approval(incident_id: int, group: ProcessGroup, timeout: float = 30.0):
    """Return the pending approval the worker created for the incident's step."""
    from mitigations.models import Approval, Decision

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        approval = Approval.objects.filter(
            run__incident_id=incident_id, decision=Decision.PENDING
        ).first()
        if approval is not None:
            return approval
        time.sleep(0.002)
    group.check_alive()
    raise TimeoutError(f"incident {incident_id}: no approval request after {timeout}s")


def measure(runs: int, group: ProcessGroup) -> tuple[list[float], list[float]]:
    from django.contrib.auth.models import Permission, User
    from django.utils import timezone

    from mitigations.models import MitigationStep
    from mitigations.services import approvals
    from watchers.models import Incident, Watcher
    from watchers.signals import incident_opened

    Incident.objects.all().delete()
    Watcher.objects.all().delete()
    approver, _ = User.objects.get_or_create(username="bench-approver")
    approver.user_permissions.add(
        Permission.objects.get(
            content_type__app_label="mitigations", codename="decide_approval"
        )
    )
    watcher = Watcher.objects.create(
        name="bench-approval",
        query="vector(1)",
        threshold=0,
        window_seconds=0,
        interval_seconds=60,
    )
    MitigationStep.objects.create(
        watcher=watcher, position=1, action="bench_noop", approval="always"
    )
    to_start, decide_call = [], []
    for index in range(runs + WARM_UP_RUNS):
        incident = Incident.objects.create(
            watcher=watcher, fingerprint=f"bench-{index}", opened_at=timezone.now()
        )
        incident_opened.send(sender=Incident, incident_id=incident.pk)
        approval = wait_for_approval(incident.pk, group)

        decided = time.time()
        approvals.decide(approval.pk, approver, approve=True)
        returned = time.time()
        run = wait_for_run(incident.pk, group)

        if run["status"] != "succeeded":
            raise RuntimeError(f"the approved no-op step ended {run['status']}")
        if index < WARM_UP_RUNS:
            continue
        started: datetime = run["started_at"]
        to_start.append(started.timestamp() - decided)
        decide_call.append(returned - decided)
    return to_start, decide_call


def render(to_start: list[float], decide_call: list[float], facts: dict) -> str:
    def row(name: str, values: list[float]) -> str:
        return (
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.1f} ms "
            f"| {percentile(values, 0.95) * 1000:.1f} ms |"
        )

    p95 = percentile(to_start, 0.95)
    verdict = "meets" if p95 < GOAL_SECONDS else "misses"
    return "\n".join(
        [
            "| interval | decisions | p50 | p95 |",
            "|---|---|---|---|",
            row("decision to step start", to_start),
            row("the decision call (approvals.decide)", decide_call),
            "",
            f"The p95 from decision to step start, {p95 * 1000:.1f} ms, {verdict} "
            f"the goal of {GOAL_SECONDS * 1000:.0f} ms. One Celery worker "
            "(prefork, concurrency 2) and the benchmark shared the machine with "
            f"Redis and PostgreSQL; load average {facts['load']}.",
        ]
    )


def page_section(table: str, facts: dict, runs: int) -> str:
    machine = ", ".join(
        f"{name} {facts[name]}" for name in ("CPU", "cores", "memory", "PostgreSQL")
    )
    return "\n".join(
        [
            f"## {SECTION}",
            "",
            "From a person's approval to the start of the step it approved,",
            "through a real Celery worker and Redis broker. Each run opens an",
            "incident whose only step (a no-op) always waits for approval; the",
            "worker creates the approval request, and the benchmark approves it",
            "with `approvals.decide`, the call behind the approval page's button.",
            f"The first {WARM_UP_RUNS} decisions warm the worker up and are not",
            "counted.",
            "",
            "Command (the figures come from one run of it):",
            "",
            f"    python -m bench.approval_latency --runs {runs} "
            "--write docs/benchmarks.md",
            "",
            table,
            "",
            f"Machine: {machine}; measured {facts['date']}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="measured decisions")
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
        to_start, decide_call = measure(args.runs, group)
    finally:
        group.stop()
    facts = machine_facts("/usr/bin/prometheus")
    facts["load"] = load_average()
    table = render(to_start, decide_call, facts)
    print(table)
    if args.write is not None:
        write_section(args.write, SECTION, page_section(table, facts, args.runs))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    sys.exit(main())
