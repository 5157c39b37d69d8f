"""``manage.py bench_chat`` runs end to end: real servers, real sockets, a report in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from chat.bench.runner import Climb
from tests.live import ROOT

pytestmark = pytest.mark.slow

FIGURES = ["sustained_msgs_per_s", "p50_ms", "p99_ms", "lost", "rss_mib"]


def bench_chat(*args: str) -> dict:
    run = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench_chat",
            *args,
            "--json",
            # On PostgreSQL: a database of its own, so a bench_chat run by hand is not in the way.
            *("--pg-database", f"helpdesk_bench_test_{os.getpid()}"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def test_it_measures_the_product_and_the_bare_relay_and_compares_them():
    report = bench_chat(
        *("--conversations", "5", "--duration", "2", "--mode", "rate", "--rate", "2"),
        *("--idle-sockets", "50", "--grace", "3"),
    )

    assert {"product", "baseline", "ratio"} <= report.keys()
    for side in ("product", "baseline"):
        figures = report[side]
        assert set(FIGURES) <= figures.keys(), side
        assert figures["sent"] == 20, side  # 5 conversations × 2 msg/s × 2 s
        assert figures["lost"] == 0, figures["error_samples"]
        assert figures["errors"] == 0, figures["error_samples"]
        assert figures["sustained_msgs_per_s"] > 0, side
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], side
        assert figures["rss_mib"] > 0, side
        assert figures["idle_sockets"] == 50, side
        assert figures["idle_rss_mib"] > 0, side
    assert set(FIGURES) <= report["ratio"].keys()
    assert report["ratio"]["sustained_msgs_per_s"] > 0


def test_a_repeated_ramp_reports_each_sides_median_run_and_every_step():
    report = bench_chat(
        *("--conversations", "3", "--mode", "ramp", "--ramp-start", "6", "--max-steps", "2"),
        *("--step-duration", "1", "--grace", "3", "--repeat", "3"),
    )

    for side in ("product", "baseline"):
        figures = report[side]
        assert len(figures["repeats"]) == 3, side
        assert figures["sustained_msgs_per_s"] == sorted(figures["repeats"])[1], side
        offered = [step["offered_msgs_per_s"] for step in figures["steps"]]
        assert offered[0] == 6.0 and len(set(offered)) <= 2, side  # 6, then 6 × 1.25
        assert figures["sustained_msgs_per_s"] > 0, side


def test_the_ramp_narrows_its_limit_down_after_the_first_missed_step():
    climb = Climb(start=100, factor=1.25, max_steps=10, refine=2)
    offered = []
    while (rate := climb.next()) is not None:
        offered.append(round(rate, 1))
        climb.record(rate, held=rate < 180)  # the server's limit: 180 msg/s

    # 100, 125, 156.2 hold; 195.3 misses; then √(156.2 × 195.3) holds, √(174.7 × 195.3) misses.
    assert offered == [100.0, 125.0, 156.2, 195.3, 174.7, 184.7]
    assert round(climb.held or 0, 1) == 174.7  # within 1.25 ** ¼ (5.7 %) of the limit


def test_the_ramp_stops_at_its_step_bound_and_when_nothing_holds():
    climb = Climb(start=10, factor=2, max_steps=3, refine=2)
    offered = []
    while (rate := climb.next()) is not None:
        offered.append(rate)
        climb.record(rate, held=True)
    assert offered == [10, 20, 40]

    climb = Climb(start=10, factor=2, max_steps=3, refine=2)
    assert climb.next() == 10
    climb.record(10, held=False)
    assert climb.next() is None and climb.held is None
