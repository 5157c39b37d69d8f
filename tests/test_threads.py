"""The frame and bot-turn thread pool: runs work like any executor, never blocks exit."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from chat.threads import DaemonThreadPool
from tests.live import ROOT


def test_it_runs_work_in_parallel_up_to_its_size_and_hands_back_results_and_errors():
    pool = DaemonThreadPool(max_workers=3, thread_name_prefix="t")
    barrier = threading.Barrier(3, timeout=10)  # passes only if three run at once
    names = [
        pool.submit(lambda: (barrier.wait(), threading.current_thread().name)[1]) for _ in range(3)
    ]
    assert sorted(f.result(timeout=10) for f in names) == ["t_0", "t_1", "t_2"]
    assert pool.submit(sum, [1, 2, 3]).result(timeout=10) == 6
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(timeout=10)
    later = pool.submit(lambda: threading.current_thread().name).result(timeout=10)
    assert later in {"t_0", "t_1", "t_2"}  # an idle thread took it: no fourth one


def test_a_stuck_task_does_not_keep_the_process_alive():
    program = (
        "import threading\n"
        "from chat.threads import DaemonThreadPool\n"
        "pool = DaemonThreadPool(max_workers=2, thread_name_prefix='stuck')\n"
        "pool.submit(threading.Event().wait)\n"  # waits for ever, like a frame whose loop died
        "print('leaving')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout.strip() == "leaving"
