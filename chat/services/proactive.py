"""The site's REST API: secret keys, and messages a business sends first (order shipped)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Message, Site, SiteApiKey, Visitor
from chat.services.messages import message_post
from chat.services.notifications import visitor_notify_reply

KEY_PREFIX = "hdk_"


class UnknownCustomer(Exception):
    """No customer of the site has this external id or (verified) e-mail address."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def site_api_key_create(
    *, site: Site, name: str = "", rotate: bool = False
) -> tuple[SiteApiKey, str]:
    """A new key for ``site``; the secret is returned once and only its hash is kept.
    ``rotate`` revokes the site's other keys."""
    lookup = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        if rotate:
            site.api_keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        key = SiteApiKey.objects.create(site=site, name=name, prefix=lookup, hashed=_hash(secret))
    return key, secret


def site_for_api_key(*, site_key: str, secret: str) -> Site | None:
    """The site whose public key is ``site_key`` if ``secret`` is one of its live keys."""
    parts = secret.split("_")
    if len(parts) < 3 or not secret.startswith(KEY_PREFIX):
        return None
    key = (
        SiteApiKey.objects.select_related("site")
        .filter(prefix=parts[1], revoked_at__isnull=True, site__key=site_key)
        .first()
    )
    if key is None or not hmac.compare_digest(key.hashed, _hash(secret)):
        return None
    SiteApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key.site


def customer_find(*, site: Site, external_id: str = "", email: str = "", name: str = "") -> Visitor:
    """The customer by the site's id for them, else by an e-mail address they proved theirs
    (they opened a link we sent there), else a new one known by that address.

    Addresses typed into the widget are not trusted on their own: anyone can type anyone's.
    """
    visitors = Visitor.objects.filter(site=site)
    if external_id:
        found = visitors.filter(external_id=external_id).order_by("-last_seen_at").first()
        if found is not None:
            return found
    if email:
        found = (
            visitors.filter(email__iexact=email, email_verified=True)
            .order_by("-last_seen_at")
            .first()
        )
        if found is None:
            found = visitors.filter(email__iexact=email, user_agent="", external_id="").first()
        if found is not None:
            if external_id and not found.external_id:
                found.external_id = external_id
                found.save(update_fields=["external_id"])
            return found
        return Visitor.objects.create(site=site, email=email, name=name, external_id=external_id)
    raise UnknownCustomer


@dataclass(frozen=True)
class Sent:
    message: Message
    visitor: Visitor
    delivery: dict[str, Any]


def proactive_message_send(*, site: Site, visitor: Visitor, body: str, sender: str = "") -> Sent:
    """Post ``body`` to the customer's open conversation (or a new one) and deliver it:
    live to open widgets, by push to subscribed browsers, by e-mail otherwise."""
    with transaction.atomic():
        conversation = visitor.conversations.open().order_by("-created_at").first()
        if conversation is None:
            # Not for the queue: a reply goes to the bot, or (no bot) reopens it as waiting.
            leads = Conversation.Status.BOT if site.bot_enabled else Conversation.Status.CLOSED
            conversation = Conversation.objects.create(
                site=site,
                visitor=visitor,
                status=leads,
                closed_at=timezone.now() if leads == Conversation.Status.CLOSED else None,
            )
        conversation = Conversation.objects.select_related("site", "visitor").get(
            pk=conversation.pk
        )
        posted = message_post(
            conversation=conversation,
            author=Message.Author.AGENT,
            body=body,
            meta={"event": "proactive", "sender": sender},
        )
        delivery = visitor_notify_reply(conversation=conversation, message=posted.message)
    return Sent(message=posted.message, visitor=visitor, delivery=delivery)
