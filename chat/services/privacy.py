"""A customer's data: exported on request, erased on request, expired by the site's retention.

Erasure and retention keep anonymised statistics: the conversation rows with their
timestamps, status and hand-off reason, the bot's decisions without the question text, and
survey scores without their comments. Everything a customer wrote or left (messages, files,
name, e-mail, external id, browser, page) goes. Every export and erasure, and every
retention sweep that removed something, is recorded in the ``AuditLog``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.db import transaction
from django.db.models import DateTimeField, Max, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat.models import (
    Attachment,
    AuditLog,
    BotDecision,
    Conversation,
    CsatRating,
    Delivery,
    Message,
    PushSubscription,
    Site,
    Visitor,
)
from chat.realtime import conversation_groups, send_after_commit
from chat.services.attachments import attachment_files_delete, describe
from chat.services.frames import conversation_frame
from chat.services.queue import queue_announce

EXPORT_FORMAT = "helpdesk-customer-export/1"

User = AuthUser | AnonymousUser


@dataclass(frozen=True)
class Erased:
    conversations: int
    messages: int


def audit_record(
    *,
    action: AuditLog.Action,
    by: User | None,
    via: str,
    site: Site | None,
    visitor: Visitor | None = None,
    visitor_ref: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    actor = by if isinstance(by, AuthUser) else None
    return AuditLog.objects.create(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        via=via,
        site=site,
        visitor=visitor,
        visitor_ref=visitor_ref or (str(visitor.public_id) if visitor else ""),
        detail=detail or {},
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def visitor_export(*, visitor: Visitor, by: User | None, via: str) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready data; the export is audited."""
    conversations = (
        visitor.conversations.order_by("created_at")
        .select_related("site")
        .prefetch_related("messages__agent", "attachments__message")
    )
    data = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "site": {"id": visitor.site_id, "name": visitor.site.name},
        "customer": {
            "id": str(visitor.public_id),
            "external_id": visitor.external_id or None,
            "name": visitor.name,
            "email": visitor.email,
            "language": visitor.language,
            "user_agent": visitor.user_agent,
            "created_at": _iso(visitor.created_at),
            "last_seen_at": _iso(visitor.last_seen_at),
            "erased_at": _iso(visitor.erased_at),
        },
        "conversations": [_conversation_export(c) for c in conversations],
    }
    audit_record(
        action=AuditLog.Action.EXPORT,
        by=by,
        via=via,
        site=visitor.site,
        visitor=visitor,
        detail={"conversations": len(data["conversations"])},
    )
    return data


def _conversation_export(conversation: Conversation) -> dict[str, Any]:
    messages = sorted(conversation.messages.all(), key=lambda m: m.seq)
    csat = CsatRating.objects.filter(conversation=conversation, score__isnull=False).first()
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "created_at": _iso(conversation.created_at),
        "closed_at": _iso(conversation.closed_at),
        "page_url": conversation.page_url,
        "consent": (
            {"text": conversation.consent_text, "at": _iso(conversation.consent_at)}
            if conversation.consent_at
            else None
        ),
        "messages": [
            {
                "seq": m.seq,
                "author": m.author,
                "author_name": m.agent.display_name if m.agent else "",
                "body": m.body,
                "created_at": _iso(m.created_at),
            }
            for m in messages
        ],
        # The customer's answers to "Was this helpful?" and to the survey at close.
        "ratings": [
            {"seq": m.seq, "helpful": m.helpful, "kind": "bot_answer"}
            for m in messages
            if m.helpful is not None
        ]
        + (
            [
                {
                    "kind": "csat",
                    "score": csat.score,
                    "scale": csat.scale,
                    "comment": csat.comment,
                    "rated_at": _iso(csat.rated_at),
                }
            ]
            if csat
            else []
        ),
        # What was sent, not the files themselves (the API serves those to staff).
        "attachments": [
            describe(a) | {"seq": a.message.seq, "created_at": _iso(a.created_at)}
            for a in sorted(conversation.attachments.all(), key=lambda a: a.message.seq)
        ],
    }


def _conversations_anonymise(conversations: QuerySet[Conversation]) -> int:
    """Drop the text of these conversations; keep the rows. Returns messages removed."""
    now = timezone.now()
    ids = list(conversations.values_list("pk", flat=True))
    attachment_files_delete(attachments=Attachment.objects.filter(conversation_id__in=ids))
    _total, deleted = Message.objects.filter(conversation_id__in=ids).delete()  # attachments too
    messages = deleted.get(Message._meta.label, 0)
    BotDecision.objects.filter(conversation_id__in=ids).update(question="", scores=[])
    CsatRating.objects.filter(conversation_id__in=ids).update(comment="")  # the score stays
    Delivery.objects.filter(conversation_id__in=ids).delete()  # e-mail text, push previews
    still_open = Conversation.objects.filter(pk__in=ids).open()
    reopened_sites = set(still_open.values_list("site_id", flat=True))
    closed = list(still_open.values_list("pk", flat=True))
    still_open.update(status=Conversation.Status.CLOSED, closed_at=now)
    Conversation.objects.filter(pk__in=ids).update(page_url="", anonymised_at=now)
    for conversation in Conversation.objects.filter(pk__in=closed):
        frame = conversation_frame(conversation)
        send_after_commit(conversation_groups(conversation.pk), frame)
    for site_id in reopened_sites:
        queue_announce(site_id)
    return messages


def visitor_erase(*, visitor: Visitor, by: User | None, via: str) -> Erased:
    """Erase the customer: their messages and identity. Their old tokens stop working."""
    with transaction.atomic():
        old_ref = str(visitor.public_id)
        conversations = Conversation.objects.filter(visitor=visitor)
        count = conversations.count()
        messages = _conversations_anonymise(conversations)
        Delivery.objects.filter(visitor=visitor).delete()  # to their address or browsers
        PushSubscription.objects.filter(visitor=visitor).delete()
        visitor.name = ""
        visitor.email = ""
        visitor.external_id = ""
        visitor.user_agent = ""
        visitor.public_id = uuid.uuid4()  # tokens name the old id: they no longer open anything
        visitor.erased_at = timezone.now()
        visitor.save()
        audit_record(
            action=AuditLog.Action.ERASE,
            by=by,
            via=via,
            site=visitor.site,
            visitor=visitor,
            visitor_ref=old_ref,
            detail={"conversations": count, "messages": messages},
        )
    return Erased(conversations=count, messages=messages)


def expired_conversations(*, site: Site, now: datetime) -> QuerySet[Conversation]:
    """The site's conversations whose last message (or start) is older than its retention."""
    cutoff = now - timedelta(days=site.retention_days)
    last_activity = Coalesce(
        Max("messages__created_at"), "created_at", output_field=DateTimeField()
    )
    return (
        Conversation.objects.filter(site=site, anonymised_at__isnull=True)
        .annotate(last_activity=last_activity)
        .filter(last_activity__lt=cutoff)
    )


def retention_sweep(*, now: datetime | None = None) -> int:
    """Delete or anonymise every site's expired conversations. Returns how many."""
    now = now or timezone.now()
    total = 0
    for site in Site.objects.filter(retention_days__gt=0):
        with transaction.atomic():
            ids = list(expired_conversations(site=site, now=now).values_list("pk", flat=True))
            if not ids:
                continue
            expired = Conversation.objects.filter(pk__in=ids)
            if site.retention_action == Site.RetentionAction.DELETE:
                attachment_files_delete(
                    attachments=Attachment.objects.filter(conversation__in=expired)
                )
                expired.delete()
                messages = None
            else:
                messages = _conversations_anonymise(expired)
            audit_record(
                action=AuditLog.Action.RETENTION,
                by=None,
                via="beat",
                site=site,
                detail={
                    "action": site.retention_action,
                    "conversations": len(ids),
                    "messages": messages,
                    "days": site.retention_days,
                },
            )
        total += len(ids)
    return total


def deliveries_expire(*, now: datetime | None = None) -> int:
    """Delete sent and failed deliveries older than HELPDESK_DELIVERY_DAYS (their e-mail
    text and push payloads with them). Returns how many."""
    days = settings.HELPDESK_DELIVERY_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = Delivery.objects.filter(
        status__in=[Delivery.Status.SENT, Delivery.Status.FAILED], created_at__lt=cutoff
    )
    deleted, _by_model = finished.delete()
    return deleted
