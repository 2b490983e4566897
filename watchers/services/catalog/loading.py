"""Read catalog files: safe YAML that rejects duplicate keys and keeps key lines."""

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MAP_TAG = "tag:yaml.org,2002:map"
MERGE_TAG = "tag:yaml.org,2002:merge"


class CatalogError(Exception):
    """A catalog that cannot be imported; ``messages`` lists every problem found."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class Origin:
    """The file and line where a catalog value was written."""

    path: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


class KeyedMapping(dict[Any, Any]):
    """A YAML mapping that also stores the 1-based line of each key."""

    def __init__(self, items: dict[Any, Any], key_lines: dict[Any, int]) -> None:
        super().__init__(items)
        self.key_lines = key_lines


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class _CatalogLoader(yaml.SafeLoader):
    """SafeLoader whose mappings reject duplicate keys instead of keeping the last."""


def _construct_mapping(loader: _CatalogLoader, node: yaml.MappingNode) -> KeyedMapping:
    key_lines: dict[Any, int] = {}
    for key_node, _value_node in node.value:
        if key_node.tag == MERGE_TAG:
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first_line = key_lines.get(key)
        except TypeError:
            continue  # an unhashable key: construct_mapping below reports it
        if first_line is not None:
            raise DuplicateKeyError(
                problem=f"duplicate key {key!r}, first written on line {first_line}: "
                "YAML would keep only the last value, so remove or rename one",
                problem_mark=key_node.start_mark,
            )
        key_lines[key] = key_node.start_mark.line + 1

    # deep=True builds nested values now, because this constructor is not a
    # generator and so cannot fill the mapping in later as SafeLoader does.
    items = yaml.SafeLoader.construct_mapping(loader, node, deep=True)
    return KeyedMapping(items, key_lines)


_CatalogLoader.add_constructor(MAP_TAG, _construct_mapping)


def describe_yaml_error(path: str, error: yaml.YAMLError) -> str:
    """Return ``path:line:column: problem`` for a YAML error."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return f"{path}: invalid YAML: {error}"
    mark = error.problem_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}"
    if isinstance(error, DuplicateKeyError):
        return f"{where}: {error.problem}"
    context = f" ({error.context})" if error.context else ""
    return f"{where}: invalid YAML: {error.problem}{context}"


def load_yaml_file(path: Path | str) -> Any:
    """Load one YAML document from ``path``, raising CatalogError on any failure."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError([f"{name}: cannot read the file: {error}"]) from None
    try:
        return yaml.load(text, Loader=_CatalogLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise CatalogError([describe_yaml_error(name, error)]) from None


def key_line(mapping: object, key: object) -> int | None:
    if isinstance(mapping, KeyedMapping):
        return mapping.key_lines.get(key)
    return None


def did_you_mean(value: object, known: Iterable[str]) -> str:
    """Return "did you mean 'NAME'? " for the known name closest to ``value``.

    The text ends in a space so that it can open the rest of a message; it is
    empty when no known name is close.
    """
    close = difflib.get_close_matches(str(value), list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""
