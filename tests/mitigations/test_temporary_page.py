"""The page of IP blocks and lowered rate limits in force, and lifting one."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from mitigations.models import TemporaryMitigation
from mitigations.registry import get_action

pytestmark = pytest.mark.django_db


@pytest.fixture
def blocked(target_redis_db, context_for):
    """Block 203.0.113.77 through the real action; return its Redis key."""
    key_prefix = f"{target_redis_db.prefix}blocked:"
    context = context_for(
        "temporary_ip_block",
        {"ips": ["203.0.113.77"], "key_prefix": key_prefix},
    )
    get_action("temporary_ip_block").run(context)
    return f"{key_prefix}203.0.113.77"


@pytest.fixture
def operator(persona_factory):
    return persona_factory(
        "operator",
        "mitigations.view_temporarymitigation",
        "mitigations.lift_temporarymitigation",
    )


def test_page_lists_block_in_force(client, operator, blocked):
    client.force_login(operator)

    response = client.get(reverse("mitigations:temporary-list"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "203.0.113.77" in page
    assert "Lift" in page


def test_lift_deletes_the_key_and_records_who(
    client, operator, blocked, target_redis_db
):
    client.force_login(operator)
    mitigation = TemporaryMitigation.objects.get(redis_key=blocked)

    response = client.post(reverse("mitigations:temporary-lift", args=[mitigation.pk]))

    mitigation.refresh_from_db()
    assert response.status_code == 302
    assert target_redis_db.client.exists(blocked) == 0
    assert mitigation.lifted_by == operator
    assert AuditEvent.objects.filter(kind="mitigation.lifted", actor=operator).exists()


def test_lift_by_get_changes_nothing(client, operator, blocked, target_redis_db):
    client.force_login(operator)
    mitigation = TemporaryMitigation.objects.get(redis_key=blocked)

    response = client.get(reverse("mitigations:temporary-lift", args=[mitigation.pk]))

    assert response.status_code == 405
    assert target_redis_db.client.exists(blocked) == 1


def test_viewer_without_lift_permission_cannot_lift(
    client, persona_factory, blocked, target_redis_db
):
    viewer = persona_factory("viewer", "mitigations.view_temporarymitigation")
    client.force_login(viewer)
    mitigation = TemporaryMitigation.objects.get(redis_key=blocked)

    page = client.get(reverse("mitigations:temporary-list")).content.decode()
    response = client.post(reverse("mitigations:temporary-lift", args=[mitigation.pk]))

    assert "Lift</button>" not in page
    assert response.status_code == 403
    assert target_redis_db.client.exists(blocked) == 1


def test_outsider_cannot_see_the_page(client, persona_factory):
    client.force_login(persona_factory("outsider"))
    response = client.get(reverse("mitigations:temporary-list"))
    assert response.status_code == 403
