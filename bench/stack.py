"""The monitored side of the benchmark: two gauge exporters and one Prometheus.

``bench_value{id="0".."N-1"}`` gives every watcher a series of its own, and
``bench_fanout{series="0".."999"}`` lets one query return 1 to 1,000 series.
Prometheus evaluates the same expressions as one group of recording rules.
One server serves every size: rules are swapped with a reload, which keeps
the scraped history, so each size's ``[1m]`` windows are full from the first
cycle and no size pays for a start-up and a WAL replay.
"""

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devstack.gauges import GaugeExporter
from devstack.prometheus import (
    PrometheusServer,
    ScrapeTarget,
    start_prometheus,
    write_config,
)

# A 5 s scrape keeps the in-process exporters (rendering up to 6,000 series
# while holding the GIL) out of the cycle times, and still gives each 1 min
# window 12 samples.
SCRAPE_INTERVAL = "5s"
FANOUT_SERIES = 1000
NORMAL_BASE = 0.2
THRESHOLD = 0.9
BREACH_VALUE = 50.0
DURATION_METRIC = "prometheus_rule_group_last_duration_seconds"
EVALUATED_METRIC = "prometheus_rule_group_last_evaluation_timestamp_seconds"


def value_expression(index: int) -> str:
    return f'avg_over_time(bench_value{{id="{index}"}}[1m])'


def fanout_expression(series: int) -> str:
    """Select ``series`` (1, 10, 100 or 1,000) of the bench_fanout series."""
    if series == 1:
        return 'bench_fanout{series="0"}'
    digits = len(str(series)) - 1
    return f'bench_fanout{{series=~"[0-9]{{1,{digits}}}"}}'


def normal_value(index: int) -> float:
    """Return a value below THRESHOLD that differs between series, as real ones do."""
    return NORMAL_BASE + (index % 50) / 100


@dataclass
class GroupTiming:
    """Prometheus's own durations for one rule group, in seconds."""

    rules: int
    durations: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.durations)


class BenchStack:
    """Exporters and Prometheus for ``value_series`` watchers' expressions."""

    def __init__(self, workdir: Path, value_series: int) -> None:
        self.workdir = workdir
        self.value_series = value_series
        self.values = GaugeExporter("bench_value", ("id",))
        self.fanout = GaugeExporter("bench_fanout", ("series",))
        self.targets = [
            ScrapeTarget("bench_value", self.values.address),
            ScrapeTarget("bench_fanout", self.fanout.address),
        ]
        self.prometheus: PrometheusServer | None = None
        self.exporters_started = False

    def start(self) -> PrometheusServer:
        for index in range(self.value_series):
            self.values.set(normal_value(index), id=str(index))
        for series in range(FANOUT_SERIES):
            self.fanout.set(0.5, series=str(series))
        self.values.start()
        self.fanout.start()
        self.exporters_started = True
        self.prometheus = start_prometheus(
            self.workdir, self.targets, scrape_interval=SCRAPE_INTERVAL
        )
        self.wait_for(
            "count(bench_value) + count(bench_fanout)",
            self.value_series + FANOUT_SERIES,
        )
        return self.prometheus

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
        # HTTPServer.shutdown() waits for serve_forever(), so it would hang
        # on an exporter that never started.
        if self.exporters_started:
            self.values.stop()
            self.fanout.stop()

    def set_breaching(self, indexes: list[int], breaching: bool) -> None:
        for index in indexes:
            value = BREACH_VALUE if breaching else normal_value(index)
            self.values.set(value, id=str(index))

    def wait_for(self, expression: str, expected: float, timeout: float = 60) -> None:
        """Wait until ``expression`` returns ``expected``, or raise TimeoutError."""
        assert self.prometheus is not None
        deadline = time.monotonic() + timeout
        found = None
        while time.monotonic() < deadline:
            result = self.prometheus.query(expression)
            found = float(result[0]["value"][1]) if result else None
            if found == expected:
                return
            time.sleep(0.5)
        raise TimeoutError(
            f"{expression} returned {found} instead of {expected} for {timeout}s; "
            f"see the Prometheus log under {self.workdir / 'logs'}"
        )

    def time_rule_group(
        self, rules: int, evaluations: int, interval_seconds: float
    ) -> GroupTiming:
        """Load a group of ``rules`` recording rules and collect its durations.

        The first evaluation after a reload is dropped as warm-up. The group is
        unloaded afterwards, so Bastion's cycles do not share the CPU with it.
        """
        name = f"bench_{rules}"
        self._load_rules([_recording_group(name, rules, interval_seconds)])
        try:
            durations = self._sample_durations(name, evaluations + 1, interval_seconds)
        finally:
            self._load_rules([])
        return GroupTiming(rules=rules, durations=durations[1:])

    def _load_rules(self, groups: list[dict]) -> None:
        assert self.prometheus is not None
        write_config(
            self.workdir,
            self.targets,
            groups,
            scrape_interval=SCRAPE_INTERVAL,
            evaluation_interval=SCRAPE_INTERVAL,
        )
        self.prometheus.reload()

    def _sample_durations(
        self, name: str, count: int, interval_seconds: float
    ) -> list[float]:
        durations: list[float] = []
        last_evaluated = None
        deadline = time.monotonic() + (count + 3) * interval_seconds * 3 + 30
        while len(durations) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"rule group {name} was evaluated {len(durations)} times, "
                    f"not {count}; see the Prometheus log under {self.workdir}"
                )
            evaluated, duration = self._group_metrics(name)
            if evaluated and evaluated != last_evaluated:
                last_evaluated = evaluated
                durations.append(duration)
            time.sleep(interval_seconds / 4)
        return durations

    def _group_metrics(self, name: str) -> tuple[float, float]:
        """Return the group's last evaluation time and duration (0 when absent)."""
        assert self.prometheus is not None
        text = httpx.get(f"{self.prometheus.url}/metrics", timeout=10).text
        found = {EVALUATED_METRIC: 0.0, DURATION_METRIC: 0.0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                group = sample.labels.get("rule_group", "")
                if sample.name in found and group.endswith(f";{name}"):
                    found[sample.name] = sample.value
        return found[EVALUATED_METRIC], found[DURATION_METRIC]


def _recording_group(name: str, rules: int, interval_seconds: float) -> dict:
    return {
        "name": name,
        "interval": f"{interval_seconds:g}s",
        "rules": [
            {"record": "bench:value:avg_1m", "expr": value_expression(index)}
            for index in range(rules)
        ],
    }
