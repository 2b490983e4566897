"""Import and export of the watcher catalog through the management commands."""

import io
import textwrap
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from mitigations.models import MitigationStep
from watchers.models import Incident, Watcher

REPOSITORY = Path(__file__).resolve().parents[2]
CATALOG = REPOSITORY / "examples" / "watchers.yaml"
SHARED_CATALOG = REPOSITORY.parent / "shared" / "examples" / "watchers.yaml"
OVERRIDES = REPOSITORY / "demo" / "overrides.yaml"

pytestmark = pytest.mark.django_db

ONE_WATCHER = """\
performance:
  api_latency:
    query: "histogram_quantile(0.95, rate(request_seconds_bucket[5m]))"
    threshold: 0.8
    window: 10m
    actions:
      - scale_replicas
    escalation: 15m
"""


def run_import(*args: str) -> tuple[str, str]:
    """Run import_watchers and return its standard output and error."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("import_watchers", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def import_error(*args: str) -> str:
    """Run import_watchers, which must fail, and return its error message."""
    with pytest.raises(CommandError) as raised:
        run_import(*args)
    return str(raised.value)


def write_catalog(directory: Path, text: str, name: str = "watchers.yaml") -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def export_text() -> str:
    stdout = io.StringIO()
    call_command("export_watchers", stdout=stdout)
    return stdout.getvalue()


def action_names(watcher: Watcher) -> list[str]:
    return list(watcher.steps.order_by("position").values_list("action", flat=True))


# The example catalog


def test_example_catalog_creates_nine_watchers():
    run_import(str(CATALOG))

    assert Watcher.objects.count() == 9
    assert MitigationStep.objects.count() == 27


def test_example_catalog_groups():
    run_import(str(CATALOG))

    groups = dict(Watcher.objects.values_list("name", "group"))
    assert set(groups.values()) == {"performance", "security", "infrastructure"}
    assert groups["sandra_api_latency"] == "performance"
    assert groups["failed_auth_attempts"] == "security"
    assert groups["disk_usage"] == "infrastructure"


def test_example_latency_watcher_fields():
    run_import(str(CATALOG))

    latency = Watcher.objects.get(name="sandra_api_latency")
    assert latency.query == (
        "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket"
        "{service='sandra-api'}[10m]))"
    )
    assert latency.threshold == 0.8
    assert latency.comparison == ">"
    assert latency.window_seconds == 600
    assert latency.interval_seconds == 60
    assert latency.escalation_delay_seconds == 900
    assert latency.severity == "medium"
    assert latency.mode == "active"
    assert action_names(latency) == [
        "scale_replicas",
        "clear_caches",
        "activate_circuit_breaker",
    ]


def test_example_failed_auth_window_and_interval():
    run_import(str(CATALOG))

    failed_auth = Watcher.objects.get(name="failed_auth_attempts")
    assert failed_auth.window_seconds == 60
    assert failed_auth.interval_seconds == 15
    assert failed_auth.threshold == 10
    assert failed_auth.escalation_delay_seconds == 0


def test_example_step_positions_start_at_one():
    run_import(str(CATALOG))

    steps = MitigationStep.objects.filter(watcher__name="disk_usage")
    positions = list(steps.order_by("position").values_list("position", "action"))
    assert positions == [
        (1, "log_rotation"),
        (2, "temp_file_cleanup"),
        (3, "archive_old_data"),
    ]


def test_example_daily_certificate_check():
    run_import(str(CATALOG))

    expiry = Watcher.objects.get(name="ssl_certificate_expiry")
    assert expiry.window_seconds == 0
    assert expiry.interval_seconds == 86400
    assert expiry.comparison == ">"


def test_example_certificate_expiry_warns_about_comparison():
    _stdout, stderr = run_import(str(CATALOG))

    warnings = [line for line in stderr.splitlines() if line.startswith("Warning")]
    assert len(warnings) == 1
    assert "ssl_certificate_expiry" in warnings[0]
    assert 'comparison: "<"' in warnings[0]


def test_repository_catalog_matches_shared_copy():
    if not SHARED_CATALOG.exists():
        pytest.skip(f"{SHARED_CATALOG} is not beside this clone")

    assert CATALOG.read_bytes() == SHARED_CATALOG.read_bytes()


# Re-import and export


def test_reimport_reports_no_changes():
    run_import(str(CATALOG))

    stdout, _stderr = run_import(str(CATALOG))

    assert "No changes" in stdout
    assert "updated" not in stdout


def test_reimport_writes_no_row():
    run_import(str(CATALOG))
    before = dict(Watcher.objects.values_list("name", "updated_at"))
    step_ids = set(MitigationStep.objects.values_list("pk", flat=True))

    run_import(str(CATALOG))

    assert dict(Watcher.objects.values_list("name", "updated_at")) == before
    assert set(MitigationStep.objects.values_list("pk", flat=True)) == step_ids


def test_export_is_yaml_with_the_same_watchers():
    run_import(str(CATALOG))

    exported = yaml.safe_load(export_text())

    original = yaml.safe_load(CATALOG.read_text())
    assert list(exported) == list(original)
    for group, watchers in original.items():
        assert list(exported[group]) == list(watchers)


def test_export_keeps_short_format_of_example():
    run_import(str(CATALOG))

    exported = yaml.safe_load(export_text())

    assert exported == yaml.safe_load(CATALOG.read_text())


def test_export_then_import_changes_nothing(tmp_path):
    run_import(str(CATALOG), "--overlay", str(OVERRIDES))
    path = tmp_path / "exported.yaml"
    call_command("export_watchers", str(path), stderr=io.StringIO())
    before = dict(Watcher.objects.values_list("name", "updated_at"))

    stdout, _stderr = run_import(str(path))

    assert "No changes" in stdout
    assert dict(Watcher.objects.values_list("name", "updated_at")) == before


def test_example_export_reimports_unchanged(tmp_path):
    run_import(str(CATALOG))
    path = tmp_path / "exported.yaml"
    call_command("export_watchers", str(path), stderr=io.StringIO())

    stdout, _stderr = run_import(str(path))

    assert "No changes" in stdout


def test_optional_keys_round_trip(tmp_path):
    path = write_catalog(
        tmp_path,
        """\
        storage:
          disk_free:
            query: "node_filesystem_avail_bytes / node_filesystem_size_bytes"
            threshold: 0.1
            window: 5m
            actions: []
            escalation: none
            comparison: "<="
            severity: high
            interval: 20s
            mode: shadow
            labels:
              team: storage
            clear_threshold: 0.15
            resolve_delay: 2m
            max_series: 50
            unit: "%"
          nightly_backup:
            query: "time() - backup_last_success_timestamp_seconds"
            threshold: 90000
            window: daily
            actions: [archive_old_data]
            escalation: 1h30m
        """,
    )
    run_import(path)
    exported = write_catalog(tmp_path, export_text(), name="exported.yaml")

    stdout, _stderr = run_import(exported)

    assert "No changes" in stdout
    assert yaml.safe_load(Path(exported).read_text()) == yaml.safe_load(
        Path(path).read_text()
    )


def test_optional_keys_are_stored(tmp_path):
    path = write_catalog(
        tmp_path,
        ONE_WATCHER
        + """\
    comparison: ">="
    severity: critical
    interval: 30s
    mode: paused
    labels: {team: api}
    clear_threshold: 0.5
    resolve_delay: 3m
    max_series: 10
""",
    )

    run_import(path)

    watcher = Watcher.objects.get(name="api_latency")
    assert watcher.comparison == ">="
    assert watcher.severity == "critical"
    assert watcher.interval_seconds == 30
    assert watcher.mode == "paused"
    assert watcher.labels == {"team": "api"}
    assert watcher.clear_threshold == 0.5
    assert watcher.resolve_delay_seconds == 180
    assert watcher.max_series == 10


# Broken catalogs: each error names the watcher, the field and the problem.

BROKEN_ENTRIES = [
    (
        "unknown action",
        {"actions": ["scale_replica"]},
        ["field 'actions'", "unknown action 'scale_replica'", "'scale_replicas'"],
    ),
    (
        "unparsable duration",
        {"window": "10 minutes"},
        ["field 'window'", "'10 minutes' is not a duration"],
    ),
    (
        "duration without unit",
        {"window": 10},
        ["field 'window'", "10 has no unit"],
    ),
    (
        "threshold as percent",
        {"threshold": "80%"},
        ["field 'threshold'", "'80%' is not a number"],
    ),
    (
        "threshold as boolean",
        {"threshold": True},
        ["field 'threshold'", "True is a boolean"],
    ),
    (
        "threshold infinite",
        {"threshold": float("inf")},
        ["field 'threshold'", "not a finite number"],
    ),
    (
        "threshold quoted number",
        {"threshold": "1000"},
        ["field 'threshold'", "'1000' is text", "write 1000.0 without quotes"],
    ),
    (
        "threshold exponent without dot",
        {"threshold": "1e10"},
        ["the YAML reader took '1e10' as text", "write 1.0e+10 or 10000000000"],
    ),
    (
        "threshold out of range",
        {"threshold": "1e400"},
        ["field 'threshold'", "'1e400' is out of range"],
    ),
    (
        "mode read as boolean",
        {"mode": False},
        ["field 'mode'", "False is not one of", "in quotes", "on, off, yes or no"],
    ),
    (
        "window too long",
        {"window": "99999999999999999999d"},
        ["field 'window'", "longer than the maximum of 365 days", "at most 365d"],
    ),
    (
        "escalation too long",
        {"escalation": "99999999999999999999d"},
        ["field 'escalation'", "longer than the maximum of 365 days"],
    ),
    (
        "max series too large",
        {"max_series": 99999999999999999999999},
        ["field 'max_series'", "more than the maximum of 1000000"],
    ),
    (
        "query does not parse",
        {"query": "rate(http_requests_total[5m]"},
        ["field 'query'", "does not parse"],
    ),
    (
        "range vector query",
        {"query": "foo[5m]"},
        ["field 'query'", "returns a matrix", "rate()"],
    ),
    (
        "empty query",
        {"query": ""},
        ["field 'query'", "the query is empty"],
    ),
    (
        "unknown key",
        {"treshold": 0.8},
        ["field 'treshold'", "unknown field", "did you mean 'threshold'"],
    ),
    (
        "missing key",
        {"escalation": None},
        ["field 'escalation'", "not an escalation delay"],
    ),
    (
        "window shorter than interval",
        {"window": "30s", "interval": "1m"},
        ["field 'window'", "the window 30s is shorter than the interval 1m"],
    ),
    (
        "interval zero",
        {"interval": "0s"},
        ["field 'interval'", "not longer than 0s"],
    ),
    (
        "bad comparison",
        {"comparison": "=>"},
        ["field 'comparison'", "'=>' is not one of", '">="'],
    ),
    (
        "bad escalation",
        {"escalation": "soon"},
        ["field 'escalation'", "'soon' is not an escalation delay", "immediate"],
    ),
    (
        "bad severity",
        {"severity": "urgent"},
        ["field 'severity'", "'urgent' is not one of", '"critical"'],
    ),
    (
        "bad mode",
        {"mode": "off"},
        ["field 'mode'", "'off' is not one of", '"paused"'],
    ),
    (
        "actions not a list",
        {"actions": "scale_replicas"},
        ["field 'actions'", "is not a list of actions"],
    ),
    (
        "label value not text",
        {"labels": {"tier": 1}},
        ["field 'labels'", "label 'tier': 1 is not text"],
    ),
    (
        "clear threshold on breach side",
        {"clear_threshold": 0.9},
        ["field 'clear_threshold'", "0.9 is not below the threshold 0.8"],
    ),
    (
        "max series zero",
        {"max_series": 0},
        ["field 'max_series'", "0 is not a positive whole number"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [case[1:] for case in BROKEN_ENTRIES],
    ids=[case[0] for case in BROKEN_ENTRIES],
)
def test_broken_entry_is_reported(tmp_path, changes, expected):
    entry = yaml.safe_load(ONE_WATCHER)["performance"]["api_latency"]
    entry.update(changes)
    path = write_catalog(
        tmp_path, yaml.safe_dump({"performance": {"api_latency": entry}})
    )

    message = import_error(path)

    assert "watchers.yaml:" in message
    assert "watcher 'api_latency'" in message
    for text in expected:
        assert text in message
    assert Watcher.objects.count() == 0


def test_missing_required_key_is_reported(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER.replace("    escalation: 15m\n", ""))

    message = import_error(path)

    assert "watcher 'api_latency', field 'escalation': missing" in message


def test_error_names_file_and_line(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER.replace("10m", "10 minutes"))

    message = import_error(path)

    assert f"{path}:5: watcher 'api_latency', field 'window'" in message


BROKEN_FILES = [
    (
        "duplicate name across groups",
        ONE_WATCHER + ONE_WATCHER.replace("performance:", "security:"),
        [
            "watcher 'api_latency' in group 'security' is already defined in "
            "group 'performance'",
            "unique across groups",
        ],
    ),
    (
        "duplicate yaml key",
        ONE_WATCHER.replace("    window: 10m\n", "    window: 10m\n    window: 5m\n"),
        ["watchers.yaml:6:5:", "duplicate key 'window', first written on line 5"],
    ),
    (
        "duplicate watcher key",
        ONE_WATCHER + ONE_WATCHER.replace("performance:\n", ""),
        ["watchers.yaml:9:3:", "duplicate key 'api_latency'"],
    ),
    (
        "yaml syntax error",
        ONE_WATCHER.replace("threshold: 0.8", "threshold: [0.8"),
        ["watchers.yaml:", "invalid YAML"],
    ),
    (
        "top level not a mapping",
        "- api_latency\n- disk_usage\n",
        ["the top level is a list", "mapping of group names"],
    ),
    (
        "empty file",
        "# nothing yet\n",
        ["the file is empty"],
    ),
    (
        "group not a mapping",
        "performance:\n  - api_latency\n",
        ["group 'performance' must be a mapping", "it is a list"],
    ),
    (
        "watcher name not a slug",
        ONE_WATCHER.replace("api_latency:", "api latency:"),
        ["watcher name 'api latency'", "letters, digits"],
    ),
    (
        "entry not a mapping",
        "performance:\n  api_latency: up > 1\n",
        ["watcher 'api_latency' must be a mapping of fields"],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [case[1:] for case in BROKEN_FILES],
    ids=[case[0] for case in BROKEN_FILES],
)
def test_broken_file_is_reported(tmp_path, text, expected):
    path = write_catalog(tmp_path, text)

    message = import_error(path)

    for fragment in expected:
        assert fragment in message
    assert Watcher.objects.count() == 0


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    path = write_catalog(tmp_path, "performance:\n  api_latency: {query: 'up'\n")

    message = import_error(path)

    assert f"{path}:3:1: invalid YAML" in message


def test_unreadable_file_is_reported(tmp_path):
    message = import_error(str(tmp_path / "missing.yaml"))

    assert "missing.yaml: cannot read the file" in message


def test_one_bad_entry_writes_nothing(tmp_path):
    run_import(str(CATALOG))
    before = dict(Watcher.objects.values_list("name", "updated_at"))
    text = CATALOG.read_text()
    text = text.replace("threshold: 0.85", "threshold: 0.9")
    text = text.replace("threshold: 75", "threshold: 80")
    text = text.replace("- log_rotation", "- rotate_logs")
    path = write_catalog(tmp_path, text)

    message = import_error(path)

    assert "unknown action 'rotate_logs'" in message
    assert "nothing was written" in message
    assert dict(Watcher.objects.values_list("name", "updated_at")) == before
    assert Watcher.objects.get(name="memory_usage").threshold == 0.85


def test_all_errors_are_reported_in_one_run(tmp_path):
    text = CATALOG.read_text()
    text = text.replace("window: 10m", "window: ten", 1)
    text = text.replace("threshold: 10 ", 'threshold: "10/min" ')
    text = text.replace("escalation: 30m", "escalation: later")
    path = write_catalog(tmp_path, text)

    message = import_error(path)

    assert "watcher 'sandra_api_latency', field 'window'" in message
    assert "watcher 'failed_auth_attempts', field 'threshold'" in message
    assert "watcher 'disk_usage', field 'escalation'" in message
    assert "3 errors; nothing was written." in message


def test_each_unknown_action_is_its_own_error(tmp_path):
    path = write_catalog(
        tmp_path,
        ONE_WATCHER.replace("- scale_replicas", "- scale_replica\n      - nap"),
    )

    message = import_error(path)

    assert "unknown action 'scale_replica': did you mean 'scale_replicas'?" in message
    assert "unknown action 'nap': the known actions are" in message
    assert "2 errors; nothing was written." in message


def test_window_checked_beside_a_bad_threshold(tmp_path):
    text = ONE_WATCHER.replace("threshold: 0.8", "threshold: high")
    path = write_catalog(
        tmp_path, text.replace("window: 10m", "window: 30s\n    interval: 1m")
    )

    message = import_error(path)

    assert "field 'threshold'" in message
    assert "the window 30s is shorter than the interval 1m" in message


def test_bare_comparison_sign_is_explained(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER + "    comparison: >\n")

    message = import_error(path)

    assert "field 'comparison': '' is not one of" in message
    assert "in quotes because YAML reads a bare >" in message


def test_clear_threshold_above_for_less_than(tmp_path):
    text = ONE_WATCHER + '    comparison: "<"\n    clear_threshold: 0.9\n'
    path = write_catalog(tmp_path, text)

    run_import(path)

    assert Watcher.objects.get(name="api_latency").clear_threshold == 0.9


def test_layout_and_field_errors_reported_together(tmp_path):
    text = ONE_WATCHER + ONE_WATCHER.replace(
        "performance:\n  api_latency:", "  db load:"
    )
    path = write_catalog(tmp_path, text.replace("window: 10m", "window: ten", 1))

    message = import_error(path)

    assert "watcher name 'db load'" in message
    assert "watcher 'api_latency', field 'window'" in message


# Overlay


def test_overlay_sets_certificate_comparison():
    _stdout, stderr = run_import(str(CATALOG), "--overlay", str(OVERRIDES))

    assert Watcher.objects.get(name="ssl_certificate_expiry").comparison == "<"
    assert "Warning" not in stderr


def test_overlay_keeps_other_keys_of_the_entry():
    run_import(str(CATALOG), "--overlay", str(OVERRIDES))

    expiry = Watcher.objects.get(name="ssl_certificate_expiry")
    assert expiry.threshold == 7
    assert action_names(expiry)[0] == "automated_cert_renewal"


def test_overlay_for_unknown_watcher_is_an_error(tmp_path):
    overlay = write_catalog(
        tmp_path, "infrastructure:\n  ssl_expiry:\n    comparison: '<'\n", "local.yaml"
    )

    message = import_error(str(CATALOG), "--overlay", overlay)

    assert "local.yaml:2: watcher 'ssl_expiry' is not in the catalog" in message
    assert Watcher.objects.count() == 0


def test_overlay_value_is_validated_with_its_origin(tmp_path):
    overlay = write_catalog(
        tmp_path, "performance:\n  memory_usage:\n    threshold: high\n", "local.yaml"
    )

    message = import_error(str(CATALOG), "--overlay", overlay)

    assert "local.yaml:3: watcher 'memory_usage', field 'threshold'" in message


def test_overlay_in_another_group_is_an_error(tmp_path):
    overlay = write_catalog(
        tmp_path, "security:\n  memory_usage:\n    severity: high\n", "local.yaml"
    )

    message = import_error(str(CATALOG), "--overlay", overlay)

    assert "is in group 'performance' of the catalog, not 'security'" in message


# Window scale


def test_window_scale_latency():
    run_import(str(CATALOG), "--window-scale", "20")

    latency = Watcher.objects.get(name="sandra_api_latency")
    assert latency.window_seconds == 30
    assert latency.interval_seconds == 5
    assert latency.escalation_delay_seconds == 45


def test_window_scale_failed_auth():
    run_import(str(CATALOG), "--window-scale", "20")

    failed_auth = Watcher.objects.get(name="failed_auth_attempts")
    assert failed_auth.window_seconds == 5
    assert failed_auth.interval_seconds == 5
    assert failed_auth.escalation_delay_seconds == 0


def test_window_scale_daily_keeps_window_zero():
    run_import(str(CATALOG), "--window-scale", "20")

    expiry = Watcher.objects.get(name="ssl_certificate_expiry")
    assert expiry.window_seconds == 0
    assert expiry.interval_seconds == 4320


def test_window_scale_divides_resolve_delay(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER + "    resolve_delay: 5m\n")

    run_import(path, "--window-scale", "10")

    assert Watcher.objects.get(name="api_latency").resolve_delay_seconds == 30


def test_window_scale_message_comes_first():
    stdout, _stderr = run_import(str(CATALOG), "--window-scale", "20")

    first_line = stdout.splitlines()[0]
    assert "scaled down by 20" in first_line
    assert "10m window becomes 30s" in first_line


@pytest.mark.parametrize("factor", ["1", "0.5", "-3", "nan"])
def test_window_scale_must_exceed_one(factor):
    message = import_error(str(CATALOG), "--window-scale", factor)

    assert "--window-scale" in message
    assert Watcher.objects.count() == 0


# Prune, dry run and runtime state


def test_prune_deletes_watchers_not_in_file(tmp_path):
    run_import(str(CATALOG))
    path = write_catalog(tmp_path, ONE_WATCHER)

    stdout, _stderr = run_import(path, "--prune")

    assert list(Watcher.objects.values_list("name", flat=True)) == ["api_latency"]
    assert "deleted disk_usage" in stdout


def test_prune_pauses_watchers_with_incidents(tmp_path):
    run_import(str(CATALOG))
    disk = Watcher.objects.get(name="disk_usage")
    Incident.objects.create(
        watcher=disk, fingerprint="f" * 64, opened_at=timezone.now()
    )
    path = write_catalog(tmp_path, ONE_WATCHER)

    stdout, _stderr = run_import(path, "--prune")

    disk.refresh_from_db()
    assert disk.mode == "paused"
    assert "paused disk_usage" in stdout
    assert Watcher.objects.count() == 2


def test_without_prune_missing_watchers_are_kept(tmp_path):
    run_import(str(CATALOG))
    path = write_catalog(tmp_path, ONE_WATCHER)

    stdout, _stderr = run_import(path)

    assert Watcher.objects.count() == 10
    assert "kept, not in the file; --prune deletes them" in stdout


def test_dry_run_writes_nothing():
    stdout, _stderr = run_import(str(CATALOG), "--dry-run")

    assert Watcher.objects.count() == 0
    assert MitigationStep.objects.count() == 0
    assert "created sandra_api_latency" in stdout
    assert "Dry run: nothing was written." in stdout


def test_dry_run_prune_deletes_nothing(tmp_path):
    run_import(str(CATALOG))
    path = write_catalog(tmp_path, ONE_WATCHER)

    stdout, _stderr = run_import(path, "--prune", "--dry-run")

    assert Watcher.objects.count() == 9
    assert "deleted disk_usage" in stdout


def test_changed_threshold_is_reported(tmp_path):
    run_import(str(CATALOG))
    path = write_catalog(
        tmp_path, CATALOG.read_text().replace("threshold: 0.85", "threshold: 0.9")
    )

    stdout, _stderr = run_import(path)

    assert "updated memory_usage" in stdout
    assert "threshold: 0.85 -> 0.9" in stdout
    assert "8 unchanged" in stdout


def test_runtime_fields_survive_threshold_change(tmp_path):
    run_import(str(CATALOG))
    evaluated_at = timezone.now()
    Watcher.objects.filter(name="memory_usage").update(
        next_evaluation_at=evaluated_at,
        evaluated_slot=evaluated_at,
        health="error",
        last_error="connection refused",
        consecutive_errors=3,
        last_evaluated_at=evaluated_at,
        last_value=0.7,
        last_series_count=4,
    )
    path = write_catalog(
        tmp_path, CATALOG.read_text().replace("threshold: 0.85", "threshold: 0.9")
    )

    run_import(path)

    memory = Watcher.objects.get(name="memory_usage")
    assert memory.threshold == 0.9
    assert memory.next_evaluation_at == evaluated_at
    assert memory.evaluated_slot == evaluated_at
    assert memory.health == "error"
    assert memory.last_error == "connection refused"
    assert memory.consecutive_errors == 3
    assert memory.last_evaluated_at == evaluated_at
    assert memory.last_value == 0.7
    assert memory.last_series_count == 4


def test_changed_actions_replace_steps(tmp_path):
    run_import(str(CATALOG))
    text = CATALOG.read_text().replace(
        "      - clear_caches\n", "      - enhanced_logging\n"
    )
    path = write_catalog(tmp_path, text)

    stdout, _stderr = run_import(path)

    latency = Watcher.objects.get(name="sandra_api_latency")
    assert action_names(latency) == [
        "scale_replicas",
        "enhanced_logging",
        "activate_circuit_breaker",
    ]
    assert "actions: ['scale_replicas', 'clear_caches'" in stdout


def test_changed_actions_keep_parameters_of_remaining_steps(tmp_path):
    run_import(str(CATALOG))
    MitigationStep.objects.filter(
        watcher__name="sandra_api_latency", action="scale_replicas"
    ).update(parameters={"deployment": "sandra-api"})
    text = CATALOG.read_text().replace(
        "      - scale_replicas\n      - clear_caches\n",
        "      - clear_caches\n      - scale_replicas\n",
    )
    path = write_catalog(tmp_path, text)

    run_import(path)

    step = MitigationStep.objects.get(
        watcher__name="sandra_api_latency", action="scale_replicas"
    )
    assert step.position == 2
    assert step.parameters == {"deployment": "sandra-api"}


def test_export_to_stdout_with_dash():
    run_import(str(CATALOG))
    stdout = io.StringIO()

    call_command("export_watchers", "-", stdout=stdout)

    assert stdout.getvalue() == export_text()


# Operator changes and day-long windows


def test_reimport_keeps_mode_paused_by_an_operator():
    run_import(str(CATALOG))
    Watcher.objects.filter(name="disk_usage").update(mode="paused")

    stdout, stderr = run_import(str(CATALOG))

    assert Watcher.objects.get(name="disk_usage").mode == "paused"
    assert "No changes" in stdout
    assert "apart from the mode kept for 1 (see the warning)" in stdout
    assert "disk_usage stays paused: the file sets no mode" in stderr
    assert "Add 'mode: active' to the entry" in stderr


def test_day_long_window_is_a_hold_time_not_the_daily_schedule(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER.replace("window: 10m", "window: 24h"))

    run_import(path)

    watcher = Watcher.objects.get(name="api_latency")
    assert watcher.window_seconds == 86400
    assert watcher.interval_seconds == 60


def test_day_long_window_round_trips_through_export(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER.replace("window: 10m", "window: 1d"))
    run_import(path)

    exported = write_catalog(tmp_path, export_text(), name="exported.yaml")
    stdout, _stderr = run_import(exported)

    assert "No changes" in stdout
    assert Watcher.objects.get(name="api_latency").window_seconds == 86400


def test_hourly_is_not_a_window(tmp_path):
    path = write_catalog(tmp_path, ONE_WATCHER.replace("window: 10m", "window: hourly"))

    message = import_error(path)

    assert "field 'window'" in message
    assert "'hourly' is not a duration" in message


def test_unit_is_stored(tmp_path):
    path = write_catalog(
        tmp_path, ONE_WATCHER.replace("window: 10m", "window: 10m\n    unit: s")
    )

    run_import(path)

    assert Watcher.objects.get(name="api_latency").unit == "s"


@pytest.mark.parametrize("unit", ["3", "[s]", '"requests per second, p95"'])
def test_invalid_unit_is_reported(tmp_path, unit):
    path = write_catalog(
        tmp_path, ONE_WATCHER.replace("window: 10m", f"window: 10m\n    unit: {unit}")
    )

    message = import_error(path)

    assert "field 'unit'" in message
    assert "is not a unit" in message
    assert not Watcher.objects.exists()
