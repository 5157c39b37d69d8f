"""Real server processes for browser and scale-out tests: daphne on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db import connection
from websockets.sync.client import ClientConnection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_database_env() -> dict[str, str]:
    """Environment that points a child process at the database the tests are using."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return {"SQLITE_PATH": str(db["NAME"])}
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return {"DATABASE_URL": f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"}


class DaphneProcess:
    """``daphne`` serving the project on one loopback port, which it keeps across restarts,
    so a test can kill it (``kill -9``) and start it again where clients expect it."""

    def __init__(self, extra_env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = {
            **os.environ,
            **child_database_env(),
            "SECRET_KEY": "live-test-secret",
            "CELERY_EAGER": "true",
            "DEBUG": "true",
            **(extra_env or {}),
        }
        self.log_path = ROOT / "var" / f"daphne-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> DaphneProcess:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "helpdesk.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbyes, sockets dropped mid-frame."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


class CeleryWorker:
    """``celery -A helpdesk worker`` as its own process, stopped and started by the test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = ROOT / "var" / f"celery-{os.getpid()}-{id(self)}.log"

    def start(self) -> CeleryWorker:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "helpdesk",
                    "worker",
                    "--pool=solo",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-l",
                    "info",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self) -> None:
        stop_process(self.process, timeout=20)


def stop_process(process: subprocess.Popen[bytes] | None, *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def daphne_server(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``daphne`` on the test database; yield its base URL; stop it afterwards."""
    server = DaphneProcess(extra_env)
    try:
        server.start()
        yield server.base
    finally:
        server.stop()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"daphne exited with {process.returncode}; see var/daphne-{port}.log"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"daphne did not listen on port {port} within {timeout} s")


# Deadlines, not sleeps: a busy machine may take this long for a server's first bot answer
# (it loads the embedding models and builds the site's index).
FRAME_DEADLINE = 45.0


def frames_until(ws: ClientConnection, frame_type: str, **match: Any) -> list[dict[str, Any]]:
    """Read frames up to and including the first of ``frame_type`` matching ``match``."""
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=FRAME_DEADLINE))
        seen.append(frame)
        if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
            return seen
