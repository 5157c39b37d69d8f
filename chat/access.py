"""Who may see which conversation. Every view, htmx endpoint and socket asks here."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q, QuerySet

from chat.models import Agent, Attachment, Conversation, ConversationQuerySet, Site, Team, Visitor


class NotFound(Exception):
    """No such conversation, or not one this person may see (the two look the same)."""


def agent_of(user: User | AnonymousUser) -> Agent | None:
    if not user.is_authenticated:
        return None
    return Agent.objects.filter(user=user).first()


def is_console_user(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and (user.is_superuser or agent_of(user) is not None))


def sites_for_user(user: User | AnonymousUser) -> QuerySet[Site]:
    if not user.is_authenticated:
        return Site.objects.none()
    if user.is_superuser:
        return Site.objects.all()
    return Site.objects.filter(teams__agents__user=user).distinct()


def conversations_for_user(user: User | AnonymousUser) -> ConversationQuerySet:
    """Admins see everything; an agent sees their teams' sites, minus other teams' work."""
    if not user.is_authenticated:
        return Conversation.objects.none()
    if user.is_superuser:
        return Conversation.objects.all()
    agent = agent_of(user)
    if agent is None:
        return Conversation.objects.none()
    team_ids = list(agent.teams.values_list("id", flat=True))
    site_ids = list(agent.teams.values_list("site_id", flat=True).distinct())
    return Conversation.objects.filter(
        Q(site_id__in=site_ids) & (Q(team__isnull=True) | Q(team_id__in=team_ids))
    )


def may_supervise(user: User | AnonymousUser) -> bool:
    """Staff, and agents with the supervisor flag, may open the supervisor view."""
    if not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    agent = agent_of(user)
    return bool(agent and agent.is_supervisor)


def conversations_to_supervise(user: User | AnonymousUser) -> ConversationQuerySet:
    """What the supervisor view counts: a supervising agent sees every team of their sites;
    anyone else what they may see anyway."""
    if not user.is_authenticated:
        return Conversation.objects.none()
    if user.is_superuser:
        return Conversation.objects.all()
    agent = agent_of(user)
    if agent is not None and agent.is_supervisor:
        return Conversation.objects.filter(site__in=sites_for_user(user))
    return conversations_for_user(user)


def conversations_for_reports(user: User | AnonymousUser) -> ConversationQuerySet:
    """Reports: staff see every site; an agent what ``conversations_for_user`` shows them."""
    if user.is_authenticated and user.is_staff:
        return Conversation.objects.all()
    return conversations_for_user(user)


def report_sites_for_user(user: User | AnonymousUser) -> QuerySet[Site]:
    if user.is_authenticated and user.is_staff:
        return Site.objects.all()
    return sites_for_user(user)


def report_teams_for_user(user: User | AnonymousUser) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    if user.is_staff:
        return Team.objects.select_related("site")
    return Team.objects.filter(agents__user__pk=user.pk).select_related("site")


def conversation_for_user(*, user: User | AnonymousUser, conversation_id: int) -> Conversation:
    conversation = (
        conversations_for_user(user)
        .select_related("site", "visitor", "assignee", "team")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound
    return conversation


def conversations_for_visitor(visitor: Visitor) -> ConversationQuerySet:
    """A visitor sees their own conversations, never anyone else's."""
    return Conversation.objects.filter(visitor=visitor)


def conversation_for_visitor(*, visitor: Visitor, conversation_id: int) -> Conversation:
    """One of the visitor's conversations, its site and assignee as they are now."""
    conversation = (
        conversations_for_visitor(visitor)
        .select_related("site", "assignee")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFound
    conversation.visitor = visitor  # one object: a name set on the socket shows here too
    return conversation


def may_manage_customer_data(user: User | AnonymousUser) -> bool:
    """Export and erase are staff work: a superuser, or staff allowed to change visitors."""
    if not user.is_authenticated or not user.is_staff:
        return False
    return bool(user.is_superuser or user.has_perm("chat.change_visitor"))


def visitors_for_user(user: User | AnonymousUser) -> QuerySet[Visitor]:
    """The customers whose data this person may export or erase: those of their sites."""
    if not may_manage_customer_data(user):
        return Visitor.objects.none()
    if user.is_superuser:
        return Visitor.objects.all()
    return Visitor.objects.filter(site__in=sites_for_user(user))


def visitor_for_user(*, user: User | AnonymousUser, public_id: str) -> Visitor:
    visitor = visitors_for_user(user).select_related("site").filter(public_id=public_id).first()
    if visitor is None:
        raise NotFound
    return visitor


def attachment_for_user(*, user: User | AnonymousUser, attachment_id: str) -> Attachment:
    """A file of a conversation the user may see."""
    attachment = (
        Attachment.objects.filter(
            public_id=attachment_id, conversation__in=conversations_for_user(user)
        )
        .select_related("conversation")
        .first()
    )
    if attachment is None:
        raise NotFound
    return attachment


def attachment_for_visitor(*, visitor: Visitor, attachment_id: str) -> Attachment:
    """A file of one of the visitor's own conversations."""
    attachment = (
        Attachment.objects.filter(public_id=attachment_id, conversation__visitor=visitor)
        .select_related("conversation")
        .first()
    )
    if attachment is None:
        raise NotFound
    return attachment


class VisitorConversations:
    """The conversations one widget socket has been allowed, each checked once.

    A conversation changes visitor only when an anonymous visitor signs in (a verified
    identity, ``chat/services/identity.py``): it moves to the same person's identified
    visitor. So a check stays true for the socket's life:
    ``remembered`` spares a hot frame (a message) the look-up; its state (status,
    assignee) may be stale, so frames that show state use ``fetch``.
    """

    def __init__(self, visitor: Visitor) -> None:
        self.visitor = visitor
        self.allowed: dict[int, Conversation] = {}

    def fetch(self, conversation_id: int) -> Conversation:
        conversation = conversation_for_visitor(
            visitor=self.visitor, conversation_id=conversation_id
        )
        self.allowed[conversation.pk] = conversation
        return conversation

    def remembered(self, conversation_id: int) -> Conversation:
        known = self.allowed.get(conversation_id)
        return known if known is not None else self.fetch(conversation_id)

    def remember(self, conversation: Conversation) -> None:
        """One the visitor just started (so it is theirs)."""
        if conversation.visitor_id == self.visitor.pk:
            self.allowed[conversation.pk] = conversation


def visitors_of_site(site: Site) -> QuerySet[Visitor]:
    """What a site's own API key reaches: that site's customers, never another's."""
    return Visitor.objects.filter(site=site)


def visitor_of_site(*, site: Site, public_id: str) -> Visitor:
    visitor = visitors_of_site(site).select_related("site").filter(public_id=public_id).first()
    if visitor is None:
        raise NotFound
    return visitor
