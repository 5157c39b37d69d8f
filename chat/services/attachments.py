"""Files in conversations: checked, stored, posted as a message, thumbnailed.

A file message is an ordinary message (its ``body`` is the file's name, for clients that
know nothing of attachments) whose ``meta["attachment"]`` describes the file, so sending
and syncing it cost no extra query. The ``Attachment`` row holds the stored files and is
what access checks and downloads go through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import QuerySet

from chat.models import Agent, Attachment, Conversation, Message, Visitor
from chat.protocol import AttachmentUpdated
from chat.realtime import conversation_groups, send_after_commit
from chat.services import conversations
from chat.services.frames import attachment_frame
from chat.services.messages import Posted, message_resent
from chat.services.uploads import (
    IMAGE_TYPES,
    Inspected,
    UploadRefused,
    thumbnail_bytes,
    upload_inspect,
)

log = logging.getLogger(__name__)

# Shown in the page (the others are always downloads). Never HTML or SVG: we accept neither.
INLINE_TYPES = IMAGE_TYPES

PostFn = Callable[[str, dict[str, Any]], Posted]


def attachment_send_from_visitor(
    *,
    visitor: Visitor,
    conversation: Conversation | None,
    upload: UploadedFile,
    client_id: str,
    consent: bool = False,
) -> Posted:
    """The visitor sends a file, in ``conversation`` or (None) in their open or a new one
    (``consent``: to the site's consent text, when the file starts a conversation)."""
    stored = (
        Message.objects.select_related("conversation__visitor")
        .filter(conversation__visitor=visitor, author=Message.Author.VISITOR, client_id=client_id)
        .first()
    )
    if stored is not None:  # a resend: checked before the file is even looked at
        return message_resent(stored)

    def post(body: str, meta: dict[str, Any]) -> Posted:
        return conversations.visitor_message_send(
            visitor=visitor,
            conversation=conversation,
            body=body,
            client_id=client_id,
            meta=meta,
            consent=consent,
        )

    return _store_and_post(upload=upload, inspected=_inspect(visitor.site, upload), post=post)


def attachment_send_from_agent(
    *, conversation: Conversation, agent: Agent, upload: UploadedFile, client_id: str
) -> Posted:
    """An agent sends a file; like a reply, it takes an unassigned conversation first."""
    stored = (
        conversation.messages.select_related("agent", "conversation__visitor")
        .filter(author=Message.Author.AGENT, client_id=client_id)
        .first()
    )
    if stored is not None:
        return message_resent(stored)

    def post(body: str, meta: dict[str, Any]) -> Posted:
        return conversations.agent_message_post(
            conversation=conversation, agent=agent, body=body, client_id=client_id, meta=meta
        )

    return _store_and_post(upload=upload, inspected=_inspect(conversation.site, upload), post=post)


def _inspect(site: Any, upload: UploadedFile) -> Inspected:
    return upload_inspect(site=site, file=upload, name=upload.name or "", size=upload.size or 0)


def _store_and_post(*, upload: UploadedFile, inspected: Inspected, post: PostFn) -> Posted:
    attachment = Attachment(
        name=inspected.name,
        size=inspected.size,
        content_type=inspected.content_type,
        width=inspected.width,
        height=inspected.height,
    )
    attachment.file.save("upload", upload, save=False)
    try:
        is_image = inspected.width is not None
        inline = is_image and inspected.decode_pixels <= settings.HELPDESK_THUMBNAIL_INLINE_PIXELS
        if inline:
            _thumbnail_save(attachment)
        with transaction.atomic():
            posted = post(inspected.name, {"attachment": describe(attachment)})
            if not posted.created:  # a resend of the same client_id won the race
                _discard(attachment)
                return posted
            attachment.message = posted.message
            attachment.conversation_id = posted.message.conversation_id
            attachment.save()
            if is_image and not inline:
                from chat.tasks import attachment_thumbnail

                pk = attachment.pk
                transaction.on_commit(lambda: attachment_thumbnail.delay(pk))
    except BaseException:
        _discard(attachment)
        raise
    return posted


def describe(attachment: Attachment) -> dict[str, Any]:
    """What the message's ``meta["attachment"]`` keeps (and its frames show) of the file."""
    return {
        "id": str(attachment.public_id),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "width": attachment.width,
        "height": attachment.height,
        "thumbnail": bool(attachment.thumbnail),
    }


def _thumbnail_save(attachment: Attachment) -> None:
    with attachment.file.open("rb") as original:
        data = thumbnail_bytes(original)
    name = f"{attachment.file.name}-thumb.webp"
    attachment.thumbnail.save(name, ContentFile(data), save=False)


def _discard(attachment: Attachment) -> None:
    for field in (attachment.file, attachment.thumbnail):
        if field:
            field.storage.delete(field.name)


def attachment_thumbnail_make(*, attachment_id: int) -> None:
    """Make a big image's thumbnail (a Celery task) and tell both sides it is there."""
    attachment = Attachment.objects.select_related("message").filter(pk=attachment_id).first()
    if attachment is None or attachment.thumbnail or attachment.width is None:
        return
    try:
        _thumbnail_save(attachment)
    except UploadRefused:  # the pixels are damaged: the file stays a download
        log.warning("attachment %s: no thumbnail, the image does not decode", attachment.pk)
        return
    with transaction.atomic():
        attachment.save(update_fields=["thumbnail"])
        message = attachment.message
        message.meta = {**message.meta, "attachment": describe(attachment)}
        Message.objects.filter(pk=message.pk).update(meta=message.meta)
        send_after_commit(
            conversation_groups(message.conversation_id),
            AttachmentUpdated(
                conversation_id=message.conversation_id,
                seq=message.seq,
                attachment=attachment_frame(message.meta["attachment"]),
            ),
        )


def attachment_files_delete(*, attachments: QuerySet[Attachment]) -> int:
    """Delete the stored files of ``attachments`` once the transaction that deletes their
    rows (with their messages or conversations) commits; a rollback keeps them."""
    names = [name for pair in attachments.values_list("file", "thumbnail") for name in pair if name]

    def delete() -> None:
        for name in names:
            default_storage.delete(name)

    transaction.on_commit(delete, robust=True)
    return len(names)
