"""The demo's Slack receiver stores webhook posts and lists them, escaped."""

import threading

import httpx
import pytest

from demo.slack_receiver import SlackReceiver, message_text


@pytest.fixture
def receiver():
    server = SlackReceiver(port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


SLACK_MESSAGE = {
    "text": "CRITICAL: failed_auth_attempts opened",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "CRITICAL <b>"}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "value 30 &amp; rising, fires when &gt; 10",
            },
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": "<http://x/approvals/1|approve>"}],
        },
    ],
}


def test_post_answers_ok(receiver):
    response = httpx.post(f"{receiver.url}/hooks/executive", json=SLACK_MESSAGE)

    assert response.status_code == 200
    assert response.text == "ok"


def test_messages_json_lists_newest_first(receiver):
    httpx.post(f"{receiver.url}/hooks/tech", json={"text": "first"})
    httpx.post(f"{receiver.url}/sms", json={"to": "ceo", "message": "second"})

    messages = httpx.get(f"{receiver.url}/messages.json").json()

    assert [message["path"] for message in messages] == ["/sms", "/hooks/tech"]
    assert messages[1]["payload"] == {"text": "first"}
    assert '"message": "second"' in messages[0]["text"]


def test_page_shows_blocks_as_escaped_text(receiver):
    httpx.post(f"{receiver.url}/hooks/executive", json=SLACK_MESSAGE)

    page = httpx.get(f"{receiver.url}/").text

    assert "CRITICAL &lt;b&gt;" in page
    assert "value 30 &amp; rising, fires when &gt; 10" in page
    assert "&lt;http://x/approvals/1|approve&gt;" in page
    assert "<b>CRITICAL" not in page
    assert "/hooks/executive" in page


def test_invalid_json_is_rejected(receiver):
    response = httpx.post(f"{receiver.url}/hooks/team", content=b"{not json")

    assert response.status_code == 400
    assert httpx.get(f"{receiver.url}/messages.json").json() == []


def test_message_text_joins_text_and_blocks():
    text = message_text(SLACK_MESSAGE)

    assert text.splitlines() == [
        "CRITICAL: failed_auth_attempts opened",
        "CRITICAL <b>",
        "value 30 & rising, fires when > 10",
        "<http://x/approvals/1|approve>",
    ]
