"""Label and field selectors in the text form of the ``labelSelector`` query.

Supported requirements: ``key=value``, ``key==value``, ``key!=value``,
``key in (a,b)``, ``key notin (a,b)``, ``key`` (exists) and ``!key``.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Requirement = Callable[[dict[str, str]], bool]

SET_REQUIREMENT = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
EQUALITY_REQUIREMENT = re.compile(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$")
EXISTS_REQUIREMENT = re.compile(r"^(!?)([\w./-]+)$")


class SelectorError(ValueError):
    pass


@dataclass
class LabelSelector:
    text: str
    requirements: list[Requirement]

    def matches(self, labels: dict[str, str]) -> bool:
        return all(requirement(labels) for requirement in self.requirements)


def split_requirements(text: str) -> list[str]:
    """Split at commas that are not inside the parentheses of a set."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return [part for part in parts if part]


def parse_requirement(text: str) -> Requirement:
    if match := SET_REQUIREMENT.match(text):
        key, operator, values_text = match.groups()
        values = {value.strip() for value in values_text.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := EQUALITY_REQUIREMENT.match(text):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := EXISTS_REQUIREMENT.match(text):
        negated, key = match.groups()
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement {text!r}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value, or raise SelectorError."""
    requirements = [parse_requirement(part) for part in split_requirements(text)]
    return LabelSelector(text, requirements)


def selector_from_match(selector: dict[str, Any]) -> LabelSelector:
    """Build a selector from a ``LabelSelector`` object (matchLabels only)."""
    match_labels = dict(selector.get("matchLabels") or {})
    text = format_match_labels(match_labels)
    return parse_label_selector(text) if text else LabelSelector("", [])


def format_match_labels(match_labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


def parse_field_selector(text: str) -> dict[str, str]:
    """Parse ``field=value`` pairs joined by commas, the only form served."""
    fields = {}
    for part in split_requirements(text):
        match = re.match(r"^([\w.]+)\s*==?\s*(.*)$", part)
        if match is None:
            raise SelectorError(
                f"field selector {part!r} is not supported: use field=value"
            )
        fields[match.group(1)] = match.group(2)
    return fields
