"""Table-driven tests of the series state machine (no database, no clock)."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from watchers.services.judging import Rule, SeriesMemory, breaches, fingerprint, judge
from watchers.services.prometheus import Sample, parse_result, parse_value

START = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = 15
LABELS = {"instance": "a"}


def run(rule: Rule, values: list[float | None], labels=LABELS) -> list[str]:
    """Feed one value per evaluation and describe each outcome.

    ``None`` means the series is absent from the result. Each outcome is the
    series status ("normal" when forgotten), with "+open" or "+resolve" when
    the evaluation opened or resolved an incident.
    """
    memories: list[SeriesMemory] = []
    outcomes = []
    for step, value in enumerate(values):
        now = START + timedelta(seconds=step * INTERVAL)
        samples = [] if value is None else [Sample(labels=labels, value=value)]
        verdict = judge(rule, memories, samples, now)
        memories = verdict.keep
        status = verdict.keep[0].status.value if verdict.keep else "normal"
        if verdict.open:
            status += "+open"
        if verdict.resolve:
            status += "+resolve"
        outcomes.append(status)
    return outcomes


def rule(**overrides) -> Rule:
    values = {
        "comparison": ">",
        "threshold": 0.8,
        "window_seconds": 30,
        "resolve_delay_seconds": 30,
    }
    values.update(overrides)
    return Rule(**values)


CASES = [
    (
        "fires after breaching for the whole window",
        rule(),
        [0.9, 0.9, 0.9, 0.9],
        ["pending", "pending", "firing+open", "firing"],
    ),
    (
        "window clock resets when a pending series clears",
        rule(),
        [0.9, 0.9, 0.5, 0.9, 0.9, 0.9],
        ["pending", "pending", "normal", "pending", "pending", "firing+open"],
    ),
    (
        "window of zero fires on the first breach",
        rule(window_seconds=0),
        [0.9],
        ["firing+open"],
    ),
    (
        "resolves only after staying clear for the resolve delay",
        rule(window_seconds=0),
        [0.9, 0.5, 0.5, 0.5],
        ["firing+open", "resolving", "resolving", "normal+resolve"],
    ),
    (
        "flapping around the threshold keeps one incident open",
        rule(window_seconds=0),
        [0.9, 0.79, 0.81, 0.79, 0.81, 0.79, 0.81],
        [
            "firing+open",
            "resolving",
            "firing",
            "resolving",
            "firing",
            "resolving",
            "firing",
        ],
    ),
    (
        "resolve delay of zero resolves at the first clear evaluation",
        rule(window_seconds=0, resolve_delay_seconds=0),
        [0.9, 0.5],
        ["firing+open", "normal+resolve"],
    ),
    (
        "clear threshold holds a value between the two thresholds as firing",
        rule(window_seconds=0, clear_threshold=0.6),
        [0.9, 0.7, 0.7, 0.7, 0.5, 0.5, 0.5],
        [
            "firing+open",
            "firing",
            "firing",
            "firing",
            "resolving",
            "resolving",
            "normal+resolve",
        ],
    ),
    (
        "climbing back above the clear threshold restarts the resolve delay",
        rule(window_seconds=0, clear_threshold=0.6),
        [0.9, 0.5, 0.7, 0.5, 0.5, 0.5],
        [
            "firing+open",
            "resolving",
            "firing",
            "resolving",
            "resolving",
            "normal+resolve",
        ],
    ),
    (
        "a series that disappears counts as clear",
        rule(window_seconds=0),
        [0.9, None, None, None],
        ["firing+open", "resolving", "resolving", "normal+resolve"],
    ),
    (
        "a pending series that disappears goes back to normal",
        rule(),
        [0.9, None, 0.9],
        ["pending", "normal", "pending"],
    ),
    (
        "NaN never breaches",
        rule(window_seconds=0),
        [math.nan, math.nan],
        ["normal", "normal"],
    ),
    (
        "NaN on a firing series counts as clear",
        rule(window_seconds=0, resolve_delay_seconds=0),
        [0.9, math.nan],
        ["firing+open", "normal+resolve"],
    ),
    (
        "less-than watcher fires below the threshold",
        rule(comparison="<", threshold=7, window_seconds=0),
        [3, 10, 10, 10],
        ["firing+open", "resolving", "resolving", "normal+resolve"],
    ),
    (
        "equal value breaches >= but not >",
        rule(comparison=">=", threshold=1, window_seconds=0),
        [1.0],
        ["firing+open"],
    ),
    (
        "equal value does not breach >",
        rule(comparison=">", threshold=1, window_seconds=0),
        [1.0],
        ["normal"],
    ),
    (
        "equal value breaches <=",
        rule(comparison="<=", threshold=1, window_seconds=0),
        [1.0],
        ["firing+open"],
    ),
]


@pytest.mark.parametrize(
    ("rule_", "values", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_state_machine(rule_, values, expected):
    assert run(rule_, values) == expected


@pytest.mark.parametrize(
    ("text", "comparison", "expected"),
    [
        ("NaN", ">", False),
        ("NaN", "<", False),
        ("+Inf", ">", True),
        ("+Inf", "<", False),
        ("-Inf", "<", True),
        ("-Inf", ">", False),
        ("Inf", ">=", True),
        ("-Inf", "<=", True),
    ],
)
def test_special_values_from_strings(text, comparison, expected):
    value = parse_value(text)
    assert breaches(rule(comparison=comparison, threshold=0), value) is expected


def test_scalar_result_is_one_series_without_labels():
    samples = parse_result([1700000000.0, "2.5"])
    assert samples == [Sample(labels={}, value=2.5)]


def test_vector_result_keeps_labels():
    samples = parse_result(
        [{"metric": {"__name__": "up", "job": "x"}, "value": [1700000000.0, "1"]}]
    )
    assert samples == [Sample(labels={"__name__": "up", "job": "x"}, value=1.0)]


def test_empty_result_is_no_series():
    assert parse_result([]) == []


def test_fingerprint_ignores_metric_name_and_label_order():
    first = fingerprint({"__name__": "a", "x": "1", "y": "2"})
    second = fingerprint({"y": "2", "x": "1"})
    assert first == second


def test_fingerprint_differs_by_label_value():
    assert fingerprint({"x": "1"}) != fingerprint({"x": "2"})


def test_many_series_are_judged_independently():
    breaching = [Sample(labels={"pod": f"p{i}"}, value=0.9) for i in range(50)]
    quiet = [Sample(labels={"pod": f"q{i}"}, value=0.1) for i in range(50)]
    verdict = judge(rule(window_seconds=0), [], breaching + quiet, START)
    assert len(verdict.open) == 50
    assert {m.labels["pod"] for m in verdict.open} == {f"p{i}" for i in range(50)}


def test_one_series_resolving_leaves_the_others_firing():
    first = judge(
        rule(window_seconds=0, resolve_delay_seconds=0),
        [],
        [Sample({"pod": "a"}, 0.9), Sample({"pod": "b"}, 0.9)],
        START,
    )
    second = judge(
        rule(window_seconds=0, resolve_delay_seconds=0),
        first.keep,
        [Sample({"pod": "a"}, 0.9), Sample({"pod": "b"}, 0.1)],
        START + timedelta(seconds=INTERVAL),
    )
    assert [m.labels["pod"] for m in second.keep] == ["a"]
    assert second.resolve == [fingerprint({"pod": "b"})]
    assert second.open == []
