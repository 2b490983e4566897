"""Conditional UPDATEs that say which rows they changed.

The database decides who owns a piece of work: only the caller whose UPDATE
returned a row acts on it, however many beats or workers race for it.
SQLite (3.35 and newer) and PostgreSQL both support ``UPDATE ... RETURNING``.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model

CHUNK_SIZE = 500


def _adapt(value: Any) -> Any:
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def update_returning_ids(
    model: type[Model],
    ids: Sequence[int],
    assignments: dict[str, Any],
    condition: str,
    condition_params: Sequence[Any] = (),
) -> list[int]:
    """Set ``assignments`` on the rows of ``ids`` that meet ``condition``.

    ``condition`` is SQL over the table's own columns with ``%s`` placeholders.
    Returns the ids actually updated.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(f"{connection.ops.quote_name(c)} = %s" for c in assignments)
    values = [_adapt(v) for v in assignments.values()]
    updated: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(ids), CHUNK_SIZE):
            chunk = list(ids[start : start + CHUNK_SIZE])
            placeholders = ", ".join(["%s"] * len(chunk))
            sql = (
                f"UPDATE {table} SET {columns} "  # noqa: S608 - names are quoted
                f"WHERE id IN ({placeholders}) AND ({condition}) RETURNING id"
            )
            cursor.execute(
                sql, [*values, *chunk, *(_adapt(p) for p in condition_params)]
            )
            updated.extend(row[0] for row in cursor.fetchall())
    return updated
