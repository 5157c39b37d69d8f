"""Measuring the bot on a labelled data set: ``text,category`` CSVs such as BANKING77.

Each category becomes one FAQ entry whose title is the category's name ("card_arrival" ->
"Card arrival") and whose phrasings are K of its train questions. Every test question is then
put to ``decide`` exactly as the widget would, as the first visitor turn of a conversation. A
test category named ``oos`` is out of scope: never in the knowledge base, and the right outcome
is a hand-off.
"""

from __future__ import annotations

import csv
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bots.decision import DEFAULT_CLARIFY_THRESHOLD, DEFAULT_THRESHOLD, decide
from bots.knowledge import KnowledgeIndex
from bots.types import Answer, Clarify, KnowledgeEntry, Turn

OUT_OF_SCOPE = "oos"


@dataclass(frozen=True)
class Example:
    text: str
    category: str


@dataclass(frozen=True)
class Report:
    """Rates are shares of all test questions unless named otherwise."""

    top1: float  # in-scope questions whose best-ranked entry is the right one
    answered_correct: float
    answered_wrong: float  # out-of-scope questions that were answered count here too
    clarified: float
    handoff: float
    in_scope_accuracy: float  # in-scope questions answered with the right entry
    oos_recall: float | None  # out-of-scope questions handed off; None without any
    p50_ms: float
    p95_ms: float
    # CPU time per question: what one idle core needs, whatever else the machine was doing.
    cpu_p50_ms: float
    cpu_p95_ms: float
    entries: int
    questions: int
    build_s: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def read_examples(path: Path) -> list[Example]:
    with path.open(newline="", encoding="utf-8") as file:
        return [Example(row["text"], row["category"]) for row in csv.DictReader(file)]


def knowledge_base(
    train: Sequence[Example], *, shots: int | None, seed: int
) -> list[KnowledgeEntry]:
    """One entry per in-scope category with ``shots`` of its phrasings (all when ``None``)."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for example in train:
        if example.category != OUT_OF_SCOPE:
            by_category[example.category].append(example.text)
    rng = random.Random(seed)
    entries = []
    for entry_id, category in enumerate(sorted(by_category), start=1):
        texts = by_category[category]
        chosen = texts if shots is None else rng.sample(texts, min(shots, len(texts)))
        entries.append(
            KnowledgeEntry(
                id=entry_id,
                question=title_of(category),
                phrasings=tuple(chosen),
                answer="",
                language="en",
            )
        )
    return entries


def title_of(category: str) -> str:
    return category.replace("_", " ").strip().capitalize()


def evaluate(
    *,
    entries: Sequence[KnowledgeEntry],
    test: Sequence[Example],
    threshold: float = DEFAULT_THRESHOLD,
    clarify_threshold: float = DEFAULT_CLARIFY_THRESHOLD,
    index: KnowledgeIndex | None = None,
) -> Report:
    entry_of = {entry.question: entry.id for entry in entries}
    counts: dict[str, int] = defaultdict(int)
    latencies = []
    cpu = []
    with threadpool_limits(limits=1):  # one core, as a worker builds and answers
        started = time.perf_counter()
        index = index or KnowledgeIndex.build(entries)
        build_s = time.perf_counter() - started
        for example in test:
            expected = entry_of.get(title_of(example.category))
            in_scope = example.category != OUT_OF_SCOPE and expected is not None
            started = time.perf_counter()
            cpu_started = time.process_time()
            decision = decide(
                index=index,
                history=[Turn(role="visitor", body=example.text)],
                threshold=threshold,
                clarify_threshold=clarify_threshold,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            top = decision.scores[0].entry_id if decision.scores else None
            counts["in_scope"] += in_scope
            counts["top1"] += in_scope and top == expected
            if isinstance(decision, Answer):
                correct = in_scope and decision.entry_id == expected
                counts["answered_correct" if correct else "answered_wrong"] += 1
            elif isinstance(decision, Clarify):
                counts["clarified"] += 1
            else:
                counts["handoff"] += 1
                counts["oos_handoff"] += not in_scope
    total = max(len(test), 1)
    out_of_scope = len(test) - counts["in_scope"]
    return Report(
        top1=counts["top1"] / max(counts["in_scope"], 1),
        answered_correct=counts["answered_correct"] / total,
        answered_wrong=counts["answered_wrong"] / total,
        clarified=counts["clarified"] / total,
        handoff=counts["handoff"] / total,
        in_scope_accuracy=counts["answered_correct"] / max(counts["in_scope"], 1),
        oos_recall=counts["oos_handoff"] / out_of_scope if out_of_scope else None,
        p50_ms=float(np.percentile(latencies, 50)) if latencies else 0.0,
        p95_ms=float(np.percentile(latencies, 95)) if latencies else 0.0,
        cpu_p50_ms=float(np.percentile(cpu, 50)) if cpu else 0.0,
        cpu_p95_ms=float(np.percentile(cpu, 95)) if cpu else 0.0,
        entries=len(entries),
        questions=len(test),
        build_s=build_s,
    )
