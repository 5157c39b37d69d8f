"""Background work. Tasks take ids and call a service."""

from celery import shared_task

from chat.services.bot import bot_respond


@shared_task(acks_late=True, max_retries=3, default_retry_delay=2)
def bot_answer(conversation_id: int, seq: int) -> None:
    bot_respond(conversation_id=conversation_id, seq=seq)


@shared_task(acks_late=True)
def kb_reindex(site_id: int) -> None:
    """Warm the site's retrieval index after its knowledge base changed."""
    # Imported here so this task can be appended without touching the imports above.
    from chat.services.knowledge import knowledge_reindex

    knowledge_reindex(site_id=site_id)
