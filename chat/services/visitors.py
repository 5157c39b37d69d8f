"""Visitors and the signed tokens that let their browser come back to them."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import translation
from django.utils.translation import get_supported_language_variant
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header

from chat.memo import Memo
from chat.models import Conversation, Message, Site, Visitor
from chat.services.messages import message_post
from chat.services.queue import queue_announce

TOKEN_SALT = "chat.visitor"

# Every widget socket names its site by key when it connects: the process remembers each
# site for a few seconds, one object for all of its sockets (a process holds thousands).
# A site saved or deleted in this process is forgotten once that commits; other processes
# see the change within SITE_MEMORY_SECONDS, as sockets that connect after it.
SITE_MEMORY_SECONDS = 5.0
sites_by_key = Memo[str, Site](SITE_MEMORY_SECONDS)


class BadToken(Exception):
    """The token is forged, for another site, or expired."""


class InvalidEmail(Exception):
    """The address given to be answered at is not an e-mail address."""


def site_for_key(key: str) -> Site | None:
    """The site whose widget key this is, shared by every caller of the process: read it,
    never change it."""
    if not key:
        return None
    return sites_by_key.get(key, lambda key: Site.objects.filter(key=key).first())


def _site_changed(sender: type[Site], instance: Site, **kwargs: object) -> None:
    sites_by_key.forget_after_commit()  # all: the key itself may be what changed


post_save.connect(_site_changed, sender=Site)
post_delete.connect(_site_changed, sender=Site)


def visitor_create(*, site: Site, accept_language: str = "", user_agent: str = "") -> Visitor:
    return Visitor.objects.create(
        site=site, language=supported_language(accept_language), user_agent=user_agent[:300]
    )


def supported_language(accept_language: str) -> str:
    """The first language of an Accept-Language header that we speak ("zh-CN" → "zh-hans")."""
    for code, _quality in parse_accept_lang_header(accept_language[:500]):
        if code == "*":
            continue
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return ""


def visitor_token(visitor: Visitor) -> str:
    return signing.dumps({"v": str(visitor.public_id), "s": visitor.site_id}, salt=TOKEN_SALT)


def visitor_from_token(*, site: Site, token: str) -> Visitor:
    max_age = timedelta(days=settings.HELPDESK_VISITOR_TOKEN_DAYS)
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=max_age)
    except signing.BadSignature:
        raise BadToken from None
    if not isinstance(data, dict) or data.get("s") != site.pk or not isinstance(data.get("v"), str):
        raise BadToken
    visitor = Visitor.objects.filter(site=site, public_id=data["v"]).first()
    if visitor is None:
        raise BadToken
    visitor.site = site  # the caller's object, not a second copy loaded on first use
    return visitor


def visitor_from_bearer(token: str) -> Visitor:
    """The visitor of a token sent without its site (HTTP ``Authorization: Bearer``)."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT)  # the age is checked below
    except signing.BadSignature:
        raise BadToken from None
    site_id = data.get("s") if isinstance(data, dict) else None
    site = Site.objects.filter(pk=site_id).first() if isinstance(site_id, int) else None
    if site is None:
        raise BadToken
    return visitor_from_token(site=site, token=token)


def visitor_contact_set(*, visitor: Visitor, email: str, name: str = "") -> Visitor:
    """The visitor leaves an address to be answered at (nobody online, or they cannot wait).

    Their waiting conversation stays in the queue as an offline message, noted for agents,
    and moves up: we know who to answer.
    """
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise InvalidEmail(email) from None
    with transaction.atomic():
        visitor.email = email
        visitor.name = name.strip()[:120] or visitor.name
        visitor.save(update_fields=["email", "name", "last_seen_at"])
        waiting = visitor.conversations.filter(status=Conversation.Status.WAITING).first()
        if waiting is not None:
            Conversation.objects.filter(pk=waiting.pk).update(priority=Conversation.Priority.HIGH)
            with translation.override(visitor.site.language or visitor.language or "en"):
                body = _("Thanks! If nobody can answer here, we will reply to %(email)s.") % {
                    "email": email
                }
            message_post(
                conversation=waiting,
                author=Message.Author.SYSTEM,
                body=body,
                meta={"event": "offline_message", "email": email},
            )
            queue_announce(visitor.site_id)
    return visitor
