"""The "mine" list: counts and unread badges (customer messages after I last looked), live."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation
from chat.services.conversations import conversation_take, visitor_message_receive
from chat.services.inbox import conversation_seen
from tests.conftest import console_for
from tests.queueing import queued

pytestmark = pytest.mark.django_db(transaction=True)


def taken(site, agent, *, name: str, messages: int = 1) -> Conversation:
    conversation = queued(site, name=name)
    for n in range(messages):
        visitor_message_receive(conversation=conversation, body=f"msg {n}", client_id=f"{name}{n}")
    conversation_take(conversation=conversation, agent=agent)
    return conversation


def unread_badges(page: str) -> dict[int, int]:
    return {
        int(pk): int(n)
        for pk, n in re.findall(r'data-conversation-id="(\d+)" data-unread="(\d+)"', page)
    }


def test_it_counts_customer_messages_i_have_not_seen(client, site, alice, support):
    ann = taken(site, alice, name="Ann", messages=2)
    ben = taken(site, alice, name="Ben", messages=1)
    client.force_login(alice.user)

    page = client.get("/console/queue/").content.decode()
    assert unread_badges(page) == {ann.pk: 2, ben.pk: 1}
    assert 'Mine <span class="count">(2)</span>' in page
    assert 'data-mine-unread="3"' in page

    client.get(f"/console/c/{ann.pk}/")  # loading the page alone changes nothing...
    assert unread_badges(client.get("/console/queue/").content.decode())[ann.pk] == 2
    # ...its script reports that it was in front of the agent: then it is read.
    assert client.post(f"/console/c/{ann.pk}/seen/").status_code == 204
    assert unread_badges(client.get("/console/queue/").content.decode()) == {ann.pk: 0, ben.pk: 1}

    visitor_message_receive(conversation=ann, body="Hello again?", client_id="again")
    visitor_message_receive(conversation=ann, body="Anyone?", client_id="anyone")
    assert unread_badges(client.get("/console/queue/").content.decode())[ann.pk] == 2
    assert client.post(f"/console/c/{ann.pk}/seen/").status_code == 204
    assert unread_badges(client.get("/console/queue/").content.decode())[ann.pk] == 0


def test_only_customer_messages_count_and_reading_is_per_agent(site, alice, bob, support):
    conversation = taken(site, alice, name="Ann", messages=1)
    # Bob reading it (he may see Acme's shared queue) does not read it for Alice.
    assert conversation_seen(conversation=conversation, agent=bob) is True
    from chat.services.lists import queue_lists

    mine = queue_lists(user=alice.user).mine
    assert [(c.pk, c.unread) for c in mine] == [(conversation.pk, 1)]  # type: ignore[attr-defined]
    conversation_seen(conversation=conversation, agent=alice)
    from chat.services.conversations import agent_message_post

    # Agent (and system) messages are never unread.
    agent_message_post(conversation=conversation, agent=alice, body="Hi!", client_id="a1")
    assert queue_lists(user=alice.user).mine[0].unread == 0  # type: ignore[attr-defined]
    # Reading again clears nothing new and says so.
    assert conversation_seen(conversation=conversation, agent=alice) is False


async def test_a_customer_message_tells_only_the_assignee_live(site, alice, bob, support):
    conversation = await database_sync_to_async(taken)(site, alice, name="Ann")
    alice_console = await console_for(alice.user)
    bob_console = await console_for(bob.user)
    await database_sync_to_async(visitor_message_receive)(
        conversation=conversation, body="Are you there?", client_id="late"
    )
    changed = await alice_console.expect("inbox.changed")
    assert changed["conversation_id"] == conversation.pk
    assert not [f for f in await bob_console.drain() if f["type"] == "inbox.changed"]
    await alice_console.close()
    await bob_console.close()
