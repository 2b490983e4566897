"""The whole path from a breach to a person's approval, on real services.

A real Prometheus scrapes a gauge the test sets. A real Celery worker and
beat evaluate the watcher and run its scale step against the Kubernetes API
stand-in, which fails every scale. They escalate and post to a local
Slack-compatible receiver. The test then follows the message's link as a
person would: it signs in, approves, and the step runs.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from demo import REPOSITORY
from devstack.kube.seed import load_seed_file
from devstack.kube.server import KubeStandin
from devstack.processes import ProcessGroup
from devstack.receiver import HttpReceiver
from escalations.models import Escalation
from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import ActionRun, Approval, MitigationAttempt, MitigationStep
from tests.processes import database_url, start_celery
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.prometheus]

NAMESPACE = "demo"
DEPLOYMENT = "sandra-api"
SERIES = "whole-path"
# Slack paths of the receivers that examples/escalation.yaml routes to.
RECEIVER_PATHS = {
    "SMS_CEO": "/sms",
    "SLACK_EXECUTIVE": "/executive",
    "SLACK_TECH": "/tech",
    "SLACK_TEAM": "/team",
    "SLACK_SECURITY_TEAM": "/security-team",
}


@pytest.fixture
def standin(tmp_path) -> Iterator[KubeStandin]:
    seed = load_seed_file(REPOSITORY / "demo" / "kube-seed.yaml")
    with KubeStandin(token="path-token", seed=seed, ready_delay_seconds=0.2) as kube:
        kube.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
        yield kube


@pytest.fixture
def slack() -> Iterator[HttpReceiver]:
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def celery(prometheus, standin, slack, tmp_path) -> Iterator[ProcessGroup]:
    # The test process queues the approved step on its own broker, so the
    # worker reads the same one.
    env = {
        "BASTION_DATABASE_URL": database_url(),
        "BASTION_REDIS_URL": django_settings.CELERY_BROKER_URL,
        "BASTION_PROMETHEUS_URL": prometheus.url,
        "BASTION_KUBECONFIG": str(tmp_path / "kubeconfig"),
        "BASTION_BASE_URL": "http://testserver",
        "BASTION_DISPATCH_EVERY_SECONDS": "0.5",
        "BASTION_ESCALATE_EVERY_SECONDS": "1",
        "BASTION_ATTEMPT_RETRY_SECONDS": "0.5",
        "BASTION_STEP_RETRIES": "0",
        "BASTION_ACTION_COOLDOWN_SECONDS": "0",
        "BASTION_NOTIFICATION_BACKOFF_SECONDS": "0",
    }
    for name, path in RECEIVER_PATHS.items():
        env[f"BASTION_RECEIVER_{name}_URL"] = slack.url + path
    group = ProcessGroup(tmp_path / "logs")
    start_celery(group, env, tmp_path)
    yield group
    group.stop()


def wait_for(condition: Callable[[], Any], group: ProcessGroup, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        group.check_alive()
        found = condition()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(
        f"condition not met within {seconds}s: the logs are in {group.log_dir}"
    )


def slack_payloads(slack: HttpReceiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in slack.requests if r.path == path]


def approval_link(payloads: list[dict[str, Any]]) -> str | None:
    """Return the first approval link found in the Slack payloads, if any."""
    for payload in payloads:
        match = re.search(r"http://testserver/approvals/link/[^\s|>\"]+", str(payload))
        if match:
            return match.group(0)
    return None


def replicas(kubeconfig: Path) -> int:
    client = kubernetes.config.new_client_from_config(str(kubeconfig))
    with client:
        apps = kubernetes.client.AppsV1Api(client)
        deployment = apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE)
    return int(deployment.spec.replicas)


def test_failed_steps_escalate_and_approval_runs_step(
    exporter, settle, standin, slack, celery, persona_factory, tmp_path
):
    call_command("import_escalations", str(REPOSITORY / "examples/escalation.yaml"))
    approver = persona_factory(
        "approver", "mitigations.view_approval", "mitigations.decide_approval"
    )
    standin.inject_fault(
        method="PATCH", path_regex=f"/deployments/{DEPLOYMENT}", status=500, times=None
    )
    exporter.set(5, series=SERIES)
    settle(f'bastion_test_value{{series="{SERIES}"}}', lambda r: len(r) == 1)
    watcher = make_watcher(
        query=f'bastion_test_value{{series="{SERIES}"}}',
        threshold=1,
        window_seconds=2,
        interval_seconds=1,
    )
    MitigationStep.objects.create(
        watcher=watcher,
        position=1,
        action="scale_replicas",
        parameters={"deployment": DEPLOYMENT, "namespace": NAMESPACE},
    )

    # Three automatic attempts fail against the stand-in, so the
    # "3 consecutive auto-healing attempts failed" rule escalates to high.
    incident = wait_for(
        lambda: Incident.objects.filter(watcher=watcher).first(), celery
    )
    wait_for(
        lambda: Escalation.objects.filter(incident=incident, severity="high").exists(),
        celery,
    )
    failed = MitigationAttempt.objects.filter(
        incident=incident, number__lte=3, status=AttemptStatus.FAILED
    )
    assert failed.count() == 3
    assert "HTTP 500 injected fault" in failed.first().note

    # The escalation starts one more attempt whose step waits for a person,
    # and the tech leads' channel gets the message with its link.
    link = wait_for(lambda: approval_link(slack_payloads(slack, "/tech")), celery)
    escalated = slack_payloads(slack, "/tech")[0]
    assert "auto_mitigation_failed" in escalated["text"]
    assert escalated["blocks"][0]["type"] == "header"
    approval = Approval.objects.get(run__incident=incident)
    assert approval.run.status == RunStatus.WAITING_APPROVAL
    assert approval.run.attempt.number == 4

    # A person follows the link: sign-in first, then the approval page.
    standin.clear_faults()
    browser = Client(enforce_csrf_checks=True)
    path = urlsplit(link).path
    to_login = browser.get(path)
    assert to_login.status_code == 302
    assert to_login["Location"].startswith(reverse("login"))
    browser.get(to_login["Location"])
    signed_in = browser.post(
        to_login["Location"],
        {
            "username": approver.username,
            "password": "approver-password-1",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"].value,
        },
    )
    assert signed_in.status_code == 302
    page = browser.get(path, follow=True)
    assert page.status_code == 200
    assert "scale_replicas" in page.content.decode()

    decided = browser.post(
        reverse("mitigations:approval-decide", args=[approval.pk]),
        {
            "decision": "approve",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"].value,
        },
    )

    assert decided.status_code == 302
    run = wait_for(
        lambda: ActionRun.objects.filter(
            pk=approval.run_id, status=RunStatus.SUCCEEDED
        ).first(),
        celery,
    )
    assert run.output["before"] == 2
    assert run.output["after"] == 3
    assert replicas(tmp_path / "kubeconfig") == 3
