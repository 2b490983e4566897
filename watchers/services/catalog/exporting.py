"""Write the watchers back in the catalog format that an import reads."""

from typing import Any

import yaml

from watchers.choices import Comparison, Mode, Severity
from watchers.models import Watcher
from watchers.services.catalog.validation import IMMEDIATE, NO_ESCALATION
from watchers.services.definitions import window_for_catalog
from watchers.services.durations import DAILY, DAY_SECONDS, format_duration


def export_catalog() -> str:
    """Return every watcher as catalog YAML, grouped, in the order they were created.

    Creation order keeps the file order of a first import, so exporting a
    freshly imported catalog keeps its groups and watchers where they were.
    """
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    watchers = Watcher.objects.order_by("pk").prefetch_related("steps")
    for watcher in watchers:
        groups.setdefault(watcher.group, {})[watcher.name] = export_entry(watcher)
    text = yaml.dump(
        groups,
        Dumper=_CatalogDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=_NO_LINE_WRAP,
    )
    return _separate_entries(text)


# PyYAML folds a scalar longer than the width at a space, so a large width
# keeps each query on one line.
_NO_LINE_WRAP = 10_000


class _Query(str):
    """A PromQL query, written double-quoted as the team's catalog does."""


class _CatalogDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key ("  - scale_replicas").
        super().increase_indent(flow, False)


def _represent_query(dumper: yaml.SafeDumper, query: _Query) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(query), style='"')


_CatalogDumper.add_representer(_Query, _represent_query)


def _separate_entries(text: str) -> str:
    """Put a blank line before each group and watcher but the first."""
    lines: list[str] = []
    for line in text.splitlines():
        is_group = not line.startswith(" ")
        is_watcher = line.startswith("  ") and not line.startswith("   ")
        if lines and (is_group or is_watcher) and not lines[-1].endswith(":"):
            lines.append("")
        lines.append(line)
    return "\n".join(lines) + "\n"


def export_entry(watcher: Watcher) -> dict[str, Any]:
    """Return one watcher's entry: the five short keys, then keys off their default."""
    window, default_interval = _export_window(
        watcher.window_seconds, watcher.interval_seconds
    )
    entry: dict[str, Any] = {
        "query": _Query(watcher.query),
        "threshold": _export_number(watcher.threshold),
        "window": window,
        "actions": [step.action for step in watcher.steps.all()],
        "escalation": _export_escalation(watcher.escalation_delay_seconds),
    }
    optional: dict[str, Any] = {
        "comparison": (watcher.comparison, Comparison.GREATER),
        "severity": (watcher.severity, Severity.MEDIUM),
        "interval": (watcher.interval_seconds, default_interval),
        "mode": (watcher.mode, Mode.ACTIVE),
        "labels": (watcher.labels, {}),
        "clear_threshold": (watcher.clear_threshold, None),
        "resolve_delay": (watcher.resolve_delay_seconds, None),
        "max_series": (watcher.max_series, None),
        "unit": (watcher.unit, ""),
    }
    for key, (value, default) in optional.items():
        if value != default:
            entry[key] = _export_optional(key, value)
    return entry


def _export_window(window_seconds: int, interval_seconds: int) -> tuple[str, int]:
    """Return the catalog window and the interval an import derives from it."""
    if window_seconds == 0 and interval_seconds == DAY_SECONDS:
        return DAILY, DAY_SECONDS
    return format_duration(window_seconds), window_for_catalog(window_seconds)[1]


def _export_escalation(seconds: int | None) -> str:
    if seconds is None:
        return NO_ESCALATION
    if seconds == 0:
        return IMMEDIATE
    return format_duration(seconds)


def _export_optional(key: str, value: Any) -> Any:
    if key in ("interval", "resolve_delay"):
        return format_duration(value)
    if key == "clear_threshold":
        return _export_number(value)
    if key == "labels":
        return dict(value)
    return str(value) if key in ("comparison", "severity", "mode") else value


def _export_number(value: float) -> int | float:
    # Write 10 rather than 10.0, as the team's catalog does.
    return int(value) if value.is_integer() else value
