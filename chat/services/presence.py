"""Agent presence: the status an agent chooses, kept honest by their console sockets.

An agent is routable while their status is online and one of their console sockets sent a
heartbeat (connect or ``ping``) within ``PRESENCE_TIMEOUT``. When the last socket closes
they stop being routable at once, and ``presence_check`` (enqueued with a countdown, and
the periodic ``presence_sweep``) marks them offline once the timeout has passed without a
socket coming back: moving between console pages reconnects within a second and costs
nothing, a closed laptop goes offline within a minute and hands its conversations back.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from chat.models import PRESENCE_TIMEOUT, Agent, AgentSocket, Site
from chat.services.queue import agent_announce, queue_announce
from chat.services.routing import agent_conversations_return


def agent_connected(*, agent: Agent, channel_name: str, now: datetime | None = None) -> None:
    now = now or timezone.now()
    AgentSocket.objects.update_or_create(
        channel_name=channel_name, defaults={"agent": agent, "last_seen_at": now}
    )
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=now)
    if agent.status == Agent.Status.ONLINE:
        _announce_sites(agent)  # back online: routing may have work for them


def agent_heartbeat(*, agent: Agent, channel_name: str, now: datetime | None = None) -> None:
    now = now or timezone.now()
    seen = AgentSocket.objects.filter(channel_name=channel_name).update(last_seen_at=now)
    if not seen:  # the sweep dropped it while the laptop slept; the socket survived
        AgentSocket.objects.create(agent=agent, channel_name=channel_name, last_seen_at=now)
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=now)


def agent_disconnected(*, agent: Agent, channel_name: str, now: datetime | None = None) -> None:
    now = now or timezone.now()
    AgentSocket.objects.filter(channel_name=channel_name).delete()
    Agent.objects.filter(pk=agent.pk).update(last_seen_at=now)
    if not AgentSocket.objects.filter(agent=agent).exists():
        from chat.tasks import presence_check

        seconds = int(PRESENCE_TIMEOUT.total_seconds()) + 1
        # Eager Celery ignores the countdown: the check then runs early and does nothing.
        presence_check.apply_async((agent.pk,), countdown=seconds)


def agent_status_set(*, agent: Agent, status: Agent.Status) -> None:
    """The agent (or presence) changes their status. Going offline hands their open
    conversations back to the queue; coming online lets routing give them work."""
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(status=status)
        agent.status = status
        if status == Agent.Status.OFFLINE:
            agent_conversations_return(agent=agent)
        agent_announce(agent)
        _announce_sites(agent)


def presence_check(*, agent_id: int, now: datetime | None = None) -> bool:
    """Mark the agent offline if no socket of theirs has been heard from for the timeout.
    Safe to run at any time: before it is due it does nothing."""
    now = now or timezone.now()
    agent = Agent.objects.exclude(status=Agent.Status.OFFLINE).filter(pk=agent_id).first()
    if agent is None:
        return False
    cutoff = now - PRESENCE_TIMEOUT
    if AgentSocket.objects.filter(agent=agent, last_seen_at__gte=cutoff).exists():
        return False
    if agent.last_seen_at is not None and agent.last_seen_at > cutoff:
        return False
    agent_status_set(agent=agent, status=Agent.Status.OFFLINE)
    return True


def presence_sweep(*, now: datetime | None = None) -> int:
    """The periodic sweep: drop dead sockets (a crashed server never said goodbye) and mark
    agents offline whose consoles went silent."""
    now = now or timezone.now()
    AgentSocket.objects.filter(last_seen_at__lt=now - PRESENCE_TIMEOUT).delete()
    candidates = Agent.objects.exclude(status=Agent.Status.OFFLINE).values_list("pk", flat=True)
    return sum(presence_check(agent_id=agent_id, now=now) for agent_id in list(candidates))


def _announce_sites(agent: Agent) -> None:
    for site_id in Site.objects.filter(teams__agents=agent).distinct().values_list("pk", flat=True):
        queue_announce(site_id)
