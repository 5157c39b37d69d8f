"""Read receipts both ways: ``message.read`` moves a side's mark forward and tells the other."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation
from chat.services.conversations import agent_message_post, visitor_message_receive
from tests.conftest import console_for, widget_for

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def chat_with_messages(site, visitor, agent) -> Conversation:
    """Ann wrote twice (seq 1, 2), Alice took it (3: system) and answered (4)."""
    chat = Conversation.objects.create(site=site, visitor=visitor, status="waiting")
    visitor_message_receive(conversation=chat, body="Where is my parcel?", client_id="v1")
    visitor_message_receive(conversation=chat, body="Order 1234", client_id="v2")
    agent_message_post(conversation=chat, agent=agent, body="Looking now", client_id="a1")
    chat.refresh_from_db()
    return chat


@database_sync_to_async
def read_marks(chat: Conversation) -> tuple[int, int]:
    chat.refresh_from_db()
    return chat.visitor_read_seq, chat.agent_read_seq


async def subscribed(widget, console, chat):
    await widget.send(type="conversation.sync", conversation_id=chat.pk)
    await widget.expect("sync.done")
    await console.send(type="conversation.sync", conversation_id=chat.pk)
    await console.expect("sync.done")


async def test_it_tells_the_visitor_when_an_agent_has_read_their_messages(site, visitor_a, alice):
    chat = await chat_with_messages(site, visitor_a, alice)
    widget, console = await widget_for(visitor_a), await console_for(alice.user)
    await subscribed(widget, console, chat)

    await console.send(type="message.read", conversation_id=chat.pk, seq=2)

    receipt = await widget.expect("receipt.updated")
    assert receipt == {
        "type": "receipt.updated",
        "conversation_id": chat.pk,
        "reader": "agent",
        "seq": 2,
    }
    assert await read_marks(chat) == (0, 2)
    await widget.close()
    await console.close()


async def test_it_tells_the_agent_when_the_visitor_has_read_their_reply(site, visitor_a, alice):
    chat = await chat_with_messages(site, visitor_a, alice)
    widget, console = await widget_for(visitor_a), await console_for(alice.user)
    await subscribed(widget, console, chat)

    await widget.send(type="message.read", conversation_id=chat.pk, seq=4)

    receipt = await console.expect("receipt.updated")
    assert (receipt["reader"], receipt["seq"]) == ("visitor", 4)
    assert await read_marks(chat) == (4, 0)
    await widget.close()
    await console.close()


async def test_it_shows_both_marks_to_whoever_syncs_later(site, visitor_a, alice):
    chat = await chat_with_messages(site, visitor_a, alice)
    widget, console = await widget_for(visitor_a), await console_for(alice.user)
    await subscribed(widget, console, chat)
    await widget.send(type="message.read", conversation_id=chat.pk, seq=4)
    await console.send(type="message.read", conversation_id=chat.pk, seq=2)
    await widget.expect("receipt.updated", reader="agent")
    await widget.close()

    again = await widget_for(visitor_a)
    await again.send(type="conversation.sync", conversation_id=chat.pk, after_seq=4)
    updated = await again.expect("conversation.updated")
    assert (updated["visitor_read_seq"], updated["agent_read_seq"]) == (4, 2)
    await again.close()
    await console.close()


async def test_it_moves_receipts_only_forward_and_never_past_the_last_message(
    site, visitor_a, alice
):
    chat = await chat_with_messages(site, visitor_a, alice)
    widget, console = await widget_for(visitor_a), await console_for(alice.user)
    await subscribed(widget, console, chat)

    await widget.send(type="message.read", conversation_id=chat.pk, seq=999)
    assert (await console.expect("receipt.updated"))["seq"] == 4  # the last message
    await widget.send(type="message.read", conversation_id=chat.pk, seq=1)
    await widget.send(type="message.read", conversation_id=chat.pk, seq=4)
    await widget.send(type="ping")
    await widget.expect("pong")
    assert [f for f in await console.drain() if f["type"] == "receipt.updated"] == []
    assert await read_marks(chat) == (4, 0)
    await widget.close()
    await console.close()


async def test_it_refuses_receipts_for_conversations_out_of_reach(
    site, visitor_a, visitor_b, alice, charlie
):
    chat = await chat_with_messages(site, visitor_a, alice)
    stranger = await widget_for(visitor_b)
    await stranger.send(type="message.read", conversation_id=chat.pk, seq=4)
    assert (await stranger.expect("error"))["code"] == "not_found"
    outsider = await console_for(charlie.user)
    await outsider.send(type="message.read", conversation_id=chat.pk, seq=4)
    assert (await outsider.expect("error"))["code"] == "not_found"
    assert await read_marks(chat) == (0, 0)
    await stranger.close()
    await outsider.close()


async def test_it_does_not_count_an_administrator_browsing_as_a_reader(
    site, visitor_a, alice, admin
):
    chat = await chat_with_messages(site, visitor_a, alice)
    console = await console_for(admin)
    await console.send(type="message.read", conversation_id=chat.pk, seq=4)
    await console.send(type="ping")
    await console.expect("pong")
    assert await read_marks(chat) == (0, 0)
    await console.close()


@pytest.mark.parametrize("seq", [-1, "3", 2**31 + 1, None])
async def test_it_answers_a_malformed_receipt_with_invalid_frame(site, visitor_a, alice, seq):
    chat = await chat_with_messages(site, visitor_a, alice)
    widget = await widget_for(visitor_a)
    await widget.send(type="message.read", conversation_id=chat.pk, seq=seq)
    assert (await widget.expect("error"))["code"] == "invalid_frame"
    await widget.close()
