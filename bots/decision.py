"""The bot's one judgement: answer the visitor, ask which of two entries they mean, or hand over.

In order:

1. The visitor asks for a person: hand off (``ASKED_FOR_HUMAN``), whatever else they said.
2. Two of the bot's answers were marked unhelpful: hand off (``UNHELPFUL``).
3. The site has no entries: hand off (``NO_KNOWLEDGE``).
4. The best two candidates are close (the second at least half as likely as the first) and
   together reach ``clarify_threshold``: ask "Did you mean …?" with both (``Clarify``).
5. The best entry's confidence reaches ``threshold``: answer with it, unless the bot already
   answered with that entry in this conversation, which means the answer did not settle it:
   hand off (``REPEATED``).
6. Otherwise hand off (``LOW_CONFIDENCE``).

Confidence is the estimated chance that an entry is the right answer (``bots.confidence``), so
the two thresholds trade answered-wrong for handed-off. Their defaults were chosen on BANKING77's
train.csv only (``python -m bots.calibrate``), never on its test.csv.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from bots.defaults import DEFAULT_CLARIFY_THRESHOLD, DEFAULT_THRESHOLD, UNHELPFUL_LIMIT
from bots.knowledge import KnowledgeIndex
from bots.types import Answer, Candidate, Clarify, Decision, Handoff, HandoffReason, Turn

# The runner-up must be at least this share of the best candidate's confidence to be offered.
CLARIFY_RATIO = 0.5
SCORES_KEPT = 5

_ENGLISH_ASKS_FOR_HUMAN = re.compile(
    r"""
    \bhumans?\b(?!\s+(?:resources|error|rights|body|nature))
    | \b(?:real|live|actual)\s+(?:person|people|agent|human|someone)\b
    | \b(?:agent|operator|representative|rep)s?\b(?!\s+of\b)
    | \b(?:talk|speak|chat|connect|transfer|put)(?:\s+me)?\s+(?:to|with|through\s+to)\s+
      (?:a\s+|an\s+|the\s+|your\s+|some\s+)?
      (?:someone|somebody|person|people|staff|support|team|manager|supervisor|customer\s+service)\b
    | \bnot\s+(?:a|the|this)\s+bot\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
_CHINESE_ASKS_FOR_HUMAN = ("人工", "客服", "真人", "活人", "工作人员", "找人")
_CHINESE_NOT_ASKING = ("人工智能",)  # "artificial intelligence" contains 人工


def wants_human(text: str) -> bool:
    """Whether the visitor asks to be put through to a person."""
    return _asks_in_chinese(text) or _ENGLISH_ASKS_FOR_HUMAN.search(text) is not None


def _asks_in_chinese(text: str) -> bool:
    for phrase in _CHINESE_NOT_ASKING:
        text = text.replace(phrase, "")
    return any(phrase in text for phrase in _CHINESE_ASKS_FOR_HUMAN)


def decide(
    *,
    index: KnowledgeIndex,
    history: Sequence[Turn],
    threshold: float = DEFAULT_THRESHOLD,
    clarify_threshold: float = DEFAULT_CLARIFY_THRESHOLD,
) -> Decision:
    """What the bot should do about the last visitor turn of ``history`` (oldest first).

    Every decision carries ``scores``: the best candidates with their confidence, best first,
    empty when the bot did not search.
    """
    question = _last_visitor_message(history)
    if wants_human(question):
        return Handoff(reason=HandoffReason.ASKED_FOR_HUMAN, confidence=0.0)
    if sum(turn.role == "bot" and turn.helpful is False for turn in history) >= UNHELPFUL_LIMIT:
        return Handoff(reason=HandoffReason.UNHELPFUL, confidence=0.0)
    if len(index) == 0:
        return Handoff(reason=HandoffReason.NO_KNOWLEDGE, confidence=0.0)
    matches = index.rank(question, k=SCORES_KEPT)
    scores = tuple(
        Candidate(entry_id=m.entry.id, title=m.entry.question, score=m.confidence) for m in matches
    )
    if not matches:
        return Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=0.0)
    best = matches[0]
    outcome = choose([m.confidence for m in matches], threshold, clarify_threshold)
    if outcome == "clarify":
        return Clarify(
            candidates=tuple((m.entry.id, m.entry.question) for m in matches[:2]),
            confidence=best.confidence,
            scores=scores,
        )
    if outcome == "answer":
        if best.entry.id in _answered_entries(history):
            return Handoff(reason=HandoffReason.REPEATED, confidence=best.confidence, scores=scores)
        return Answer(
            entry_id=best.entry.id,
            title=best.entry.question,
            body=best.entry.answer,
            confidence=best.confidence,
            scores=scores,
        )
    return Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=best.confidence, scores=scores)


def choose(
    confidences: Sequence[float], threshold: float, clarify_threshold: float
) -> Literal["answer", "clarify", "handoff"]:
    """The outcome for candidates' confidences, best first (``bots.calibrate`` uses it too)."""
    first = confidences[0] if confidences else 0.0
    second = confidences[1] if len(confidences) > 1 else 0.0
    if second >= CLARIFY_RATIO * first and first + second >= clarify_threshold:
        return "clarify"
    return "answer" if first >= threshold else "handoff"


def _answered_entries(history: Sequence[Turn]) -> set[int]:
    """Entries the bot has answered with, before the last visitor turn."""
    last_visitor = max((i for i, t in enumerate(history) if t.role == "visitor"), default=0)
    return {
        turn.entry_id
        for turn in history[:last_visitor]
        if turn.role == "bot" and turn.entry_id is not None
    }


def _last_visitor_message(history: Sequence[Turn]) -> str:
    return next((turn.body for turn in reversed(history) if turn.role == "visitor"), "")
