"""Splitting a Markdown article into passages the bot can retrieve one at a time.

A passage is a run of paragraphs under one heading, about ``MIN_WORDS``–``MAX_WORDS`` words
long, titled by its heading path ("Returns › Refunds › Store credit"). Two headings' text never
share a passage, so a section shorter than ``MIN_WORDS`` stays a passage of its own: its title
must say what it is about. A section longer than ``MAX_WORDS`` is cut between paragraphs, and a
paragraph longer than that between sentences (or, failing those, between words).

Headings are ATX headings (``#`` to ``######``); ``#`` lines inside fenced code are not.
Chinese has no spaces, so each Han character counts as one word; 200 characters is a fair
paragraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_WORDS = 80
MAX_WORDS = 200
TITLE_SEPARATOR = " › "

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[^\s\u3400-\u4dbf\u4e00-\u9fff]+")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


@dataclass(frozen=True)
class Passage:
    title: str  # heading path, starting with the article's title
    text: str  # the passage's paragraphs, Markdown, separated by blank lines


@dataclass
class _Section:
    path: tuple[str, ...]
    paragraphs: list[str]


def split_passages(
    title: str, body: str, *, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[Passage]:
    """The article's passages in reading order; headings without text of their own give none."""
    passages: list[Passage] = []
    for section in _sections(title.strip(), body):
        heading = TITLE_SEPARATOR.join(section.path)
        for chunk in _chunks(section.paragraphs, min_words=min_words, max_words=max_words):
            passages.append(Passage(title=heading, text="\n\n".join(chunk)))
    return passages


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _sections(title: str, body: str) -> list[_Section]:
    """Paragraphs grouped under their heading path. Fenced code stays one paragraph."""
    sections = [_Section(path=(title,) if title else (), paragraphs=[])]
    headings: list[tuple[int, str]] = []  # (level, text) of the open headings
    lines: list[str] = []
    in_fence = False

    def end_paragraph() -> None:
        text = "\n".join(lines).strip()
        if text:
            sections[-1].paragraphs.append(text)
        lines.clear()

    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            lines.append(line)
            continue
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            end_paragraph()
            level, text = len(heading.group(1)), heading.group(2)
            headings = [h for h in headings if h[0] < level] + [(level, text)]
            path = _dedupe((title, *(text for _, text in headings)))
            sections.append(_Section(path=path, paragraphs=[]))
        elif line.strip() or in_fence:
            lines.append(line)
        else:
            end_paragraph()
    end_paragraph()
    return [s for s in sections if s.paragraphs]


def _dedupe(path: tuple[str, ...]) -> tuple[str, ...]:
    """An article whose first heading repeats its title gets the title once."""
    out: list[str] = []
    for part in path:
        if part and (not out or out[-1].casefold() != part.casefold()):
            out.append(part)
    return tuple(out)


def _chunks(paragraphs: list[str], *, min_words: int, max_words: int) -> list[list[str]]:
    """Paragraphs packed greedily up to ``max_words``; a short tail joins the chunk before."""
    pieces = [piece for p in paragraphs for piece in _fit(p, max_words)]
    chunks: list[list[str]] = []
    size = 0
    for piece in pieces:
        words = word_count(piece)
        if chunks and size + words <= max_words:
            chunks[-1].append(piece)
            size += words
        else:
            chunks.append([piece])
            size = words
    if len(chunks) > 1 and size < min_words:
        # Better one passage a little over the limit than a scrap without context.
        previous = sum(word_count(p) for p in chunks[-2])
        if previous + size <= max_words + min_words:
            chunks[-2].extend(chunks.pop())
    return chunks


def _fit(paragraph: str, max_words: int) -> list[str]:
    """The paragraph, cut between sentences (or words) into pieces of at most ``max_words``."""
    if word_count(paragraph) <= max_words:
        return [paragraph]
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for sentence in _units(paragraph, max_words):
        words = word_count(sentence)
        if current and size + words > max_words:
            pieces.append(_join(current))
            current, size = [], 0
        current.append(sentence)
        size += words
    if current:
        pieces.append(_join(current))
    return pieces


def _units(paragraph: str, max_words: int) -> list[str]:
    units: list[str] = []
    for sentence in (s for s in _SENTENCE_END.split(paragraph) if s.strip()):
        words = _WORD.findall(sentence)
        if len(words) <= max_words:
            units.append(sentence.strip())
        else:
            units += [_join(words[i : i + max_words]) for i in range(0, len(words), max_words)]
    return units


def _join(parts: list[str]) -> str:
    """Join sentences or words with a space, except between Chinese characters."""
    text = ""
    for part in parts:
        if text and not (_is_han(text[-1]) and _is_han(part[0])):
            text += " "
        text += part
    return text


def _is_han(char: str) -> bool:
    return "\u3400" <= char <= "\u4dbf" or "\u4e00" <= char <= "\u9fff" or char in "。！？，"
