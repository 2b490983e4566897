"""``manage.py export_watchers [PATH]``: write the watchers as a catalog file."""

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from watchers.services.catalog import export_catalog


class Command(BaseCommand):
    help = (
        "Write every watcher in the catalog format that import_watchers reads, "
        "to PATH or to standard output."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            default="-",
            help="File to write; '-' or no path writes to standard output.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = export_catalog()
        path = options["path"]
        if path == "-":
            self.stdout.write(text, ending="")
            return

        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error}") from None
        self.stderr.write(f"Wrote the catalog to {path}.")
