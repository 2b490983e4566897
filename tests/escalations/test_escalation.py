"""Escalation: rules and watcher delays firing at the right time, once per level."""

import pytest

from audit.models import AuditEvent
from escalations.models import Delivery, Escalation, EscalationRule
from escalations.services import (
    escalate,
    escalate_one_level,
    notify_decision_needed,
)
from escalations.services.evaluation import evaluate_open_incidents
from mitigations.choices import AttemptStatus, RunStatus
from mitigations.models import (
    ActionRun,
    Approval,
    MitigationAttempt,
    MitigationStep,
)
from mitigations.services import chain
from tests.escalations.conftest import NOW, bodies, make_incident, minutes, send_all
from tests.watchers.factories import make_watcher
from watchers.choices import Mode
from watchers.models import Incident, Watcher
from watchers.signals import incident_opened

pytestmark = pytest.mark.django_db


def add_attempts(incident, *statuses):
    for number, status in enumerate(statuses, start=1):
        MitigationAttempt.objects.create(
            incident=incident, number=number, status=status, started_at=NOW
        )


def level(incident) -> str:
    return Incident.objects.get(pk=incident.pk).escalation_severity


def test_three_consecutive_failures_escalate_high(routed):
    incident = make_incident()
    add_attempts(incident, AttemptStatus.FAILED, AttemptStatus.FAILED)
    evaluate_open_incidents(NOW)
    assert level(incident) == ""

    MitigationAttempt.objects.create(
        incident=incident, number=3, status=AttemptStatus.FAILED, started_at=NOW
    )
    evaluate_open_incidents(NOW)

    assert level(incident) == "high"


def test_escalation_after_failures_offers_one_more_attempt(
    routed, django_capture_on_commit_callbacks
):
    incident = make_incident()
    MitigationStep.objects.create(
        watcher=incident.watcher, position=1, action="clear_caches"
    )
    add_attempts(incident, *[AttemptStatus.FAILED] * 3)

    escalate(incident.pk, "high", "3 attempts failed", now=NOW)
    offered = MitigationAttempt.objects.get(incident=incident, number=4)
    run = ActionRun.objects.get(attempt=offered)
    with django_capture_on_commit_callbacks(execute=True):
        result = chain.execute_run(run.pk)

    assert offered.status == AttemptStatus.RUNNING
    assert result.status == RunStatus.WAITING_APPROVAL
    assert Approval.objects.filter(run=run).count() == 1


def test_escalation_offers_nothing_while_attempts_remain(routed):
    incident = make_incident()
    MitigationStep.objects.create(
        watcher=incident.watcher, position=1, action="clear_caches"
    )
    add_attempts(incident, AttemptStatus.FAILED, AttemptStatus.FAILED)

    escalate(incident.pk, "high", "by hand", now=NOW)

    assert not MitigationAttempt.objects.filter(incident=incident, number=3).exists()


def test_mitigated_attempt_breaks_the_run(routed):
    incident = make_incident()
    add_attempts(
        incident,
        AttemptStatus.FAILED,
        AttemptStatus.FAILED,
        AttemptStatus.MITIGATED,
        AttemptStatus.FAILED,
        AttemptStatus.FAILED,
    )

    evaluate_open_incidents(NOW)

    assert level(incident) == ""


def test_firing_longer_than_fifteen_minutes_is_critical(routed):
    incident = make_incident(opened_at=NOW - minutes(15))
    evaluate_open_incidents(NOW)
    assert level(incident) == ""

    evaluate_open_incidents(NOW + minutes(0.1))

    assert level(incident) == "critical"


def test_anomaly_score_escalates_security_incident(routed):
    watcher = make_watcher(group="security", query="anomaly_score > 0.8", threshold=0.8)
    calm = make_incident(watcher, last_value=0.85)
    anomalous = make_incident(watcher, last_value=0.95)

    evaluate_open_incidents(NOW)

    assert level(calm) == ""
    assert level(anomalous) == "critical"


def test_security_rule_notifies_security_team_and_ceo(routed):
    watcher = make_watcher(group="security", query="anomaly_score > 0.8", threshold=0.8)
    make_incident(watcher, last_value=0.95)

    evaluate_open_incidents(NOW)
    send_all()

    assert len(routed["slack_security_team"].requests) == 1
    assert len(routed["sms_ceo"].requests) == 1
    assert len(routed["slack_executive"].requests) == 1
    assert routed["slack_tech"].requests == []


def test_two_failed_mitigations_only_for_security(routed):
    security = make_incident(make_watcher(group="security"))
    performance = make_incident(make_watcher(group="performance"))
    for incident in (security, performance):
        add_attempts(incident, AttemptStatus.FAILED, AttemptStatus.FAILED)

    evaluate_open_incidents(NOW)

    assert level(security) == "critical"
    assert level(performance) == ""


def test_watcher_delay_escalates_at_its_severity(routed):
    watcher = make_watcher(escalation_delay_seconds=600, severity="high")
    incident = make_incident(watcher, opened_at=NOW - minutes(9))
    evaluate_open_incidents(NOW)
    assert level(incident) == ""

    evaluate_open_incidents(NOW + minutes(1))

    assert level(incident) == "high"


def test_immediate_watcher_escalates_on_open(routed):
    watcher = make_watcher(escalation_delay_seconds=0)
    incident = make_incident(watcher, opened_at=NOW)

    incident_opened.send(sender=Incident, incident_id=incident.pk)

    assert level(incident) == "medium"
    assert (
        Delivery.objects.filter(incident=incident, key="escalated:medium").count() == 1
    )


def test_watcher_without_delay_never_escalates_alone(routed):
    incident = make_incident(make_watcher(escalation_delay_seconds=None))

    incident_opened.send(sender=Incident, incident_id=incident.pk)
    evaluate_open_incidents(NOW + minutes(10))

    assert level(incident) == ""


def test_shadow_incident_never_escalates(routed):
    watcher = make_watcher(escalation_delay_seconds=0)
    incident = make_incident(watcher, opened_at=NOW - minutes(60), is_shadow=True)

    incident_opened.send(sender=Incident, incident_id=incident.pk)
    evaluate_open_incidents(NOW)

    assert level(incident) == ""
    assert not escalate(incident.pk, "critical", "by hand")


@pytest.mark.parametrize("mode", [Mode.PAUSED, Mode.SHADOW])
def test_frozen_watcher_incident_never_escalates(routed, mode):
    watcher = make_watcher(escalation_delay_seconds=0)
    incident = make_incident(watcher, opened_at=NOW - minutes(60))
    Watcher.objects.filter(pk=watcher.pk).update(mode=mode)

    evaluate_open_incidents(NOW)

    assert level(incident) == ""


def test_data_source_incident_still_escalates(routed):
    incident = make_incident(opened_at=NOW - minutes(20))
    Incident.objects.filter(pk=incident.pk).update(watcher=None)

    evaluate_open_incidents(NOW)

    assert level(incident) == "critical"


def test_escalates_once_per_level(routed):
    incident = make_incident(opened_at=NOW - minutes(20))

    evaluate_open_incidents(NOW)
    evaluate_open_incidents(NOW + minutes(1))
    send_all(NOW + minutes(1))

    assert Escalation.objects.filter(incident=incident).count() == 1
    assert len(routed["slack_executive"].requests) == 1


def test_highest_severity_wins(routed):
    incident = make_incident()

    assert escalate(incident.pk, "critical", "by hand")
    assert not escalate(incident.pk, "high", "later, lower")
    assert level(incident) == "critical"


def test_higher_rule_raises_again(routed):
    incident = make_incident(opened_at=NOW)
    add_attempts(incident, *[AttemptStatus.FAILED] * 3)
    evaluate_open_incidents(NOW)
    assert level(incident) == "high"

    evaluate_open_incidents(NOW + minutes(16))

    assert level(incident) == "critical"
    assert Escalation.objects.filter(incident=incident).count() == 2


def test_routing_by_severity(routed):
    for severity in ("medium", "high", "critical"):
        escalate(make_incident().pk, severity, "by hand")

    send_all()

    assert len(routed["slack_team"].requests) == 1
    assert len(routed["slack_tech"].requests) == 1
    assert len(routed["slack_executive"].requests) == 1
    assert len(routed["sms_ceo"].requests) == 1


def test_repeats_after_the_interval(routed, settings):
    settings.ESCALATION_REPEAT_SECONDS = 1800
    # Firing for 15 minutes would raise it to critical and reset the repeats.
    EscalationRule.objects.filter(name="critical_threshold_breach").update(
        enabled=False
    )
    incident = make_incident()
    escalate(incident.pk, "high", "by hand", now=NOW)
    send_all()

    evaluate_open_incidents(NOW + minutes(29))
    send_all()
    assert len(routed["slack_tech"].requests) == 1

    evaluate_open_incidents(NOW + minutes(30))
    evaluate_open_incidents(NOW + minutes(31))
    send_all()
    assert len(routed["slack_tech"].requests) == 2

    evaluate_open_incidents(NOW + minutes(60))
    send_all()
    keys = list(
        Delivery.objects.filter(incident=incident)
        .order_by("created_at")
        .values_list("key", flat=True)
    )
    assert keys == ["escalated:high", "repeated:high:1", "repeated:high:2"]


def test_resolve_announced_to_everyone_notified(routed):
    incident = make_incident()
    escalate(incident.pk, "high", "by hand", now=NOW)
    escalate(incident.pk, "critical", "worse", now=NOW + minutes(1))
    send_all()
    Incident.objects.filter(pk=incident.pk).update(
        state="resolved", resolved_at=NOW + minutes(5)
    )

    evaluate_open_incidents(NOW + minutes(6))
    evaluate_open_incidents(NOW + minutes(7))
    send_all()

    for name in ("slack_tech", "slack_executive", "sms_ceo"):
        last = bodies(routed[name])[-1]
        assert "Resolved" in last.get("text", last.get("message", "")), name
        resolved = Delivery.objects.filter(
            incident=incident, key="resolved", receiver__name=name
        )
        assert resolved.count() == 1, name
    assert routed["slack_team"].requests == []


def test_escalation_holds_the_steps_after_the_next_one(routed):
    watcher = make_watcher()
    incident = make_incident(watcher)
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=NOW
    )
    runs = []
    for position, action in enumerate(("temporary_ip_block", "clear_caches"), 1):
        step = MitigationStep.objects.create(
            watcher=watcher, position=position, action=action
        )
        runs.append(
            ActionRun.objects.create(
                attempt=attempt,
                incident=incident,
                step=step,
                position=position,
                action=action,
                risk="disruptive",
                queued_at=NOW,
            )
        )

    escalate(incident.pk, "high", "by hand", now=NOW)

    for run in runs:
        run.refresh_from_db()
    assert runs[0].status == RunStatus.QUEUED
    assert runs[1].status == RunStatus.WAITING_APPROVAL
    assert Escalation.objects.get(incident=incident).held_run_ids == [runs[1].pk]


def test_one_level_up_then_again_at_critical(routed):
    incident = make_incident()

    escalate_one_level(incident.pk, "approval expired", now=NOW)
    escalate_one_level(incident.pk, "approval expired", now=NOW + minutes(1))
    escalate_one_level(incident.pk, "approval expired", now=NOW + minutes(2))
    escalate_one_level(incident.pk, "approval expired", now=NOW + minutes(3))
    send_all()

    assert level(incident) == "critical"
    assert len(routed["slack_team"].requests) == 1
    assert len(routed["slack_tech"].requests) == 1
    assert len(routed["slack_executive"].requests) == 2


def waiting_run(incident):
    watcher = incident.watcher
    step = MitigationStep.objects.create(
        watcher=watcher, position=1, action="clear_caches"
    )
    attempt = MitigationAttempt.objects.create(
        incident=incident, number=1, started_at=NOW
    )
    return ActionRun.objects.create(
        attempt=attempt,
        incident=incident,
        step=step,
        position=1,
        action="clear_caches",
        risk="destructive",
        target="redis cache",
        status=RunStatus.WAITING_APPROVAL,
        queued_at=NOW,
    )


def test_decision_needed_links_the_approval(routed):
    incident = make_incident()
    run = waiting_run(incident)
    approval = Approval.objects.create(
        run=run, requested_at=NOW, expires_at=NOW + minutes(30)
    )

    notify_decision_needed(approval.pk)
    send_all()

    body = bodies(routed["slack_team"])[0]
    assert "Decision needed: clear_caches" in body["text"]
    assert "/approvals/" in body["blocks"][3]["text"]["text"]
    assert routed["slack_tech"].requests == []


def test_decision_goes_to_current_severity(routed):
    incident = make_incident()
    escalate(incident.pk, "high", "by hand", now=NOW)
    approval = Approval.objects.create(
        run=waiting_run(incident), requested_at=NOW, expires_at=NOW + minutes(30)
    )

    notify_decision_needed(approval.pk)
    notify_decision_needed(approval.pk)
    send_all()

    assert len(routed["slack_tech"].requests) == 2
    assert routed["slack_team"].requests == []


def test_escalation_and_notifications_audited(routed):
    routed["slack_tech"].statuses = [400]
    incident = make_incident()

    escalate(incident.pk, "high", "by hand", now=NOW)
    escalate(incident.pk, "critical", "worse", now=NOW)
    send_all()

    kinds = list(
        AuditEvent.objects.filter(incident_id=incident.pk).values_list(
            "kind", flat=True
        )
    )
    assert kinds.count("escalation.raised") == 2
    assert kinds.count("notification.sent") == 2
    assert kinds.count("notification.failed") == 1
