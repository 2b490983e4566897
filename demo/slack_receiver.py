"""A local stand-in for Slack incoming webhooks (and an SMS gateway) for the demo.

Every POST is stored with its path, so /hooks/executive and /sms keep their
receivers apart. GET / shows the messages, newest first, as an HTML page,
with the ``text`` and the Block Kit blocks rendered as escaped plain text.
GET /messages.json returns the same list as JSON.

Run: ``python -m demo.slack_receiver --port 8090``.
"""

import argparse
import html
import json
import logging
import signal
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

MAX_MESSAGES = 500
MAX_BODY_BYTES = 1024 * 1024
PAGE_REFRESH_SECONDS = 5


def decode_entities(text: str) -> str:
    """Undo Slack's escaping of ``&``, ``<`` and ``>``, the only entities it decodes."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def block_text(block: dict[str, Any]) -> list[str]:
    """Return the text lines of one Block Kit block: its text, fields and elements."""
    parts = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
    lines = []
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            lines.append(decode_entities(part["text"]))
        elif isinstance(part, str):
            lines.append(decode_entities(part))
    return lines


def message_text(payload: Any) -> str:
    """Return a message as plain text: ``text``, then each block's lines.

    The page escapes the result for HTML, so Slack's own ``&lt;`` entities
    are decoded first and show as the characters they stand for.
    A body that is not a Slack message (an SMS gateway's JSON) is shown as
    indented JSON.
    """
    if not isinstance(payload, dict) or not ("text" in payload or "blocks" in payload):
        return json.dumps(payload, indent=2, ensure_ascii=False)
    lines = [decode_entities(str(payload.get("text") or ""))]
    for block in payload.get("blocks") or []:
        if isinstance(block, dict):
            lines.extend(block_text(block))
    return "\n".join(line for line in lines if line)


class MessageStore:
    """The received messages, oldest first, under a lock."""

    def __init__(self, max_messages: int = MAX_MESSAGES) -> None:
        self._messages: deque[dict[str, Any]] = deque(maxlen=max_messages)
        self._lock = threading.Lock()

    def add(self, path: str, payload: Any) -> dict[str, Any]:
        message = {
            "received_at": time.time(),
            "path": path,
            "payload": payload,
            "text": message_text(payload),
        }
        with self._lock:
            self._messages.append(message)
        return message

    def newest_first(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(reversed(self._messages))


def render_page(messages: list[dict[str, Any]]) -> str:
    """Return the HTML page listing ``messages``, every value escaped."""
    items = []
    for message in messages:
        received = time.strftime(
            "%Y-%m-%d %H:%M:%S", time.localtime(message["received_at"])
        )
        items.append(
            "<li><p><b>{path}</b> at {received}</p><pre>{text}</pre></li>".format(
                path=html.escape(message["path"]),
                received=html.escape(received),
                text=html.escape(message["text"]),
            )
        )
    body = "\n".join(items) or "<li>No messages yet.</li>"
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{PAGE_REFRESH_SECONDS}'>"
        "<title>Demo Slack receiver</title></head><body>"
        f"<h1>Messages received ({len(messages)}), newest first</h1>"
        f"<ul>\n{body}\n</ul></body></html>\n"
    )


class ReceiverHandler(BaseHTTPRequestHandler):
    server: "SlackReceiver"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        messages = self.server.store.newest_first()
        if self.path == "/":
            self._send(200, render_page(messages).encode(), "text/html; charset=utf-8")
        elif self.path == "/messages.json":
            self._send(200, json.dumps(messages).encode(), "application/json")
        else:
            self._send(404, b"not found: use / or /messages.json\n", "text/plain")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, b"body too large\n", "text/plain")
            return
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw or b"null")
        except json.JSONDecodeError:
            # Slack returns invalid_payload with status 400.
            self._send(400, b"invalid_payload", "text/plain")
            return
        message = self.server.store.add(self.path, payload)
        logger.info("message on %s: %s", self.path, message["text"][:200])
        # Slack's incoming webhooks return "ok" for a delivered message.
        self._send(200, b"ok", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Each message is logged once by do_POST; the page reloads are noise.
        pass


class SlackReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), ReceiverHandler)
        self.store = MessageStore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = SlackReceiver(arguments.port)

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever, so it must run in another thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("Slack receiver listening on %s", server.url)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
