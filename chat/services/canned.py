"""Canned replies: a site's prepared answers, with the conversation's details filled in."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from chat.models import Agent, CannedReply, Conversation

# ``{name}`` or ``{{ customer.name }}`` (spaces optional); both spellings mean the same.
VARIABLE = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}|\{([a-z_.]+)\}")
ALIASES = {
    "name": "customer.name",
    "customer": "customer.name",
    "email": "customer.email",
    "agent": "agent.name",
    "site": "site.name",
}


def canned_render(*, text: str, conversation: Conversation, agent: Agent | None) -> str:
    """``text`` with its variables filled from the conversation; unknown ones kept as typed."""
    values = {
        "customer.name": conversation.visitor.name or _("there"),
        "customer.email": conversation.visitor.email,
        "agent.name": agent.display_name if agent else "",
        "site.name": conversation.site.name,
    }

    def fill(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2)
        key = ALIASES.get(key, key)
        return values[key] if key in values else match.group(0)

    return VARIABLE.sub(fill, text)


def canned_for(*, conversation: Conversation, agent: Agent | None) -> list[dict[str, str]]:
    """The site's canned replies for the reply box, each with its text already filled in."""
    return [
        {
            "shortcut": reply.shortcut,
            "title": reply.title,
            "body": canned_render(text=reply.body, conversation=conversation, agent=agent),
        }
        for reply in CannedReply.objects.filter(site_id=conversation.site_id).order_by("shortcut")
    ]
