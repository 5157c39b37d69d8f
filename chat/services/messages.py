"""Storing messages: one sequence number each, committed before anyone hears of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from chat.models import Agent, Conversation, Message
from chat.realtime import conversation_groups, send_after_commit
from chat.services.frames import message_frame


@dataclass(frozen=True)
class Posted:
    message: Message
    created: bool  # False when ``client_id`` had been stored before (a resend)


class ConversationClosed(Exception):
    """``message_post(require_open=True)`` found the conversation closed; nothing was stored."""


def message_post(
    *,
    conversation: Conversation,
    author: Message.Author,
    body: str,
    client_id: str | None = None,
    agent: Agent | None = None,
    meta: dict[str, Any] | None = None,
    require_open: bool = False,
) -> Posted:
    """Store a message under the conversation's next ``seq`` and broadcast it after commit.

    Sending the same ``client_id`` again returns the stored message instead of a copy.
    ``conversation.last_seq``, ``.status`` and ``.assignee_id`` come back as the database
    has them now; with ``require_open``, a closed conversation stores nothing and raises
    ``ConversationClosed``.
    Outside a transaction this is one: the sequence number, the row and the commit.
    """
    try:
        with transaction.atomic():
            message = _insert(conversation, author, body, client_id, agent, meta or {})
            if require_open and not conversation.is_open:
                raise ConversationClosed
            if author == Message.Author.AGENT:
                _first_response(conversation, message)
    except IntegrityError:
        # A resend (or two sockets racing with the same client_id): the first one stands.
        # Insert first and look up only then: resends are rare, every message pays a lookup.
        existing = _by_client_id(conversation, author, client_id) if client_id else None
        if existing is None:
            raise
        return message_resent(existing)
    return Posted(message, created=True)


def message_resent(message: Message) -> Posted:
    """A stored message sent again. Its sender never heard the ack, and a server that stops
    between commit and broadcast loses the broadcast with it: so everyone hears the message
    again (clients drop a seq they hold). Nothing is stored."""
    send_after_commit(conversation_groups(message.conversation_id), message_frame(message))
    return Posted(message, created=False)


def _insert(
    conversation: Conversation,
    author: Message.Author,
    body: str,
    client_id: str | None,
    agent: Agent | None,
    meta: dict[str, Any],
) -> Message:
    taken = Conversation.objects.seq_take(conversation.pk)
    if taken is None:
        raise Conversation.DoesNotExist
    conversation.last_seq, conversation.status, conversation.assignee_id = taken
    message = Message.objects.create(
        conversation=conversation,
        seq=conversation.last_seq,
        author=author,
        agent=agent,
        body=body,
        client_id=client_id,
        meta=meta,
    )
    send_after_commit(conversation_groups(conversation.pk), message_frame(message))
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
