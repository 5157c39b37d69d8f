"""Model rows → protocol frames."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from chat.models import Conversation, Message
from chat.protocol import (
    AttachmentOut,
    Citation,
    ClarifyOption,
    ConversationOut,
    MessageOut,
    Source,
)


def message_frame(message: Message) -> MessageOut:
    meta = message.meta or {}
    source = None
    if "entry_id" in meta:
        source = Source(entry_id=meta["entry_id"], title=meta.get("title", ""))
    citations = [Citation(**cited) for cited in meta.get("citations", [])]
    return MessageOut(
        conversation_id=message.conversation_id,
        seq=message.seq,
        author=message.author,  # type: ignore[arg-type]
        author_name=author_name(message),
        body=message.body,
        client_id=message.client_id,
        created_at=message.created_at.isoformat(),
        source=source,
        confidence=meta.get("confidence"),
        ask_feedback=message.author == Message.Author.BOT and bool(source or citations),
        citations=citations,
        stream_id=meta.get("stream_id"),
        clarify=[ClarifyOption(**option) for option in meta.get("clarify", [])],
        attachment=attachment_frame(meta["attachment"]) if "attachment" in meta else None,
    )


def attachment_frame(described: dict[str, Any]) -> AttachmentOut:
    """From a message's ``meta["attachment"]``: no query for the Attachment row."""
    public_id = described["id"]
    return AttachmentOut(
        id=public_id,
        name=described["name"],
        size=described["size"],
        content_type=described["content_type"],
        url=reverse("attachment", args=[public_id]),
        thumbnail_url=reverse("attachment_thumbnail", args=[public_id])
        if described.get("thumbnail")
        else None,
        width=described.get("width"),
        height=described.get("height"),
    )


def author_name(message: Message) -> str:
    if message.author == Message.Author.AGENT and message.agent is not None:
        return message.agent.display_name
    if message.author == Message.Author.AGENT:  # a proactive message from the site's API
        return str((message.meta or {}).get("sender") or message.conversation.site.name)
    if message.author == Message.Author.BOT:
        return _("Assistant")
    if message.author == Message.Author.VISITOR:
        return message.conversation.visitor.name or _("Visitor")
    return ""


def conversation_frame(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        conversation_id=conversation.pk,
        status=conversation.status,  # type: ignore[arg-type]
        assignee_name=conversation.assignee.display_name if conversation.assignee else None,
        handoff_reason=conversation.handoff_reason,
        last_seq=conversation.last_seq,
        visitor_read_seq=conversation.visitor_read_seq,
        agent_read_seq=conversation.agent_read_seq,
    )
