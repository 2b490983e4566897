"""Allow-listed commands, run for real without a shell."""

import time

import pytest

from mitigations.actions.base import ParameterError, PermanentError, RetryableError
from mitigations.choices import Risk
from mitigations.registry import get_action

ECHO = "/usr/bin/echo"
PRINTF = "/usr/bin/printf"
SH = "/usr/bin/sh"
SLEEP = "/usr/bin/sleep"
ENV = "/usr/bin/env"
TOUCH = "/usr/bin/touch"


@pytest.fixture(autouse=True)
def allowlist(settings):
    settings.COMMAND_ALLOWLIST = [ECHO, PRINTF, SH, SLEEP, ENV, TOUCH]


def test_command_runs_with_labels(context_for):
    context = context_for(
        "log_rotation",
        {"argv": [ECHO, "rotated", "{service}"]},
        labels={"service": "sandra-api"},
    )

    output = get_action("log_rotation").run(context)

    assert output["exit_code"] == 0
    assert output["stdout"] == "rotated sandra-api\n"
    assert output["argv"] == [ECHO, "rotated", "sandra-api"]


def test_label_with_shell_syntax_stays_one_argument(context_for, tmp_path):
    victim = tmp_path / "x"
    victim.mkdir()
    label = f"; rm -rf {victim}"
    context = context_for(
        "temp_file_cleanup",
        {"argv": [PRINTF, "[%s]", "{path}"]},
        labels={"path": label},
    )

    output = get_action("temp_file_cleanup").run(context)

    assert output["stdout"] == f"[{label}]"
    assert victim.is_dir()


def test_command_failure_reports_exit_code(context_for):
    context = context_for(
        "archive_old_data", {"argv": [SH, "-c", "echo disk full >&2; exit 3"]}
    )

    with pytest.raises(PermanentError) as raised:
        get_action("archive_old_data").run(context)

    assert "exited with code 3" in str(raised.value)
    assert "disk full" in str(raised.value)


def test_command_timeout_kills_it(context_for):
    context = context_for("log_rotation", {"argv": [SLEEP, "30"], "timeout_seconds": 1})
    started = time.monotonic()

    with pytest.raises(RetryableError, match="did not finish within 1s"):
        get_action("log_rotation").run(context)

    assert time.monotonic() - started < 5


def test_command_gets_no_worker_environment(context_for, monkeypatch):
    monkeypatch.setenv("BASTION_SECRET_KEY", "worker-secret-9")
    context = context_for("log_rotation", {"argv": [ENV]})

    output = get_action("log_rotation").run(context)

    assert "worker-secret-9" not in output["stdout"]
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in output["stdout"]


def test_command_dry_run_runs_nothing(context_for, tmp_path):
    marker = tmp_path / "ran"
    context = context_for("temp_file_cleanup", {"argv": [TOUCH, str(marker)]})
    action = get_action("temp_file_cleanup")

    output = action.dry_run(context)
    dry_marker_exists = marker.exists()
    action.run(context)

    assert output["would_run"] == [TOUCH, str(marker)]
    assert output["executable_found"] is True
    assert dry_marker_exists is False
    assert marker.exists()


def test_command_target_names_executable(context_for):
    context = context_for("log_rotation", {"argv": [ECHO, "x"]})

    assert get_action("log_rotation").target(context.params) == f"command {ECHO}"


def test_command_risks():
    assert get_action("log_rotation").risk == Risk.DISRUPTIVE
    assert get_action("temp_file_cleanup").risk == Risk.DISRUPTIVE
    assert get_action("archive_old_data").risk == Risk.DESTRUCTIVE


@pytest.mark.parametrize(
    "argv",
    [
        ["/usr/bin/rm", "-rf", "/tmp/x"],
        ["echo", "relative"],
        ["/usr/bin/../bin/echo", "dotted"],
        [],
    ],
)
def test_command_rejects_argv(context_for, argv):
    with pytest.raises(ParameterError) as raised:
        context_for("log_rotation", {"argv": argv})

    assert raised.value.field == "argv"


def test_command_missing_argv_names_field(context_for):
    with pytest.raises(ParameterError, match="missing") as raised:
        context_for("archive_old_data", {})

    assert raised.value.field == "argv"


def test_command_missing_executable_is_permanent(context_for, settings, tmp_path):
    absent = str(tmp_path / "no-such-tool")
    settings.COMMAND_ALLOWLIST = [absent]
    context = context_for("log_rotation", {"argv": [absent]})

    with pytest.raises(PermanentError, match="cannot start"):
        get_action("log_rotation").run(context)


def test_empty_allowlist_rejects_everything(context_for, settings):
    settings.COMMAND_ALLOWLIST = []

    with pytest.raises(ParameterError, match="empty"):
        context_for("log_rotation", {"argv": [ECHO]})
