"""Gap-free sync: acks after commit, exactly the missed messages on reconnect, no duplicates."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message
from chat.services.messages import message_post
from tests.conftest import console_for, widget_for

pytestmark = pytest.mark.django_db(transaction=True)


def stored(conversation_id: int) -> list[tuple[int, str]]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "body")
    )


async def start_with_agent(visitor, agent) -> int:
    def create() -> int:
        conversation = Conversation.objects.create(
            site=visitor.site, visitor=visitor, status="assigned", assignee=agent
        )
        return conversation.pk

    return await database_sync_to_async(create)()


async def test_it_acks_with_the_committed_sequence_number(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    widget = await widget_for(visitor_a)
    for n in range(1, 4):
        await widget.send(
            type="message.create",
            client_id=f"c{n}",
            body=f"msg {n}",
            conversation_id=conversation_id,
        )
        ack = await widget.expect("message.ack", client_id=f"c{n}")
        assert ack["seq"] == n
        assert (n, f"msg {n}") in await database_sync_to_async(stored)(conversation_id)
    await widget.close()


async def test_it_stores_a_resent_client_id_once_and_acks_it_again(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    widget = await widget_for(visitor_a)
    for _ in range(3):
        await widget.send(
            type="message.create", client_id="same", body="hello", conversation_id=conversation_id
        )
        assert (await widget.expect("message.ack", client_id="same"))["seq"] == 1
    assert await database_sync_to_async(stored)(conversation_id) == [(1, "hello")]
    await widget.close()


async def test_it_tells_everyone_again_about_a_resent_message(site, visitor_a, alice):
    # The ack and the broadcast are lost together when a server stops right after the commit;
    # the sender's resend is then the others' only news of the message.
    conversation_id = await start_with_agent(visitor_a, alice)
    console = await console_for(alice.user)
    await console.send(type="conversation.sync", conversation_id=conversation_id, after_seq=0)
    await console.expect("sync.done")
    widget = await widget_for(visitor_a)
    for attempt in range(2):
        await widget.send(
            type="message.create", client_id="lost", body="hello", conversation_id=conversation_id
        )
        assert (await widget.expect("message.ack", client_id="lost"))["seq"] == 1
        heard = await console.expect("message.created", client_id="lost")
        assert (heard["seq"], heard["body"], heard["author"]) == (1, "hello", "visitor")
        echo = await widget.expect("message.created", client_id="lost")
        assert echo["seq"] == 1, f"attempt {attempt}"
    assert await database_sync_to_async(stored)(conversation_id) == [(1, "hello")]
    await widget.close()
    await console.close()


async def test_it_sends_exactly_the_missed_messages_in_order_on_reconnect(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation_id, after_seq=0)
    await widget.expect("sync.done", last_seq=0)
    await widget.send(
        type="message.create", client_id="c1", body="one", conversation_id=conversation_id
    )
    await widget.expect("message.ack")
    await widget.close()

    def agent_writes_while_visitor_is_away() -> None:
        conversation = Conversation.objects.get(pk=conversation_id)
        for body in ["two", "three", "four"]:
            message_post(
                conversation=conversation, author=Message.Author.AGENT, body=body, agent=alice
            )

    await database_sync_to_async(agent_writes_while_visitor_is_away)()

    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation_id, after_seq=1)
    frames = await widget.drain()
    done = next(i for i, f in enumerate(frames) if f["type"] == "sync.done")
    assert frames[done] == {"type": "sync.done", "conversation_id": conversation_id, "last_seq": 4}
    # The replay, before sync.done, is exactly the missed messages in order. (A live frame
    # still in flight may follow it; clients drop seqs they already have.)
    replayed = [(f["seq"], f["body"]) for f in frames[:done] if f["type"] == "message.created"]
    assert replayed == [(2, "two"), (3, "three"), (4, "four")]

    # Live messages follow the replay.
    await database_sync_to_async(
        lambda: message_post(
            conversation=Conversation.objects.get(pk=conversation_id),
            author=Message.Author.AGENT,
            body="five",
            agent=alice,
        )
    )()
    live = await widget.expect("message.created")
    assert (live["seq"], live["body"]) == (5, "five")
    await widget.close()


async def test_it_gives_the_console_the_same_gap_free_sync(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    console = await console_for(alice.user)
    for n in range(1, 3):
        await console.send(
            type="message.create",
            conversation_id=conversation_id,
            client_id=f"a{n}",
            body=f"reply {n}",
        )
        await console.expect("message.ack", client_id=f"a{n}")
    await console.send(
        type="message.create", conversation_id=conversation_id, client_id="a1", body="reply 1"
    )
    assert (await console.expect("message.ack", client_id="a1"))["seq"] == 1
    await console.close()

    console = await console_for(alice.user)
    await console.send(type="conversation.sync", conversation_id=conversation_id, after_seq=1)
    frames = await console.drain()
    done = next(i for i, f in enumerate(frames) if f["type"] == "sync.done")
    assert [(f["seq"], f["body"]) for f in frames[:done] if f["type"] == "message.created"] == [
        (2, "reply 2")
    ]
    await console.close()


async def test_it_restores_history_for_a_returning_visitor(site, visitor_a):
    widget = await widget_for(visitor_a)
    await widget.send(type="message.create", client_id="c1", body="How long does shipping take?")
    ack = await widget.expect("message.ack")
    await widget.expect("message.created", author="bot")
    await widget.close()

    widget = await widget_for(visitor_a)
    # session.ready (consumed by widget_for) named the conversation; syncing from 0 replays it.
    await widget.send(type="conversation.sync", conversation_id=ack["conversation_id"], after_seq=0)
    frames = await widget.drain()
    assert [f["author"] for f in frames if f["type"] == "message.created"] == ["visitor", "bot"]
    await widget.close()


async def close(conversation_id: int) -> None:
    from chat.services.conversations import conversation_close

    await database_sync_to_async(
        lambda: conversation_close(
            conversation=Conversation.objects.get(pk=conversation_id), by=None
        )
    )()


async def test_it_does_not_reopen_or_restart_a_closed_conversation_for_a_resend(
    site, visitor_a, alice
):
    conversation_id = await start_with_agent(visitor_a, alice)
    widget = await widget_for(visitor_a)
    await widget.send(
        type="message.create", client_id="c1", body="hi", conversation_id=conversation_id
    )
    await widget.expect("message.ack", client_id="c1")
    await close(conversation_id)

    await widget.send(
        type="message.create", client_id="c1", body="hi", conversation_id=conversation_id
    )
    assert (await widget.expect("message.ack", client_id="c1"))["seq"] == 1
    await widget.send(type="message.create", client_id="c1", body="hi")  # no conversation_id
    ack = await widget.expect("message.ack", client_id="c1")
    assert (ack["conversation_id"], ack["seq"]) == (conversation_id, 1)

    def state() -> tuple[str, int]:
        return (
            Conversation.objects.get(pk=conversation_id).status,
            Conversation.objects.filter(visitor=visitor_a).count(),
        )

    assert await database_sync_to_async(state)() == ("closed", 1)
    await widget.close()


async def test_it_keeps_visitor_and_agent_client_ids_apart(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    console = await console_for(alice.user)
    widget = await widget_for(visitor_a)
    await console.send(
        type="message.create", conversation_id=conversation_id, client_id="x", body="A"
    )
    await console.expect("message.ack", client_id="x")
    await widget.send(
        type="message.create", conversation_id=conversation_id, client_id="x", body="V"
    )
    assert (await widget.expect("message.ack", client_id="x"))["seq"] == 2
    assert await database_sync_to_async(stored)(conversation_id) == [(1, "A"), (2, "V")]
    await console.close()
    await widget.close()


async def test_it_reopens_a_closed_conversation_as_the_replying_agents(site, visitor_a, alice):
    conversation_id = await start_with_agent(visitor_a, alice)
    await close(conversation_id)
    console = await console_for(alice.user)
    await console.send(
        type="message.create", conversation_id=conversation_id, client_id="a", body="One more thing"
    )
    await console.expect("message.ack", client_id="a")
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert (conversation.status, conversation.assignee_id) == ("assigned", alice.pk)
    await console.close()
