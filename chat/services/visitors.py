"""Visitors and the signed tokens that let their browser come back to them."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.utils.translation import get_supported_language_variant
from django.utils.translation.trans_real import parse_accept_lang_header

from chat.models import Site, Visitor

TOKEN_SALT = "chat.visitor"


class BadToken(Exception):
    """The token is forged, for another site, or expired."""


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
    return visitor
