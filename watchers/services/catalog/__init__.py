"""Import and export the operations team's watcher catalog (YAML).

The layout is group name, then watcher name, then an entry with ``query``,
``threshold``, ``window``, ``actions`` and ``escalation`` and optional keys
for what the short format cannot express. An import validates every entry before
it writes anything, then writes all of them in one transaction.
"""

from pathlib import Path

from watchers.services.catalog.applying import (
    FieldChange,
    ImportReport,
    apply_definitions,
)
from watchers.services.catalog.entries import merge_overlay, read_entries
from watchers.services.catalog.exporting import export_catalog
from watchers.services.catalog.loading import CatalogError
from watchers.services.catalog.scaling import (
    check_scale_factor,
    describe_scale,
    scale_definition,
)
from watchers.services.catalog.validation import (
    WatcherDefinition,
    comparison_warnings,
    validate_entries,
)

__all__ = [
    "CatalogError",
    "FieldChange",
    "ImportReport",
    "WatcherDefinition",
    "check_scale_factor",
    "describe_scale",
    "export_catalog",
    "import_catalog",
    "load_definitions",
]


def load_definitions(
    path: Path | str, overlay: Path | str | None = None
) -> tuple[list[WatcherDefinition], list[str]]:
    """Read and validate a catalog, and return its definitions and warnings.

    Raises CatalogError with every problem in the catalog and overlay.
    """
    entries, errors = read_entries(path)
    if overlay is not None:
        overlay_entries, overlay_errors = read_entries(overlay)
        errors += overlay_errors
        errors += merge_overlay(entries, overlay_entries, str(path))

    definitions, entry_errors = validate_entries(entries)
    errors += entry_errors
    if errors:
        raise CatalogError(errors)
    return definitions, comparison_warnings(definitions)


def import_catalog(
    path: Path | str,
    *,
    overlay: Path | str | None = None,
    window_scale: float | None = None,
    dry_run: bool = False,
    prune: bool = False,
) -> ImportReport:
    """Validate the catalog at ``path`` and make the watchers match it.

    Nothing is written when any entry is invalid (CatalogError lists them all)
    or when ``dry_run`` is set. Watchers missing from the file are kept unless
    ``prune`` is set.
    """
    if window_scale is not None:
        check_scale_factor(window_scale)
    definitions, warnings = load_definitions(path, overlay)
    if window_scale is not None:
        definitions = [scale_definition(item, window_scale) for item in definitions]

    report = apply_definitions(definitions, prune=prune, dry_run=dry_run)
    report.warnings = [*warnings, *report.warnings]
    return report
