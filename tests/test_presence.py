"""Agent presence: chosen in the console, kept honest by the console socket's heartbeat."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client as DjangoClient
from django.urls import reverse
from django.utils import timezone

from chat.models import Agent, AgentSocket, Conversation
from chat.services.conversations import conversation_take
from chat.services.presence import agent_status_set, presence_sweep
from tests.conftest import console_for
from tests.queueing import at_console, automatic, queued

pytestmark = pytest.mark.django_db(transaction=True)


async def socket_of(agent: Agent) -> AgentSocket:
    """The agent's socket row, which the console records just after saying it is ready."""
    deadline = time.monotonic() + 10
    while True:
        socket = await database_sync_to_async(AgentSocket.objects.filter(agent=agent).first)()
        if socket is not None or time.monotonic() > deadline:
            assert socket is not None, "the console's connection was never recorded"
            return socket
        await asyncio.sleep(0.02)


async def test_it_records_a_heartbeat_when_the_console_connects_and_pings(alice):
    console = await console_for(alice.user)
    socket = await socket_of(alice)
    await database_sync_to_async(AgentSocket.objects.filter(pk=socket.pk).update)(
        last_seen_at=timezone.now() - timedelta(seconds=50)
    )

    await console.send(type="ping")
    await console.expect("pong")
    socket = await database_sync_to_async(AgentSocket.objects.get)(agent=alice)
    assert timezone.now() - socket.last_seen_at < timedelta(seconds=5)

    await console.close()
    assert not await database_sync_to_async(AgentSocket.objects.filter(agent=alice).exists)()


async def test_it_gives_an_agent_whose_console_connects_online_the_waiting_work(site, alice):
    await database_sync_to_async(automatic)(site)
    await database_sync_to_async(Agent.objects.filter(pk=alice.pk).update)(status="online")
    conversation = await database_sync_to_async(queued)(site)

    console = await console_for(alice.user)  # no live console until now: nothing routed
    update = await console.expect("agent.updated")
    assert update["status"] == "online" and update["assigned"] == 1 and update["capacity"] == 3
    await database_sync_to_async(conversation.refresh_from_db)()
    assert conversation.assignee_id == alice.pk
    await console.close()


def test_it_keeps_an_agent_online_across_a_page_change_but_not_a_closed_laptop(site, alice):
    at_console(alice)
    conversation = queued(site)
    conversation_take(conversation=conversation, agent=alice)
    AgentSocket.objects.filter(agent=alice).delete()  # the last console socket closed
    Agent.objects.filter(pk=alice.pk).update(last_seen_at=timezone.now())

    assert presence_sweep(now=timezone.now() + timedelta(seconds=30)) == 0
    alice.refresh_from_db()
    assert alice.status == "online"

    assert presence_sweep(now=timezone.now() + timedelta(seconds=61)) == 1
    alice.refresh_from_db()
    assert alice.status == "offline"
    conversation.refresh_from_db()
    assert conversation.status == "waiting" and conversation.assignee is None


def test_it_takes_an_agent_with_a_silent_socket_offline_within_a_minute(site, alice):
    at_console(alice, seen=timezone.now() - timedelta(seconds=61))

    assert presence_sweep() == 1
    alice.refresh_from_db()
    assert alice.status == "offline"
    assert not AgentSocket.objects.filter(agent=alice).exists()


def test_it_hands_conversations_back_when_the_agent_goes_offline(site, alice, bob):
    at_console(alice)
    mine = [queued(site, minutes_ago=m) for m in (5, 1)]
    for conversation in mine:
        conversation_take(conversation=conversation, agent=alice)
    queued_at = [Conversation.objects.get(pk=c.pk).queued_at for c in mine]
    automatic(site)
    at_console(bob)

    agent_status_set(agent=alice, status=Agent.Status.OFFLINE)

    # Back in the queue, each keeping its place, and routed on to Bob.
    for conversation, since in zip(mine, queued_at, strict=True):
        conversation.refresh_from_db()
        assert conversation.assignee == bob and conversation.queued_at == since
        note = conversation.messages.get(meta__event="returned")
        assert note.meta["reason"] == "agent_offline"


async def test_it_tells_the_agent_when_a_conversation_is_taken_back(site, alice):
    await database_sync_to_async(at_console)(alice)
    conversation = await database_sync_to_async(queued)(site)
    await database_sync_to_async(conversation_take)(conversation=conversation, agent=alice)
    console = await console_for(alice.user)

    await database_sync_to_async(agent_status_set)(agent=alice, status=Agent.Status.OFFLINE)

    returned = await console.expect("conversation.returned")
    assert returned["conversation_id"] == conversation.pk
    assert returned["reason"] == "agent_offline"
    update = await console.expect("agent.updated", status="offline")
    assert update["assigned"] == 0
    await console.close()


def test_it_sets_the_status_from_the_console_top_bar(site, alice, visitor_a):
    automatic(site)
    at_console(alice, status="offline")
    conversation = queued(site, visitor=visitor_a)
    browser = DjangoClient()
    browser.force_login(alice.user)

    page = browser.get(reverse("console:home"))
    assert b'id="agent-status"' in page.content and b"0 / 3" in page.content

    response = browser.post(reverse("console:status"), {"status": "online"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b'value="online" selected' in response.content and b"1 / 3" in response.content
    alice.refresh_from_db()
    conversation.refresh_from_db()
    assert alice.status == "online" and conversation.assignee == alice

    assert browser.post(reverse("console:status"), {"status": "asleep"}).status_code == 400
    assert browser.get(reverse("console:status")).status_code == 200


def test_it_refuses_the_status_control_to_a_user_without_an_agent_profile(admin):
    browser = DjangoClient()
    browser.force_login(admin)
    assert browser.post(reverse("console:status"), {"status": "online"}).status_code == 404
