"""Turn raw catalog entries into watcher definitions, collecting every error."""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mitigations.registry import action_names
from watchers.choices import Comparison, Mode, Severity
from watchers.services.catalog.entries import RawEntry, describe_yaml_value
from watchers.services.catalog.loading import Origin, did_you_mean
from watchers.services.definitions import (
    DefinitionError,
    check_clear_threshold,
    check_max_series,
    check_window_and_interval,
    parse_catalog_window,
    window_for_catalog,
)
from watchers.services.durations import (
    DurationError,
    DurationTooLongError,
    parse_duration,
)
from watchers.services.promql import PromQLError, check_instant_query

REQUIRED_KEYS = ("query", "threshold", "window", "actions", "escalation")
OPTIONAL_KEYS = (
    "comparison",
    "severity",
    "interval",
    "mode",
    "labels",
    "clear_threshold",
    "resolve_delay",
    "max_series",
    "unit",
)
KNOWN_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

IMMEDIATE = "immediate"
NO_ESCALATION = "none"


class FieldError(ValueError):
    """An invalid catalog value. Each problem states what is wrong and the fix."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass
class WatcherDefinition:
    """A validated catalog entry, in the Watcher model's fields and units."""

    name: str
    group: str
    origin: Origin
    query: str
    threshold: float
    window_seconds: int
    interval_seconds: int
    escalation_delay_seconds: int | None
    actions: list[str]
    comparison: str = Comparison.GREATER
    severity: str = Severity.MEDIUM
    mode: str = Mode.ACTIVE
    labels: dict[str, str] = field(default_factory=dict)
    clear_threshold: float | None = None
    resolve_delay_seconds: int | None = None
    max_series: int | None = None
    unit: str = ""
    comparison_given: bool = False
    # Without a mode in the file, an existing watcher keeps the mode an
    # operator gave it, so an import never resumes a watcher paused by hand.
    mode_given: bool = False


# The Watcher fields an import writes. Runtime fields are not among them.
DEFINITION_FIELDS = (
    "group",
    "query",
    "comparison",
    "threshold",
    "clear_threshold",
    "window_seconds",
    "interval_seconds",
    "resolve_delay_seconds",
    "escalation_delay_seconds",
    "severity",
    "mode",
    "labels",
    "max_series",
    "unit",
)


def parse_number(value: object) -> float:
    if isinstance(value, bool):
        raise FieldError(f"{value!r} is a boolean, not a number: write a number")
    if isinstance(value, str):
        raise FieldError(_text_number_problem(value))
    if not isinstance(value, int | float):
        raise FieldError(f"{describe_yaml_value(value)} value is not a number")
    if not math.isfinite(value):
        raise FieldError(f"{value!r} is not a finite number: write a finite number")
    return float(value)


def _text_number_problem(text: str) -> str:
    try:
        number = float(text)
    except ValueError:
        return (
            f"{text!r} is not a number: write a plain number in the query's unit, "
            "without '%' or a unit (for example 80 or 0.8)"
        )
    if not math.isfinite(number) and text.strip().lstrip("+-").isalpha():
        return f"{text!r} is not a finite number: write a finite number"
    if not math.isfinite(number):
        return (
            f"{text!r} is out of range: write a number between -1e308 and 1e308, "
            "or use a larger unit in the query"
        )
    if _EXPONENT.search(text):
        return _exponent_problem(text, number)
    return f"{text!r} is text, not a number: write {number!r} without quotes"


_EXPONENT = re.compile(r"[eE]")


def _exponent_problem(text: str, number: float) -> str:
    # PyYAML reads an exponent as a number only with a dot and a signed
    # exponent (1.0e+10), so an unquoted 1e10 or 1.0e10 arrives here as text.
    mantissa, exponent = _EXPONENT.split(text.strip(), maxsplit=1)
    if "." not in mantissa:
        mantissa += ".0"
    if not exponent.startswith(("+", "-")):
        exponent = "+" + exponent
    choices = f"{mantissa}e{exponent}"
    if number.is_integer() and abs(number) < 1e16:
        choices += f" or {int(number)}"
    return (
        f"the YAML reader took {text!r} as text, not a number, because it reads "
        "exponents only with a dot and a sign: write "
        f"{choices}, without quotes"
    )


def parse_query(value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(
            f"{describe_yaml_value(value)} value is not a PromQL query: "
            "write the query as a string"
        )
    try:
        check_instant_query(value)
    except PromQLError as error:
        raise FieldError(f"{value!r}: {error}") from None
    return value


def parse_window(value: object) -> int | None:
    try:
        return parse_catalog_window(value)
    except DurationError as error:
        raise FieldError(str(error)) from None


def parse_delay(value: object) -> int:
    try:
        return parse_duration(value)
    except DurationError as error:
        raise FieldError(str(error)) from None


def parse_interval(value: object) -> int:
    seconds = parse_delay(value)
    if seconds <= 0:
        raise FieldError(
            f"{value!r} is not longer than 0s: write an interval such as 30s"
        )
    return seconds


def parse_escalation(value: object) -> int | None:
    if value in (IMMEDIATE, NO_ESCALATION):
        return 0 if value == IMMEDIATE else None
    try:
        return parse_duration(value)
    except DurationTooLongError as error:
        raise FieldError(str(error)) from None
    except DurationError:
        raise FieldError(
            f"{value!r} is not an escalation delay: write a duration such as 15m, "
            f"'{IMMEDIATE}' to escalate when the incident opens, or "
            f"'{NO_ESCALATION}' for no escalation of its own"
        ) from None


def parse_actions(value: object) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(
            f"{describe_yaml_value(value)} value is not a list of actions: write "
            "one '- action_name' line per step, or [] for none"
        )
    problems = [_action_problem(item) for item in value]
    found = [problem for problem in problems if problem]
    if found:
        raise FieldError(*found)
    return list(value)


def _action_problem(action: object) -> str | None:
    if not isinstance(action, str):
        return f"{action!r} is not an action name: write the name as a string"
    known = sorted(action_names())
    if action in known:
        return None
    return (
        f"unknown action {action!r}: {did_you_mean(action, known)}the known "
        "actions are " + ", ".join(known)
    )


def _choice_parser(choices: type[Comparison | Severity | Mode]) -> Callable[..., str]:
    def parse(value: object) -> str:
        if value in choices.values:
            return str(value)
        allowed = ", ".join(f'"{choice}"' for choice in choices.values)
        hint = ""
        if choices is Comparison:
            # An unquoted > starts a folded block scalar, which YAML reads as "".
            hint = ", in quotes because YAML reads a bare > as a block scalar"
        if isinstance(value, bool):
            hint = (
                ", in quotes: YAML reads an unquoted on, off, yes or no as "
                f"the boolean {value!r}"
            )
        raise FieldError(f"{value!r} is not one of {allowed}: write one of them{hint}")

    return parse


def parse_labels(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FieldError(
            f"{describe_yaml_value(value)} value is not a mapping: write labels "
            "as 'name: value' lines"
        )
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            raise FieldError(
                f"label {key!r}: {text!r} is not text: labels map strings to "
                "strings, so quote numbers and booleans"
            )
    return dict(value)


def parse_max_series(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(
            f"{value!r} is not a positive whole number: write one, e.g. 100"
        )
    try:
        check_max_series(value)
    except DefinitionError as error:
        raise FieldError(error.message) from None
    return value


MAX_UNIT_CHARS = 20


def parse_unit(value: object) -> str:
    if not isinstance(value, str) or len(value.strip()) > MAX_UNIT_CHARS:
        raise FieldError(
            f"{value!r} is not a unit: write up to {MAX_UNIT_CHARS} characters "
            "of text, such as s, '%' or req/s"
        )
    return value.strip()


FIELD_PARSERS: dict[str, Callable[[Any], Any]] = {
    "query": parse_query,
    "threshold": parse_number,
    "window": parse_window,
    "actions": parse_actions,
    "escalation": parse_escalation,
    "comparison": _choice_parser(Comparison),
    "severity": _choice_parser(Severity),
    "interval": parse_interval,
    "mode": _choice_parser(Mode),
    "labels": parse_labels,
    "clear_threshold": parse_number,
    "resolve_delay": parse_delay,
    "max_series": parse_max_series,
    "unit": parse_unit,
}


class _EntryErrors:
    """Error messages for one entry, each naming the file, watcher and field."""

    def __init__(self, entry: RawEntry) -> None:
        self.entry = entry
        self.messages: list[str] = []

    def add(self, key: object, problem: str) -> None:
        origin = self.entry.origin_of(key)
        self.messages.append(
            f"{origin}: watcher '{self.entry.name}', field '{key}': {problem}"
        )


def validate_entries(
    entries: list[RawEntry],
) -> tuple[list[WatcherDefinition], list[str]]:
    """Validate every entry and return the definitions and all error messages."""
    definitions = []
    messages: list[str] = []
    for entry in entries:
        definition, entry_messages = validate_entry(entry)
        messages.extend(entry_messages)
        if definition is not None:
            definitions.append(definition)
    return definitions, messages


def validate_entry(entry: RawEntry) -> tuple[WatcherDefinition | None, list[str]]:
    errors = _EntryErrors(entry)
    _check_keys(entry, errors)
    parsed = _parse_values(entry, errors)
    _check_cross_fields(entry, parsed, errors)
    if errors.messages:
        return None, errors.messages
    return _build_definition(entry, parsed), []


def _check_keys(entry: RawEntry, errors: _EntryErrors) -> None:
    for key in REQUIRED_KEYS:
        if key not in entry.values:
            errors.add(key, f"missing: every watcher needs {', '.join(REQUIRED_KEYS)}")
    for key in entry.values:
        if key in KNOWN_KEYS:
            continue
        guess = did_you_mean(key, KNOWN_KEYS)
        errors.add(
            key, f"unknown field: {guess}The known fields are " + ", ".join(KNOWN_KEYS)
        )


def _parse_values(entry: RawEntry, errors: _EntryErrors) -> dict[str, Any]:
    parsed = {}
    for key, value in entry.values.items():
        parser = FIELD_PARSERS.get(key)
        if parser is None:
            continue
        try:
            parsed[key] = parser(value)
        except FieldError as error:
            for problem in error.problems:
                errors.add(key, problem)
    return parsed


def _build_definition(entry: RawEntry, parsed: dict[str, Any]) -> WatcherDefinition:
    window_seconds, interval_seconds = window_for_catalog(parsed["window"])
    return WatcherDefinition(
        name=entry.name,
        group=entry.group,
        origin=entry.origin,
        query=parsed["query"],
        threshold=parsed["threshold"],
        window_seconds=window_seconds,
        interval_seconds=parsed.get("interval", interval_seconds),
        escalation_delay_seconds=parsed["escalation"],
        actions=parsed["actions"],
        comparison=parsed.get("comparison", Comparison.GREATER),
        severity=parsed.get("severity", Severity.MEDIUM),
        mode=parsed.get("mode", Mode.ACTIVE),
        labels=parsed.get("labels", {}),
        clear_threshold=parsed.get("clear_threshold"),
        resolve_delay_seconds=parsed.get("resolve_delay"),
        max_series=parsed.get("max_series"),
        unit=parsed.get("unit", ""),
        comparison_given="comparison" in parsed,
        mode_given="mode" in parsed,
    )


def _check_cross_fields(
    entry: RawEntry, parsed: dict[str, Any], errors: _EntryErrors
) -> None:
    """Check the rules between fields whose own values are valid."""

    def valid(key: str) -> bool:
        return key in parsed or key not in entry.values

    if "window" in parsed and valid("interval"):
        window_seconds, default_interval = window_for_catalog(parsed["window"])
        interval_seconds = parsed.get("interval", default_interval)
        try:
            check_window_and_interval(window_seconds, interval_seconds)
        except DefinitionError as error:
            errors.add(error.field, error.message)

    if "threshold" in parsed and "clear_threshold" in parsed and valid("comparison"):
        try:
            check_clear_threshold(
                parsed.get("comparison", Comparison.GREATER),
                parsed["threshold"],
                parsed["clear_threshold"],
            )
        except DefinitionError as error:
            errors.add(error.field, error.message)


# Words in a name or query for quantities that are bad when low, such as days
# until a certificate expires (days_left, expiry) or free disk space.
LOW_IS_BAD_PREFIXES = ("expir", "avail")
LOW_IS_BAD_WORDS = frozenset({"remaining", "free", "left"})


def comparison_warnings(definitions: list[WatcherDefinition]) -> list[str]:
    """Warn about watchers on a low-is-bad quantity that rely on the '>' default."""
    warnings = []
    for definition in definitions:
        if definition.comparison_given or not _suggests_low_is_bad(definition):
            continue
        warnings.append(
            f"{definition.origin}: watcher '{definition.name}': no comparison is "
            "given, so it defaults to '>' and fires while the value is ABOVE the "
            f"threshold {definition.threshold:g}. Its name or query suggests a "
            'quantity that is bad when low: add comparison: "<" if it should '
            "fire below the threshold."
        )
    return warnings


def _suggests_low_is_bad(definition: WatcherDefinition) -> bool:
    # PromQL's group_left is a join modifier, not a quantity.
    text = f"{definition.name} {definition.query}".lower().replace("group_left", " ")
    words = "".join(char if char.isalnum() else " " for char in text).split()
    return any(
        word.startswith(LOW_IS_BAD_PREFIXES) or word in LOW_IS_BAD_WORDS
        for word in words
    )
