"""Fixtures shared by every test module.

Tests run against the PostgreSQL named by BASTION_DATABASE_URL (the README's
test command sets it to the machine's server); pytest-django creates and drops
a ``test_`` database beside it.
"""

import os
import time
from pathlib import Path

import pytest
import redis

from devstack.gauges import GaugeExporter
from devstack.prometheus import PrometheusServer, ScrapeTarget, start_prometheus


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("BASTION_DATABASE_URL") and not os.environ.get(
        "BASTION_ALLOW_SQLITE_TESTS"
    ):
        raise pytest.UsageError(
            "BASTION_DATABASE_URL is not set: the tests need PostgreSQL, e.g. "
            "BASTION_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test "
            "(or run 'make test')"
        )


@pytest.fixture(scope="session", autouse=True)
def empty_task_queue():
    """Drop the tasks that tests queued without a worker to run them.

    Without this, the broker's queue grows with every run, and a worker
    started later on the same database would run stale steps.
    """
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("celery")
    yield
    client.delete("celery")
    client.close()


@pytest.fixture
def persona_factory(django_user_model):
    """Create the owner / approver / outsider users permission tests need."""

    def create(name: str, *permissions: str, staff: bool = False):
        from django.contrib.auth.models import Permission

        user = django_user_model.objects.create_user(
            username=name, password=f"{name}-password-1", is_staff=staff
        )
        for codename in permissions:
            app_label, code = codename.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=code)
            )
        return user

    return create


@pytest.fixture(scope="session")
def exporter():
    exporter = GaugeExporter().start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def prometheus(exporter, tmp_path_factory) -> PrometheusServer:
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    server = start_prometheus(
        workdir, [ScrapeTarget("test", exporter.address)], scrape_interval="1s"
    )
    yield server
    server.stop()


@pytest.fixture
def settle(prometheus):
    """Return a function that waits until Prometheus returns what a test expects."""

    def wait(expression: str, check, timeout_seconds: float = 15.0) -> list:
        deadline = time.monotonic() + timeout_seconds
        result: list = []
        while time.monotonic() < deadline:
            result = prometheus.query(expression)
            if check(result):
                return result
            time.sleep(0.2)
        raise AssertionError(f"{expression} never met the check; last result {result}")

    return wait
