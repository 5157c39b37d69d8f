"""The values that cross the library's edge: knowledge in, conversation in, a decision out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class HandoffReason(StrEnum):
    LOW_CONFIDENCE = "low_confidence"
    ASKED_FOR_HUMAN = "asked_for_human"
    UNHELPFUL = "unhelpful"  # the visitor marked two of the bot's answers as unhelpful
    REPEATED = "repeated"  # the visitor asks again what the bot has already answered
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
    """One message of the conversation, oldest first.

    ``entry_id`` and ``helpful`` matter on bot turns only: the entry the bot answered with
    (``Message.meta["entry_id"]``) and the visitor's feedback on it (``Message.helpful``,
    ``None`` when they gave none). ``decide`` reads them to notice a visitor who is going
    round in circles.
    """

    role: Literal["visitor", "bot", "agent", "system"]
    body: str
    entry_id: int | None = None
    helpful: bool | None = None


@dataclass(frozen=True)
class Candidate:
    """An entry the bot considered, with its confidence (0..1) that the entry is the answer."""

    entry_id: int
    title: str
    score: float

    def as_json(self) -> dict[str, int | str | float]:
        """The shape ``BotDecision.scores`` stores: ``{"entry_id", "title", "score"}``."""
        return {"entry_id": self.entry_id, "title": self.title, "score": round(self.score, 4)}


@dataclass(frozen=True)
class Answer:
    entry_id: int
    title: str  # the entry's question, shown as the source
    body: str  # the entry's answer
    confidence: float  # 0..1, the estimated chance that this entry answers the question
    scores: tuple[Candidate, ...] = ()  # the best candidates, best first, for the agent's eyes


@dataclass(frozen=True)
class Clarify:
    """Two (or more) entries fit about equally well: ask "Did you mean …?" with one button each.

    A button should send the candidate's title as the visitor's next message: a title matches
    its own entry with full confidence, so the bot then answers it.
    """

    candidates: tuple[tuple[int, str], ...]  # (entry_id, title), best first
    confidence: float  # the best candidate's confidence
    scores: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class Handoff:
    reason: HandoffReason
    confidence: float  # best retrieval confidence seen (0 when not applicable)
    scores: tuple[Candidate, ...] = ()


Decision = Answer | Clarify | Handoff
