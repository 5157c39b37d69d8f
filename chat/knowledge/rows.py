"""One FAQ entry as a file holds it, and the checks every row of every format goes through."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_QUESTION_CHARS = 300  # FaqEntry.question
MAX_PHRASING_CHARS = 300
MAX_TAGS_CHARS = 200  # FaqEntry.tags, joined with ", "
MAX_ANSWER_CHARS = 10_000
_TRUE = {"", "true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}


@dataclass(frozen=True)
class FaqRow:
    question: str
    answer: str
    language: str
    phrasings: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    enabled: bool = True
    line: int = 0  # where the row starts in the file it came from; 0 when it did not

    @property
    def key(self) -> tuple[str, str]:
        """Two rows are the same entry when question (case and spacing aside) and language match."""
        return (" ".join(self.question.split()).casefold(), self.language)


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class RawRow:
    """A row as found in the file, before it is checked."""

    line: int
    values: dict[str, Any]


def validate(raw: RawRow, *, default_language: str) -> FaqRow | RowError:
    values = raw.values
    try:
        question = _text(values.get("question"), "question").strip()
        answer = normalise_newlines(_text(values.get("answer"), "answer")).strip()
        language = _language(values.get("language"), default_language)
        phrasings = _phrasings(values.get("phrasings"))
        tags = _tags(values.get("tags"))
        enabled = _enabled(values.get("enabled"))
    except ValueError as bad_value:
        return RowError(raw.line, str(bad_value))
    problem = _problem(question, answer, phrasings, tags)
    if problem:
        return RowError(raw.line, problem)
    return FaqRow(
        question=question,
        answer=answer,
        language=language,
        phrasings=phrasings,
        tags=tags,
        enabled=enabled,
        line=raw.line,
    )


def _problem(question: str, answer: str, phrasings: Sequence[str], tags: Sequence[str]) -> str:
    if not question:
        return "missing question"
    if not answer:
        return "missing answer"
    if len(question) > MAX_QUESTION_CHARS:
        return f"question too long ({len(question)} characters, at most {MAX_QUESTION_CHARS})"
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer too long ({len(answer)} characters, at most {MAX_ANSWER_CHARS})"
    longest = max(phrasings, key=len, default="")
    if len(longest) > MAX_PHRASING_CHARS:
        return f"phrasing too long ({len(longest)} characters, at most {MAX_PHRASING_CHARS})"
    if len(join_tags(tags)) > MAX_TAGS_CHARS:
        return f"tags too long ({len(join_tags(tags))} characters, at most {MAX_TAGS_CHARS})"
    return ""


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, not {type(value).__name__}")
    return value


def _language(value: Any, default: str) -> str:
    code = _text(value, "language").strip().lower()
    if not code:
        return default
    known = [c for c, _ in settings.LANGUAGES]
    if code not in known:
        raise ValueError(f"unknown language {code!r} (use one of: {', '.join(known)})")
    return code


def _phrasings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [_text(v, "each phrasing") for v in value]
    else:
        text = _text(value, "phrasings")
        items = text.splitlines() if "\n" in text else text.split("|")
    return tuple(dict.fromkeys(p.strip() for p in items if p.strip()))


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        items = [_text(v, "each tag") for v in value]
    else:
        items = _text(value, "tags").split(",")
    return tuple(dict.fromkeys(t.strip() for t in items if t.strip()))


def _enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value, "enabled").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"enabled must be true or false, not {text!r}")


def normalise_newlines(text: str) -> str:
    """``\r\n`` (what browsers submit from a textarea) and ``\r`` become ``\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_tags(tags: str) -> tuple[str, ...]:
    return _tags(tags)


def join_tags(tags: Iterable[str]) -> str:
    return ", ".join(tags)


def join_phrasings(phrasings: Sequence[str]) -> str:
    """One phrasing per line; a trailing newline keeps a lone phrasing containing ``|`` whole."""
    text = "\n".join(phrasings)
    return text + "\n" if any("|" in p for p in phrasings) else text
