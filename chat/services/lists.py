"""The console's lists: the queue, "mine", search and the supervisor's counts.

Every list starts from ``access.conversations_for_user`` and costs a fixed number of
queries whatever its length (pinned in ``tests/test_console_lists.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Count, Exists, Min, OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from chat import access
from chat.models import Agent, Conversation, ConversationQuerySet, Label, Message, Team
from chat.services.inbox import with_unread

# The waiting list shows the next ones in line (the heading counts them all); an agent's
# own list is bounded by their capacity in practice.
WAITING_LIMIT = 50
MINE_LIMIT = 100
SEARCH_LIMIT = 50


@dataclass(frozen=True)
class QueueLists:
    waiting: list[Conversation]
    waiting_total: int
    mine: list[Conversation]
    mine_unread: int
    labels: list[Label]
    label: Label | None


def _rows(conversations: ConversationQuerySet, agent: Agent | None) -> ConversationQuerySet:
    first_message = (
        Message.objects.filter(conversation=OuterRef("pk"), author=Message.Author.VISITOR)
        .order_by("seq")
        .values("body")[:1]
    )
    return with_unread(
        conversations.select_related("visitor", "site", "assignee", "team")
        .annotate(first_message=Subquery(first_message))
        .prefetch_related(Prefetch("labels", queryset=Label.objects.order_by("name"))),
        agent,
    )


def queue_lists(*, user: User | AnonymousUser, label_id: int | None = None) -> QueueLists:
    """Waiting conversations and the agent's own, optionally only those with a label."""
    visible = access.conversations_for_user(user)
    agent = access.agent_of(user)
    labels = list(Label.objects.filter(site__in=access.sites_for_user(user)).order_by("name"))
    label = next((candidate for candidate in labels if candidate.pk == label_id), None)
    if label is not None:
        visible = visible.filter(labels=label)
    mine = (
        visible.filter(assignee=agent, status=Conversation.Status.ASSIGNED)
        if agent
        else visible.none()
    )
    mine_rows = list(_rows(mine.order_by("-assigned_at"), agent)[:MINE_LIMIT])
    waiting_rows = list(_rows(visible.waiting(), agent)[:WAITING_LIMIT])
    # Counted always (not only past the limit), so the query count never depends on length.
    waiting_total = visible.waiting().count()
    return QueueLists(
        waiting=waiting_rows,
        waiting_total=waiting_total,
        mine=mine_rows,
        mine_unread=sum(c.unread for c in mine_rows),  # type: ignore[attr-defined]
        labels=labels,
        label=label,
    )


def conversation_search(*, user: User | AnonymousUser, query: str) -> list[Conversation]:
    """Conversations the user may see whose customer (name, e-mail) or messages match every
    word of ``query``, newest first."""
    # PostgreSQL refuses NUL in a string; it cannot be in any stored text either.
    words = [w for w in re.split(r"\s+", query.replace("\x00", "").strip()) if w][:8]
    if not words:
        return []
    matches = access.conversations_for_user(user)
    for word in words:
        in_messages = Message.objects.filter(
            conversation=OuterRef("pk"),
            author__in=[Message.Author.VISITOR, Message.Author.AGENT, Message.Author.BOT],
            body__icontains=word,
        )
        matches = matches.filter(
            Q(visitor__name__icontains=word)
            | Q(visitor__email__icontains=word)
            | Exists(in_messages)
        )
    agent = access.agent_of(user)
    return list(_rows(matches.order_by("-created_at"), agent)[:SEARCH_LIMIT])


def past_conversations(
    *, user: User | AnonymousUser, conversation: Conversation, limit: int = 10
) -> list[Conversation]:
    """The same visitor's other conversations, those the user may see."""
    return list(
        access.conversations_for_user(user)
        .filter(visitor_id=conversation.visitor_id)
        .exclude(pk=conversation.pk)
        .order_by("-created_at")[:limit]
    )


# --- Supervisor ------------------------------------------------------------------------


@dataclass
class TeamCounts:
    site_name: str
    name: str
    waiting: int = 0
    active: int = 0
    agents_online: int = 0
    longest_wait: timedelta | None = None
    team_id: int | None = None

    @property
    def longest_wait_seconds(self) -> int | None:
        return int(self.longest_wait.total_seconds()) if self.longest_wait else None

    @property
    def longest_wait_display(self) -> str:
        seconds = self.longest_wait_seconds
        if seconds is None:
            return ""
        minutes, seconds = divmod(max(seconds, 0), 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return f"{hours} h {minutes:02d} min"
        return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


@dataclass
class SupervisorCounts:
    teams: list[TeamCounts] = field(default_factory=list)
    at: datetime = field(default_factory=timezone.now)


def supervisor_counts(
    *, user: User | AnonymousUser, now: datetime | None = None
) -> SupervisorCounts:
    """Per team of the sites the user sees: waiting, active, agents online, longest wait.
    Conversations without a team are counted on a "no team" row per site."""
    now = now or timezone.now()
    sites = access.sites_for_user(user)
    visible = access.conversations_to_supervise(user).filter(site__in=sites)
    per_team = (
        visible.open()
        .order_by()
        .values("site_id", "site__name", "team_id")
        .annotate(
            waiting=Count("pk", filter=Q(status=Conversation.Status.WAITING)),
            active=Count("pk", filter=Q(status=Conversation.Status.ASSIGNED)),
            oldest=Min("queued_at", filter=Q(status=Conversation.Status.WAITING)),
        )
    )
    online = (
        Agent.objects.live(now)
        .filter(teams__site__in=sites)
        .order_by()
        .values("teams__id")
        .annotate(n=Count("pk", distinct=True))
    )
    online_by_team = {row["teams__id"]: row["n"] for row in online}
    teams: dict[tuple[int, int | None], TeamCounts] = {}
    site_names: dict[int, str] = {}
    for team in (
        Team.objects.filter(site__in=sites).select_related("site").order_by("site__name", "name")
    ):
        site_names[team.site_id] = team.site.name
        teams[(team.site_id, team.pk)] = TeamCounts(
            site_name=team.site.name,
            name=team.name,
            team_id=team.pk,
            agents_online=online_by_team.get(team.pk, 0),
        )
    for row in per_team:
        key = (row["site_id"], row["team_id"])
        counts = teams.get(key)
        if counts is None:
            counts = teams[key] = TeamCounts(
                site_name=site_names.get(row["site_id"], row["site__name"]), name="", team_id=None
            )
        counts.waiting = row["waiting"]
        counts.active = row["active"]
        counts.longest_wait = now - row["oldest"] if row["oldest"] else None
    ordered = sorted(teams.values(), key=lambda c: (c.site_name, c.team_id is None, c.name))
    return SupervisorCounts(teams=ordered, at=now)
