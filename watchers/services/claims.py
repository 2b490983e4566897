"""Conditional UPDATEs that say which rows they changed.

The database decides who owns a piece of work: only the caller whose UPDATE
returned a row acts on it, however many beats or workers race for it.
SQLite (3.35 and newer) and PostgreSQL both support ``UPDATE ... RETURNING``.
On PostgreSQL the ids travel as one array parameter (``id = ANY(%s)``): a
statement with a thousand ``%s`` placeholders costs Django and psycopg
several milliseconds to build, one array costs almost nothing.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model

# Maximum ids per statement where each id is a placeholder (SQLite).
CHUNK_SIZE = 500


def _adapt(value: Any) -> Any:
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def id_chunks(ids: Sequence[int]) -> list[tuple[str, list[Any]]]:
    """Return ``(condition, params)`` pairs that together select ``ids``.

    The condition is ``id = ANY(%s)`` on PostgreSQL, one chunk for all ids,
    and ``id IN (%s, ...)`` of at most CHUNK_SIZE ids elsewhere.
    """
    if connection.vendor == "postgresql":
        return [("id = ANY(%s)", [list(ids)])]
    chunks = []
    for start in range(0, len(ids), CHUNK_SIZE):
        chunk = list(ids[start : start + CHUNK_SIZE])
        chunks.append((f"id IN ({', '.join(['%s'] * len(chunk))})", chunk))
    return chunks


def update_returning(
    model: type[Model],
    ids: Sequence[int],
    assignments: dict[str, Any],
    condition: str,
    condition_params: Sequence[Any] = (),
    returning: Sequence[str] = ("id",),
) -> list[tuple[Any, ...]]:
    """Set ``assignments`` on the rows of ``ids`` that meet ``condition``.

    ``condition`` is SQL over the table's own columns with ``%s`` placeholders.
    Returns the ``returning`` columns of each row actually updated, with the
    values the update left.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(f"{quote(c)} = %s" for c in assignments)
    values = [_adapt(v) for v in assignments.values()]
    selected = ", ".join(quote(c) for c in returning)
    extra = [_adapt(p) for p in condition_params]
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for ids_condition, ids_params in id_chunks(ids):
            sql = (
                f"UPDATE {table} SET {columns} "  # noqa: S608 - names are quoted
                f"WHERE {ids_condition} AND ({condition}) RETURNING {selected}"
            )
            cursor.execute(sql, [*values, *ids_params, *extra])
            rows.extend(cursor.fetchall())
    return rows


def update_returning_ids(
    model: type[Model],
    ids: Sequence[int],
    assignments: dict[str, Any],
    condition: str,
    condition_params: Sequence[Any] = (),
) -> list[int]:
    """Set ``assignments`` like ``update_returning`` and return the updated ids."""
    rows = update_returning(model, ids, assignments, condition, condition_params)
    return [row[0] for row in rows]
