"""The learning loop: questions the bot handled badly, grouped so one FAQ entry can fix each group.

Review items are
- ``d<id>``: a ``BotDecision`` that handed off or asked to clarify for lack of confidence (or
  of any knowledge at all), not yet reviewed;
- ``m<id>``: a bot answer the visitor rated 👎 whose decision is not yet reviewed. Answers
  given before the bot logged decisions have none; reviewing one logs it then, reviewed.

Grouping is deterministic and cheap: a site's items are bucketed by the entry retrieval
ranked first for them (for 👎, the entry that answered), then each bucket is clustered
greedily, oldest first: an item joins the group holding its most similar question if that
similarity reaches ``SIMILARITY``, else starts a group. Similarity is a Jaccard overlap of word
sets (English words, Chinese character bigrams) in which each word weighs its rarity among the
site's pending questions, so "Do you sell apples?" and "Do you sell bikes?" stay apart while
"Do you sell gift cards?" and "can I buy a gift card" meet.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery

from chat.knowledge.rows import FaqRow
from chat.models import BotDecision, Conversation, FaqEntry, Message, Site
from chat.services.knowledge import knowledge_reindex_after_commit

REVIEW_REASONS = ("low_confidence", "no_knowledge", "llm_handoff")
MAX_ITEMS = 500  # the most recent ones; older ones show once these are reviewed
SIMILARITY = 0.3

_WORD_OR_HAN = re.compile(r"[a-z0-9]+|[\u3400-\u4dbf\u4e00-\u9fff]+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_STOP_WORDS = frozenset(
    {"a", "an", "and", "any", "are", "at", "be", "can", "could", "do", "does", "for", "have"}
    | {"how", "i", "im", "in", "is", "it", "me", "my", "of", "on", "or", "the", "there", "to"}
    | {"we", "what", "when", "where", "which", "who", "why", "with", "you", "your"}
)


class ReviewError(Exception):
    """The entry cannot be created as asked (e.g. it exists already)."""


@dataclass(frozen=True)
class ReviewItem:
    ref: str  # "d<BotDecision id>" or "m<Message id>"
    kind: Literal["unsure", "unhelpful"]
    site_id: int
    site_name: str
    conversation_id: int
    question: str
    question_seq: int
    confidence: float
    candidate_id: int | None  # the entry retrieval ranked first (for 👎: the one that answered)
    candidate_title: str
    created_at: datetime
    answer_seq: int | None = None  # 👎 items: the rated answer


@dataclass(frozen=True)
class ReviewGroup:
    items: tuple[ReviewItem, ...]  # oldest first
    typical: ReviewItem  # the question most like all the others (the first of equals)

    @property
    def site_id(self) -> int:
        return self.items[0].site_id

    @property
    def site_name(self) -> str:
        return self.items[0].site_name

    @property
    def candidate_title(self) -> str:
        return self.items[0].candidate_title

    @property
    def refs(self) -> list[str]:
        return [item.ref for item in self.items]

    @property
    def other_questions(self) -> list[str]:
        """The group's other wordings, each once: the new entry's phrasings."""
        seen = {_normal(self.typical.question)}
        others: list[str] = []
        for item in self.items:
            if _normal(item.question) not in seen:
                seen.add(_normal(item.question))
                others.append(item.question.strip())
        return others

    @property
    def language(self) -> str:
        return "zh-hans" if _HAN.search(self.typical.question) else "en"


# --- Reading -------------------------------------------------------------------------------


def review_groups(
    *, sites: QuerySet[Site], conversations: QuerySet[Conversation] | None = None
) -> list[ReviewGroup]:
    """Pending items of ``sites`` in groups, biggest first, then most recent. With
    ``conversations`` (what the reader may see), only items from those."""
    by_site: dict[int, list[ReviewItem]] = {}
    for item in review_items(sites=sites, conversations=conversations):
        by_site.setdefault(item.site_id, []).append(item)
    groups: list[ReviewGroup] = []
    for items in by_site.values():
        similarity = _Similarity([item.question for item in items])
        buckets: dict[int | None, list[ReviewItem]] = {}
        for item in items:
            buckets.setdefault(item.candidate_id, []).append(item)
        for bucket in buckets.values():
            groups += _cluster(bucket, similarity)
    groups.sort(key=lambda g: (-len(g.items), -g.items[-1].created_at.timestamp(), g.refs[0]))
    return groups


def review_group(
    *,
    sites: QuerySet[Site],
    refs: Collection[str],
    conversations: QuerySet[Conversation] | None = None,
) -> ReviewGroup | None:
    """The still-pending items among ``refs`` (one site's) as one group; None when none are."""
    items = review_items(sites=sites, refs=refs, conversations=conversations)
    if not items:
        return None
    items = [item for item in items if item.site_id == items[0].site_id]
    similarity = _Similarity([item.question for item in items])
    return _group(items, similarity)


def review_items(
    *,
    sites: QuerySet[Site],
    refs: Collection[str] | None = None,
    conversations: QuerySet[Conversation] | None = None,
) -> list[ReviewItem]:
    """Pending items of ``sites``, oldest first; only those named in ``refs`` when given, and
    only from ``conversations`` when given."""
    decisions = _pending_decisions(sites)
    answers = _unhelpful_answers(sites)
    if conversations is not None:
        decisions = decisions.filter(conversation__in=conversations)
        answers = answers.filter(conversation__in=conversations)
    if refs is not None:
        decisions = decisions.filter(pk__in=_ids(refs, "d"))
        answers = answers.filter(pk__in=_ids(refs, "m"))
    items = [*map(_decision_item, decisions[:MAX_ITEMS]), *map(_answer_item, answers[:MAX_ITEMS])]
    items.sort(key=lambda item: (item.created_at, item.ref))
    return items[-MAX_ITEMS:]


def _pending_decisions(sites: QuerySet[Site]) -> QuerySet[BotDecision]:
    return (
        BotDecision.objects.filter(
            conversation__site__in=sites,
            reviewed=False,
            outcome__in=[BotDecision.Outcome.HANDOFF, BotDecision.Outcome.CLARIFY],
            reason__in=REVIEW_REASONS,
        )
        .select_related("conversation__site")
        .order_by("-created_at", "-pk")
    )


def _unhelpful_answers(sites: QuerySet[Site]) -> QuerySet[Message]:
    reviewed = BotDecision.objects.filter(
        conversation=OuterRef("conversation"), answer_seq=OuterRef("seq"), reviewed=True
    )
    question = Message.objects.filter(
        conversation=OuterRef("conversation"),
        author=Message.Author.VISITOR,
        seq__lt=OuterRef("seq"),
    ).order_by("-seq")
    return (
        Message.objects.filter(
            conversation__site__in=sites, author=Message.Author.BOT, helpful=False
        )
        .filter(~Exists(reviewed))
        .annotate(
            question=Subquery(question.values("body")[:1]),
            question_seq=Subquery(question.values("seq")[:1]),
        )
        .select_related("conversation__site")
        .order_by("-created_at", "-pk")
    )


def _ids(refs: Iterable[str], prefix: str) -> list[int]:
    return [int(ref[1:]) for ref in refs if ref[:1] == prefix and ref[1:].isdigit()]


def _decision_item(decision: BotDecision) -> ReviewItem:
    top = decision.scores[0] if decision.scores else {}
    return ReviewItem(
        ref=f"d{decision.pk}",
        kind="unsure",
        site_id=decision.conversation.site_id,
        site_name=decision.conversation.site.name,
        conversation_id=decision.conversation_id,
        question=decision.question,
        question_seq=decision.question_seq,
        confidence=decision.confidence,
        candidate_id=top.get("entry_id"),
        candidate_title=top.get("title", ""),
        created_at=decision.created_at,
    )


def _answer_item(message: Message) -> ReviewItem:
    meta = message.meta or {}
    return ReviewItem(
        ref=f"m{message.pk}",
        kind="unhelpful",
        site_id=message.conversation.site_id,
        site_name=message.conversation.site.name,
        conversation_id=message.conversation_id,
        question=message.question or "",  # type: ignore[attr-defined]
        question_seq=message.question_seq or 0,  # type: ignore[attr-defined]
        confidence=meta.get("confidence") or 0.0,
        candidate_id=meta.get("entry_id"),
        candidate_title=meta.get("title", ""),
        created_at=message.created_at,
        answer_seq=message.seq,
    )


# --- Grouping ------------------------------------------------------------------------------


def _cluster(items: list[ReviewItem], similarity: _Similarity) -> list[ReviewGroup]:
    clusters: list[list[ReviewItem]] = []
    for item in items:
        best, best_score = None, 0.0
        for cluster in clusters:
            score = max(similarity(item.question, other.question) for other in cluster)
            if score > best_score:
                best, best_score = cluster, score
        if best is not None and best_score >= SIMILARITY:
            best.append(item)
        else:
            clusters.append([item])
    return [_group(cluster, similarity) for cluster in clusters]


def _group(items: list[ReviewItem], similarity: _Similarity) -> ReviewGroup:
    totals = [sum(similarity(a.question, b.question) for b in items) for a in items]
    return ReviewGroup(items=tuple(items), typical=items[totals.index(max(totals))])


class _Similarity:
    """Weighted Jaccard of two questions' words; a word weighs log(1 + n / questions with it)."""

    def __init__(self, questions: list[str]) -> None:
        self._tokens = {q: _tokens(q) for q in questions}
        counts = Counter(token for tokens in self._tokens.values() for token in tokens)
        n = len(self._tokens)
        self._weight = {token: math.log(1 + n / count) for token, count in counts.items()}

    def __call__(self, a: str, b: str) -> float:
        ta, tb = self._tokens[a], self._tokens[b]
        union = sum(self._weight[t] for t in ta | tb)
        return sum(self._weight[t] for t in ta & tb) / union if union else 0.0


def _tokens(text: str) -> frozenset[str]:
    """English words (minus grammar, singular) and Chinese characters' bigrams."""
    tokens: set[str] = set()
    for run in _WORD_OR_HAN.findall(_normal(text)):
        if _HAN.match(run):
            tokens.update(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
        elif run not in _STOP_WORDS:
            tokens.add(run[:-1] if len(run) > 3 and run.endswith("s") else run)
    return frozenset(tokens)


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# --- Acting --------------------------------------------------------------------------------


def review_entry_create(
    *,
    site: Site,
    refs: Collection[str],
    question: str,
    phrasings: str,
    answer: str,
    language: str,
    tags: str = "",
    conversations: QuerySet[Conversation] | None = None,
) -> FaqEntry:
    """Create the FAQ entry a group asked for, mark the group reviewed, reindex after commit.

    ``site`` must be one the caller may see; ``refs`` of other sites are ignored.
    """
    key = FaqRow(question=question, answer="", language=language).key
    if any(FaqRow(question=q, answer="", language=language).key == key for q in _questions(site)):
        raise ReviewError("An FAQ entry with this question and language exists already.")
    with transaction.atomic():
        entry = FaqEntry.objects.create(
            site=site,
            question=question.strip(),
            phrasings="\n".join(p.strip() for p in phrasings.splitlines() if p.strip()),
            answer=answer.strip(),
            language=language,
            tags=tags.strip(),
        )
        site_only = Site.objects.filter(pk=site.pk)
        _mark_reviewed(review_items(sites=site_only, refs=refs, conversations=conversations))
        knowledge_reindex_after_commit(site_id=site.pk)
    return entry


def _questions(site: Site) -> list[str]:
    return list(FaqEntry.objects.filter(site=site).values_list("question", flat=True))


def review_dismiss(
    *,
    sites: QuerySet[Site],
    refs: Collection[str],
    conversations: QuerySet[Conversation] | None = None,
) -> int:
    """Mark the items reviewed without a new entry. How many were still pending."""
    items = review_items(sites=sites, refs=refs, conversations=conversations)
    with transaction.atomic():
        _mark_reviewed(items)
    return len(items)


def _mark_reviewed(items: Iterable[ReviewItem]) -> None:
    items = list(items)
    BotDecision.objects.filter(pk__in=_ids((i.ref for i in items), "d")).update(reviewed=True)
    for item in items:
        if item.kind == "unhelpful":
            _mark_answer_reviewed(item)


def _mark_answer_reviewed(item: ReviewItem) -> None:
    logged = BotDecision.objects.filter(
        conversation_id=item.conversation_id, answer_seq=item.answer_seq
    ).update(reviewed=True)
    if not logged:  # answered before decisions were logged: log it now, reviewed
        BotDecision.objects.create(
            conversation_id=item.conversation_id,
            question_seq=item.question_seq,
            question=item.question,
            outcome=BotDecision.Outcome.ANSWER,
            confidence=item.confidence,
            entry_id=item.candidate_id,
            answer_seq=item.answer_seq,
            reviewed=True,
        )
