"""``manage.py bench_chat`` runs end to end: real servers, real sockets, a report in JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

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
