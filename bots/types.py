"""The values that cross the library's edge: knowledge in, conversation in, a decision out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class HandoffReason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    ASKED_FOR_HUMAN = "asked_for_human"
    UNHELPFUL = "unhelpful"  # visitor said an answer did not help
    NO_KNOWLEDGE = "no_knowledge"  # site has no enabled entries


@dataclass(frozen=True)
class KnowledgeEntry:
    id: int
    question: str
    phrasings: tuple[str, ...]
    answer: str
    language: str  # "en", "zh-hans", ...


@dataclass(frozen=True)
class Turn:
    role: Literal["visitor", "bot", "agent", "system"]
    body: str


@dataclass(frozen=True)
class Answer:
    entry_id: int
    title: str  # the entry's question, shown as the source
    body: str  # the entry's answer
    confidence: float  # 0..1


@dataclass(frozen=True)
class Handoff:
    reason: HandoffReason
    confidence: float  # best retrieval confidence seen (0 when not applicable)


Decision = Answer | Handoff
