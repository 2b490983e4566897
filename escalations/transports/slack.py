"""Slack incoming webhooks: Block Kit blocks with a plain ``text`` fallback.

Limits from Slack's Block Kit reference: a section's text is at most 3000
characters, a header's 150, a message at most 50 blocks. Slack truncates a
message's ``text`` beyond 40,000 characters and advises keeping it under
4,000; the fallback is only the notification line, so it is kept far shorter.
"""

from typing import Any

from escalations.transports.base import Transport, truncate

MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_BLOCKS = 50
MAX_FALLBACK_TEXT = 3000
MAX_LABEL_VALUE = 200
BACKTICK_LOOKALIKE = "\u02cb"


def escape(text: str) -> str:
    """Escape Slack's control characters, so user text is shown, never parsed.

    Slack reads ``<...>`` as a link or mention (``<!channel>``) and ``&`` as
    the start of an entity; these three are the only characters it decodes.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate_escaped(text: str, limit: int) -> str:
    """Truncate escaped text without cutting an entity such as ``&amp;`` in two."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    ampersand = cut.rfind("&")
    if ampersand != -1 and ";" not in cut[ampersand:]:
        cut = cut[:ampersand]
    return cut + "…"


def code(text: str) -> str:
    """Show text in a code span, where Slack applies no *bold*, _italic_ or ~strike~.

    A backtick would close the span early, so it becomes a look-alike (U+02CB).
    """
    return "`" + escape(text.replace("`", BACKTICK_LOOKALIKE)) + "`"


def link(url: str, label: str) -> str:
    return f"<{escape(url)}|{escape(label)}>"


class SlackTransport(Transport):
    kind = "slack"

    def payload(self, message: dict[str, Any], recipient: str) -> dict[str, Any]:
        blocks = [
            _header(message),
            _section(_details(message)),
        ]
        labels = _labels(message.get("labels") or {})
        if labels:
            blocks.append(_section(labels))
        blocks.append(_section(_links(message)))
        if message.get("note"):
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": _fit(escape(message["note"]))}
                    ],
                }
            )
        return {"text": _fallback(message), "blocks": blocks[:MAX_BLOCKS]}


def _header(message: dict[str, Any]) -> dict[str, Any]:
    # A header is plain_text: Slack renders it as typed, so it needs no escaping.
    title = f"{message['severity'].upper()}: {message['title']}"
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(title, MAX_HEADER_TEXT)},
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(text)}}


def _fit(text: str) -> str:
    return truncate_escaped(text, MAX_SECTION_TEXT)


def _details(message: dict[str, Any]) -> str:
    lines = [f"*{escape(message['reason'])}*"]
    if message.get("watcher"):
        lines.append(f"Watcher: {code(message['watcher'])}")
    if message.get("value_text"):
        lines.append(f"Value: {escape(message['value_text'])}")
    if message.get("summary"):
        lines.append(escape(message["summary"]))
    return "\n".join(lines)


def _labels(labels: dict[str, Any]) -> str:
    lines = []
    length = 0
    items = sorted(labels.items())
    for index, (name, value) in enumerate(items):
        line = f"{code(str(name))} = {code(truncate(str(value), MAX_LABEL_VALUE))}"
        # Whole lines are dropped, never cut, so no code span is left open.
        if length + len(line) + 40 > MAX_SECTION_TEXT:
            lines.append(f"… and {len(items) - index} more labels")
            break
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def _links(message: dict[str, Any]) -> str:
    parts = [link(message["incident_url"], f"Open incident #{message['incident_id']}")]
    if message.get("approval_url"):
        parts.append(link(message["approval_url"], "Approve or reject the step"))
    return "   ·   ".join(parts)


def _fallback(message: dict[str, Any]) -> str:
    text = f"[{message['severity']}] {message['title']}: {message['reason']}"
    return truncate_escaped(escape(text), MAX_FALLBACK_TEXT)
