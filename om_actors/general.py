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

import inspect
import random
from collections.abc import Callable, Sequence

import attrs
import trio

from .events import Event, MessageRejected, StrategyFailed
from .protocol import General, Outgoing
from .strategies import Forgery, Strategy, message_rng


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


Command = Envelope | SendRound | Flush | Decide


@attrs.frozen
class Ack:
    """A general's answer to a command, on the orchestrator's shared channel."""

    general: int
    timed_out: bool = False
    decisions: tuple[str, ...] = ()


Post = Callable[[int, int, int, object, object], None]
"""``post(instance, round, receiver, path, value)``, bound to one general as the sender."""


class GeneralActor:
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
        self.states = states
        self.strategy = strategy
        self.seed = seed
        self.received = 0
        self._post = post
        self._record = record
        self._tagged = tagged

    @property
    def id(self) -> int:
        return self.states[0].me

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
        else:
            acks.send_nowait(Ack(self.id, decisions=tuple(state.decide() for state in self.states)))

    def _tag(self, instance: int) -> int | None:
        return instance if self._tagged else None

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
        try:
            choice = strategy.choose(
                round, outgoing.path, outgoing.receiver, outgoing.value, self._rng(instance, outgoing)
            )
            if inspect.isawaitable(choice):
                choice = await choice
        except Exception as exc:
            failure = StrategyFailed(
                round, self.id, outgoing.path, outgoing.receiver, repr(exc), instance=self._tag(instance)
            )
            self._record(failure)
            return
        if choice is None:
            return
        if isinstance(choice, Forgery):
            self._post(instance, round, outgoing.receiver, choice.path, choice.value)
        else:
            self._post(instance, round, outgoing.receiver, outgoing.path, choice)
