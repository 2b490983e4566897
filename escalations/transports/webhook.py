"""Generic JSON webhooks, such as an SMS gateway.

The body is ``{to, message, incident, severity, url}``.
"""

from typing import Any

from escalations.transports.base import Transport, truncate

# Two SMS segments of 160 GSM characters. Gateways split longer texts, so this
# is a choice to keep pages short, not a protocol limit.
MAX_MESSAGE = 320


class WebhookTransport(Transport):
    kind = "webhook"

    def payload(self, message: dict[str, Any], recipient: str) -> dict[str, Any]:
        text = (
            f"[{message['severity'].upper()}] {message['title']}: {message['reason']}"
        )
        return {
            "to": recipient,
            "message": truncate(text, MAX_MESSAGE),
            "incident": message["incident_id"],
            "severity": message["severity"],
            "url": message.get("approval_url") or message["incident_url"],
        }
