"""Helpers for routing, presence and queue tests: agents at their consoles, a queue."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from django.utils import timezone

from chat.models import Agent, AgentSocket, Conversation, Site, Team, Visitor

_sockets = itertools.count(1)


def at_console(agent: Agent, *, status: str = "online", seen: datetime | None = None) -> Agent:
    """The agent has a console open (heartbeat at ``seen``) and chose ``status``.

    Stored directly, without the presence service, so nothing is routed yet.
    """
    Agent.objects.filter(pk=agent.pk).update(status=status, last_seen_at=seen or timezone.now())
    AgentSocket.objects.create(
        agent=agent,
        channel_name=f"test-socket-{next(_sockets)}",
        last_seen_at=seen or timezone.now(),
    )
    agent.refresh_from_db(fields=["status", "last_seen_at"])  # keeps the cached user
    return agent


def queued(
    site: Site,
    *,
    name: str = "",
    team: Team | None = None,
    priority: int = 0,
    minutes_ago: float = 0,
    visitor: Visitor | None = None,
) -> Conversation:
    """A conversation already waiting in the queue (no hooks run)."""
    visitor = visitor or Visitor.objects.create(site=site, name=name)
    return Conversation.objects.create(
        site=site,
        visitor=visitor,
        team=team,
        status=Conversation.Status.WAITING,
        priority=priority,
        queued_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def automatic(site: Site, *, reassign_after_seconds: int = 0) -> Site:
    Site.objects.filter(pk=site.pk).update(
        routing=Site.Routing.AUTOMATIC, reassign_after_seconds=reassign_after_seconds
    )
    site.refresh_from_db()
    return site
