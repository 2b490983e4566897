"""Importing the team's escalation file: rules, receivers, routes, errors."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from escalations.models import EscalationRule, Receiver, Route
from escalations.services import conditions
from escalations.services.catalog import import_escalations
from tests.escalations.conftest import EXAMPLE
from tests.watchers.factories import make_watcher
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


def import_messages(path) -> str:
    """Import a file that must fail, and return its error messages."""
    with pytest.raises(CatalogError) as raised:
        import_escalations(path)
    return "\n".join(raised.value.messages)


def rule_file(tmp_path, rule: str, routing: str = VALID_ROUTING):
    """Write a file with one rule, ``rule``, given as its indented fields."""
    return write(tmp_path, f"escalation_rules:\n  rule_one:\n{rule}{routing}")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ('"page_everyone"', ["unknown action 'page_everyone'", "alert_tech, or"]),
        ('"alret_tech_leads"', ["did you mean 'alert_tech_leads'?"]),
        ('""', ["the action is empty", "alert_tech"]),
        ("", ["the action is empty"]),
    ],
    ids=["unknown", "typo", "empty", "null"],
)
def test_bad_action_rejected(tmp_path, action, expected):
    path = rule_file(
        tmp_path,
        f"    condition: 'firing > 10m'\n    severity: high\n    action: {action}\n",
    )

    message = import_messages(path)

    assert "rule 'rule_one', field 'action'" in message
    for text in expected:
        assert text in message
    assert not Receiver.objects.exists()


def test_unknown_group_warns(tmp_path):
    make_watcher(name="failed_auth", group="security")
    path = rule_file(
        tmp_path,
        "    condition: 'firing > 10m'\n    severity: high\n    groups: [secruity]\n",
    )

    report = import_escalations(path)

    (warning,) = [text for text in report.warnings if "group" in text]
    assert "rule 'rule_one': no watcher is in group 'secruity'" in warning
    assert "did you mean 'security'?" in warning
    assert "the known groups are security" in warning


def test_empty_severity_warns(tmp_path):
    path = write(tmp_path, f"escalation_rules: {{}}\n{VALID_ROUTING}  medium: []\n")

    report = import_escalations(path)

    assert any(
        "routing for medium lists no receiver" in text and "reaches nobody" in text
        for text in report.warnings
    )


def test_duplicate_route_rejected(tmp_path):
    routing = "routing:\n  medium:\n    - slack: team\n    - slack: team\n"
    path = write(tmp_path, f"escalation_rules: {{}}\n{routing}")

    message = import_messages(path)

    assert "routing for medium: 'slack: team' is listed twice" in message
    assert not Route.objects.exists()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            "99999999999999999999999 consecutive attempts failed",
            "99999999999999999999999 attempts is more than the maximum of 1000",
        ),
        (
            "SLO breach >99999999999999999999min",
            "99999999999999999999min is longer than the maximum of 365 days",
        ),
        (
            "anomaly_score > 1" + "0" * 400,
            "the number is too large to compare with",
        ),
    ],
    ids=["count", "duration", "threshold"],
)
def test_huge_number_rejected(tmp_path, condition, expected):
    path = rule_file(tmp_path, f"    condition: '{condition}'\n    severity: high\n")

    message = import_messages(path)

    assert "rule 'rule_one'" in message
    assert expected in message
    assert not EscalationRule.objects.exists()
