"""Background work. Tasks take ids and call a service."""

from celery import shared_task

from chat.services.bot import bot_respond


@shared_task(acks_late=True, max_retries=3, default_retry_delay=2)
def bot_answer(conversation_id: int, seq: int) -> None:
    bot_respond(conversation_id=conversation_id, seq=seq)
