"""Fit ``bots.confidence`` and choose the default thresholds, from a train.csv only.

    python -m bots.calibrate ../shared/datasets/banking77/train.csv

Simulates sites from the train set: each takes some categories as its entries (title plus K
phrasings), asks the train phrasings it left out (in scope) and the phrasings of categories it
does not have (out of scope), and records every candidate's evidence and whether it was right.
Prints the fitted weights and a table of outcomes per threshold to paste from. Never give it a
test set: the numbers ``bot_eval`` reports on test.csv are only honest if nothing was tuned there.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from bots import confidence as confidence_module
from bots.confidence import FEATURE_NAMES, Evidence, features
from bots.decision import choose
from bots.embeddings import Embedder, default_embedder
from bots.evaluation import OUT_OF_SCOPE, Example, read_examples, title_of
from bots.knowledge import KnowledgeIndex
from bots.types import KnowledgeEntry

# (entries, phrasings per entry) of the simulated sites, each drawn SITES_PER_SHAPE times.
SHAPES = ((5, 3), (10, 3), (10, 5), (20, 5), (40, 5), (40, 10), (60, 10), (67, 10))
SITES_PER_SHAPE = 3
QUESTIONS_PER_SITE = 300
OUT_OF_SCOPE_CATEGORIES = 10


@dataclass(frozen=True)
class Asked:
    """One question put to a simulated site: every candidate's evidence, and the right one."""

    evidence: list[Evidence]
    entry_ids: list[int]
    expected: int | None  # None: out of scope
    shape: tuple[int, int]


def simulate(train: Sequence[Example], *, seed: int, embedder: Embedder) -> list[Asked]:
    by_category: dict[str, list[str]] = defaultdict(list)
    for example in train:
        if example.category != OUT_OF_SCOPE:
            by_category[example.category].append(example.text)
    categories = sorted(by_category)
    rng = random.Random(seed)
    asked: list[Asked] = []
    for shape in SHAPES:
        size, shots = shape
        for _ in range(SITES_PER_SHAPE):
            shuffled = rng.sample(categories, len(categories))
            chosen, absent = shuffled[:size], shuffled[size:][:OUT_OF_SCOPE_CATEGORIES]
            entries: list[KnowledgeEntry] = []
            questions: list[tuple[str, int | None]] = []
            for entry_id, category in enumerate(chosen, start=1):
                texts = rng.sample(by_category[category], len(by_category[category]))
                entries.append(
                    KnowledgeEntry(entry_id, title_of(category), tuple(texts[:shots]), "", "en")
                )
                questions += [(text, entry_id) for text in texts[shots:]]
            questions = rng.sample(questions, min(len(questions), QUESTIONS_PER_SITE))
            outside: list[tuple[str, int | None]] = [
                (t, None) for c in absent for t in by_category[c]
            ]
            # About one question in five out of scope, as a busy helpdesk might see.
            questions += rng.sample(outside, min(len(outside), len(questions) // 4))
            index = KnowledgeIndex.build(entries, embedder=embedder)
            for text, expected in questions:
                matches = index.rank(text, k=len(entries))
                # The decision only ever looks at the front runners: fit on those.
                by_probability = sorted(matches, key=lambda m: -m.evidence.probability)[:3]
                by_words = sorted(matches, key=lambda m: -m.evidence.lexical)[:1]
                matches = list({id(m): m for m in by_probability + by_words}.values())
                asked.append(
                    Asked(
                        evidence=[m.evidence for m in matches],
                        entry_ids=[m.entry.id for m in matches],
                        expected=expected,
                        shape=shape,
                    )
                )
            print(f"  site {shape}: {len(questions)} questions", flush=True)
    return asked


def fit(asked: Sequence[Asked]) -> tuple[tuple[float, ...], float]:
    rows, labels = [], []
    for question in asked:
        for evidence, entry_id in zip(question.evidence, question.entry_ids, strict=True):
            rows.append(features(evidence))
            labels.append(entry_id == question.expected)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(np.array(rows), np.array(labels))
    return tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0])


def outcomes(
    asked: Sequence[Asked], *, threshold: float, clarify_threshold: float
) -> dict[str, float]:
    """Rates over in-scope questions, and the share of out-of-scope ones handed off."""
    counts: dict[tuple[str, str], float] = defaultdict(float)
    for question in asked:
        scored = sorted(
            zip(
                map(confidence_module.confidence, question.evidence),
                question.entry_ids,
                strict=True,
            ),
            reverse=True,
        )
        choice = choose([c for c, _ in scored], threshold, clarify_threshold)
        outcome: str = {"answer": "answered", "clarify": "clarified"}.get(choice, choice)
        if outcome == "answered":
            outcome = "correct" if scored[0][1] == question.expected else "wrong"
        counts[("in" if question.expected is not None else "out", outcome)] += 1
    in_scope = sum(q.expected is not None for q in asked)
    out_of_scope = len(asked) - in_scope
    rates = {key: counts["in", key] / max(in_scope, 1) for key in _OUTCOMES}
    rates["oos_recall"] = counts["out", "handoff"] / max(out_of_scope, 1)
    return rates


_OUTCOMES = ("correct", "wrong", "clarified", "handoff")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_csv", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = read_examples(args.train_csv)
    # The default embedder remembers every text, so each is embedded once across the sites.
    asked = simulate(train, seed=args.seed, embedder=default_embedder())
    weights, intercept = fit(asked)
    print("FEATURE_NAMES =", FEATURE_NAMES)
    print("WEIGHTS =", tuple(round(w, 3) for w in weights))
    print("INTERCEPT =", round(intercept, 3))
    confidence_module.WEIGHTS = weights  # type: ignore[assignment]
    confidence_module.INTERCEPT = intercept
    for shape in sorted({q.shape for q in asked}):
        subset = [q for q in asked if q.shape == shape]
        print(f"\nsite of {shape[0]} entries x {shape[1]} phrasings, {len(subset)} questions")
        print("in-scope questions:          correct  wrong  clarified  handoff | oos_recall")
        for threshold in (0.4, 0.5, 0.55, 0.6, 0.7):
            for clarify in (threshold, threshold + 0.05, threshold + 0.1):
                rates = outcomes(subset, threshold=threshold, clarify_threshold=clarify)
                print(
                    f"threshold {threshold:.2f} clarify {clarify:.2f} {rates['correct']:8.3f} "
                    f"{rates['wrong']:6.3f} {rates['clarified']:10.3f} {rates['handoff']:8.3f} "
                    f"{rates['oos_recall']:11.3f}"
                )


if __name__ == "__main__":
    main()
