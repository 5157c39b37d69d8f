"""``manage.py export_kb SITE_KEY``: write a site's FAQ entries as CSV, JSON or Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.knowledge.formats import KbFormat
from chat.models import Site
from chat.services.knowledge import knowledge_export, site_faq_entries


class Command(BaseCommand):
    help = (
        "Export a site's FAQ entries (enabled or not) as CSV, JSON or Markdown, in the formats "
        "import_kb reads (see import_kb --help); importing the file back changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("site_key", help="The site's public key")
        parser.add_argument(
            "--format",
            choices=[f.value for f in KbFormat],
            help="csv, json or md; by default from -o's extension, else json",
        )
        parser.add_argument("-o", "--output", help="Write to this file instead of standard output")

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(key=options["site_key"]).first()
        if site is None:
            raise CommandError(f"No site with key {options['site_key']!r}")
        output = options["output"]
        fmt = _format(output, options["format"])
        content = knowledge_export(entries=site_faq_entries(site), fmt=fmt)
        if output:
            Path(output).write_text(content, encoding="utf-8")
            self.stderr.write(f"Wrote {site.faq_entries.count()} entries to {output}")
        else:
            self.stdout.write(content, ending="")


def _format(output: str | None, chosen: str | None) -> KbFormat:
    if chosen:
        return KbFormat(chosen)
    return (KbFormat.for_filename(output) if output else None) or KbFormat.JSON
