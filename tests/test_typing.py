"""Typing indicators both ways: only the other side hears, by name, at most once a second."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation
from tests.conftest import console_for, widget_for

pytestmark = pytest.mark.django_db(transaction=True)


async def both_sides(site, visitor, user):
    chat = await database_sync_to_async(Conversation.objects.create)(
        site=site, visitor=visitor, status="waiting"
    )
    widget, console = await widget_for(visitor), await console_for(user)
    for client in (widget, console):
        await client.send(type="conversation.sync", conversation_id=chat.pk)
        await client.expect("sync.done")
    return chat, widget, console


def typing_frames(frames):
    return [f for f in frames if f["type"] == "typing.started"]


async def test_it_tells_the_agent_the_customer_is_typing(site, visitor_a, alice):
    chat, widget, console = await both_sides(site, visitor_a, alice.user)

    await widget.send(type="typing.start", conversation_id=chat.pk)

    assert await console.expect("typing.started") == {
        "type": "typing.started",
        "conversation_id": chat.pk,
        "author": "visitor",
        "name": "Ann",
    }
    assert typing_frames(await widget.drain()) == []  # nobody hears themselves
    await widget.close()
    await console.close()


async def test_it_tells_the_customer_which_agent_is_typing(site, visitor_a, alice):
    chat, widget, console = await both_sides(site, visitor_a, alice.user)

    await console.send(type="typing.start", conversation_id=chat.pk)

    typing = await widget.expect("typing.started")
    assert (typing["author"], typing["name"]) == ("agent", "Alice")
    assert typing_frames(await console.drain()) == []
    await widget.close()
    await console.close()


async def test_it_forwards_at_most_one_typing_frame_a_second(site, visitor_a, alice):
    chat, widget, console = await both_sides(site, visitor_a, alice.user)

    for _ in range(5):
        await widget.send(type="typing.start", conversation_id=chat.pk)
    await widget.send(type="ping")
    await widget.expect("pong")

    assert len(typing_frames(await console.drain())) == 1
    await widget.close()
    await console.close()


async def test_it_keeps_typing_inside_the_conversation(site, visitor_a, visitor_b, alice):
    chat, widget, console = await both_sides(site, visitor_a, alice.user)
    stranger = await widget_for(visitor_b)

    await stranger.send(type="typing.start", conversation_id=chat.pk)

    assert (await stranger.expect("error"))["code"] == "not_found"
    assert typing_frames(await console.drain()) == []
    for client in (widget, console, stranger):
        await client.close()
