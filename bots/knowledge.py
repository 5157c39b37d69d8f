"""A searchable index of one site's knowledge base, and a process-wide cache of them.

Three signals score every entry for a question, each 0..1:

- ``probability``: the site's classifier (``bots.classifier``), trained on each entry's title,
  phrasings and answer (an article passage has nothing but a title and its text). The best at
  telling entries apart, but it must share all of its probability among the site's entries, so
  alone it cannot tell that a question is about none of them.
- ``similarity``: the cosine between the question's embedding and the entry's nearest text.
  Open-world: low for "what's the weather on Mars?" however few entries there are.
- ``lexical``: how much of the question's words the entry accounts for (``bots.lexical``).

``bots.confidence`` turns them into one number: the estimated chance that the entry is the
right answer. Candidates are the classifier's and the lexical index's best few; they are ranked
by that confidence.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bots.classifier import EntryClassifier
from bots.confidence import Evidence, confidence
from bots.embeddings import Embedder, default_embedder
from bots.lexical import LexicalIndex
from bots.text import tokenize
from bots.types import KnowledgeEntry

CACHE_SIZE = 64
# How many of each signal's best entries become candidates.
CANDIDATES_PER_SIGNAL = 5


@dataclass(frozen=True)
class Match:
    """One entry's evidence for a question, and the confidence drawn from it."""

    entry: KnowledgeEntry
    confidence: float
    evidence: Evidence


class KnowledgeIndex:
    """Immutable after ``build``; safe to search from many threads at once."""

    def __init__(
        self,
        *,
        entries: tuple[KnowledgeEntry, ...],
        lexical: LexicalIndex,
        embedder: Embedder,
        classifier: EntryClassifier,
        vectors: npt.NDArray[np.float32],
        text_starts: npt.NDArray[np.int64],
    ) -> None:
        self._entries = entries
        self._lexical = lexical
        self._embedder = embedder
        self._classifier = classifier
        self._vectors = vectors
        self._text_starts = text_starts  # entry i's texts are rows text_starts[i]:[i + 1]

    @classmethod
    def build(
        cls, entries: Sequence[KnowledgeEntry], *, embedder: Embedder | None = None
    ) -> KnowledgeIndex:
        entries = tuple(entries)
        embedder = embedder or default_embedder()
        texts: list[str] = []
        labels: list[int] = []
        starts = [0]
        for position, entry in enumerate(entries):
            texts_of_entry = (entry.question, *entry.phrasings, entry.answer)
            own = [t.strip() for t in texts_of_entry if tokenize(t)]
            for text in dict.fromkeys(own):
                texts.append(text)
                labels.append(position)
            starts.append(len(texts))
        vectors = embedder.embed(texts) if texts else np.zeros((0, 0), dtype=np.float32)
        label_array = np.array(labels, dtype=np.int64)
        classifier = EntryClassifier.train(
            texts=texts, vectors=vectors, labels=label_array, entry_count=len(entries)
        )
        return cls(
            entries=entries,
            lexical=LexicalIndex.build(entries),
            embedder=embedder,
            classifier=classifier,
            vectors=vectors,
            text_starts=np.array(starts, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def rank(self, query: str, k: int = 3) -> list[Match]:
        """The ``k`` entries most likely to answer ``query``, best first.

        A query without a word that means anything ("?!", "the", "的了吗") matches nothing.
        """
        # An index of entries that are nothing but stop words has nothing to find either.
        if not len(self._vectors) or k <= 0 or not tokenize(query):
            return []
        lexical = self._lexical.confidence(query)
        vector = self._embedder.embed([query])[0]
        probability = self._classifier.probabilities(text=query, vector=vector)
        per_signal = max(k, CANDIDATES_PER_SIGNAL)
        candidates = dict.fromkeys([*_top(probability, per_signal), *_top(lexical, per_signal)])
        best, runner_up = _top(probability, 2) if len(probability) > 1 else (0, 0)
        matches = []
        for position in candidates:
            other = runner_up if position == best else best
            evidence = Evidence(
                probability=float(probability[position]),
                margin=float(probability[position] - probability[other]),
                similarity=self._similarity(vector, position),
                lexical=float(lexical[position]),
                entry_count=len(self._entries),
            )
            matches.append(Match(self._entries[position], confidence(evidence), evidence))
        matches.sort(key=lambda match: -match.confidence)
        return matches[:k]

    def search(self, query: str, k: int = 3) -> list[tuple[KnowledgeEntry, float]]:
        """``rank`` as (entry, confidence) pairs."""
        return [(match.entry, match.confidence) for match in self.rank(query, k)]

    def _similarity(self, vector: npt.NDArray[np.float32], position: int) -> float:
        rows = self._vectors[self._text_starts[position] : self._text_starts[position + 1]]
        if not len(rows):
            return 0.0
        return float(np.clip((rows @ vector).max(), 0.0, 1.0))


def _top(scores: npt.NDArray[np.float64], n: int) -> list[int]:
    n = min(n, len(scores))
    if n <= 0:
        return []
    best = np.argpartition(-scores, n - 1)[:n]
    return [int(i) for i in best[np.argsort(-scores[best], kind="stable")]]


class _IndexCache:
    """A small LRU of built indexes, shared by every thread of the process."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._indexes: OrderedDict[Hashable, KnowledgeIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: Hashable, entries_loader: Callable[[], Sequence[KnowledgeEntry]]
    ) -> KnowledgeIndex:
        with self._lock:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
                return index
        # Built outside the lock so one site's rebuild never stalls the others' searches; two
        # threads racing on the same new key both build, and the first one stored wins.
        built = KnowledgeIndex.build(entries_loader())
        with self._lock:
            index = self._indexes.setdefault(key, built)
            self._indexes.move_to_end(key)
            while len(self._indexes) > self._size:
                self._indexes.popitem(last=False)
            return index

    def peek(self, key: Hashable) -> KnowledgeIndex | None:
        with self._lock:
            return self._indexes.get(key)

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()


_cache = _IndexCache(CACHE_SIZE)


def index_for(
    key: Hashable, entries_loader: Callable[[], Sequence[KnowledgeEntry]]
) -> KnowledgeIndex:
    """The index for ``key``, calling ``entries_loader`` only when ``key`` is not cached.

    ``key`` must change whenever the entries do, e.g. ``(site_id, kb_version)``.
    """
    return _cache.get(key, entries_loader)


def cached_index(key: Hashable) -> KnowledgeIndex | None:
    """The index cached for ``key``, if any, without building it or refreshing its place."""
    return _cache.peek(key)


def clear_index_cache() -> None:
    _cache.clear()
