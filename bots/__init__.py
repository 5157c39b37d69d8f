"""The FAQ bot: a pure Python library, free of Django, that answers from a knowledge base.

Give ``decide`` a site's ``KnowledgeIndex`` (from ``index_for``, cached per knowledge-base
version) and the conversation so far; it returns an ``Answer`` to post or a ``Handoff`` to a
person, with the reason.
"""

from bots.decide import DEFAULT_THRESHOLD, decide, wants_human
from bots.knowledge import KnowledgeIndex, clear_index_cache, index_for
from bots.types import Answer, Decision, Handoff, HandoffReason, KnowledgeEntry, Turn

__all__ = [
    "DEFAULT_THRESHOLD",
    "Answer",
    "Decision",
    "Handoff",
    "HandoffReason",
    "KnowledgeEntry",
    "KnowledgeIndex",
    "Turn",
    "clear_index_cache",
    "decide",
    "index_for",
    "wants_human",
]
