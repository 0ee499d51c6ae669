"""How the library reports progress without printing: the CLI passes a reporter, tests pass none."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

log = logging.getLogger("keyservices")


class Reporter(Protocol):
    """A sink for step progress; ``keyservices.cli`` implements it with rich on a terminal."""

    def begin(self, step: str, total: int | None) -> None: ...
    def advance(self, n: int) -> None: ...
    def end(self, step: str, count: int, seconds: float) -> None: ...


class NullReporter:
    def begin(self, step: str, total: int | None) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self, step: str, count: int, seconds: float) -> None:
        pass


class Timings(dict[str, float]):
    """Seconds per step, in order; part of every run result and log."""


@contextlib.contextmanager
def step(reporter: Reporter | None, timings: Timings | None, name: str,
         total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Time a step, log it with its count, and give the body an ``advance(n)`` callable."""
    rep = reporter or NullReporter()
    counter = [0]

    def advance(n: int = 1) -> None:
        counter[0] += n
        rep.advance(n)

    start = time.perf_counter()
    rep.begin(name, total)
    try:
        yield advance
    finally:
        seconds = time.perf_counter() - start
        rep.end(name, counter[0], seconds)
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + seconds, 4)
        log.info("%s: %d in %.2fs (%s/s)", name, counter[0], seconds,
                 f"{counter[0] / seconds:,.0f}" if seconds > 0 else "-")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a run builds its data.

    A run allocates millions of long-lived objects (customers, changes, opportunities) and no
    garbage cycles worth collecting; left on, the collector rescans the growing heap again and
    again, which at a million customers costs more than building the objects. Reentrant.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Beside:
    """Work for a second thread that waits until the night's reads leave the interpreter idle.

    Python runs one thread at a time. Reading the customers is Python work row by row, so
    state-store work beside it only slowed it (and the GIL changed hands on every row). Once
    the database aggregates (seconds of sorting and summing with no Python), the same work runs
    beside it for free: ``open`` is called then (``erp.facts.read_facts``). ``result`` opens the
    gate first, so asking early never waits forever; ``close`` lets the thread end, and with
    ``cancel`` (a failed night) the work not yet begun is dropped.
    """

    def __init__(self) -> None:
        self._gate = threading.Event()
        self._cancelled = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="keyservices-beside")

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(self._when_open, fn, args)

    def _when_open(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self._gate.wait()
        if self._cancelled:
            raise CancelledError
        return fn(*args)

    def open(self) -> None:
        self._gate.set()

    def result(self, future: Future[T]) -> T:
        self.open()
        return future.result()

    def close(self, *, cancel: bool = False) -> None:
        self._cancelled = self._cancelled or cancel
        self._pool.shutdown(wait=False, cancel_futures=cancel)
        self.open()
