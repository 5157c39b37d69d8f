"""Small server-rendered SVG charts for the reports page: no JavaScript, no library.

Colours come from CSS classes (``console.css``), so the markup carries no inline styles
(the Content-Security-Policy forbids them).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _svg(width: float, height: float, title: str, body: str) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" '
        'aria-label="{}">{}</svg>',
        width,
        height,
        width,
        height,
        title,
        body,
    )


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, width: int = 360) -> SafeString:
    """Horizontal bars, one per ``(label, value)``, the longest one full width."""
    row, label_w, gap = 22, 130, 4
    height = max(1, len(bars)) * row
    top = max((value for _label, value in bars), default=0) or 1
    room = width - label_w - 40
    rows = format_html_join(
        "",
        '<g transform="translate(0,{})"><text class="chart__label" x="{}" y="15" '
        'text-anchor="end">{}</text><rect class="chart__bar" x="{}" y="{}" width="{}" '
        'height="{}"><title>{}: {}</title></rect><text class="chart__value" x="{}" y="15">{}'
        "</text></g>",
        (
            (
                i * row,
                label_w - 6,
                label,
                label_w,
                gap / 2,
                round(room * value / top, 1),
                row - gap,
                label,
                value,
                label_w + round(room * value / top, 1) + 4,
                value,
            )
            for i, (label, value) in enumerate(bars)
        ),
    )
    return _svg(width, height, title, rows)


def column_chart(columns: Sequence[tuple[str, int]], *, title: str, width: int = 720) -> SafeString:
    """Vertical columns over time (e.g. conversations per day), labels every few columns."""
    height, bottom = 140, 18
    count = max(1, len(columns))
    step = width / count
    top = max((value for _label, value in columns), default=0) or 1
    every = max(1, count // 8)
    parts = []
    for i, (label, value) in enumerate(columns):
        h = round((height - bottom - 4) * value / top, 1)
        parts.append(
            format_html(
                '<rect class="chart__bar" x="{}" y="{}" width="{}" height="{}">'
                "<title>{}: {}</title></rect>",
                round(i * step + 1, 1),
                round(height - bottom - h, 1),
                round(max(step - 2, 1), 1),
                h,
                label,
                value,
            )
        )
        if i % every == 0:
            parts.append(
                format_html(
                    '<text class="chart__label" x="{}" y="{}">{}</text>',
                    round(i * step + 1, 1),
                    height - 4,
                    label,
                )
            )
    return _svg(width, height, title, mark_safe("".join(parts)))


def heat_map(hours: Sequence[Sequence[int]], *, title: str) -> SafeString:
    """Weekday × hour grid; a cell's shade (one of 5 classes) says how busy that hour was."""
    cell, left, top_pad = 22, 36, 16
    busiest = max((n for day in hours for n in day), default=0)
    parts = [
        format_html(
            '<text class="chart__label" x="{}" y="12" text-anchor="middle">{}</text>',
            left + h * cell + cell // 2,
            h,
        )
        for h in range(0, 24, 3)
    ]
    for d, day in enumerate(hours):
        y = top_pad + d * cell
        parts.append(
            format_html('<text class="chart__label" x="0" y="{}">{}</text>', y + 15, WEEKDAYS[d])
        )
        for h, n in enumerate(day):
            level = 0 if not n or not busiest else 1 + min(3, int(4 * n / (busiest + 1)))
            parts.append(
                format_html(
                    '<rect class="heat heat--{}" x="{}" y="{}" width="{}" height="{}">'
                    "<title>{} {}:00 · {}</title></rect>",
                    level,
                    left + h * cell,
                    y,
                    cell - 2,
                    cell - 2,
                    WEEKDAYS[d],
                    f"{h:02d}",
                    n,
                )
            )
    width, height = left + 24 * cell, top_pad + 7 * cell
    return _svg(width, height, title, mark_safe("".join(parts)))
