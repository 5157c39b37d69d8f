"""Labels on conversations: one site's labels, put on and taken off in the console."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from chat.models import Conversation, Label
from chat.protocol import QueueChanged
from chat.realtime import send_after_commit, site_agents_group
from chat.services.conversations import Conflict


def conversation_label_add(*, conversation: Conversation, label: Label) -> None:
    if label.site_id != conversation.site_id:
        raise Conflict(_("That label belongs to another site."))
    with transaction.atomic():
        conversation.labels.add(label)
        _announce(conversation)


def conversation_label_remove(*, conversation: Conversation, label: Label) -> None:
    with transaction.atomic():
        conversation.labels.remove(label)
        _announce(conversation)


def _announce(conversation: Conversation) -> None:
    # The lists show labels and filter by them; nothing about routing changed.
    send_after_commit(
        [site_agents_group(conversation.site_id)], QueueChanged(site_id=conversation.site_id)
    )
