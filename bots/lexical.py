"""Lexical matching: how much of the visitor's words an entry accounts for, 0..1.

One of the signals of ``bots.knowledge``: exact words catch what embeddings blur (product
names, "PayPal", "包邮"), and the score says whether the query is about anything the knowledge
base mentions at all.

Every entry is indexed as several small BM25 documents: its question, each phrasing, and its
answer. A query is scored against each document and an entry takes its best document's
confidence, so one close phrasing is enough and a long answer does not drown a short question.

Confidence is built to mean the same thing across queries, which raw BM25 does not:

    query_coverage = weight of the query's words found in the document
                     / weight of all the query's words, unknown words included
    doc_coverage   = bm25(query, doc) / bm25(doc, doc)
    confidence     = query_coverage ** 0.6 * doc_coverage ** 0.4 * document weight

A word's weight is its inverse *entry* frequency. ``query_coverage`` asks "does the document
account for everything the visitor said?", ``doc_coverage`` "did the visitor say what the
document is about?". The weighted geometric mean needs both, leaning on the first: visitors add
words of their own ("my blue jacket") more often than they leave the topic out. A question about
something the knowledge base never mentions ("can I order a pizza?") covers little of the query;
one that merely shares a word with a phrasing covers little of either. Answers weigh less than
questions: a query that only matches words inside a long answer is weaker evidence.

A known limit of lexical matching: a lone word that is most of a short phrasing ("time" against
"Delivery time", "order" against "Where is my order?") scores high, although a person would
call it ambiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import numpy.typing as npt

from bots.text import tokenize, word_importance, word_variants
from bots.types import KnowledgeEntry

QUESTION_WEIGHT = 1.0
ANSWER_WEIGHT = 0.6
QUERY_COVERAGE_EXPONENT = 0.6

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Documents:
    tokens: list[list[str]]
    entry_of: IntArray  # document -> position of its entry
    weight: FloatArray  # document -> QUESTION_WEIGHT or ANSWER_WEIGHT


@dataclass(frozen=True)
class _Postings:
    """bm25s's term-score matrix, by word: ``docs[starts[w]:starts[w + 1]]`` contain word ``w``.

    Read directly rather than through ``BM25.get_scores`` to weigh each query word
    (``word_importance``) and to get coverage from the same pass.
    """

    vocabulary: dict[str, int]
    starts: IntArray
    docs: IntArray
    scores: FloatArray  # bm25 term score of the word in the doc, times the word's importance
    word_weight: FloatArray  # inverse entry frequency times importance
    unknown_word_weight: float
    self_scores: FloatArray  # bm25(doc, doc): the most any query can score against a doc


class LexicalIndex:
    """Immutable after ``build``; safe to use from many threads at once."""

    def __init__(
        self,
        *,
        entry_count: int,
        documents: _Documents,
        postings: _Postings | None,
    ) -> None:
        self._entry_count = entry_count
        self._documents = documents
        self._postings = postings

    @classmethod
    def build(cls, entries: Sequence[KnowledgeEntry]) -> LexicalIndex:
        documents = _documents(entries)
        # bm25s cannot index an empty corpus; an index of nothing simply finds nothing.
        postings = _postings(documents) if documents.tokens else None
        return cls(entry_count=len(entries), documents=documents, postings=postings)

    def confidence(self, query: str) -> FloatArray:
        """Every entry's lexical confidence for ``query``, 0..1, in the order of the entries."""
        return self._entry_confidence(query)

    def _entry_confidence(self, query: str) -> FloatArray:
        per_entry = np.zeros(self._entry_count)
        postings = self._postings
        if postings is None:
            return per_entry
        word_ids = [_word_id(word, postings.vocabulary) for word in dict.fromkeys(tokenize(query))]
        # A set: BM25 would count a repeated word twice, and "ordered" may resolve to "order".
        known = sorted({word_id for word_id in word_ids if word_id is not None})
        if not known:
            return per_entry
        query_weight = (
            postings.word_weight[known].sum() + word_ids.count(None) * postings.unknown_word_weight
        )
        scores = np.zeros(len(postings.self_scores))
        covered = np.zeros(len(postings.self_scores))
        for word_id in known:
            span = slice(postings.starts[word_id], postings.starts[word_id + 1])
            scores[postings.docs[span]] += postings.scores[span]
            covered[postings.docs[span]] += postings.word_weight[word_id]
        query_coverage = covered / query_weight
        doc_coverage = np.minimum(scores / postings.self_scores, 1.0)
        per_doc = (
            query_coverage**QUERY_COVERAGE_EXPONENT
            * doc_coverage ** (1 - QUERY_COVERAGE_EXPONENT)
            * self._documents.weight
        )
        np.maximum.at(per_entry, self._documents.entry_of, per_doc)
        return np.clip(per_entry, 0.0, 1.0)


def _word_id(word: str, vocabulary: dict[str, int]) -> int | None:
    for form in (word, *word_variants(word)):
        if form in vocabulary:
            return vocabulary[form]
    return None


def _documents(entries: Sequence[KnowledgeEntry]) -> _Documents:
    tokens: list[list[str]] = []
    entry_of: list[int] = []
    weight: list[float] = []
    for position, entry in enumerate(entries):
        texts = [(entry.question, QUESTION_WEIGHT), (entry.answer, ANSWER_WEIGHT)]
        texts += [(phrasing, QUESTION_WEIGHT) for phrasing in entry.phrasings]
        for text, text_weight in texts:
            words = tokenize(text)
            if words:  # a text of stop words only has nothing to match
                tokens.append(words)
                entry_of.append(position)
                weight.append(text_weight)
    return _Documents(
        tokens=tokens,
        entry_of=np.array(entry_of, dtype=np.int64),
        weight=np.array(weight, dtype=np.float64),
    )


def _postings(documents: _Documents) -> _Postings:
    bm25 = bm25s.BM25(method="lucene")  # lucene's idf is never negative, even in a tiny corpus
    bm25.index(documents.tokens, show_progress=False)
    # bm25s adds "" to the vocabulary past the end of its matrix; tokenize never yields it.
    vocabulary = {word: i for word, i in bm25.vocab_dict.items() if word}
    starts = np.asarray(bm25.scores["indptr"], dtype=np.int64)
    docs = np.asarray(bm25.scores["indices"], dtype=np.int64)
    importance = np.ones(len(starts) - 1)
    for word, word_id in vocabulary.items():
        importance[word_id] = word_importance(word)
    scores = np.asarray(bm25.scores["data"], dtype=np.float64) * np.repeat(
        importance, np.diff(starts)
    )
    entry_count = len(set(documents.entry_of.tolist()))
    return _Postings(
        vocabulary=vocabulary,
        starts=starts,
        docs=docs,
        scores=scores,
        word_weight=_entry_idf(documents, vocabulary, entry_count=entry_count) * importance,
        # A word the knowledge base never uses is as telling as its rarest: "pizza" is what
        # "can I order a pizza?" is about.
        unknown_word_weight=_idf(0, entry_count=entry_count),
        self_scores=_sum_by_doc(docs, scores, doc_count=len(documents.tokens)),
    )


def _sum_by_doc(docs: IntArray, scores: FloatArray, *, doc_count: int) -> FloatArray:
    """bm25(doc, doc) for every document: all its words' term scores added up."""
    return np.bincount(docs, weights=scores, minlength=doc_count).astype(np.float64)


def _entry_idf(
    documents: _Documents, vocabulary: dict[str, int], *, entry_count: int
) -> FloatArray:
    """Inverse *entry* frequency of every word.

    Counted per entry rather than per document: an entry with six phrasings that all say
    "refund" must not make "refund" look like a common word.
    """
    entries_with: dict[str, set[int]] = {}
    for words, entry in zip(documents.tokens, documents.entry_of.tolist(), strict=True):
        for word in words:
            entries_with.setdefault(word, set()).add(entry)
    weight = np.zeros(len(vocabulary))
    for word, word_id in vocabulary.items():
        weight[word_id] = _idf(len(entries_with[word]), entry_count=entry_count)
    return weight


def _idf(frequency: int, *, entry_count: int) -> float:
    """Lucene's idf, as bm25s uses: positive even for a word that every entry uses."""
    return math.log(1 + (entry_count - frequency + 0.5) / (frequency + 0.5))
