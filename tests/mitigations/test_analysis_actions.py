"""Client analysis against a real Prometheus scraping local exporters."""

import math
import time

import pytest

from devstack.gauges import GaugeExporter
from devstack.processes import free_port
from devstack.prometheus import ScrapeTarget, start_prometheus
from mitigations.actions.base import ParameterError, RetryableError
from mitigations.registry import get_action


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    """Exporters of per-client series and a Prometheus scraping them every second."""
    exporters = {
        name: GaugeExporter(name, label_names=("source_ip",)).start()
        for name in ("http_requests_total", "auth_failures_total", "client_load")
    }
    server = start_prometheus(
        tmp_path_factory.mktemp("prometheus"),
        [ScrapeTarget(name, e.address) for name, e in exporters.items()],
        scrape_interval="1s",
    )
    yield server, exporters
    server.stop()
    for exporter in exporters.values():
        exporter.stop()


@pytest.fixture
def prometheus_url(metrics, settings):
    settings.PROMETHEUS_URL = metrics[0].url
    return metrics[0].url


def run_until(action_name, context, check, timeout_seconds=20.0):
    """Run the action until its output passes ``check``, as scrapes arrive."""
    deadline = time.monotonic() + timeout_seconds
    output: dict = {}
    while time.monotonic() < deadline:
        output = get_action(action_name).run(context)
        if check(output):
            return output
        time.sleep(0.5)
    raise AssertionError(f"{action_name} never passed the check; last output {output}")


def grow(server, exporter, counts: dict[str, float]) -> None:
    """Raise each client's counter until Prometheus sees every rate above zero.

    Prometheus may take a few seconds to scrape a new target for the first
    time, so the counters climb until it has seen two rising samples.
    """
    expression = f"rate({exporter.name}[5m]) > 0"
    deadline = time.monotonic() + 30
    step = 0
    while len(server.query(expression)) < len(counts):
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} never returned {len(counts)} series")
        step += 1
        for ip, per_step in counts.items():
            exporter.set(per_step * step, source_ip=ip)
        time.sleep(0.5)


def test_analysis_ranks_heaviest_clients(metrics, prometheus_url, context_for):
    grow(
        metrics[0],
        metrics[1]["http_requests_total"],
        {"203.0.113.1": 500, "203.0.113.2": 5000, "203.0.113.3": 50},
    )
    context = context_for("analyze_client_patterns", {"k": 2})

    output = get_action("analyze_client_patterns").run(context)

    assert [client["ip"] for client in output["clients"]] == [
        "203.0.113.2",
        "203.0.113.1",
    ]
    assert output["clients"][0]["value"] > output["clients"][1]["value"]
    assert output["query"] == (
        "topk(2, sum by (source_ip) (rate(http_requests_total[5m])))"
    )


def test_traffic_analysis_reads_auth_failures(metrics, prometheus_url, context_for):
    grow(metrics[0], metrics[1]["auth_failures_total"], {"198.51.100.7": 30})
    context = context_for("traffic_analysis", {})

    output = run_until("traffic_analysis", context, lambda out: out["clients"])

    assert [client["ip"] for client in output["clients"]] == ["198.51.100.7"]
    assert "auth_failures_total" in output["query"]


def test_analysis_skips_nan_and_writes_infinity(metrics, prometheus_url, context_for):
    load = metrics[1]["client_load"]
    load.set(math.nan, source_ip="192.0.2.1")
    load.set(math.inf, source_ip="192.0.2.2")
    load.set(3.5, source_ip="192.0.2.3")
    context = context_for(
        "analyze_client_patterns",
        {"query": 'client_load{{source_ip=~"192.0.2.[1-3]"}}'},
    )

    output = run_until(
        "analyze_client_patterns", context, lambda out: out["skipped_series"] == 1
    )

    assert output["clients"] == [
        {"ip": "192.0.2.2", "value": "+Inf"},
        {"ip": "192.0.2.3", "value": 3.5},
    ]


def test_analysis_skips_series_without_label(metrics, prometheus_url, context_for):
    metrics[1]["client_load"].set(1.0, source_ip="192.0.2.9")
    context = context_for(
        "analyze_client_patterns",
        {"query": 'sum(client_load{{source_ip="192.0.2.9"}})', "label": "source_ip"},
    )

    output = run_until(
        "analyze_client_patterns", context, lambda out: out["skipped_series"] == 1
    )

    assert output["clients"] == []


def test_analysis_dry_run_queries_too(metrics, prometheus_url, context_for):
    metrics[1]["client_load"].set(2.0, source_ip="192.0.2.10")
    context = context_for(
        "analyze_client_patterns",
        {"query": 'client_load{{source_ip="192.0.2.10"}}'},
    )

    output = get_action("analyze_client_patterns").dry_run(context)

    assert output["query"] == 'topk(10, client_load{source_ip="192.0.2.10"})'
    assert "clients" in output


def test_analysis_unreachable_prometheus_is_retryable(settings, context_for):
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{free_port()}"
    context = context_for("analyze_client_patterns", {})

    with pytest.raises(RetryableError, match="cannot reach Prometheus"):
        get_action("analyze_client_patterns").run(context)


def test_analysis_step_saves_doubled_braces():
    action = get_action("analyze_client_patterns")

    params = action.clean({"query": 'client_load{{service="{service}"}}'})

    assert params["query"] == 'client_load{{service="{service}"}}'


def test_analysis_step_saves_promql_matchers_as_written():
    action = get_action("analyze_client_patterns")

    params = action.clean({"query": 'client_load{service="api"}'})

    assert params["query"] == 'client_load{service="api"}'


def test_analysis_placeholder_fills_in_the_incident_label():
    action = get_action("analyze_client_patterns")

    params = action.clean(
        {"query": 'client_load{service="{service}"}'}, labels={"service": "api"}
    )

    assert params["query"] == 'client_load{service="api"}'


def test_analysis_placeholder_for_a_missing_label_names_it():
    action = get_action("analyze_client_patterns")

    with pytest.raises(ParameterError, match="names the label 'service'") as raised:
        action.clean({"query": 'client_load{service="{service}"}'}, labels={})

    assert raised.value.field == "query"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"query": "sum by (source_ip) (rate(x[5m]"}, "query"),
        ({"query": "rate(x[5m])[5m:]"}, "query"),
        ({"query": 'x{service="{service}"}'}, "query"),
        ({"k": 0}, "k"),
        ({"limit": 5}, "limit"),
    ],
)
def test_analysis_rejects_invalid_parameter(context_for, values, field):
    with pytest.raises(ParameterError) as raised:
        context_for("analyze_client_patterns", values)

    assert raised.value.field == field


def test_analysis_output_feeds_blocking_step(
    metrics, prometheus_url, context_for, target_redis_db, db
):
    metrics[1]["client_load"].set(9.0, source_ip="192.0.2.20")
    analysis = run_until(
        "analyze_client_patterns",
        context_for(
            "analyze_client_patterns",
            {"query": 'client_load{{source_ip="192.0.2.20"}}'},
        ),
        lambda out: out["clients"],
    )
    context = context_for(
        "selective_blocking",
        {"key_prefix": f"{target_redis_db.prefix}blocked:"},
        previous={"analyze_client_patterns": analysis},
    )

    output = get_action("selective_blocking").run(context)

    assert output["blocked"] == ["192.0.2.20"]
    assert target_redis_db.client.ttl(f"{target_redis_db.prefix}blocked:192.0.2.20") > 0
