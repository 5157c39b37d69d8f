"""``manage.py check --deploy``: settings a production site should not leave at the default."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.compatibility, deploy=True)
def public_url_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if settings.HELPDESK_PUBLIC_URL:
        return []
    return [
        Warning(
            "HELPDESK_PUBLIC_URL is not set: the links in e-mails (back to a conversation, "
            "rate it) point at http://localhost:8000.",
            hint="Set HELPDESK_PUBLIC_URL to the helpdesk's public address, "
            "e.g. https://help.example.com.",
            id="chat.W001",
        )
    ]
