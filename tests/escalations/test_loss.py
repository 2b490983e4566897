"""The revenue rule: a watcher's PromQL loss estimate against a real Prometheus."""

import pytest

from escalations.models import LossEstimate
from escalations.services.catalog import import_escalations
from escalations.services.evaluation import evaluate_open_incidents
from escalations.services.loss import read_loss
from tests.escalations.conftest import EXAMPLE, NOW, make_incident
from tests.watchers.factories import make_watcher
from watchers.models import Incident

pytestmark = [pytest.mark.django_db, pytest.mark.prometheus]

QUERY = 'bastion_test_value{series="loss"}'


@pytest.fixture
def estimate(prometheus, settings):
    settings.PROMETHEUS_URL = prometheus.url
    import_escalations(EXAMPLE)
    watcher = make_watcher()
    LossEstimate.objects.create(watcher=watcher, query=QUERY, currency="EUR")
    return watcher


def set_loss(exporter, settle, value: float) -> None:
    exporter.set(value, series="loss")
    settle(QUERY, lambda result: result and float(result[0]["value"][1]) == value)


def level(incident) -> str:
    return Incident.objects.get(pk=incident.pk).escalation_severity


def test_loss_above_limit_is_critical(estimate, exporter, settle):
    set_loss(exporter, settle, 150.0)
    incident = make_incident(estimate)

    evaluate_open_incidents(NOW)

    assert level(incident) == "critical"


def test_loss_below_limit_does_nothing(estimate, exporter, settle):
    set_loss(exporter, settle, 50.0)
    incident = make_incident(estimate)

    evaluate_open_incidents(NOW)

    assert level(incident) == ""


def test_series_of_other_labels_ignored(estimate, exporter, settle):
    set_loss(exporter, settle, 150.0)
    incident = make_incident(estimate, labels={"series": "checkout"})

    assert read_loss(incident) is None


def test_other_currency_does_not_fire(estimate, exporter, settle):
    set_loss(exporter, settle, 150.0)
    LossEstimate.objects.filter(watcher=estimate).update(currency="USD")
    incident = make_incident(estimate)

    evaluate_open_incidents(NOW)

    assert level(incident) == ""


def test_unreachable_prometheus_does_not_fire(estimate, settings):
    settings.PROMETHEUS_URL = "http://127.0.0.1:9"
    incident = make_incident(estimate)

    evaluate_open_incidents(NOW)

    assert level(incident) == ""
