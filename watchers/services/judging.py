"""The per-series state machine, with Prometheus alerting semantics.

Pure functions over plain values, so that every rule can be tested without a
database or a clock: a series that breaches becomes pending; it fires once it
has breached at every evaluation for the window; a pending series that stops
breaching goes back to normal; a firing series resolves after it has stayed
clear for the resolve delay. An evaluation's time is its slot, so the clock
counts evaluations exactly even when a task runs a little late.
"""

import hashlib
import json
import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from watchers.services.prometheus import Sample

COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


class Status(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVING = "resolving"


@dataclass(frozen=True)
class Rule:
    comparison: str
    threshold: float
    window_seconds: int
    resolve_delay_seconds: int
    clear_threshold: float | None = None


@dataclass(frozen=True)
class SeriesMemory:
    """What the last evaluation left for one series; no memory means normal."""

    fingerprint: str
    labels: dict[str, str]
    status: Status
    pending_since: datetime
    cleared_since: datetime | None = None
    last_value: float | None = None
    incident_open: bool = False


@dataclass
class Verdict:
    """What one evaluation does to a watcher's series."""

    keep: list[SeriesMemory] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)
    open: list[SeriesMemory] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)
    # Values of the remembered series (None when absent) and of new breaching
    # ones. A new series that does not breach is left out.
    observed: dict[str, float | None] = field(default_factory=dict)


def fingerprint(labels: dict[str, str]) -> str:
    """Identify a series by its label set, without the metric name."""
    key = {name: value for name, value in labels.items() if name != "__name__"}
    encoded = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


def breaches(rule: Rule, value: float | None) -> bool:
    """NaN never breaches; +Inf breaches ``>``; -Inf breaches ``<``."""
    if value is None or math.isnan(value):
        return False
    return COMPARATORS[rule.comparison](value, rule.threshold)


def is_clear(rule: Rule, value: float | None) -> bool:
    """Clear means past the clear threshold, or simply not breaching without one."""
    if value is None or math.isnan(value):
        return True
    limit = rule.threshold if rule.clear_threshold is None else rule.clear_threshold
    return not COMPARATORS[rule.comparison](value, limit)


def _elapsed(since: datetime, now: datetime) -> float:
    return (now - since) / timedelta(seconds=1)


def _step(
    rule: Rule, memory: SeriesMemory | None, value: float | None, now: datetime
) -> SeriesMemory | None:
    """Return the series' next memory, or None when it is back to normal."""
    breaching = breaches(rule, value)
    if memory is None or memory.status is Status.PENDING:
        if not breaching:
            return None
        since = now if memory is None else memory.pending_since
        status = (
            Status.FIRING
            if _elapsed(since, now) >= rule.window_seconds
            else Status.PENDING
        )
        return SeriesMemory(
            fingerprint="",
            labels={},
            status=status,
            pending_since=since,
            last_value=value,
        )
    if breaching or not is_clear(rule, value):
        return replace(
            memory, status=Status.FIRING, cleared_since=None, last_value=value
        )
    cleared_since = memory.cleared_since or now
    if _elapsed(cleared_since, now) >= rule.resolve_delay_seconds:
        return None
    return replace(
        memory, status=Status.RESOLVING, cleared_since=cleared_since, last_value=value
    )


def judge(
    rule: Rule,
    memories: Iterable[SeriesMemory],
    samples: Iterable[Sample],
    now: datetime,
) -> Verdict:
    """Apply one evaluation's samples to the remembered series of a watcher.

    A remembered series absent from the result counts as clear, as an alert
    resolves in Prometheus when its series disappears.
    """
    remembered = {memory.fingerprint: memory for memory in memories}
    # With nothing remembered, a sample that does not breach stays normal, so
    # only breaching samples need a fingerprint: none in a steady state.
    present: dict[str, Sample] = {
        fingerprint(s.labels): s
        for s in samples
        if remembered or breaches(rule, s.value)
    }
    verdict = Verdict()

    for key in remembered.keys() | present.keys():
        memory = remembered.get(key)
        sample = present.get(key)
        value = sample.value if sample is not None else None
        verdict.observed[key] = value
        following = _step(rule, memory, value, now)

        if following is None:
            if memory is not None:
                verdict.forget.append(key)
                if memory.incident_open:
                    verdict.resolve.append(key)
            continue

        labels = memory.labels if memory is not None else _series_labels(sample)
        following = replace(following, fingerprint=key, labels=labels)
        opens = following.status is Status.FIRING and not (
            memory and memory.incident_open
        )
        following = replace(following, incident_open=following.incident_open or opens)
        verdict.keep.append(following)
        if opens:
            verdict.open.append(following)
    return verdict


def _series_labels(sample: Sample | None) -> dict[str, str]:
    if sample is None:
        return {}
    return {name: value for name, value in sample.labels.items() if name != "__name__"}


def worse(comparison: str, first: float | None, second: float | None) -> float | None:
    """Return whichever value lies further in the breaching direction."""
    candidates = [v for v in (first, second) if v is not None and not math.isnan(v)]
    if not candidates:
        return first if first is not None else second
    return max(candidates) if comparison in (">", ">=") else min(candidates)
