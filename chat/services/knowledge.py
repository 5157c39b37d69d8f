"""Knowledge-base state changes: importing FAQ files, and rebuilding the bot's index after.

The index is never built on a request or socket path: every change enqueues ``kb_reindex``
after commit, and the task warms ``bots.index_for`` under the key the bot looks up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction

from chat.knowledge import formats
from chat.knowledge.entries import site_knowledge_index
from chat.knowledge.formats import KbFormat
from chat.knowledge.rows import FaqRow, RowError, join_tags, normalise_newlines, split_tags
from chat.models import FaqEntry, Site

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    errors: list[RowError] = field(default_factory=list)
    # --replace removes nothing when some rows were bad: they may be entries meant to stay.
    replace_skipped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        text = (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.deleted} deleted, {len(self.errors)} rejected"
        )
        if self.replace_skipped:
            text += " (nothing deleted because some rows were rejected)"
        return text


def knowledge_import(
    *, site: Site, text: str, fmt: KbFormat, replace: bool = False
) -> ImportReport:
    """Create or update the file's good entries in place (matched by question and language).

    With ``replace``, the site's entries the file does not mention are deleted, unless some
    rows were rejected.
    """
    parsed = formats.parse(text, fmt, default_language=site.language or "en")
    report = ImportReport(errors=parsed.errors)
    with transaction.atomic():
        kept = _upsert(site, parsed.rows, report)
        if replace and parsed.errors:
            report.replace_skipped = True
        elif replace:
            report.deleted, _ = FaqEntry.objects.filter(site=site).exclude(pk__in=kept).delete()
        if report.changed:
            knowledge_reindex_after_commit(site_id=site.pk)
    return report


def _upsert(site: Site, rows: list[FaqRow], report: ImportReport) -> set[int]:
    existing: dict[tuple[str, str], FaqEntry] = {}
    for entry in FaqEntry.objects.filter(site=site).order_by("pk"):
        existing.setdefault(faq_row(entry).key, entry)
    kept: set[int] = set()
    for row in rows:
        found = existing.get(row.key)
        if found is not None and faq_row(found) == dataclasses.replace(row, line=0):
            report.unchanged += 1
            kept.add(found.pk)
            continue
        if found is None:
            report.created += 1
        else:
            report.updated += 1
        entry = found or FaqEntry(site=site)
        _apply(entry, row)
        entry.save()
        kept.add(entry.pk)
    return kept


def _apply(entry: FaqEntry, row: FaqRow) -> None:
    entry.question = row.question
    entry.phrasings = "\n".join(row.phrasings)
    entry.answer = row.answer
    entry.language = row.language
    entry.tags = join_tags(row.tags)
    entry.enabled = row.enabled


def faq_row(entry: FaqEntry) -> FaqRow:
    return FaqRow(
        question=entry.question.strip(),
        answer=normalise_newlines(entry.answer).strip(),
        language=entry.language,
        phrasings=tuple(dict.fromkeys(entry.phrasing_list)),
        tags=split_tags(entry.tags),
        enabled=entry.enabled,
    )


def knowledge_export(*, entries: Iterable[FaqEntry], fmt: KbFormat) -> str:
    return formats.render((faq_row(e) for e in entries), fmt)


def site_faq_entries(site: Site) -> Iterable[FaqEntry]:
    """In creation order, so an export re-imported elsewhere exports the same again."""
    return FaqEntry.objects.filter(site=site).order_by("pk")


def decode_upload(data: bytes) -> str:
    """The text of an uploaded or read file; ``ValueError`` says why it is not usable."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as problem:
        raise ValueError(f"the file is not UTF-8 text (byte {problem.start})") from None


def knowledge_reindex_after_commit(*, site_id: int) -> None:
    """Enqueue ``kb_reindex`` once the current transaction commits (now, outside of one)."""
    from chat.tasks import kb_reindex

    transaction.on_commit(lambda: kb_reindex.delay(site_id))


def knowledge_reindex(*, site_id: int) -> None:
    """Build the site's retrieval index now, so the bot's next question finds it warm."""
    site = Site.objects.filter(pk=site_id).first()
    if site is not None:
        site_knowledge_index(site)
