"""The audit page: filters, pagination, permissions and the exports."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit import services
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(persona_factory):
    return persona_factory("auditor", "audit.view_auditevent")


@pytest.fixture
def events(persona_factory):
    approver = persona_factory("approver")
    watcher = make_watcher()
    incident = Incident.objects.create(
        watcher=watcher, fingerprint="f" * 32, opened_at=timezone.now()
    )
    return {
        "decided": services.record(
            "approval.decided",
            "approver approved scale_replicas",
            actor=approver,
            address="192.0.2.1",
            incident_id=incident.pk,
        ),
        "expired": services.record(
            "approval.expired",
            "approval for clear_caches expired undecided",
            incident_id=incident.pk,
        ),
        "admin": services.record(
            "admin.changed", "admin changed watcher 'api-latency'", actor=approver
        ),
        "formula": services.record("notification.sent", '=HYPERLINK("x")'),
    }


def listed(response) -> list[int]:
    return [event.pk for event in response.context["events"]]


def test_page_lists_newest_first(client, auditor, events):
    client.force_login(auditor)

    response = client.get(reverse("audit:event-list"))

    assert response.status_code == 200
    assert listed(response) == [
        events["formula"].pk,
        events["admin"].pk,
        events["expired"].pk,
        events["decided"].pk,
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "approval."}, ["expired", "decided"]),
        ({"kind": "admin.changed"}, ["admin"]),
        ({"actor": "APPROVER"}, ["admin", "decided"]),
        ({"q": "clear_caches"}, ["expired"]),
        ({"kind": "approval", "actor": "approver"}, ["decided"]),
    ],
)
def test_page_filters(client, auditor, events, query, expected):
    client.force_login(auditor)

    response = client.get(reverse("audit:event-list"), query)

    assert listed(response) == [events[name].pk for name in expected]


def test_page_filters_by_incident(client, auditor, events):
    client.force_login(auditor)
    number = events["decided"].incident_number

    response = client.get(reverse("audit:event-list"), {"incident": number})

    assert listed(response) == [events["expired"].pk, events["decided"].pk]


def test_page_filters_by_date_range(client, auditor, events):
    client.force_login(auditor)
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)

    today_only = client.get(
        reverse("audit:event-list"), {"since": today, "until": today}
    )
    before_today = client.get(reverse("audit:event-list"), {"until": yesterday})

    assert len(listed(today_only)) == 4
    assert listed(before_today) == []


def test_page_reports_a_reversed_date_range(client, auditor, events):
    client.force_login(auditor)

    response = client.get(
        reverse("audit:event-list"), {"since": "2026-05-02", "until": "2026-05-01"}
    )

    assert "is after the end day" in response.content.decode()


INVALID_FILTERS = [
    ({"incident": "abc"}, "incident: Enter a whole number."),
    ({"incident": "0"}, "incident: Ensure this value is greater than or equal to 1."),
    ({"since": "2026-12-05", "until": "2026-12-01"}, "is after the end day"),
    ({"since": "2026-13-45"}, "since: Enter a valid date."),
]


@pytest.mark.parametrize(("query", "error"), INVALID_FILTERS)
def test_page_invalid_filter_lists_nothing(client, auditor, events, query, error):
    client.force_login(auditor)

    response = client.get(reverse("audit:event-list"), query)

    assert listed(response) == []
    assert error in response.content.decode()


@pytest.mark.parametrize(
    "export", ["audit:event-export-csv", "audit:event-export-jsonl"]
)
@pytest.mark.parametrize(("query", "error"), INVALID_FILTERS)
def test_export_invalid_filter_is_400(client, auditor, events, export, query, error):
    client.force_login(auditor)

    response = client.get(reverse(export), query)

    assert response.status_code == 400
    text = response.content.decode()
    assert text.startswith("invalid filter, nothing exported: ")
    assert error in text
    assert "approval.decided" not in text


@pytest.mark.parametrize("page", ["999", "abc"])
def test_page_out_of_range_shows_nearest(client, auditor, page):
    for number in range(55):
        services.record("incident.opened", f"opened {number}")
    client.force_login(auditor)

    response = client.get(reverse("audit:event-list"), {"page": page})

    assert response.status_code == 200
    assert len(listed(response)) in (5, 50)


def test_page_is_paginated(client, auditor):
    for number in range(55):
        services.record("incident.opened", f"opened {number}")
    client.force_login(auditor)

    first = client.get(reverse("audit:event-list"))
    second = client.get(reverse("audit:event-list"), {"page": 2})

    assert len(listed(first)) == 50
    assert len(listed(second)) == 5


def test_page_escapes_summaries(client, auditor):
    services.record("admin.changed", "renamed to <script>alert(1)</script>")
    client.force_login(auditor)

    text = client.get(reverse("audit:event-list")).content.decode()

    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_page_needs_view_permission(client, persona_factory):
    client.force_login(persona_factory("outsider"))

    response = client.get(reverse("audit:event-list"))

    assert response.status_code == 403


def test_page_sends_anonymous_visitor_to_login(client):
    response = client.get(reverse("audit:event-list"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def read_stream(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_csv_export_has_the_filtered_events(client, auditor, events):
    client.force_login(auditor)

    response = client.get(reverse("audit:event-export-csv"), {"kind": "approval."})

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(read_stream(response))))
    assert [row["kind"] for row in rows] == ["approval.decided", "approval.expired"]
    assert rows[0]["actor_name"] == "approver"
    assert rows[0]["address"] == "192.0.2.1"
    assert rows[0]["incident_number"] == str(events["decided"].incident_number)


def test_csv_export_defuses_spreadsheet_formulas(client, auditor, events):
    client.force_login(auditor)

    response = client.get(
        reverse("audit:event-export-csv"), {"kind": "notification.sent"}
    )

    (row,) = csv.DictReader(io.StringIO(read_stream(response)))
    assert row["summary"] == '\'=HYPERLINK("x")'


def test_json_lines_export_has_one_event_per_line(client, auditor, events):
    client.force_login(auditor)

    response = client.get(reverse("audit:event-export-jsonl"), {"actor": "approver"})

    lines = read_stream(response).splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["id"] for record in records] == [
        events["decided"].pk,
        events["admin"].pk,
    ]
    assert records[0]["summary"] == "approver approved scale_replicas"


def test_export_needs_view_permission(client, persona_factory):
    client.force_login(persona_factory("outsider"))

    response = client.get(reverse("audit:event-export-csv"))

    assert response.status_code == 403
