"""A thread pool whose threads never hold up the process's exit."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class DaemonThreadPool(ThreadPoolExecutor):
    """Like ``ThreadPoolExecutor``, but with daemon threads that exit does not join.

    ``ThreadPoolExecutor`` joins its threads at interpreter exit; a frame stuck waiting for an
    event loop that is already gone would then keep a server (or the test run) alive for ever.
    """

    # A ThreadPoolExecutor to its callers (asgiref asks for one), with its own workers: the base
    # class's are the ones interpreter exit joins.

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._limit = max_workers
        self._prefix = thread_name_prefix
        self._todo: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], Any, Any]] = (
            queue.SimpleQueue()
        )
        self._free = threading.Semaphore(0)
        self._daemons: list[threading.Thread] = []
        self._grow_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._todo.put((future, fn, args, kwargs))
        if not self._free.acquire(blocking=False):
            self._grow()
        return future

    def _grow(self) -> None:
        with self._grow_lock:
            if len(self._daemons) >= self._limit:
                return
            thread = threading.Thread(
                target=self._run, name=f"{self._prefix}_{len(self._daemons)}", daemon=True
            )
            self._daemons.append(thread)
        thread.start()

    def _run(self) -> None:
        while True:
            future, fn, args, kwargs = self._todo.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:  # handed to whoever awaits the future
                    future.set_exception(error)
            del future, fn, args, kwargs
            self._free.release()
