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


def test_it_measures_the_product_and_the_bare_relay_and_compares_them():
    run = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench_chat",
            *("--conversations", "5", "--duration", "2", "--mode", "rate", "--rate", "2"),
            *("--idle-sockets", "50", "--grace", "3", "--json"),
            # On PostgreSQL: a database of its own, so a bench_chat run by hand is not in the way.
            *("--pg-database", f"helpdesk_bench_test_{os.getpid()}"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)

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
