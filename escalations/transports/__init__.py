"""Notification transports, one module each, registered by receiver kind."""

from escalations.choices import ReceiverKind
from escalations.transports.base import DeliveryError, SendResult, Transport
from escalations.transports.slack import SlackTransport
from escalations.transports.webhook import WebhookTransport

TRANSPORTS: dict[str, Transport] = {
    ReceiverKind.SLACK: SlackTransport(),
    ReceiverKind.WEBHOOK: WebhookTransport(),
}

__all__ = ["TRANSPORTS", "DeliveryError", "SendResult", "Transport", "get_transport"]


def get_transport(kind: str) -> Transport:
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise DeliveryError(
            f"no transport for receiver kind {kind!r}: use one of "
            + ", ".join(TRANSPORTS),
            permanent=True,
        ) from None
