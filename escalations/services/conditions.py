"""Escalation conditions: parsed from the team's wording, stored as JSON, judged.

The rules file states conditions in words ("3 consecutive auto-healing
attempts failed", "SLO breach >15min sustained"). ``parse_condition`` turns
each into a typed condition and rejects any text it cannot read, so a rule
never silently means nothing. Parts join with OR and AND; AND binds tighter.
"""

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mitigations.choices import AttemptStatus
from mitigations.models import MitigationAttempt
from watchers.models import Incident
from watchers.services.durations import MAX_DURATION_DAYS, MAX_DURATION_SECONDS

logger = logging.getLogger(__name__)

COMPARISONS = {
    ">": lambda value, limit: value > limit,
    ">=": lambda value, limit: value >= limit,
    "<": lambda value, limit: value < limit,
    "<=": lambda value, limit: value <= limit,
}
# "multiple" failed mitigations: two or more.
MULTIPLE = 2
# A larger count of attempts is taken as a typing mistake.
MAX_COUNT = 1000
CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
UNIT_SECONDS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hr": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
KNOWN_FORMS = (
    "'3 consecutive auto-healing attempts failed', 'multiple_failed_mitigations', "
    "'2 failed mitigations', 'SLO breach >15min sustained', 'firing > 10m', "
    "'METRIC > NUMBER' (such as 'anomaly_score > 0.9'), "
    "'estimated_loss > €100/hour'"
)


class ConditionError(ValueError):
    """Condition text that does not match any known form."""


@dataclass(frozen=True)
class FailedAttempts:
    """At least ``count`` failed mitigation attempts, in a row or in total."""

    count: int
    consecutive: bool


@dataclass(frozen=True)
class FiringFor:
    """The incident has been open for longer than ``seconds``."""

    seconds: int


@dataclass(frozen=True)
class MetricThreshold:
    """The incident's value compared with a threshold.

    It applies to incidents of watchers whose query mentions ``metric``, and
    compares the incident's last value, which is that metric's value.
    """

    metric: str
    comparison: str
    threshold: float


@dataclass(frozen=True)
class LossAbove:
    """The watcher's loss estimate, per hour, compared with an amount."""

    comparison: str
    amount_per_hour: float
    currency: str


@dataclass(frozen=True)
class AnyOf:
    parts: tuple["Condition", ...]


@dataclass(frozen=True)
class AllOf:
    parts: tuple["Condition", ...]


Condition = FailedAttempts | FiringFor | MetricThreshold | LossAbove | AnyOf | AllOf

_NUMBER = r"\d+(?:\.\d+)?"
_CONSECUTIVE = re.compile(
    r"(?P<count>\d+) consecutive (?:[a-z-]+ ){0,2}(?:attempts?|mitigations?)"
    r"(?: have)? failed|(?P<count2>\d+) consecutive failed (?:[a-z-]+ ){0,2}"
    r"(?:attempts?|mitigations?)"
)
_MULTIPLE_FAILED = re.compile(r"multiple[ _]failed[ _](?:mitigations?|attempts?)")
_FAILED_TOTAL = re.compile(
    r"(?:at least )?(?P<count>\d+) failed[ _](?:[a-z-]+[ _]){0,2}"
    r"(?:mitigations?|attempts?)"
)
_FIRING_FOR = re.compile(
    r"(?:slo[ _]breach|breach|firing|incident firing|open)\s*"
    r"(?:>|longer than|for more than|for over|over)\s*"
    r"(?P<number>\d+)\s*(?P<unit>[a-z]+)(?:\s+sustained)?"
)
_LOSS = re.compile(
    r"estimated[ _]loss\s*(?P<op>>=|>)\s*"
    rf"(?:(?P<symbol>[€$£])\s*(?P<amount>{_NUMBER})|(?P<amount2>{_NUMBER})\s*"
    r"(?P<code>[a-z]{3}|[€$£]))\s*(?:/|per)\s*(?P<unit>[a-z]+)"
)
_METRIC = re.compile(
    rf"(?P<metric>[a-z_:][a-z0-9_:]*)\s*(?P<op>>=|<=|>|<)\s*(?P<value>-?{_NUMBER})",
    re.IGNORECASE,
)


def parse_condition(text: str) -> Condition:
    """Parse condition text; raise ConditionError naming the part not understood."""
    if not isinstance(text, str) or not text.strip():
        raise ConditionError(
            "the condition is empty: write one, such as " + KNOWN_FORMS
        )
    alternatives = re.split(r"\s+OR\s+|\s*\|\|\s*", text.strip(), flags=re.IGNORECASE)
    parsed = [_parse_all(alternative) for alternative in alternatives]
    return parsed[0] if len(parsed) == 1 else AnyOf(tuple(parsed))


def _parse_all(text: str) -> Condition:
    parts = re.split(r"\s+AND\s+|\s*&&\s*", text, flags=re.IGNORECASE)
    parsed = [_parse_part(part) for part in parts]
    return parsed[0] if len(parsed) == 1 else AllOf(tuple(parsed))


def _parse_part(text: str) -> Condition:
    # Metric names are case-sensitive in PromQL, so only the matching is not.
    original = " ".join(text.split())
    part = original.lower()
    if not part:
        raise ConditionError("an OR or AND has nothing on one side")

    for parse in (_parse_attempts, _parse_firing, _parse_loss):
        condition = parse(part)
        if condition is not None:
            return condition
    match = _METRIC.fullmatch(original)
    if match is not None:
        value = _finite(float(match["value"]), original)
        return MetricThreshold(match["metric"], match["op"], value)
    raise ConditionError(
        f"{original!r} is not a known condition: write one of {KNOWN_FORMS}"
    )


def _parse_attempts(part: str) -> Condition | None:
    match = _CONSECUTIVE.fullmatch(part)
    if match is not None:
        count = int(match["count"] or match["count2"])
        return FailedAttempts(_count(count, part), consecutive=True)
    if _MULTIPLE_FAILED.fullmatch(part):
        return FailedAttempts(MULTIPLE, consecutive=False)
    match = _FAILED_TOTAL.fullmatch(part)
    if match is not None:
        return FailedAttempts(_count(int(match["count"]), part), consecutive=False)
    return None


def _parse_firing(part: str) -> Condition | None:
    match = _FIRING_FOR.fullmatch(part)
    if match is None:
        return None
    seconds = int(match["number"]) * _unit_seconds(match["unit"], part)
    _positive(seconds, part)
    if seconds > MAX_DURATION_SECONDS:
        raise ConditionError(
            f"{part!r}: {match['number']}{match['unit']} is longer than "
            f"the maximum of {MAX_DURATION_DAYS} days: write at most "
            f"{MAX_DURATION_DAYS}d"
        )
    return FiringFor(seconds)


def _parse_loss(part: str) -> Condition | None:
    match = _LOSS.fullmatch(part)
    if match is None:
        return None
    amount = _finite(float(match["amount"] or match["amount2"]), part)
    symbol = match["symbol"] or match["code"]
    currency = CURRENCY_SYMBOLS.get(symbol, symbol.upper())
    per_hour = amount * 3600 / _unit_seconds(match["unit"], part)
    return LossAbove(match["op"], per_hour, currency)


def _finite(number: float, part: str) -> float:
    # A number past about 1.8e308 reads as infinity, so a comparison with it
    # would never hold, or always.
    if not math.isfinite(number):
        raise ConditionError(
            f"{part!r}: the number is too large to compare with: write one below 1e308"
        )
    return number


def _unit_seconds(unit: str, part: str) -> int:
    singular = unit[:-1] if unit.endswith("s") and unit[:-1] in UNIT_SECONDS else unit
    if singular not in UNIT_SECONDS:
        raise ConditionError(
            f"{part!r}: {unit!r} is not a time unit: write s, min, h or d "
            "(or second, minute, hour, day)"
        )
    return UNIT_SECONDS[singular]


def _positive(number: int, part: str) -> int:
    if number <= 0:
        raise ConditionError(f"{part!r}: the number must be above 0")
    return number


def _count(count: int, part: str) -> int:
    if count > MAX_COUNT:
        raise ConditionError(
            f"{part!r}: {count} attempts is more than the "
            f"maximum of {MAX_COUNT}: write a smaller count"
        )
    return _positive(count, part)


def to_json(condition: Condition) -> dict[str, Any]:
    """Return the JSON stored in EscalationRule.condition."""
    if isinstance(condition, AnyOf | AllOf):
        key = "any" if isinstance(condition, AnyOf) else "all"
        return {key: [to_json(part) for part in condition.parts]}
    return {"kind": _KIND_NAMES[type(condition)], **dataclasses.asdict(condition)}


def from_json(data: dict[str, Any]) -> Condition:
    """Rebuild a condition from its stored JSON; raise ConditionError if invalid."""
    try:
        if "any" in data:
            return AnyOf(tuple(from_json(part) for part in data["any"]))
        if "all" in data:
            return AllOf(tuple(from_json(part) for part in data["all"]))
        fields = dict(data)
        return _KINDS[fields.pop("kind")](**fields)
    except (KeyError, TypeError, AttributeError) as error:
        raise ConditionError(f"stored condition {data!r} is invalid: {error}") from None


_KINDS: dict[str, Any] = {
    "failed_attempts": FailedAttempts,
    "firing_for": FiringFor,
    "metric_threshold": MetricThreshold,
    "loss_above": LossAbove,
}
_KIND_NAMES = {kind: name for name, kind in _KINDS.items()}


class IncidentFacts:
    """What conditions look at for one incident at one moment, read on demand."""

    def __init__(self, incident: Incident, now: datetime, loss: Any = None) -> None:
        self.incident = incident
        self.now = now
        # A callable returning the loss per hour and its currency, or None.
        self._loss_reader = loss
        self._statuses: list[str] | None = None
        self._loss: tuple[float, str] | bool | None = False

    def attempt_statuses(self) -> list[str]:
        """Statuses of the incident's attempts, newest first."""
        if self._statuses is None:
            self._statuses = list(
                MitigationAttempt.objects.filter(incident_id=self.incident.pk)
                .order_by("-number")
                .values_list("status", flat=True)
            )
        return self._statuses

    def consecutive_failures(self) -> int:
        # Counted from the newest attempt back to the last one that mitigated;
        # running, verifying and stopped attempts neither count nor break it.
        count = 0
        for status in self.attempt_statuses():
            if status == AttemptStatus.MITIGATED:
                break
            if status == AttemptStatus.FAILED:
                count += 1
        return count

    def failed_attempts(self) -> int:
        return self.attempt_statuses().count(AttemptStatus.FAILED)

    def loss_per_hour(self) -> tuple[float, str] | None:
        if self._loss is False:
            self._loss = self._loss_reader(self.incident) if self._loss_reader else None
        return self._loss  # type: ignore[return-value]


def holds(condition: Condition, facts: IncidentFacts) -> str | None:
    """Return why the condition holds for the incident, or None when it does not."""
    if isinstance(condition, AnyOf):
        for part in condition.parts:
            reason = holds(part, facts)
            if reason is not None:
                return reason
        return None
    if isinstance(condition, AllOf):
        reasons = [holds(part, facts) for part in condition.parts]
        if any(reason is None for reason in reasons):
            return None
        return " and ".join(str(reason) for reason in reasons)
    return _JUDGES[type(condition)](condition, facts)


def _judge_attempts(condition: FailedAttempts, facts: IncidentFacts) -> str | None:
    if condition.consecutive:
        count = facts.consecutive_failures()
        if count >= condition.count:
            return f"{count} consecutive mitigation attempts failed"
        return None
    count = facts.failed_attempts()
    if count >= condition.count:
        return f"{count} mitigation attempts failed"
    return None


def _judge_firing(condition: FiringFor, facts: IncidentFacts) -> str | None:
    seconds = (facts.now - facts.incident.opened_at).total_seconds()
    if seconds > condition.seconds:
        return (
            f"firing for {int(seconds // 60)} min (limit {condition.seconds // 60} min)"
        )
    return None


def mentions_metric(query: str, metric: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(metric)}(?![\w:])", query) is not None


def _judge_metric(condition: MetricThreshold, facts: IncidentFacts) -> str | None:
    # NOTE: only incidents of watchers that query the metric are judged, with
    # their last value; the metric is not queried for other incidents.
    incident = facts.incident
    if incident.watcher is None or incident.last_value is None:
        return None
    if not mentions_metric(incident.watcher.query, condition.metric):
        return None
    value = incident.last_value
    compare = COMPARISONS[condition.comparison]
    if math.isnan(value) or not compare(value, condition.threshold):
        return None
    limit = f"{condition.comparison} {condition.threshold:g}"
    return f"{condition.metric} is {value:g} ({limit})"


def _judge_loss(condition: LossAbove, facts: IncidentFacts) -> str | None:
    estimate = facts.loss_per_hour()
    if estimate is None:
        return None
    amount, currency = estimate
    if currency != condition.currency:
        logger.warning(
            "incident %s: loss estimate in %s, rule compares %s; conversion is "
            "not supported, so the condition does not hold",
            facts.incident.pk,
            currency,
            condition.currency,
        )
        return None
    if not COMPARISONS[condition.comparison](amount, condition.amount_per_hour):
        return None
    return (
        f"estimated loss {amount:.2f} {currency}/hour "
        f"({condition.comparison} {condition.amount_per_hour:g})"
    )


_JUDGES: dict[type, Any] = {
    FailedAttempts: _judge_attempts,
    FiringFor: _judge_firing,
    MetricThreshold: _judge_metric,
    LossAbove: _judge_loss,
}
