"""HTTP actions against local servers: service calls and dependency health."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.processes import free_port
from devstack.receiver import HttpReceiver
from mitigations.actions.base import ParameterError, PermanentError, RetryableError
from mitigations.choices import Risk
from mitigations.registry import get_action

SERVICE_CALLS = (
    "disable_feature_flags",
    "garbage_collection_force",
    "activate_enhanced_waf",
    "forensic_logging",
    "cert_validation",
    "backup_cert_check",
    "automated_cert_renewal",
    "connection_pool_optimization",
)


@pytest.fixture
def receiver():
    server = HttpReceiver()
    yield server
    server.stop()


@pytest.fixture
def long_body_server():
    """Serve 5,000 characters to every GET."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = b"x" * 5000
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", SERVICE_CALLS)
def test_service_call_posts_to_endpoint(name, receiver, context_for):
    context = context_for(name, {"url": f"{receiver.url}/{name}"})

    output = get_action(name).run(context)

    assert receiver.paths() == [f"/{name}"]
    assert receiver.requests[0].method == "POST"
    assert output["status"] == 200
    assert output["body"] == '{"status": 200}'


def test_service_call_risk_classes():
    risks = {name: get_action(name).risk for name in SERVICE_CALLS}

    assert risks.pop("cert_validation") == Risk.SAFE
    assert risks.pop("backup_cert_check") == Risk.SAFE
    assert set(risks.values()) == {Risk.DISRUPTIVE}


def test_service_call_fills_labels_in_body(receiver, context_for):
    context = context_for(
        "disable_feature_flags",
        {
            "url": receiver.url,
            "json": {"flags": ["{feature}"], "meta": {"service": "{service}"}},
        },
        labels={"feature": "new-checkout", "service": "sandra-api"},
    )

    get_action("disable_feature_flags").run(context)

    assert receiver.requests[0].json() == {
        "flags": ["new-checkout"],
        "meta": {"service": "sandra-api"},
    }


def test_service_call_sends_credential_not_output(receiver, context_for, tmp_path):
    secret = tmp_path / "waf-token"
    secret.write_text("waf-secret-7")
    context = context_for(
        "activate_enhanced_waf",
        {"url": receiver.url, "credential": f"file:{secret}"},
    )

    output = get_action("activate_enhanced_waf").run(context)

    assert receiver.requests[0].headers["Authorization"] == "Bearer waf-secret-7"
    assert "waf-secret-7" not in repr(output)
    assert "waf-secret-7" not in repr(context.params)


def test_service_call_custom_credential_header(receiver, context_for, monkeypatch):
    monkeypatch.setenv("BASTION_TEST_FLAGS_KEY", "flags-key-3")
    context = context_for(
        "disable_feature_flags",
        {
            "url": receiver.url,
            "credential": "env:BASTION_TEST_FLAGS_KEY",
            "credential_header": "X-Api-Key",
        },
    )

    get_action("disable_feature_flags").run(context)

    assert receiver.requests[0].headers["X-Api-Key"] == "flags-key-3"


def test_service_call_missing_credential_is_permanent(receiver, context_for):
    context = context_for(
        "disable_feature_flags",
        {"url": receiver.url, "credential": "env:BASTION_TEST_UNSET_SECRET"},
    )

    with pytest.raises(PermanentError, match="BASTION_TEST_UNSET_SECRET"):
        get_action("disable_feature_flags").run(context)

    assert receiver.paths() == []


def test_service_call_post_is_not_retried(context_for):
    receiver = HttpReceiver(statuses=[503, 200])
    context = context_for("garbage_collection_force", {"url": receiver.url})

    try:
        with pytest.raises(RetryableError, match="HTTP 503"):
            get_action("garbage_collection_force").run(context)
        assert len(receiver.requests) == 1
    finally:
        receiver.stop()


def test_service_call_put_is_retried(context_for):
    receiver = HttpReceiver(statuses=[503, 200])
    context = context_for(
        "garbage_collection_force", {"url": receiver.url, "method": "put"}
    )

    try:
        output = get_action("garbage_collection_force").run(context)
        assert output["status"] == 200
        assert [request.method for request in receiver.requests] == ["PUT", "PUT"]
    finally:
        receiver.stop()


def test_service_call_client_error_is_permanent(context_for):
    receiver = HttpReceiver(statuses=[404])
    context = context_for("forensic_logging", {"url": receiver.url})

    try:
        with pytest.raises(PermanentError, match="HTTP 404"):
            get_action("forensic_logging").run(context)
    finally:
        receiver.stop()


def test_service_call_expected_status(context_for):
    receiver = HttpReceiver(statuses=[409, 200])
    context = context_for(
        "automated_cert_renewal", {"url": receiver.url, "expect_status": [202, 409]}
    )
    action = get_action("automated_cert_renewal")

    try:
        first = action.run(context)
        with pytest.raises(PermanentError, match="expected one of"):
            action.run(context)
        assert first["status"] == 409
    finally:
        receiver.stop()


def test_service_call_truncates_body(long_body_server, context_for):
    context = context_for("cert_validation", {"url": long_body_server, "method": "GET"})

    output = get_action("cert_validation").run(context)

    assert len(output["body"]) == 2048
    assert output["body_truncated"] is True


def test_service_call_timeout_is_retryable(context_for):
    receiver = HttpReceiver(delay_seconds=1.0)
    context = context_for(
        "forensic_logging", {"url": receiver.url, "timeout_seconds": 0.2}
    )

    try:
        with pytest.raises(RetryableError, match="failed"):
            get_action("forensic_logging").run(context)
    finally:
        receiver.stop()


def test_service_call_dry_run_sends_nothing(receiver, context_for):
    context = context_for(
        "disable_feature_flags",
        {"url": f"{receiver.url}/flags?token=abc", "json": {"flag": "{feature}"}},
        labels={"feature": "beta"},
    )

    output = get_action("disable_feature_flags").dry_run(context)

    assert receiver.paths() == []
    assert output["would_send"] == "POST"
    assert output["url"] == f"{receiver.url}/flags"
    assert output["json"] == {"flag": "beta"}


def test_service_call_target_names_endpoint(context_for, receiver):
    action = get_action("disable_feature_flags")
    params = action.clean({"url": f"{receiver.url}/flags?key=1"})

    assert action.target(params) == f"endpoint {receiver.url}/flags"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "url"),
        ({"url": "flags.internal/disable"}, "url"),
        ({"url": "http://127.0.0.1/x", "method": "FETCH"}, "method"),
        ({"url": "http://127.0.0.1/x", "expect_status": [200, 999]}, "expect_status"),
        ({"url": "http://127.0.0.1/x", "expect_status": ["ok"]}, "expect_status"),
        ({"url": "http://127.0.0.1/x", "headers": {"Authorization": "t"}}, "headers"),
        ({"url": "http://127.0.0.1/x", "json": "flags=off"}, "json"),
        ({"url": "http://127.0.0.1/x", "json": {"flag": "{feature}"}}, "json"),
        ({"url": "http://127.0.0.1/x", "verb": "POST"}, "verb"),
    ],
)
def test_service_call_rejects_invalid_parameter(context_for, values, field):
    with pytest.raises(ParameterError) as raised:
        context_for("disable_feature_flags", values)

    assert raised.value.field == field


# health_check_dependencies


def test_health_check_all_healthy(receiver, context_for):
    urls = [f"{receiver.url}/db/health", f"{receiver.url}/cache/health"]
    context = context_for("health_check_dependencies", {"urls": urls})

    output = get_action("health_check_dependencies").run(context)

    assert output["healthy"] is True
    assert [result["status"] for result in output["results"]] == [200, 200]
    assert all(result["latency_ms"] >= 0 for result in output["results"])
    assert sorted(receiver.paths()) == ["/cache/health", "/db/health"]


def test_health_check_unhealthy_fails_with_summary(receiver, context_for):
    broken = HttpReceiver(statuses=[503])
    refused = f"http://127.0.0.1:{free_port()}/health"
    urls = [f"{receiver.url}/ok", f"{broken.url}/health", refused]
    context = context_for("health_check_dependencies", {"urls": urls})

    try:
        with pytest.raises(PermanentError) as raised:
            get_action("health_check_dependencies").run(context)
    finally:
        broken.stop()

    message = str(raised.value)
    assert message.startswith("2 of 3 dependencies are unhealthy")
    assert f"{broken.url}/health HTTP 503" in message
    assert refused in message
    assert f"{receiver.url}/ok" not in message


def test_health_check_can_report_without_failing(context_for):
    slow = HttpReceiver(delay_seconds=1.0)
    context = context_for(
        "health_check_dependencies",
        {"urls": [slow.url], "timeout_seconds": 0.2, "fail_when_unhealthy": False},
    )

    try:
        output = get_action("health_check_dependencies").run(context)
    finally:
        slow.stop()

    assert output["healthy"] is False
    assert output["results"][0]["status"] is None
    assert "timed out" in output["results"][0]["error"]


def test_health_check_checks_concurrently(context_for):
    slow = HttpReceiver(delay_seconds=0.5)
    urls = [f"{slow.url}/{number}" for number in range(4)]
    context = context_for("health_check_dependencies", {"urls": urls})

    started = time.monotonic()
    try:
        output = get_action("health_check_dependencies").run(context)
    finally:
        slow.stop()

    assert time.monotonic() - started < 1.5
    assert output["healthy"] is True


def test_health_check_dry_run_sends_nothing(receiver, context_for):
    context = context_for("health_check_dependencies", {"urls": [receiver.url]})

    output = get_action("health_check_dependencies").dry_run(context)

    assert output == {"would_get": [receiver.url]}
    assert receiver.paths() == []


@pytest.mark.parametrize(
    "urls", [[], ["http://127.0.0.1/ok", "db:5432"], [{"url": "http://x"}]]
)
def test_health_check_rejects_invalid_urls(context_for, urls):
    with pytest.raises(ParameterError) as raised:
        context_for("health_check_dependencies", {"urls": urls})

    assert raised.value.field == "urls"


def test_dry_run_output_is_json(receiver, context_for):
    context = context_for("disable_feature_flags", {"url": receiver.url})

    output = get_action("disable_feature_flags").dry_run(context)

    assert json.loads(json.dumps(output)) == output
