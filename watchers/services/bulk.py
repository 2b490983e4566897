"""Writing many rows' fields at once, fast on PostgreSQL.

Django's ``bulk_update`` builds a ``CASE WHEN id = ... THEN ...`` expression
per field and row in Python; at a thousand watchers per cycle that was most
of the cycle (see docs/benchmarks.md). On PostgreSQL the same values go out
as one ``UPDATE ... FROM (VALUES ...)`` per chunk. SQLite, the demo's
database, keeps ``bulk_update``.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

CHUNK_SIZE = 500


def write_fields(
    model: type[Model], objects: Sequence[Model], fields: Sequence[str]
) -> None:
    """Save ``fields`` of ``objects``, all of ``model``, in few statements."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_update(objects, list(fields), batch_size=CHUNK_SIZE)
        return

    model_fields: list[Field[Any, Any]] = []
    for name in fields:
        field = model._meta.get_field(name)
        assert isinstance(field, Field), f"{name} is not a concrete field"
        model_fields.append(field)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    primary_key = model._meta.pk
    assert primary_key is not None
    key = quote(str(primary_key.column))
    columns = [quote(str(f.column)) for f in model_fields]
    assignments = ", ".join(
        f"{column} = CAST(v.{column} AS {field.db_type(connection)})"
        for column, field in zip(columns, model_fields, strict=True)
    )
    row = "(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(objects), CHUNK_SIZE):
            chunk = objects[start : start + CHUNK_SIZE]
            params: list[Any] = []
            for obj in chunk:
                params.append(obj.pk)
                for field in model_fields:
                    value = getattr(obj, field.attname)
                    params.append(field.get_db_prep_save(value, connection))
            rows = ", ".join([row] * len(chunk))
            cursor.execute(
                f"UPDATE {table} SET {assignments} "  # noqa: S608 - names are quoted
                f"FROM (VALUES {rows}) AS v({key}, {', '.join(columns)}) "
                f"WHERE {table}.{key} = v.{key}",
                params,
            )
