"""Internal notes: written by agents for agents, broadcast to console sockets only.

A note is never a ``Message``: it has no ``seq`` and lives in its own table, so the widget's
socket, its history sync, the bot and every customer-facing transcript cannot carry one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from chat.models import Agent, Conversation, Note
from chat.protocol import NoteOut
from chat.realtime import agents_group, send_after_commit
from chat.services.conversations import Conflict


@dataclass(frozen=True)
class NoteAdded:
    note: Note
    created: bool  # False when ``client_id`` had been stored before (a resend)


def note_add(
    *,
    conversation: Conversation,
    agent: Agent | None,
    body: str,
    client_id: str | None = None,
    meta: dict[str, Any] | None = None,
) -> NoteAdded:
    """Store a note after the conversation's latest message and tell its consoles."""
    body = body.replace("\x00", "")  # PostgreSQL refuses NUL in text
    if not body.strip():
        raise Conflict(_("The note is empty."))
    if client_id is not None:
        existing = _by_client_id(conversation, client_id)
        if existing is not None:
            return NoteAdded(existing, created=False)
    try:
        with transaction.atomic():
            after_seq = Conversation.objects.values_list("last_seq", flat=True).get(
                pk=conversation.pk
            )
            note = Note.objects.create(
                conversation=conversation,
                agent=agent,
                body=body,
                client_id=client_id,
                after_seq=after_seq,
                meta=meta or {},
            )
            send_after_commit([agents_group(conversation.pk)], note_frame(note))
    except IntegrityError:
        existing = _by_client_id(conversation, client_id) if client_id else None
        if existing is None:
            raise
        return NoteAdded(existing, created=False)
    return NoteAdded(note, created=True)


def notes_from(conversation: Conversation, after_seq: int) -> list[Note]:
    """Notes written after the message ``after_seq`` (a console catching up)."""
    return list(
        Note.objects.select_related("agent")
        .filter(conversation=conversation, after_seq__gte=after_seq)
        .order_by("after_seq", "created_at", "id")
    )


def note_frame(note: Note) -> NoteOut:
    return NoteOut(
        conversation_id=note.conversation_id,
        note_id=note.pk,
        after_seq=note.after_seq,
        author_name=note.agent.display_name if note.agent else "",
        body=note.body,
        client_id=note.client_id,
        created_at=note.created_at.isoformat(),
    )


def _by_client_id(conversation: Conversation, client_id: str) -> Note | None:
    return (
        Note.objects.select_related("agent")
        .filter(conversation=conversation, client_id=client_id)
        .first()
    )
