"""Running a simulation from asyncio: trio as a guest of the asyncio loop.

An asyncio application awaits :func:`simulate_asyncio` like any coroutine.
The first simulation runs in trio's guest mode on the application's own
loop and thread, so ``on_event`` is called there, between the loop's other
work.  Trio allows one guest run per thread, so a simulation started while
another is still running goes to a thread of the loop's default executor,
with its own ``trio.run`` (``asyncio.run`` joins those threads on exit);
its ``on_event`` calls are handed back to the loop with
``call_soon_threadsafe``, so they still run on the loop's thread, slightly
later.  Either way, cancelling the awaiting task cancels the simulation and
waits for trio's cleanup, so the log keeps a valid prefix and nothing is
left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import outcome
import trio

from .errors import OmActorsError
from .events import Event
from .log import LogTarget
from .orchestrator import EventHandler, Mode, resolve_mode, simulate, with_algorithm
from .result import Result
from .scenario import Scenario


class _Cancelled(Exception):
    """The host cancelled the run; never seen outside this module."""


class _TrioRun:
    """The handle to a trio run that the asyncio side needs to cancel it.

    The trio side fills in its token and cancel scope when it starts; a
    cancel that arrives before then is remembered and applied on start.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._cancelled = False

    def started(self, scope: trio.CancelScope) -> None:
        with self._lock:
            self._token, self._scope = trio.lowlevel.current_trio_token(), scope
            if self._cancelled:
                scope.cancel()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._token is not None and self._scope is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(self._scope.cancel)


async def simulate_asyncio(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    mode: Mode = "auto",
    algorithm: str | None = None,
) -> Result:
    """:func:`~om_actors.simulate` for asyncio applications.

    Runs trio as a guest of the running asyncio loop, or on a worker thread
    when another simulation is already the loop's guest.  Cancelling the
    task that awaits this cancels the simulation cleanly.

    The algorithm (``algorithm``, as :func:`~om_actors.simulate` takes it)
    and the mode are checked against the scenario before trio starts, as
    :func:`~om_actors.simulate` does.  Awaited anywhere but in an asyncio
    task -- in a trio task, say -- this raises :class:`OmActorsError`
    naming the function to use there, before anything starts.
    """
    loop = _running_loop()
    scenario = with_algorithm(scenario, algorithm)
    resolve_mode(mode, scenario)
    handle = _TrioRun()
    finished: asyncio.Future[outcome.Outcome[Result]]
    if trio.lowlevel.in_trio_run():
        # The loop's default executor: asyncio.run joins its threads on the way out.
        main = _main(
            handle, partial(simulate, scenario, log=log, on_event=_on_loop(loop, on_event), mode=mode)
        )
        finished = loop.run_in_executor(None, _run_in_thread, main)
    else:
        finished = loop.create_future()
        trio.lowlevel.start_guest_run(
            _main(handle, partial(simulate, scenario, log=log, on_event=on_event, mode=mode)),
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            done_callback=lambda result: _settle(finished, result),
            host_uses_signal_set_wakeup_fd=True,
        )
    return await _outcome(finished, handle)


def _running_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop awaiting us; a clear error, not asyncio's or trio's own, from anywhere else.

    A trio task is checked first: in trio's guest mode an asyncio loop is
    running underneath, but awaiting asyncio's futures from trio would fail
    only after a worker thread had started a second simulation.
    """
    if trio.lowlevel.in_trio_task():
        raise OmActorsError(
            "simulate_asyncio() is for asyncio, and this is a trio task: "
            "from trio (or anyio's trio backend) await simulate()"
        )
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise OmActorsError(
            "simulate_asyncio() must be awaited in an asyncio event loop: "
            "from code that is not async use simulate_sync()"
        ) from None


def _main(handle: _TrioRun, run: Callable[[], Awaitable[Result]]) -> Callable[[], Awaitable[Result]]:
    async def main() -> Result:
        with trio.CancelScope() as scope:
            handle.started(scope)
            return await run()
        raise _Cancelled

    return main


def _run_in_thread(main: Callable[[], Any]) -> outcome.Outcome[Result]:
    result: outcome.Outcome[Result] = outcome.capture(trio.run, main)
    return result


def _on_loop(loop: asyncio.AbstractEventLoop, on_event: EventHandler | None) -> EventHandler | None:
    """``on_event`` called on the loop's thread, for a run on a worker thread."""
    if on_event is None:
        return None
    handler = on_event

    def forward(event: Event) -> None:
        loop.call_soon_threadsafe(handler, event)

    return forward


def _settle(finished: asyncio.Future[outcome.Outcome[Result]], result: outcome.Outcome[Result]) -> None:
    if not finished.done():
        finished.set_result(result)


async def _outcome(finished: asyncio.Future[outcome.Outcome[Result]], handle: _TrioRun) -> Result:
    try:
        result = await asyncio.shield(finished)
    except asyncio.CancelledError:
        handle.cancel()
        await _wait_through_cancellation(finished)
        raise
    return result.unwrap()


async def _wait_through_cancellation(finished: asyncio.Future[Any]) -> None:
    """Wait for trio to finish cleaning up, however often we are cancelled meanwhile."""
    while not finished.done():
        try:
            await asyncio.shield(finished)
        except asyncio.CancelledError:
            continue
