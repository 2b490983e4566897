"""Importing the team's escalation file: rules, receivers, routes, errors."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from escalations.models import EscalationRule, Receiver, Route
from escalations.services import conditions
from escalations.services.catalog import import_escalations
from tests.escalations.conftest import EXAMPLE
from watchers.services.catalog import CatalogError

pytestmark = pytest.mark.django_db


def write(tmp_path, text: str):
    path = tmp_path / "escalation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


VALID_ROUTING = """
routing:
  high:
    - slack: tech
"""


def test_example_imports_every_rule():
    import_escalations(EXAMPLE)

    names = set(EscalationRule.objects.values_list("name", flat=True))
    assert names == {
        "auto_mitigation_failed",
        "critical_threshold_breach",
        "security_incident",
        "revenue_impact",
    }


def test_example_conditions_become_typed():
    import_escalations(EXAMPLE)

    def condition(name):
        rule = EscalationRule.objects.get(name=name)
        return conditions.from_json(rule.condition)

    assert condition("auto_mitigation_failed") == conditions.FailedAttempts(3, True)
    assert condition("critical_threshold_breach") == conditions.FiringFor(900)
    assert condition("security_incident") == conditions.AnyOf(
        (
            conditions.MetricThreshold("anomaly_score", ">", 0.9),
            conditions.FailedAttempts(2, False),
        )
    )
    assert condition("revenue_impact") == conditions.LossAbove(">", 100.0, "EUR")


def test_example_routing_by_severity():
    import_escalations(EXAMPLE)

    def route(severity):
        return list(
            Route.objects.filter(severity=severity)
            .order_by("position")
            .values_list("receiver__name", flat=True)
        )

    assert route("critical") == ["sms_ceo", "slack_executive"]
    assert route("high") == ["slack_tech"]
    assert route("medium") == ["slack_team"]
    assert Receiver.objects.get(name="sms_ceo").kind == "webhook"


def test_action_names_extra_receivers():
    import_escalations(EXAMPLE)

    rule = EscalationRule.objects.get(name="security_incident")

    assert set(rule.receivers.values_list("name", flat=True)) == {
        "slack_security_team",
        "sms_ceo",
    }
    assert rule.groups == ["security"]


def test_reimport_reports_no_change():
    import_escalations(EXAMPLE)

    report = import_escalations(EXAMPLE)

    assert not report.has_changes
    assert report.created == []


def test_missing_urls_are_reported(monkeypatch):
    monkeypatch.setenv("BASTION_RECEIVER_SLACK_TEAM_URL", "http://127.0.0.1:9/team")

    report = import_escalations(EXAMPLE)

    assert any("sms_ceo has no URL" in warning for warning in report.warnings)
    assert not any("slack_team" in warning for warning in report.warnings)


@pytest.mark.parametrize(
    "text",
    [
        "when things look bad",
        "3 consecutive auto-healing attempts failed OR",
        "SLO breach >15 fortnights sustained",
        "estimated_loss > €100/lightyear",
    ],
)
def test_unreadable_condition_rejected(tmp_path, text):
    path = write(
        tmp_path,
        f"""
escalation_rules:
  vague_rule:
    condition: "{text}"
    severity: high
{VALID_ROUTING}""",
    )

    with pytest.raises(CatalogError) as raised:
        import_escalations(path)

    message = "\n".join(raised.value.messages)
    assert "vague_rule" in message
    assert repr(text) in message


def test_broken_file_writes_nothing(tmp_path):
    path = write(
        tmp_path,
        f"""
escalation_rules:
  good_rule:
    condition: "firing > 10m"
    severity: high
  bad_rule:
    condition: "the moon is full"
    severity: high
{VALID_ROUTING}""",
    )

    with pytest.raises(CatalogError):
        import_escalations(path)

    assert not EscalationRule.objects.exists()
    assert not Receiver.objects.exists()


def test_unknown_severity_and_kind_rejected(tmp_path):
    path = write(
        tmp_path,
        """
escalation_rules:
  rule_one:
    condition: "firing > 10m"
    severity: urgent
routing:
  high:
    - pager: tech
""",
    )

    with pytest.raises(CatalogError) as raised:
        import_escalations(path)

    message = "\n".join(raised.value.messages)
    assert "'urgent' is not one of" in message
    assert "unknown receiver kind 'pager'" in message


def test_and_binds_tighter_than_or():
    parsed = conditions.parse_condition(
        "firing > 5m AND anomaly_score > 0.5 "
        "OR 3 consecutive mitigation attempts failed"
    )

    assert parsed == conditions.AnyOf(
        (
            conditions.AllOf(
                (
                    conditions.FiringFor(300),
                    conditions.MetricThreshold("anomaly_score", ">", 0.5),
                )
            ),
            conditions.FailedAttempts(3, True),
        )
    )


def test_command_reports_changes_then_none(capsys):
    call_command("import_escalations", str(EXAMPLE))
    first = capsys.readouterr().out

    call_command("import_escalations", str(EXAMPLE))
    second = capsys.readouterr().out

    assert "created rule security_incident" in first
    assert "No changes" in second


def test_command_lists_errors(tmp_path):
    path = write(
        tmp_path, "escalation_rules:\n  x:\n    condition: 'soon'\n    severity: high\n"
    )

    with pytest.raises(CommandError) as raised:
        call_command("import_escalations", str(path))

    assert "nothing was written" in str(raised.value)
