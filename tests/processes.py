"""Child processes of the tests: the test database's URL, Celery worker and beat.

Tests that start real Bastion processes (Celery, daphne) give them the test
database, which pytest-django created, through ``BASTION_DATABASE_URL``.
"""

import sys
from pathlib import Path

from django.db import connection

from devstack.processes import ProcessGroup

REPOSITORY = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """Return the URL of the database this test runs on, for child processes."""
    config = connection.settings_dict
    user = config.get("USER") or "postgres"
    host = config.get("HOST") or "127.0.0.1"
    port = config.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


def start_celery(group: ProcessGroup, env: dict[str, str], folder: Path) -> None:
    """Start a Celery worker, which first drops queued tasks, and beat in ``group``.

    The worker's ``--purge`` removes what earlier tests queued on the same
    broker without a worker to run it. Beat keeps its schedule in ``folder``.
    """
    env = {"PYTHONPATH": str(REPOSITORY), **env}
    celery = [sys.executable, "-m", "celery", "-A", "bastion"]
    worker = [*celery, "worker", "--concurrency=2", "--loglevel=info", "--purge"]
    group.start("worker", worker, env=env)
    beat = [*celery, "beat", "--loglevel=info", f"--schedule={folder / 'beat'}"]
    group.start("beat", beat, env=env)
