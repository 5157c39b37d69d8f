"""Signed links into a conversation (e-mails, notifications) and the helpdesk's public URL."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from chat.models import Conversation, CsatRating

RESUME_SALT = "chat.resume"


def public_url(path: str) -> str:
    base = (settings.HELPDESK_PUBLIC_URL or "http://localhost:8000").rstrip("/")
    return base + path


def resume_token(conversation: Conversation, *, emailed: bool = False) -> str:
    data = {"c": conversation.pk, "v": str(conversation.visitor.public_id), "e": int(emailed)}
    return signing.dumps(data, salt=RESUME_SALT, compress=True)


def resume_link(conversation: Conversation, *, emailed: bool = True) -> str:
    """A signed link that reopens this conversation in the widget on the site's page."""
    token = resume_token(conversation, emailed=emailed)
    return public_url(reverse("resume", args=[token]))


def conversation_from_resume(token: str) -> tuple[Conversation, bool] | None:
    """The conversation a resume token names, and whether it came by e-mail; None if bad."""
    try:
        data = signing.loads(
            token, salt=RESUME_SALT, max_age=timedelta(days=settings.HELPDESK_LINK_DAYS)
        )
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("c"), int):
        return None
    if not isinstance(data.get("v"), str):
        return None
    conversation = (
        Conversation.objects.select_related("site", "visitor")
        .filter(pk=data["c"], visitor__public_id=str(data.get("v")))
        .first()
    )
    return (conversation, bool(data.get("e"))) if conversation else None


def csat_url(conversation: Conversation) -> str:
    """The rating link for the transcript e-mail, while a survey waits for an answer."""
    from chat.services.csat import csat_link

    waiting = CsatRating.objects.filter(conversation=conversation, score__isnull=True)
    return public_url(csat_link(conversation)) if waiting.exists() else ""
