"""Template context every page may need."""

from __future__ import annotations

from django.http import HttpRequest

from chat.transports import vapid_public_key


def notifications(request: HttpRequest) -> dict[str, str]:
    """The key browsers subscribe to Web Push with (empty: push is off)."""
    return {"vapid_public_key": vapid_public_key()}
