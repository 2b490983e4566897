"""The request the Prometheus client sends, as a local server receives it."""

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from devstack.processes import free_port
from watchers.services.prometheus import PrometheusClient

EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}


class RecordingServer:
    """Answers every POST with an empty vector and keeps what it received."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type", ""),
                        "body": self.rfile.read(length).decode(),
                    }
                )
                body = json.dumps(EMPTY_VECTOR).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    server = RecordingServer()
    yield server
    server.stop()


def test_query_sent_in_form_body(recorder):
    # About 10 kB, as long as a batch of a hundred watchers' queries.
    expression = " or ".join(['sum(rate(http_requests{code=~"5.."}[5m]))'] * 240)
    at = datetime(2026, 1, 1, tzinfo=UTC)

    samples = PrometheusClient(url=recorder.url).query(expression, at=at)

    assert samples == []
    (request,) = recorder.requests
    assert request["path"] == "/api/v1/query"
    assert request["content_type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request["body"])
    assert form["query"] == [expression]
    assert form["time"] == [f"{at.timestamp():.3f}"]
