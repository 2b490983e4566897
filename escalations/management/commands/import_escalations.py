"""``manage.py import_escalations PATH``: rules, receivers and routes from a file."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from escalations.services.catalog import ImportReport, import_escalations
from watchers.services.catalog import CatalogError


class Command(BaseCommand):
    help = (
        "Import escalation rules and routing (YAML: escalation_rules, routing). "
        "Everything is validated first, and nothing is written unless all is valid."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help="Rules file, e.g. examples/escalation.yaml.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report the changes without writing them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        try:
            report = import_escalations(path, dry_run=options["dry_run"])
        except CatalogError as error:
            count = len(error.messages)
            summary = f"{count} error{'s' if count != 1 else ''}; nothing was written."
            raise CommandError("\n".join([*error.messages, summary])) from None
        self._write_report(path, report)

    def _write_report(self, path: str, report: ImportReport) -> None:
        for label in report.created:
            self.stdout.write(self.style.SUCCESS(f"created {label}"))
        for label, changes in report.updated.items():
            self.stdout.write(self.style.SUCCESS(f"updated {label}"))
            for change in changes:
                self.stdout.write(f"    {change}")
        for note in report.notes:
            self.stdout.write(note)
        if report.not_in_file:
            self.stdout.write("kept, not in the file: " + ", ".join(report.not_in_file))
        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        if not report.has_changes:
            self.stdout.write(
                f"No changes: {len(report.unchanged)} items already match {path}."
            )
        else:
            self.stdout.write(
                f"{len(report.created)} created, {len(report.updated)} updated, "
                f"{len(report.unchanged)} unchanged."
            )
        if report.dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was written."))
