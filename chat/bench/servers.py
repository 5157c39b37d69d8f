"""Server processes under test (daphne on a free loopback port) and what /proc says of them."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOG_DIR = Path(settings.BASE_DIR) / "var"


@dataclass(frozen=True)
class Server:
    name: str
    pid: int
    port: int
    log: Path

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def daphne(
    name: str, application: str, env: dict[str, str], cpus: set[int] | None
) -> Iterator[Server]:
    """Serve ``application`` with daphne on a free loopback port until the block ends.

    ``cpus`` pins the process (and the threads it starts later) to those cores, so the server
    and the load generator do not take turns on the same one.
    """
    port = free_port()
    LOG_DIR.mkdir(exist_ok=True)
    log_path = LOG_DIR / f"bench-{name}-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), application],
            cwd=settings.BASE_DIR,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            if cpus:
                os.sched_setaffinity(process.pid, cpus)
            server = Server(name=name, pid=process.pid, port=port, log=log_path)
            wait_for_port(server, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def profiled(server: Server, output: Path | None) -> Iterator[None]:
    """Sample ``server`` with py-spy while the block runs; collapsed stacks go to ``output``.

    py-spy is a tool, not a requirement: ``pip install py-spy`` into the venv to use it.
    """
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    output.parent.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL, so the stacks show where the CPU goes.
    command = [spy, "record", "--gil", "-p", str(server.pid), "-f", "raw", "-o", str(output)]
    # Non-blocking: the server is not paused for each sample, so it runs at its own speed.
    spying = subprocess.Popen(
        [*command, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(1.0)  # attaching takes a moment
    try:
        yield
    finally:
        spying.send_signal(signal.SIGINT)
        try:
            spying.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spying.kill()


def wait_for_port(server: Server, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server.name} server exited; see {server.log}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} server did not listen within {timeout} s; see {server.log}")


def raise_fd_limit(needed: int) -> None:
    """Each socket is a descriptor on both ends; children inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def split_cores() -> tuple[set[int] | None, set[int] | None]:
    """One core for the servers, another for the load generator, when there are two."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, {cores[1]}


# --- /proc -------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """User + system time of every thread of ``pid`` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of proc(5), counted after "pid (comm)".
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu_seconds() -> float:
    """Busy time of all cores so far (everything but idle and iowait; steal included)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def steal_seconds() -> float:
    """Time a virtual machine's cores waited while the host ran someone else (0 elsewhere)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return values[7] / CLOCK_TICKS if len(values) > 7 else 0.0


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident set size now and at its peak, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU used by the server, by this process (the load generator) and by the whole machine."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.started = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            process_cpu_seconds(self.server_pid),
            own_cpu_seconds(),
            machine_cpu_seconds(),
            steal_seconds(),
        )

    def stop(self) -> dict[str, float]:
        """Percent of one core since the meter started (the machine's figure is of all cores)."""
        now = self._read()
        wall, server, loadgen, machine, steal = (
            b - a for a, b in zip(self.started, now, strict=True)
        )
        wall = max(wall, 1e-9)
        return {
            "wall_s": wall,
            "server_cpu_s": server,
            "server_cpu_pct": 100 * server / wall,
            "loadgen_cpu_pct": 100 * loadgen / wall,
            "machine_cpu_pct": 100 * machine / wall,
            # The database and Redis (their share of the product's cost), and anything else
            # running on the machine (noise).
            "other_cpu_pct": max(0.0, 100 * (machine - server - loadgen - steal) / wall),
            # Taken by the host for other tenants: noise that no process here can see.
            "steal_pct": 100 * steal / wall,
        }


def machine_busy_pct(seconds: float = 1.0) -> float:
    """How busy all cores are before the benchmark starts (100 per fully busy core)."""
    before = machine_cpu_seconds()
    time.sleep(seconds)
    return 100 * (machine_cpu_seconds() - before) / seconds
