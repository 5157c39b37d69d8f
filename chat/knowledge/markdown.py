"""FAQ entries as a Markdown file people can read and write by hand.

One entry per ``## `` heading (exactly two ``#`` and a space); the heading is the question::

    # Acme Shop FAQ                  <- optional title line(s) starting with "# ", ignored

    ## How long does shipping take?

    Phrasings:                        <- optional: "Phrasings:" right after the heading,
    - When will my order arrive?         then one "- " (or "* ") bullet per phrasing,
    - shipping time                      no blank lines inside the list

    Standard shipping takes 3–5       <- the answer: everything else, paragraphs kept
    business days.

    Tracking links arrive by e-mail.

    Tags: shipping, orders            <- optional, the entry's last lines, any order,
    Language: en                         each at most once; Language defaults to the
    Enabled: no                          site's language, Enabled to yes

Other text before the first ``## `` heading is an error. Inside an answer, a line that would
be read as structure (a ``## `` heading, or a line starting ``Phrasings:``, ``Tags:``,
``Language:`` or ``Enabled:``) is written with a leading backslash, which reading removes, so
any answer survives a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from chat.knowledge.rows import FaqRow, RawRow, RowError, join_tags

_ENTRY = re.compile(r"^##(?:[ \t]+(.*?))?[ \t]*$")
_TITLE = re.compile(r"^#(?:[ \t].*)?$")
_PHRASINGS = re.compile(r"^phrasings[ \t]*:[ \t]*$", re.IGNORECASE)
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+(.*)$")
_META = re.compile(r"^(tags|language|enabled)[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE)
# Answer lines that would read as structure, with any backslashes already in front of them.
_ESCAPABLE = re.compile(r"^(\\*)(## |##$|(?:phrasings|tags|language|enabled)[ \t]*:)", re.I)


def read(text: str) -> Iterator[RawRow | RowError]:
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _ENTRY.match(line)]
    stray = next(
        (i for i in range(starts[0] if starts else len(lines)) if _is_stray(lines[i])), None
    )
    if stray is not None:
        yield RowError(stray + 1, "text before the first '## Question' heading")
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        yield _entry(start + 1, lines[start], lines[start + 1 : end])


def _is_stray(line: str) -> bool:
    return bool(line.strip()) and not _TITLE.match(line)


def _entry(line_number: int, heading: str, body: list[str]) -> RawRow:
    match = _ENTRY.match(heading)
    values: dict[str, object] = {"question": (match.group(1) if match else "") or ""}
    body = _trim(body)
    if body and _PHRASINGS.match(body[0]):
        bullets = [_BULLET.match(line) for line in body[1:]]
        count = next((i for i, b in enumerate(bullets) if b is None), len(bullets))
        values["phrasings"] = [b.group(1) for b in bullets[:count] if b]
        body = body[1 + count :]
    body = _trim(body)
    while body and (meta := _META.match(body[-1])) and meta.group(1).lower() not in values:
        values[meta.group(1).lower()] = meta.group(2)
        body = _trim(body[:-1])
    values["answer"] = "\n".join(_unescape(line) for line in body)
    return RawRow(line_number, values)


def _trim(lines: list[str]) -> list[str]:
    """Without blank lines at either end."""
    start = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    end = next((i for i in range(len(lines), start, -1) if lines[i - 1].strip()), start)
    return lines[start:end]


def _unescape(line: str) -> str:
    match = _ESCAPABLE.match(line)
    return line[1:] if match and match.group(1) else line


def _escape(line: str) -> str:
    return "\\" + line if _ESCAPABLE.match(line) else line


def write(rows: list[FaqRow]) -> str:
    return "\n".join(_write_entry(row) for row in rows)


def _write_entry(row: FaqRow) -> str:
    parts = [f"## {row.question}", ""]
    if row.phrasings:
        parts += ["Phrasings:", *(f"- {p}" for p in row.phrasings), ""]
    parts += [_escape(line) for line in row.answer.splitlines()]
    parts.append("")
    if row.tags:
        parts.append(f"Tags: {join_tags(row.tags)}")
    parts.append(f"Language: {row.language}")
    if not row.enabled:
        parts.append("Enabled: no")
    return "\n".join(parts) + "\n"
