"""Read receipts: how far each side of a conversation has read."""

from __future__ import annotations

from typing import Literal

from django.db import transaction

from chat.models import Conversation
from chat.protocol import ReceiptUpdated
from chat.realtime import conversation_groups, send_after_commit

Reader = Literal["visitor", "agent"]


def conversation_read(*, conversation: Conversation, reader: Reader, seq: int) -> bool:
    """``reader`` has seen every message up to ``seq``; tell both sides after commit.

    Receipts only move forward, and never past the last message; False when nothing moved.
    """
    field = "visitor_read_seq" if reader == "visitor" else "agent_read_seq"
    with transaction.atomic():
        last_seq = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation.pk)
        seq = min(seq, last_seq)
        moved = Conversation.objects.filter(pk=conversation.pk, **{f"{field}__lt": seq}).update(
            **{field: seq}
        )
        if moved:
            setattr(conversation, field, seq)
            send_after_commit(
                conversation_groups(conversation.pk),
                ReceiptUpdated(conversation_id=conversation.pk, reader=reader, seq=seq),
            )
    return bool(moved)
