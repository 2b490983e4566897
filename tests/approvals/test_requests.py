"""Where approval requests come from, manual proposals, and expiry."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import ActionRun, Approval, Decision
from mitigations.services import approvals, chain
from tests.approvals.factories import firing_incident, waiting_runs
from watchers.models import Incident

pytestmark = pytest.mark.django_db


def test_destructive_step_entering_waiting_requests_approval(
    receiver, django_capture_on_commit_callbacks
):
    incident = firing_incident(
        ("test_approval_wipe", {"parameters": {"url": receiver.url}})
    )
    run = chain.start_attempt(incident.pk, 1)

    with django_capture_on_commit_callbacks(execute=True):
        result = chain.execute_run(run.pk)

    assert result.status == RunStatus.WAITING_APPROVAL
    approval = Approval.objects.get(run=run)
    assert approval.decision == Decision.PENDING
    assert approval.requested_by is None
    assert receiver.requests == []


def test_approval_expires_after_the_configured_timeout(receiver, settings):
    settings.APPROVAL_TIMEOUT_SECONDS = 120
    incident = firing_incident(("test_approval_wipe", {}))
    (run,) = waiting_runs(incident)

    approval = approvals.request_approval(run.pk)

    assert approval.expires_at - approval.requested_at == timedelta(seconds=120)


def test_escalated_incident_holds_later_steps(
    receiver, django_capture_on_commit_callbacks
):
    incident = firing_incident(
        ("test_approval_ping", {"parameters": {"url": receiver.url}}),
        ("test_approval_ping", {"parameters": {"url": receiver.url}}),
    )
    first = chain.start_attempt(incident.pk, 1)

    with django_capture_on_commit_callbacks(execute=True):
        held = chain.hold_remaining(incident.pk)

    # The step next in line was already handed to a worker and still runs.
    second = ActionRun.objects.get(incident=incident, position=2)
    assert held == [second.pk]
    assert Approval.objects.filter(run=second).count() == 1
    assert not Approval.objects.filter(run=first).exists()


def test_request_approval_twice_creates_one_row(receiver):
    incident = firing_incident(("test_approval_wipe", {}))
    (run,) = waiting_runs(incident)

    first = approvals.request_approval(run.pk)
    second = approvals.request_approval(run.pk)

    assert first.pk == second.pk
    assert Approval.objects.filter(run=run).count() == 1


def test_request_approval_ignores_queued_run(receiver):
    incident = firing_incident(("test_approval_wipe", {}))
    run = chain.start_attempt(incident.pk, 1)

    assert approvals.request_approval(run.pk) is None
    assert not Approval.objects.filter(run=run).exists()


# Manual proposals


def propose(client, incident, action, parameters, **extra):
    return client.post(
        reverse("mitigations:incident-propose", args=[incident.pk]),
        {"action": action, "parameters": parameters},
        **extra,
    )


def test_proposal_creates_a_waiting_manual_step(client, owner, receiver):
    incident = firing_incident(("test_approval_ping", {}))
    client.force_login(owner)

    response = propose(
        client,
        incident,
        "test_approval_wipe",
        f'{{"url": "{receiver.url}"}}',
        REMOTE_ADDR="192.0.2.44",
    )

    approval = Approval.objects.get(run__incident=incident)
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "mitigations:approval-detail", args=[approval.pk]
    )
    assert approval.requested_by == owner
    assert approval.run.status == RunStatus.WAITING_APPROVAL
    assert approval.run.step is None
    assert approval.run.inputs == {"url": receiver.url}
    assert approval.run.attempt.number == django_settings.MAX_MITIGATION_ATTEMPTS + 1
    assert approval.run.attempt.note.startswith("manual: test_approval_wipe")
    event = AuditEvent.objects.get(kind="approval.proposed")
    assert event.actor == owner
    assert event.address == "192.0.2.44"


def test_proposals_number_attempts_after_existing_ones(owner, receiver):
    incident = firing_incident(("test_approval_ping", {}))
    proposal = approvals.parse_proposal(
        "test_approval_ping", f'{{"url": "{receiver.url}"}}'
    )

    first = approvals.propose(incident, proposal, owner, None)
    second = approvals.propose(incident, proposal, owner, None)

    numbers = [first.run.attempt.number, second.run.attempt.number]
    after_automatic = django_settings.MAX_MITIGATION_ATTEMPTS
    assert numbers == [after_automatic + 1, after_automatic + 2]


@pytest.mark.parametrize(
    ("action", "parameters", "message"),
    [
        ("test_approval_ping", "{not json", "the parameters are not valid JSON"),
        ("test_approval_ping", "[1, 2]", "the parameters must be a JSON object"),
        ("test_approval_ping", '{"colour": "red"}', "unknown parameter"),
        ("test_approval_ping", '{"url": "ftp://x"}', "is not an http:// or https://"),
        ("no_such_action", "{}", "Select a valid choice"),
    ],
)
def test_invalid_proposal_is_rejected_with_the_reason(
    client, owner, receiver, action, parameters, message
):
    incident = firing_incident(("test_approval_ping", {}))
    client.force_login(owner)

    response = propose(client, incident, action, parameters)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Approval.objects.filter(run__incident=incident).exists()


def test_proposal_target_uses_defaults_and_labels(
    client, owner, receiver, settings, tmp_path
):
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(f"test_approval_ping:\n  url: {receiver.url}\n")
    settings.ACTION_DEFAULTS_FILE = str(defaults)
    incident = firing_incident(("test_approval_ping", {}), labels={"service": "cart"})
    client.force_login(owner)

    response = propose(client, incident, "test_approval_ping", "")

    approval = Approval.objects.get(run__incident=incident)
    assert response.status_code == 302
    assert approval.run.target == "service cart"


def test_proposal_missing_a_label_is_rejected(client, owner, receiver):
    incident = firing_incident(("test_approval_ping", {}), labels={"job": "api"})
    client.force_login(owner)

    response = propose(
        client, incident, "test_approval_ping", f'{{"url": "{receiver.url}"}}'
    )

    assert response.status_code == 400
    assert "test_approval_ping cannot run on this incident" in response.content.decode()
    assert not Approval.objects.filter(run__incident=incident).exists()


def test_proposal_needs_the_add_permission(client, approver, receiver):
    incident = firing_incident(("test_approval_ping", {}))
    client.force_login(approver)

    response = propose(client, incident, "test_approval_ping", "{}")

    assert response.status_code == 403


def test_proposal_on_resolved_incident_is_rejected(client, owner, receiver):
    incident = firing_incident(("test_approval_ping", {}))
    Incident.objects.filter(pk=incident.pk).update(
        state="resolved", resolved_at=timezone.now()
    )
    client.force_login(owner)

    response = propose(client, incident, "test_approval_ping", "{}")

    assert response.status_code == 400
    assert "is resolved" in response.content.decode()


def test_requester_cannot_approve_own_destructive_proposal(client, owner, receiver):
    incident = firing_incident(("test_approval_ping", {}))
    proposal = approvals.parse_proposal(
        "test_approval_wipe", f'{{"url": "{receiver.url}"}}'
    )
    approval = approvals.propose(incident, proposal, owner, None)
    client.force_login(owner)

    response = client.post(
        reverse("mitigations:approval-decide", args=[approval.pk]),
        {"decision": "approve"},
    )

    assert response.status_code == 403
    assert "another person must approve it" in response.content.decode()
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_requester_may_reject_own_destructive_proposal(
    owner, receiver, django_capture_on_commit_callbacks
):
    incident = firing_incident(("test_approval_ping", {}))
    proposal = approvals.parse_proposal(
        "test_approval_wipe", f'{{"url": "{receiver.url}"}}'
    )
    approval = approvals.propose(incident, proposal, owner, None)

    with django_capture_on_commit_callbacks(execute=True):
        decided = approvals.decide(approval.pk, owner, approve=False)

    assert decided.decision == Decision.REJECTED


def test_another_person_approves_a_destructive_proposal(
    owner, approver, receiver, eager_celery, django_capture_on_commit_callbacks
):
    incident = firing_incident(("test_approval_ping", {}))
    proposal = approvals.parse_proposal(
        "test_approval_wipe", f'{{"url": "{receiver.url}"}}'
    )
    approval = approvals.propose(incident, proposal, owner, None)

    with django_capture_on_commit_callbacks(execute=True):
        decided = approvals.decide(approval.pk, approver, approve=True)

    assert decided.decision == Decision.APPROVED
    assert decided.decided_by == approver


def test_approved_proposal_runs_with_its_parameters(
    owner, approver, receiver, eager_celery, django_capture_on_commit_callbacks
):
    incident = firing_incident(("test_approval_ping", {}))
    proposal = approvals.parse_proposal(
        "test_approval_wipe", f'{{"url": "{receiver.url}"}}'
    )
    approval = approvals.propose(incident, proposal, owner, None)

    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approval.pk, approver, approve=True)

    assert receiver.paths() == [f"/test_approval_wipe/{incident.pk}"]
    assert ActionRun.objects.get(pk=approval.run_id).status == RunStatus.SUCCEEDED


def test_incident_page_lists_approvals_and_offers_the_form(client, owner, receiver):
    incident = firing_incident(("test_approval_wipe", {}))
    (run,) = waiting_runs(incident)
    approvals.request_approval(run.pk)
    client.force_login(owner)

    response = client.get(reverse("mitigations:incident-approvals", args=[incident.pk]))

    text = response.content.decode()
    assert response.status_code == 200
    assert f'id="approval-{run.approval.pk}"' in text
    assert 'name="parameters"' in text
    assert '<option value="test_approval_wipe">' in text


# Expiry


def expired_approval(receiver, **step_fields):
    incident = firing_incident(
        ("test_approval_wipe", {"parameters": {"url": receiver.url}, **step_fields}),
        ("test_approval_ping", {"parameters": {"url": receiver.url}}),
    )
    (run,) = waiting_runs(incident)
    approval = approvals.request_approval(run.pk)
    Approval.objects.filter(pk=approval.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return approval


def test_expiry_skips_the_waiting_step(receiver, django_capture_on_commit_callbacks):
    approval = expired_approval(receiver)

    with django_capture_on_commit_callbacks(execute=True):
        expired = approvals.expire_approvals()

    approval.refresh_from_db()
    run = approval.run
    assert expired == [approval.pk]
    assert approval.decision == Decision.EXPIRED
    assert run.status == RunStatus.SKIPPED
    assert "nobody decided within" in run.error
    assert run.attempt.status == AttemptStatus.FAILED
    assert receiver.requests == []
    event = AuditEvent.objects.get(kind="approval.expired")
    assert event.incident_id == run.incident_id
    assert event.actor is None


def test_expiry_escalates_the_incident_one_level(
    receiver, django_capture_on_commit_callbacks
):
    approval = expired_approval(receiver)

    with django_capture_on_commit_callbacks(execute=True):
        approvals.expire_approvals()

    incident = Incident.objects.get(pk=approval.run.incident_id)
    assert incident.escalated_at is not None
    assert incident.escalation_severity != ""


def test_each_expiry_raises_the_escalation_further(
    receiver, owner, django_capture_on_commit_callbacks
):
    first = expired_approval(receiver)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.expire_approvals()
    incident = Incident.objects.get(pk=first.run.incident_id)
    level_after_first = incident.escalation_severity
    proposal = approvals.parse_proposal(
        "test_approval_ping", f'{{"url": "{receiver.url}"}}'
    )
    second = approvals.propose(incident, proposal, owner, None)
    Approval.objects.filter(pk=second.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        approvals.expire_approvals()

    incident.refresh_from_db()
    levels = ["medium", "high", "critical"]
    assert levels.index(incident.escalation_severity) == (
        levels.index(level_after_first) + 1
    )


def test_approval_not_yet_due_does_not_expire(receiver):
    incident = firing_incident(("test_approval_wipe", {}))
    (run,) = waiting_runs(incident)
    approval = approvals.request_approval(run.pk)

    assert approvals.expire_approvals() == []
    approval.refresh_from_db()
    assert approval.decision == Decision.PENDING


def test_decided_approval_never_expires(
    receiver, approver, django_capture_on_commit_callbacks
):
    approval = expired_approval(receiver)
    with django_capture_on_commit_callbacks(execute=True):
        approvals.decide(approval.pk, approver, approve=False)

        expired = approvals.expire_approvals()

    approval.refresh_from_db()
    assert expired == []
    assert approval.decision == Decision.REJECTED
