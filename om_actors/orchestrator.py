"""Runs a scenario: one trio task per general, and a barrier per round.

The orchestrator is deliberately thin, and knows no algorithm.  The
scenario's algorithm (:attr:`Scenario.rules`) makes each general's core,
one per instance; a :class:`~om_actors.driver.GeneralDriver` runs them, and
a :class:`~om_actors.general.GeneralActor` moves its items.  The
orchestrator opens a round by telling every general to send, waits until
all have finished or the round's deadline has passed, then asks every
general to acknowledge its inbox -- memory channels are FIFO, so that
acknowledgement means every message of the round has been delivered.  Only
then does it publish the round's events, in the order
:func:`~om_actors.accounting.in_log_order` gives them, so trio's deliberately
random scheduling never shows in the output.  What it counts, and how the
run ends, is :class:`~om_actors.accounting.Accounting`'s, shared with the
cluster driver.

The same barrier drives both modes.  In per-message mode a general's
messages wait in its outbox until every general has sent its round; then
each receiver gets one :class:`~om_actors.general.Delivery` per sender,
holding that sender's messages in the order they were sent, and judges
each on its own.  In batched mode (an algorithm that is
:attr:`~om_actors.algorithm.Algorithm.batchable`: OM(m)) an inbox item is
mostly one :class:`~om_actors.eig.RoundBatch` per sender, receiver and
round, and a flush is when a general builds a whole level of its EIG store
at once.
"""

from __future__ import annotations

import gc
import math
import sys
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from .accounting import Accounting
from .driver import GeneralDriver
from .errors import OmActorsError, Problem, ScenarioError
from .events import Event, MessageSent
from .general import Ack, BatchedGeneralActor, Command, Decide, Delivery, Flush, GeneralActor, Post, SendRound
from .limits import BATCHED_ABOVE as BATCHED_ABOVE  # the CLI names it without importing this module
from .limits import MAX_BATCHED_GENERALS, per_message_problem
from .log import LogTarget, LogWriter, open_log
from .result import Result
from .scenario import Scenario, refuse_over_the_limit
from .strategies import Strategy

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup
if TYPE_CHECKING:
    from .eig import EigGeneral

EventHandler = Callable[[Event], None]
ProgressHandler = Callable[[int, int], None]
PROGRESS_EVERY = 2048
"""How many messages pass between two progress reports."""
EVENT_BUFFER = 256
"""Events :func:`open_simulation` holds for a slow reader before the run waits for it."""


Mode = Literal["per-message", "batched", "auto"]
MODES: tuple[Mode, ...] = ("per-message", "batched", "auto")


def resolve_mode(mode: Mode, scenario: Scenario) -> Literal["per-message", "batched"]:
    """``auto`` as the mode it stands for, for this scenario; checked before anything is allocated.

    Raises :class:`ScenarioError` for a mode that is not one of
    :data:`MODES`, and for a run the mode cannot hold: per-message mode
    keeps every message as Python objects, so it refuses runs far beyond
    what batched mode takes (:func:`~om_actors.limits.per_message_problem`),
    batched mode stores a general's id in one byte, and an algorithm that is
    not :attr:`~om_actors.algorithm.Algorithm.batchable` has no batched
    mode at all.  ``auto`` batches only a batchable algorithm's runs of more
    than :data:`BATCHED_ABOVE` messages, or of more than per-message mode
    may hold under a lowered limit, on at most 255 generals.
    """
    if mode not in MODES:
        allowed = ", ".join(repr(m) for m in MODES)
        raise ScenarioError([Problem(f"mode: {mode!r} is not a mode: use one of {allowed}")], scenario.name)
    rules = scenario.rules
    instances = len(scenario.setups)
    refuse_over_the_limit(scenario)
    # The most it can send, whatever its traitors do: bounded just above.
    total = rules.message_bound(scenario.setup, len(scenario.traitors)) * instances
    resolved: Literal["per-message", "batched"]
    if mode == "auto":
        fits = rules.batchable and scenario.generals <= MAX_BATCHED_GENERALS
        big = total > BATCHED_ABOVE or per_message_problem(total) is not None
        resolved = "batched" if big and fits else "per-message"
    else:
        resolved = mode
    if resolved == "per-message":
        problem = per_message_problem(total, generals=scenario.generals, batchable=rules.batchable)
    else:
        problem = _batched_problem(scenario)
    if problem is not None:
        raise ScenarioError([Problem(f"mode: {problem}")], scenario.name)
    return resolved


def _batched_problem(scenario: Scenario) -> str | None:
    if not scenario.rules.batchable:
        return (
            f"{scenario.rules.title} has no batched mode: only an algorithm whose messages grow "
            "exponentially needs it; use per-message or auto"
        )
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


def with_algorithm(scenario: Scenario, algorithm: str | None) -> Scenario:
    """``scenario`` run by ``algorithm`` instead of the algorithm it names; itself when ``None``.

    The scenario is checked again for the algorithm it now names, so one
    that algorithm cannot run -- SM(m) on ``generals <= m + 1``, a strategy
    that is another algorithm's -- is a :class:`ScenarioError` here.
    """
    if algorithm is None or algorithm == scenario.algorithm:
        return scenario
    return attrs.evolve(scenario, algorithm=algorithm)


async def simulate(
    scenario: Scenario,
    *,
    log: LogTarget | None = None,
    on_event: EventHandler | None = None,
    on_progress: ProgressHandler | None = None,
    mode: Mode = "auto",
    log_messages: bool = False,
    algorithm: str | None = None,
) -> Result:
    """Run ``scenario`` in the current trio run and return its outcome.

    ``log`` is a file name, a binary file, or a structlog logger of the
    application's.  ``on_event`` sees every event in log order, as soon as
    its round ends.  ``on_progress(round, sent)`` is told how many messages
    have been sent so far, every few thousand messages, for progress bars:
    events come only at the end of a round, and one round can hold almost
    all of a run.

    ``mode`` is ``"per-message"`` (every message judged on its own, and its
    own event), ``"batched"`` (one batch per sender, receiver and round, and
    a compact EIG store; only round summaries are logged unless
    ``log_messages``) or ``"auto"``, which batches above
    :data:`BATCHED_ABOVE` messages.  Both give the same decisions, verdicts
    and counts.  Only OM(m) has a batched mode.

    ``algorithm`` names a registered algorithm to run the scenario with,
    instead of the one its ``algorithm`` key names (see
    :func:`with_algorithm`).

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
    scenario = with_algorithm(scenario, algorithm)
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
    algorithm: str | None = None,
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
            algorithm=algorithm,
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
        """The run, its events into ``send``; the channel is closed however it ends, without a checkpoint.

        Closing it ends the reader's ``async for``, and a reader that then
        leaves the block cancels this task: had the close been a
        checkpoint, that cancellation would take the place of the error
        that ended the run.
        """
        try:
            with open_log(log) as writer:
                handlers = [writer] if writer is not None else []
                run = _Run(self.scenario, strategies, handlers, None, stream=send, mode=mode)
                self._result = await run.run()
        finally:
            send.close()
        self._done.set()


@asynccontextmanager
async def open_simulation(
    scenario: Scenario, *, log: LogTarget | None = None, mode: Mode = "auto", algorithm: str | None = None
) -> AsyncIterator[Simulation]:
    """Run ``scenario`` in the background and watch it live::

        async with open_simulation(scenario) as sim:
            async for event in sim.events():
                ...
            result = await sim.result()

    Leaving the block before the run has finished cancels it.  An error in
    the run comes out of the ``async with`` as itself, not inside an
    ExceptionGroup.  The algorithm, the mode and the strategies are checked
    and built on entry, as :func:`simulate` does; :attr:`Simulation.scenario`
    is the scenario as it runs.
    """
    _require_trio("open_simulation")
    scenario = with_algorithm(scenario, algorithm)
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


@contextmanager
def collector_spared() -> Iterator[None]:
    """Keep Python's cycle collector off every object that existed before the run, until it ends.

    A per-message run makes hundreds of thousands of objects that live until
    it ends, so the collector runs its full pass several times, and each
    pass would walk every module, function and class loaded before the run
    as well -- a tenth of a thirteen-generals run.  Frozen objects are only
    skipped, never leaked: they are handed back when the run ends.  The
    youngest generation is collected every 50,000 new objects rather than
    every 700, which saves another 6% of such a run and keeps at most a few
    megabytes of cyclic garbage waiting.

    Both settings are the process's, so runs that overlap -- in one trio
    run, or on several threads -- share them: the first to start makes
    them and the last to end puts them back as they were.  An application
    that froze objects of its own is left frozen, and then nothing is.
    """
    _COLLECTOR.enter()
    try:
        yield
    finally:
        _COLLECTOR.leave()


class _CollectorSettings:
    """The collector's settings while runs are under way, and what to put back after the last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0
        self.thresholds = gc.get_threshold()
        self.froze = False

    def enter(self) -> None:
        with self.lock:
            if not self.runs:
                self.thresholds = gc.get_threshold()
                gc.set_threshold(RUN_GC_THRESHOLD, *self.thresholds[1:])
                self.froze = gc.get_freeze_count() == 0
                if self.froze:
                    gc.freeze()
            self.runs += 1

    def leave(self) -> None:
        with self.lock:
            self.runs -= 1
            if not self.runs:
                if self.froze:
                    gc.unfreeze()
                gc.set_threshold(*self.thresholds)


RUN_GC_THRESHOLD = 50_000
"""New objects between collections of the youngest generation, during a run."""

_COLLECTOR = _CollectorSettings()


def _log_alone(handlers: Sequence[EventHandler], stream: object) -> LogWriter | None:
    """The log writer among ``handlers``, if it is the only listener a run has."""
    if stream is None and len(handlers) == 1 and isinstance(handlers[0], LogWriter):
        return handlers[0]
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


class _Run:
    """One in-memory run: the generals' tasks, their inboxes, and the run's books."""

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
        self.books = Accounting(scenario)
        self.pending: list[Event] = []
        """The round's refusals and strategy failures (and in batched mode, its logged messages)."""
        self.listened = bool(handlers) or stream is not None
        self.log_alone = _log_alone(handlers, stream)
        """The run's log, when nobody else listens: it may take a round at once."""
        self.delivered: list[tuple[int, Delivery]] = []
        """The round's deliveries with their receivers, kept for its events when anyone listens."""
        self.outboxes = [
            [defaultdict[int, list[object]](list) for _ in scenario.setups] for _ in range(scenario.generals)
        ]
        self.posted = [0]
        """Messages posted since the last round's were booked: what progress reports count."""
        channels = [trio.open_memory_channel[Command](math.inf) for _ in range(scenario.generals)]
        self.inboxes = [send for send, _ in channels]
        self.receivers = [receive for _, receive in channels]
        self.acks_in, self.acks_out = trio.open_memory_channel[Ack](math.inf)
        self.actors: Sequence[GeneralActor] = self._enlist()

    def _enlist(self) -> list[GeneralActor]:
        scenario, rules = self.scenario, self.scenario.rules
        setups = scenario.setups
        orders = [instance.order for instance in scenario.effective_instances]
        tagged = self.books.tagged
        if self.mode == "per-message":
            return [
                GeneralActor(
                    GeneralDriver(
                        [rules.general(setup, g, order) for setup, order in zip(setups, orders)],
                        strategy=self.strategies.get(g),
                        seed=scenario.seed,
                        tagged=tagged,
                    ),
                    post=self._poster(g),
                    record=self.pending.append,
                )
                for g in range(scenario.generals)
            ]
        from .eig import BatchedDriver, EigGeneral, EigLayout  # numpy, only for batched runs

        layouts = [EigLayout(setup, scenario.rounds) for setup in setups]
        self.batched: list[list[EigGeneral]] = [
            [
                EigGeneral(rules, setup, g, order, layout)
                for setup, order, layout in zip(setups, orders, layouts)
            ]
            for g in range(scenario.generals)
        ]
        return [
            BatchedGeneralActor(
                BatchedDriver(cores, strategy=self.strategies.get(g), seed=scenario.seed, tagged=tagged),
                post=self._batch_poster(g),
                record=self.pending.append,
            )
            for g, cores in enumerate(self.batched)
        ]

    def _poster(self, sender: int) -> Post:
        """Where general ``sender``'s messages go: into its outbox, one list per instance and receiver.

        They reach their receivers when every general has sent its round
        (:meth:`_dispatch`), one :class:`Delivery` per sender and receiver,
        so round five of thirteen generals is 132 trips through a channel,
        not 95,040.  Posting makes no event: the round's are made from its
        deliveries when it ends, and only if anyone listens.
        """
        boxes, on_progress, posted = self.outboxes[sender], self.on_progress, self.posted

        def post(round: int, instance: int, receiver: int, payload: object) -> None:
            boxes[instance][receiver].append(payload)
            if on_progress is not None:
                posted[0] += 1
                if not posted[0] % PROGRESS_EVERY:
                    on_progress(round, self.books.messages + posted[0])

        return post

    def _dispatch(self, round: int) -> None:
        """Hand every general what was posted to it in ``round``, and book it: the round's sending is over.

        In sender order, and each sender's messages in the order it sent
        them, which is all a receiver may rely on: the same run delivers
        the same way whatever order trio ran the senders in.
        """
        keep = self.delivered.append if self.listened else None
        for sender, boxes in enumerate(self.outboxes):
            for instance, box in enumerate(boxes):
                if box:
                    for receiver, payloads in box.items():
                        delivery = Delivery(round, sender, instance, tuple(payloads))
                        self.inboxes[receiver].send_nowait(delivery)
                        if keep is not None:
                            keep((receiver, delivery))
                    self.books.sent(round, instance, sender, sum(map(len, box.values())))
                    box.clear()
        self.posted[0] = 0

    def _events(self, round: int, late: tuple[int, ...]) -> list[Event]:
        """The round's events in log order, for whoever listens; what the log alone needs, written at once.

        A log that is the run's only listener gets a plain round -- messages
        alone, in one instance, on well-formed paths -- straight from the
        deliveries, as columns (:meth:`~om_actors.log.LogWriter.write_messages`),
        and only ``round.end`` as an event.  Every other round, and every
        round that anyone else hears, has a :class:`MessageSent` per message.
        """
        delivered, self.delivered = self.delivered, []
        if self.log_alone is not None and not self.pending and not self.books.tagged:
            columns = self.books.order.plain_batches([(r, d.sender, d.payloads) for r, d in delivered])
            if columns is not None:
                self.log_alone.write_messages(round, *columns)
                return [self.books.tally_round(round, [], late=late)]
        tag = self.books.tag
        messages = [
            MessageSent(round, d.sender, receiver, payload, instance=tag(d.instance))
            for receiver, d in delivered
            for payload in d.payloads
        ]
        return self.books.close_round(round, [*messages, *self.pending], late=late)

    def _batch_poster(self, sender: int) -> Post:
        """:meth:`_poster` for batched mode: a batch counts as its messages, logged only if asked."""
        from .eig import RoundBatch

        books, inboxes = self.books, self.inboxes

        def post(round: int, instance: int, receiver: int, payload: object) -> None:
            count = payload.count if type(payload) is RoundBatch else 1
            books.sent(round, instance, sender, count)
            if self.log_messages:
                message = MessageSent(round, sender, receiver, payload, instance=books.tag(instance))
                self.pending.extend(self._itemized(message))
            inboxes[receiver].send_nowait(Delivery(round, sender, instance, (payload,)))
            if self.on_progress is not None:
                self.on_progress(round, books.messages)

        return post

    def _itemized(self, message: MessageSent) -> Iterator[MessageSent]:
        """A batched message's events one by one, for ``log_messages``: slow, and as big as the run."""
        from .eig import RoundBatch

        batch = message.payload
        if type(batch) is not RoundBatch:
            yield message
            return
        round, sender, receiver = message.round, message.sender, message.receiver
        core = self.batched[sender][message.instance or 0]
        for payload in core.itemized(round, receiver, batch):
            yield MessageSent(round, sender, receiver, payload, instance=message.instance)

    async def publish(self, events: Iterable[Event]) -> None:
        """Hand ``events`` to every handler, each event to all of them in turn, then to the stream.

        A round of thirteen generals is 95,040 events: they are handed over
        in one call, not a coroutine each, unless a stream must await room.
        """
        handlers, stream = self.handlers, self.stream
        if self.log_alone is not None:  # nobody to interleave it with
            self.log_alone.write_all(list(events))
            return
        for event in events:
            for handler in handlers:
                handler(event)
            if stream is not None:
                await stream.send(event)

    async def run(self) -> Result:
        scenario = self.scenario
        if self.mode == "batched":
            await self.publish([self.books.started(mode="batched", messages_logged=self.log_messages)])
        else:
            await self.publish([self.books.started()])
        decisions: dict[int, tuple[str, ...]] | None = None
        with unwrapped(), collector_spared():
            async with trio.open_nursery() as nursery:
                for actor, receiver in zip(self.actors, self.receivers):
                    nursery.start_soon(actor.run, receiver, self.acks_in)
                for round in range(1, scenario.rounds + 1):
                    await self._round(round)
                decisions = await self._decide()
                for inbox in self.inboxes:
                    inbox.close()
        if decisions is None:  # a general's task raised trio.Cancelled itself, and the nursery took it
            raise OmActorsError(
                "the run was cancelled from inside before the generals decided: "
                "a strategy raised trio.Cancelled, which only trio may raise"
            )
        return await self._conclude(decisions)

    async def _round(self, round: int) -> None:
        deadline = trio.current_time() + self.scenario.round_timeout
        acks = await self._barrier(lambda: SendRound(round, deadline))
        self._dispatch(round)
        late = tuple(sorted(ack.general for ack in acks if ack.timed_out))
        await self._barrier(lambda: Flush(round))
        if self.listened:
            events = self._events(round, late)
        else:  # nobody to tell: the counts, without ordering the round
            events = [self.books.tally_round(round, self.pending, late=late)]
        self.pending.clear()
        if self.on_progress is not None:
            self.on_progress(round, self.books.messages)
        await self.publish(events)

    async def _barrier(self, command: Callable[[], Command]) -> list[Ack]:
        for inbox in self.inboxes:
            inbox.send_nowait(command())
        return [await self.acks_out.receive() for _ in self.inboxes]

    async def _decide(self) -> dict[int, tuple[str, ...]]:
        acks = sorted(await self._barrier(Decide), key=lambda ack: ack.general)
        for ack in acks:
            self.books.add_stats(ack.stats)
        return {ack.general: ack.decisions for ack in acks}

    async def _conclude(self, decisions: dict[int, tuple[str, ...]]) -> Result:
        for actor in self.actors:
            self.books.took(actor.id, actor.received)
        events, result = self.books.conclude(decisions)
        await self.publish(events)
        return result
