"""Latency from a firing incident to its first step, through a real Celery worker.

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

import os
import sys
import time
from datetime import datetime

from bench import worker_latency
from bench.worker_latency import WARM_UP_RUNS, wait_for_run
from devstack.processes import ProcessGroup

SECTION = "Firing to first step"
INTRO = f"""\
From an incident's firing transition to the start of its first step,
and from a no-op step's start to its recorded finish, through a real
Celery worker and Redis broker. Each run opens an incident and sends the
signal that evaluation sends once its transaction commits; the worker
claims and runs the step. The first {WARM_UP_RUNS} runs warm the worker up
and are not counted."""


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
    for index in range(runs + WARM_UP_RUNS):
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
        if index < WARM_UP_RUNS:
            continue  # the worker's first tasks import and connect
        started: datetime = run["started_at"]
        finished: datetime = run["finished_at"]
        to_start.append(started.timestamp() - sent)
        to_finish.append((finished - started).total_seconds())
    return to_start, to_finish


def render(measured: tuple[list[float], list[float]], facts: dict) -> str:
    to_start, to_finish = measured
    rows = [
        ("firing to step start", to_start),
        ("step start to finish (no-op)", to_finish),
    ]
    return worker_latency.table("runs", rows, "firing to step start", facts)


def main(argv: list[str] | None = None) -> int:
    return worker_latency.run(
        argv,
        __doc__.splitlines()[0],
        "bench.mitigation_latency",
        SECTION,
        INTRO,
        measure,
        render,
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    sys.exit(main())
