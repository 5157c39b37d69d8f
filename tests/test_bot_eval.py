"""``manage.py bot_eval``: the FAQ bot measured on a slice of BANKING77, so a regression fails CI.

The data set is read from ``shared/datasets/banking77`` beside the repository, never copied in.
Each test writes a small ``train.csv``/``test.csv`` pair to a temporary directory: 20 of the 77
categories, 10 test questions each. The floors sit a few points under what the bot scores on
that slice (seed 0: top-1 0.89, answered-correct 0.78, answered-wrong 0.045; with 5 categories
held out, 52% of their questions handed off, down from 60% before MiniLM joined USE).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

BANKING77 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "banking77"
CATEGORIES = 20
QUESTIONS_PER_CATEGORY = 10
HELD_OUT = 5  # categories left out of the knowledge base for the out-of-scope check

pytestmark = pytest.mark.skipif(
    not (BANKING77 / "train.csv").is_file(),
    reason=f"BANKING77 not found at {BANKING77} (it lives in the shared folder beside the repo)",
)

Rows = dict[str, list[str]]


def read(name: str) -> Rows:
    by_category: Rows = defaultdict(list)
    with (BANKING77 / name).open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            by_category[row["category"]].append(row["text"])
    return by_category


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "category"])
        writer.writerows(rows)


def banking_slice(directory: Path, *, out_of_scope: int = 0) -> Path:
    """Every fourth category; the last ``out_of_scope`` of them are left out of train.csv and
    their test questions relabelled ``oos``."""
    train, test = read("train.csv"), read("test.csv")
    chosen = sorted(train)[::4][:CATEGORIES]
    outside = set(chosen[len(chosen) - out_of_scope :]) if out_of_scope else set()
    write(
        directory / "train.csv",
        [(text, c) for c in chosen if c not in outside for text in train[c]],
    )
    write(
        directory / "test.csv",
        [
            (text, "oos" if c in outside else c)
            for c in chosen
            for text in test[c][:QUESTIONS_PER_CATEGORY]
        ],
    )
    return directory


def bot_eval(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("bot_eval", *args, "--json", stdout=out)
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def test_it_answers_a_banking_slice_well_enough_to_ship(tmp_path: Path) -> None:
    result = bot_eval(str(banking_slice(tmp_path)), "--shots", "10", "--seed", "0")

    assert set(result) >= {
        "top1",
        "answered_correct",
        "answered_wrong",
        "clarified",
        "handoff",
        "in_scope_accuracy",
        "oos_recall",
        "p50_ms",
        "p95_ms",
        "entries",
        "questions",
    }
    assert result["entries"] == CATEGORIES
    assert result["questions"] == CATEGORIES * QUESTIONS_PER_CATEGORY
    assert result["top1"] >= 0.85
    assert result["answered_correct"] >= 0.7
    assert result["answered_wrong"] <= 0.08
    rates = ("answered_correct", "answered_wrong", "clarified", "handoff")
    assert sum(result[key] for key in rates) == pytest.approx(1.0)
    assert result["oos_recall"] is None
    # CPU time: wall-clock time on a shared CI machine says more about the neighbours.
    assert result["cpu_p95_ms"] < 60  # 30 ms is the target


def test_it_hands_off_most_questions_about_categories_the_knowledge_base_lacks(
    tmp_path: Path,
) -> None:
    result = bot_eval(str(banking_slice(tmp_path, out_of_scope=HELD_OUT)), "--shots", "10")

    assert result["entries"] == CATEGORIES - HELD_OUT
    # These are banking questions asked of a bank, only about other topics: the hardest kind
    # of out-of-scope question, and still most of them go to a person.
    assert result["oos_recall"] >= 0.5
    assert result["in_scope_accuracy"] >= 0.7


def test_it_prints_a_readable_report_without_json(tmp_path: Path) -> None:
    out = StringIO()

    call_command("bot_eval", str(banking_slice(tmp_path)), "--shots", "3", stdout=out)

    report = out.getvalue()
    assert "20 entries (3 phrasings each, seed 0), 200 questions" in report
    assert "top-1 accuracy of retrieval" in report
    assert "out-of-scope hand-off recall            n/a (no oos rows)" in report
    assert "p95" in report


def test_it_refuses_a_directory_without_the_two_files(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"train\.csv not found"):
        call_command("bot_eval", str(tmp_path), "--json")


def test_it_holds_categories_out_of_train_and_asks_their_questions_as_out_of_scope(
    tmp_path: Path,
) -> None:
    from bots.holdout import hold_out

    source, destination = tmp_path / "source", tmp_path / "oos"
    source.mkdir()
    categories = [f"topic_{n}" for n in range(6)]
    write(source / "train.csv", [(f"train {c} {i}", c) for c in categories for i in range(3)])
    write(source / "test.csv", [(f"test {c}", c) for c in categories])

    held = hold_out(source, destination, count=2, seed=1)

    assert len(held) == 2 and set(held) <= set(categories)
    assert hold_out(source, tmp_path / "again", count=2, seed=1) == held  # the seed fixes them
    with (destination / "train.csv").open(newline="", encoding="utf-8") as file:
        train = list(csv.DictReader(file))
    with (destination / "test.csv").open(newline="", encoding="utf-8") as file:
        test = {row["text"]: row["category"] for row in csv.DictReader(file)}
    assert {row["category"] for row in train} == set(categories) - set(held)
    assert len(train) == 3 * (len(categories) - 2)
    assert test == {f"test {c}": "oos" if c in held else c for c in categories}
    with pytest.raises(ValueError, match="can hold out 1 to 5 categories"):
        hold_out(source, destination, count=6)
