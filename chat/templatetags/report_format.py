"""Formatting for the reports page."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def duration_s(seconds: object) -> str:
    """42 → "42 s", 185 → "3 min 5 s", 5400 → "1 h 30 min"; no figure → "—"."""
    if not isinstance(seconds, int | float):
        return "—"
    total = round(seconds)
    if total < 60:
        return _("%(s)d s") % {"s": total}
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return _("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    hours, minutes = divmod(minutes, 60)
    return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
