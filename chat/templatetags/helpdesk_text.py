"""``{{ body|linkify }}``: message text, escaped, with its http(s)/mailto URLs as links.

The same rules as ``static/common/text.js`` in the browser: only those schemes, trailing
sentence punctuation left out of the link, ``target="_blank" rel="noopener nofollow"``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

LINK = re.compile(r"\b(?:https?://|mailto:)[^\s<>\"]+", re.IGNORECASE)
TRAILING = re.compile(r"[.,;:!?'\")\]}]+$")


def _is_valid(url: str) -> bool:
    """What the browser's ``new URL()`` accepts, roughly: a host for http(s), a mailbox."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return bool(parts.netloc) if parts.scheme.lower() in ("http", "https") else bool(parts.path)


@register.filter(is_safe=True)
def linkify(text: object) -> SafeString:
    source = "" if text is None else str(text)
    parts: list[str] = []
    last = 0
    for match in LINK.finditer(source):
        url = TRAILING.sub("", match.group(0))
        if not _is_valid(url):
            continue
        parts.append(escape(source[last : match.start()]))
        parts.append(
            format_html('<a href="{}" target="_blank" rel="noopener nofollow">{}</a>', url, url)
        )
        last = match.start() + len(url)
    parts.append(escape(source[last:]))
    return mark_safe("".join(parts))  # every piece above was escaped
