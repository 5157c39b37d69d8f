"""Benchmark the console's list views over a large database.

Seeds a throwaway database (a temporary SQLite file, or ``helpdesk_bench_console`` on
PostgreSQL, created, migrated and dropped; yours is never written) with ``--conversations``
conversations and prints the render time (p50 / p95 over ``--repeat`` requests, through the
whole Django stack) of the queue, mine, search and supervisor views. See README.md.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection

from chat.bench.console import measure, seed_console
from chat.bench.database import bench_database
from chat.bench.servers import machine_busy_pct

BENCH_CONSOLE_DB = "helpdesk_bench_console"
TARGET_MS = 100.0


def rows(page: str) -> int:
    return page.count("data-conversation-id=")


def team_rows(page: str) -> int:
    return page.count("data-team-id=")


VIEWS = [
    ("queue + mine (console home)", "/console/", rows),
    ("queue partial (live refresh)", "/console/queue/", rows),
    ("mine, filtered by a label", "/console/queue/?label=1", rows),
    ("search: one word", "/console/search/?q=refund", rows),
    ("search: customer e-mail", "/console/search/?q=customer4242%40example.com", rows),
    ("search: two words", "/console/search/?q=parcel+late", rows),
    ("supervisor", "/console/supervisor/", team_rows),
]


class Command(BaseCommand):
    help = "Seed many conversations into a throwaway database and time the console's lists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, default=10_000, help="default 10000")
        parser.add_argument("--repeat", type=int, default=30, help="requests per view")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--pg-database",
            default=BENCH_CONSOLE_DB,
            help=f"PostgreSQL: the throwaway database to use (default {BENCH_CONSOLE_DB})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        busy = machine_busy_pct()
        with bench_database(options["pg_database"]):
            started = time.perf_counter()
            browser = seed_console(conversations=options["conversations"])
            seeded_s = time.perf_counter() - started
            timings = [
                dataclasses.replace(
                    measure(browser, url, repeat=options["repeat"], count=count), view=view
                )
                for view, url, count in VIEWS
            ]
            vendor = connection.vendor
        report = {
            "database": vendor,
            "debug": settings.DEBUG,
            "conversations": options["conversations"],
            "seed_seconds": round(seeded_s, 1),
            "machine_busy_pct": round(busy),
            "target_ms": TARGET_MS,
            "views": [dataclasses.asdict(t) for t in timings],
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(
            f"{options['conversations']:,} conversations on {vendor} "
            f"(seeded in {seeded_s:.1f} s, DEBUG={settings.DEBUG}); "
            f"{options['repeat']} requests per view; machine {busy:.0f}% busy before the run "
            "(100 per busy core)\n"
        )
        self.stdout.write(
            f"{'view':<32} {'rows':>5} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8}  target"
        )
        for t in timings:
            verdict = "ok" if t.p95_ms < TARGET_MS else "OVER"
            self.stdout.write(
                f"{t.view:<32} {t.rows:>5} {t.p50_ms:>8.1f} {t.p95_ms:>8.1f} "
                f"{t.cpu_p50_ms:>8.1f}  {verdict}"
            )
