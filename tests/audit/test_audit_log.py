"""The audit log: append-only in the model and in PostgreSQL, and admin changes."""

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from audit import services
from audit.models import AppendOnlyError, AuditEvent
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = pytest.mark.django_db


def make_incident() -> Incident:
    watcher = make_watcher()
    return Incident.objects.create(
        watcher=watcher, fingerprint=f"{watcher.pk:032d}", opened_at=timezone.now()
    )


def test_record_stores_actor_address_and_incident(persona_factory):
    user = persona_factory("owner")
    incident = make_incident()

    event = services.record(
        "approval.decided",
        "owner approved scale_replicas",
        actor=user,
        address="2001:db8::1",
        incident_id=incident.pk,
        details={"run_id": 4},
    )

    event.refresh_from_db()
    assert event.actor == user
    assert event.actor_name == "owner"
    assert event.address == "2001:db8::1"
    assert event.incident == incident
    assert event.incident_number == incident.pk
    assert event.details == {"run_id": 4}


def test_record_without_actor_is_the_automation():
    event = services.record("step.finished", "scale_replicas succeeded")

    assert event.actor is None
    assert event.actor_name == ""


def test_record_keeps_the_number_of_a_missing_incident():
    event = services.record("incident.resolved", "gone", incident_id=987654)

    assert event.incident is None
    assert event.incident_number == 987654


def test_record_drops_invalid_address():
    event = services.record("admin.changed", "x", address="not-an-ip")

    assert event.address is None


def test_saving_an_existing_event_is_refused():
    event = services.record("incident.opened", "opened")
    event.summary = "rewritten"

    with pytest.raises(AppendOnlyError):
        event.save()

    assert AuditEvent.objects.get(pk=event.pk).summary == "opened"


def test_deleting_an_event_is_refused():
    event = services.record("incident.opened", "opened")

    with pytest.raises(AppendOnlyError):
        event.delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_is_refused():
    services.record("incident.opened", "opened")

    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().update(summary="rewritten")

    assert AuditEvent.objects.get().summary == "opened"


def test_queryset_delete_is_refused():
    services.record("incident.opened", "opened")

    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(kind="incident.opened").delete()

    assert AuditEvent.objects.count() == 1


def test_raw_sql_update_is_refused_by_the_trigger():
    event = services.record("incident.opened", "opened")

    with (
        pytest.raises(DatabaseError, match="cannot be updated"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET summary = 'rewritten' WHERE id = %s",
            [event.pk],
        )

    assert AuditEvent.objects.get(pk=event.pk).summary == "opened"


def test_raw_sql_delete_is_refused_by_the_trigger():
    event = services.record("incident.opened", "opened")

    with (
        pytest.raises(DatabaseError, match="cannot be deleted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_raw_sql_cannot_move_event():
    first, second = make_incident(), make_incident()
    event = services.record("incident.opened", "opened", incident_id=first.pk)

    with (
        pytest.raises(DatabaseError, match="cannot be updated"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET incident_id = %s WHERE id = %s",
            [second.pk, event.pk],
        )


def test_deleting_the_incident_keeps_its_events():
    incident = make_incident()
    event = services.record("incident.opened", "opened", incident_id=incident.pk)
    number = incident.pk

    incident.delete()

    event.refresh_from_db()
    assert event.incident is None
    assert event.incident_number == number
    assert event.summary == "opened"


def test_deleting_the_user_keeps_the_actor_name(persona_factory):
    user = persona_factory("leaver")
    event = services.record("approval.decided", "leaver approved", actor=user)

    user.delete()

    event.refresh_from_db()
    assert event.actor is None
    assert event.actor_name == "leaver"


# Admin


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(
        "root", "root@example.org", "root-password-1"
    )


def test_admin_change_is_recorded_with_actor_and_address(client, admin_user, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "audit.middleware.RequestAddressMiddleware",
    ]
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:auth_group_add"), {"name": "on-call"}, REMOTE_ADDR="192.0.2.8"
    )

    assert response.status_code == 302
    event = AuditEvent.objects.get(kind="admin.changed")
    assert event.actor == admin_user
    assert event.address == "192.0.2.8"
    assert event.details["action"] == "added"
    assert event.details["model"] == "group"
    assert "on-call" in event.summary


def test_admin_deletion_is_recorded(client, admin_user):
    group = Group.objects.create(name="retired")
    client.force_login(admin_user)

    client.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})

    event = AuditEvent.objects.get(kind="admin.changed")
    assert event.details["action"] == "deleted"
    assert event.details["object_repr"] == "retired"


def test_admin_bulk_deletion_records_each_object(client, admin_user):
    groups = [Group.objects.create(name=name) for name in ("blue", "green", "red")]
    client.force_login(admin_user)

    client.post(
        reverse("admin:auth_group_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [group.pk for group in groups],
            "post": "yes",
        },
        REMOTE_ADDR="192.0.2.9",
    )

    events = AuditEvent.objects.filter(kind="admin.changed").order_by("pk")
    assert not Group.objects.exists()
    assert sorted(event.details["object_repr"] for event in events) == [
        "blue",
        "green",
        "red",
    ]
    assert {event.address for event in events} == {"192.0.2.9"}
    assert {event.actor_name for event in events} == {"root"}


def test_admin_bulk_deletion_confirmation_page_records_nothing(client, admin_user):
    groups = [Group.objects.create(name=name) for name in ("blue", "green")]
    client.force_login(admin_user)

    response = client.post(
        reverse("admin:auth_group_changelist"),
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups]},
    )

    assert response.status_code == 200
    assert Group.objects.count() == 2
    assert not AuditEvent.objects.filter(kind="admin.changed").exists()


def test_admin_shows_events_read_only(client, admin_user):
    event = services.record("incident.opened", "opened")
    client.force_login(admin_user)

    change_page = client.get(reverse("admin:audit_auditevent_change", args=[event.pk]))
    delete_page = client.get(reverse("admin:audit_auditevent_delete", args=[event.pk]))
    add_page = client.get(reverse("admin:audit_auditevent_add"))

    assert change_page.status_code == 200
    assert 'name="_save"' not in change_page.content.decode()
    assert delete_page.status_code == 403
    assert add_page.status_code == 403
