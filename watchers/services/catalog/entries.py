"""The catalog layout: group name, then watcher name, then that watcher's entry."""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchers.services.catalog.loading import (
    CatalogError,
    Origin,
    key_line,
    load_yaml_file,
)

# Watcher.name is a SlugField, which accepts only these characters.
SLUG = re.compile(r"[-a-zA-Z0-9_]+")
MAX_NAME_LENGTH = 200
MAX_GROUP_LENGTH = 100


@dataclass
class RawEntry:
    """One watcher's keys as written, before validation, with where each came from."""

    group: str
    name: str
    origin: Origin
    values: dict[Any, Any] = field(default_factory=dict)
    origins: dict[Any, Origin] = field(default_factory=dict)

    def origin_of(self, key: object) -> Origin:
        return self.origins.get(key, self.origin)


def read_entries(path: Path | str) -> tuple[list[RawEntry], list[str]]:
    """Load a catalog or overlay file and return its entries and layout errors.

    Layout errors are a group or entry that is not a mapping, a watcher name
    that is not a slug, or a name used in two groups. Raises CatalogError when
    the file cannot be read or parsed, or its top level is not a mapping.
    """
    name = str(path)
    document = load_yaml_file(path)
    if document is None:
        raise CatalogError(
            [f"{name}: the file is empty: a catalog maps group names to watchers"]
        )
    if not isinstance(document, dict):
        raise CatalogError(
            [
                f"{name}: the top level is {describe_yaml_value(document)}, but it "
                "must be a mapping of group names (performance, security, ...) to "
                "watchers"
            ]
        )

    entries: list[RawEntry] = []
    errors: list[str] = []
    for group, watchers in document.items():
        origin = Origin(name, key_line(document, group))
        entries.extend(_read_group(origin, group, watchers, errors))
    errors.extend(_duplicate_name_errors(entries))
    return entries, errors


def _read_group(
    origin: Origin, group: object, watchers: object, errors: list[str]
) -> list[RawEntry]:
    if not isinstance(group, str) or not group.strip():
        errors.append(f"{origin}: group name {group!r} must be a non-empty string")
        return []
    if len(group) > MAX_GROUP_LENGTH:
        errors.append(
            f"{origin}: group name {group!r} is longer than {MAX_GROUP_LENGTH} "
            "characters: shorten it"
        )
        return []
    if not isinstance(watchers, dict) or not watchers:
        errors.append(
            f"{origin}: group '{group}' must be a mapping of watcher names to "
            f"entries, but it is {describe_yaml_value(watchers)}"
        )
        return []

    entries = []
    for name, values in watchers.items():
        entry_origin = Origin(origin.path, key_line(watchers, name))
        entry = _read_entry(entry_origin, group, name, values, errors)
        if entry is not None:
            entries.append(entry)
    return entries


def _read_entry(
    origin: Origin, group: str, name: object, values: object, errors: list[str]
) -> RawEntry | None:
    problem = _name_problem(name)
    if problem:
        errors.append(f"{origin}: watcher name {name!r} in group '{group}' {problem}")
        return None
    if not isinstance(values, dict):
        errors.append(
            f"{origin}: watcher '{name}' must be a mapping of fields (query, "
            "threshold, window, actions, escalation), but it is "
            f"{describe_yaml_value(values)}"
        )
        return None

    entry = RawEntry(group=group, name=str(name), origin=origin, values=dict(values))
    for key in values:
        entry.origins[key] = Origin(origin.path, key_line(values, key) or origin.line)
    return entry


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"is {describe_yaml_value(name)}, not text: write it in quotes"
    if not SLUG.fullmatch(name):
        return "may contain only letters, digits, '_' and '-': rename it"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters: shorten it"
    return None


def _duplicate_name_errors(entries: list[RawEntry]) -> list[str]:
    first_seen: dict[str, RawEntry] = {}
    errors = []
    for entry in entries:
        earlier = first_seen.setdefault(entry.name, entry)
        if earlier is not entry:
            errors.append(
                f"{entry.origin}: watcher '{entry.name}' in group '{entry.group}' "
                f"is already defined in group '{earlier.group}' ({earlier.origin}): "
                "watcher names must be unique across groups, so rename one"
            )
    return errors


def merge_overlay(
    entries: list[RawEntry], overlay: list[RawEntry], catalog_path: str
) -> list[str]:
    """Replace the keys of matching catalog entries with the overlay's values.

    A key given in the overlay replaces the catalog's whole value (a ``labels``
    mapping is not merged key by key). Returns an error for each overlay entry
    that has no watcher of that name in the same group of the catalog.
    """
    by_name = {entry.name: entry for entry in entries}
    errors = []
    for tweak in overlay:
        target = by_name.get(tweak.name)
        if target is None:
            errors.append(
                f"{tweak.origin}: watcher '{tweak.name}' is not in the catalog "
                f"{catalog_path}: fix the name or remove it from the overlay"
            )
        elif target.group != tweak.group:
            errors.append(
                f"{tweak.origin}: watcher '{tweak.name}' is in group "
                f"'{target.group}' of the catalog, not '{tweak.group}': move it "
                f"under '{target.group}' in the overlay"
            )
        else:
            target.values.update(tweak.values)
            target.origins.update(tweak.origins)
    return errors


def describe_yaml_value(value: object) -> str:
    """Name the YAML type of ``value`` with its article, for error messages."""
    if value is None or value in ({}, [], ""):
        return "empty"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string"
