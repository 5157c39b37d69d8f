"""The queue as visitors see it, and what happens whenever it moves.

Every change to a site's queue (a hand-off, a take, a close, a conversation handed back, an
agent coming online) calls ``queue_announce``: the console hears ``queue.changed`` and, after
commit, the task ``queue_update`` routes the site (when automatic) and tells every waiting
visitor their place and wait (``queue.position``). This module imports no other service, so
``conversations`` can call it without a cycle.
"""

from __future__ import annotations

import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from chat.models import Agent, Conversation, Team
from chat.protocol import AgentUpdated, QueueChanged, QueuePosition
from chat.realtime import agent_group, send_after_commit, send_now, site_agents_group, visitor_group

# Without enough history, assume a conversation takes this long to handle.
DEFAULT_HANDLE_SECONDS = 300
# Handle time is the median over this many of the site's latest closed conversations.
HANDLE_SAMPLE = 20
# Positions are computed for this many waiting conversations at most.
QUEUE_LIMIT = 500

_local = threading.local()


@dataclass(frozen=True)
class Place:
    conversation_id: int
    position: int
    estimated_wait_seconds: int | None  # None: nobody is online to answer
    agents_online: bool

    def frame(self) -> QueuePosition:
        return QueuePosition(
            conversation_id=self.conversation_id,
            position=self.position,
            estimated_wait_seconds=self.estimated_wait_seconds,
            agents_online=self.agents_online,
        )


# --- Hooks -----------------------------------------------------------------------------


def queue_announce(site_id: int) -> None:
    """The site's queue changed: tell the consoles now-ish and route/re-rank after commit."""
    send_after_commit([site_agents_group(site_id)], QueueChanged(site_id=site_id))
    transaction.on_commit(lambda: _enqueue_update(site_id), robust=True)


def _enqueue_update(site_id: int) -> None:
    if site_id in _updating():
        return  # this thread is routing the site right now; it re-ranks when done
    from chat.tasks import queue_update

    queue_update.delay(site_id)


def _updating() -> set[int]:
    if not hasattr(_local, "sites"):
        _local.sites = set()
    sites: set[int] = _local.sites
    return sites


@contextmanager
def site_updating(site_id: int) -> Iterator[bool]:
    """Yield False when this thread already updates the site (a nested call does nothing)."""
    sites = _updating()
    if site_id in sites:
        yield False
        return
    sites.add(site_id)
    try:
        yield True
    finally:
        sites.discard(site_id)


def assignment_started(*, conversation: Conversation, agent: Agent) -> None:
    """An agent got a conversation: note it for fairness and start the no-reply timer."""
    Agent.objects.filter(pk=agent.pk).update(last_assigned_at=conversation.assigned_at)
    seconds = conversation.site.reassign_after_seconds
    if seconds:
        from chat.tasks import reassign_check

        args = (conversation.pk, agent.pk)
        # Eager Celery ignores the countdown: the check then runs early and does nothing.
        transaction.on_commit(lambda: reassign_check.apply_async(args, countdown=seconds))
    agent_announce(agent)


def agent_announce(agent: Agent) -> None:
    """Tell the agent's consoles their status and load, after commit."""

    def send() -> None:
        fresh = Agent.objects.filter(pk=agent.pk).first()
        if fresh is not None:
            send_now([agent_group(fresh.pk)], agent_frame(fresh))

    transaction.on_commit(send, robust=True)


def agent_frame(agent: Agent) -> AgentUpdated:
    return AgentUpdated(
        agent_id=agent.pk,
        status=agent.status,  # type: ignore[arg-type]
        capacity=agent.capacity,
        assigned=agent.assigned_count,
    )


# --- Positions and waits ---------------------------------------------------------------


def queue_places(*, site_id: int, now: datetime | None = None) -> list[Place]:
    """Every waiting conversation's place in the site's queue, in routing order.

    A conversation waits behind those ahead of it that the same agents would answer: the
    same team, or either without a team. Its wait is its place times the site's median
    handle time, divided by the conversations the online agents who could take it can hold.
    """
    now = now or timezone.now()
    waiting = list(
        Conversation.objects.filter(site_id=site_id)
        .waiting()
        .values_list("id", "team_id")[:QUEUE_LIMIT]
    )
    if not waiting:
        return []
    slots = _online_slots(site_id, now)
    handle = median_handle_seconds(site_id=site_id)
    places = []
    for index, (conversation_id, team_id) in enumerate(waiting):
        ahead = sum(
            1
            for _, other in waiting[:index]
            if other is None or team_id is None or other == team_id
        )
        capacity = slots.get(team_id, 0)
        position = ahead + 1
        places.append(
            Place(
                conversation_id=conversation_id,
                position=position,
                estimated_wait_seconds=round(position * handle / capacity) if capacity else None,
                agents_online=capacity > 0,
            )
        )
    return places


def queue_place(conversation: Conversation) -> Place | None:
    """The conversation's place, if it waits now (the bot may just have handed it off)."""
    waiting = Conversation.objects.filter(pk=conversation.pk, status=Conversation.Status.WAITING)
    if not waiting.exists():
        return None
    places = queue_places(site_id=conversation.site_id)
    return next((p for p in places if p.conversation_id == conversation.pk), None)


def queue_positions_send(*, site_id: int) -> None:
    for place in queue_places(site_id=site_id):
        send_now([visitor_group(place.conversation_id)], place.frame())


def _online_slots(site_id: int, now: datetime) -> dict[int | None, int]:
    """Capacity of the site's live agents per team id; ``None``: of all the site's teams."""
    agents = Agent.objects.live(now).filter(teams__site_id=site_id).distinct()
    memberships = Team.agents.through.objects.filter(
        agent__in=agents, team__site_id=site_id
    ).values_list("agent_id", "team_id")
    teams: dict[int, set[int]] = {}
    for agent_id, team_id in memberships:
        teams.setdefault(agent_id, set()).add(team_id)
    slots: dict[int | None, int] = {}
    for agent_id, capacity in agents.values_list("id", "capacity"):
        slots[None] = slots.get(None, 0) + capacity
        for team_id in teams.get(agent_id, ()):
            slots[team_id] = slots.get(team_id, 0) + capacity
    return slots


def median_handle_seconds(*, site_id: int) -> float:
    """Median time from assignment to close over the site's latest closed conversations."""
    recent = (
        Conversation.objects.filter(
            site_id=site_id,
            status=Conversation.Status.CLOSED,
            assigned_at__isnull=False,
            closed_at__isnull=False,
        )
        .order_by("-closed_at")
        .values_list("assigned_at", "closed_at")[:HANDLE_SAMPLE]
    )
    durations = [
        (closed - assigned).total_seconds()
        for assigned, closed in recent
        if assigned is not None and closed is not None and closed > assigned
    ]
    return statistics.median(durations) if durations else DEFAULT_HANDLE_SECONDS
