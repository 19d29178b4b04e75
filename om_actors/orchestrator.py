"""Runs a scenario: one trio task per general, and a barrier per round.

The orchestrator is deliberately thin.  It opens a round by telling every
general to send, waits until all have finished or the round's deadline has
passed, then asks every general to acknowledge its inbox -- memory channels
are FIFO, so that acknowledgement means every message of the round has been
delivered.  Only then does it publish the round's events, sorted by
instance, path, receiver and sender, so trio's deliberately random
scheduling never shows in the output.

The same barrier drives both modes: in per-message mode an inbox item is
one message; in batched mode it is one :class:`~om_actors.general.Batch`
per sender, receiver and round, and a flush is when a general takes a whole
level of its EIG store at once.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, Literal

import attrs
import trio

from ._version import __version__
from .eig import EigLayout
from .errors import OmActorsError, Problem, ScenarioError
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
from .general import (
    Ack,
    Batch,
    BatchedGeneralActor,
    Command,
    Decide,
    Envelope,
    Flush,
    GeneralActor,
    SendRound,
)
from .limits import MAX_BATCHED_GENERALS, per_message_problem
from .log import LogTarget, open_log
from .algorithm import Verdict, combine, judge
from .oral import OralGeneral as General
from .oral import messages_sent, paths_of_round
from .result import InstanceOutcome, Result
from .scenario import Scenario
from .strategies import Strategy

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

EventHandler = Callable[[Event], None]
ProgressHandler = Callable[[int, int], None]
PROGRESS_EVERY = 2048
"""How many messages pass between two progress reports."""
EVENT_BUFFER = 256
"""Events :func:`open_simulation` holds for a slow reader before the run waits for it."""


Mode = Literal["per-message", "batched", "auto"]
MODES: tuple[Mode, ...] = ("per-message", "batched", "auto")
BATCHED_ABOVE = 200_000
"""Messages above which ``auto`` mode batches: just above thirteen generals with m = 4."""


def resolve_mode(mode: Mode, scenario: Scenario) -> Literal["per-message", "batched"]:
    """``auto`` as the mode it stands for, for this scenario; checked before anything is allocated.

    Raises :class:`ScenarioError` for a mode that is not one of
    :data:`MODES`, and for a run the mode cannot hold: per-message mode
    keeps every message as Python objects, so it refuses runs far beyond
    what batched mode takes (:func:`~om_actors.limits.per_message_problem`),
    and batched mode stores a general's id in one byte.  ``auto`` picks
    per-message mode for more than 255 generals.
    """
    if mode not in MODES:
        allowed = ", ".join(repr(m) for m in MODES)
        raise ScenarioError([Problem(f"mode: {mode!r} is not a mode: use one of {allowed}")], scenario.name)
    total = messages_sent(scenario.generals, scenario.m) * len(scenario.effective_instances)
    resolved: Literal["per-message", "batched"]
    if mode == "auto":
        too_many = scenario.generals > MAX_BATCHED_GENERALS
        resolved = "batched" if total > BATCHED_ABOVE and not too_many else "per-message"
    else:
        resolved = mode
    if resolved == "per-message":
        problem = per_message_problem(total, generals=scenario.generals)
    else:
        problem = _batched_problem(scenario)
    if problem is not None:
        raise ScenarioError([Problem(f"mode: {problem}")], scenario.name)
    return resolved


def _batched_problem(scenario: Scenario) -> str | None:
    if scenario.generals <= MAX_BATCHED_GENERALS:
        return None
    return (
        f"batched mode holds at most {MAX_BATCHED_GENERALS} generals, and this scenario has "
        f"{scenario.generals:,}: use per-message mode"
    )


def _require_trio(name: str) -> None:
    """Refuse, with a hint, a call from outside trio, which would fail deep inside trio instead."""
    if not trio.lowlevel.in_trio_task():
        raise OmActorsError(
            f"{name}() runs inside trio: from asyncio (or anyio's asyncio backend) use "
            "simulate_asyncio(), and from code that is not async, simulate_sync()"
        )


async def simulate(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    on_progress: ProgressHandler | None = None,
    mode: Mode = "auto",
    log_messages: bool = False,
) -> Result:
    """Run ``scenario`` in the current trio run and return its outcome.

    ``log`` is a file name, a binary file, or a structlog logger of the
    application's.  ``on_event`` sees every event in log order, as soon as
    its round ends.  ``on_progress(round, sent)`` is told how many messages
    have been sent so far, every few thousand messages, for progress bars:
    events come only at the end of a round, and one round can hold almost
    all of a run.

    ``mode`` is ``"per-message"`` (every message its own inbox item and its
    own event), ``"batched"`` (one batch per sender, receiver and round, and
    a compact EIG store; only round summaries are logged unless
    ``log_messages``) or ``"auto"``, which batches above
    :data:`BATCHED_ABOVE` messages.  Both give the same decisions, verdicts
    and counts.

    Cancelling the surrounding scope cancels the run; the log keeps every
    line written so far.

    Before anything else -- before the log is opened -- the mode is checked
    against the scenario's size (see :func:`resolve_mode`) and every
    traitor's strategy is built, so a strategy that cannot be imported or
    whose class raises when constructed is a :class:`StrategyError` here.
    Call this only from trio; asyncio applications use
    :func:`~om_actors.simulate_asyncio`.
    """
    _require_trio("simulate")
    resolved = resolve_mode(mode, scenario)
    strategies = scenario.strategies()
    with open_log(log) as writer:
        handlers = [h for h in (writer, on_event) if h is not None]
        run = _Run(scenario, strategies, handlers, on_progress, mode=resolved, log_messages=log_messages)
        return await run.run()


def simulate_sync(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    on_progress: ProgressHandler | None = None,
    mode: Mode = "auto",
    log_messages: bool = False,
) -> Result:
    """:func:`simulate` for code that is not async: starts and ends its own trio run.

    Trio runs do not nest, so inside one -- a trio task, or an asyncio
    application hosting trio as a guest -- this is refused with an
    :class:`OmActorsError` saying what to await instead.
    """
    if trio.lowlevel.in_trio_run():
        raise OmActorsError(
            "simulate_sync() starts a trio run of its own, and this code is already inside one: "
            "from trio, await simulate(), and from asyncio, await simulate_asyncio()"
        )
    return trio.run(
        partial(
            simulate,
            scenario,
            log=log,
            on_event=on_event,
            on_progress=on_progress,
            mode=mode,
            log_messages=log_messages,
        )
    )


class Simulation:
    """A run in progress, opened by :func:`open_simulation`."""

    def __init__(self, scenario: Scenario, events: trio.MemoryReceiveChannel[Event]) -> None:
        self.scenario = scenario
        self._events = events
        self._done = trio.Event()
        self._result: Result | None = None

    def events(self) -> trio.MemoryReceiveChannel[Event]:
        """Every event, in log order, as the run produces it; ends after the verdict.

        The channel holds at most :data:`EVENT_BUFFER` unread events; when it
        is full the run waits for the reader, so a slow reader slows the run
        down and never loses an event.
        """
        return self._events

    async def result(self) -> Result:
        """Wait for the run to finish and return its result.

        Events nobody has read yet are read and discarded here, since the
        run cannot finish while they wait; read :meth:`events` first to see
        them.
        """
        async for _ in self._events:
            pass
        await self._done.wait()
        assert self._result is not None
        return self._result

    async def _run(
        self,
        send: trio.MemorySendChannel[Event],
        log: LogTarget | None,
        mode: Literal["per-message", "batched"],
        strategies: Mapping[int, Strategy],
    ) -> None:
        async with send:
            with open_log(log) as writer:
                handlers = [writer] if writer is not None else []
                run = _Run(self.scenario, strategies, handlers, None, stream=send, mode=mode)
                self._result = await run.run()
        self._done.set()


@asynccontextmanager
async def open_simulation(
    scenario: Scenario, *, log: LogTarget | None = None, mode: Mode = "auto"
) -> AsyncIterator[Simulation]:
    """Run ``scenario`` in the background and watch it live::

        async with open_simulation(scenario) as sim:
            async for event in sim.events():
                ...
            result = await sim.result()

    Leaving the block before the run has finished cancels it.  An error in
    the run comes out of the ``async with`` as itself, not inside an
    ExceptionGroup.  The mode and the strategies are checked and built on
    entry, as :func:`simulate` does.
    """
    _require_trio("open_simulation")
    resolved = resolve_mode(mode, scenario)
    strategies = scenario.strategies()
    send, receive = trio.open_memory_channel[Event](EVENT_BUFFER)
    simulation = Simulation(scenario, receive)
    with unwrapped():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(simulation._run, send, log, resolved, strategies)
            try:
                yield simulation
            finally:
                nursery.cancel_scope.cancel()


@contextmanager
def unwrapped() -> Iterator[None]:
    """Raise a lone error from a nursery as itself, not inside an ExceptionGroup.

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


def event_order(event: Event) -> tuple[Any, ...]:
    assert isinstance(event, (MessageSent, MessageRejected, StrategyFailed))
    instance = event.instance or 0
    if isinstance(event, StrategyFailed):
        return (instance, _path_key(event.path), event.receiver, event.general, 2)
    rank = 0 if isinstance(event, MessageSent) else 1
    return (instance, _path_key(event.path), event.receiver, event.sender, rank)


class _Run:
    def __init__(
        self,
        scenario: Scenario,
        strategies: Mapping[int, Strategy],
        handlers: Sequence[EventHandler],
        on_progress: ProgressHandler | None,
        *,
        stream: trio.MemorySendChannel[Event] | None = None,
        mode: Literal["per-message", "batched"],
        log_messages: bool = False,
    ) -> None:
        self.scenario = scenario
        self.strategies = strategies
        self.handlers = handlers
        self.on_progress = on_progress
        self.stream = stream
        self.mode = mode
        self.log_messages = log_messages
        self.instances = scenario.effective_instances
        self.tagged = len(self.instances) > 1
        self.pending: list[Event] = []
        self.sent = [0] * (scenario.m + 1)
        self.sent_by_instance = [0] * len(self.instances)
        self.sent_by_general = [0] * scenario.generals
        self.timed_out: dict[int, tuple[int, ...]] = {}
        self.rejected = 0
        channels = [trio.open_memory_channel[Command](math.inf) for _ in range(scenario.generals)]
        self.inboxes = [send for send, _ in channels]
        self.receivers = [receive for _, receive in channels]
        self.acks_in, self.acks_out = trio.open_memory_channel[Ack](math.inf)
        self.actors: Sequence[GeneralActor | BatchedGeneralActor] = self._enlist()

    def _enlist(self) -> Sequence[GeneralActor | BatchedGeneralActor]:
        scenario = self.scenario
        strategies = self.strategies
        setups = [scenario.setup_for(instance) for instance in self.instances]
        if self.mode == "batched":
            self.layouts = [EigLayout(setup) for setup in setups]
            orders = [instance.order for instance in self.instances]
            return [
                BatchedGeneralActor(
                    g,
                    self.layouts,
                    orders,
                    strategy=strategies.get(g),
                    seed=scenario.seed,
                    post=self._batch_poster(g),
                    record=self.pending.append,
                    tagged=self.tagged,
                )
                for g in range(scenario.generals)
            ]
        return [
            GeneralActor(
                [General(setup, g, instance.order) for setup, instance in zip(setups, self.instances)],
                strategy=strategies.get(g),
                seed=scenario.seed,
                post=self._poster(g),
                record=self.pending.append,
                tagged=self.tagged,
            )
            for g in range(scenario.generals)
        ]

    def _tag(self, instance: int) -> int | None:
        return instance if self.tagged else None

    def _poster(self, sender: int) -> Callable[[int, int, int, object, object], None]:
        def post(instance: int, round: int, receiver: int, path: object, value: object) -> None:
            self.sent[round - 1] += 1
            self.sent_by_instance[instance] += 1
            self.sent_by_general[sender] += 1
            message = MessageSent(round, sender, receiver, path, value, instance=self._tag(instance))
            self.pending.append(message)
            self.inboxes[receiver].send_nowait(Envelope(instance, sender, round, path, value))
            if self.on_progress is not None and not len(self.pending) % PROGRESS_EVERY:
                self.on_progress(round, sum(self.sent))

        return post

    def _batch_poster(self, sender: int) -> Callable[[Batch, int], None]:
        def post(batch: Batch, receiver: int) -> None:
            self.sent[batch.round - 1] += batch.count
            self.sent_by_instance[batch.instance] += batch.count
            self.sent_by_general[sender] += batch.count
            if self.log_messages:
                self.pending.extend(self._unbatched(batch, receiver))
            self.inboxes[receiver].send_nowait(batch)
            if self.on_progress is not None:
                self.on_progress(batch.round, sum(self.sent))

        return post

    def _unbatched(self, batch: Batch, receiver: int) -> Iterator[MessageSent]:
        """A batch's messages one by one, for ``log_messages``: slow, and as big as the run."""
        tag = self._tag(batch.instance)
        for path, value in batch.messages:
            yield MessageSent(batch.round, batch.sender, receiver, path, value, instance=tag)
        if batch.row is None:
            return
        layout = self.layouts[batch.instance]
        values = layout.setup.values
        if batch.round == 1:
            yield MessageSent(1, batch.sender, receiver, (batch.sender,), values[batch.row[0]], instance=tag)
            return
        for path in paths_of_round(layout.setup, batch.round - 1, excluding=batch.sender):
            if receiver not in path:
                value = values[batch.row[layout.rank(path)]]
                relayed = (*path, batch.sender)
                yield MessageSent(batch.round, batch.sender, receiver, relayed, value, instance=tag)

    async def publish(self, event: Event) -> None:
        for handler in self.handlers:
            handler(event)
        if self.stream is not None:
            await self.stream.send(event)

    async def run(self) -> Result:
        scenario = self.scenario
        batched = self.mode == "batched"
        start = RunStarted(SCHEMA, __version__, scenario.seed, scenario.to_dict())
        if batched:
            start = attrs.evolve(start, mode="batched", messages_logged=self.log_messages)
        await self.publish(start)
        with unwrapped():
            async with trio.open_nursery() as nursery:
                for actor, receiver in zip(self.actors, self.receivers):
                    nursery.start_soon(actor.run, receiver, self.acks_in)
                for round in range(1, scenario.m + 2):
                    await self._round(round)
                decisions = await self._decide()
                for inbox in self.inboxes:
                    inbox.close()
        return await self._conclude(decisions)

    async def _round(self, round: int) -> None:
        deadline = trio.current_time() + self.scenario.round_timeout
        acks = await self._barrier(lambda: SendRound(round, deadline))
        late = tuple(sorted(ack.general for ack in acks if ack.timed_out))
        if late:
            self.timed_out[round] = late
        await self._barrier(lambda: Flush(round))
        events = sorted(self.pending, key=event_order)
        self.pending.clear()
        for event in events:
            await self.publish(event)
        if self.on_progress is not None:
            self.on_progress(round, sum(self.sent))
        rejected = sum(isinstance(e, MessageRejected) for e in events)
        self.rejected += rejected
        await self.publish(RoundEnded(round, self.sent[round - 1], rejected, late))

    async def _barrier(self, command: Callable[[], Command]) -> list[Ack]:
        for inbox in self.inboxes:
            inbox.send_nowait(command())
        return [await self.acks_out.receive() for _ in self.inboxes]

    async def _decide(self) -> dict[int, tuple[str, ...]]:
        acks = await self._barrier(Decide)
        return {ack.general: ack.decisions for ack in sorted(acks, key=lambda ack: ack.general)}

    async def _conclude(self, decisions: dict[int, tuple[str, ...]]) -> Result:
        outcomes, events = conclusion(self.scenario, decisions, self.sent_by_instance)
        for event in events:
            await self.publish(event)
        return Result(
            scenario=self.scenario,
            instances=tuple(outcomes),
            messages_per_round=tuple(self.sent),
            sent=dict(enumerate(self.sent_by_general)),
            received={actor.id: actor.received for actor in self.actors},
            rejected=self.rejected,
            timed_out=self.timed_out,
        )


def conclusion(
    scenario: Scenario,
    decisions: Mapping[int, tuple[str, ...]],
    sent_by_instance: Sequence[int],
    *,
    faulty: Collection[int] = (),
) -> tuple[list[InstanceOutcome], list[Event]]:
    """The end of a run: each instance's outcome, and the decision and verdict events, in log order.

    ``decisions`` maps each general to its decision in every instance;
    ``faulty`` generals (a node that died) count as neither loyal nor
    traitor: their decisions are lost.
    """
    instances = scenario.effective_instances
    tagged = len(instances) > 1
    outcomes: list[InstanceOutcome] = []
    events: list[Event] = []
    for index, instance in enumerate(instances):
        tag = index if tagged else None
        for general, values in decisions.items():
            events.append(Decided(general, values[index], general in scenario.traitors, instance=tag))
        loyal = {g: decisions[g][index] for g in scenario.loyal if g in decisions and g not in faulty}
        verdict = judge(scenario.setup_for(instance), loyal, loyal=loyal, order=instance.order)
        outcomes.append(InstanceOutcome(index, instance.commander, instance.order, loyal, verdict))
        if tagged:
            events.append(_verdict_event(scenario, verdict, sent_by_instance[index], index))
    events.append(_verdict_event(scenario, combine(o.verdict for o in outcomes), sum(sent_by_instance), None))
    return outcomes, events


def _verdict_event(
    scenario: Scenario, verdict: Verdict, messages: int, instance: int | None
) -> VerdictReached:
    rounds = scenario.m + 1
    return VerdictReached(
        verdict.agreement, verdict.validity, verdict.success, messages, rounds, instance=instance
    )
