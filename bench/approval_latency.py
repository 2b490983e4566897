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

import os
import sys
import time
from datetime import datetime

from bench import worker_latency
from bench.worker_latency import WARM_UP_RUNS, wait_for_run
from devstack.processes import ProcessGroup

SECTION = "Approval to step start"
INTRO = f"""\
From a person's approval to the start of the step it approved,
through a real Celery worker and Redis broker. Each run opens an
incident whose only step (a no-op) always waits for approval; the
worker creates the approval request, and the benchmark approves it
with `approvals.decide`, the call behind the approval page's button.
The first {WARM_UP_RUNS} decisions warm the worker up and are not counted."""


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


def render(measured: tuple[list[float], list[float]], facts: dict) -> str:
    to_start, decide_call = measured
    rows = [
        ("decision to step start", to_start),
        ("the decision call (approvals.decide)", decide_call),
    ]
    return worker_latency.table("decisions", rows, "decision to step start", facts)


def main(argv: list[str] | None = None) -> int:
    return worker_latency.run(
        argv,
        __doc__.splitlines()[0],
        "bench.approval_latency",
        SECTION,
        INTRO,
        measure,
        render,
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")
    sys.exit(main())
