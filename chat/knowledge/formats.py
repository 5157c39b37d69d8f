"""FAQ entries to and from CSV, JSON and Markdown files. Pure text in, rows out: no database.

Parsing never stops at the first bad row: every row is checked on its own and a bad one
becomes a ``RowError`` naming its line, so the good rows can still be imported. A file that
cannot be read past some point (broken JSON or CSV quoting) yields the rows before that point
and one error at the line where reading stopped.

The formats (also in ``import_kb --help`` and the README):

CSV
    A header row, then one entry per row. Columns ``question,phrasings,answer,language,tags,
    enabled``; only ``question`` and ``answer`` are required, their order is free. Phrasings
    are separated by newlines inside the quoted cell, or by ``|`` when the cell has no newline.
    Tags are separated by commas. ``enabled`` is true/false (also yes/no, 1/0); empty is true.
JSON
    A list of objects: ``{"question": str, "phrasings": [str], "answer": str,
    "language": str, "tags": [str], "enabled": bool}``; only question and answer are required.
    A string is also accepted for phrasings (one per line) and tags (comma-separated).
Markdown
    See ``markdown.py``.

Language is a code from ``settings.LANGUAGES`` ("en", "zh-hans"); empty means the default
given by the caller (the site's language).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from chat.knowledge import markdown
from chat.knowledge.rows import FaqRow, RawRow, RowError, join_phrasings, join_tags, validate

CSV_COLUMNS = ("question", "phrasings", "answer", "language", "tags", "enabled")


class KbFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    MARKDOWN = "md"

    @property
    def content_type(self) -> str:
        return {
            KbFormat.CSV: "text/csv; charset=utf-8",
            KbFormat.JSON: "application/json",
            KbFormat.MARKDOWN: "text/markdown; charset=utf-8",
        }[self]

    @classmethod
    def for_filename(cls, name: str) -> KbFormat | None:
        suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return {"csv": cls.CSV, "json": cls.JSON, "md": cls.MARKDOWN, "markdown": cls.MARKDOWN}.get(
            suffix
        )


@dataclass
class Parsed:
    rows: list[FaqRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def parse(text: str, fmt: KbFormat, *, default_language: str = "en") -> Parsed:
    """Checked rows and the errors of the bad ones (sorted by line)."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as Excel writes
    readers = {KbFormat.CSV: _read_csv, KbFormat.JSON: _read_json, KbFormat.MARKDOWN: markdown.read}
    parsed = Parsed()
    seen: dict[tuple[str, str], int] = {}
    for item in readers[fmt](text):
        if isinstance(item, RowError):
            parsed.errors.append(item)
            continue
        row = validate(item, default_language=default_language)
        if isinstance(row, RowError):
            parsed.errors.append(row)
        elif row.key in seen:
            parsed.errors.append(
                RowError(row.line, f"same question and language as line {seen[row.key]}")
            )
        else:
            seen[row.key] = row.line
            parsed.rows.append(row)
    parsed.errors.sort(key=lambda e: e.line)
    return parsed


def render(rows: Iterable[FaqRow], fmt: KbFormat) -> str:
    writers = {
        KbFormat.CSV: _write_csv,
        KbFormat.JSON: _write_json,
        KbFormat.MARKDOWN: markdown.write,
    }
    return writers[fmt](list(rows))


# --- CSV -----------------------------------------------------------------------------------


def _read_csv(text: str) -> Iterator[RawRow | RowError]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in ("question", "answer") if c not in header]
        if missing:
            yield RowError(1, f"missing column(s): {', '.join(missing)} (header is required)")
            return
        start = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                yield RawRow(start, dict(zip(header, cells, strict=False)))
            start = reader.line_num + 1
    except csv.Error as problem:
        yield RowError(start, f"malformed CSV at line {start}: {problem}")


def _write_csv(rows: list[FaqRow]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.question,
                join_phrasings(row.phrasings),
                row.answer,
                row.language,
                join_tags(row.tags),
                "true" if row.enabled else "false",
            ]
        )
    return "\ufeff" + out.getvalue()  # so spreadsheet programs read UTF-8 (Chinese) correctly


# --- JSON ----------------------------------------------------------------------------------

_SPACE = re.compile(r"\s*")


def _read_json(text: str) -> Iterator[RawRow | RowError]:
    """Items of the top-level list one by one, so items before a syntax error still count."""
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]
    if not text.startswith("[", pos):
        yield RowError(_line_of(text, pos), "the file must hold a JSON list of entries")
        return
    pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", pos):
        return
    while True:
        line = _line_of(text, pos)
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as problem:
            yield RowError(
                problem.lineno, f"malformed JSON at line {problem.lineno}: {problem.msg}"
            )
            return
        if isinstance(item, dict):
            yield RawRow(line, item)
        else:
            yield RowError(line, "each entry must be a JSON object")
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            lineno = _line_of(text, pos)
            yield RowError(lineno, f"malformed JSON at line {lineno}: expecting ',' or ']'")
            return
        pos = _SPACE.match(text, pos + 1).end()  # type: ignore[union-attr]


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _write_json(rows: list[FaqRow]) -> str:
    items = [
        {
            "question": row.question,
            "phrasings": list(row.phrasings),
            "answer": row.answer,
            "language": row.language,
            "tags": list(row.tags),
            "enabled": row.enabled,
        }
        for row in rows
    ]
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"
