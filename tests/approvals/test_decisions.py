"""Deciding an approval: who may, how often, and what the step does next."""

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import ActionRun, Approval, Decision
from mitigations.services import approvals, chain
from tests.approvals.factories import firing_incident, waiting_runs

pytestmark = pytest.mark.django_db


def pending_approval(receiver, *steps, **fields):
    steps = steps or (("test_approval_ping", {}),)
    incident = firing_incident(
        *[
            (action, {"parameters": {"url": receiver.url}, **extra})
            for action, extra in steps
        ],
        **fields,
    )
    runs = waiting_runs(incident, count=len(steps))
    return approvals.request_approval(runs[0].pk), runs


def decide_url(approval: Approval) -> str:
    return reverse("mitigations:approval-decide", args=[approval.pk])


def test_approve_runs_the_step_at_once(
    client, approver, receiver, eager_celery, django_capture_on_commit_callbacks
):
    approval, (run,) = pending_approval(receiver)
    client.force_login(approver)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            decide_url(approval), {"decision": "approve", "comment": "go"}
        )

    assert response.status_code == 302
    assert receiver.paths() == [f"/test_approval_ping/{run.incident_id}"]
    assert ActionRun.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    approval.refresh_from_db()
    assert approval.decision == Decision.APPROVED
    assert approval.decided_by == approver
    assert approval.comment == "go"
    assert approval.decided_from == "127.0.0.1"


def test_reject_records_reason_and_stops_the_chain(
    client, approver, receiver, django_capture_on_commit_callbacks
):
    approval, (first, second) = pending_approval(
        receiver, ("test_approval_ping", {}), ("test_approval_ping", {})
    )
    client.force_login(approver)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            decide_url(approval), {"decision": "reject", "comment": "wrong target"}
        )

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == RunStatus.REJECTED
    assert first.error == "rejected by approver: wrong target"
    assert first.attempt.status == AttemptStatus.FAILED
    assert second.status == RunStatus.SKIPPED
    assert receiver.requests == []


def test_reject_continues_when_step_allows(
    approver, receiver, eager_celery, django_capture_on_commit_callbacks
):
    incident = firing_incident(
        (
            "test_approval_ping",
            {"parameters": {"url": receiver.url}, "continue_on_failure": True},
        ),
        ("test_approval_ping", {"parameters": {"url": receiver.url}}),
    )
    (first,) = waiting_runs(incident, count=1)
    second = ActionRun.objects.create(
        attempt=first.attempt,
        incident=incident,
        step=incident.watcher.steps.get(position=2),
        position=2,
        action="test_approval_ping",
        risk=first.risk,
        queued_at=first.queued_at,
    )
    approval = approvals.request_approval(first.pk)

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approval.pk, approver, approve=False, comment="skip it")

    assert ActionRun.objects.get(pk=second.pk).status == RunStatus.SUCCEEDED
    assert receiver.paths() == [f"/test_approval_ping/{incident.pk}"]


def test_user_without_decide_permission_gets_403(client, viewer, receiver):
    approval, _ = pending_approval(receiver)
    client.force_login(viewer)

    response = client.post(decide_url(approval), {"decision": "approve"})

    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_anonymous_post_is_sent_to_login(client, receiver):
    approval, _ = pending_approval(receiver)

    response = client.post(decide_url(approval), {"decision": "approve"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_post_without_csrf_token_gets_403(approver, receiver):
    approval, _ = pending_approval(receiver)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(approver)

    response = browser.post(decide_url(approval), {"decision": "reject"})

    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_post_with_csrf_token_from_the_page_decides(
    approver, receiver, django_capture_on_commit_callbacks
):
    approval, _ = pending_approval(receiver)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(approver)
    browser.get(reverse("mitigations:approval-detail", args=[approval.pk]))
    token = browser.cookies["csrftoken"].value

    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(
            decide_url(approval), {"decision": "reject", "csrfmiddlewaretoken": token}
        )

    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.decision == Decision.REJECTED


def test_get_on_decide_url_is_405(client, approver, receiver):
    approval, (run,) = pending_approval(receiver)
    client.force_login(approver)

    response = client.get(decide_url(approval), {"decision": "approve"})

    assert response.status_code == 405
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING
    assert ActionRun.objects.get(pk=run.pk).status == RunStatus.WAITING_APPROVAL


def test_anonymous_get_on_decide_is_405(client, receiver):
    approval, _ = pending_approval(receiver)

    response = client.get(decide_url(approval))

    assert response.status_code == 405


def test_second_decision_is_refused_with_who_decided(
    client, approver, second_approver, receiver, django_capture_on_commit_callbacks
):
    approval, (run,) = pending_approval(receiver)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approval.pk, approver, approve=False, comment="no")
    client.force_login(second_approver)

    response = client.post(decide_url(approval), {"decision": "approve"})

    assert response.status_code == 409
    text = response.content.decode()
    assert "already rejected by approver at" in text
    approval.refresh_from_db()
    assert approval.decided_by == approver
    assert ActionRun.objects.get(pk=run.pk).status == RunStatus.REJECTED


def test_own_withdrawn_proposal_is_not_pending(client, owner, receiver):
    incident = firing_incident()
    proposal = approvals.Proposal("test_approval_wipe", {"url": receiver.url})
    approval = approvals.propose(incident, proposal, owner, None)
    chain.end_attempt(
        approval.run.attempt, AttemptStatus.STOPPED, "stopped", timezone.now()
    )
    client.force_login(owner)

    response = client.post(decide_url(approval), {"decision": "approve"})

    assert response.status_code == 409
    text = response.content.decode()
    assert f"approval {approval.pk} was already withdrawn" in text
    assert "another person must approve it" not in text


@pytest.mark.django_db(transaction=True)
def test_two_decisions_at_once_leave_exactly_one(approver, second_approver, receiver):
    approval, (run,) = pending_approval(receiver)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(user, approve: bool) -> None:
        barrier.wait()
        try:
            approvals.decide(approval.pk, user, approve=approve)
            outcomes.append("decided")
        except approvals.AlreadyDecided:
            outcomes.append("already decided")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=(approver, False)),
        threading.Thread(target=decide, args=(second_approver, False)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["already decided", "decided"]
    assert AuditEvent.objects.filter(kind="approval.decided").count() == 1
    approval.refresh_from_db()
    assert approval.decision == Decision.REJECTED
    assert ActionRun.objects.get(pk=run.pk).status == RunStatus.REJECTED


def test_decision_on_moved_step_is_refused(approver, receiver):
    approval, (run,) = pending_approval(receiver)
    ActionRun.objects.filter(pk=run.pk).update(status=RunStatus.SKIPPED)

    with pytest.raises(approvals.DecisionError, match="it is skipped"):
        approvals.decide(approval.pk, approver, approve=True)

    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_decision_is_audited_with_actor_and_address(
    client, approver, receiver, django_capture_on_commit_callbacks
):
    approval, (run,) = pending_approval(receiver)
    client.force_login(approver)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            decide_url(approval),
            {"decision": "reject", "comment": "not now"},
            REMOTE_ADDR="198.51.100.7",
        )

    event = AuditEvent.objects.get(kind="approval.decided")
    assert event.actor == approver
    assert event.actor_name == "approver"
    assert event.address == "198.51.100.7"
    assert event.incident_id == run.incident_id
    assert event.details["decision"] == "rejected"
    assert event.details["comment"] == "not now"


def test_forwarded_address_is_used_only_when_trusted(
    client, approver, receiver, settings, django_capture_on_commit_callbacks
):
    first, _ = pending_approval(receiver)
    second, _ = pending_approval(receiver)
    client.force_login(approver)
    forwarded = {
        "REMOTE_ADDR": "10.0.0.2",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.1",
    }

    with django_capture_on_commit_callbacks(execute=True):
        client.post(decide_url(first), {"decision": "reject"}, **forwarded)
        settings.TRUST_X_FORWARDED_FOR = True
        client.post(decide_url(second), {"decision": "reject"}, **forwarded)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.decided_from == "10.0.0.2"
    assert second.decided_from == "203.0.113.9"


def test_reject_later_step_waits_for_earlier_one(
    approver, receiver, eager_celery, django_capture_on_commit_callbacks
):
    _, (first, second) = pending_approval(
        receiver, ("test_approval_ping", {}), ("test_approval_ping", {})
    )
    first_approval = Approval.objects.get(run=first)
    second_approval = approvals.request_approval(second.pk)

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(second_approval.pk, approver, approve=False, comment="no")
    first.refresh_from_db()
    first_approval.refresh_from_db()
    assert first.status == RunStatus.WAITING_APPROVAL
    assert first_approval.decision == Decision.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(first_approval.pk, approver, approve=True)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == RunStatus.SUCCEEDED
    assert second.status == RunStatus.REJECTED
    assert first.attempt.status == AttemptStatus.FAILED
    assert "step 2 (test_approval_ping) rejected" in first.attempt.note
    assert receiver.paths() == [f"/test_approval_ping/{first.incident_id}"]
