"""Failures that say nothing about the queries: a dead server or a broken proxy.

The proxy is a local HTTP server standing in front of (or instead of)
Prometheus, answering the way misbehaving proxies do.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from devstack.processes import free_port
from tests.watchers.factories import make_watcher
from tests.watchers.test_evaluation import has_value, slot
from watchers.choices import Health, IncidentKind, IncidentState
from watchers.models import DataSource, Incident
from watchers.services.evaluation import evaluate_watchers
from watchers.services.prometheus import PrometheusClient

pytestmark = pytest.mark.django_db

ANSWERS = {
    "html-200": (200, "text/html", b"<html><body>Sign in to the proxy</body></html>"),
    "html-502": (502, "text/html", b"<html><body>502 Bad Gateway</body></html>"),
    "plain-503": (503, "text/plain", b"upstream connect error"),
    "auth-401": (
        401,
        "application/json",
        b'{"status":"error","errorType":"unauthorized","error":"no token"}',
    ),
}


class BrokenProxy:
    def __init__(self, answer: str, delay_seconds: float = 0.0) -> None:
        status, content_type, body = ANSWERS.get(answer, (200, "text/plain", b""))

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                time.sleep(delay_seconds)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _reply

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
def proxy(request):
    broken = BrokenProxy(request.param)
    yield broken
    broken.stop()


def datasource_incidents():
    return Incident.objects.filter(kind=IncidentKind.DATASOURCE)


@pytest.mark.parametrize("proxy", list(ANSWERS), indirect=True)
def test_proxy_answer_marks_watchers_in_error(proxy):
    watchers = [make_watcher(window_seconds=0) for _ in range(3)]
    client = PrometheusClient(url=proxy.url, timeout_seconds=2)

    report = evaluate_watchers([w.id for w in watchers], slot(0), client=client)
    assert report.errors == 3
    for watcher in watchers:
        watcher.refresh_from_db()
        assert watcher.health == Health.ERROR
        assert watcher.last_error


def test_refused_connection_names_the_url():
    watcher = make_watcher(window_seconds=0)
    url = f"http://127.0.0.1:{free_port()}"
    evaluate_watchers([watcher.id], slot(0), client=PrometheusClient(url=url))
    watcher.refresh_from_db()
    assert url in watcher.last_error


def test_slow_server_is_reported_as_timeout():
    slow = BrokenProxy("slow", delay_seconds=3)
    try:
        watcher = make_watcher(window_seconds=0)
        client = PrometheusClient(url=slow.url, timeout_seconds=0.5)
        evaluate_watchers([watcher.id], slot(0), client=client)
    finally:
        slow.stop()
    watcher.refresh_from_db()
    assert "timed out" in watcher.last_error


def test_repeated_failures_open_one_meta_incident(settings):
    settings.DATASOURCE_FAILURES_BEFORE_INCIDENT = 3
    watchers = [make_watcher(window_seconds=0) for _ in range(5)]
    ids = [w.id for w in watchers]
    client = PrometheusClient(url=f"http://127.0.0.1:{free_port()}")

    for index in (0, 1):
        evaluate_watchers(ids, slot(index), client=client)
        assert not datasource_incidents().exists()
    for index in (2, 3, 4):
        evaluate_watchers(ids, slot(index), client=client)
    incident = datasource_incidents().get()
    assert incident.state == IncidentState.FIRING
    assert incident.labels == {"datasource": client.url}
    assert DataSource.objects.get(url=client.url).consecutive_failures == 5
    assert not Incident.objects.filter(kind=IncidentKind.SERIES).exists()


class SwitchableProxy:
    """Forwards to Prometheus while up; answers 502 with an HTML page while down."""

    def __init__(self, upstream: str) -> None:
        self.up = True
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not proxy.up:
                    body = ANSWERS["html-502"][2]
                    self.send_response(502)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                answer = httpx.post(
                    upstream + self.path,
                    content=self.rfile.read(length),
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                )
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers["Content-Type"])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.prometheus
def test_outage_keeps_incidents_and_recovery_resolves_meta_incident(
    settings, prometheus, exporter, settle
):
    settings.DATASOURCE_FAILURES_BEFORE_INCIDENT = 2
    exporter.set(2, series="outage")
    settle('bastion_test_value{series="outage"}', has_value(2))
    watcher = make_watcher(
        query='bastion_test_value{series="outage"}', threshold=1, window_seconds=0
    )
    proxy = SwitchableProxy(prometheus.url)
    client = PrometheusClient(url=proxy.url)
    try:
        evaluate_watchers([watcher.id], slot(0), client=client)
        series_incident = Incident.objects.get(watcher=watcher)

        proxy.up = False
        for index in (1, 2, 3):
            evaluate_watchers([watcher.id], slot(index), client=client)
        assert datasource_incidents().get().state == IncidentState.FIRING
        series_incident.refresh_from_db()
        assert series_incident.state == IncidentState.FIRING

        proxy.up = True
        evaluate_watchers([watcher.id], slot(4), client=client)
    finally:
        proxy.stop()

    assert datasource_incidents().get().state == IncidentState.RESOLVED
    assert DataSource.objects.get(url=client.url).consecutive_failures == 0
    series_incident.refresh_from_db()
    assert series_incident.state == IncidentState.FIRING
    watcher.refresh_from_db()
    assert watcher.health == Health.OK
