"""Storing messages: one sequence number each, committed before anyone hears of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from chat.models import Agent, Conversation, Message
from chat.realtime import agents_group, send_after_commit, visitor_group
from chat.services.frames import message_frame


@dataclass(frozen=True)
class Posted:
    message: Message
    created: bool  # False when ``client_id`` had been stored before (a resend)


def message_post(
    *,
    conversation: Conversation,
    author: Message.Author,
    body: str,
    client_id: str | None = None,
    agent: Agent | None = None,
    meta: dict[str, Any] | None = None,
) -> Posted:
    """Store a message under the conversation's next ``seq`` and broadcast it after commit.

    Sending the same ``client_id`` again returns the stored message instead of a copy.
    """
    if client_id is not None:
        existing = _by_client_id(conversation, author, client_id)
        if existing is not None:
            return Posted(existing, created=False)
    try:
        with transaction.atomic():
            message = _insert(conversation, author, body, client_id, agent, meta or {})
            if author == Message.Author.AGENT:
                _first_response(conversation, message)
    except IntegrityError:
        # Two sockets raced with the same client_id; the other one stored it.
        existing = _by_client_id(conversation, author, client_id) if client_id else None
        if existing is None:
            raise
        return Posted(existing, created=False)
    return Posted(message, created=True)


def _insert(
    conversation: Conversation,
    author: Message.Author,
    body: str,
    client_id: str | None,
    agent: Agent | None,
    meta: dict[str, Any],
) -> Message:
    # UPDATE first: it takes the row lock (the write lock on SQLite) that orders the sequence.
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=F("last_seq") + 1)
    seq = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation.pk)
    conversation.last_seq = seq
    message = Message.objects.create(
        conversation=conversation,
        seq=seq,
        author=author,
        agent=agent,
        body=body,
        client_id=client_id,
        meta=meta,
    )
    send_after_commit(
        [visitor_group(conversation.pk), agents_group(conversation.pk)], message_frame(message)
    )
    return message


def _first_response(conversation: Conversation, message: Message) -> None:
    """The first agent reply ends the conversation's first response time (reports)."""
    if conversation.first_response_at is not None:
        return
    Conversation.objects.filter(pk=conversation.pk, first_response_at__isnull=True).update(
        first_response_at=message.created_at
    )
    conversation.first_response_at = message.created_at


def _by_client_id(
    conversation: Conversation, author: Message.Author, client_id: str
) -> Message | None:
    return (
        Message.objects.select_related("agent", "conversation__visitor")
        .filter(conversation=conversation, author=author, client_id=client_id)
        .first()
    )


def messages_after(conversation: Conversation, after_seq: int) -> list[Message]:
    return list(
        Message.objects.select_related("agent", "conversation__visitor")
        .filter(conversation=conversation, seq__gt=after_seq)
        .order_by("seq")
    )
