"""simulate_asyncio: a simulation inside an asyncio application.

Rules for this file:
- each test runs its own ``asyncio.run``; nothing sleeps on a real clock;
  cancellation is triggered from the event stream, not by timing;
- after every run, no asyncio task, trio run or extra thread may be left.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import outcome
import pytest
import trio

import om_actors
from om_actors import (
    Event,
    LogError,
    LogLine,
    RoundEnded,
    Scenario,
    load_scenario,
    read_log,
    simulate_asyncio,
    simulate_sync,
)

SCENARIOS = Path(__file__).parent.parent / "scenarios"
SEVEN = load_scenario(SCENARIOS / "seven-generals.yaml")


def run_clean(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, then check that nothing was left behind."""
    threads = threading.active_count()

    async def checked() -> Any:
        value = await main
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert not trio.lowlevel.in_trio_run()
        return value

    value = asyncio.run(checked())
    assert threading.active_count() == threads
    return value


def test_the_result_is_the_same_as_under_trio() -> None:
    result = run_clean(simulate_asyncio(SEVEN))
    expected = simulate_sync(SEVEN)
    assert result.decisions == expected.decisions
    assert result.verdict == expected.verdict
    assert result.messages == 156


def test_events_are_delivered_on_the_loops_thread_for_every_run() -> None:
    async def main() -> tuple[list[int], list[om_actors.Result]]:
        loop_thread = threading.get_ident()
        threads: list[int] = []

        def seen(event: Event) -> None:
            threads.append(threading.get_ident())

        results = await asyncio.gather(*(simulate_asyncio(SEVEN, on_event=seen) for _ in range(3)))
        assert set(threads) == {loop_thread}
        return threads, list(results)

    threads, results = run_clean(main())
    assert len(threads) == 3 * 168
    assert all(r.success for r in results)


@pytest.mark.parametrize("concurrent", [False, True], ids=["guest", "worker-thread"])
def test_cancelling_the_task_cancels_the_run_and_keeps_the_log(tmp_path: Path, concurrent: bool) -> None:
    log = tmp_path / "cancelled.jsonl"
    scenario = Scenario(generals=10, m=3, traitors={4: "flip"})

    async def main() -> None:
        def cancel_after_round_two(event: Event) -> None:
            if isinstance(event, RoundEnded) and event.round == 2:
                task.cancel()

        companion = asyncio.create_task(simulate_asyncio(SEVEN)) if concurrent else None
        task = asyncio.create_task(simulate_asyncio(scenario, log=log, on_event=cancel_after_round_two))
        with pytest.raises(asyncio.CancelledError):
            await task
        if companion is not None:
            assert (await companion).success

    run_clean(main())
    lines: list[LogLine] = []
    with pytest.raises(LogError, match="ends without a verdict"):
        lines.extend(read_log(log))
    assert lines[-1].event == "round.end"
    assert lines[-1].fields["round"] >= 2


def test_errors_come_out_as_themselves() -> None:
    class Boom(Exception):
        pass

    def explode(event: Event) -> None:
        raise Boom

    with pytest.raises(Boom):
        run_clean(simulate_asyncio(SEVEN, on_event=explode))


def test_simulate_under_asyncio_says_to_use_simulate_asyncio() -> None:
    with pytest.raises(
        om_actors.OmActorsError,
        match=r"^simulate\(\) runs inside trio: from asyncio .* use simulate_asyncio\(\)",
    ):
        run_clean(om_actors.simulate(SEVEN))


def test_simulate_under_anyios_asyncio_backend_says_to_use_simulate_asyncio() -> None:
    anyio = pytest.importorskip("anyio")
    with pytest.raises(om_actors.OmActorsError, match=r"use simulate_asyncio\(\)"):
        anyio.run(om_actors.simulate, SEVEN, backend="asyncio")


async def _open_simulation_from_asyncio() -> None:
    async with om_actors.open_simulation(SEVEN):
        pass  # pragma: no cover -- refused on entry


def test_open_simulation_under_asyncio_says_to_use_simulate_asyncio() -> None:
    with pytest.raises(om_actors.OmActorsError, match=r"^open_simulation\(\) runs inside trio"):
        run_clean(_open_simulation_from_asyncio())


SIMULATE_ASYNCIO_IN_TRIO = (
    r"^simulate_asyncio\(\) is for asyncio, and this is a trio task: "
    r"from trio \(or anyio's trio backend\) await simulate\(\)$"
)


def test_simulate_asyncio_under_trio_says_to_use_simulate() -> None:
    with pytest.raises(om_actors.OmActorsError, match=SIMULATE_ASYNCIO_IN_TRIO):
        trio.run(simulate_asyncio, SEVEN)


def test_simulate_asyncio_under_anyios_trio_backend_says_to_use_simulate() -> None:
    anyio = pytest.importorskip("anyio")
    with pytest.raises(om_actors.OmActorsError, match=SIMULATE_ASYNCIO_IN_TRIO):
        anyio.run(simulate_asyncio, SEVEN, backend="trio")


def test_simulate_asyncio_from_a_trio_guest_is_refused_before_any_run_starts() -> None:
    """Under asyncio's loop, a trio guest's task used to start a second run on a thread, then fail."""
    started: list[Event] = []

    async def from_trio() -> None:
        await simulate_asyncio(SEVEN, on_event=started.append)

    async def main() -> outcome.Outcome[None]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        trio.lowlevel.start_guest_run(
            from_trio, run_sync_soon_threadsafe=loop.call_soon_threadsafe, done_callback=done.set_result
        )
        return await done

    finished = run_clean(main())
    with pytest.raises(om_actors.OmActorsError, match=SIMULATE_ASYNCIO_IN_TRIO):
        finished.unwrap()
    assert started == []


def test_simulate_asyncio_outside_any_event_loop_says_to_use_simulate_sync() -> None:
    stepped_by_hand = simulate_asyncio(SEVEN)
    with pytest.raises(
        om_actors.OmActorsError,
        match=r"^simulate_asyncio\(\) must be awaited in an asyncio event loop: "
        r"from code that is not async use simulate_sync\(\)$",
    ):
        stepped_by_hand.send(None)


def test_simulate_sync_beside_a_trio_guest_says_to_await_simulate_asyncio() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[outcome.Outcome[None]] = loop.create_future()
        guest_ready = asyncio.Event()
        guest: list[tuple[trio.lowlevel.TrioToken, trio.CancelScope]] = []

        async def idle_guest() -> None:
            with trio.CancelScope() as scope:
                guest.append((trio.lowlevel.current_trio_token(), scope))
                guest_ready.set()
                await trio.sleep_forever()

        trio.lowlevel.start_guest_run(
            idle_guest, run_sync_soon_threadsafe=loop.call_soon_threadsafe, done_callback=done.set_result
        )
        await guest_ready.wait()
        try:
            with pytest.raises(
                om_actors.OmActorsError,
                match=r"^simulate_sync\(\) starts a trio run of its own, and this code is already inside "
                r"one: from trio, await simulate\(\), and from asyncio, await simulate_asyncio\(\)$",
            ):
                simulate_sync(SEVEN)
        finally:
            token, scope = guest[0]
            token.run_sync_soon(scope.cancel)
            (await done).unwrap()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    # Not run_clean: the idle guest waited for I/O on a thread of trio's cache, which lingers a while.
    asyncio.run(main())
    assert not trio.lowlevel.in_trio_run()


def test_a_bogus_mode_is_refused_before_trio_starts() -> None:
    with pytest.raises(
        om_actors.ScenarioError,
        match="mode: 'bogus' is not a mode: use one of 'per-message', 'batched', 'auto'",
    ):
        run_clean(simulate_asyncio(SEVEN, mode="bogus"))  # type: ignore[arg-type]


def test_a_signed_run_from_asyncio_is_the_run_under_trio() -> None:
    signed = load_scenario(SCENARIOS / "three-generals-signed.yaml")
    result = run_clean(simulate_asyncio(signed))
    expected = simulate_sync(signed)
    assert (result.decisions, result.verdict, result.stats) == (
        expected.decisions,
        expected.verdict,
        expected.stats,
    )
    assert result.success


def test_the_algorithm_and_its_batched_mode_are_checked_before_trio_starts() -> None:
    mixed = Scenario(generals=3, m=1, traitors={2: "silent"})
    assert run_clean(simulate_asyncio(mixed, algorithm="sm")).success
    with pytest.raises(om_actors.ScenarioError, match=r"mode: SM\(m\) has no batched mode"):
        run_clean(simulate_asyncio(mixed, algorithm="sm", mode="batched"))
