"""``manage.py import_watchers PATH``: create or update watchers from a catalog."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from watchers.services.catalog import (
    CatalogError,
    ImportReport,
    check_scale_factor,
    describe_scale,
    import_catalog,
)


class Command(BaseCommand):
    help = (
        "Import a watcher catalog (YAML: group, watcher name, entry). Every entry "
        "is validated first, and nothing is written unless all of them are valid."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("path", help="Catalog file, e.g. examples/watchers.yaml.")
        parser.add_argument(
            "--overlay",
            metavar="PATH",
            help="A file in the same layout whose keys replace those of the "
            "matching catalog entries before validation.",
        )
        parser.add_argument(
            "--window-scale",
            type=float,
            metavar="FACTOR",
            help="Divide windows, intervals (at least 5s), escalation and resolve "
            "delays by FACTOR, a number greater than 1. For demos.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report the changes without writing them.",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Delete watchers that are not in the file. Those with incidents "
            "are paused instead.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"]
        factor = options["window_scale"]
        if factor is not None:
            try:
                check_scale_factor(factor)
            except ValueError as error:
                raise CommandError(f"--window-scale: {error}") from None
            self.stdout.write(describe_scale(factor))

        try:
            report = import_catalog(
                path,
                overlay=options["overlay"],
                window_scale=factor,
                dry_run=options["dry_run"],
                prune=options["prune"],
            )
        except CatalogError as error:
            count = len(error.messages)
            summary = f"{count} error{'s' if count != 1 else ''}; nothing was written."
            raise CommandError("\n".join([*error.messages, summary])) from None

        for warning in report.warnings:
            self.stderr.write(self.style.WARNING(f"Warning: {warning}"))
        self._write_report(path, report)

    def _write_report(self, path: str, report: ImportReport) -> None:
        for name in report.created:
            self.stdout.write(self.style.SUCCESS(f"created {name}"))
        for name, changes in report.updated.items():
            self.stdout.write(self.style.SUCCESS(f"updated {name}"))
            for change in changes:
                self.stdout.write(f"    {change}")
        for name in report.deleted:
            self.stdout.write(self.style.WARNING(f"deleted {name} (not in the file)"))
        for name in report.paused:
            self.stdout.write(
                self.style.WARNING(
                    f"paused {name} (not in the file, kept because it has incidents)"
                )
            )
        if report.not_in_file:
            hint = "" if report.deleted or report.paused else "; --prune deletes them"
            self.stdout.write(
                f"kept, not in the file{hint}: " + ", ".join(report.not_in_file)
            )
        self._write_summary(path, report)

    def _write_summary(self, path: str, report: ImportReport) -> None:
        if not report.has_changes:
            count = len(report.unchanged)
            kept_count = len(report.kept_modes)
            detail = f", apart from the mode kept for {kept_count} (see the warning)"
            self.stdout.write(
                f"No changes: the {count} watchers already match {path}"
                f"{detail if kept_count else ''}."
            )
            return
        self.stdout.write(
            f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.deleted)} deleted, "
            f"{len(report.paused)} paused."
        )
        if report.dry_run:
            self.stdout.write(self.style.NOTICE("Dry run: nothing was written."))
