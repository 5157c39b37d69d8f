"""``manage.py bench_console`` seeds a throwaway database and times the console's lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.live import ROOT

pytestmark = pytest.mark.slow


def test_it_times_every_list_view_on_a_seeded_database():
    run = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "bench_console",
            *("--conversations", "600", "--repeat", "3", "--json"),
            *("--pg-database", f"helpdesk_bench_console_test_{os.getpid()}"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DEBUG": "false", "SECRET_KEY": "bench-test"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["conversations"] == 600 and report["debug"] is False
    views = {v["url"]: v for v in report["views"]}
    assert {"/console/", "/console/queue/", "/console/supervisor/"} <= views.keys()
    assert any(url.startswith("/console/search/") for url in views)
    assert views["/console/"]["rows"] > 5  # the seeded queue and mine were rendered
    assert views["/console/supervisor/"]["rows"] == 4  # one row per seeded team
    for view in views.values():
        assert 0 < view["p50_ms"] <= view["p95_ms"] <= view["max_ms"], view
