"""The whole demo, run as a user runs it, with its scripted breaches.

``python -m demo --scenario latency --scenario security`` starts every
process of the demo: Prometheus, the exporters, sandra-api under load, the
Kubernetes stand-in, the Slack receiver, a private Redis, and Celery worker
and beat. It then causes each breach and follows Bastion's records. The
latency breach must be scaled and resolve without a person. The failed
logins must block the address, escalate, and leave a step waiting for
approval. The demo runs in a folder of its own, so a user's var/demo is
left alone.
"""

import os
import subprocess
import sys

import pytest

from demo import REPOSITORY

pytestmark = pytest.mark.prometheus

TIMEOUT_SECONDS = 600


def test_latency_and_security_scenarios_pass(tmp_path):
    environment = {**os.environ, "BASTION_DEMO_VAR_DIR": str(tmp_path / "demo")}
    command = [sys.executable, "-m", "demo", "--no-web"]
    command += ["--scenario", "latency", "--scenario", "security"]

    result = subprocess.run(
        command,
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Scenario latency passed." in output
    assert "Deployment scaled from 2 to 3 replicas" in output
    assert "the scaling attempt is mitigated" in output
    assert "Scenario security passed." in output
    assert "temporary_ip_block blocks 203.0.113.7" in output
