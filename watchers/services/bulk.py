"""Writing many rows' fields at once, fast on PostgreSQL.

Django's ``bulk_update`` builds a ``CASE WHEN id = ... THEN ...`` expression
per field and row in Python; at a thousand watchers per cycle that was most
of the cycle. On PostgreSQL each column's values go out as one array
parameter, joined back into rows by ``UPDATE ... FROM unnest(...)``: the SQL
text stays the same whatever the row count, so psycopg parses it once and
the server plans a short statement. SQLite, the demo's database, gets one
UPDATE per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Field, Model


def _concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field), f"{name} is not a concrete field"
    return field


@dataclass
class _Update:
    """One multi-row UPDATE: per-row columns, shared values and a condition."""

    model: type[Model]
    ids: Sequence[int]
    fields: list[Field[Any, Any]]
    values: list[Sequence[Any]]
    shared: dict[str, Any]
    condition: str
    condition_params: Sequence[Any]

    def shared_assignments(self) -> list[str]:
        quote = connection.ops.quote_name
        fields = [_concrete_field(self.model, name) for name in self.shared]
        return [f"{quote(str(field.column))} = %s" for field in fields]


def update_columns(
    model: type[Model],
    ids: Sequence[int],
    columns: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any] | None = None,
    condition: str = "TRUE",
    condition_params: Sequence[Any] = (),
) -> list[int]:
    """Write row ``i`` of each column to the row with primary key ``ids[i]``.

    ``columns`` maps field names to per-row values, and ``shared`` maps field
    names to one value for every row. Both contain values ready for the
    database, as ``Field.get_db_prep_save`` returns them. Only rows that meet
    ``condition``, SQL over columns that are not being written, are changed.
    Returns the primary keys of the rows written.
    """
    if not ids:
        return []
    update = _Update(
        model=model,
        ids=ids,
        fields=[_concrete_field(model, name) for name in columns],
        values=list(columns.values()),
        shared=dict(shared or {}),
        condition=condition,
        condition_params=condition_params,
    )
    if connection.vendor == "postgresql":
        return _update_from_arrays(update)
    return _update_each_row(update)


def _update_from_arrays(update: _Update) -> list[int]:
    quote = connection.ops.quote_name
    table = quote(update.model._meta.db_table)
    primary_key = update.model._meta.pk
    assert primary_key is not None
    key = quote(str(primary_key.column))
    names = [quote(str(field.column)) for field in update.fields]
    assignments = ", ".join(
        [*(f"{name} = v.{name}" for name in names), *update.shared_assignments()]
    )
    arrays = ", ".join(
        f"%s::{field.db_type(connection)}[]" for field in [primary_key, *update.fields]
    )
    sql = (
        f"UPDATE {table} SET {assignments} "  # noqa: S608 - names are quoted
        f"FROM unnest({arrays}) AS v({key}, {', '.join(names)}) "
        f"WHERE {table}.{key} = v.{key} AND ({update.condition}) "
        f"RETURNING {table}.{key}"
    )
    params = [
        *update.shared.values(),
        list(update.ids),
        *(list(column) for column in update.values),
        *update.condition_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _update_each_row(update: _Update) -> list[int]:
    quote = connection.ops.quote_name
    primary_key = update.model._meta.pk
    assert primary_key is not None
    key = quote(str(primary_key.column))
    assignments = ", ".join(
        [
            *(f"{quote(str(field.column))} = %s" for field in update.fields),
            *update.shared_assignments(),
        ]
    )
    sql = (
        f"UPDATE {quote(update.model._meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {key} = %s AND ({update.condition}) RETURNING {key}"
    )
    written: list[int] = []
    with connection.cursor() as cursor:
        for index, row_key in enumerate(update.ids):
            row = [column[index] for column in update.values]
            params = [*row, *update.shared.values(), row_key, *update.condition_params]
            cursor.execute(sql, params)
            written.extend(found[0] for found in cursor.fetchall())
    return written


def write_fields(
    model: type[Model], objects: Sequence[Model], fields: Sequence[str]
) -> None:
    """Save ``fields`` of ``objects``, all of ``model``, in few statements."""
    columns: dict[str, list[Any]] = {}
    for name in fields:
        field = _concrete_field(model, name)
        columns[name] = [
            field.get_db_prep_save(getattr(obj, field.attname), connection)
            for obj in objects
        ]
    update_columns(model, [obj.pk for obj in objects], columns)
