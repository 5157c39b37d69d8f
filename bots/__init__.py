"""The FAQ bot: a pure Python library, free of Django, that answers from a knowledge base.

Give ``decide`` a site's ``KnowledgeIndex`` (from ``index_for``, cached per knowledge-base
version) and the conversation so far; it returns an ``Answer`` to post, a ``Clarify`` to ask
which of two entries the visitor means, or a ``Handoff`` to a person with the reason. Every
decision carries ``scores``: the best candidates with their confidence, for the agent's eyes.
"""

from bots.decide import (
    DEFAULT_CLARIFY_THRESHOLD,
    DEFAULT_THRESHOLD,
    UNHELPFUL_LIMIT,
    decide,
    wants_human,
)
from bots.embeddings import (
    Embedder,
    EmbeddingError,
    OpenAIEmbedder,
    UniversalSentenceEncoder,
    default_embedder,
)
from bots.knowledge import KnowledgeIndex, Match, cached_index, clear_index_cache, index_for
from bots.types import (
    Answer,
    Candidate,
    Clarify,
    Decision,
    Handoff,
    HandoffReason,
    KnowledgeEntry,
    Turn,
)

__all__ = [
    "DEFAULT_CLARIFY_THRESHOLD",
    "DEFAULT_THRESHOLD",
    "UNHELPFUL_LIMIT",
    "Answer",
    "Candidate",
    "Clarify",
    "Decision",
    "Embedder",
    "EmbeddingError",
    "Handoff",
    "HandoffReason",
    "KnowledgeEntry",
    "KnowledgeIndex",
    "Match",
    "OpenAIEmbedder",
    "Turn",
    "UniversalSentenceEncoder",
    "cached_index",
    "clear_index_cache",
    "decide",
    "default_embedder",
    "index_for",
    "wants_human",
]
