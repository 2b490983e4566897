"""Make the audit table append-only in PostgreSQL itself.

The model refuses updates and deletes, but raw SQL, another client or a
bug elsewhere would not go through it. The trigger raises on DELETE, and on
UPDATE unless the update only clears actor_id or incident_id, which is what
deleting a user or an incident does (on_delete=SET_NULL). SQLite, used only
for development, gets no trigger.

TRUNCATE is left allowed, because Django's flush (and so every test that
runs in a transaction of its own) empties tables with it. The owner of the
table can drop the trigger anyway; the trigger guards against mistakes and
against the application's own role, not against the database owner.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit events cannot be deleted: the audit log is append-only';
    END IF;
    IF (to_jsonb(NEW) - 'actor_id' - 'incident_id')
            IS DISTINCT FROM (to_jsonb(OLD) - 'actor_id' - 'incident_id')
        OR (NEW.actor_id IS NOT NULL AND NEW.actor_id IS DISTINCT FROM OLD.actor_id)
        OR (NEW.incident_id IS NOT NULL
            AND NEW.incident_id IS DISTINCT FROM OLD.incident_id) THEN
        RAISE EXCEPTION 'audit events cannot be updated: the audit log is append-only';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_create_audit_events")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
