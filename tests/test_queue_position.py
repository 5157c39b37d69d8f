"""What a waiting customer sees: their place in line, an honest wait, or nobody online."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.models import Agent, Conversation, Message, Visitor
from chat.services.conversations import conversation_take
from chat.services.queue import DEFAULT_HANDLE_SECONDS, median_handle_seconds, queue_places
from tests.conftest import widget_connect, widget_for
from tests.queueing import at_console, queued

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_moves_a_second_waiting_customer_up_when_the_first_is_taken(
    site, alice, visitor_a, visitor_b
):
    await database_sync_to_async(at_console)(alice)  # capacity 3, no history: 5 min each
    first = await database_sync_to_async(queued)(site, visitor=visitor_a, minutes_ago=2)
    second = await database_sync_to_async(queued)(site, visitor=visitor_b, minutes_ago=1)
    widget = await widget_for(visitor_b)

    await widget.send(type="conversation.sync", conversation_id=second.pk, after_seq=0)
    place = await widget.expect("queue.position")
    assert place == {
        "type": "queue.position",
        "conversation_id": second.pk,
        "position": 2,
        "estimated_wait_seconds": 200,  # 2 × 300 s over 3 places
        "agents_online": True,
    }

    await database_sync_to_async(conversation_take)(conversation=first, agent=alice)
    place = await widget.expect("queue.position")
    assert place["position"] == 1 and place["estimated_wait_seconds"] == 100
    await widget.close()


async def test_it_tells_a_new_waiting_customer_their_place_when_the_site_has_no_bot(site):
    await database_sync_to_async(
        lambda: site.__class__.objects.filter(pk=site.pk).update(bot_enabled=False)
    )()
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")

    await widget.send(type="message.create", client_id="c1", body="Hello?")
    ack = await widget.expect("message.ack")
    place = await widget.expect("queue.position", conversation_id=ack["conversation_id"])
    assert place["position"] == 1
    assert place["agents_online"] is False and place["estimated_wait_seconds"] is None
    await widget.close()


def test_it_counts_only_the_conversations_the_same_agents_would_answer(site, support, sales):
    support_first = queued(site, team=support, minutes_ago=5)
    sales_first = queued(site, team=sales, minutes_ago=4)
    anyone = queued(site, minutes_ago=3)
    support_second = queued(site, team=support, minutes_ago=2)
    vip = queued(site, team=sales, priority=Conversation.Priority.HIGH, minutes_ago=1)

    places = {p.conversation_id: p.position for p in queue_places(site_id=site.pk)}

    assert places == {
        vip.pk: 1,
        support_first.pk: 1,
        sales_first.pk: 2,  # behind the VIP
        anyone.pk: 4,  # anyone's work: behind everyone
        support_second.pk: 3,  # behind Support's first and the team-less one
    }


def test_it_estimates_the_wait_from_recent_handle_times(site, alice, bob):
    assert median_handle_seconds(site_id=site.pk) == DEFAULT_HANDLE_SECONDS
    now = timezone.now()
    for minutes in (1, 2, 10):
        Conversation.objects.create(
            site=site,
            visitor=Visitor.objects.create(site=site),
            status="closed",
            assigned_at=now - timedelta(minutes=minutes),
            closed_at=now,
        )
    assert median_handle_seconds(site_id=site.pk) == 120

    at_console(alice)
    at_console(bob, status="away")  # away agents answer nobody new
    Agent.objects.filter(pk=alice.pk).update(capacity=2)
    queued(site, minutes_ago=2)
    second = queued(site, minutes_ago=1)

    place = next(p for p in queue_places(site_id=site.pk) if p.conversation_id == second.pk)
    assert place.position == 2 and place.estimated_wait_seconds == 120  # 2 × 120 s / 2


async def test_it_stores_the_address_of_a_customer_who_leaves_a_message(site, visitor_a):
    conversation = await database_sync_to_async(queued)(site, visitor=visitor_a)
    widget = await widget_for(visitor_a)
    await widget.send(type="conversation.sync", conversation_id=conversation.pk, after_seq=0)
    place = await widget.expect("queue.position")
    assert place["agents_online"] is False  # the widget offers the offline form

    await widget.send(type="visitor.update", email="ann@example.com", name="Ann Lee")
    updated = await widget.expect("visitor.updated")
    assert updated == {"type": "visitor.updated", "email": "ann@example.com", "name": "Ann Lee"}
    note = await widget.expect("message.created", author="system")
    assert "ann@example.com" in note["body"]

    await database_sync_to_async(visitor_a.refresh_from_db)()
    assert visitor_a.email == "ann@example.com" and visitor_a.name == "Ann Lee"
    await database_sync_to_async(conversation.refresh_from_db)()
    # Still in the queue, as an offline message, ahead of customers we cannot write to.
    assert conversation.status == "waiting" and conversation.priority == 1
    event = await database_sync_to_async(
        lambda: Message.objects.get(conversation=conversation, author="system").meta
    )()
    assert event == {"event": "offline_message", "email": "ann@example.com"}
    await widget.close()


async def test_it_refuses_an_address_that_is_not_one(site, visitor_a):
    widget = await widget_for(visitor_a)
    await widget.send(type="visitor.update", email="not an address")
    error = await widget.expect("error")
    assert error["code"] == "invalid_frame"
    await database_sync_to_async(visitor_a.refresh_from_db)()
    assert visitor_a.email == ""
    await widget.close()


async def test_it_starts_the_conversation_for_the_team_the_visitor_chose(site, sales, charlie):
    widget, _, _ = await widget_connect(site)
    await widget.expect("session.ready")
    await widget.send(type="message.create", client_id="c1", body="Prices?", team_id=sales.pk)
    ack = await widget.expect("message.ack")
    team_id = await database_sync_to_async(
        lambda: Conversation.objects.get(pk=ack["conversation_id"]).team_id
    )()
    assert team_id == sales.pk

    other_team = await database_sync_to_async(lambda: charlie.teams.get().pk)()
    stranger, _, _ = await widget_connect(site)
    await stranger.expect("session.ready")
    await stranger.send(type="message.create", client_id="c1", body="Hi", team_id=other_team)
    ack = await stranger.expect("message.ack")
    team_id = await database_sync_to_async(
        lambda: Conversation.objects.get(pk=ack["conversation_id"]).team_id
    )()
    assert team_id is None  # another company's team: no choice at all
    await widget.close()
    await stranger.close()
