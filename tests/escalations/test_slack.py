"""Slack messages: escaping of user text and Slack's size limits."""

import pytest

from escalations.services import messages
from escalations.transports.slack import (
    BACKTICK_LOOKALIKE,
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    SlackTransport,
    escape,
    truncate_escaped,
)
from tests.escalations.conftest import make_incident
from tests.watchers.factories import make_watcher

pytestmark = pytest.mark.django_db


def payload(incident, severity="high", reason="by hand"):
    message = messages.escalated(incident, severity, reason)
    return SlackTransport().payload(message, "tech")


def texts(body) -> list[str]:
    found = []
    for block in body["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        for element in block.get("elements", []):
            found.append(element["text"])
    return found


def test_labels_are_escaped():
    incident = make_incident(
        labels={"path": "<!channel> & <https://evil.example|click>", "owner": "*bold*"}
    )

    body = payload(incident)

    joined = "\n".join(texts(body))
    assert "<!channel>" not in joined
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in joined
    assert "`*bold*`" in joined


def test_backtick_cannot_close_code_span():
    incident = make_incident(labels={"owner": "a`*bold*`b"})

    body = payload(incident)

    joined = "\n".join(texts(body))
    assert "`a`*bold*`b`" not in joined
    assert f"`a{BACKTICK_LOOKALIKE}*bold*{BACKTICK_LOOKALIKE}b`" in joined


def test_reason_and_fallback_escaped():
    body = payload(make_incident(), reason="loss > 100 & <@U123>")

    assert "<@U123>" not in body["text"]
    assert "&gt; 100 &amp; &lt;@U123&gt;" in body["text"]


def test_incident_link_present():
    incident = make_incident()

    body = payload(incident)

    joined = "\n".join(texts(body))
    assert f"|Open incident #{incident.pk}>" in joined
    assert "<https://bastion.example/" in joined


def test_long_texts_truncated_to_limits():
    watcher = make_watcher(name="w" * 190)
    incident = make_incident(
        watcher,
        summary="&" * 500,
        labels={f"label{index}": "v" * 300 for index in range(40)},
    )

    body = payload(incident, reason="r" * 10000)

    header = body["blocks"][0]["text"]["text"]
    assert len(header) == MAX_HEADER_TEXT
    assert all(len(text) <= MAX_SECTION_TEXT for text in texts(body))
    assert len(body["text"]) <= MAX_FALLBACK_TEXT
    assert len(body["blocks"]) <= MAX_BLOCKS
    assert "more labels" in "\n".join(texts(body))


def test_truncation_keeps_entities_whole():
    text = escape("&" * 10)

    cut = truncate_escaped(text, 12)

    assert cut == "&amp;&amp;…"
