"""From an entry's evidence to one number: the estimated chance that it answers the question.

A logistic model over the three signals of ``bots.knowledge``. Its weights were fitted by
``python -m bots.calibrate`` on BANKING77's train.csv only: simulated sites of 5 to 77 entries
with 3 to 10 phrasings each, asked the train phrasings left out of their knowledge base (in
scope) and the phrasings of categories left out altogether (out of scope). Because every site
size was in that mix, the same confidence means the same thing for a 5-entry shop FAQ and a
500-entry bank: thresholds need no retuning when a site adds entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Evidence:
    probability: float  # the classifier's, 0..1
    margin: float  # probability minus the best other entry's probability, -1..1
    similarity: float  # cosine to the entry's nearest title, phrasing or answer, 0..1
    lexical: float  # share of the question's words the entry accounts for, 0..1
    entry_count: int  # entries in the knowledge base

    def as_json(self) -> dict[str, float]:
        return {
            "probability": round(self.probability, 4),
            "similarity": round(self.similarity, 4),
            "lexical": round(self.lexical, 4),
        }


FEATURE_NAMES = (
    "log_odds",
    "margin",
    "similarity",
    "lexical",
    "log_entries",
    "log_odds_x_log_entries",
)
# Fitted by `python -m bots.calibrate ../shared/datasets/banking77/train.csv`.
WEIGHTS = (1.201, 0.783, 2.716, 0.77, -0.174, -0.085)
INTERCEPT = -1.734


def features(evidence: Evidence) -> tuple[float, ...]:
    probability = min(max(evidence.probability, 1e-6), 1 - 1e-6)
    log_odds = math.log(probability / (1 - probability))
    log_entries = math.log(max(evidence.entry_count, 1))
    return (
        log_odds,
        evidence.margin,
        evidence.similarity,
        evidence.lexical,
        log_entries,
        log_odds * log_entries,
    )


def confidence(evidence: Evidence) -> float:
    z = INTERCEPT + sum(w * x for w, x in zip(WEIGHTS, features(evidence), strict=True))
    return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0
