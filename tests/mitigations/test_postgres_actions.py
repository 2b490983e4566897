"""kill_long_running_queries against the machine's PostgreSQL.

Real ``pg_sleep`` sessions run as roles this module creates, in a database
of its own; every run that terminates is limited to that database, so no
other session on the server is touched.
"""

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from django.db import connection as django_connection

from mitigations.actions.base import ParameterError, RetryableError
from mitigations.registry import get_action

SERVER = "postgres://postgres@127.0.0.1:5432"
SUFFIX = os.getpid()
TARGET_DB = f"bastion_kill_target_{SUFFIX}"
APP_ROLE = f"bastion_kill_app_{SUFFIX}"
ADMIN_ROLE = f"bastion_kill_admin_{SUFFIX}"

pytestmark = pytest.mark.django_db


def _admin() -> psycopg.Connection:
    return psycopg.connect(f"{SERVER}/postgres", autocommit=True)


@pytest.fixture(scope="module")
def target_database() -> Iterator[str]:
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{TARGET_DB}"')
        for role in (APP_ROLE, ADMIN_ROLE):
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
    yield TARGET_DB
    with _admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = ANY(%s)",
            [[APP_ROLE, ADMIN_ROLE]],
        )
        admin.execute(f'DROP DATABASE "{TARGET_DB}" WITH (FORCE)')
        for role in (APP_ROLE, ADMIN_ROLE):
            admin.execute(f'DROP ROLE "{role}"')


@dataclass
class Sleeper:
    """A session running ``SELECT pg_sleep(60)`` in a thread."""

    role: str
    database: str
    application_name: str = "sandra-api"
    pid: int = 0
    error: str = ""
    started: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Sleeper":
        threading.Thread(target=self._sleep, daemon=True).start()
        assert self.started.wait(10)
        return self

    def _sleep(self) -> None:
        url = f"postgres://{self.role}@127.0.0.1:5432/{self.database}"
        with psycopg.connect(
            url, autocommit=True, application_name=self.application_name
        ) as session:
            self.pid = session.info.backend_pid
            self.started.set()
            try:
                session.execute("SELECT pg_sleep(60)")
            except psycopg.OperationalError as error:
                self.error = str(error)

    def is_running(self) -> bool:
        with _admin() as admin:
            row = admin.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", [self.pid]
            ).fetchone()
        return row is not None and row[0] == "active"


@pytest.fixture
def sleepers(target_database, settings) -> Iterator[list[Sleeper]]:
    settings.TARGET_DATABASE_URL = f"{SERVER}/{target_database}"
    started: list[Sleeper] = []
    yield started
    with _admin() as admin:
        for sleeper in started:
            admin.execute("SELECT pg_terminate_backend(%s)", [sleeper.pid])


def sleep_in(sleepers: list[Sleeper], role: str, database: str = TARGET_DB, **extra):
    sleeper = Sleeper(role, database, **extra).start()
    sleepers.append(sleeper)
    return sleeper


def wait_until_older_than(seconds: float) -> None:
    time.sleep(seconds + 0.3)


def test_kill_terminates_long_query(sleepers, context_for):
    sleeper = sleep_in(sleepers, APP_ROLE)
    wait_until_older_than(1)
    context = context_for(
        "kill_long_running_queries", {"older_than_seconds": 1, "database": TARGET_DB}
    )

    output = get_action("kill_long_running_queries").run(context)

    assert [row["pid"] for row in output["terminated"]] == [sleeper.pid]
    assert output["terminated"][0]["usename"] == APP_ROLE
    assert output["terminated"][0]["query"] == "SELECT pg_sleep(60)"
    assert output["terminated"][0]["running_seconds"] >= 1
    assert not sleeper.is_running()


def test_kill_spares_allowed_role_and_bastion(sleepers, context_for):
    allowed = sleep_in(sleepers, ADMIN_ROLE)
    bastion = sleep_in(sleepers, APP_ROLE, application_name="bastion-web")
    victim = sleep_in(sleepers, APP_ROLE)
    wait_until_older_than(1)
    context = context_for(
        "kill_long_running_queries",
        {"older_than_seconds": 1, "database": TARGET_DB, "allow_roles": [ADMIN_ROLE]},
    )

    output = get_action("kill_long_running_queries").run(context)

    assert [row["pid"] for row in output["terminated"]] == [victim.pid]
    assert allowed.is_running()
    assert bastion.is_running()


def test_kill_spares_young_queries(sleepers, context_for):
    sleeper = sleep_in(sleepers, APP_ROLE)
    context = context_for(
        "kill_long_running_queries", {"older_than_seconds": 30, "database": TARGET_DB}
    )

    output = get_action("kill_long_running_queries").run(context)

    assert output["terminated"] == []
    assert sleeper.is_running()


def test_kill_dry_run_lists_without_terminating(sleepers, context_for):
    sleeper = sleep_in(sleepers, APP_ROLE)
    wait_until_older_than(1)
    context = context_for(
        "kill_long_running_queries", {"older_than_seconds": 1, "database": TARGET_DB}
    )

    output = get_action("kill_long_running_queries").dry_run(context)

    assert [row["pid"] for row in output["would_terminate"]] == [sleeper.pid]
    assert sleeper.is_running()


def test_kill_never_lists_bastion_database(sleepers, context_for):
    """A session on Bastion's own Django database is not a candidate."""
    bastion_db = django_connection.settings_dict["NAME"]
    on_bastion = sleep_in(sleepers, APP_ROLE, database=bastion_db)
    on_target = sleep_in(sleepers, APP_ROLE)
    wait_until_older_than(1)
    context = context_for("kill_long_running_queries", {"older_than_seconds": 1})

    output = get_action("kill_long_running_queries").dry_run(context)

    listed = {row["pid"] for row in output["would_terminate"]}
    assert on_target.pid in listed
    assert on_bastion.pid not in listed


def test_kill_never_lists_superusers_by_default(sleepers, context_for):
    superuser = sleep_in(sleepers, "postgres")
    wait_until_older_than(1)
    action = get_action("kill_long_running_queries")
    values = {"older_than_seconds": 1, "database": TARGET_DB}

    default = action.dry_run(context_for("kill_long_running_queries", values))
    included = action.dry_run(
        context_for("kill_long_running_queries", {**values, "include_superusers": True})
    )

    assert superuser.pid not in {row["pid"] for row in default["would_terminate"]}
    assert superuser.pid in {row["pid"] for row in included["would_terminate"]}


def test_kill_unreachable_server_is_retryable(settings, context_for):
    settings.TARGET_DATABASE_URL = "postgres://postgres@127.0.0.1:1/postgres"
    context = context_for("kill_long_running_queries", {})

    with pytest.raises(RetryableError, match="cannot connect"):
        get_action("kill_long_running_queries").run(context)


def test_kill_target_names_server(settings):
    settings.TARGET_DATABASE_URL = f"{SERVER}/app"
    action = get_action("kill_long_running_queries")

    assert action.target({"database": "app"}) == "postgres 127.0.0.1:5432/app"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"older_than_seconds": 0}, "older_than_seconds"),
        ({"older_than_seconds": "5m"}, "older_than_seconds"),
        ({"allow_roles": [3]}, "allow_roles"),
        ({"pid": 42}, "pid"),
    ],
)
def test_kill_rejects_invalid_parameter(context_for, values, field):
    with pytest.raises(ParameterError) as raised:
        context_for("kill_long_running_queries", values)

    assert raised.value.field == field
