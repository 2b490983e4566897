"""Scripted breaches that check the running demo from end to end.

``./scripts/demo --scenario latency`` (or ``security``, or both) starts the
demo, causes the breach through sandra-api's control endpoint, and follows
Bastion's own records until the outcome that docs/demo.md describes. Each
event prints with the seconds since the breach began. An event that does
not happen in time fails the run, and the faults are reset either way.
"""

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from demo.control import send
from demo.sandra_api import Faults
from devstack.processes import ProcessGroup

T = TypeVar("T")
LATENCY_SECONDS = 0.85
ATTACKER_IP = "203.0.113.7"
FAILED_LOGINS_PER_SECOND = 30.0


class ScenarioFailed(RuntimeError):
    pass


class Timeline:
    """Print events with the seconds since the scenario began; wait for them."""

    def __init__(self, name: str, group: ProcessGroup) -> None:
        self.name = name
        self.group = group
        self.started = time.monotonic()

    def mark(self, text: str) -> None:
        print(f"  {time.monotonic() - self.started:6.1f}s  {text}", flush=True)

    def wait_for(
        self, event: str, condition: Callable[[], T | None], timeout_seconds: float
    ) -> T:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            self.group.check_alive()
            found = condition()
            if found:
                self.mark(event)
                return found
            time.sleep(0.5)
        raise ScenarioFailed(
            f"{self.name}: {event} did not happen within {timeout_seconds:.0f}s; "
            f"the logs are in {self.group.log_dir}"
        )


def setup_django(environment: dict[str, str]) -> None:
    """Point this process's Django at the demo's database, to read its records."""
    os.environ.update(environment)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bastion.settings")

    import django

    django.setup()


def wait_until_quiet(timeline: Timeline, incidents: Any) -> None:
    """Wait until an earlier run's incidents of this kind have resolved.

    The demo keeps its database between runs, so an incident left open by
    the last run would take the new breach's series and no new one would open.
    """
    timeline.wait_for(
        "no incident of this kind is open",
        lambda: not incidents.filter(resolved_at__isnull=True).exists(),
        120,
    )
    timeline.started = time.monotonic()


def latency(sandra_api_url: str, receiver_url: str, group: ProcessGroup) -> None:
    """Check that a latency breach is scaled and resolves without a person."""
    from django.utils import timezone

    from mitigations.choices import AttemptStatus, RunStatus
    from mitigations.models import ActionRun, MitigationAttempt
    from watchers.models import Incident

    timeline = Timeline("latency", group)
    wait_until_quiet(
        timeline, Incident.objects.filter(watcher__name="sandra_api_latency")
    )
    began = timezone.now()
    incidents = Incident.objects.filter(
        watcher__name="sandra_api_latency", opened_at__gte=began
    )
    send(sandra_api_url, {"latency_seconds": LATENCY_SECONDS})
    timeline.mark(f"sandra-api answers {LATENCY_SECONDS}s slower at 2 replicas")

    timeline.wait_for("a sandra_api_latency incident opens", incidents.first, 120)
    scaled = timeline.wait_for(
        "scale_replicas succeeds",
        ActionRun.objects.filter(
            incident__in=incidents,
            action="scale_replicas",
            status=RunStatus.SUCCEEDED,
        ).first,
        60,
    )
    output: dict[str, Any] = scaled.output
    timeline.mark(
        f"  Deployment scaled from {output.get('before')} to {output.get('after')} "
        f"replicas, {output.get('ready')} ready after {output.get('waited_seconds')}s"
    )
    timeline.wait_for(
        "every sandra_api_latency incident resolves",
        lambda: not incidents.filter(resolved_at__isnull=True).exists(),
        120,
    )

    attempt = MitigationAttempt.objects.get(pk=scaled.attempt_id)
    if attempt.status != AttemptStatus.MITIGATED:
        raise ScenarioFailed(
            f"latency: the scaling attempt ended {attempt.status}, not mitigated: "
            f"{attempt.note}"
        )
    timeline.mark(f"the scaling attempt is {attempt.status}: {attempt.note}")
    decided = ActionRun.objects.filter(
        incident__in=incidents, approval__decided_by__isnull=False
    )
    if decided.exists():
        raise ScenarioFailed("latency: a person decided a step, but none should")


def security(sandra_api_url: str, receiver_url: str, group: ProcessGroup) -> None:
    """Check that failed logins block the address, escalate and wait for a person."""
    from django.utils import timezone

    from mitigations.choices import RunStatus
    from mitigations.models import ActionRun, Approval, Decision
    from watchers.models import Incident

    timeline = Timeline("security", group)
    attacks = Incident.objects.filter(
        watcher__name="failed_auth_attempts", labels__source_ip=ATTACKER_IP
    )
    wait_until_quiet(timeline, attacks)
    began = timezone.now()
    incidents = attacks.filter(opened_at__gte=began)
    send(
        sandra_api_url,
        {
            "failed_logins_per_second": FAILED_LOGINS_PER_SECOND,
            "attacker_ip": ATTACKER_IP,
        },
    )
    timeline.mark(f"{FAILED_LOGINS_PER_SECOND:g} failed logins/s from {ATTACKER_IP}")

    incident = timeline.wait_for(
        "a failed_auth_attempts incident opens for the address", incidents.first, 120
    )
    timeline.wait_for(
        f"temporary_ip_block blocks {ATTACKER_IP}",
        ActionRun.objects.filter(
            incident=incident,
            action="temporary_ip_block",
            status=RunStatus.SUCCEEDED,
        ).first,
        60,
    )
    timeline.wait_for(
        "the incident is escalated",
        lambda: (
            Incident.objects.filter(pk=incident.pk, escalated_at__isnull=False)
            .values_list("escalation_severity", flat=True)
            .first()
        ),
        60,
    )
    waiting = timeline.wait_for(
        "a later step waits for approval",
        Approval.objects.filter(
            run__incident=incident, decision=Decision.PENDING
        ).first,
        60,
    )
    timeline.mark(f"  /approvals/{waiting.pk}/ asks about {waiting.run.action}")
    timeline.wait_for(
        "the Slack receiver has the escalation",
        lambda: slack_message(receiver_url, f"incident #{incident.pk}"),
        60,
    )


def slack_message(receiver_url: str, text: str) -> str | None:
    """Return the path of the first message on the Slack receiver that mentions text."""
    messages = httpx.get(f"{receiver_url}/messages.json", timeout=5).json()
    for message in messages:
        if text in str(message):
            return str(message.get("path"))
    return None


SCENARIOS = {"latency": latency, "security": security}


def run_scenarios(
    names: list[str],
    environment: dict[str, str],
    sandra_api_url: str,
    receiver_url: str,
    group: ProcessGroup,
) -> int:
    """Run the named scenarios in order; return 0 when all of them passed."""
    setup_django(environment)
    for name in names:
        print(f"Scenario {name}:", flush=True)
        try:
            SCENARIOS[name](sandra_api_url, receiver_url, group)
        except ScenarioFailed as failure:
            print(f"Scenario {name} failed: {failure}", flush=True)
            return 1
        finally:
            send(sandra_api_url, vars(Faults()))
        print(f"Scenario {name} passed.", flush=True)
    return 0
