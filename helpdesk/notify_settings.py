"""Small helpers for the notification settings: a development VAPID key, EMAIL_URL."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def vapid_dev_key(path: Path) -> str:
    """The development VAPID private key (base64url DER) kept in ``path``, made once."""
    try:
        return str(json.loads(path.read_text())["private_key"])
    except (OSError, ValueError, KeyError):
        pass
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key = base64.urlsafe_b64encode(der).rstrip(b"=").decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole and renamed, so two processes starting at once agree on one key.
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as handle:
        json.dump({"private_key": key}, handle)
    try:
        os.link(handle.name, path)  # fails if another process got there first
    except FileExistsError:
        return vapid_dev_key(path)
    finally:
        os.unlink(handle.name)
    return key


def email_settings(url: str) -> dict[str, Any]:
    """``smtp://user:pass@host:587?tls`` → Django's EMAIL_* settings."""
    parts = urlsplit(url)
    if parts.scheme in {"console", "locmem", "dummy"}:
        return {"EMAIL_BACKEND": f"django.core.mail.backends.{parts.scheme}.EmailBackend"}
    if parts.scheme not in {"smtp", "smtps", "submission"}:
        raise ImproperlyConfigured(
            f"EMAIL_URL must start with smtp://, smtps:// or console:, got {url!r}"
        )
    query = parse_qs(parts.query, keep_blank_values=True)
    ssl = parts.scheme == "smtps" or "ssl" in query
    tls = "tls" in query or parts.scheme == "submission"
    try:
        port = parts.port or (465 if ssl else 587 if tls else 25)
    except ValueError:
        raise ImproperlyConfigured(f"EMAIL_URL has a bad port: {url!r}") from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": tls and not ssl,
        "EMAIL_USE_SSL": ssl,
    }
