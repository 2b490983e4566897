"""A worker killed in the middle of a step: the redelivered task must not act again."""

import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.utils import timezone

import tests.mitigations.worker_actions  # noqa: F401 - registers test_worker_ping
from devstack.processes import ProcessGroup
from devstack.receiver import HttpReceiver
from mitigations.choices import RunStatus
from mitigations.models import ActionRun, MitigationStep
from mitigations.services import chain, verification
from tests.processes import database_url
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = pytest.mark.django_db(transaction=True)

REPOSITORY = Path(__file__).resolve().parents[2]


def start_worker(group: ProcessGroup, name: str, redis_url: str, queue: str) -> None:
    group.start(
        name,
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bastion",
            "worker",
            "--concurrency=1",
            "--loglevel=info",
            "--include=tests.mitigations.worker_actions",
            f"--hostname={name}@%h",
            f"--queues={queue}",
        ],
        env={
            "BASTION_DATABASE_URL": database_url(),
            "BASTION_REDIS_URL": redis_url,
            "BASTION_BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
            "PYTHONPATH": str(REPOSITORY),
        },
    )


def wait_until(condition, timeout_seconds: float, message: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(message)


def test_killed_worker_never_runs_the_step_twice(tmp_path):
    redis_url = f"redis://127.0.0.1:6379/{10 + os.getpid() % 5}"
    # A queue of its own, so a worker of another test run on this Redis
    # database cannot take the redelivered task.
    queue = f"killed-worker-{os.getpid()}-{time.time_ns()}"
    # A Celery app of its own, so the project app's producer pool (already
    # bound to another broker by earlier tests) cannot send it elsewhere.
    sender = Celery(broker=redis_url)
    receiver = HttpReceiver(delay_seconds=20)
    watcher = make_watcher()
    MitigationStep.objects.create(
        watcher=watcher,
        position=1,
        action="test_worker_ping",
        parameters={"url": receiver.url},
        timeout_seconds=2,
    )
    incident = Incident.objects.create(
        watcher=watcher, fingerprint="killed", opened_at=timezone.now()
    )
    group = ProcessGroup(tmp_path / "logs")
    try:
        start_worker(group, "first", redis_url, queue)
        first_run = chain.start_attempt(incident.pk, 1)
        sender.send_task(
            "mitigations.run_mitigation_step", args=[first_run.pk], queue=queue
        )
        wait_until(lambda: receiver.requests, 60, "the step never reached the receiver")

        _, first = group.processes[0]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        start_worker(group, "second", redis_url, queue)
        second_log = tmp_path / "logs" / "second.log"
        wait_until(
            lambda: (
                "Task mitigations.run_mitigation_step["
                in second_log.read_text(errors="replace")
            ),
            60,
            "the killed worker's task was never delivered again",
        )
        time.sleep(2)
    finally:
        group.stop()
        receiver.stop()

    run = ActionRun.objects.get(incident=incident)
    assert len(receiver.requests) == 1
    assert run.status == RunStatus.RUNNING

    later = timezone.now() + timedelta(minutes=5)
    verification.reconcile_stale_runs(now=later)
    run.refresh_from_db()
    assert run.status == RunStatus.LOST
    assert len(receiver.requests) == 1
