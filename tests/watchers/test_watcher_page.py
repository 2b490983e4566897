"""The watchers page and its pause, resume and shadow controls."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mitigations.models import AutomationSwitch, MitigationStep
from tests.watchers.factories import make_watcher
from watchers.choices import Health, Mode, SeriesStatus
from watchers.models import Incident, SeriesState

pytestmark = pytest.mark.django_db

URL = reverse("watchers:watcher-list")


@pytest.fixture
def owner(persona_factory):
    return persona_factory(
        "owner", "watchers.view_watcher", "watchers.change_watcher_mode"
    )


@pytest.fixture
def reader(persona_factory):
    return persona_factory("reader", "watchers.view_watcher")


@pytest.fixture
def outsider(persona_factory):
    return persona_factory("outsider")


def mode_url(watcher) -> str:
    return reverse("watchers:watcher-mode", args=[watcher.pk])


def page_html(client, url: str = URL) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_anonymous_visitor_sent_to_login(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_outsider_gets_403(client, outsider):
    client.force_login(outsider)

    assert client.get(URL).status_code == 403


def test_page_shows_state_value_and_error(client, reader):
    make_watcher(
        name="api-latency",
        unit="s",
        threshold=0.8,
        health=Health.OK,
        last_value=0.42,
        last_evaluated_at=timezone.now() - timedelta(seconds=30),
    )
    make_watcher(
        name="broken-query",
        health=Health.ERROR,
        last_error='bad_data: parse error: unexpected "<"',
    )
    client.force_login(reader)

    html = page_html(client)

    assert "api-latency" in html
    assert "0.42 s" in html
    assert "&gt; 0.8 s" in html
    assert "30 s ago" in html
    assert "query failed" in html
    assert "parse error: unexpected &quot;&lt;&quot;" in html


def test_page_counts_open_incidents(client, reader):
    watcher = make_watcher(name="disk-usage")
    # Steps join into the count's query and must not multiply it.
    for position, action in enumerate(["scale_replicas", "clear_caches"], start=1):
        MitigationStep.objects.create(watcher=watcher, position=position, action=action)
    for number in range(3):
        Incident.objects.create(
            watcher=watcher, fingerprint=f"fp-{number}", opened_at=timezone.now()
        )
    client.force_login(reader)

    html = page_html(client)
    row = html[html.index(f'id="watcher-{watcher.pk}"') :]

    assert '<td data-label="Open incidents">3</td>' in row


def test_filters_by_mode_and_text(client, reader):
    make_watcher(name="api-latency", mode=Mode.PAUSED)
    make_watcher(name="api-errors")
    make_watcher(name="disk-usage", mode=Mode.PAUSED)
    client.force_login(reader)

    html = page_html(client, f"{URL}?mode=paused&q=api")

    assert "api-latency" in html
    assert "api-errors" not in html
    assert "disk-usage" not in html


def test_controls_hidden_without_permission(client, reader):
    watcher = make_watcher()
    client.force_login(reader)

    html = page_html(client)

    assert mode_url(watcher) not in html


def test_controls_offer_the_other_modes(client, owner):
    watcher = make_watcher(mode=Mode.ACTIVE)
    client.force_login(owner)

    html = page_html(client)
    row = html[html.index(f'id="watcher-{watcher.pk}"') :]

    assert ">Pause</button>" in row
    assert ">Shadow</button>" in row
    assert ">Resume</button>" not in row[: row.index("</tr>")]


def test_pause_records_actor_and_address(client, owner):
    watcher = make_watcher(name="api-latency")
    client.force_login(owner)

    response = client.post(
        mode_url(watcher), {"mode": "paused", "next": URL}, REMOTE_ADDR="192.0.2.10"
    )

    watcher.refresh_from_db()
    event = AuditEvent.objects.get(kind="watcher.mode")
    assert response.status_code == 302
    assert response.url == URL
    assert watcher.mode == Mode.PAUSED
    assert event.actor == owner
    assert event.address == "192.0.2.10"
    assert event.details["from"] == "active"
    assert event.details["to"] == "paused"
    assert "owner paused watcher api-latency" in event.summary


def test_pause_forgets_pending_series_only(client, owner):
    watcher = make_watcher()
    now = timezone.now()
    for key, status in (("p", SeriesStatus.PENDING), ("f", SeriesStatus.FIRING)):
        SeriesState.objects.create(
            watcher=watcher,
            fingerprint=key,
            status=status,
            pending_since=now - timedelta(minutes=3),
            last_evaluated_at=now,
        )
    client.force_login(owner)

    client.post(mode_url(watcher), {"mode": "paused"})

    assert list(
        SeriesState.objects.filter(watcher=watcher).values_list("status", flat=True)
    ) == [SeriesStatus.FIRING]


@pytest.mark.parametrize(
    ("start", "target"), [("paused", "active"), ("active", "shadow")]
)
def test_resume_and_shadow(client, owner, start, target):
    watcher = make_watcher(mode=start)
    client.force_login(owner)

    client.post(mode_url(watcher), {"mode": target})

    watcher.refresh_from_db()
    assert watcher.mode == target
    assert AuditEvent.objects.filter(kind="watcher.mode").count() == 1


def test_same_mode_changes_and_records_nothing(client, owner):
    watcher = make_watcher(mode=Mode.PAUSED)
    client.force_login(owner)

    response = client.post(mode_url(watcher), {"mode": "paused"}, follow=True)

    assert "is already paused" in response.content.decode()
    assert not AuditEvent.objects.filter(kind="watcher.mode").exists()


def test_invalid_mode_is_400(client, owner):
    watcher = make_watcher()
    client.force_login(owner)

    response = client.post(mode_url(watcher), {"mode": "asleep"})

    watcher.refresh_from_db()
    assert response.status_code == 400
    assert watcher.mode == Mode.ACTIVE


def test_get_never_changes_mode(client, owner):
    watcher = make_watcher()
    client.force_login(owner)

    response = client.get(mode_url(watcher), {"mode": "paused"})

    watcher.refresh_from_db()
    assert response.status_code == 405
    assert watcher.mode == Mode.ACTIVE


def test_reader_cannot_change_mode(client, reader):
    watcher = make_watcher()
    client.force_login(reader)

    response = client.post(mode_url(watcher), {"mode": "paused"})

    watcher.refresh_from_db()
    assert response.status_code == 403
    assert watcher.mode == Mode.ACTIVE


def test_foreign_next_is_ignored(client, owner):
    watcher = make_watcher()
    client.force_login(owner)

    response = client.post(
        mode_url(watcher), {"mode": "paused", "next": "https://evil.example/"}
    )

    assert response.url == URL


def test_query_count_does_not_grow_with_watchers(client, owner):
    client.force_login(owner)
    for _ in range(5):
        make_watcher()
    with CaptureQueriesContext(connection) as few:
        page_html(client)

    for _ in range(60):
        make_watcher()
    with CaptureQueriesContext(connection) as many:
        page_html(client)

    assert len(many) == len(few)


def test_page_out_of_range_shows_nearest(client, reader):
    watcher = make_watcher()
    client.force_login(reader)

    html = page_html(client, f"{URL}?page=999")

    assert watcher.name in html


def test_automation_off_shows_notice(client, reader):
    AutomationSwitch.objects.update_or_create(
        pk=1, defaults={"enabled": False, "reason": "database upgrade"}
    )
    client.force_login(reader)

    html = page_html(client)

    assert 'id="automation-notice"' in html
    assert "Automation is switched off: database upgrade." in html


def test_automation_on_shows_no_notice(client, reader):
    client.force_login(reader)

    assert 'id="automation-notice"' not in page_html(client)
