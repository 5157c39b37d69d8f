"""Background work. Tasks take ids and call a service."""

from typing import Any

from celery import shared_task
from celery.signals import worker_process_init

from chat.services.bot import (
    bot_respond,
    bot_respond_in_background,
    bot_uses_model,
    bot_warm_up_in_background,
)


@worker_process_init.connect
def warm_up_bot(**kwargs: Any) -> None:
    """Each worker process loads the model and hot indexes before its first bot turn.

    In a thread: a process that takes longer than ``worker_proc_alive_timeout`` to initialise
    is killed by the pool.
    """
    bot_warm_up_in_background()


@shared_task(bind=True, acks_late=True, max_retries=3, default_retry_delay=2)
def bot_answer(self: Any, conversation_id: int, seq: int) -> None:
    # Eager (no broker), "delay" runs here, on the socket or request that stored the message.
    # Retrieval takes milliseconds and stays inline; a model's seconds run beside it.
    if self.request.is_eager and bot_uses_model(conversation_id=conversation_id):
        bot_respond_in_background(conversation_id=conversation_id, seq=seq)
        return
    bot_respond(conversation_id=conversation_id, seq=seq)


@shared_task(acks_late=True)
def kb_reindex(site_id: int) -> None:
    """Warm the site's retrieval index after its knowledge base changed."""
    # Imported here so this task can be appended without touching the imports above.
    from chat.services.knowledge import knowledge_reindex

    knowledge_reindex(site_id=site_id)


@shared_task(acks_late=True)
def queue_update(site_id: int) -> None:
    """Route the site's queue (when automatic) and send waiting visitors their places."""
    from chat.services.routing import queue_update as update

    update(site_id=site_id)


@shared_task(acks_late=True)
def reassign_check(conversation_id: int, agent_id: int) -> None:
    """Enqueued with a countdown on assignment; does nothing if run early or answered."""
    from chat.services.routing import reassign_if_unanswered

    reassign_if_unanswered(conversation_id=conversation_id, agent_id=agent_id)


@shared_task(acks_late=True)
def reassign_overdue() -> int:
    """Beat: requeue every conversation left unanswered past its site's limit."""
    from chat.services.routing import reassign_overdue as sweep

    return sweep()


@shared_task(acks_late=True)
def presence_check(agent_id: int) -> None:
    """Enqueued with a countdown when an agent's last console socket closes."""
    from chat.services.presence import presence_check as check

    check(agent_id=agent_id)


@shared_task(acks_late=True)
def presence_sweep() -> int:
    """Beat: agents whose consoles went silent for a minute go offline."""
    from chat.services.presence import presence_sweep as sweep

    return sweep()


@shared_task(acks_late=True)
def retention_sweep() -> int:
    """Beat: delete or anonymise conversations past their site's retention, and finished
    deliveries past HELPDESK_DELIVERY_DAYS. Returns the conversations."""
    from chat.services.privacy import deliveries_expire
    from chat.services.privacy import retention_sweep as sweep

    deliveries_expire()
    return sweep()


@shared_task(acks_late=True)
def attachment_thumbnail(attachment_id: int) -> None:
    """A big image's thumbnail, made outside the upload request."""
    from chat.services.attachments import attachment_thumbnail_make

    attachment_thumbnail_make(attachment_id=attachment_id)


@shared_task(acks_late=True)
def delivery_send(delivery_id: int) -> None:
    """One try of a push or an e-mail; a temporary failure enqueues the next, up to a limit."""
    from chat.services.deliveries import delivery_attempt

    delivery_attempt(delivery_id=delivery_id)


@shared_task(acks_late=True)
def email_fallback_check(conversation_id: int) -> None:
    """Enqueued with the site's countdown after an agent reply: e-mail it if still unseen."""
    from chat.services.notifications import email_unseen_send

    email_unseen_send(conversation_id=conversation_id, now=None)


@shared_task(acks_late=True)
def email_fallback_sweep() -> int:
    """Beat: e-mail replies left unseen past their site's limit (countdowns may be lost)."""
    from chat.services.notifications import email_fallback_sweep as sweep

    return sweep()
