"""Verification after the last step, against a real Prometheus."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mitigations.choices import AttemptStatus
from mitigations.models import MitigationAttempt
from mitigations.services.verification import verify_attempt
from tests.watchers.factories import make_watcher
from tests.watchers.test_evaluation import has_value
from watchers.models import Incident
from watchers.services.judging import fingerprint
from watchers.services.prometheus import PrometheusClient

pytestmark = [pytest.mark.django_db, pytest.mark.prometheus]


@pytest.fixture
def verifying(prometheus, exporter, settle):
    """An incident on series "verify" with an attempt waiting for verification."""

    def create(value: float, window_left_seconds: float):
        exporter.set(value, series="verify")
        result = settle('bastion_test_value{series="verify"}', has_value(value))
        watcher = make_watcher(
            query='bastion_test_value{series="verify"}', threshold=1, window_seconds=0
        )
        incident = Incident.objects.create(
            watcher=watcher,
            fingerprint=fingerprint(result[0]["metric"]),
            labels=result[0]["metric"],
            opened_at=timezone.now(),
        )
        return MitigationAttempt.objects.create(
            incident=incident,
            number=1,
            status=AttemptStatus.VERIFYING,
            started_at=timezone.now(),
            verify_at=timezone.now() + timedelta(seconds=window_left_seconds),
        )

    return create


def test_recovered_metric_counts_as_mitigated(verifying, prometheus):
    attempt = verifying(0.2, window_left_seconds=60)

    status = verify_attempt(attempt.pk, client=PrometheusClient(url=prometheus.url))

    attempt.refresh_from_db()
    assert status == AttemptStatus.MITIGATED
    assert attempt.note == "the value recovered to 0.2"


def test_breaching_metric_keeps_verifying_inside_the_window(verifying, prometheus):
    attempt = verifying(5, window_left_seconds=60)
    status = verify_attempt(attempt.pk, client=PrometheusClient(url=prometheus.url))
    assert status == AttemptStatus.VERIFYING


def test_breaching_metric_after_the_window_is_a_failed_attempt(verifying, prometheus):
    attempt = verifying(5, window_left_seconds=-1)

    status = verify_attempt(attempt.pk, client=PrometheusClient(url=prometheus.url))

    attempt.refresh_from_db()
    assert status == AttemptStatus.FAILED
    assert "did not recover" in attempt.note
    assert "the value is still 5" in attempt.note


def test_unreachable_prometheus_does_not_count_as_recovery(verifying):
    attempt = verifying(0.2, window_left_seconds=60)
    client = PrometheusClient(url="http://127.0.0.1:1")

    status = verify_attempt(attempt.pk, client=client)

    assert status == AttemptStatus.VERIFYING
