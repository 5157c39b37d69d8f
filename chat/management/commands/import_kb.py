"""``manage.py import_kb SITE_KEY FILE``: load FAQ entries from CSV, JSON or Markdown."""

from __future__ import annotations

import sys
from argparse import RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat.knowledge.formats import KbFormat
from chat.models import Site
from chat.services.knowledge import decode_upload, knowledge_import

FORMATS_HELP = """\
Entries are matched by question (case and spacing aside) and language: importing the same
file again updates them in place and never duplicates them. Bad rows are reported by line
with the reason; the good rows are imported anyway, and the command then exits with status 1.

CSV   A header row, then one entry per row. Columns: question,phrasings,answer,language,
      tags,enabled (only question and answer are required; any order). Phrasings are one
      per line inside the quoted cell, or separated by "|" when the cell has no newline.
      Tags are comma-separated; enabled is true/false (yes/no, 1/0; empty is true).

JSON  A list of objects: {"question": "...", "phrasings": ["..."], "answer": "...",
      "language": "en", "tags": ["..."], "enabled": true}; only question and answer are
      required (the format of chat/demo/acme_faq.json).

Markdown
      ## How long does shipping take?       <- one "## " heading per entry: the question

      Phrasings:                            <- optional, right after the heading:
      - When will my order arrive?             one "- " bullet per phrasing
      - shipping time

      Standard shipping takes 3-5 days.     <- the answer: all other lines, paragraphs kept

      Tags: shipping, orders                <- optional last lines, any order:
      Language: en                             Tags, Language, Enabled (yes/no)
      Enabled: no

      "# " title lines before the first entry are ignored. In an answer, a line that
      would read as structure is written with a leading backslash ("\\## ...").

Language is "en" or "zh-hans"; empty means the site's language (English when it has none).
"""


class Command(BaseCommand):
    help = "Import FAQ entries into a site's knowledge base from a CSV, JSON or Markdown file."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        parser.epilog = FORMATS_HELP
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("site_key", help="The site's public key")
        parser.add_argument("file", help='The file to import; "-" reads standard input')
        parser.add_argument(
            "--format",
            choices=[f.value for f in KbFormat],
            help="csv, json or md; by default from the file name's extension",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Also delete the site's entries the file does not contain (skipped when "
            "some row is bad)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(key=options["site_key"]).first()
        if site is None:
            raise CommandError(f"No site with key {options['site_key']!r}")
        fmt = _format(options["file"], options["format"])
        try:
            text = decode_upload(_read(options["file"]))
        except (OSError, ValueError) as problem:
            raise CommandError(f"Cannot read {options['file']}: {problem}") from None
        report = knowledge_import(site=site, text=text, fmt=fmt, replace=options["replace"])
        for error in report.errors:
            self.stderr.write(f"{options['file']}: {error}")
        self.stdout.write(f"{site.name}: {report.summary()}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} row(s) rejected; the others were imported")


def _format(file: str, chosen: str | None) -> KbFormat:
    fmt = KbFormat(chosen) if chosen else KbFormat.for_filename(file)
    if fmt is None:
        raise CommandError("Give --format: the file name does not say it (csv, json or md)")
    return fmt


def _read(file: str) -> bytes:
    return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
