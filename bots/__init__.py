"""The FAQ bot: a pure Python library, free of Django, that answers from a knowledge base.

Give ``decide`` a site's ``KnowledgeIndex`` (from ``index_for``, cached per knowledge-base
version) and the conversation so far; it returns an ``Answer`` to post, a ``Clarify`` to ask
which of two entries the visitor means, or a ``Handoff`` to a person with the reason. Every
decision carries ``scores``: the best candidates with their confidence, for the agent's eyes.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bots.decision import decide, wants_human
    from bots.defaults import DEFAULT_CLARIFY_THRESHOLD, DEFAULT_THRESHOLD, UNHELPFUL_LIMIT
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

# Names load on first use (PEP 562): a web process that only stores and relays messages
# never imports numpy, scikit-learn and the embedding model (~120 MiB of its memory).
_HOMES = {
    "DEFAULT_CLARIFY_THRESHOLD": "bots.defaults",
    "DEFAULT_THRESHOLD": "bots.defaults",
    "UNHELPFUL_LIMIT": "bots.defaults",
    "decide": "bots.decision",
    "wants_human": "bots.decision",
    "Embedder": "bots.embeddings",
    "EmbeddingError": "bots.embeddings",
    "OpenAIEmbedder": "bots.embeddings",
    "UniversalSentenceEncoder": "bots.embeddings",
    "default_embedder": "bots.embeddings",
    "KnowledgeIndex": "bots.knowledge",
    "Match": "bots.knowledge",
    "cached_index": "bots.knowledge",
    "clear_index_cache": "bots.knowledge",
    "index_for": "bots.knowledge",
    "Answer": "bots.types",
    "Candidate": "bots.types",
    "Clarify": "bots.types",
    "Decision": "bots.types",
    "Handoff": "bots.types",
    "HandoffReason": "bots.types",
    "KnowledgeEntry": "bots.types",
    "Turn": "bots.types",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bots' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


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
