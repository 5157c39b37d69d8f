"""Identity verification: customers the site's backend vouches for, on any device.

The site's backend proves who its signed-in customer is with the site's identity secret,
either as ``hash = HMAC-SHA256(secret, external_id)`` (hex, like Intercom's user_hash) or as
a short-lived HS256 JWT whose ``sub`` is the external id. A proven identity is linked to one
visitor per site; every browser that proves it gets that visitor's token and history.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import jwt
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from chat.models import CsatRating, Site, Visitor

# A leaked JWT is a login: one that lives longer than this is refused.
JWT_MAX_LIFETIME_SECONDS = 24 * 3600
JWT_LEEWAY_SECONDS = 30


class IdentityRefused(Exception):
    """The identity cannot be accepted; ``reason`` is ``required``, ``invalid`` or ``expired``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Identity:
    external_id: str
    name: str
    email: str
    verified: bool


def identity_hash(*, site: Site, external_id: str) -> str:
    """What the site's backend computes for its customer ``external_id``."""
    key = site.identity_secret.encode()
    return hmac.new(key, external_id.encode(), hashlib.sha256).hexdigest()


def identity_jwt(*, site: Site, external_id: str, lifetime: int = 600, **claims: str) -> str:
    """A token like the site's backend makes (documentation and tests)."""
    payload = {"sub": external_id, "exp": int(time.time()) + lifetime, **claims}
    return jwt.encode(payload, site.identity_secret, algorithm="HS256")


def identity_check(
    *,
    site: Site,
    external_id: str | None,
    name: str = "",
    email: str = "",
    hash: str | None = None,
    token: str | None = None,
) -> Identity:
    """Decide what the page's claim is worth on this site, or refuse it."""
    mode = site.identity_verification
    if token is not None:
        claims = _jwt_claims(site, token)
        subject = str(claims.get("sub", ""))
        if external_id is not None and external_id != subject:
            raise IdentityRefused("invalid", _("The identity token is for another customer."))
        name = name or str(claims.get("name", ""))
        email = email or str(claims.get("email", ""))
        return _identity(subject, name, email, verified=mode != Site.IdentityVerification.OFF)
    if not external_id:
        raise IdentityRefused("invalid", _("An identity needs an id or a token."))
    if hash is not None:
        if not hmac.compare_digest(hash.lower(), identity_hash(site=site, external_id=external_id)):
            raise IdentityRefused("invalid", _("The identity signature does not match."))
        return _identity(external_id, name, email, verified=mode != Site.IdentityVerification.OFF)
    if mode == Site.IdentityVerification.REQUIRED:
        raise IdentityRefused("required", _("This site accepts only signed identities."))
    return _identity(external_id, name, email, verified=False)


def _jwt_claims(site: Site, token: str) -> dict[str, object]:
    try:
        claims: dict[str, object] = jwt.decode(
            token,
            site.identity_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
            leeway=JWT_LEEWAY_SECONDS,
        )
    except jwt.ExpiredSignatureError:
        raise IdentityRefused("expired", _("The identity token has expired.")) from None
    except jwt.InvalidTokenError:
        raise IdentityRefused("invalid", _("The identity token is not valid.")) from None
    exp = claims["exp"]
    if not isinstance(exp, int | float) or exp > time.time() + JWT_MAX_LIFETIME_SECONDS:
        raise IdentityRefused("invalid", _("Identity tokens may live at most a day."))
    if not str(claims["sub"]).strip() or len(str(claims["sub"])) > 200:
        raise IdentityRefused("invalid", _("The identity token has no usable subject."))
    return claims


def _identity(external_id: str, name: str, email: str, *, verified: bool) -> Identity:
    try:
        validate_email(email)
    except ValidationError:
        email = ""  # contact details are a courtesy: a bad address is dropped, not refused
    name = name.strip()[:120]
    return Identity(external_id=external_id, name=name, email=email, verified=verified)


def visitor_identify(*, visitor: Visitor, identity: Identity) -> Visitor:
    """The visitor this browser speaks for from now on.

    Unverified identities only fill in the name and address. A verified one becomes the
    visitor's external id; if another browser proved it first, that visitor is returned and
    this browser's anonymous conversations move to it (they were the same person's).
    """
    if not identity.verified:
        return _contact_set(visitor, identity)
    if visitor.external_id == identity.external_id:
        return _contact_set(visitor, identity)
    for _attempt in range(2):  # two browsers may claim a new identity at the same instant
        existing = Visitor.objects.filter(
            site_id=visitor.site_id, external_id=identity.external_id
        ).first()
        try:
            with transaction.atomic():
                if existing is not None:
                    if not visitor.external_id:
                        CsatRating.objects.filter(visitor=visitor).update(visitor=existing)
                        visitor.conversations.update(visitor=existing)
                    return _contact_set(existing, identity)
                if not visitor.external_id:
                    visitor.external_id = identity.external_id
                    visitor.save(update_fields=["external_id", "last_seen_at"])
                    return _contact_set(visitor, identity)
                # Someone else was signed in on this browser: a new visitor for the new one.
                created = Visitor.objects.create(
                    site_id=visitor.site_id,
                    external_id=identity.external_id,
                    language=visitor.language,
                    user_agent=visitor.user_agent,
                )
                return _contact_set(created, identity)
        except IntegrityError:
            continue
    raise IntegrityError("identity claimed concurrently")  # pragma: no cover


def _contact_set(visitor: Visitor, identity: Identity) -> Visitor:
    changed = []
    if identity.name and identity.name != visitor.name:
        visitor.name = identity.name
        changed.append("name")
    if identity.email and identity.email != visitor.email:
        visitor.email = identity.email
        changed.append("email")
    if changed:
        visitor.save(update_fields=[*changed, "last_seen_at"])
    return visitor
