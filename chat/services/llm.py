"""The language model's side of the bot's turn: which sites use it, and streaming its answer.

Deltas are ephemeral: sent straight to the conversation's sockets, never stored. The answer
itself is stored by ``chat.services.bot`` as an ordinary message carrying the ``stream_id``,
and replaces the streamed text on screen.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

from bots.llm import LlmClient
from chat.models import Conversation, Site
from chat.protocol import MessageDelta, MessageStreamEnded, MessageStreaming
from chat.realtime import conversation_groups, send_now


def llm_client(site: Site) -> LlmClient | None:
    """The model that writes ``site``'s answers, or None when it answers from retrieval only."""
    if site.llm_mode == Site.LlmMode.OFF:
        return None
    if site.llm_mode == Site.LlmMode.AUTO and not settings.OPENAI_API_KEY:
        return None
    return _client(
        base_url=settings.OPENAI_BASE_URL,
        api_key=settings.OPENAI_API_KEY,
        model=site.llm_model or settings.OPENAI_MODEL,
        timeout=settings.OPENAI_TIMEOUT,
        max_retries=settings.OPENAI_MAX_RETRIES,
    )


# One client per configuration keeps its connection pool warm across turns.
@lru_cache(maxsize=16)
def _client(
    *, base_url: str, api_key: str, model: str, timeout: float, max_retries: int
) -> LlmClient:
    return LlmClient(
        base_url=base_url, api_key=api_key, model=model, timeout=timeout, max_retries=max_retries
    )


@dataclass(frozen=True)
class AnswerStream:
    conversation_id: int
    id: str

    def send(self, text: str) -> None:
        frame = MessageDelta(conversation_id=self.conversation_id, stream_id=self.id, text=text)
        send_now(conversation_groups(self.conversation_id), frame)


@contextmanager
def answer_stream(conversation: Conversation) -> Iterator[AnswerStream]:
    """Show the bot typing, let the body stream text, and always say when the stream ended."""
    stream = AnswerStream(conversation_id=conversation.pk, id=secrets.token_hex(8))
    groups = conversation_groups(conversation.pk)
    send_now(groups, MessageStreaming(conversation_id=conversation.pk, stream_id=stream.id))
    try:
        yield stream
    finally:
        send_now(groups, MessageStreamEnded(conversation_id=conversation.pk, stream_id=stream.id))
