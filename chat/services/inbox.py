"""What an agent has read, and telling their console that their own list changed.

Unread means: customer messages after the last one the agent saw in the conversation
(``ConversationView.seen_seq``). This module imports no other service, so any can call it.
"""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from chat.models import Agent, Conversation, ConversationQuerySet, ConversationView, Message
from chat.protocol import InboxChanged
from chat.realtime import agent_group, send_after_commit


def conversation_seen(*, conversation: Conversation, agent: Agent, seq: int | None = None) -> bool:
    """The agent has read the conversation up to ``seq`` (default: its latest message).
    True when that cleared something unread; then their consoles hear ``inbox.changed``."""
    if seq is None:
        seq = Conversation.objects.values_list("last_seq", flat=True).get(pk=conversation.pk)
    view, created = ConversationView.objects.get_or_create(
        agent=agent, conversation=conversation, defaults={"seen_seq": seq}
    )
    before = 0 if created else view.seen_seq
    if not created and seq > view.seen_seq:
        ConversationView.objects.filter(pk=view.pk, seen_seq__lt=seq).update(seen_seq=seq)
    cleared = Message.objects.filter(
        conversation=conversation,
        author=Message.Author.VISITOR,
        seq__gt=before,
        seq__lte=seq,
    ).exists()
    if cleared:
        inbox_notify(agent_id=agent.pk, conversation_id=conversation.pk)
    return cleared


def inbox_notify(*, agent_id: int | None, conversation_id: int) -> None:
    """Tell one agent's consoles (after commit) that their "mine" list changed."""
    if agent_id is not None:
        send_after_commit([agent_group(agent_id)], InboxChanged(conversation_id=conversation_id))


def with_unread(conversations: ConversationQuerySet, agent: Agent | None) -> ConversationQuerySet:
    """Annotate ``unread``: the agent's unread customer messages (one subquery, any length)."""
    if agent is None:
        return conversations.annotate(unread=Value(0, output_field=IntegerField()))
    seen = ConversationView.objects.filter(agent=agent, conversation=OuterRef("conversation"))
    unread = (
        Message.objects.filter(conversation=OuterRef("pk"), author=Message.Author.VISITOR)
        .filter(seq__gt=Coalesce(Subquery(seen.values("seen_seq")[:1]), 0))
        .order_by()
        .values("conversation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return conversations.annotate(unread=Coalesce(Subquery(unread, output_field=IntegerField()), 0))
