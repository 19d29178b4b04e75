"""A general as a trio task: the protocol core, wired to an inbox.

The actor owns no algorithm.  It feeds what arrives in its inbox to its
:class:`~om_actors.protocol.General` -- one per consensus instance, since the
same generals can run several at once -- turns their outboxes into messages
when the orchestrator opens a round, and lets a traitor's strategy rewrite
each one on the way out.  It never names itself as the sender: the
``post`` function the runtime hands it does that, which is what stops a
traitor from speaking for anyone else.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Union

import attrs
import numpy as np
import trio

from .eig import NO_VOTE, EigLayout, EigStore, stack_rows
from .events import Event, MessageRejected, StrategyFailed
from .algorithm import Outgoing
from .oral import OralGeneral as General
from .oral import rejection_reason
from .strategies import Batch as BatchValues
from .strategies import BatchStrategy, Strategy, StrategyRaised, consult, message_rng


@attrs.frozen
class Envelope:
    """A message in transit, stamped by the runtime with its true sender and round."""

    instance: int
    sender: int
    round: int
    path: object
    value: object


@attrs.frozen
class SendRound:
    """Send everything owed for ``round``; stop at ``deadline`` whatever is left."""

    round: int
    deadline: float


@attrs.frozen
class Flush:
    """Acknowledge once everything queued before this has been delivered."""

    round: int


@attrs.frozen
class Decide:
    """Report the decisions; nothing more will arrive."""


Command = Union[Envelope, "Batch", SendRound, Flush, Decide]
"""What an inbox carries: messages (one at a time, or batched) and the orchestrator's commands."""


@attrs.frozen
class Ack:
    """A general's answer to a command, on the orchestrator's shared channel."""

    general: int
    timed_out: bool = False
    decisions: tuple[str, ...] = ()


Post = Callable[[int, int, int, object, object], None]
"""``post(instance, round, receiver, path, value)``, bound to one general as the sender."""


class _Actor:
    """What every kind of general actor has: an id, maybe a strategy, and a way to report."""

    def __init__(
        self, me: int, *, strategy: Strategy | None, seed: int, record: Callable[[Event], None], tagged: bool
    ) -> None:
        self.id = me
        self.strategy = strategy
        self.seed = seed
        self.received = 0
        self._record = record
        self._tagged = tagged

    def _tag(self, instance: int) -> int | None:
        """The instance as events carry it: only when a run has several."""
        return instance if self._tagged else None


class GeneralActor(_Actor):
    """Runs one general until its inbox closes.

    A loyal general sends without awaiting anything, so its round costs no
    scheduling; a strategy may be ``async``, and then the round's deadline is
    what bounds it.
    """

    def __init__(
        self,
        states: Sequence[General],
        *,
        strategy: Strategy | None,
        seed: int,
        post: Post,
        record: Callable[[Event], None],
        tagged: bool,
    ) -> None:
        super().__init__(states[0].me, strategy=strategy, seed=seed, record=record, tagged=tagged)
        self.states = states
        self._post = post

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Command],
        acks: trio.MemorySendChannel[Ack],
    ) -> None:
        """Handle commands until the orchestrator closes the inbox.

        Whatever is already queued is drained without yielding: a lieutenant
        of thirteen generals gets 9,032 messages, and a trip through the
        scheduler for each would cost more than delivering them.
        """
        while True:
            try:
                command = await inbox.receive()
                while True:
                    await self._handle(command, acks)
                    command = inbox.receive_nowait()
            except trio.WouldBlock:
                continue
            except trio.EndOfChannel:
                return

    async def _handle(self, command: Command, acks: trio.MemorySendChannel[Ack]) -> None:
        if isinstance(command, Envelope):
            self._deliver(command)
        elif isinstance(command, SendRound):
            with trio.move_on_at(command.deadline) as scope:
                await self._send(command.round)
            acks.send_nowait(Ack(self.id, timed_out=scope.cancelled_caught))
        elif isinstance(command, Flush):
            acks.send_nowait(Ack(self.id))
        elif isinstance(command, Decide):
            acks.send_nowait(Ack(self.id, decisions=tuple(state.decide() for state in self.states)))

    def _deliver(self, envelope: Envelope) -> None:
        self.received += 1
        rejection = self.states[envelope.instance].receive(
            sender=envelope.sender, round=envelope.round, path=envelope.path, value=envelope.value
        )
        if rejection is not None:
            self._record(
                MessageRejected(
                    envelope.round,
                    envelope.sender,
                    self.id,
                    envelope.path,
                    envelope.value,
                    rejection.reason,
                    instance=self._tag(envelope.instance),
                )
            )

    async def _send(self, round: int) -> None:
        for instance, state in enumerate(self.states):
            for outgoing in state.outbox(round):
                if self.strategy is None:
                    self._post(instance, round, outgoing.receiver, outgoing.path, outgoing.value)
                else:
                    await self._send_as_traitor(instance, round, outgoing, self.strategy)

    def _rng(self, instance: int, outgoing: Outgoing) -> random.Random:
        return message_rng(self.seed, self.id, outgoing.path, outgoing.receiver, self._tag(instance))

    async def _send_as_traitor(
        self, instance: int, round: int, outgoing: Outgoing, strategy: Strategy
    ) -> None:
        rng = self._rng(instance, outgoing)
        try:
            told = await consult(strategy, round, outgoing.path, outgoing.receiver, outgoing.value, rng)
        except StrategyRaised as raised:
            error, tag = str(raised), self._tag(instance)
            self._record(
                StrategyFailed(round, self.id, outgoing.path, outgoing.receiver, error, instance=tag)
            )
            return
        if told is not None:
            self._post(instance, round, outgoing.receiver, *told)


# --- batched mode --------------------------------------------------------------


@attrs.frozen
class Batch:
    """All of one round's messages from one sender to one receiver, in batched mode.

    ``row`` gives, per path of the previous round, the value index sent along
    that path extended by the sender (the sender's own held array when it is
    loyal, shared by every receiver, never copied).  ``messages`` carries
    messages one at a time, ``(path, value)``, from a strategy that has no
    batch form; the receiver checks each with the protocol's path rules.
    """

    instance: int
    sender: int
    round: int
    row: BatchValues | None
    messages: tuple[tuple[object, object], ...]
    count: int


BatchPost = Callable[[Batch, int], None]
"""``post(batch, receiver)``: the runtime's delivery of a batch, bound to its sender."""


class BatchedGeneralActor(_Actor):
    """A general whose values live in a compact EIG store, one per instance.

    It answers the same commands as :class:`GeneralActor`, but a round's
    messages to each receiver travel as one :class:`Batch`, and it takes a
    level of its store in one go when the orchestrator flushes the round.
    """

    def __init__(
        self,
        me: int,
        layouts: Sequence[EigLayout],
        orders: Sequence[str],
        *,
        strategy: Strategy | None,
        seed: int,
        post: BatchPost,
        record: Callable[[Event], None],
        tagged: bool,
    ) -> None:
        super().__init__(me, strategy=strategy, seed=seed, record=record, tagged=tagged)
        self.layouts = layouts
        self.orders = orders
        self.stores = [EigStore(layout, me) for layout in layouts]
        self._post = post
        self._inbox: dict[int, dict[int, Batch]] = {}

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Command],
        acks: trio.MemorySendChannel[Ack],
    ) -> None:
        async for command in inbox:
            if isinstance(command, Batch):
                self.received += command.count
                self._inbox.setdefault(command.instance, {})[command.sender] = command
            elif isinstance(command, SendRound):
                with trio.move_on_at(command.deadline) as scope:
                    for instance in range(len(self.layouts)):
                        await self._send(instance, command.round)
                acks.send_nowait(Ack(self.id, timed_out=scope.cancelled_caught))
            elif isinstance(command, Flush):
                for instance in range(len(self.layouts)):
                    self._take(instance, command.round)
                acks.send_nowait(Ack(self.id))
            elif isinstance(command, Decide):
                acks.send_nowait(
                    Ack(self.id, decisions=tuple(self._decide(i) for i in range(len(self.layouts))))
                )

    # sending

    def _receivers(self, instance: int) -> list[int]:
        setup = self.layouts[instance].setup
        return [r for r in setup.lieutenants if r != self.id]

    async def _send(self, instance: int, round: int) -> None:
        layout = self.layouts[instance]
        setup = layout.setup
        if (round == 1) != (self.id == setup.commander):
            return
        if round == 1:
            held: BatchValues = np.full(1, setup.values.index(self.orders[instance]), dtype=np.uint8)
        else:
            held = self.stores[instance].held(round - 1)
        for receiver in self._receivers(instance):
            full = layout.messages_between(round, self.id, receiver)
            if self.strategy is None:
                self._post(Batch(instance, self.id, round, held, (), full), receiver)
            elif isinstance(self.strategy, BatchStrategy):
                lie = self.strategy.choose_batch(round, receiver, held, setup.values)
                self._post(Batch(instance, self.id, round, lie, (), full if lie is not None else 0), receiver)
            else:
                messages = await self._one_by_one(instance, round, receiver, held, self.strategy)
                self._post(Batch(instance, self.id, round, None, messages, len(messages)), receiver)

    async def _one_by_one(
        self, instance: int, round: int, receiver: int, held: BatchValues, strategy: Strategy
    ) -> tuple[tuple[object, object], ...]:
        """A strategy without a batch form, asked message by message, in path order."""
        layout = self.layouts[instance]
        values = layout.setup.values
        sent: list[tuple[object, object]] = []
        for rank in range(len(held)):
            path = layout.path(round - 1, rank) if round > 1 else ()
            relayed = (*path, self.id)
            if held[rank] == NO_VOTE or receiver in relayed:
                continue
            tag = self._tag(instance)
            rng = message_rng(self.seed, self.id, relayed, receiver, tag)
            try:
                told = await consult(strategy, round, relayed, receiver, values[held[rank]], rng)
            except StrategyRaised as raised:
                self._record(StrategyFailed(round, self.id, relayed, receiver, str(raised), instance=tag))
                continue
            if told is not None:
                sent.append(told)
        return tuple(sent)

    # receiving

    def _take(self, instance: int, round: int) -> None:
        """Assemble this round's level of the store from every sender's batch."""
        layout = self.layouts[instance]
        store = self.stores[instance]
        batches = self._inbox.pop(instance, {})
        if self.id == layout.setup.commander:
            return
        if round == 1:
            first = batches.get(layout.setup.commander)
            row = first.row if first is not None else None
            store.receive_first(int(row[0]) if row is not None else store.default)
        else:
            size = layout.level_size(round - 1)
            rows = [batches[g].row if g in batches else None for g in range(layout.setup.generals)]
            store.receive_level(round, stack_rows(rows, size, store.default))
        for sender in sorted(batches):
            self._take_one_by_one(instance, round, batches[sender])

    def _take_one_by_one(self, instance: int, round: int, batch: Batch) -> None:
        layout = self.layouts[instance]
        setup = layout.setup
        seen: set[object] = set()
        tag = self._tag(instance)
        for path, value in batch.messages:
            reason = rejection_reason(
                setup, receiver=self.id, sender=batch.sender, round=round, path=path, value=value
            )
            if reason is None and path in seen:
                reason = "duplicate message"
            if reason is not None:
                self._record(MessageRejected(round, batch.sender, self.id, path, value, reason, instance=tag))
                continue
            assert isinstance(path, tuple)
            assert isinstance(value, str)
            seen.add(path)
            self.stores[instance].overwrite(round, layout.rank(path), setup.values.index(value))

    def _decide(self, instance: int) -> str:
        setup = self.layouts[instance].setup
        if self.id == setup.commander:
            return self.orders[instance]
        return setup.values[self.stores[instance].decide()]
