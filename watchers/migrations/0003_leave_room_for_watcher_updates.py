"""Leave free space in the watcher table's pages for updated rows.

Every evaluation updates each watcher row twice (the slot claim, then the
results), and neither changes an indexed column. PostgreSQL can then write
the new row version on the same page without touching the indexes (a HOT
update), but only when the page has room for it. Filled to the default 100 %,
about half the updates in the benchmark found no room and each of those
inserted into all four indexes of the table. With half of each page free, a
page holds a second version of each of its rows.

The setting applies to pages written from now on: existing rows move to
roomier pages as they are updated, or at once with ``VACUUM FULL``. SQLite,
used only for development, has no such setting.
"""

from django.db import migrations


def leave_room(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE watchers_watcher SET (fillfactor = 50)")


def fill_pages(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE watchers_watcher RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("watchers", "0002_add_incident_escalation")]

    operations = [migrations.RunPython(leave_room, fill_pages)]
