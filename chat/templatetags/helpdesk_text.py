"""``{{ body|linkify }}``: message text, escaped, with its http(s)/mailto URLs as links.

The same rules as ``static/common/text.js`` in the browser: only those schemes, trailing
sentence punctuation left out of the link, ``target="_blank" rel="noopener nofollow"``.
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

LINK = re.compile(r"\b(?:https?://|mailto:)[^\s<>\"]+", re.IGNORECASE)
TRAILING = re.compile(r"[.,;:!?'\")\]}]+$")


@register.filter(is_safe=True)
def linkify(text: object) -> SafeString:
    source = "" if text is None else str(text)
    parts: list[str] = []
    last = 0
    for match in LINK.finditer(source):
        url = TRAILING.sub("", match.group(0))
        if not url.split(":", 1)[1].strip("/"):
            continue  # "https://" alone is no link
        parts.append(escape(source[last : match.start()]))
        parts.append(
            format_html('<a href="{}" target="_blank" rel="noopener nofollow">{}</a>', url, url)
        )
        last = match.start() + len(url)
    parts.append(escape(source[last:]))
    return mark_safe("".join(parts))  # every piece above was escaped
