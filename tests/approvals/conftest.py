import pytest

from bastion.celery import app as celery_app
from devstack.processes import free_port
from devstack.receiver import HttpReceiver


@pytest.fixture
def receiver():
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def eager_celery():
    """Run tasks sent with delay() at once in the calling process.

    No task of these tests reaches the shared Redis broker, where a demo's
    worker or another test run could receive it.
    """
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _guardrail_settings(settings):
    settings.ACTION_COOLDOWN_SECONDS = 0
    settings.AUTOMATION_BUDGET_PER_HOUR = 100
    settings.STEP_RETRIES = 0
    # With eager tasks a finished step verifies at once; one attempt and no
    # verification window keep the chain from starting attempts of its own.
    settings.VERIFY_WINDOW_SECONDS = 0
    settings.MAX_MITIGATION_ATTEMPTS = 1
    # Nothing listens here, so pages that read the metric fail fast unless a
    # test points them at the real Prometheus.
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    settings.PROMETHEUS_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def approver(persona_factory):
    return persona_factory(
        "approver", "mitigations.view_approval", "mitigations.decide_approval"
    )


@pytest.fixture
def second_approver(persona_factory):
    return persona_factory(
        "second-approver", "mitigations.view_approval", "mitigations.decide_approval"
    )


@pytest.fixture
def owner(persona_factory):
    """An operator who proposes steps and may decide, but not on their own."""
    return persona_factory(
        "owner",
        "mitigations.view_approval",
        "mitigations.add_approval",
        "mitigations.decide_approval",
    )


@pytest.fixture
def outsider(persona_factory):
    return persona_factory("outsider")


@pytest.fixture
def viewer(persona_factory):
    return persona_factory("viewer", "mitigations.view_approval")
