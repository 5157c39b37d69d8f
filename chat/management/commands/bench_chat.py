"""Benchmark the chat path (widget → agent) against a bare relay on the same channel layer.

Starts everything it measures itself, on loopback only: the project under daphne on a
throwaway database (a temporary SQLite file, or ``helpdesk_bench`` on PostgreSQL) and the
bare relay (``chat.bench.relay``) under daphne as a separate process, with the same channel
layer settings. Prints delivered msg/s, customer → agent latency, lost messages, server CPU
and RSS for both, and the ratios product/baseline. See "Benchmark" in README.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from websockets.exceptions import WebSocketException

from chat.bench import runner
from chat.bench.database import BENCH_DB, Seed, bench_database, seed
from chat.bench.load import Endpoint
from chat.bench.relay import PATHS
from chat.bench.servers import Server, daphne, machine_busy_pct, raise_fd_limit, split_cores

PRODUCT_APP = "helpdesk.asgi:application"
RELAY_APP = "chat.bench.relay:application"
# The settings of chat/ratelimit.py, raised for the servers under test (see server_env).
RATE_LIMITS = [
    "HELPDESK_RATE_MESSAGES_PER_MINUTE",
    "HELPDESK_RATE_MESSAGES_PER_MINUTE_PER_IP",
    "HELPDESK_RATE_CONVERSATIONS_PER_HOUR",
    "HELPDESK_RATE_SESSIONS_PER_MINUTE_PER_IP",
]
# Figures compared product/baseline in the "ratio" object.
RATIO_KEYS = [
    "sustained_msgs_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "lost",
    "rss_mib",
    "server_cpu_ms_per_msg",
    "idle_rss_mib",
    "idle_kib_per_socket",
]


class Command(BaseCommand):
    help = "Measure widget → agent throughput and latency against a bare relay baseline."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, default=100, help="default 100")
        parser.add_argument("--mode", choices=["rate", "sat", "ramp"], default="rate")
        parser.add_argument("--rate", type=float, default=1.0, help="rate: msg/s per conversation")
        parser.add_argument(
            "--inflight", type=int, default=1, help="sat: unanswered messages per conversation"
        )
        parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--repeat",
            type=int,
            default=1,
            help="run the load N times, product and baseline taking turns; report the median",
        )
        parser.add_argument("--skip-baseline", action="store_true")
        parser.add_argument(
            "--idle-sockets", type=int, default=0, help="also: RSS with K idle widget sockets"
        )
        parser.add_argument(
            "--baseline",
            choices=["async", "sync"],
            default="async",
            help="relay flavour: async consumers (default), or sync ones like the product's",
        )
        parser.add_argument(
            "--grace", type=float, default=5.0, help="seconds before an unanswered msg is lost"
        )
        parser.add_argument(
            "--ramp-start", type=float, default=20.0, help="ramp: total msg/s of the first step"
        )
        parser.add_argument("--step-duration", type=float, default=3.0, help="ramp: s per step")
        parser.add_argument("--ramp-factor", type=float, default=1.25, help="ramp: growth/step")
        parser.add_argument("--max-steps", type=int, default=25, help="ramp: at most")
        parser.add_argument(
            "--profile",
            type=Path,
            metavar="DIR",
            help="py-spy the servers under load; collapsed stacks to DIR/<server>.txt",
        )
        parser.add_argument(
            "--pg-database",
            default=BENCH_DB,
            help=f"PostgreSQL only: the throwaway database to create and drop ({BENCH_DB})",
        )
        parser.add_argument(
            "--no-pin", action="store_true", help="do not pin servers and generator to cores"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        plan = runner.Plan(
            mode=options["mode"],
            conversations=options["conversations"],
            rate=options["rate"],
            inflight=options["inflight"],
            duration=options["duration"],
            grace=options["grace"],
            ramp_start=options["ramp_start"],
            step_duration=options["step_duration"],
            ramp_factor=options["ramp_factor"],
            max_steps=options["max_steps"],
        )
        check(plan, options)
        idle_sockets = options["idle_sockets"]
        raise_fd_limit(4 * max(plan.conversations, idle_sockets) + 256)
        server_cpus, loadgen_cpus = (None, None) if options["no_pin"] else split_cores()
        if loadgen_cpus:
            os.sched_setaffinity(0, loadgen_cpus)
        flavour = options["baseline"]
        config = {
            "mode": plan.mode,
            "conversations": plan.conversations,
            "rate": plan.rate,
            "ramp_start": plan.ramp_start,
            "inflight": plan.inflight,
            "duration": plan.duration if plan.mode != "ramp" else plan.step_duration,
            "database": connections["default"].vendor,
            "channel_layer": str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).rsplit(".", 1)[-1],
            "baseline": f"{flavour} relay",
            "server_cores": sorted(server_cpus) if server_cpus else None,
            "loadgen_cores": sorted(loadgen_cpus) if loadgen_cpus else None,
            # Other work on the machine skews every figure; ratios suffer least.
            "machine_busy_pct_before": round(machine_busy_pct(), 1),
        }
        with bench_database(options["pg_database"]) as db_env:
            seeded = seed(max(plan.conversations, idle_sockets), agents=plan.conversations)
            connections.close_all()
            setup = Setup(
                seeded=seeded,
                env=server_env(db_env),
                cpus=server_cpus,
                flavour=flavour,
                with_baseline=not options["skip_baseline"],
                profile=options["profile"],
                note=(lambda text: None) if options["json"] else self.stderr.write,
            )
            product, baseline = setup.run_load(plan, options["repeat"])
            if idle_sockets:
                setup.run_idle(idle_sockets, product, baseline)
        report = {
            "config": config,
            "product": product,
            "baseline": baseline,
            "ratio": ratios(product, baseline) if baseline else None,
        }
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(render(report))


@dataclass(frozen=True)
class Setup:
    """What both phases share: the seeded database, the servers' environment and cores."""

    seeded: Seed
    env: dict[str, str]
    cpus: set[int] | None
    flavour: str  # of the relay: "async" or "sync"
    with_baseline: bool
    profile: Path | None
    note: Callable[[str], Any]

    @property
    def seats(self) -> list[tuple[int, str]]:
        return [(seat.conversation_id, seat.token) for seat in self.seeded.seats]

    @contextmanager
    def servers(self) -> Iterator[list[tuple[Server, Endpoint]]]:
        """The product (and the relay) under daphne, each with how its sockets get in."""
        with ExitStack() as stack:
            product = stack.enter_context(daphne("product", PRODUCT_APP, self.env, self.cpus))
            started = [(product, product_endpoint(product, self.seeded))]
            if self.with_baseline:
                relay = stack.enter_context(daphne("relay", RELAY_APP, self.env, self.cpus))
                started.append((relay, relay_endpoint(relay, self.flavour)))
            yield started

    def run_load(
        self, plan: runner.Plan, repeat: int = 1
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Each side's figures; with ``repeat``, of its median run by sustained msg/s.

        The sides take turns (product, baseline, product, …), so a noisy minute of the
        machine falls on both rather than on one side's every run.
        """
        runs: dict[str, list[dict[str, Any]]] = {}
        with self.servers() as started:
            for turn in range(repeat):
                for (server, endpoint), side in zip(started, ("product", "baseline"), strict=False):
                    self.note(f"{side} on {server.ws_base}: {plan.mode} ({turn + 1}/{repeat}) …")
                    profile = self.profile / f"{side}.txt" if self.profile and not turn else None
                    job = runner.measure(server, endpoint, self.seats, plan, profile)
                    runs.setdefault(side, []).append(run(server, job))
        product, *baseline = (median_run(figures) for figures in runs.values())
        return product, baseline[0] if baseline else None

    def run_idle(
        self, count: int, product: dict[str, Any], baseline: dict[str, Any] | None
    ) -> None:
        """Fresh servers, so the figure is one process holding ``count`` sockets and no more."""
        seats = self.seats[:count]
        sides = [figures for figures in (product, baseline) if figures is not None]
        with self.servers() as started:
            for (server, endpoint), figures in zip(started, sides, strict=True):
                self.note(f"{server.name} holding {count} idle widget sockets …")
                figures.update(run(server, runner.idle(server, endpoint, seats)))


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median sustained msg/s (the lower middle one of an even count),
    with every run's sustained msg/s attached as ``repeats``."""
    ranked = sorted(runs, key=lambda figures: figures["sustained_msgs_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(runs) > 1:
        chosen["repeats"] = [figures["sustained_msgs_per_s"] for figures in runs]
    return chosen


def run(server: Server, job: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        return asyncio.run(job)
    except (OSError, RuntimeError, TimeoutError, WebSocketException) as error:
        raise CommandError(f"{server.name}: {error!r}; its log is {server.log}") from error


def check(plan: runner.Plan, options: dict[str, Any]) -> None:
    if plan.conversations < 1:
        raise CommandError("--conversations must be at least 1")
    if options["repeat"] < 1:
        raise CommandError("--repeat must be at least 1")
    if min(plan.rate, plan.inflight, plan.duration, plan.ramp_start, plan.step_duration) <= 0:
        raise CommandError(
            "--rate, --inflight, --duration, --ramp-start and --step-duration must be positive"
        )
    if plan.ramp_factor <= 1 or plan.max_steps < 1:
        raise CommandError("--ramp-factor must be over 1 and --max-steps at least 1")
    if options["idle_sockets"] < 0:
        raise CommandError("--idle-sockets must not be negative")


def server_env(db_env: dict[str, str]) -> dict[str, str]:
    """What both servers run with: the current settings, pointed at the bench database."""
    return {
        **db_env,
        # Visitor tokens and the session are signed here and checked there.
        "SECRET_KEY": settings.SECRET_KEY,
        # Measure what runs in production unless DEBUG is set on purpose (DEBUG keeps a log
        # of every query).
        "DEBUG": os.environ.get("DEBUG", "false"),
        "ALLOWED_HOSTS": "127.0.0.1",
        # Keys of their own, so a dev server on the same Redis never sees bench traffic.
        "CHANNEL_PREFIX": f"bench{secrets.token_hex(4)}",
        # Nothing in the measured path enqueues a task; if something did, it must not wait
        # in a broker that no worker reads.
        "CELERY_EAGER": "true",
        # Eager, the process would load the bot's models and indexes at start (hundreds of
        # MiB, seconds of CPU during the load); with a broker, as in production, it never does.
        "HELPDESK_BOT_WARM_UP": "false",
        # One address drives every socket at full speed: the abuse limits would cut it short.
        # Raised out of the way rather than turned off (0), so the limiter's own cost (its
        # cache round trips, per message) stays in the measured path.
        **dict.fromkeys(RATE_LIMITS, str(10**9)),
    }


def product_endpoint(server: Server, seeded: Seed) -> Endpoint:
    return Endpoint(
        ws_base=server.ws_base,
        origin=server.origin,
        widget_path="/ws/widget/v1/",
        console_path="/ws/console/v1/",
        site_key=seeded.site_key,
        agent_cookies=seeded.cookies,
    )


def relay_endpoint(server: Server, flavour: str) -> Endpoint:
    widget_path, console_path = PATHS[flavour]
    return Endpoint(
        ws_base=server.ws_base,
        origin=server.origin,
        widget_path=widget_path,
        console_path=console_path,
    )


def ratios(product: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    """product / baseline per figure; ``null`` where the baseline's figure is 0."""
    out: dict[str, float | None] = {}
    for key in RATIO_KEYS:
        if key in product and key in baseline:
            out[key] = round(product[key] / baseline[key], 3) if baseline[key] else None
    return out


ROWS = [
    ("offered msg/s", "offered_msgs_per_s"),
    ("delivered msg/s (sustained)", "sustained_msgs_per_s"),
    ("sent / delivered", None),
    ("lost", "lost"),
    ("error frames", "errors"),
    ("latency p50 ms", "p50_ms"),
    ("latency p95 ms", "p95_ms"),
    ("latency p99 ms", "p99_ms"),
    ("latency max ms", "max_ms"),
    ("ack p50 / p99 ms", None),
    ("generator send lag p99 ms", "send_lag_p99_ms"),
    ("server CPU % of a core", "server_cpu_pct"),
    ("server CPU ms per msg", "server_cpu_ms_per_msg"),
    ("load generator CPU %", "loadgen_cpu_pct"),
    ("machine CPU % (all cores)", "machine_cpu_pct"),
    ("  of which DB, Redis, others", "other_cpu_pct"),
    ("  of which the host's (steal)", "steal_pct"),
    ("server RSS MiB (peak)", None),
    ("idle sockets", "idle_sockets"),
    ("RSS MiB with idle sockets", "idle_rss_mib"),
    ("KiB per idle socket", "idle_kib_per_socket"),
]


def cell(figures: dict[str, Any] | None, key: str | None, label: str) -> str:
    if figures is None:
        return "-"
    if key is None:
        if label.startswith("sent"):
            return f"{figures['sent']} / {figures['delivered']}"
        if label.startswith("ack"):
            return f"{figures['ack_p50_ms']} / {figures['ack_p99_ms']}"
        return f"{figures['rss_mib']} ({figures['rss_peak_mib']})"
    value = figures.get(key)
    return "-" if value is None else str(value)


def render(report: dict[str, Any]) -> str:
    config, product, baseline = report["config"], report["product"], report["baseline"]
    ratio = report["ratio"] or {}
    how = {
        "rate": f"open loop, {config['rate']:g} msg/s per conversation, {config['duration']:g} s",
        "sat": f"closed loop, {config['inflight']} in flight per conversation, "
        f"{config['duration']:g} s",
        "ramp": f"ramp from {config['ramp_start']:g} msg/s in all, {config['duration']:g} s per "
        f"step, until p99 > {runner.P99_LIMIT_MS:g} ms or a loss, "
        f"{runner.STEP_TRIES} tries a step",
    }[config["mode"]]
    cores = (
        f"server on core {config['server_cores']}, generator on core {config['loadgen_cores']}"
        if config["server_cores"]
        else "not pinned"
    )
    lines = [
        f"bench_chat: {config['conversations']} conversations, {how}",
        f"  {config['database']} + {config['channel_layer']}; {cores}",
        f"  machine busy before the run: {config['machine_busy_pct_before']} % of all cores"
        + (
            " (other work is running: figures are skewed)"
            if config["machine_busy_pct_before"] > 20
            else ""
        ),
        "",
        f"{'':30}{'product':>18}{'baseline (' + config['baseline'] + ')':>26}{'ratio':>10}",
    ]
    for label, key in ROWS:
        if key and key.startswith("idle") and key not in product:
            continue
        share = ratio.get(key) if key else None
        lines.append(
            f"{label:30}{cell(product, key, label):>18}{cell(baseline, key, label):>26}"
            f"{'' if share is None else format(share, 'g'):>10}"
        )
    for name, figures in (("product", product), ("baseline", baseline)):
        if figures and figures.get("repeats"):
            runs = ", ".join(f"{rate:g}" for rate in figures["repeats"])
            lines += ["", f"{name} runs, sustained msg/s: {runs} (the median run is shown)"]
        if figures and figures.get("steps"):
            lines += ["", f"{name} ramp steps: offered → delivered msg/s, p50 / p99 ms, lost"]
            lines += [
                f"  {s['offered_msgs_per_s']:>9} → {s['sustained_msgs_per_s']:>9}"
                f"   {s['p50_ms']:>8} / {s['p99_ms']:>8}   {s['lost']}"
                f"   (server CPU {s['server_cpu_pct']} %, generator {s['loadgen_cpu_pct']} %, "
                f"steal {s.get('steal_pct', 0)} %)"
                for s in figures["steps"]
            ]
        for sample in (figures or {}).get("error_samples", []):
            lines.append(f"{name} problem: {sample}")
    lines += ["", "Only ratios within one run mean much: both ran on this machine, now."]
    return "\n".join(lines)
