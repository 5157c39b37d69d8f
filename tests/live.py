"""Real server processes for browser and scale-out tests: daphne on a free loopback port."""

from __future__ import annotations

import json
import os
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


@contextmanager
def daphne_server(extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start ``daphne`` on the test database; yield its base URL; stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        **child_database_env(),
        "SECRET_KEY": "live-test-secret",
        "CELERY_EAGER": "true",
        "DEBUG": "true",
        **(extra_env or {}),
    }
    log = open(ROOT / "var" / f"daphne-{port}.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "helpdesk.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


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


def frames_until(ws: ClientConnection, frame_type: str, **match: Any) -> list[dict[str, Any]]:
    """Read frames up to and including the first of ``frame_type`` matching ``match``."""
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=10))
        seen.append(frame)
        if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
            return seen
