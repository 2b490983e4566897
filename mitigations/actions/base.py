"""The contract every built-in action follows.

An action declares typed parameters, a risk class, what its target is (for
cooldowns and the log), how to act, how to describe the act without doing it
(dry run), and, optionally, how to find out what happened when the worker
running it was lost. Errors say whether trying again can help.
"""

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mitigations.choices import Risk


class ActionError(Exception):
    """A step that failed; ``retryable`` says whether another try can help."""

    retryable = False


class RetryableError(ActionError):
    retryable = True


class PermanentError(ActionError):
    retryable = False


class ParameterError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field
        self.message = message


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a non-empty string")
    return value.strip()


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a whole number")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _ip(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(_string(value)))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(f"{value!r} is not a list of strings")
    return [_string(item) for item in value]


def _ip_list(value: Any) -> list[str]:
    return [_ip(item) for item in _string_list(value)]


def _url(value: Any) -> str:
    text = _string(value)
    if not text.startswith(("http://", "https://")):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping")
    return dict(value)


KINDS: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "ip": _ip,
    "string_list": _string_list,
    "ip_list": _ip_list,
    "url": _url,
    "mapping": _mapping,
}


@dataclass(frozen=True)
class Parameter:
    """One typed parameter; ``labels`` are incident labels tried as its value."""

    name: str
    kind: str = "string"
    required: bool = True
    default: Any = None
    labels: tuple[str, ...] = ()
    help: str = ""
    minimum: float | None = None

    def convert(self, value: Any) -> Any:
        try:
            converted = KINDS[self.kind](value)
        except ValueError as error:
            raise ParameterError(self.name, str(error)) from None
        if self.minimum is not None and converted < self.minimum:
            raise ParameterError(
                self.name, f"{converted!r} is below the minimum of {self.minimum:g}"
            )
        return converted


# A placeholder is a bare label name in braces. Doubled braces are literal
# braces, and any other braces (PromQL matchers such as {job="api"}) stay.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_labels(value: Any, labels: Mapping[str, str], field: str) -> Any:
    """Replace ``{label}`` in strings (and lists of strings) with label values."""
    if isinstance(value, list):
        return [expand_labels(item, labels, field) for item in value]
    if not isinstance(value, str) or ("{" not in value and "}" not in value):
        return value

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name not in labels:
            raise ParameterError(
                field,
                f"{value!r} names the label '{name}', which the incident does not "
                f"have; its labels are {sorted(labels) or 'none'}",
            )
        return str(labels[name])

    return _PLACEHOLDER.sub(substitute, value)


def placeholder_names(value: str) -> list[str]:
    """Label names that ``value`` refers to, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(value) if m.group(1)]


@dataclass
class ActionContext:
    """What a running step may read: its parameters, the incident, earlier steps."""

    incident_id: int
    labels: dict[str, str]
    params: dict[str, Any]
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)
    deadline: float = field(default_factory=lambda: time.monotonic() + 60)
    run_id: int | None = None
    remember: Callable[[str, Any], Any] = field(default=lambda key, value: value)

    def remaining_seconds(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


class Action:
    """Base class of built-in actions; subclasses are registered by name."""

    name: ClassVar[str] = ""
    risk: ClassVar[str] = Risk.SAFE
    parameters: ClassVar[tuple[Parameter, ...]] = ()
    description: ClassVar[str] = ""

    def clean(
        self,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Validate ``values``; with ``labels``, also fill and expand from them.

        Without labels (when a step is saved) a parameter that may come from
        the incident's labels is not required yet.
        """
        known = {p.name for p in self.parameters}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(
                unknown[0],
                f"unknown parameter for {self.name}; its parameters are "
                f"{sorted(known) or 'none'}",
            )
        cleaned: dict[str, Any] = {}
        for parameter in self.parameters:
            value = self._value_for(parameter, values, labels)
            if value is None:
                continue
            cleaned[parameter.name] = parameter.convert(value)
        return cleaned

    def _value_for(
        self,
        parameter: Parameter,
        values: Mapping[str, Any],
        labels: Mapping[str, str] | None,
    ) -> Any:
        value = values.get(parameter.name)
        if value is not None and labels is not None:
            return expand_labels(value, labels, parameter.name)
        if value is not None:
            return value
        if labels is not None:
            for label in parameter.labels:
                if labels.get(label):
                    return labels[label]
        if parameter.default is not None:
            return parameter.default
        if parameter.required and (labels is not None or not parameter.labels):
            hint = (
                f" or give the incident one of the labels {list(parameter.labels)}"
                if parameter.labels
                else ""
            )
            raise ParameterError(
                parameter.name, f"missing: set it in the step's parameters{hint}"
            )
        return None

    def target(self, params: Mapping[str, Any]) -> str:
        """Name what the action changes, for cooldowns and the log."""
        return ""

    def run(self, context: ActionContext) -> dict[str, Any]:
        raise NotImplementedError

    def dry_run(self, context: ActionContext) -> dict[str, Any]:
        return {"would_run": self.name, "parameters": context.params}

    def reconcile(self, context: ActionContext) -> dict[str, Any] | None:
        """Find out whether a lost run took effect; None when it cannot tell."""
        return None
