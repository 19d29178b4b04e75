"""One general's pipeline, with no trio and no I/O: what every runtime shares.

Rules for this file:
- drive ``om_actors.driver`` over real cores of registered algorithms;
- expected messages are worked out by hand from the algorithm's rules.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import trio

from om_actors import Forgery, OmActorsError, Scenario, replay_log, simulate_sync
from om_actors.algorithm import Outgoing, Setup
from om_actors.driver import Ask, Awaiting, GeneralDriver, Send, answer_now
from om_actors.events import MessageRejected, StrategyFailed
from om_actors.log import as_logged
from om_actors.oral import ORAL_MESSAGES, OralReason, Relay
from om_actors.registry import REGISTRY
from om_actors.strategies import Flip, Loyal, Silent, StrategyError, message_rng

FOUR = Setup(generals=4, m=1, commander=0, values=("attack", "retreat"), default="retreat")


def driver(me: int, strategy: object = None, *, instances: int = 1, order: str = "attack") -> GeneralDriver:
    cores = [ORAL_MESSAGES.general(FOUR, me, order) for _ in range(instances)]
    return GeneralDriver(cores, strategy=strategy, seed=7, tagged=instances > 1)  # type: ignore[arg-type]


class Raises:
    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        raise ValueError(f"no answer for {receiver}")


class Awaits:
    async def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object
    ) -> object:
        await trio.lowlevel.checkpoint()
        return value


def test_a_loyal_general_gets_ready_sends_of_what_it_owes() -> None:
    commander = driver(0)
    assert list(commander.round(1)) == [Send(0, 1, r, Relay((0,), "attack")) for r in (1, 2, 3)]
    assert list(commander.round(2)) == []


def test_a_traitor_is_asked_about_every_message_a_loyal_general_would_send() -> None:
    traitor = driver(0, Flip(FOUR.values))
    asks = list(traitor.round(1))
    assert all(isinstance(ask, Ask) for ask in asks)
    assert [ask.outgoing for ask in asks if isinstance(ask, Ask)] == [
        Outgoing((0,), r, "attack") for r in (1, 2, 3)
    ]
    first = asks[0]
    assert isinstance(first, Ask)
    assert (first.instance, first.round) == (0, 1)
    assert answer_now(traitor, first) == Send(0, 1, 1, Relay((0,), "retreat"))


def test_silence_and_forgeries_are_what_the_strategy_says() -> None:
    silent = driver(0, Silent())
    ask = next(silent.round(1))
    assert isinstance(ask, Ask)
    assert answer_now(silent, ask) is None

    class Forger:
        def choose(self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object) -> object:
            return Forgery([2, 9], "attack")

    forger = driver(0, Forger())
    ask = next(forger.round(1))
    assert isinstance(ask, Ask)
    assert answer_now(forger, ask) == Send(0, 1, 1, Relay((2, 9), "attack"))


def test_a_strategy_that_raises_costs_that_message_and_says_why() -> None:
    traitor = driver(0, Raises(), instances=2)
    asks = [a for a in traitor.round(1) if isinstance(a, Ask)]
    assert answer_now(traitor, asks[4]) == StrategyFailed(
        1, 0, (0,), 2, "ValueError('no answer for 2')", instance=1
    )


async def test_ask_awaits_an_async_strategy_and_reports_a_raising_one() -> None:
    with trio.fail_after(5):
        slow = driver(0, Awaits())
        ask = next(slow.round(1))
        assert isinstance(ask, Ask)
        assert await slow.ask(ask) == Send(0, 1, 1, Relay((0,), "attack"))
        failing = driver(0, Raises())
        ask = list(failing.round(1))[2]
        assert isinstance(ask, Ask)
        assert await failing.ask(ask) == StrategyFailed(1, 0, (0,), 3, "ValueError('no answer for 3')")


class EveryAnswer:
    """By the receiver and round: silence, a raise, a forgery, garbage, a random value or the truth."""

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        pick = (receiver + round) % 6
        if pick == 1:
            raise ValueError(f"no answer for {receiver}")
        if pick == 4:
            return rng.choice(["v0", "v1"])
        return [None, None, Forgery((0, 9, receiver), value), ["garbage", float("nan")], None, value][pick]


def _the_long_way(traitor: GeneralDriver, round: int) -> list[object]:
    """What :meth:`GeneralDriver.round` and :func:`answer_now` give, as :meth:`GeneralDriver.lies` puts it."""
    said: list[object] = []
    for item in traitor.round(round):
        sent = answer_now(traitor, item) if isinstance(item, Ask) else item
        if isinstance(sent, Send):
            said.append((sent.instance, sent.receiver, sent.payload))
        elif sent is not None:
            said.append(sent)
    return said


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_traitors_lies_are_what_its_round_and_answers_give_for_every_algorithm(name: str) -> None:
    """The actors take a traitor's answers the quick way (``lies``); lockstep and the nodes the long way."""
    rules = REGISTRY[name]
    setup = Setup(7, 2, 0, ("v0", "v1"), "v0")
    kinds = set()
    for me in range(7):
        quick, long = (
            GeneralDriver([rules.general(setup, me, "v1")], strategy=EveryAnswer(), seed=3, tagged=False)
            for _ in range(2)
        )
        for round in range(1, quick.cores[0].rounds + 1):
            said = list(quick.lies(round))
            assert said == _the_long_way(long, round), (me, round)
            kinds |= {type(item) for item in said}
    assert kinds == {tuple, StrategyFailed}


async def test_an_async_strategys_lies_come_one_at_a_time_as_answers_to_await() -> None:
    with trio.fail_after(5):
        slow = driver(0, Awaits())
        asks = [(a.instance, a.round, a.outgoing) for a in driver(0, Loyal()).round(1) if isinstance(a, Ask)]
        for item in slow.lies(1):
            assert isinstance(item, Awaiting)
            ask = item.ask
            assert (ask.instance, ask.round, ask.outgoing) == asks.pop(0)
            told = await slow.told_later(ask, item.pending)
            assert slow.answer(ask, told) == Send(0, 1, ask.outgoing.receiver, Relay((0,), "attack"))
        assert asks == []


class Stops:
    """Raises what is not an ``Exception``: what ends a program, not a message."""

    def __init__(self, raised: BaseException) -> None:
        self.raised = raised

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        raise self.raised


@pytest.mark.parametrize("raised", [SystemExit(0), GeneratorExit(), BaseException("odd")])
def test_a_strategy_that_would_stop_the_run_is_an_error_naming_it(raised: BaseException) -> None:
    with pytest.raises(
        StrategyError, match=r"^general 0's strategy raised .* choosing its round-1 message to general 1: "
    ):
        list(driver(0, Stops(raised)).lies(1))
    ask = next(driver(0, Stops(raised)).round(1))
    assert isinstance(ask, Ask)
    with pytest.raises(
        StrategyError, match="a strategy may lie, stay silent or raise an Exception, never stop the run"
    ):
        answer_now(driver(0, Stops(raised)), ask)


class Own(BaseException):
    """An application's own BaseException: neither an Exception nor a way to stop."""


class Unprintable(Exception):
    def __repr__(self) -> str:
        raise SystemExit(9)


class AsyncRaise:
    def __init__(self, raised: BaseException) -> None:
        self.raised = raised

    async def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object
    ) -> object:
        await trio.lowlevel.checkpoint()
        raise self.raised


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (Own("mine"), "Own('mine')"),
        (Own("x" * 1000), "Own('" + "x" * 294 + "…"),
        (Own("two\nlines\u2028"), "Own('two\\nlines\\u2028')"),
    ],
)
async def test_an_async_strategy_stopping_the_run_is_one_line_that_names_what_it_raised(
    raised: BaseException, said: str
) -> None:
    with trio.fail_after(5):
        slow = driver(0, AsyncRaise(raised))
        slow.cancellation = (trio.Cancelled,)
        ask = next(slow.round(1))
        assert isinstance(ask, Ask)
        with pytest.raises(StrategyError) as stopped:
            await slow.ask(ask)
    assert str(stopped.value).startswith(f"general 0's strategy raised {said} choosing its round-1 message")
    assert "\n" not in str(stopped.value)


async def test_a_nurserys_group_of_cancellations_passes_as_a_cancellation() -> None:
    class Nursery:
        async def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object
        ) -> object:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(trio.sleep_forever)
            return value

    with trio.fail_after(5):
        waiting = driver(0, Nursery())
        waiting.cancellation = (trio.Cancelled,)
        ask = next(waiting.round(1))
        assert isinstance(ask, Ask)
        with trio.move_on_after(0.01) as scope:
            await waiting.ask(ask)
        assert scope.cancelled_caught


def test_an_error_whose_repr_raises_is_still_one_message_lost() -> None:
    failing = driver(0, Stops(Unprintable()))
    said = list(failing.lies(1))
    assert said == [StrategyFailed(1, 0, (0,), r, "<Unprintable whose repr raised>") for r in (1, 2, 3)]


def test_ctrl_c_in_a_strategy_is_ctrl_c() -> None:
    with pytest.raises(KeyboardInterrupt):
        list(driver(0, Stops(KeyboardInterrupt())).lies(1))


async def test_an_async_strategy_that_exits_is_an_error_and_cancellation_passes() -> None:
    class AsyncExit:
        async def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object
        ) -> object:
            await trio.lowlevel.checkpoint()
            raise SystemExit(3)

    with trio.fail_after(5):
        slow = driver(0, AsyncExit())
        ask = next(slow.round(1))
        assert isinstance(ask, Ask)
        with pytest.raises(StrategyError, match=r"^general 0's strategy raised SystemExit\(3\)"):
            await slow.ask(ask)
        waiting = driver(0, Awaits())
        waiting.cancellation = (trio.Cancelled,)  # as the actors and the nodes say it
        ask = next(waiting.round(1))
        assert isinstance(ask, Ask)
        with trio.move_on_after(0) as scope:
            await waiting.ask(ask)
        assert scope.cancelled_caught


def test_answer_now_refuses_an_async_strategy_without_leaving_a_coroutine_behind() -> None:
    slow = driver(0, Awaits())
    ask = next(slow.round(1))
    assert isinstance(ask, Ask)
    with pytest.raises(
        OmActorsError, match=r"^general 0's strategy is async, and this runtime cannot await it: "
    ):
        answer_now(slow, ask)


def test_each_message_gets_its_own_rng_seeded_by_what_identifies_it() -> None:
    first = [a for a in driver(0, Loyal()).round(1) if isinstance(a, Ask)]
    again = [a for a in driver(0, Loyal()).round(1) if isinstance(a, Ask)]
    draws = [a.rng.random() for a in first]
    assert draws == [a.rng.random() for a in again]
    assert len(set(draws)) == 3


def _draw(rng: random.Random) -> float:
    return rng.random()


class KeepsSome:
    """Draws from some rngs at once, keeps others (or a bound method of one) to draw from after the round."""

    def __init__(self) -> None:
        self.drawn: dict[tuple[int, tuple[int, ...], int], list[float]] = {}
        self.kept: list[tuple[tuple[int, tuple[int, ...], int], Callable[[], float]]] = []

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        message = (round, path, receiver)
        if receiver % 3 == 0:
            self.kept.append((message, rng.random if receiver % 2 else partial(_draw, rng)))
        elif receiver % 3 == 1:
            self.drawn[message] = [rng.random(), rng.random()]
        return value


def test_every_message_draws_as_from_its_own_rng_whatever_the_strategy_keeps() -> None:
    """Whether a strategy draws at once, keeps its rng to draw later, or ignores it, each draws as its own."""
    strategy = KeepsSome()
    seven = Setup(7, 2, 0, ("v0", "v1"), "v0")
    traitor = GeneralDriver([ORAL_MESSAGES.general(seven, 1, "v1")], strategy=strategy, seed=5, tagged=False)
    for round in range(1, 4):
        list(traitor.lies(round))
    late = {message: [draw(), draw()] for message, draw in strategy.kept}
    assert (len(late), len(strategy.drawn)) == (10, 5)
    for (asked, path, receiver), draws in [*strategy.drawn.items(), *late.items()]:
        fresh = message_rng(5, asked, 1, path, receiver)
        assert draws == [fresh.random(), fresh.random()], (asked, path, receiver)


class Marks:
    """Marks each rng it is handed, and watches them all weakly: a reused rng would show either way."""

    def __init__(self) -> None:
        self.seen: weakref.WeakSet[random.Random] = weakref.WeakSet()
        self.reused = 0

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        self.reused += rng in self.seen or hasattr(rng, "mark")
        self.seen.add(rng)
        rng.mark = True  # type: ignore[attr-defined]
        return value


def test_every_message_gets_a_new_rng_object_whatever_its_strategy_did_to_the_last() -> None:
    """A strategy may mark its rng or watch it weakly: the next message's is never the same object."""
    strategy = Marks()
    seven = Setup(7, 2, 0, ("v0", "v1"), "v0")
    traitor = GeneralDriver([ORAL_MESSAGES.general(seven, 1, "v1")], strategy=strategy, seed=5, tagged=False)
    said = [item for round in range(1, 4) for item in traitor.lies(round)]
    assert len(said) == 25
    assert strategy.reused == 0


def test_delivery_counts_every_message_and_reports_a_refusal_with_its_reason() -> None:
    lieutenant = driver(1)
    lieutenant.round(1)
    assert lieutenant.deliver(0, 0, 1, Relay((0,), "attack")) is None
    refused = lieutenant.deliver(0, 2, 1, Relay((0,), "attack"))
    assert refused == MessageRejected(1, 2, 1, Relay((0,), "attack"), OralReason.NOT_FROM_SENDER)
    assert lieutenant.received == 2
    lieutenant.round(2)
    assert lieutenant.deliver(0, 2, 2, Relay((0, 2), "attack")) is None
    assert lieutenant.decide() == ("attack",)  # attack, attack and the missing (0, 3) as retreat


def test_events_name_the_instance_only_when_a_run_has_several() -> None:
    single, double = driver(1), driver(1, instances=2)
    single.round(1)
    double.round(1)
    assert single.deliver(0, 3, 1, Relay((0,), "x")) == MessageRejected(
        1, 3, 1, Relay((0,), "x"), OralReason.NOT_FROM_SENDER
    )
    refused = double.deliver(1, 3, 1, Relay((0,), "x"))
    assert refused is not None
    assert refused.instance == 1


class _Text(str):
    """A value that is a string to JSON, and something else to an exact type check."""


class _Number(int):
    """A general id that is an int to JSON."""


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr")


class _Exiting:
    """A value whose ``__repr__`` would end the process, were it not caught."""

    def __repr__(self) -> str:
        raise SystemExit(5)


class _Lies:
    """Answers with garbage of one kind, given by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        if self.kind == "text":
            return _Text(value)
        if self.kind == "number":
            return Forgery(tuple(_Number(g) for g in path), value)
        if self.kind == "unprintable":
            return Forgery((*path, _Unprintable()), value)
        if self.kind == "exiting":
            return _Exiting()
        return Forgery((*path, 10**5000), value)


@pytest.mark.parametrize("algorithm", ["om", "sm"])
@pytest.mark.parametrize("kind", ["text", "number", "unprintable", "exiting", "huge"])
def test_a_traitors_garbage_is_judged_as_the_log_records_it(
    algorithm: str, kind: str, tmp_path: Path
) -> None:
    """What a receiver judges in memory is what the log (and the wire) carry, so replay always agrees."""
    scenario = Scenario(algorithm=algorithm, generals=4, m=1, traitors={1: _Lies(kind)})
    log = tmp_path / "run.jsonl"
    result = simulate_sync(scenario, log=log)
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert result.success


def test_as_logged_gives_plain_data_for_any_garbage() -> None:
    assert as_logged(_Text("attack")) == "attack"
    assert type(as_logged(_Text("attack"))) is str
    assert as_logged((0, _Number(2))) == (0, 2)
    assert as_logged([1, [2, {"a": [3]}]]) == (1, (2, {"a": (3,)}))
    assert as_logged({1: "x", None: "y"}) == {"1": "x", "null": "y"}
    assert as_logged(_Unprintable()) == "<_Unprintable whose repr raised>"
    assert as_logged(_Exiting()) == "<_Exiting whose repr raised>"
    assert as_logged(10**5000) == "<an integer of 16,610 bits>"
    deep: list[object] = []
    for _ in range(100):
        deep = [deep]
    assert "nested deeper than 48 levels" in str(as_logged(deep))
    path = (0, 1, 2)
    assert as_logged(path) is path
