"""Runs a scenario: one trio task per general, and a barrier per round.

The orchestrator is deliberately thin.  It opens a round by telling every
general to send, waits until all have finished or the round's deadline has
passed, then asks every general to acknowledge its inbox -- memory channels
are FIFO, so that acknowledgement means every message of the round has been
delivered.  Only then does it publish the round's events, sorted by path,
receiver and sender, so trio's deliberately random scheduling never shows
in the output.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import trio

from ._version import __version__
from .events import (
    SCHEMA,
    Decided,
    Event,
    MessageRejected,
    MessageSent,
    RoundEnded,
    RunStarted,
    StrategyFailed,
    VerdictReached,
)
from .general import Ack, Command, Decide, Envelope, Flush, GeneralActor, SendRound
from .log import LogTarget, open_log
from .protocol import General, judge
from .result import Result
from .scenario import Scenario

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

EventHandler = Callable[[Event], None]
ProgressHandler = Callable[[int, int], None]
PROGRESS_EVERY = 2048
"""How many messages pass between two progress reports."""


async def simulate(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    on_progress: ProgressHandler | None = None,
) -> Result:
    """Run ``scenario`` in the current trio run and return its outcome.

    ``on_event`` sees every event in log order, as soon as its round ends.
    ``on_progress(round, sent)`` is told how many messages have been sent
    so far, every few thousand messages, for progress bars: events come only
    at the end of a round, and one round can hold almost all of a run.
    """
    with open_log(log) as writer:
        handlers = [h for h in (writer, on_event) if h is not None]
        return await _Run(scenario, handlers, on_progress).run()


def simulate_sync(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    on_progress: ProgressHandler | None = None,
) -> Result:
    """:func:`simulate` for code that is not async: starts and ends its own trio run."""
    return trio.run(lambda: simulate(scenario, log=log, on_event=on_event, on_progress=on_progress))


@contextmanager
def _unwrapped() -> Iterator[None]:
    """Raise a lone error from the nursery as itself, not inside an ExceptionGroup.

    Generals catch their strategies' errors, so an error here comes from
    one place -- an event handler, say -- and the caller should be able to
    ``except`` it by its own type.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _path_key(path: object) -> tuple[int, Any]:
    """Sorts well-formed paths by value and a traitor's garbage after them."""
    if isinstance(path, tuple) and all(type(g) is int for g in path):
        return (0, path)
    return (1, repr(path))


def _event_key(event: Event) -> tuple[Any, ...]:
    if isinstance(event, (MessageSent, MessageRejected)):
        rank = 0 if isinstance(event, MessageSent) else 1
        return (_path_key(event.path), event.receiver, event.sender, rank)
    assert isinstance(event, StrategyFailed)
    return (_path_key(event.path), event.receiver, event.general, 2)


class _Run:
    def __init__(
        self, scenario: Scenario, handlers: Sequence[EventHandler], on_progress: ProgressHandler | None
    ) -> None:
        self.scenario = scenario
        self.handlers = handlers
        self.on_progress = on_progress
        self.pending: list[Event] = []
        self.sent = [0] * scenario.setup.rounds
        self.timed_out: dict[int, tuple[int, ...]] = {}
        self.rejected = 0
        channels = [trio.open_memory_channel[Command](math.inf) for _ in range(scenario.generals)]
        self.inboxes = [send for send, _ in channels]
        self.acks_in, self.acks_out = trio.open_memory_channel[Ack](math.inf)
        strategies = scenario.strategies()
        self.actors = [
            GeneralActor(
                General(scenario.setup, g, scenario.order),
                strategy=strategies.get(g),
                seed=scenario.seed,
                post=self._poster(g),
                record=self.pending.append,
            )
            for g in range(scenario.generals)
        ]
        self.receivers = [receive for _, receive in channels]

    def _poster(self, sender: int) -> Callable[[int, int, object, object], None]:
        def post(round: int, receiver: int, path: object, value: object) -> None:
            self.sent[round - 1] += 1
            self.pending.append(MessageSent(round, sender, receiver, path, value))
            self.inboxes[receiver].send_nowait(Envelope(sender, round, path, value))
            if self.on_progress is not None and not len(self.pending) % PROGRESS_EVERY:
                self.on_progress(round, sum(self.sent))

        return post

    def emit(self, event: Event) -> None:
        for handler in self.handlers:
            handler(event)

    async def run(self) -> Result:
        self.emit(RunStarted(SCHEMA, __version__, self.scenario.seed, self.scenario.to_dict()))
        with _unwrapped():
            async with trio.open_nursery() as nursery:
                for actor, receiver in zip(self.actors, self.receivers):
                    nursery.start_soon(actor.run, receiver, self.acks_in)
                for round in range(1, self.scenario.setup.rounds + 1):
                    await self._round(round)
                decisions = await self._decide()
                for inbox in self.inboxes:
                    inbox.close()
        return self._conclude(decisions)

    async def _round(self, round: int) -> None:
        deadline = trio.current_time() + self.scenario.round_timeout
        acks = await self._barrier(lambda: SendRound(round, deadline))
        late = tuple(sorted(ack.general for ack in acks if ack.timed_out))
        if late:
            self.timed_out[round] = late
        await self._barrier(lambda: Flush(round))
        events = sorted(self.pending, key=_event_key)
        self.pending.clear()
        for event in events:
            self.emit(event)
        if self.on_progress is not None:
            self.on_progress(round, sum(self.sent))
        rejected = sum(isinstance(e, MessageRejected) for e in events)
        self.rejected += rejected
        self.emit(RoundEnded(round, self.sent[round - 1], rejected, late))

    async def _barrier(self, command: Callable[[], Command]) -> list[Ack]:
        for inbox in self.inboxes:
            inbox.send_nowait(command())
        return [await self.acks_out.receive() for _ in self.inboxes]

    async def _decide(self) -> dict[int, str]:
        acks = await self._barrier(Decide)
        decisions = {ack.general: ack.decision for ack in acks if ack.decision is not None}
        return dict(sorted(decisions.items()))

    def _conclude(self, decisions: dict[int, str]) -> Result:
        scenario = self.scenario
        for general, value in decisions.items():
            self.emit(Decided(general, value, general in scenario.traitors))
        loyal = {g: decisions[g] for g in scenario.loyal}
        verdict = judge(scenario.setup, loyal, loyal=loyal, order=scenario.order)
        self.emit(
            VerdictReached(
                verdict.agreement, verdict.validity, verdict.success, sum(self.sent), scenario.setup.rounds
            )
        )
        return Result(
            scenario=scenario,
            decisions=loyal,
            verdict=verdict,
            messages_per_round=tuple(self.sent),
            received={actor.id: actor.received for actor in self.actors},
            rejected=self.rejected,
            timed_out=self.timed_out,
        )
