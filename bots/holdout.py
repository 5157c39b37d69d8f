"""An out-of-scope variant of a ``text,category`` data set, for ``bot_eval``.

    python -m bots.holdout ../shared/datasets/banking77 /tmp/banking77-oos --categories 10

``--categories`` categories, drawn with ``--seed``, leave train.csv (so no knowledge base built
from it has an entry for them), and their test.csv rows are relabelled ``oos``: questions the
bot should hand over. The other rows are copied unchanged.
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Sequence
from pathlib import Path

from bots.evaluation import OUT_OF_SCOPE, Example, read_examples


def held_out_categories(train: Sequence[Example], *, count: int, seed: int) -> list[str]:
    categories = sorted({e.category for e in train if e.category != OUT_OF_SCOPE})
    if not 0 < count < len(categories):
        raise ValueError(f"can hold out 1 to {len(categories) - 1} categories, not {count}")
    return sorted(random.Random(seed).sample(categories, count))


def hold_out(source: Path, destination: Path, *, count: int, seed: int = 0) -> list[str]:
    """Write the out-of-scope variant of ``source`` to ``destination``; return the categories
    held out."""
    train = read_examples(source / "train.csv")
    test = read_examples(source / "test.csv")
    held = set(held_out_categories(train, count=count, seed=seed))
    destination.mkdir(parents=True, exist_ok=True)
    _write(destination / "train.csv", [e for e in train if e.category not in held])
    _write(
        destination / "test.csv",
        [Example(e.text, OUT_OF_SCOPE) if e.category in held else e for e in test],
    )
    return sorted(held)


def _write(path: Path, examples: Sequence[Example]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "category"])
        writer.writerows((e.text, e.category) for e in examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--categories", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    held = hold_out(args.source, args.destination, count=args.categories, seed=args.seed)
    print(f"held out {len(held)} categories as {OUT_OF_SCOPE!r}: {', '.join(held)}")


if __name__ == "__main__":
    main()
