"""One general as a trio task: what its inbox carries in, and what it posts, records and acknowledges.

Rules for this file:
- drive ``GeneralActor`` through its own inbox and acknowledgement channel,
  with no orchestrator: posts and records land in lists;
- expected messages are worked out by hand from OM(1) on four generals;
- every test is bounded by ``trio.fail_after``, and anything timed runs on
  trio's ``autojump_clock``, so a timeout costs no real time.
"""

from __future__ import annotations

import io
import math
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from adversaries import Hang, Slow

from om_actors import Scenario, simulate_sync
from om_actors.algorithm import Setup
from om_actors.driver import GeneralDriver
from om_actors.events import Event, MessageRejected, StrategyFailed
from om_actors.general import Ack, Command, Decide, Delivery, Flush, GeneralActor, SendRound
from om_actors.oral import ORAL_MESSAGES, OralGeneral, OralReason, Relay
from om_actors.strategies import Flip

FOUR = Setup(generals=4, m=1, commander=0, values=("attack", "retreat"), default="retreat")

Posted = tuple[int, int, int, object]


class Raises:
    def choose(self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object) -> object:
        raise ValueError(f"no answer for {receiver}")


class Running:
    """One actor's task, its inbox, what it posted and recorded, and its acknowledgements."""

    def __init__(self, me: int, strategy: object = None) -> None:
        core = ORAL_MESSAGES.general(FOUR, me, "attack")
        driver = GeneralDriver([core], strategy=strategy, seed=7, tagged=False)  # type: ignore[arg-type]
        self.posted: list[Posted] = []
        self.recorded: list[Event] = []
        self.actor = GeneralActor(driver, post=self._post, record=self.recorded.append)
        self.inbox, self.commands = trio.open_memory_channel[Command](math.inf)
        self.acks_in, self.acks = trio.open_memory_channel[Ack](math.inf)

    def _post(self, round: int, instance: int, receiver: int, payload: object) -> None:
        self.posted.append((round, instance, receiver, payload))

    async def ask(self, command: Command) -> Ack:
        self.inbox.send_nowait(command)
        return await self.acks.receive()


@asynccontextmanager
async def running(me: int, strategy: object = None) -> Any:
    general = Running(me, strategy)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(general.actor.run, general.commands, general.acks_in)
            yield general
            general.inbox.close()


async def test_a_loyal_commander_posts_its_order_to_every_lieutenant_and_acknowledges() -> None:
    async with running(0) as commander:
        assert await commander.ask(SendRound(1, math.inf)) == Ack(0)
    assert commander.posted == [(1, 0, r, Relay((0,), "attack")) for r in (1, 2, 3)]
    assert commander.recorded == []


async def test_a_lieutenant_takes_what_arrives_refuses_what_it_must_and_relays_what_it_holds() -> None:
    async with running(1) as lieutenant:
        await lieutenant.ask(SendRound(1, math.inf))
        lieutenant.inbox.send_nowait(Delivery(1, 0, 0, (Relay((0,), "attack"),)))
        lieutenant.inbox.send_nowait(Delivery(1, 2, 0, (Relay((0,), "retreat"),)))  # not the commander
        assert await lieutenant.ask(Flush(1)) == Ack(1)
        await lieutenant.ask(SendRound(2, math.inf))
    assert lieutenant.recorded == [
        MessageRejected(1, 2, 1, Relay((0,), "retreat"), OralReason.NOT_FROM_SENDER)
    ]
    assert lieutenant.posted == [(2, 0, r, Relay((0, 1), "attack")) for r in (2, 3)]
    assert lieutenant.actor.received == 2


async def test_decide_answers_with_the_decision_and_the_cores_counts() -> None:
    async with running(1) as lieutenant:
        for round in (1, 2):
            await lieutenant.ask(SendRound(round, math.inf))
            for sender, path in ((0, (0,)),) if round == 1 else ((2, (0, 2)), (3, (0, 3))):
                lieutenant.inbox.send_nowait(Delivery(round, sender, 0, (Relay(path, "attack"),)))
            await lieutenant.ask(Flush(round))
        ack = await lieutenant.ask(Decide())
    assert (ack.general, ack.decisions, ack.timed_out) == (1, ("attack",), False)


async def test_a_traitor_posts_its_lies_and_records_what_its_strategy_raised() -> None:
    async with running(0, Flip(FOUR.values)) as liar:
        await liar.ask(SendRound(1, math.inf))
    assert liar.posted == [(1, 0, r, Relay((0,), "retreat")) for r in (1, 2, 3)]
    async with running(0, Raises()) as failing:
        assert await failing.ask(SendRound(1, math.inf)) == Ack(0)
    assert failing.posted == []
    assert failing.recorded == [
        StrategyFailed(1, 0, (0,), r, f"ValueError('no answer for {r}')") for r in (1, 2, 3)
    ]


async def test_an_async_strategy_is_awaited_within_the_rounds_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(0, Slow(1.0)) as slow:
        assert await slow.ask(SendRound(1, trio.current_time() + 10)) == Ack(0)
    assert [receiver for _, _, receiver, _ in slow.posted] == [1, 2, 3]


@pytest.mark.parametrize("strategy", [Hang(), Slow(4.0)])
async def test_a_round_past_its_deadline_is_cut_off_and_says_so(
    strategy: object, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(0, strategy) as late:
        ack = await late.ask(SendRound(1, trio.current_time() + 10))
    assert ack == Ack(0, timed_out=True)
    assert len(late.posted) == (2 if isinstance(strategy, Slow) else 0)


def test_a_receiver_is_handed_each_senders_round_as_a_tuple_it_cannot_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runtime reads the same payloads again for the round's events: a core must not empty them."""
    seen: list[type] = []
    judge = OralGeneral._receive_all

    def spied(core: OralGeneral, sender: int, round: int, payloads: Any) -> Any:
        seen.append(type(payloads))
        return judge(core, sender, round, payloads)

    monkeypatch.setattr(OralGeneral, "_receive_all", spied)
    simulate_sync(Scenario(generals=7, m=2, traitors={1: "flip"}), log=io.BytesIO())
    assert len(seen) == 6 + 6 * 5 + 6 * 5  # the commander's round, then each lieutenant's to the other five
    assert set(seen) == {tuple}


async def test_an_inbox_that_closes_ends_the_actor() -> None:
    general = Running(2)
    with trio.fail_after(5):
        general.inbox.close()
        await general.actor.run(general.commands, general.acks_in)
