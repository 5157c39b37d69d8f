"""A per-site classifier that learns which entry a question is about from the entries' phrasings.

Nearest-neighbour search over phrasings uses each phrasing alone; a classifier weighs them
together and learns which words and which directions of the embedding space tell two entries
apart. On BANKING77 with 10 phrasings per entry (plus the entry's title) top-1 accuracy:

=========================================================  ======
nearest phrasing, USE embeddings                           0.72
logistic regression on USE embeddings                      0.81
logistic regression on USE + character and word n-grams    0.83
=========================================================  ======

Up to ``MAX_LOGISTIC_ENTRIES`` entries the model is that last one (a few seconds to train). Past
it, a multinomial logistic regression costs minutes per rebuild, so a larger knowledge base gets
linear discriminant analysis on the embeddings: closed-form, ~2 points less accurate, and it
trains 10,000 entries in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bots.text import normalize, word_ngrams

MAX_LOGISTIC_ENTRIES = 500
# Weight of each n-gram block next to the unit-length embedding: chosen on BANKING77 train.csv
# (held-out phrasings) for the default USE + MiniLM embedding.
NGRAM_WEIGHT = 0.3
# Weak regularisation: with ~10 examples per entry the classes rarely overlap in this space,
# and a stronger penalty flattens the probabilities of small knowledge bases.
INVERSE_REGULARISATION = 100.0
# The model keeps a weight per n-gram and entry (dense: logistic regression leaves none at 0),
# so the most frequent n-grams only: at 500 entries that is (20,000 + 10,000) x 500 x 4 bytes,
# 60 MB. BANKING77 at 10 phrasings has 8,800 character and 3,200 word n-grams: under the cap.
MAX_CHAR_NGRAMS = 20_000
MAX_WORD_NGRAMS = 10_000
# Share of the identity mixed into the shared covariance of LDA.
LDA_SHRINKAGE = 0.5

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class EntryClassifier:
    """P(entry | question) over a site's entries; immutable and thread-safe once trained."""

    def __init__(self, *, entry_count: int, model: _Model | None) -> None:
        self._entry_count = entry_count
        self._model = model

    @classmethod
    def train(
        cls,
        *,
        texts: Sequence[str],
        vectors: npt.NDArray[np.float32],
        labels: IntArray,
        entry_count: int,
    ) -> EntryClassifier:
        """Learn from ``texts`` (with their embeddings ``vectors``), each labelled with the
        position of its entry; every entry in ``range(entry_count)`` needs one text at least."""
        if len(set(labels.tolist())) < 2:
            return cls(entry_count=entry_count, model=None)
        if entry_count <= MAX_LOGISTIC_ENTRIES:
            model: _Model = _Logistic.train(texts, vectors, labels, entry_count)
        else:
            model = _Discriminant.train(vectors, labels, entry_count)
        return cls(entry_count=entry_count, model=model)

    def probabilities(self, *, text: str, vector: npt.NDArray[np.float32]) -> FloatArray:
        """Every entry's probability of being the one ``text`` asks about; they add up to 1,
        except without a model, when every entry gets an uninformative 0.5."""
        if self._model is None:
            # Nothing to tell apart (one entry with text): no evidence either way, rather
            # than the certainty that a probability of 1 would claim.
            return np.full(self._entry_count, 0.5)
        return self._model.probabilities(text, vector)


class _Model:
    def probabilities(self, text: str, vector: npt.NDArray[np.float32]) -> FloatArray:
        raise NotImplementedError


@dataclass(frozen=True)
class _Logistic(_Model):
    """Multinomial logistic regression on [embedding | char n-grams | word n-grams]."""

    chars: TfidfVectorizer
    words: TfidfVectorizer
    # The model's weights split by feature block, so a query needs no stacked matrix.
    embedding_weights: npt.NDArray[np.float32]  # (dimensions, entries)
    char_weights: npt.NDArray[np.float32]  # (char n-grams, entries)
    word_weights: npt.NDArray[np.float32]  # (word n-grams, entries)
    intercept: FloatArray
    classes: IntArray  # column -> entry position
    entry_count: int

    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        vectors: npt.NDArray[np.float32],
        labels: IntArray,
        entry_count: int,
    ) -> _Logistic:
        chars = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            preprocessor=normalize,
            sublinear_tf=True,
            dtype=np.float32,
            max_features=MAX_CHAR_NGRAMS,
        )
        words = TfidfVectorizer(
            analyzer=word_ngrams, sublinear_tf=True, dtype=np.float32, max_features=MAX_WORD_NGRAMS
        )
        char_features = _fit(chars, texts)
        word_features = _fit(words, texts)
        features = sparse.hstack(
            [
                sparse.csr_matrix(vectors),
                NGRAM_WEIGHT * char_features,
                NGRAM_WEIGHT * word_features,
            ]
        ).tocsr()
        model = LogisticRegression(C=INVERSE_REGULARISATION, max_iter=300)
        model.fit(features, labels)
        coef = model.coef_.astype(np.float32)
        if coef.shape[0] == 1:  # two entries: sklearn keeps one row, for the second class
            coef = np.vstack([-coef / 2, coef / 2])
            intercept = np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
        else:
            intercept = model.intercept_
        dimensions = vectors.shape[1]
        char_count = char_features.shape[1]
        return cls(
            chars=chars,
            words=words,
            embedding_weights=np.ascontiguousarray(coef[:, :dimensions].T),
            char_weights=np.ascontiguousarray(
                NGRAM_WEIGHT * coef[:, dimensions : dimensions + char_count].T
            ),
            word_weights=np.ascontiguousarray(NGRAM_WEIGHT * coef[:, dimensions + char_count :].T),
            intercept=np.asarray(intercept, dtype=np.float64),
            classes=np.asarray(model.classes_, dtype=np.int64),
            entry_count=entry_count,
        )

    def probabilities(self, text: str, vector: npt.NDArray[np.float32]) -> FloatArray:
        logits = vector @ self.embedding_weights + self.intercept
        blocks = ((self.chars, self.char_weights), (self.words, self.word_weights))
        for vectorizer, weights in blocks:
            if vectorizer.vocabulary_:
                # A query has a few dozen n-grams: read only their rows of the weights.
                features = vectorizer.transform([text])
                logits += features.data @ weights[features.indices]
        probabilities = np.zeros(self.entry_count)
        probabilities[self.classes] = _softmax(logits)
        return probabilities


@dataclass(frozen=True)
class _Discriminant(_Model):
    """Linear discriminant analysis with a shared, shrunk covariance: closed-form."""

    weights: npt.NDArray[np.float32]  # (dimensions, entries)
    intercept: npt.NDArray[np.float32]

    @classmethod
    def train(
        cls, vectors: npt.NDArray[np.float32], labels: IntArray, entry_count: int
    ) -> _Discriminant:
        counts = np.bincount(labels, minlength=entry_count).astype(np.float64)
        sums = np.zeros((entry_count, vectors.shape[1]))
        np.add.at(sums, labels, vectors)
        means = sums / np.maximum(counts, 1)[:, None]
        residuals = vectors - means[labels]
        covariance = residuals.T @ residuals / max(len(vectors) - 1, 1)
        dimensions = covariance.shape[0]
        covariance = (1 - LDA_SHRINKAGE) * covariance + LDA_SHRINKAGE * np.trace(
            covariance
        ) / dimensions * np.eye(dimensions)
        weights = np.linalg.solve(covariance, means.T)
        intercept = -0.5 * np.einsum("ij,ji->i", means, weights)
        return cls(weights=weights.astype(np.float32), intercept=intercept.astype(np.float32))

    def probabilities(self, text: str, vector: npt.NDArray[np.float32]) -> FloatArray:
        return _softmax((vector @ self.weights + self.intercept).astype(np.float64))


def _fit(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sparse.csr_matrix:
    try:
        return vectorizer.fit_transform(texts)
    except ValueError:  # not one n-gram in any text, e.g. only stop words
        vectorizer.vocabulary_ = {}
        return sparse.csr_matrix((len(texts), 0), dtype=np.float32)


def _softmax(logits: FloatArray) -> FloatArray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()
