"""Allow-listed commands, run without a shell: log rotation, cleanup, archiving.

A step gives ``argv``, usually from the site defaults. Its first item must be
an absolute path listed in BASTION_COMMAND_ALLOWLIST. Each item may name
incident labels such as ``{service}``, and stays one argument after the
label is filled in, because no shell ever parses the command line.
"""

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    ParameterError,
    PermanentError,
    RetryableError,
)
from mitigations.choices import Risk
from mitigations.registry import register

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 2048
# Commands get this environment instead of the worker's, which contains
# Bastion's database URL and secret key.
COMMAND_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _tail(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:]


class RunCommand(Action):
    risk = Risk.DISRUPTIVE
    description = "Run the configured allow-listed command, without a shell."
    parameters = (
        Parameter(
            "argv",
            kind="string_list",
            help="The command and its arguments, one item each. The command is "
            "an absolute path listed in BASTION_COMMAND_ALLOWLIST.",
        ),
        Parameter(
            "timeout_seconds",
            kind="number",
            default=120.0,
            minimum=1,
            help="Stop the command after this many seconds.",
        ),
    )

    def clean(
        self,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        cleaned = super().clean(values, labels)
        if "argv" in cleaned:
            if not cleaned["argv"]:
                raise ParameterError("argv", "the list is empty: give the command")
            _check_allowed(cleaned["argv"][0])
        return cleaned

    def target(self, params: Mapping[str, Any]) -> str:
        return f"command {params['argv'][0]}" if params.get("argv") else ""

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        executable = context.params["argv"][0]
        return {
            "would_run": context.params["argv"],
            "executable_found": os.access(executable, os.X_OK),
            "timeout_seconds": self._timeout(context),
        }

    def _timeout(self, context: ActionContext) -> float:
        return max(
            1.0, min(context.params["timeout_seconds"], context.remaining_seconds())
        )

    def run(self, context: ActionContext) -> dict[str, Any]:
        argv = context.params["argv"]
        timeout = self._timeout(context)
        started = time.monotonic()
        try:
            process = subprocess.Popen(  # noqa: S603 - argv is allow-listed, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=COMMAND_ENVIRONMENT,
                start_new_session=True,
            )
        except OSError as error:
            raise PermanentError(f"cannot start {argv[0]}: {error.strerror}") from None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The command's own children are in its session: stop them too.
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RetryableError(
                f"{argv[0]} did not finish within {timeout:g}s and was killed"
            ) from None
        duration = round(time.monotonic() - started, 3)
        return self._result(context, argv, process.returncode, stdout, stderr, duration)

    def _result(
        self,
        context: ActionContext,
        argv: list[str],
        exit_code: int,
        stdout: bytes,
        stderr: bytes,
        duration: float,
    ) -> dict[str, Any]:
        logger.info(
            "%s ran %s for incident %s: exit code %s in %.3fs",
            self.name,
            argv[0],
            context.incident_id,
            exit_code,
            duration,
        )
        if exit_code != 0:
            raise PermanentError(
                f"{argv[0]} exited with code {exit_code}: "
                f"{_tail(stderr)[-500:].strip() or 'no error output'}"
            )
        return {
            "argv": argv,
            "exit_code": exit_code,
            "stdout": _tail(stdout),
            "stderr": _tail(stderr),
            "duration_seconds": duration,
        }


def _check_allowed(executable: str) -> None:
    allowed = list(settings.COMMAND_ALLOWLIST)
    if not os.path.isabs(executable):
        raise ParameterError(
            "argv",
            f"{executable!r} is not an absolute path: name the executable "
            "in full, such as /usr/sbin/logrotate",
        )
    if os.path.normpath(executable) != executable or executable not in allowed:
        raise ParameterError(
            "argv",
            f"{executable} is not in BASTION_COMMAND_ALLOWLIST "
            f"({', '.join(allowed) or 'empty'}): add its absolute path there",
        )


register("log_rotation", "temp_file_cleanup")(RunCommand)


@register("archive_old_data")
class ArchiveOldData(RunCommand):
    """Archiving moves data away from where the application reads it."""

    risk = Risk.DESTRUCTIVE
