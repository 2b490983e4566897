"""Deliveries: retries, one send per notification, failures kept apart."""

import threading

import pytest
from django.db import connection

from devstack.receiver import HttpReceiver
from escalations.choices import DeliveryStatus, ReceiverKind, Transition
from escalations.models import Delivery, Receiver
from escalations.services import delivery, escalate, messages
from tests.escalations.conftest import NOW, make_incident, point_at, send_all


@pytest.fixture
def server():
    receiver = HttpReceiver()
    yield receiver
    receiver.stop()


def make_receiver(name="slack_ops", kind=ReceiverKind.SLACK) -> Receiver:
    return Receiver.objects.create(name=name, kind=kind, target=name.split("_")[-1])


def make_delivery(incident, receiver) -> Delivery:
    return Delivery.objects.create(
        incident=incident,
        receiver=receiver,
        transition=Transition.ESCALATED,
        key="escalated:high",
        severity="high",
        message=messages.escalated(incident, "high", "by hand"),
        created_at=NOW,
    )


@pytest.mark.django_db
def test_retries_until_accepted(monkeypatch, server):
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    server.statuses = [500, 500, 500, 200]
    row = make_delivery(make_incident(), receiver)

    status = delivery.deliver(row.pk, NOW)

    row.refresh_from_db()
    assert status == DeliveryStatus.DELIVERED
    assert row.attempts == 4
    assert row.response_code == 200
    assert len(server.requests) == 4
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 1


@pytest.mark.django_db
def test_retries_reuse_idempotency_key(monkeypatch, server):
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    server.statuses = [503, 200]
    row = make_delivery(make_incident(), receiver)

    delivery.deliver(row.pk, NOW)

    keys = {request.headers["Idempotency-Key"] for request in server.requests}
    assert keys == {str(row.idempotency_key)}


@pytest.mark.django_db
def test_second_deliver_sends_nothing(monkeypatch, server):
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    row = make_delivery(make_incident(), receiver)

    delivery.deliver(row.pk, NOW)
    delivery.deliver(row.pk, NOW)

    assert len(server.requests) == 1


@pytest.mark.django_db
def test_client_error_is_permanent(monkeypatch, server):
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    server.statuses = [404]
    row = make_delivery(make_incident(), receiver)

    status = delivery.deliver(row.pk, NOW)

    row.refresh_from_db()
    assert status == DeliveryStatus.FAILED
    assert len(server.requests) == 1
    assert "HTTP 404" in row.last_error
    assert row.response_code == 404


@pytest.mark.django_db
def test_gives_up_after_bounded_retries(monkeypatch, server, settings):
    settings.NOTIFICATION_RETRIES = 2
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    server.statuses = [500] * 10
    row = make_delivery(make_incident(), receiver)

    status = delivery.deliver(row.pk, NOW)

    assert status == DeliveryStatus.FAILED
    assert len(server.requests) == 3


@pytest.mark.django_db
def test_missing_url_fails_clearly():
    row = make_delivery(make_incident(), make_receiver("slack_nowhere"))

    delivery.deliver(row.pk, NOW)

    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED
    assert "BASTION_RECEIVER_SLACK_NOWHERE_URL" in row.last_error


@pytest.mark.django_db
def test_url_and_url_file_together_rejected(monkeypatch, tmp_path):
    receiver = make_receiver()
    url_file = tmp_path / "url"
    url_file.write_text("http://127.0.0.1:9/x\n")
    monkeypatch.setenv("BASTION_RECEIVER_SLACK_OPS_URL", "http://127.0.0.1:9/x")
    monkeypatch.setenv("BASTION_RECEIVER_SLACK_OPS_URL_FILE", str(url_file))
    row = make_delivery(make_incident(), receiver)

    delivery.deliver(row.pk, NOW)

    row.refresh_from_db()
    assert "keep one" in row.last_error


@pytest.mark.django_db
def test_url_and_token_read_from_files(monkeypatch, server, tmp_path):
    receiver = make_receiver("sms_oncall", ReceiverKind.WEBHOOK)
    (tmp_path / "url").write_text(f"{server.url}/sms\n")
    (tmp_path / "token").write_text("gateway-token\n")
    monkeypatch.setenv("BASTION_RECEIVER_SMS_ONCALL_URL_FILE", str(tmp_path / "url"))
    monkeypatch.setenv(
        "BASTION_RECEIVER_SMS_ONCALL_TOKEN_FILE", str(tmp_path / "token")
    )
    row = make_delivery(make_incident(), receiver)

    delivery.deliver(row.pk, NOW)

    request = server.requests[0]
    assert request.path == "/sms"
    assert request.headers["Authorization"] == "Bearer gateway-token"


@pytest.mark.django_db
def test_webhook_body_has_sms_fields(monkeypatch, server):
    receiver = make_receiver("sms_ceo", ReceiverKind.WEBHOOK)
    point_at(monkeypatch, receiver, server)
    incident = make_incident()
    row = make_delivery(incident, receiver)

    delivery.deliver(row.pk, NOW)

    body = server.requests[0].json()
    assert set(body) == {"to", "message", "incident", "severity", "url"}
    assert body["to"] == "ceo"
    assert body["incident"] == incident.pk
    assert body["severity"] == "high"
    assert body["url"].startswith("https://bastion.example")


@pytest.mark.django_db
def test_failing_receiver_does_not_stop_others(routed):
    routed["sms_ceo"].statuses = [500] * 10
    escalate(make_incident().pk, "critical", "by hand", now=NOW)

    statuses = send_all()

    by_receiver = dict(Delivery.objects.values_list("receiver__name", "status"))
    assert sorted(statuses.values()) == ["delivered", "failed"]
    assert by_receiver["sms_ceo"] == DeliveryStatus.FAILED
    assert by_receiver["slack_executive"] == DeliveryStatus.DELIVERED
    assert len(routed["slack_executive"].requests) == 1


@pytest.mark.django_db
def test_record_twice_creates_one_row():
    receiver = make_receiver()
    incident = make_incident()
    message = messages.escalated(incident, "high", "by hand")

    first = delivery.record(incident, "escalated:high", [receiver], message, NOW)
    second = delivery.record(
        incident, "escalated:high", [receiver, receiver], message, NOW
    )

    assert len(first) == 1
    assert second == []
    assert Delivery.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_send_once(monkeypatch, server):
    # The receiver responds slowly, so both workers are in flight together.
    server.delay_seconds = 0.3
    receiver = make_receiver()
    point_at(monkeypatch, receiver, server)
    row = make_delivery(make_incident(), receiver)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def work():
        barrier.wait()
        try:
            results.append(delivery.deliver(row.pk))
        finally:
            connection.close()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(server.requests) == 1
    assert sorted(results) == [DeliveryStatus.DELIVERED, DeliveryStatus.SENDING]
    assert Delivery.objects.get(pk=row.pk).status == DeliveryStatus.DELIVERED
