"""Write validated definitions to the database in one transaction, and report."""

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from mitigations.models import MitigationStep
from watchers.choices import Mode
from watchers.models import Incident, Watcher
from watchers.services.catalog.validation import DEFINITION_FIELDS, WatcherDefinition
from watchers.services.durations import format_duration

logger = logging.getLogger(__name__)

# Catalog names for the model fields, so a report reads like the file.
CATALOG_NAMES = {
    "window_seconds": "window",
    "interval_seconds": "interval",
    "resolve_delay_seconds": "resolve_delay",
    "escalation_delay_seconds": "escalation",
}


@dataclass(frozen=True)
class FieldChange:
    """One definition field of a watcher whose value an import changes."""

    field: str
    old: Any
    new: Any

    def __str__(self) -> str:
        name = CATALOG_NAMES.get(self.field, self.field)
        return f"{name}: {_show(self.field, self.old)} -> {_show(self.field, self.new)}"


def _show(field_name: str, value: Any) -> str:
    if value is None:
        return "none"
    if field_name == "escalation_delay_seconds" and value == 0:
        return "immediate"
    if field_name in CATALOG_NAMES:
        return format_duration(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class ImportReport:
    """Names of the watchers an import created, changed, left alone or pruned."""

    created: list[str] = field(default_factory=list)
    updated: dict[str, list[FieldChange]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    # Watchers whose mode differs from the file's default, kept because the
    # file does not set one.
    kept_modes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def has_changes(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.paused)


def apply_definitions(
    definitions: list[WatcherDefinition], *, prune: bool = False, dry_run: bool = False
) -> ImportReport:
    """Create, update and optionally prune watchers so they match ``definitions``.

    Everything happens in one transaction, so an error leaves the database as
    it was. A dry run does the same work and then rolls it back, which makes
    its report exactly what a real run would do.
    """
    report = ImportReport(dry_run=dry_run)
    with transaction.atomic():
        existing = {
            watcher.name: watcher
            for watcher in Watcher.objects.select_for_update().prefetch_related("steps")
        }
        for definition in definitions:
            _apply_one(definition, existing.get(definition.name), report)

        names = {definition.name for definition in definitions}
        missing = [watcher for name, watcher in existing.items() if name not in names]
        if prune:
            _prune(missing, report)
        else:
            report.not_in_file = sorted(watcher.name for watcher in missing)

        if dry_run:
            transaction.set_rollback(True)

    if report.has_changes and not dry_run:
        logger.info(
            "Catalog import wrote watchers: created %s, updated %s, deleted %s, "
            "paused %s",
            report.created,
            list(report.updated),
            report.deleted,
            report.paused,
        )
    return report


def _apply_one(
    definition: WatcherDefinition, watcher: Watcher | None, report: ImportReport
) -> None:
    if watcher is None:
        _create(definition)
        report.created.append(definition.name)
        return

    changes = [
        FieldChange(name, getattr(watcher, name), getattr(definition, name))
        for name in DEFINITION_FIELDS
        if getattr(watcher, name) != getattr(definition, name)
        and (name != "mode" or definition.mode_given)
    ]
    if not definition.mode_given and watcher.mode != definition.mode:
        report.kept_modes.append(definition.name)
        report.warnings.append(
            f"{definition.name} stays {watcher.mode}: the file sets no mode, and "
            "an import keeps the mode an operator chose. Add "
            f"'mode: {definition.mode}' to the entry to change it."
        )
    old_actions = [step.action for step in watcher.steps.all()]
    if old_actions != definition.actions:
        changes.append(FieldChange("actions", old_actions, definition.actions))
        _replace_steps(watcher, definition.actions)

    if not changes:
        report.unchanged.append(definition.name)
        return
    _save_fields(watcher, definition, [change.field for change in changes])
    report.updated[definition.name] = changes


def _create(definition: WatcherDefinition) -> None:
    watcher = Watcher.objects.create(
        name=definition.name,
        **{name: getattr(definition, name) for name in DEFINITION_FIELDS},
    )
    MitigationStep.objects.bulk_create(
        MitigationStep(watcher=watcher, position=position, action=action)
        for position, action in enumerate(definition.actions, start=1)
    )


def _save_fields(
    watcher: Watcher, definition: WatcherDefinition, fields: list[str]
) -> None:
    # update_fields limits the UPDATE to definition fields, so the runtime state
    # that evaluations write (health, next_evaluation_at, ...) stays as it is.
    model_fields = [name for name in fields if name in DEFINITION_FIELDS]
    for name in model_fields:
        setattr(watcher, name, getattr(definition, name))
    watcher.save(update_fields=[*model_fields, "updated_at"])


def _replace_steps(watcher: Watcher, actions: list[str]) -> None:
    """Replace the steps, keeping the parameters of actions that stay.

    The catalog names actions only, so parameters set in the admin would be
    lost otherwise. The n-th step of an action keeps the parameters of the
    n-th old step of that action.
    """
    old_parameters: dict[str, list[dict[str, Any]]] = {}
    for step in watcher.steps.all():
        old_parameters.setdefault(step.action, []).append(step.parameters)

    MitigationStep.objects.filter(watcher=watcher).delete()
    MitigationStep.objects.bulk_create(
        MitigationStep(
            watcher=watcher,
            position=position,
            action=action,
            parameters=(old_parameters.get(action) or [{}]).pop(0),
        )
        for position, action in enumerate(actions, start=1)
    )


def _prune(watchers: list[Watcher], report: ImportReport) -> None:
    # Incident.watcher is PROTECT: a watcher with incidents keeps its history
    # and is paused instead of deleted.
    with_incidents = set(
        Incident.objects.filter(watcher__in=watchers).values_list(
            "watcher_id", flat=True
        )
    )
    for watcher in sorted(watchers, key=lambda item: item.name):
        if watcher.pk not in with_incidents:
            watcher.delete()
            report.deleted.append(watcher.name)
        elif watcher.mode == Mode.PAUSED:
            report.not_in_file.append(watcher.name)
        else:
            watcher.mode = Mode.PAUSED
            watcher.save(update_fields=["mode", "updated_at"])
            report.paused.append(watcher.name)
