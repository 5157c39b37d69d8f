"""Automatic routing: the right agent gets the right conversation, exactly once, and a
conversation nobody answers goes back to the queue."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chat.models import Agent, Conversation, Message
from chat.services.conversations import (
    agent_message_post,
    conversation_close,
    conversation_handoff,
    conversation_take,
)
from chat.services.presence import agent_status_set
from chat.services.routing import reassign_if_unanswered, reassign_overdue, route_site
from tests.conftest import make_agent
from tests.queueing import at_console, automatic, queued

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dave(support):
    """A second Support agent, so choosing between two agents of one team is possible."""
    return make_agent("dave", "Dave", [support])


def assignee(conversation: Conversation) -> Agent | None:
    conversation.refresh_from_db()
    return conversation.assignee


def test_it_gives_a_conversation_to_an_online_agent_of_its_team(site, support, alice, bob):
    automatic(site)
    at_console(alice)
    at_console(bob)
    conversation = queued(site, team=support)

    assert route_site(site_id=site.pk) == [(conversation.pk, alice.pk)]
    conversation.refresh_from_db()
    assert conversation.status == "assigned" and conversation.assignee == alice


def test_it_gives_a_conversation_without_a_team_to_any_team_of_the_site(site, bob):
    automatic(site)
    at_console(bob)
    conversation = queued(site)

    route_site(site_id=site.pk)
    assert assignee(conversation) == bob


def test_it_prefers_the_agent_with_the_most_free_capacity(site, support, alice, dave):
    automatic(site)
    at_console(alice)
    at_console(dave)
    conversation_take(conversation=queued(site, team=support), agent=dave)
    conversation = queued(site, team=support)

    route_site(site_id=site.pk)
    assert assignee(conversation) == alice


def test_it_breaks_ties_in_favour_of_the_agent_who_waited_longest(site, support, alice, dave):
    automatic(site)
    at_console(alice)
    at_console(dave)
    now = timezone.now()
    Agent.objects.filter(pk=alice.pk).update(last_assigned_at=now - timedelta(minutes=1))
    Agent.objects.filter(pk=dave.pk).update(last_assigned_at=now - timedelta(minutes=9))
    conversation = queued(site, team=support)

    route_site(site_id=site.pk)
    assert assignee(conversation) == dave
    dave.refresh_from_db()
    assert dave.last_assigned_at > now  # and now Alice is next


def test_it_leaves_the_conversation_waiting_when_nobody_is_available(site, support, alice, bob):
    automatic(site)
    at_console(alice, status="away")  # away: keeps her chats, gets no new ones
    at_console(bob)  # online, but Sales
    silent = make_agent("erin", "Erin", [support])
    at_console(silent, seen=timezone.now() - timedelta(seconds=90))  # laptop closed
    conversation = queued(site, team=support)

    assert route_site(site_id=site.pk) == []
    conversation.refresh_from_db()
    assert conversation.status == "waiting" and conversation.assignee is None


def test_it_does_not_route_on_a_manual_site(site, alice):
    at_console(alice)
    conversation = queued(site)

    assert route_site(site_id=site.pk) == []
    assert assignee(conversation) is None


def test_it_gives_an_agent_coming_online_the_oldest_highest_priority_conversation(site, alice):
    automatic(site)
    Agent.objects.filter(pk=alice.pk).update(capacity=1)
    oldest = queued(site, minutes_ago=10)
    vip = queued(site, priority=Conversation.Priority.HIGH, minutes_ago=2)
    older_vip = queued(site, priority=Conversation.Priority.HIGH, minutes_ago=5)
    at_console(alice, status="away")

    agent_status_set(agent=alice, status=Agent.Status.ONLINE)

    assert assignee(older_vip) == alice
    assert assignee(vip) is None and assignee(oldest) is None


def test_it_routes_a_conversation_handed_off_by_the_bot(site, alice, visitor_a):
    automatic(site)
    at_console(alice)
    conversation = Conversation.objects.create(site=site, visitor=visitor_a)

    conversation_handoff(conversation=conversation, reason="asked_for_human")

    assert assignee(conversation) == alice
    events = list(conversation.messages.values_list("meta__event", flat=True))
    assert events == ["handoff", "assigned"]


def test_it_respects_capacity_and_fills_it_again_when_a_conversation_closes(site, alice):
    automatic(site)
    Agent.objects.filter(pk=alice.pk).update(capacity=2)
    first, second, third = (queued(site, minutes_ago=m) for m in (3, 2, 1))
    at_console(alice)

    route_site(site_id=site.pk)
    assert [assignee(c) for c in (first, second, third)] == [alice, alice, None]

    conversation_close(conversation=first, by=alice)
    assert assignee(third) == alice
    assert alice.assigned_count == 2


# --- Taken back when nobody answers ------------------------------------------------------


def test_it_hands_an_unanswered_conversation_back_after_the_site_limit_and_not_before(
    site, support, alice, dave
):
    automatic(site, reassign_after_seconds=120)
    at_console(alice)
    conversation = queued(site, team=support)
    route_site(site_id=site.pk)
    conversation.refresh_from_db()
    assert conversation.assignee == alice
    taken_at = conversation.assigned_at

    assert reassign_overdue(now=taken_at + timedelta(seconds=119)) == 0
    assert assignee(conversation) == alice

    at_console(dave)
    assert reassign_overdue(now=taken_at + timedelta(seconds=121)) == 1
    # Back in the queue, routed again at once: to Dave, since Alice was set away.
    assert assignee(conversation) == dave
    alice.refresh_from_db()
    assert alice.status == "away"
    note = conversation.messages.get(meta__event="returned")
    assert note.author == "system" and note.meta["reason"] == "no_reply"
    assert "Alice did not reply in time" in note.body


def test_it_keeps_the_conversation_with_an_agent_who_replied(site, alice):
    automatic(site, reassign_after_seconds=60)
    at_console(alice)
    conversation = queued(site)
    route_site(site_id=site.pk)
    conversation.refresh_from_db()
    agent_message_post(conversation=conversation, agent=alice, body="Hello!", client_id="a1")
    conversation.refresh_from_db()

    later = conversation.assigned_at + timedelta(minutes=10)
    assert reassign_overdue(now=later) == 0
    assert not reassign_if_unanswered(conversation_id=conversation.pk, agent_id=alice.pk, now=later)
    assert assignee(conversation) == alice


def test_it_ignores_a_no_reply_timer_that_fires_early_or_for_someone_else(site, alice, bob):
    automatic(site, reassign_after_seconds=60)
    conversation = queued(site)
    conversation_take(conversation=conversation, agent=alice)  # the eager timer ran already
    conversation.refresh_from_db()
    assert conversation.assignee == alice

    later = conversation.assigned_at + timedelta(seconds=61)
    assert not reassign_if_unanswered(conversation_id=conversation.pk, agent_id=bob.pk, now=later)
    assert reassign_if_unanswered(conversation_id=conversation.pk, agent_id=alice.pk, now=later)
    assert not reassign_if_unanswered(conversation_id=conversation.pk, agent_id=alice.pk, now=later)
    assert conversation.messages.filter(meta__event="returned").count() == 1


def test_it_never_reassigns_when_the_site_has_no_limit(site, alice):
    conversation = queued(site)
    conversation_take(conversation=conversation, agent=alice)

    assert reassign_overdue(now=timezone.now() + timedelta(days=1)) == 0
    assert assignee(conversation) == alice


# --- Races ---------------------------------------------------------------------------------

ROUTERS = 6


def race(site_id: int) -> None:
    """Run ``route_site`` in ``ROUTERS`` threads at once, as workers and sockets would."""
    start = threading.Barrier(ROUTERS)

    def route(_: int) -> None:
        try:
            start.wait()
            route_site(site_id=site_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(ROUTERS) as pool:
        list(pool.map(route, range(ROUTERS)))


def test_it_gives_one_conversation_one_assignee_when_routers_race(site, support):
    automatic(site)
    agents = [at_console(make_agent(f"agent{i}", f"Agent {i}", [support])) for i in range(4)]
    conversation = queued(site)

    race(site.pk)

    conversation.refresh_from_db()
    assert conversation.status == "assigned" and conversation.assignee in agents
    assert Message.objects.filter(conversation=conversation, meta__event="assigned").count() == 1


def test_it_never_fills_an_agent_past_capacity_when_routers_race(site, alice):
    automatic(site)
    Agent.objects.filter(pk=alice.pk).update(capacity=2)
    at_console(alice)
    conversations = [queued(site, minutes_ago=5 - i) for i in range(5)]

    race(site.pk)

    assert Conversation.objects.filter(assignee=alice, status="assigned").count() == 2
    assert [assignee(c) for c in conversations[:2]] == [alice, alice]
    assert Message.objects.filter(meta__event="assigned").count() == 2
