"""Customer satisfaction: the survey asked when a conversation closes, and its answer.

A survey is a ``CsatRating`` row created at close (score empty) that copies who the
conversation is attributed to; the visitor answers it once, in the widget or from the signed
link of ``csat_link`` (for customers who left before rating).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from chat import access
from chat.models import Agent, Conversation, CsatRating, Team, Visitor
from chat.protocol import CsatRequested
from chat.realtime import send_after_commit, visitor_group

LINK_SALT = "helpdesk.csat.link"
MAX_COMMENT_CHARS = 1000


class CsatError(Exception):
    """The rating cannot be stored: none was asked for, or it was answered already."""


class BadLink(Exception):
    """A rating link that is forged, expired or names a conversation that is gone."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True)
class Skip:
    """Why a closing conversation gets no survey ("" when it gets one)."""

    reason: str

    def __bool__(self) -> bool:
        return bool(self.reason)


def csat_skip_reason(*, conversation: Conversation, now: datetime) -> Skip:
    """The site's eligibility rules, in order: off, bot-only, asked before, asked recently."""
    site = conversation.site
    if not site.csat_enabled:
        return Skip("disabled")
    if site.csat_only_if_human and conversation.first_response_at is None:
        return Skip("no_human_reply")
    if CsatRating.objects.filter(conversation=conversation).exists():
        return Skip("already_asked")
    if site.csat_cooldown_days:
        since = now - timedelta(days=site.csat_cooldown_days)
        recent = CsatRating.objects.filter(
            visitor_id=conversation.visitor_id, requested_at__gte=since
        )
        if recent.exists():
            return Skip("asked_recently")
    return Skip("")


def csat_request(*, conversation: Conversation, by: Agent | None) -> CsatRating | None:
    """At close: create the survey if the site's rules allow, and ask the widget after commit.

    Called inside the close's transaction; ``by`` is the agent who closed (None: the visitor).
    """
    now = timezone.now()
    if csat_skip_reason(conversation=conversation, now=now):
        return None
    agent = conversation.assignee or by
    team = conversation.team or _agent_team(agent, conversation.site_id)
    site = conversation.site
    rating = CsatRating.objects.create(
        conversation=conversation,
        site=site,
        visitor_id=conversation.visitor_id,
        agent=agent,
        agent_name=agent.display_name if agent else "",
        team=team,
        team_name=team.name if team else "",
        resolved_by=(
            CsatRating.ResolvedBy.HUMAN
            if conversation.first_response_at
            else CsatRating.ResolvedBy.BOT
        ),
        scale=site.csat_scale,
        question=site.csat_question,
        requested_at=now,
    )
    send_after_commit([visitor_group(conversation.pk)], csat_requested_frame(rating))
    return rating


def _agent_team(agent: Agent | None, site_id: int) -> Team | None:
    if agent is None:
        return None
    return agent.teams.filter(site_id=site_id).order_by("name").first()


FACES = ("😞", "🙁", "😐", "🙂", "😄")


def scale_choices(rating: CsatRating | None) -> list[tuple[int, str]]:
    """``(score, symbol)`` for the rating page, in the scale the survey was asked in."""
    if rating is not None and rating.scale == "emoji":
        return list(enumerate(FACES, start=1))
    return [(n, "★") for n in range(1, 6)]


def csat_pending(*, conversation: Conversation) -> CsatRating | None:
    """The survey of ``conversation`` still waiting for its answer, if any."""
    return CsatRating.objects.filter(conversation=conversation, score__isnull=True).first()


def csat_requested_frame(rating: CsatRating) -> CsatRequested:
    return CsatRequested(
        conversation_id=rating.conversation_id,
        scale=rating.scale,  # type: ignore[arg-type]
        question=rating.question,
    )


def csat_record(*, conversation: Conversation, score: int, comment: str = "") -> CsatRating:
    """Store the visitor's answer to the survey of ``conversation``: exactly once."""
    if not 1 <= score <= 5:
        raise CsatError(_("The rating must be from 1 to 5."))
    comment = comment.strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise CsatError(_("Comments are limited to %(n)d characters.") % {"n": MAX_COMMENT_CHARS})
    with transaction.atomic():
        # The conditional UPDATE is what makes a double submit (two tabs, a resend) count once.
        answered = CsatRating.objects.filter(conversation=conversation, score__isnull=True).update(
            score=score, comment=comment, rated_at=timezone.now()
        )
        rating = CsatRating.objects.filter(conversation=conversation).first()
        if rating is None:
            raise CsatError(_("No rating was asked for this conversation."))
        if not answered:
            raise CsatError(_("This conversation has been rated already."))
    return rating


# --- Signed links ----------------------------------------------------------------------------


def csat_link(conversation: Conversation) -> str:
    """The absolute path of the page where the visitor can rate ``conversation`` later.

    Signed (``SECRET_KEY``) and valid for ``HELPDESK_CSAT_LINK_DAYS``; it only names the
    conversation and its visitor, so it works for nobody else's.
    """
    payload = {"c": conversation.pk, "v": str(conversation.visitor.public_id)}
    token = signing.dumps(payload, salt=LINK_SALT)
    return reverse("csat_rate", args=[token])


def csat_conversation_from_link(token: str) -> Conversation:
    """The conversation a rating link names, or ``BadLink`` (forged, expired, gone)."""
    max_age = timedelta(days=settings.HELPDESK_CSAT_LINK_DAYS)
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise BadLink(expired=True) from None
    except signing.BadSignature:
        raise BadLink(expired=False) from None
    if not isinstance(payload, dict):
        raise BadLink(expired=False)
    try:
        public_id = uuid.UUID(str(payload.get("v")))
    except ValueError:
        raise BadLink(expired=False) from None
    visitor = Visitor.objects.filter(public_id=public_id).first()
    conversation_id = payload.get("c")
    if visitor is None or not isinstance(conversation_id, int):
        raise BadLink(expired=False)
    try:
        return access.conversation_for_visitor(visitor=visitor, conversation_id=conversation_id)
    except access.NotFound:
        raise BadLink(expired=False) from None
