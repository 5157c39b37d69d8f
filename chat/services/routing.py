"""Who gets which waiting conversation, and taking it back when nobody answers.

Automatic routing gives the oldest highest-priority waiting conversation to the live agent
of the right team with the most free capacity; of equally free agents, the one whose last
assignment is oldest. Assignment goes through ``conversation_take`` (a conditional UPDATE:
one conversation, one assignee) with the agent's row locked, so two routers at once can
neither assign one conversation twice nor fill an agent past their capacity.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Literal

from django.db import transaction
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from chat.models import Agent, Conversation, Message, Site, Team
from chat.protocol import ConversationReturned
from chat.realtime import (
    agent_group,
    conversation_groups,
    send_after_commit,
)
from chat.services.conversations import Conflict, conversation_take
from chat.services.frames import conversation_frame
from chat.services.messages import message_post
from chat.services.notifications import agent_notify_assigned
from chat.services.queue import (
    agent_announce,
    queue_announce,
    queue_positions_send,
    site_updating,
)

# Each routing pass looks at this many waiting conversations, and tries this many agents
# for each before moving on (the next pass, at the next queue change, looks again).
ROUTE_BATCH = 200
AGENT_TRIES = 5

ReturnReason = Literal["no_reply", "agent_offline"]


def queue_update(*, site_id: int) -> None:
    """Route the site's queue (when automatic), then tell waiting visitors where they stand."""
    with site_updating(site_id) as first:
        if not first:
            return
        route_site(site_id=site_id)
    queue_positions_send(site_id=site_id)


def available_agents(*, site_id: int, team_id: int | None, now: datetime) -> QuerySet[Agent]:
    """Live agents who may answer the team's conversations (any team of the site when
    ``team_id`` is None) and have room, best first."""
    membership = Team.agents.through.objects.filter(agent_id=OuterRef("pk"))
    if team_id is not None:
        membership = membership.filter(team_id=team_id)
    else:
        membership = membership.filter(team__site_id=site_id)
    load = (
        Conversation.objects.filter(assignee=OuterRef("pk"), status=Conversation.Status.ASSIGNED)
        .order_by()
        .values("assignee")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        Agent.objects.live(now)
        .filter(Exists(membership))
        .annotate(load=Coalesce(Subquery(load), 0))
        .annotate(free=F("capacity") - F("load"))
        .filter(free__gt=0)
        .order_by("-free", F("last_assigned_at").asc(nulls_first=True), "id")
    )


def route_site(*, site_id: int, now: datetime | None = None) -> list[tuple[int, int]]:
    """Assign what can be assigned on an automatic site: [(conversation_id, agent_id)]."""
    site = Site.objects.filter(pk=site_id).first()
    if site is None or site.routing != Site.Routing.AUTOMATIC:
        return []
    now = now or timezone.now()
    assigned: list[tuple[int, int]] = []
    full: set[int | None] = set()  # teams (None: the whole site) with nobody free
    waiting = Conversation.objects.filter(site_id=site_id).waiting().select_related("site")
    for conversation in waiting[:ROUTE_BATCH]:
        if conversation.team_id in full or None in full:
            continue
        agent = _assign(conversation, now)
        if agent is None:
            full.add(conversation.team_id)
        elif agent is not False:
            assigned.append((conversation.pk, agent.pk))
    return assigned


def _assign(conversation: Conversation, now: datetime) -> Agent | Literal[False] | None:
    """The agent who got ``conversation``; None when nobody has room; False when someone
    else assigned it first."""
    candidates = available_agents(
        site_id=conversation.site_id, team_id=conversation.team_id, now=now
    )
    for candidate_id in candidates.values_list("id", flat=True)[:AGENT_TRIES]:
        with transaction.atomic():
            # The lock orders routers that picked the same agent; the count under it is exact.
            agent = (
                Agent.objects.select_for_update()
                .filter(pk=candidate_id, status=Agent.Status.ONLINE)
                .first()
            )
            if agent is None or agent.assigned_count >= agent.capacity:
                continue
            try:
                conversation_take(conversation=conversation, agent=agent)
            except Conflict:
                return False
            transaction.on_commit(
                partial(agent_notify_assigned, conversation=conversation, agent=agent),
                robust=True,
            )
            return agent
    return None


# --- Back to the queue ------------------------------------------------------------------


def _replies_since_assignment() -> Exists:
    return Exists(
        Message.objects.filter(
            conversation=OuterRef("pk"),
            author=Message.Author.AGENT,
            created_at__gte=OuterRef("assigned_at"),
        )
    )


def conversation_requeue(
    *, conversation: Conversation, agent: Agent, reason: ReturnReason, now: datetime | None = None
) -> bool:
    """Hand ``agent``'s conversation back to the queue, keeping the visitor's place.

    False when it is no longer ``agent``'s (closed, taken over) or, for ``no_reply``, when
    the agent answered after all. An agent who let one go unanswered is set away, so
    routing does not hand it straight back to them.
    """
    now = now or timezone.now()
    with transaction.atomic():
        still_theirs = Conversation.objects.filter(
            pk=conversation.pk, status=Conversation.Status.ASSIGNED, assignee=agent
        )
        if reason == "no_reply":
            still_theirs = still_theirs.filter(~_replies_since_assignment())
        updated = still_theirs.update(
            status=Conversation.Status.WAITING,
            assignee=None,
            assigned_at=None,
            queued_at=Coalesce(F("queued_at"), Value(now, output_field=DateTimeField())),
        )
        if not updated:
            return False
        conversation.refresh_from_db()
        language = conversation.site.language or conversation.visitor.language or "en"
        with translation.override(language):
            if reason == "no_reply":
                note = _("%(name)s did not reply in time; finding someone else.")
            else:
                note = _("%(name)s went offline; finding someone else.")
            note %= {"name": agent.display_name}
        message_post(
            conversation=conversation,
            author=Message.Author.SYSTEM,
            body=note,
            meta={"event": "returned", "reason": reason, "agent_id": agent.pk},
        )
        if reason == "no_reply":
            Agent.objects.filter(pk=agent.pk, status=Agent.Status.ONLINE).update(
                status=Agent.Status.AWAY
            )
        told = _("Conversation #%(id)d went back to the queue: %(why)s") % {
            "id": conversation.pk,
            "why": _("no reply in time; you are now away.")
            if reason == "no_reply"
            else _("you went offline."),
        }
        send_after_commit(
            [agent_group(agent.pk)],
            ConversationReturned(conversation_id=conversation.pk, reason=reason, message=told),
        )
        send_after_commit(
            conversation_groups(conversation.pk),
            conversation_frame(conversation),
        )
        agent_announce(agent)
        queue_announce(conversation.site_id)
    return True


def reassign_if_unanswered(
    *, conversation_id: int, agent_id: int, now: datetime | None = None
) -> bool:
    """Requeue the conversation if ``agent_id`` has had it past the site's limit without a
    reply. Safe to run at any time, any number of times: before it is due it does nothing."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_related("site", "visitor", "assignee")
        .filter(pk=conversation_id, status=Conversation.Status.ASSIGNED, assignee_id=agent_id)
        .first()
    )
    if conversation is None or conversation.assigned_at is None or conversation.assignee is None:
        return False
    seconds = conversation.site.reassign_after_seconds
    if not seconds or now < conversation.assigned_at + timedelta(seconds=seconds):
        return False
    return conversation_requeue(
        conversation=conversation, agent=conversation.assignee, reason="no_reply", now=now
    )


def reassign_overdue(*, now: datetime | None = None) -> int:
    """The periodic sweep: requeue every conversation unanswered past its site's limit."""
    now = now or timezone.now()
    count = 0
    for site in Site.objects.filter(reassign_after_seconds__gt=0):
        overdue = (
            Conversation.objects.filter(
                site=site,
                status=Conversation.Status.ASSIGNED,
                assigned_at__lte=now - timedelta(seconds=site.reassign_after_seconds),
            )
            .filter(~_replies_since_assignment())
            .values_list("pk", "assignee_id")
        )
        for conversation_id, agent_id in list(overdue):
            if agent_id is not None and reassign_if_unanswered(
                conversation_id=conversation_id, agent_id=agent_id, now=now
            ):
                count += 1
    return count


def agent_conversations_return(*, agent: Agent) -> int:
    """An agent went offline: every conversation assigned to them goes back to the queue."""
    mine = Conversation.objects.select_related("site", "visitor").filter(
        Q(assignee=agent) & Q(status=Conversation.Status.ASSIGNED)
    )
    return sum(
        conversation_requeue(conversation=conversation, agent=agent, reason="agent_offline")
        for conversation in mine
    )
