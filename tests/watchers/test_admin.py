"""Django admin for watchers, incidents, series states, data sources and steps."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from mitigations.admin import MitigationStepForm
from mitigations.models import MitigationStep
from tests.watchers.factories import make_watcher
from watchers.admin import WatcherAdminForm
from watchers.choices import Health, IncidentKind, SeriesStatus
from watchers.models import DataSource, Incident, SeriesState, Watcher

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(
        username="admin", password="admin-password-1"
    )


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def watcher_with_rows() -> Watcher:
    now = timezone.now()
    watcher = make_watcher(
        name="api-latency",
        health=Health.ERROR,
        last_error="timeout",
        last_value=0.93,
        last_evaluated_at=now,
    )
    incident = Incident.objects.create(
        watcher=watcher,
        fingerprint="abc123",
        labels={"pod": "web-7"},
        comparison=">",
        threshold=0.8,
        last_value=0.93,
        opened_at=now - timedelta(minutes=5),
    )
    SeriesState.objects.create(
        watcher=watcher,
        fingerprint="abc123",
        labels={"pod": "web-7"},
        status=SeriesStatus.FIRING,
        pending_since=now - timedelta(minutes=6),
        last_evaluated_at=now,
        incident=incident,
    )
    Incident.objects.create(
        kind=IncidentKind.DATASOURCE,
        fingerprint="prometheus",
        opened_at=now,
        summary="Prometheus unreachable",
    )
    DataSource.objects.create(url="http://127.0.0.1:9090", consecutive_failures=3)
    MitigationStep.objects.create(watcher=watcher, position=1, action="clear_caches")
    return watcher


def watcher_data(**changes: Any) -> dict[str, Any]:
    data = {
        "name": "api-latency",
        "group": "performance",
        "query": "histogram_quantile(0.99, sum by (le) (rate(http_bucket[5m])))",
        "comparison": ">",
        "threshold": "0.8",
        "clear_threshold": "",
        "severity": "high",
        "mode": "active",
        "labels": "{}",
        "window_seconds": "300",
        "interval_seconds": "60",
        "resolve_delay_seconds": "",
        "escalation_delay_seconds": "900",
        "max_series": "",
    }
    data.update(changes)
    return data


STEP_DEFAULTS = {"position": 1, "timeout_seconds": 60, "approval": "default"}


def step_formset(*actions: str) -> dict[str, str]:
    data = {
        "steps-TOTAL_FORMS": str(len(actions)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, action in enumerate(actions):
        data[f"steps-{index}-position"] = str(index + 1)
        data[f"steps-{index}-action"] = action
        data[f"steps-{index}-parameters"] = "{}"
        data[f"steps-{index}-timeout_seconds"] = "60"
        data[f"steps-{index}-approval"] = "default"
    return data


@pytest.mark.parametrize(
    "model",
    [
        "watchers.watcher",
        "watchers.incident",
        "watchers.seriesstate",
        "watchers.datasource",
        "mitigations.mitigationstep",
    ],
)
def test_changelist_loads_for_superuser(admin_client, watcher_with_rows, model):
    app_label, model_name = model.split(".")

    response = admin_client.get(reverse(f"admin:{app_label}_{model_name}_changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_watcher_changelist_shows_human_durations(admin_client, watcher_with_rows):
    watcher_with_rows.window_seconds = 5400
    watcher_with_rows.save()

    response = admin_client.get(reverse("admin:watchers_watcher_changelist"))
    html = response.content.decode()

    assert '<td class="field-window">1h30m</td>' in html
    assert '<td class="field-interval">15s</td>' in html


def test_watcher_change_page_lists_steps(admin_client, watcher_with_rows):
    url = reverse("admin:watchers_watcher_change", args=[watcher_with_rows.pk])

    response = admin_client.get(url)
    html = response.content.decode()

    assert response.status_code == 200
    assert 'name="steps-0-action"' in html
    assert '<option value="clear_caches" selected>' in html


def test_watcher_runtime_fields_are_read_only(admin_client, watcher_with_rows):
    url = reverse("admin:watchers_watcher_change", args=[watcher_with_rows.pk])

    html = admin_client.get(url).content.decode()

    for field in ["health", "last_error", "next_evaluation_at", "last_value"]:
        assert f'name="{field}"' not in html


def test_incident_changelist_searches_labels(admin_client, watcher_with_rows):
    url = reverse("admin:watchers_incident_changelist")

    found = admin_client.get(url, {"q": "web-7"}).context["cl"].result_count
    missing = admin_client.get(url, {"q": "web-8"}).context["cl"].result_count

    assert found == 1
    assert missing == 0


def test_incident_changelist_filters_watcher_group(admin_client, watcher_with_rows):
    url = reverse("admin:watchers_incident_changelist")

    response = admin_client.get(url, {"watcher__group": "other"})

    assert response.context["cl"].result_count == 1


def test_incident_cannot_be_added(admin_client):
    response = admin_client.get(reverse("admin:watchers_incident_add"))

    assert response.status_code == 403


def test_series_state_cannot_be_changed(admin_client, watcher_with_rows):
    state = SeriesState.objects.get()
    url = reverse("admin:watchers_seriesstate_change", args=[state.pk])

    response = admin_client.post(url, {"status": SeriesStatus.PENDING})

    state.refresh_from_db()
    assert response.status_code == 403
    assert state.status == SeriesStatus.FIRING


def test_form_accepts_good_watcher():
    form = WatcherAdminForm(data=watcher_data())

    assert form.is_valid(), form.errors


def test_form_rejects_bad_promql():
    form = WatcherAdminForm(data=watcher_data(query="sum(rate(http_total[5m])"))

    assert not form.is_valid()
    assert list(form.errors) == ["query"]
    assert form.errors["query"][0].startswith("the query does not parse")


def test_form_rejects_range_vector_query():
    form = WatcherAdminForm(data=watcher_data(query="http_total[5m]"))

    assert not form.is_valid()
    assert "wrap a range selector in a function" in form.errors["query"][0]


def test_form_rejects_window_shorter_than_interval():
    form = WatcherAdminForm(
        data=watcher_data(window_seconds="30", interval_seconds="60")
    )

    assert not form.is_valid()
    assert list(form.errors) == ["window_seconds"]
    assert (
        "the window 30s is shorter than the interval 1m"
        in (form.errors["window_seconds"][0])
    )


def test_form_rejects_zero_interval():
    form = WatcherAdminForm(data=watcher_data(interval_seconds="0"))

    assert not form.is_valid()
    assert form.errors["interval_seconds"] == ["the interval must be longer than 0s"]


@pytest.mark.parametrize(
    ("max_series", "message"),
    [
        ("0", "0 is not a positive whole number"),
        ("1000001", "1000001 is more than the maximum of 1000000"),
    ],
)
def test_form_rejects_bad_max_series(max_series, message):
    form = WatcherAdminForm(data=watcher_data(max_series=max_series))

    assert not form.is_valid()
    assert message in form.errors["max_series"][0]


@pytest.mark.parametrize("value", ["366d", "99999999999999999999"])
def test_form_rejects_too_long_duration(value):
    form = WatcherAdminForm(data=watcher_data(escalation_delay_seconds=value))

    message = form.errors["escalation_delay_seconds"][0]

    assert not form.is_valid()
    assert "longer than the maximum of 365 days" in message


@pytest.mark.parametrize(
    ("comparison", "clear_threshold"), [(">", "0.9"), (">=", "0.8"), ("<", "0.7")]
)
def test_form_rejects_clear_threshold_on_breach_side(comparison, clear_threshold):
    data = watcher_data(comparison=comparison, clear_threshold=clear_threshold)

    form = WatcherAdminForm(data=data)

    assert not form.is_valid()
    assert list(form.errors) == ["clear_threshold"]


@pytest.mark.parametrize(
    ("comparison", "clear_threshold"), [(">", "0.7"), ("<=", "0.9")]
)
def test_form_accepts_clear_threshold_on_clear_side(comparison, clear_threshold):
    data = watcher_data(comparison=comparison, clear_threshold=clear_threshold)

    form = WatcherAdminForm(data=data)

    assert form.is_valid(), form.errors


def test_admin_add_saves_watcher_with_steps(admin_client):
    data = {**watcher_data(), **step_formset("scale_replicas", "clear_caches")}

    response = admin_client.post(reverse("admin:watchers_watcher_add"), data)

    watcher = Watcher.objects.get(name="api-latency")
    assert response.status_code == 302
    assert list(watcher.steps.values_list("action", flat=True)) == [
        "scale_replicas",
        "clear_caches",
    ]


def test_admin_add_rejects_bad_promql(admin_client):
    data = {**watcher_data(query="rate(http_total[5m]"), **step_formset()}

    response = admin_client.post(reverse("admin:watchers_watcher_add"), data)

    assert response.status_code == 200
    assert "the query does not parse" in response.content.decode()
    assert not Watcher.objects.exists()


def test_admin_add_rejects_unknown_action(admin_client):
    data = {**watcher_data(), **step_formset("reboot_everything")}

    response = admin_client.post(reverse("admin:watchers_watcher_add"), data)

    assert response.status_code == 200
    assert "reboot_everything is not a known mitigation action" in (
        response.content.decode()
    )
    assert not Watcher.objects.exists()


def test_step_form_accepts_known_action():
    watcher = make_watcher()
    data = {**STEP_DEFAULTS, "watcher": watcher.pk, "action": "scale_replicas"}

    form = MitigationStepForm(data={**data, "parameters": "{}"})

    assert form.is_valid(), form.errors


def test_step_form_rejects_parameters_the_action_does_not_take():
    watcher = make_watcher()
    data = {**STEP_DEFAULTS, "watcher": watcher.pk, "action": "scale_replicas"}

    form = MitigationStepForm(data={**data, "parameters": '{"replicas": 3}'})

    assert not form.is_valid()
    assert "field 'replicas': unknown parameter" in form.errors["parameters"][0]


def test_step_form_rejects_a_wrongly_typed_parameter():
    watcher = make_watcher()
    data = {**STEP_DEFAULTS, "watcher": watcher.pk, "action": "temporary_ip_block"}

    form = MitigationStepForm(data={**data, "parameters": '{"ips": ["not-an-ip"]}'})

    assert not form.is_valid()
    assert "is not an IP address" in form.errors["parameters"][0]


def test_step_form_rejects_unknown_action():
    watcher = make_watcher()
    data = {**STEP_DEFAULTS, "watcher": watcher.pk, "action": "reboot_everything"}

    form = MitigationStepForm(data={**data, "parameters": "{}"})

    assert not form.is_valid()
    assert list(form.errors) == ["action"]


# Durations, units and labels


def test_form_accepts_durations_with_units():
    form = WatcherAdminForm(
        data=watcher_data(
            window_seconds="10m",
            interval_seconds="1m",
            resolve_delay_seconds="2m30s",
            escalation_delay_seconds="immediate",
        )
    )

    assert form.is_valid(), form.errors
    assert form.cleaned_data["window_seconds"] == 600
    assert form.cleaned_data["interval_seconds"] == 60
    assert form.cleaned_data["resolve_delay_seconds"] == 150
    assert form.cleaned_data["escalation_delay_seconds"] == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ten minutes", "is not a duration"),
        ("10 m", "is not a duration"),
        ("daily", "set the window to 0s and the interval to 1d"),
        ("-5", "is not a duration"),
    ],
)
def test_form_rejects_bad_duration(value, message):
    form = WatcherAdminForm(data=watcher_data(window_seconds=value))

    assert not form.is_valid()
    assert message in str(form.errors["window_seconds"])


def test_change_form_shows_durations_with_units(admin_client):
    watcher = make_watcher(window_seconds=600, interval_seconds=60)

    html = admin_client.get(
        reverse("admin:watchers_watcher_change", args=[watcher.pk])
    ).content.decode()

    assert 'name="window_seconds" value="10m"' in html
    assert 'name="interval_seconds" value="1m"' in html


@pytest.mark.parametrize("threshold", ["high", "inf", "nan", ""])
def test_form_rejects_threshold_that_is_not_a_number(threshold):
    form = WatcherAdminForm(data=watcher_data(threshold=threshold))

    assert not form.is_valid()
    assert "threshold" in form.errors


def test_form_rejects_unknown_comparison():
    form = WatcherAdminForm(data=watcher_data(comparison="=="))

    assert not form.is_valid()
    assert "comparison" in form.errors


@pytest.mark.parametrize("labels", ['{"team": 3}', '["team"]', '{"team": null}'])
def test_form_rejects_labels_that_are_not_text(labels):
    form = WatcherAdminForm(data=watcher_data(labels=labels))

    assert not form.is_valid()
    assert "labels" in form.errors


def test_form_saves_unit():
    form = WatcherAdminForm(data=watcher_data(unit="req/s"))

    assert form.is_valid(), form.errors
    assert form.save().unit == "req/s"


# Audit log of admin changes


def step_change_formset(watcher: Watcher, step: MitigationStep, **changes: str):
    fields = {
        "position": str(step.position),
        "action": step.action,
        "parameters": json.dumps(step.parameters),
        "timeout_seconds": str(step.timeout_seconds),
        "approval": step.approval,
    }
    fields.update(changes)
    # The admin page sends the initial values of fields with a callable
    # default in hidden inputs, and Django compares against those.
    data = {
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "1",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-id": str(step.pk),
        "steps-0-watcher": str(watcher.pk),
        "initial-labels": json.dumps(watcher.labels),
        "initial-steps-0-parameters": json.dumps(step.parameters),
    }
    data.update({f"steps-0-{name}": value for name, value in fields.items()})
    return data


def test_admin_change_records_old_and_new_values(admin_client, admin_user):
    watcher = make_watcher(
        name="api-latency",
        group="performance",
        query="histogram_quantile(0.99, sum by (le) (rate(http_bucket[5m])))",
        threshold=0.8,
        window_seconds=300,
        interval_seconds=60,
        escalation_delay_seconds=900,
        severity="high",
    )
    step = MitigationStep.objects.create(
        watcher=watcher, position=1, action="scale_replicas"
    )
    data = {
        **watcher_data(threshold="0.9"),
        **step_change_formset(watcher, step, timeout_seconds="120"),
    }

    response = admin_client.post(
        reverse("admin:watchers_watcher_change", args=[watcher.pk]),
        data,
        REMOTE_ADDR="192.0.2.30",
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(kind="admin.changed")
    assert event.actor == admin_user
    assert event.address == "192.0.2.30"
    assert event.details["fields"] == {"threshold": {"from": 0.8, "to": 0.9}}
    assert event.details["inlines"] == [
        {
            "object": f"mitigationstep {step}",
            "added": False,
            "fields": {"timeout_seconds": {"from": 60, "to": 120}},
        }
    ]


def test_admin_add_records_the_values(admin_client):
    data = {**watcher_data(), **step_formset("scale_replicas")}

    admin_client.post(reverse("admin:watchers_watcher_add"), data)

    event = AuditEvent.objects.get(kind="admin.changed")
    assert event.details["action"] == "added"
    assert event.details["fields"]["query"]["to"] == watcher_data()["query"]
    assert event.details["inlines"][0]["added"] is True


def test_admin_inline_deletion_is_recorded(admin_client):
    watcher = make_watcher(
        name="api-latency",
        group="performance",
        query="histogram_quantile(0.99, sum by (le) (rate(http_bucket[5m])))",
        threshold=0.8,
        window_seconds=300,
        interval_seconds=60,
        escalation_delay_seconds=900,
        severity="high",
    )
    step = MitigationStep.objects.create(
        watcher=watcher, position=1, action="clear_caches"
    )
    data = {**watcher_data(), **step_change_formset(watcher, step)}
    data["steps-0-DELETE"] = "on"

    admin_client.post(reverse("admin:watchers_watcher_change", args=[watcher.pk]), data)

    event = AuditEvent.objects.get(kind="admin.changed")
    assert not MitigationStep.objects.exists()
    assert event.details["inlines"] == [
        {"object": f"mitigationstep {step}", "deleted": True}
    ]
