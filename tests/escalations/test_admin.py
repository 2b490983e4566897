"""Django admin for escalation rules, receivers, routes and loss estimates."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from escalations.models import EscalationRule, LossEstimate, Receiver, Route
from tests.watchers.factories import make_watcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(
        username="admin", password="admin-password-1"
    )


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def rule_data(**changes):
    data = {
        "name": "repeated_failures",
        "condition_text": "3 consecutive auto-healing attempts failed",
        "action": "",
        "severity": "high",
        "groups": "[]",
        "enabled": "on",
        "initial-groups": "[]",
    }
    data.update(changes)
    return data


def test_rule_add_parses_the_condition(admin_client):
    response = admin_client.post(
        reverse("admin:escalations_escalationrule_add"), rule_data()
    )

    rule = EscalationRule.objects.get(name="repeated_failures")
    assert response.status_code == 302
    assert rule.condition


def test_rule_with_unreadable_condition_is_not_saved(admin_client):
    response = admin_client.post(
        reverse("admin:escalations_escalationrule_add"),
        rule_data(condition_text="when the moon is full"),
    )

    assert response.status_code == 200
    assert "Cannot read the condition" in response.content.decode()
    assert not EscalationRule.objects.exists()


def test_rule_with_unknown_action_is_not_saved(admin_client):
    response = admin_client.post(
        reverse("admin:escalations_escalationrule_add"),
        rule_data(action="page_everyone"),
    )

    assert response.status_code == 200
    assert "unknown action &#x27;page_everyone&#x27;" in response.content.decode()
    assert not EscalationRule.objects.exists()


def test_rule_with_alert_action_is_saved(admin_client):
    response = admin_client.post(
        reverse("admin:escalations_escalationrule_add"),
        rule_data(action=" alert_security_team + ceo "),
    )

    assert response.status_code == 302
    assert EscalationRule.objects.get().action == "alert_security_team + ceo"


@pytest.mark.parametrize("groups", ['"security"', "[3]", '[""]', '{"a": 1}'])
def test_rule_groups_must_be_a_list_of_names(admin_client, groups):
    response = admin_client.post(
        reverse("admin:escalations_escalationrule_add"), rule_data(groups=groups)
    )

    assert response.status_code == 200
    assert "is not a list of group names" in response.content.decode()
    assert not EscalationRule.objects.exists()


def test_rule_change_is_recorded_with_values(admin_client, admin_user):
    admin_client.post(reverse("admin:escalations_escalationrule_add"), rule_data())
    rule = EscalationRule.objects.get()

    admin_client.post(
        reverse("admin:escalations_escalationrule_change", args=[rule.pk]),
        rule_data(severity="critical", groups='["security"]'),
        REMOTE_ADDR="192.0.2.50",
    )

    event = AuditEvent.objects.filter(kind="admin.changed").latest("pk")
    assert event.actor == admin_user
    assert event.address == "192.0.2.50"
    assert event.details["action"] == "changed"
    assert event.details["model"] == "escalationrule"
    assert event.details["fields"]["severity"] == {"from": "high", "to": "critical"}
    assert event.details["fields"]["groups"] == {"from": [], "to": ["security"]}


def test_receiver_add_with_route_is_recorded(admin_client):
    data = {
        "name": "slack_team",
        "kind": "slack",
        "target": "team",
        "recipient": "",
        "enabled": "on",
        "routes-TOTAL_FORMS": "1",
        "routes-INITIAL_FORMS": "0",
        "routes-MIN_NUM_FORMS": "0",
        "routes-MAX_NUM_FORMS": "1000",
        "routes-0-severity": "medium",
        "routes-0-position": "1",
    }

    response = admin_client.post(reverse("admin:escalations_receiver_add"), data)

    assert response.status_code == 302
    event = AuditEvent.objects.get(kind="admin.changed")
    assert event.details["action"] == "added"
    assert event.details["fields"]["kind"]["to"] == "slack"
    assert event.details["inlines"][0]["fields"]["severity"]["to"] == "medium"
    assert Route.objects.get().receiver.name == "slack_team"


def test_route_deletion_is_recorded(admin_client):
    receiver = Receiver.objects.create(name="slack_tech", kind="slack", target="tech")
    route = Route.objects.create(severity="high", receiver=receiver)

    admin_client.post(
        reverse("admin:escalations_route_delete", args=[route.pk]),
        {"post": "yes"},
        REMOTE_ADDR="192.0.2.51",
    )

    event = AuditEvent.objects.get(kind="admin.changed")
    assert not Route.objects.exists()
    assert event.details["action"] == "deleted"
    assert event.address == "192.0.2.51"


def test_loss_estimate_rejects_bad_promql(admin_client):
    watcher = make_watcher()

    response = admin_client.post(
        reverse("admin:escalations_lossestimate_add"),
        {
            "watcher": watcher.pk,
            "query": "sum(rate(orders_total[5m])",
            "currency": "EUR",
        },
    )

    assert response.status_code == 200
    assert "Invalid PromQL" in response.content.decode()
    assert not LossEstimate.objects.exists()


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("escalationrule", "?severity__exact=high&q=failed"),
        ("receiver", "?kind__exact=slack&q=team"),
        ("route", "?severity__exact=critical"),
        ("delivery", "?status__exact=failed"),
    ],
)
def test_changelists_filter_and_search(admin_client, model, query):
    response = admin_client.get(
        reverse(f"admin:escalations_{model}_changelist") + query
    )

    assert response.status_code == 200
