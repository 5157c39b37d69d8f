"""A site's knowledge base as the ``bots`` library sees it: FAQ entries plus article passages.

Ids. ``bots.KnowledgeEntry.id`` is what answers cite (``Message.meta["entry_id"]``,
``BotDecision.entry_id``, both non-negative), so FAQ entries and passages share one id space:

- an FAQ entry keeps its primary key (always below ``PASSAGE_ID_BASE``);
- passage ``n`` (0-based) of article ``a`` is ``PASSAGE_ID_BASE + a * PASSAGES_PER_ARTICLE + n``.

``entry_source`` turns an id back into what it names. Ids stay below 2**53 (safe in
JavaScript) for articles up to ~9 billion.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

from django.db.models import Count, Max

import bots
from chat.knowledge.passages import split_passages
from chat.models import Article, FaqEntry, Site

log = logging.getLogger(__name__)

PASSAGE_ID_BASE = 1_000_000_000_000
PASSAGES_PER_ARTICLE = 1_000


@dataclass(frozen=True)
class EntrySource:
    kind: Literal["faq", "passage"]
    pk: int  # FaqEntry or Article primary key
    passage: int | None = None  # the passage's position in its article


def passage_entry_id(article_id: int, position: int) -> int:
    if not 0 <= position < PASSAGES_PER_ARTICLE:
        raise ValueError(f"an article has at most {PASSAGES_PER_ARTICLE} passages")
    return PASSAGE_ID_BASE + article_id * PASSAGES_PER_ARTICLE + position


def entry_source(entry_id: int) -> EntrySource:
    if entry_id < PASSAGE_ID_BASE:
        return EntrySource(kind="faq", pk=entry_id)
    article_id, position = divmod(entry_id - PASSAGE_ID_BASE, PASSAGES_PER_ARTICLE)
    return EntrySource(kind="passage", pk=article_id, passage=position)


def site_knowledge_entries(site: Site) -> list[bots.KnowledgeEntry]:
    """Everything the bot may answer from: enabled FAQ entries, then enabled articles' passages."""
    entries = [faq_knowledge_entry(e) for e in FaqEntry.objects.filter(site=site, enabled=True)]
    for article in Article.objects.filter(site=site, enabled=True).order_by("pk"):
        entries += article_knowledge_entries(article)
    return entries


def faq_knowledge_entry(entry: FaqEntry) -> bots.KnowledgeEntry:
    return bots.KnowledgeEntry(
        id=entry.pk,
        question=entry.question,
        phrasings=tuple(entry.phrasing_list),
        answer=entry.answer,
        language=entry.language,
    )


def article_knowledge_entries(article: Article) -> list[bots.KnowledgeEntry]:
    passages = split_passages(article.title, article.body)
    if len(passages) > PASSAGES_PER_ARTICLE:
        log.warning(
            "Article %s has %d passages; the bot uses the first %d",
            article.pk,
            len(passages),
            PASSAGES_PER_ARTICLE,
        )
    return [
        bots.KnowledgeEntry(
            id=passage_entry_id(article.pk, position),
            question=passage.title,
            phrasings=(),
            answer=passage.text,
            language=article.language,
        )
        for position, passage in enumerate(passages[:PASSAGES_PER_ARTICLE])
    ]


def site_knowledge_key(site: Site) -> Hashable:
    """Changes whenever an enabled entry or article is added, edited, disabled or removed.

    Edits bump ``updated_at`` (every write path saves through the model, none uses
    ``QuerySet.update``); removals and disabling change the count.
    """
    faq = FaqEntry.objects.filter(site=site, enabled=True).aggregate(
        n=Count("id"), at=Max("updated_at")
    )
    articles = Article.objects.filter(site=site, enabled=True).aggregate(
        n=Count("id"), at=Max("updated_at")
    )
    return ("kb", site.pk, faq["n"], faq["at"], articles["n"], articles["at"])


def site_knowledge_index(site: Site) -> bots.KnowledgeIndex:
    """The site's retrieval index, built at most once per version of its knowledge base."""
    return bots.index_for(site_knowledge_key(site), lambda: site_knowledge_entries(site))
