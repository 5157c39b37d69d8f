"""What one process remembers for a few seconds: rows read on every frame, changed rarely.

A change made in this process forgets what it touched once it commits; other processes see
it when their copy runs out (``seconds``). Misses are not remembered, so a row that did not
exist a moment ago is found as soon as it does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import ClassVar, Generic, TypeVar

from chat.realtime import after_commit

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    every: ClassVar[list[Memo]] = []  # type: ignore[type-arg]

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._kept: dict[K, tuple[float, V]] = {}
        Memo.every.append(self)

    def get(self, key: K, load: Callable[[K], V | None]) -> V | None:
        """The remembered value, or ``load(key)``'s (remembered unless it is None)."""
        return self.get_many([key], lambda keys: _found(load, keys)).get(key)

    def get_many(self, keys: Iterable[K], load: Callable[[list[K]], dict[K, V]]) -> dict[K, V]:
        """Each key's value; the ones not remembered, or out of date, from one ``load``."""
        now = time.monotonic()
        values: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            kept = self._kept.get(key)
            if kept is not None and kept[0] > now:
                values[key] = kept[1]
            else:
                missing.append(key)
        if missing:
            for key, value in load(missing).items():
                self._kept[key] = (now + self.seconds, value)
                values[key] = value
        return values

    def forget_after_commit(self, keys: Iterable[K] | None = None) -> None:
        """Forget ``keys`` (all, with None) once the current transaction commits."""
        chosen = None if keys is None else list(keys)
        after_commit(lambda: self.forget(chosen))

    def forget(self, keys: list[K] | None = None) -> None:
        if keys is None:
            self._kept.clear()
        for key in keys or ():
            self._kept.pop(key, None)

    @classmethod
    def forget_everything(cls) -> None:
        """Every memo of the process empty (a test's database is new)."""
        for memo in cls.every:
            memo.forget()


def _found(load: Callable[[K], V | None], keys: list[K]) -> dict[K, V]:
    values = {key: load(key) for key in keys}
    return {key: value for key, value in values.items() if value is not None}
