"""The providers we send through, each behind one small class with one ``send`` method.

Both raise ``TransportError``, which says whether trying again could help (``permanent``)
and, for Web Push, whether the subscription is gone for good (404/410: remove it).
"""

from __future__ import annotations

import json
import smtplib
from functools import cache
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection


class TransportError(Exception):
    def __init__(self, message: str, *, permanent: bool, gone: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.gone = gone


@cache
def _vapid(private_key: str) -> Any:
    from py_vapid import Vapid

    return Vapid.from_string(private_key=private_key)


def vapid_public_key() -> str:
    """The application server key browsers subscribe with (base64url, uncompressed point)."""
    if not settings.VAPID_PRIVATE_KEY:
        return ""
    from cryptography.hazmat.primitives import serialization
    from py_vapid.utils import b64urlencode

    point = _vapid(settings.VAPID_PRIVATE_KEY).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return str(b64urlencode(point))


class WebPushTransport:
    """Encrypts (aes128gcm) and signs (VAPID) a payload, and posts it to the push service."""

    def send(self, *, subscription: dict[str, Any], payload: dict[str, Any]) -> None:
        from pywebpush import WebPushException, webpush

        if not settings.VAPID_PRIVATE_KEY:
            raise TransportError("Web Push is off: VAPID_PRIVATE_KEY is not set", permanent=True)
        try:
            webpush(
                subscription_info=subscription,
                data=json.dumps(payload, ensure_ascii=False),
                vapid_private_key=_vapid(settings.VAPID_PRIVATE_KEY),
                vapid_claims={"sub": settings.VAPID_SUBJECT},
                ttl=settings.WEBPUSH_TTL,
                timeout=settings.WEBPUSH_TIMEOUT,
            )
        except WebPushException as error:
            status = getattr(error.response, "status_code", None)
            message = f"push service answered {status}" if status else str(error)[:500]
            if status in {404, 410}:
                raise TransportError(message, permanent=True, gone=True) from error
            # 429 and 5xx may pass; other 4xx (bad key, payload too large) will not.
            permanent = status is not None and 400 <= status < 500 and status != 429
            raise TransportError(message, permanent=permanent) from error
        except (OSError, ValueError) as error:
            # requests' connection errors are OSErrors; a malformed subscription is a ValueError.
            raise TransportError(
                str(error)[:500], permanent=isinstance(error, ValueError)
            ) from error


class EmailTransport:
    """Sends one message through Django's configured e-mail backend (SMTP in production)."""

    def send(self, *, to: list[str], subject: str, text: str, html: str | None = None) -> None:
        message = EmailMultiAlternatives(
            subject=subject,
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=to,
            connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
        )
        if html:
            message.attach_alternative(html, "text/html")
        try:
            message.send()
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise TransportError(
                f"recipient refused: {error.recipients}", permanent=all(c >= 500 for c in codes)
            ) from error
        except smtplib.SMTPResponseException as error:
            raise TransportError(
                f"SMTP {error.smtp_code}: {error.smtp_error!r}", permanent=error.smtp_code >= 500
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransportError(f"SMTP: {error}", permanent=False) from error


# The transports in use; tests point them at local servers through settings, not here.
webpush_transport = WebPushTransport()
email_transport = EmailTransport()
