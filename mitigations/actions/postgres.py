"""Terminate long-running queries on the application's PostgreSQL.

The action connects to BASTION_TARGET_DATABASE_URL with the application name
``bastion-mitigation``. Only client backends are candidates, so walsenders,
autovacuum and background workers never are. It never terminates its own
backend, a backend whose application name starts with ``bastion``, or one
connected to Bastion's own Django database on the same server. It spares
superusers' sessions unless ``include_superusers`` is set, because those
are usually administrators, backups or migrations, and the roles in
``allow_roles``.
"""

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from django.conf import settings
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from mitigations.actions.base import (
    Action,
    ActionContext,
    Parameter,
    PermanentError,
    RetryableError,
)
from mitigations.choices import Risk
from mitigations.registry import register
from mitigations.services.clients import target_database

logger = logging.getLogger(__name__)

APPLICATION_NAME = "bastion-mitigation"
MAX_QUERY_CHARS = 500

_CANDIDATES = """
SELECT a.pid, a.usename, a.datname, a.application_name, a.query_start,
       round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float
           AS running_seconds,
       left(a.query, %(query_chars)s) AS query
FROM pg_stat_activity AS a
LEFT JOIN pg_roles AS r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.state = 'active'
  AND a.pid <> pg_backend_pid()
  AND now() - a.query_start > make_interval(secs => %(older_than)s)
  AND coalesce(a.application_name, '') NOT LIKE 'bastion%%'
  AND NOT (coalesce(a.usename, '') = ANY(%(allow_roles)s))
  AND (%(include_superusers)s OR NOT coalesce(r.rolsuper, false))
  AND (%(database)s::text IS NULL OR a.datname = %(database)s)
  AND NOT (a.datname = ANY(%(bastion_databases)s))
ORDER BY a.query_start
"""

# The query_start check skips a backend that finished the slow query and
# started another one since the candidates were read.
_TERMINATE = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE pid = %(pid)s AND state = 'active' AND query_start = %(query_start)s
"""


def _server(conninfo: Mapping[str, Any]) -> tuple[str, str]:
    host = str(conninfo.get("host") or "localhost")
    if host in ("localhost", "127.0.0.1", "::1"):
        host = "loopback"
    return host, str(conninfo.get("port") or "5432")


def _bastion_databases() -> list[str]:
    """Name Bastion's own Django database when it is on the target server."""
    own = settings.DATABASES["default"]
    if "postgresql" not in own["ENGINE"] or not settings.TARGET_DATABASE_URL:
        return []
    target = conninfo_to_dict(settings.TARGET_DATABASE_URL)
    if _server(target) != _server({"host": own["HOST"], "port": own["PORT"]}):
        return []
    return [str(own["NAME"])]


@register("kill_long_running_queries")
class KillLongRunningQueries(Action):
    risk = Risk.DESTRUCTIVE
    description = (
        "Terminate the client sessions whose query has been running longer "
        "than a limit, with pg_terminate_backend."
    )
    parameters = (
        Parameter(
            "older_than_seconds",
            kind="number",
            default=300,
            minimum=1,
            help="Terminate queries running longer than this, in seconds.",
        ),
        Parameter(
            "allow_roles",
            kind="string_list",
            default=[],
            help="Roles whose sessions are never terminated.",
        ),
        Parameter(
            "include_superusers",
            kind="boolean",
            default=False,
            help="Also terminate superusers' sessions.",
        ),
        Parameter(
            "database",
            required=False,
            help="Only terminate sessions connected to this database.",
        ),
    )

    def target(self, params: Mapping[str, Any]) -> str:
        if not settings.TARGET_DATABASE_URL:
            return "postgres"
        info = conninfo_to_dict(settings.TARGET_DATABASE_URL)
        where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"
        return f"postgres {where}/{params.get('database') or '*'}"

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        with self._connect(context) as connection:
            candidates = self._candidates(connection, context.params)
        return {"would_terminate": [_describe(row) for row in candidates]}

    def run(self, context: ActionContext) -> dict[str, Any]:
        with self._connect(context) as connection:
            candidates = self._candidates(connection, context.params)
            outcomes = [self._terminate(connection, row) for row in candidates]
        terminated = [row for row in outcomes if row["terminated"]]
        logger.info(
            "kill_long_running_queries terminated %s of %s backends for incident %s",
            len(terminated),
            len(outcomes),
            context.incident_id,
        )
        failed = [row for row in outcomes if row.get("error")]
        if failed and not terminated:
            raise PermanentError(
                f"no backend could be terminated: pid {failed[0]['pid']}: "
                f"{failed[0]['error']}"
            )
        return {
            "terminated": terminated,
            "not_terminated": [row for row in outcomes if not row["terminated"]],
        }

    def _connect(self, context: ActionContext) -> psycopg.Connection:
        try:
            connection = target_database()
            connection.execute(
                "SELECT set_config('application_name', %s, false), "
                "set_config('statement_timeout', %s, false)",
                [APPLICATION_NAME, f"{max(1, int(context.remaining_seconds()))}s"],
            )
        except psycopg.OperationalError as error:
            raise RetryableError(
                f"cannot connect to BASTION_TARGET_DATABASE_URL: {error}"
            ) from None
        return connection

    def _candidates(
        self, connection: psycopg.Connection, params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        arguments = {
            "query_chars": MAX_QUERY_CHARS,
            "older_than": params["older_than_seconds"],
            "allow_roles": params["allow_roles"],
            "include_superusers": params["include_superusers"],
            "database": params.get("database"),
            "bastion_databases": _bastion_databases(),
        }
        try:
            with connection.cursor(row_factory=dict_row) as cursor:
                return cursor.execute(_CANDIDATES, arguments).fetchall()
        except psycopg.OperationalError as error:
            raise RetryableError(f"reading pg_stat_activity failed: {error}") from None
        except psycopg.Error as error:
            raise PermanentError(f"reading pg_stat_activity failed: {error}") from None

    def _terminate(
        self, connection: psycopg.Connection, row: dict[str, Any]
    ) -> dict[str, Any]:
        outcome = {**_describe(row), "terminated": False}
        try:
            found = connection.execute(
                _TERMINATE, {"pid": row["pid"], "query_start": row["query_start"]}
            ).fetchone()
        except psycopg.Error as error:
            # For example, terminating a superuser's backend needs superuser rights.
            outcome["error"] = str(error).strip()
            return outcome
        outcome["terminated"] = bool(found and found[0])
        if not outcome["terminated"]:
            outcome["error"] = "the query ended before it could be terminated"
        logger.info(
            "pid %s (%s on %s) after %ss: %s",
            row["pid"],
            row["usename"],
            row["datname"],
            row["running_seconds"],
            "terminated" if outcome["terminated"] else outcome["error"],
        )
        return outcome


def _describe(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": row["pid"],
        "usename": row["usename"],
        "datname": row["datname"],
        "application_name": row["application_name"],
        "running_seconds": row["running_seconds"],
        "query": row["query"],
    }
