"""Conversation state changes. Each one stores, then tells everybody after commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

import bots
from chat import ratelimit
from chat.models import Agent, Conversation, Message, Site, Team, Visitor
from chat.realtime import (
    after_commit,
    conversation_groups,
    send_after_commit,
)
from chat.services import notifications
from chat.services.csat import csat_request
from chat.services.frames import conversation_frame
from chat.services.group_commit import group_commit
from chat.services.inbox import inbox_notify
from chat.services.messages import ConversationClosed, Posted, message_post, message_resent
from chat.services.queue import assignment_started, queue_announce


class Conflict(Exception):
    """The change does not fit the conversation's state (e.g. someone else took it)."""


class ConsentRequired(Exception):
    """The site asks the visitor to agree to its consent text before a conversation starts."""


def conversation_start(
    *,
    site: Site,
    visitor: Visitor,
    page_url: str = "",
    team_id: int | None = None,
    consent: bool = False,
) -> Conversation:
    # Only a page of the site itself: e-mailed links lead back there.
    page_url = page_url if page_url.startswith(("https://", "http://")) else ""
    if page_url and not site.allows_origin(page_url):
        page_url = ""
    status = Conversation.Status.BOT if site.bot_enabled else Conversation.Status.WAITING
    conversation = Conversation.objects.create(
        # What the visitor agreed to, as it read when they did.
        consent_text=site.consent_text if consent else "",
        consent_at=timezone.now() if consent and site.consent_text else None,
        site=site,
        visitor=visitor,
        status=status,
        page_url=page_url[:500],
        queued_at=None if site.bot_enabled else timezone.now(),
        # A team of another site (or none) means no choice: any of the site's teams.
        team=Team.objects.filter(pk=team_id, site=site).first() if team_id else None,
        priority=_queue_priority(visitor),
    )
    if not site.bot_enabled:
        _announce_queue(site.pk)
        _after_commit(lambda: notifications.agents_notify_queued(conversation=conversation))
    return conversation


def visitor_message_send(
    *,
    visitor: Visitor,
    conversation: Conversation | None,
    body: str,
    client_id: str,
    team_id: int | None = None,
    consent: bool = False,
    page_url: str = "",
    on_conversation: Callable[[Conversation], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> Posted:
    """A visitor wrote, in ``conversation`` or (None) in their open one, else a new one
    (for the team ``team_id`` they chose, if it is one of the site's; with ``consent`` to
    the site's consent text when it has one).

    ``on_conversation`` hears which conversation it is before anything is posted, so the
    sender can subscribe to it before the answers (an eager bot answers inline) go out.

    A resend of a stored ``client_id`` changes nothing: no new conversation, no reopening.
    """
    if conversation is not None and not meta:
        # The common case, words in an open conversation: one short transaction.
        if on_conversation is not None:
            on_conversation(conversation)
        try:
            posted = _visitor_post_open(conversation=conversation, body=body, client_id=client_id)
        except ConversationClosed:
            conversation.status = Conversation.Status.CLOSED
        else:
            _visitor_message_stored(conversation, posted)
            return posted
    stored = (
        Message.objects.select_related("conversation__visitor", "agent")
        .filter(conversation__visitor=visitor, author=Message.Author.VISITOR, client_id=client_id)
        .first()
    )
    if stored is not None:
        return message_resent(stored)
    with transaction.atomic():
        if conversation is None:
            conversation = visitor.conversations.open().order_by("-created_at").first()
        if conversation is None:
            if visitor.site.consent_text and not consent:
                raise ConsentRequired  # before the rate limit counts a conversation
            ratelimit.conversation_start_hit(visitor_id=visitor.pk)
            conversation = conversation_start(
                site=visitor.site,
                visitor=visitor,
                team_id=team_id,
                consent=consent,
                page_url=page_url,
            )
        if on_conversation is not None:
            on_conversation(conversation)
        return visitor_message_receive(
            conversation=conversation, body=body, client_id=client_id, meta=meta
        )


def _visitor_post_open(*, conversation: Conversation, body: str, client_id: str) -> Posted:
    if settings.HELPDESK_GROUP_COMMIT and not transaction.get_connection().in_atomic_block:
        return group_commit.visitor_post(conversation=conversation, body=body, client_id=client_id)
    return message_post(
        conversation=conversation,
        author=Message.Author.VISITOR,
        body=body,
        client_id=client_id,
        require_open=True,
    )


def visitor_message_receive(
    *, conversation: Conversation, body: str, client_id: str, meta: dict[str, Any] | None = None
) -> Posted:
    """A visitor wrote: store it, reopen a closed conversation, and wake the bot if it leads
    (not for a file: the bot cannot read one; it answers the next words)."""
    with transaction.atomic():
        if not conversation.is_open:
            _reopen(conversation)
        posted = message_post(
            conversation=conversation,
            author=Message.Author.VISITOR,
            body=body,
            client_id=client_id,
            meta=meta,
        )
        _visitor_message_stored(conversation, posted)
    return posted


def _visitor_message_stored(conversation: Conversation, posted: Posted) -> None:
    if posted.created and conversation.assignee_id is not None:
        inbox_notify(agent_id=conversation.assignee_id, conversation_id=conversation.pk)
    if posted.created and conversation.is_with_bot and not posted.message.meta:
        from chat.tasks import bot_answer

        seq = posted.message.seq
        # robust: a broker outage must not fail a message that is already stored; the
        # widget then hears ``bot.delayed`` and can ask for a person.
        transaction.on_commit(lambda: bot_answer.delay(conversation.pk, seq), robust=True)
    elif posted.created and conversation.status == Conversation.Status.WAITING:
        _announce_queue(conversation.site_id)
    elif posted.created and conversation.status == Conversation.Status.ASSIGNED:
        message = posted.message
        _after_commit(
            lambda: notifications.agent_notify_reply(conversation=conversation, message=message)
        )


def bot_answer_overdue(*, conversation_id: int, seq: int) -> bool:
    """Whether the visitor's message ``seq`` is still waiting for the bot: the bot leads and
    nothing (no answer, no hand-off, no newer message) was posted after it."""
    return Conversation.objects.filter(
        pk=conversation_id, status=Conversation.Status.BOT, last_seq=seq
    ).exists()


def agent_message_post(
    *,
    conversation: Conversation,
    agent: Agent,
    body: str,
    client_id: str,
    meta: dict[str, Any] | None = None,
) -> Posted:
    """An agent replies. Replying to an unassigned conversation takes it first; replying to a
    closed one reopens it as the replying agent's."""
    with transaction.atomic():
        if not conversation.is_open:
            _reopen(conversation, assignee=agent)
        elif conversation.assignee_id != agent.pk:
            conversation_take(conversation=conversation, agent=agent)
        posted = message_post(
            conversation=conversation,
            author=Message.Author.AGENT,
            body=body,
            client_id=client_id,
            agent=agent,
            meta=meta,
        )
        if posted.created:
            message = posted.message
            _after_commit(
                lambda: notifications.visitor_notify_reply(
                    conversation=conversation, message=message
                )
            )
        return posted


def conversation_handoff(
    *, conversation: Conversation, reason: str, confidence: float | None = None
) -> bool:
    """Put the conversation in the human queue. False when it is already past the bot."""
    with transaction.atomic():
        updated = Conversation.objects.filter(
            pk=conversation.pk, status=Conversation.Status.BOT
        ).update(
            status=Conversation.Status.WAITING,
            queued_at=timezone.now(),
            handoff_reason=reason,
            priority=_queue_priority(conversation.visitor),
        )
        if not updated:
            return False
        conversation.refresh_from_db()
        _system_post(
            conversation,
            gettext_lazy("Connecting you with a person. Someone will be with you shortly."),
            meta={"event": "handoff", "reason": reason, "confidence": confidence},
        )
        _announce(conversation)
        _announce_queue(conversation.site_id)
        _after_commit(lambda: notifications.agents_notify_queued(conversation=conversation))
    return True


def conversation_take(*, conversation: Conversation, agent: Agent) -> None:
    """Assign the conversation to ``agent``. Of two agents taking at once exactly one wins."""
    with transaction.atomic():
        updated = Conversation.objects.filter(
            pk=conversation.pk,
            status__in=[Conversation.Status.BOT, Conversation.Status.WAITING],
        ).update(status=Conversation.Status.ASSIGNED, assignee=agent, assigned_at=timezone.now())
        if not updated:
            conversation.refresh_from_db()
            raise Conflict(_("This conversation is already being handled."))
        conversation.refresh_from_db()
        _system_post(
            conversation,
            gettext_lazy("%(name)s joined the conversation."),
            meta={"event": "assigned", "agent_id": agent.pk},
            name=agent.display_name,
        )
        assignment_started(conversation=conversation, agent=agent)
        inbox_notify(agent_id=agent.pk, conversation_id=conversation.pk)
        _announce(conversation)
        _announce_queue(conversation.site_id)


def conversation_close(
    *, conversation: Conversation, by: Agent | None, survey: bool = True
) -> None:
    """Close the conversation (``by`` None: the visitor ended it). Unless the agent chose to
    close without one (``survey=False``), the visitor is asked for a rating when the site's
    rules allow."""
    with transaction.atomic():
        updated = (
            Conversation.objects.filter(pk=conversation.pk)
            .exclude(status=Conversation.Status.CLOSED)
            .update(status=Conversation.Status.CLOSED, closed_at=timezone.now())
        )
        if not updated:
            raise Conflict(_("This conversation is already closed."))
        conversation.refresh_from_db()
        _system_post(
            conversation,
            gettext_lazy("This conversation was closed."),
            meta={"event": "closed", "agent_id": by.pk if by else None},
        )
        if conversation.messages.filter(author=Message.Author.AGENT).exists():
            _after_commit(lambda: notifications.transcript_send(conversation=conversation))
        inbox_notify(agent_id=conversation.assignee_id, conversation_id=conversation.pk)
        _announce(conversation)
        if survey:
            csat_request(conversation=conversation, by=by)
        _announce_queue(conversation.site_id)


def conversation_reopen(*, conversation: Conversation, agent: Agent) -> None:
    """An agent reopens a closed conversation; it becomes theirs."""
    with transaction.atomic():
        locked = (
            Conversation.objects.select_for_update()
            .filter(pk=conversation.pk, status=Conversation.Status.CLOSED)
            .first()
        )
        if locked is None:
            conversation.refresh_from_db()
            raise Conflict(_("This conversation is already open."))
        _reopen(conversation, assignee=agent)
        Conversation.objects.filter(pk=conversation.pk).update(assigned_at=timezone.now())
        conversation.refresh_from_db()
        _system_post(
            conversation,
            gettext_lazy("%(name)s reopened the conversation."),
            meta={"event": "reopened", "agent_id": agent.pk},
            name=agent.display_name,
        )
        assignment_started(conversation=conversation, agent=agent)
        inbox_notify(agent_id=agent.pk, conversation_id=conversation.pk)


def feedback_record(*, conversation: Conversation, seq: int, helpful: bool) -> Message:
    """The visitor rated a bot answer.

    The first "not helpful" lets the visitor rephrase (or ask for a person); the second hands
    the conversation to a person.
    """
    message = Message.objects.filter(
        conversation=conversation, seq=seq, author=Message.Author.BOT
    ).first()
    if message is None:
        raise Conflict(_("Only the assistant's answers can be rated."))
    already_unhelpful = message.helpful is False
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(helpful=helpful)
        message.helpful = helpful
        if not helpful and not already_unhelpful:  # a resent "No" counts once
            _unhelpful_answer(conversation, message)
    return message


def _unhelpful_answer(conversation: Conversation, rated: Message) -> None:
    unhelpful = Message.objects.filter(
        conversation=conversation, author=Message.Author.BOT, helpful=False
    ).count()
    if unhelpful >= bots.UNHELPFUL_LIMIT:
        conversation_handoff(
            conversation=conversation,
            reason=str(bots.HandoffReason.UNHELPFUL),
            confidence=(rated.meta or {}).get("confidence"),
        )
        return
    conversation.refresh_from_db(fields=["status"])
    if not conversation.is_with_bot:
        return
    _system_post(
        conversation,
        gettext_lazy(
            "Sorry that did not help. Could you ask in other words? "
            "Or choose “Talk to a person” and someone will take over."
        ),
        meta={"event": "unhelpful", "rated_seq": rated.seq},
        author=Message.Author.BOT,
    )


def _reopen(conversation: Conversation, assignee: Agent | None = None) -> None:
    if assignee is not None:
        status = Conversation.Status.ASSIGNED
    elif conversation.site.bot_enabled:
        status = Conversation.Status.BOT
    else:
        status = Conversation.Status.WAITING
    Conversation.objects.filter(pk=conversation.pk).update(
        status=status,
        assignee=assignee,
        closed_at=None,
        handoff_reason="",
        queued_at=timezone.now() if status == Conversation.Status.WAITING else None,
    )
    conversation.refresh_from_db()
    _announce(conversation)
    _announce_queue(conversation.site_id)


def _system_post(
    conversation: Conversation,
    text: str | Promise,
    *,
    meta: dict[str, Any],
    author: Message.Author = Message.Author.SYSTEM,
    **params: object,
) -> None:
    """Post an event message, worded in the conversation's language."""
    with translation.override(_conversation_language(conversation)):
        body = str(text) % params if params else str(text)
    message_post(conversation=conversation, author=author, body=body, meta=meta)


def _conversation_language(conversation: Conversation) -> str:
    return conversation.site.language or conversation.visitor.language or "en"


def _announce(conversation: Conversation) -> None:
    send_after_commit(
        conversation_groups(conversation.pk),
        conversation_frame(conversation),
    )


def _queue_priority(visitor: Visitor) -> int:
    """Customers who told us who they are go first."""
    return Conversation.Priority.HIGH if visitor.email else Conversation.Priority.NORMAL


def _announce_queue(site_id: int) -> None:
    queue_announce(site_id)


def _after_commit(notify: Callable[[], object]) -> None:
    """Notifications go out after commit, and a failure there never fails the chat."""
    after_commit(notify)
