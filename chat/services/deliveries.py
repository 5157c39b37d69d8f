"""Deliveries: one push or e-mail each, sent after commit by a task, tried a bounded number
of times, and recorded (status, attempts, error) however it went."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.models import Conversation, Delivery, PushSubscription
from chat.transports import TransportError, email_transport, webpush_transport

log = logging.getLogger(__name__)


def _enqueue(delivery: Delivery) -> None:
    from chat.tasks import delivery_send

    transaction.on_commit(lambda: delivery_send.delay(delivery.pk), robust=True)


def push_queue(
    *,
    subscriptions: list[PushSubscription],
    kind: str,
    payload: dict[str, Any],
    conversation: Conversation | None,
) -> list[Delivery]:
    deliveries = []
    for subscription in subscriptions:
        delivery = Delivery.objects.create(
            channel=Delivery.Channel.PUSH,
            kind=kind,
            recipient=subscription.endpoint[:300],
            conversation=conversation,
            agent_id=subscription.agent_id,
            visitor_id=subscription.visitor_id,
            subscription=subscription,
            payload=payload,
        )
        _enqueue(delivery)
        deliveries.append(delivery)
    return deliveries


def email_queue(
    *, to: str, kind: str, subject: str, text: str, conversation: Conversation | None
) -> Delivery:
    delivery = Delivery.objects.create(
        channel=Delivery.Channel.EMAIL,
        kind=kind,
        recipient=to,
        conversation=conversation,
        visitor=conversation.visitor if conversation else None,
        payload={"subject": subject, "text": text},
    )
    _enqueue(delivery)
    return delivery


def delivery_attempt(*, delivery_id: int) -> Delivery | None:
    """Try a delivery once; on a temporary failure enqueue the next try, up to the limit."""
    delivery = (
        Delivery.objects.select_related("subscription")
        .filter(pk=delivery_id, status__in=[Delivery.Status.PENDING, Delivery.Status.RETRYING])
        .first()
    )
    if delivery is None:
        return None
    delivery.attempts += 1
    try:
        _send(delivery)
    except TransportError as error:
        delivery.error = str(error)
        retry = not error.permanent and delivery.attempts < settings.HELPDESK_DELIVERY_ATTEMPTS
        delivery.status = Delivery.Status.RETRYING if retry else Delivery.Status.FAILED
        delivery.save(update_fields=["attempts", "error", "status"])
        if error.gone and delivery.subscription is not None:
            delivery.subscription.delete()  # the browser unsubscribed or the push expired
        if retry:
            from chat.tasks import delivery_send

            # Eager Celery ignores the countdown and tries again at once: still bounded.
            delivery_send.apply_async((delivery.pk,), countdown=5 * 2**delivery.attempts)
        else:
            log.warning("delivery %s failed: %s", delivery.pk, error)
        return delivery
    delivery.status = Delivery.Status.SENT
    delivery.error = ""
    delivery.sent_at = timezone.now()
    delivery.save(update_fields=["attempts", "error", "status", "sent_at"])
    return delivery


def _send(delivery: Delivery) -> None:
    if delivery.channel == Delivery.Channel.PUSH:
        if delivery.subscription is None:
            raise TransportError("the subscription was removed", permanent=True)
        webpush_transport.send(subscription=delivery.subscription.info(), payload=delivery.payload)
    else:
        email_transport.send(
            to=[delivery.recipient],
            subject=delivery.payload.get("subject", ""),
            text=delivery.payload.get("text", ""),
        )
