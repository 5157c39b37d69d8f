"""The bot's turn: ask the ``bots`` library for a decision and carry it out.

With a language model (``chat.services.llm``), the model writes the answer from the top
retrieved entries, streaming it; when the model fails, the retrieval decision stands in.
Every turn leaves a ``BotDecision`` row saying what was decided and on which scores.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from asgiref.sync import SyncToAsync, async_to_sync
from django.conf import settings
from django.db import connection
from django.db.models import F, Max
from django.utils.translation import gettext

import bots
from bots.llm import LlmAnswer, LlmClient, LlmError, LlmResult, Passage
from chat.knowledge.entries import site_knowledge_index
from chat.models import BotDecision, Conversation, Message, Site
from chat.services.conversations import conversation_handoff
from chat.services.llm import AnswerStream, answer_stream, llm_client
from chat.services.messages import message_post
from chat.threads import DaemonThreadPool

log = logging.getLogger(__name__)

HISTORY_TURNS = 20
CANDIDATES = 5  # entries the model sees
# Below this retrieval confidence an entry is noise to the model (an unrelated question scores
# ~0.1 against every entry of a small knowledge base); with none above it, retrieval decides.
MIN_EVIDENCE = 0.2
LLM_HANDOFF = "llm_handoff"  # the hand-off reason when the model calls handoff_to_human
# Retrieval's verdicts that no model could improve on.
FINAL_HANDOFFS = {bots.HandoffReason.ASKED_FOR_HUMAN, bots.HandoffReason.NO_KNOWLEDGE}
# Sites whose indexes a starting process builds ahead of their first visitor.
WARM_SITES = 16
# Model turns at once in a process without a Celery broker; more wait their turn in line.
EAGER_MODEL_TURNS = 4

Candidates = Sequence[tuple[bots.KnowledgeEntry, float]]


@dataclass(frozen=True)
class Outcome:
    """What the turn did, for the decision log.

    A model answer that came too late (an agent took over, the visitor asked again) is an
    ``answer`` with reason "superseded" and no ``answer_seq``: nothing was posted.
    """

    outcome: BotDecision.Outcome
    reason: str = ""
    entry_id: int | None = None
    answer_seq: int | None = None
    used_llm: bool = False


def bot_respond(*, conversation_id: int, seq: int) -> None:
    """Answer the visitor message ``seq`` if the bot still leads and nothing newer came."""
    started = time.monotonic()
    conversation = Conversation.objects.select_related("site").filter(pk=conversation_id).first()
    if conversation is None or not conversation.is_with_bot:
        return
    question = _latest_visitor_message(conversation)
    if question is None or question.seq != seq:
        return  # a newer visitor message has its own turn coming
    index = knowledge_index(conversation.site)
    history = _history(conversation)
    decision = bots.decide(index=index, history=history, threshold=conversation.site.bot_threshold)
    client = llm_client(conversation.site)
    final = isinstance(decision, bots.Handoff) and decision.reason in FINAL_HANDOFFS
    candidates = [] if client is None or final else _evidence(index, question.body)
    if client is None or not candidates:
        outcome = _carry_out(conversation, decision)
    else:
        outcome = _ask_model(conversation, client, question, history, candidates, decision)
    BotDecision.objects.create(
        conversation=conversation,
        question_seq=seq,
        question=question.body,
        outcome=outcome.outcome,
        reason=outcome.reason,
        confidence=round(decision.confidence, 4),
        scores=[candidate.as_json() for candidate in decision.scores],
        entry_id=outcome.entry_id,
        answer_seq=outcome.answer_seq,
        used_llm=outcome.used_llm,
        latency_ms=round((time.monotonic() - started) * 1000, 1),
    )


def bot_uses_model(*, conversation_id: int) -> bool:
    """Whether the bot's turn in this conversation would call a language model."""
    conversation = Conversation.objects.select_related("site").filter(pk=conversation_id).first()
    return conversation is not None and llm_client(conversation.site) is not None


_eager_pool: DaemonThreadPool | None = None
_eager_pool_lock = threading.Lock()
_eager_turns: set[asyncio.Task[None]] = set()  # strong references until each is done


def bot_respond_in_background(*, conversation_id: int, seq: int) -> None:
    """``bot_respond`` in a small process-wide thread pool, for eager Celery (no broker).

    Run inline, a model turn would hold the visitor's socket for the seconds the model
    writes: no delta could reach the widget before the whole answer, nor any other frame be
    answered. Called under daphne, the turn is started from the server's event loop, so its
    frames are sent from that loop: the in-memory channel layer (the one eager Celery runs
    with) cannot wake a receiver from another loop. Each turn closes its database connection.
    """
    global _eager_pool
    with _eager_pool_lock:
        if _eager_pool is None:
            _eager_pool = DaemonThreadPool(EAGER_MODEL_TURNS, thread_name_prefix="bot-turn")
        pool = _eager_pool

    def run() -> None:
        try:
            bot_respond(conversation_id=conversation_id, seq=seq)
        except Exception:  # nobody awaits it: say it here; bot.delayed tells the visitor
            log.exception("Bot turn failed on conversation %s", conversation_id)
        finally:
            connection.close()

    loop = async_to_sync(_running_loop)()  # the server's loop when there is one
    if loop.is_closed():  # a loop made for this call only: no server here, a plain thread
        pool.submit(run)
        return

    def start() -> None:
        task = loop.create_task(SyncToAsync(run, thread_sensitive=False, executor=pool)())
        _eager_turns.add(task)
        task.add_done_callback(_eager_turns.discard)

    loop.call_soon_threadsafe(start)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _carry_out(
    conversation: Conversation, decision: bots.Decision, stream_id: str | None = None
) -> Outcome:
    """Post retrieval's answer (replacing the streamed bubble ``stream_id``), or hand off."""
    if isinstance(decision, bots.Answer):
        meta = {
            "entry_id": decision.entry_id,
            "title": decision.title,
            "confidence": round(decision.confidence, 4),
        }
        if stream_id is not None:
            meta["stream_id"] = stream_id
        posted = message_post(
            conversation=conversation, author=Message.Author.BOT, body=decision.body, meta=meta
        )
        return Outcome(
            BotDecision.Outcome.ANSWER,
            entry_id=decision.entry_id,
            answer_seq=posted.message.seq,
        )
    if isinstance(decision, bots.Clarify):
        # meta["clarify"] is for the widget's quick-reply buttons; each should send its title
        # back as the visitor's message, which the bot then answers with that entry.
        posted = message_post(
            conversation=conversation,
            author=Message.Author.BOT,
            body=gettext("Did you mean: %(titles)s?")
            % {"titles": " / ".join(title for _, title in decision.candidates)},
            meta={
                "clarify": [{"entry_id": i, "title": t} for i, t in decision.candidates],
                "confidence": round(decision.confidence, 4),
            },
        )
        return Outcome(BotDecision.Outcome.CLARIFY, answer_seq=posted.message.seq)
    conversation_handoff(
        conversation=conversation,
        reason=str(decision.reason),
        confidence=round(decision.confidence, 4),
    )
    return Outcome(BotDecision.Outcome.HANDOFF, reason=str(decision.reason))


def _ask_model(
    conversation: Conversation,
    client: LlmClient,
    question: Message,
    history: list[bots.Turn],
    candidates: Candidates,
    decision: bots.Decision,
) -> Outcome:
    """Stream the model's answer; on any failure, fall back to ``decision``."""
    passages = [Passage(entry_id=e.id, title=e.question, text=e.answer) for e, _ in candidates]
    with answer_stream(conversation) as stream:
        try:
            result: LlmResult | LlmError = client.compose(
                question=question.body, history=history, passages=passages, on_delta=stream.send
            )
        except LlmError as error:
            log.log(
                logging.ERROR if error.permanent else logging.WARNING,
                "LLM failed on conversation %s (%s): %s; answering from retrieval",
                conversation.pk,
                error.kind,
                error,
            )
            result = error
        # The call took seconds: an agent may have taken over, or the visitor asked again.
        if not _still_current(conversation, question.seq):
            return Outcome(BotDecision.Outcome.ANSWER, reason="superseded", used_llm=True)
        if isinstance(result, LlmError):
            fallback = _carry_out(conversation, decision, stream_id=stream.id)
            # A hand-off keeps retrieval's reason (the review queue looks for it); an answer
            # says why it is retrieval's and not the model's.
            reason = fallback.reason or f"llm_{result.kind}"
            return replace(fallback, reason=reason, used_llm=True)
        if isinstance(result, LlmAnswer):
            return _post_llm_answer(conversation, result, candidates, stream, client.model)
        log.info("LLM handed conversation %s over: %s", conversation.pk, result.reason)
        conversation_handoff(
            conversation=conversation, reason=LLM_HANDOFF, confidence=round(decision.confidence, 4)
        )
        return Outcome(BotDecision.Outcome.HANDOFF, reason=LLM_HANDOFF, used_llm=True)


def _post_llm_answer(
    conversation: Conversation,
    answer: LlmAnswer,
    candidates: Candidates,
    stream: AnswerStream,
    model: str,
) -> Outcome:
    entries = {entry.id: entry for entry, _ in candidates}
    citations = [
        {"entry_id": cited.id, "title": cited.question, "answer": cited.answer}
        for cited in (entries[entry_id] for entry_id in answer.cited_entry_ids)
    ]
    posted = message_post(
        conversation=conversation,
        author=Message.Author.BOT,
        body=answer.text,
        meta={
            "citations": citations,
            "stream_id": stream.id,
            "confidence": round(candidates[0][1], 4),
            "model": model,
        },
    )
    return Outcome(
        BotDecision.Outcome.ANSWER,
        entry_id=answer.cited_entry_ids[0] if answer.cited_entry_ids else None,
        answer_seq=posted.message.seq,
        used_llm=True,
    )


def _latest_visitor_message(conversation: Conversation) -> Message | None:
    return (
        Message.objects.filter(conversation=conversation, author=Message.Author.VISITOR)
        .only("seq", "body")
        .order_by("-seq")
        .first()
    )


def _still_current(conversation: Conversation, seq: int) -> bool:
    """Whether the bot still leads and ``seq`` is still the visitor's latest, after a slow call."""
    conversation.refresh_from_db(fields=["status"])
    latest = _latest_visitor_message(conversation)
    return conversation.is_with_bot and latest is not None and latest.seq == seq


def _evidence(index: bots.KnowledgeIndex, question: str) -> list[tuple[bots.KnowledgeEntry, float]]:
    """Entries worth showing the model; none when nothing plausibly relates to the question."""
    return [
        (e, score) for e, score in index.search(question, k=CANDIDATES) if score >= MIN_EVIDENCE
    ]


def bot_warm_up(*, sites: int = WARM_SITES) -> int:
    """Load the embedding model and build the indexes of the ``sites`` most recently active
    bot sites; returns how many were built. Safe to run while visitors are being answered."""
    from bots.text import tokenize  # numpy, jieba: only where the bot runs

    bots.default_embedder().embed(["warm up", "预热"])  # the models
    tokenize("预热")  # jieba's dictionary
    active = (
        Site.objects.filter(bot_enabled=True)
        .annotate(last_active=Max("conversations__created_at"))
        .order_by(F("last_active").desc(nulls_last=True), "-pk")[:sites]
    )
    built = 0
    for site in active:
        try:
            knowledge_index(site)
        except Exception:  # one broken knowledge base must not stop the others warming
            log.exception("Could not warm up the bot index of site %s", site.pk)
            continue
        built += 1
    return built


def bot_warm_up_in_background() -> threading.Thread | None:
    """``bot_warm_up`` in a daemon thread, when ``HELPDESK_BOT_WARM_UP`` allows it."""
    if not settings.HELPDESK_BOT_WARM_UP:
        return None

    def run() -> None:
        started = time.monotonic()
        try:
            built = bot_warm_up()
            log.info("Bot warmed up: %d site indexes in %.1f s", built, time.monotonic() - started)
        except Exception:
            log.exception("Bot warm-up failed; indexes will be built on first use")
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="bot-warm-up", daemon=True)
    thread.start()
    return thread


def knowledge_index(site: Site) -> bots.KnowledgeIndex:
    """The site's FAQ entries and article passages, as the reindex task last built them."""
    return site_knowledge_index(site)


def _history(conversation: Conversation) -> list[bots.Turn]:
    rows = Message.objects.filter(conversation=conversation).order_by("-seq")[:HISTORY_TURNS]
    return [
        bots.Turn(
            role=m.author,  # type: ignore[arg-type]
            body=m.body,
            entry_id=m.meta.get("entry_id") if isinstance(m.meta, dict) else None,
            helpful=m.helpful,
        )
        for m in reversed(rows)
    ]
