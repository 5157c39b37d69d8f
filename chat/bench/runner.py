"""The benchmark's modes against one running server, and the figures each one yields."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat.bench import load
from chat.bench.servers import CpuMeter, Server, memory_mib, profiled

# The ramp stops at the first step whose p99 is over this, or that loses a message, twice:
# a step that misses is tried once more, so one stall of a noisy machine (another tenant, a
# checkpoint) does not pass for the server's limit. Baseline and product follow one rule.
P99_LIMIT_MS = 100.0
STEP_TRIES = 2
# After the first miss, this many steps between the last rate held and the one missed.
REFINE_STEPS = 2


@dataclass(frozen=True)
class Plan:
    mode: str  # "rate", "sat" or "ramp"
    conversations: int
    rate: float  # rate: msg/s per conversation
    inflight: int  # sat: unanswered messages per conversation
    duration: float  # rate and sat: seconds of load
    grace: float  # seconds a message may take after the load stops before it counts as lost
    ramp_start: float  # ramp: total msg/s of the first step
    step_duration: float  # ramp: seconds per step
    ramp_factor: float  # ramp: each step offers this many times the last one
    max_steps: int  # ramp: at most this many steps


async def measure(
    server: Server,
    endpoint: load.Endpoint,
    seats: Sequence[tuple[int, str]],
    plan: Plan,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Open the conversations' sockets, warm up, run ``plan.mode`` and close them again.

    With ``profile``, py-spy samples the server during the measured load (not the set-up).
    """
    problems = load.Problems()
    pairs = await load.open_pairs(endpoint, seats[: plan.conversations], problems)
    try:
        warm = await load.warm_up(pairs, plan.grace)
        if warm.open:
            problems.add(f"warm-up: {warm.open} of {len(pairs)} messages never came through")
        modes = {"rate": _rate, "sat": _saturate, "ramp": _ramp}
        with profiled(server, profile):
            result = await modes[plan.mode](server, pairs, plan)
    finally:
        await load.close_all(pairs)
    result["errors"] = problems.count
    result["error_samples"] = problems.samples
    return result


async def _step(
    server: Server,
    pairs: Sequence[load.Pair],
    plan: Plan,
    *,
    duration: float,
    per_conversation: float = 0.0,
    inflight: int = 0,
) -> dict[str, Any]:
    meter = CpuMeter(server.pid)
    if inflight:
        batch = await load.closed_loop(pairs, inflight, duration)
    else:
        batch = await load.open_loop(pairs, per_conversation, duration)
    await batch.drain(plan.grace)
    usage = meter.stop()
    figures = load.summarize(batch, closed=bool(inflight))
    rss, peak = memory_mib(server.pid)
    delivered = max(figures["delivered"], 1)
    figures.update(
        server_cpu_pct=round(usage["server_cpu_pct"], 1),
        server_cpu_ms_per_msg=round(1000 * usage["server_cpu_s"] / delivered, 3),
        loadgen_cpu_pct=round(usage["loadgen_cpu_pct"], 1),
        machine_cpu_pct=round(usage["machine_cpu_pct"], 1),
        other_cpu_pct=round(usage["other_cpu_pct"], 1),
        steal_pct=round(usage["steal_pct"], 1),
        rss_mib=round(rss, 1),
        rss_peak_mib=round(peak, 1),
    )
    return figures


async def _rate(server: Server, pairs: Sequence[load.Pair], plan: Plan) -> dict[str, Any]:
    result = await _step(server, pairs, plan, duration=plan.duration, per_conversation=plan.rate)
    result["offered_msgs_per_s"] = round(plan.rate * len(pairs), 1)
    return result


async def _saturate(server: Server, pairs: Sequence[load.Pair], plan: Plan) -> dict[str, Any]:
    return await _step(server, pairs, plan, duration=plan.duration, inflight=plan.inflight)


@dataclass
class Climb:
    """The ramp's offered rates: ``factor`` times the last while steps hold, then, after the
    first miss, ``refine`` geometric halvings between the highest rate held and the lowest
    missed, so the limit is known to within ``factor ** (1 / 2 ** refine)``, not ``factor``.
    """

    start: float
    factor: float
    max_steps: int  # of the climb; the refinement adds at most ``refine`` more
    refine: int
    held: float | None = None  # the highest rate that held
    missed: float | None = None  # the lowest rate that did not
    climbed: int = 0
    refined: int = 0

    def next(self) -> float | None:
        """The next rate to offer, or None when the ramp is done."""
        if self.missed is None:
            if self.climbed >= self.max_steps:
                return None
            return self.start if self.held is None else self.held * self.factor
        if self.held is None or self.refined >= self.refine:
            return None
        return math.sqrt(self.held * self.missed)

    def record(self, rate: float, held: bool) -> None:
        if self.missed is None:
            self.climbed += 1
        else:
            self.refined += 1
        if held:
            self.held = rate
        else:
            self.missed = rate


async def _ramp(server: Server, pairs: Sequence[load.Pair], plan: Plan) -> dict[str, Any]:
    """Offer more each step until p99 passes the limit or a message is lost (in each of
    ``STEP_TRIES`` tries of the step), then narrow the limit down (``Climb``).

    The result is the highest step that held (its delivered rate is the sustained rate), with
    every step tried attached; when even the first step fails the sustained rate is 0.
    """
    steps: list[dict[str, Any]] = []
    held: dict[str, Any] | None = None
    climb = Climb(plan.ramp_start, plan.ramp_factor, plan.max_steps, REFINE_STEPS)
    while (total := climb.next()) is not None:
        passed = None
        for _try in range(STEP_TRIES):
            step = await _step(
                server,
                pairs,
                plan,
                duration=plan.step_duration,
                per_conversation=total / len(pairs),
            )
            step["offered_msgs_per_s"] = round(total, 1)
            steps.append(step)
            if step["p99_ms"] <= P99_LIMIT_MS and not step["lost"]:
                passed = step
                break
        climb.record(total, held=passed is not None)
        if passed is not None:
            held = passed  # each rate tried is above every one that held before
    result = dict(held) if held else {**steps[-1], "sustained_msgs_per_s": 0.0}
    result["steps"] = steps
    return result


async def idle(
    server: Server, endpoint: load.Endpoint, seats: Sequence[tuple[int, str]]
) -> dict[str, Any]:
    """RSS of the server holding one idle, synced widget socket per seat."""
    # One socket first, so imports and caches that the first connection loads are not
    # counted as the cost of a socket.
    (first,) = await load.open_idle(endpoint, seats[:1])
    await first.close()
    await asyncio.sleep(0.5)
    before, _ = memory_mib(server.pid)
    sockets = await load.open_idle(endpoint, seats)
    await asyncio.sleep(1.0)
    after, _ = memory_mib(server.pid)
    await load.close_all(sockets)
    return {
        "idle_sockets": len(sockets),
        "idle_rss_before_mib": round(before, 1),
        "idle_rss_mib": round(after, 1),
        "idle_kib_per_socket": round(1024 * (after - before) / max(len(sockets), 1), 1),
    }
