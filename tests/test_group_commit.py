"""Group commit: many sockets' messages in one transaction, each still exactly once and in order."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chat.models import Conversation, Message
from chat.services.group_commit import GroupCommit, Pending, batch_store
from chat.services.messages import ConversationClosed, message_post

pytestmark = pytest.mark.django_db(transaction=True)


def assigned(visitor, agent) -> Conversation:
    return Conversation.objects.create(
        site=visitor.site, visitor=visitor, status="assigned", assignee=agent
    )


def test_it_stores_many_threads_messages_with_gap_free_sequences(visitor_a, visitor_b, alice):
    conversations = [assigned(visitor_a, alice), assigned(visitor_b, alice)]
    writer = GroupCommit()
    acks: list[tuple[int, int, str]] = []
    failures: list[BaseException] = []

    def sender(n: int) -> None:
        try:
            for i in range(6):
                own = Conversation.objects.get(pk=conversations[(n + i) % 2].pk)
                posted = writer.visitor_post(conversation=own, body="hi", client_id=f"t{n}-{i}")
                assert posted.created
                acks.append((own.pk, posted.message.seq, posted.message.client_id or ""))
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert len(acks) == 48
    for conversation in conversations:
        stored = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("seq", "client_id")
        )
        assert [seq for seq, _ in stored] == list(range(1, 25))
        conversation.refresh_from_db()
        assert conversation.last_seq == 24
        # Each sender was acked with the seq its message was stored under.
        assert sorted((seq, cid) for pk, seq, cid in acks if pk == conversation.pk) == stored


def test_it_answers_a_resend_in_a_batch_with_the_stored_message(visitor_a, visitor_b, alice):
    mine, theirs = assigned(visitor_a, alice), assigned(visitor_b, alice)
    first = message_post(conversation=mine, author="visitor", body="one", client_id="c1")
    batch = [
        Pending(conversation=mine, body="one again", client_id="c1"),
        Pending(conversation=theirs, body="hello", client_id="b1"),
        Pending(conversation=mine, body="two", client_id="c2"),
    ]
    batch_store(batch)
    resend, other, second = (pending.posted for pending in batch)
    assert resend is not None and not resend.created and resend.message.pk == first.message.pk
    assert other is not None and other.created and other.message.seq == 1
    assert second is not None and second.created and second.message.seq == 2
    assert list(Message.objects.filter(conversation=mine).values_list("seq", "body")) == [
        (1, "one"),
        (2, "two"),
    ]


def test_it_refuses_only_the_closed_conversations_message(visitor_a, visitor_b, alice):
    open_one = assigned(visitor_a, alice)
    closed = Conversation.objects.create(site=visitor_b.site, visitor=visitor_b, status="closed")
    batch = [
        Pending(conversation=closed, body="anyone?", client_id="x1"),
        Pending(conversation=open_one, body="hello", client_id="y1"),
    ]
    batch_store(batch)
    assert isinstance(batch[0].error, ConversationClosed) and batch[0].posted is None
    assert batch[1].posted is not None and batch[1].posted.message.seq == 1
    assert not Message.objects.filter(conversation=closed).exists()
    closed.refresh_from_db()
    assert closed.last_seq == 0


def test_it_refuses_only_the_message_for_a_conversation_that_is_gone(visitor_a, visitor_b, alice):
    kept, gone = assigned(visitor_a, alice), assigned(visitor_b, alice)
    Conversation.objects.filter(pk=gone.pk).delete()  # erased while the message was on its way
    batch = [
        Pending(conversation=gone, body="hello?", client_id="g1"),
        Pending(conversation=kept, body="hello", client_id="k1"),
    ]
    batch_store(batch)
    assert isinstance(batch[0].error, Conversation.DoesNotExist) and batch[0].posted is None
    assert batch[1].posted is not None and batch[1].posted.message.seq == 1
    assert list(Message.objects.values_list("conversation_id", "seq", "body")) == [
        (kept.pk, 1, "hello")
    ]
