"""Measure the FAQ bot on a labelled data set: ``bot_eval DATASET_DIR [--shots K] [--json]``.

DATASET_DIR holds ``train.csv`` and ``test.csv`` with columns ``text,category`` (the format of
BANKING77). A throwaway knowledge base gets one entry per train category with K of its
phrasings; every test question goes through ``bots.decide`` with the widget's default
thresholds. A test category ``oos`` is out of scope: it must be handed off. Needs no database.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from bots.bench import bench
from bots.evaluation import evaluate, knowledge_base, read_examples


class Command(BaseCommand):
    help = "Evaluate the FAQ bot's retrieval and decisions on a train.csv/test.csv data set."
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("dataset_dir", type=Path)
        parser.add_argument(
            "--shots", type=int, default=None, help="Phrasings per entry (default: all)"
        )
        parser.add_argument("--seed", type=int, default=0, help="Which phrasings are drawn")
        parser.add_argument("--json", action="store_true", help="Print one JSON object")
        parser.add_argument(
            "--bench-entries",
            type=int,
            default=0,
            help="Also time a synthetic knowledge base of this many entries (e.g. 10000)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory: Path = options["dataset_dir"]
        train_csv, test_csv = directory / "train.csv", directory / "test.csv"
        for path in (train_csv, test_csv):
            if not path.is_file():
                raise CommandError(f"{path} not found")
        shots: int | None = options["shots"]
        if shots is not None and shots < 1:
            raise CommandError("--shots must be at least 1")
        entries = knowledge_base(read_examples(train_csv), shots=shots, seed=options["seed"])
        if not entries:
            raise CommandError(f"{train_csv} has no in-scope category")
        report = evaluate(entries=entries, test=read_examples(test_csv)).as_dict()
        if options["bench_entries"]:
            timing = bench(entries=options["bench_entries"])
            report |= {
                "bench_entries": timing.entries,
                "bench_build_s": timing.build_s,
                "bench_p50_ms": timing.p50_ms,
                "bench_p95_ms": timing.p95_ms,
                "bench_cpu_p95_ms": timing.cpu_p95_ms,
            }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self._print(report, shots=shots, seed=options["seed"])

    def _print(self, report: dict[str, Any], *, shots: int | None, seed: int) -> None:
        def share(key: str) -> str:
            value = report[key]
            return "n/a (no oos rows)" if value is None else f"{value:.3f}"

        lines = [
            f"{report['entries']} entries ({shots or 'all'} phrasings each, seed {seed}), "
            f"{report['questions']} questions; index built in {report['build_s']:.1f} s",
            f"top-1 accuracy of retrieval (in scope)  {share('top1')}",
            f"answered correct                        {share('answered_correct')}",
            f"answered wrong                          {share('answered_wrong')}",
            f"clarified                               {share('clarified')}",
            f"handed off                              {share('handoff')}",
            f"in-scope accuracy (answered correct)    {share('in_scope_accuracy')}",
            f"out-of-scope hand-off recall            {share('oos_recall')}",
            f"latency per question, one core          p50 {report['p50_ms']:.1f} ms, "
            f"p95 {report['p95_ms']:.1f} ms (CPU time p50 {report['cpu_p50_ms']:.1f} ms, "
            f"p95 {report['cpu_p95_ms']:.1f} ms)",
        ]
        if "bench_entries" in report:
            lines.append(
                f"{report['bench_entries']} synthetic entries: built in "
                f"{report['bench_build_s']:.1f} s; p50 {report['bench_p50_ms']:.1f} ms, "
                f"p95 {report['bench_p95_ms']:.1f} ms (CPU time p95 "
                f"{report['bench_cpu_p95_ms']:.1f} ms)"
            )
        self.stdout.write("\n".join(lines))
