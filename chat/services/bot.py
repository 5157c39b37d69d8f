"""The bot's turn: ask the ``bots`` library for a decision and carry it out."""

from __future__ import annotations

from django.db.models import Count, Max

import bots
from chat.models import Conversation, FaqEntry, Message, Site
from chat.services.conversations import conversation_handoff
from chat.services.messages import message_post

HISTORY_TURNS = 20


def bot_respond(*, conversation_id: int, seq: int) -> None:
    """Answer the visitor message ``seq`` if the bot still leads and nothing newer came."""
    conversation = Conversation.objects.select_related("site").filter(pk=conversation_id).first()
    if conversation is None or not conversation.is_with_bot:
        return
    latest = (
        Message.objects.filter(conversation=conversation, author=Message.Author.VISITOR)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    if latest != seq:
        return  # a newer visitor message has its own turn coming
    decision = bots.decide(
        index=knowledge_index(conversation.site),
        history=_history(conversation),
        threshold=conversation.site.bot_threshold,
    )
    if isinstance(decision, bots.Answer):
        message_post(
            conversation=conversation,
            author=Message.Author.BOT,
            body=decision.body,
            meta={
                "entry_id": decision.entry_id,
                "title": decision.title,
                "confidence": round(decision.confidence, 4),
            },
        )
    else:
        conversation_handoff(
            conversation=conversation,
            reason=str(decision.reason),
            confidence=round(decision.confidence, 4),
        )


def knowledge_index(site: Site) -> bots.KnowledgeIndex:
    entries = FaqEntry.objects.filter(site=site, enabled=True)
    version = entries.aggregate(n=Count("id"), at=Max("updated_at"))
    key = (site.pk, version["n"], version["at"])
    return bots.index_for(key, lambda: [_entry(e) for e in entries])


def _entry(entry: FaqEntry) -> bots.KnowledgeEntry:
    return bots.KnowledgeEntry(
        id=entry.pk,
        question=entry.question,
        phrasings=tuple(entry.phrasing_list),
        answer=entry.answer,
        language=entry.language,
    )


def _history(conversation: Conversation) -> list[bots.Turn]:
    rows = Message.objects.filter(conversation=conversation).order_by("-seq")[:HISTORY_TURNS]
    return [bots.Turn(role=m.author, body=m.body) for m in reversed(rows)]  # type: ignore[arg-type]
