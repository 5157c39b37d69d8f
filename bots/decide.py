"""The bot's one judgement: answer the visitor from the knowledge base, or hand over."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bots.knowledge import KnowledgeIndex
from bots.types import Answer, Decision, Handoff, HandoffReason, Turn

# Tuned on the FAQ in tests/test_bot_library.py with ~40 paraphrases and ~25 off-topic questions:
# 41 of the 43 paraphrases score 0.46 to 1; off-topic questions that share a word with a
# phrasing top out at 0.43 ("what is your phone number?" vs "Tracking number", "I love your
# shoes"), the rest score 0 to 0.35. 0.45 sits in that gap. What it gets wrong: paraphrases whose
# key word is only in an answer hand off ("do you ship to canada?", 0.35), which costs an agent a
# minute; a lone word that is most of a short phrasing ("time" vs "Delivery time") answers.
DEFAULT_THRESHOLD = 0.45

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


def decide(*, index: KnowledgeIndex, history: Sequence[Turn], threshold: float) -> Decision:
    """Answer the last visitor turn with the best entry, or say why a person should."""
    question = _last_visitor_message(history)
    if wants_human(question):
        return Handoff(reason=HandoffReason.ASKED_FOR_HUMAN, confidence=0.0)
    if len(index) == 0:
        return Handoff(reason=HandoffReason.NO_KNOWLEDGE, confidence=0.0)
    hits = index.search(question, k=1)
    if not hits:
        return Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=0.0)
    entry, confidence = hits[0]
    if confidence < threshold:
        return Handoff(reason=HandoffReason.LOW_CONFIDENCE, confidence=confidence)
    return Answer(entry_id=entry.id, title=entry.question, body=entry.answer, confidence=confidence)


def _last_visitor_message(history: Sequence[Turn]) -> str:
    return next((turn.body for turn in reversed(history) if turn.role == "visitor"), "")
