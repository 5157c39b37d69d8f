"""A browser's ``User-Agent`` header in a few words for the customer panel."""

from __future__ import annotations

import re

# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
BROWSERS = [
    ("Edge", r"Edg(?:e|A|iOS)?/(\d+)"),
    ("Opera", r"OPR/(\d+)"),
    ("Firefox", r"(?:Firefox|FxiOS)/(\d+)"),
    ("Chrome", r"(?:Chrome|CriOS)/(\d+)"),
    ("Safari", r"Version/(\d+)[.\d]* (?:Mobile/\S+ )?Safari/"),
]
SYSTEMS = [
    ("Android", r"Android"),
    ("iOS", r"iPhone|iPad|iPod"),
    ("Windows", r"Windows"),
    ("macOS", r"Mac OS X|Macintosh"),
    ("ChromeOS", r"CrOS"),
    ("Linux", r"Linux"),
]


def browser_summary(user_agent: str) -> str:
    """``"Chrome 120 on Windows"``; the raw header when nothing is recognised."""
    if not user_agent:
        return ""
    browser = next(
        (
            f"{name} {match.group(1)}"
            for name, pattern in BROWSERS
            if (match := re.search(pattern, user_agent))
        ),
        "",
    )
    system = next((name for name, pattern in SYSTEMS if re.search(pattern, user_agent)), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:80]
