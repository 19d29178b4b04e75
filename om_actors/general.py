"""A general as a trio task: the protocol core, wired to an inbox.

The actor owns no algorithm.  It feeds what arrives in its inbox to its
:class:`~om_actors.protocol.General`, turns that general's outbox into
messages when the orchestrator opens a round, and lets a traitor's strategy
rewrite each one on the way out.  It never names itself as the sender: the
``post`` function the runtime hands it does that, which is what stops a
traitor from speaking for anyone else.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable

import attrs
import trio

from .events import Event, MessageRejected, StrategyFailed
from .protocol import General, Outgoing
from .strategies import Forgery, Strategy


@attrs.frozen
class Envelope:
    """A message in transit, stamped by the runtime with its true sender and round."""

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
    """Report the decision; nothing more will arrive."""


Command = Envelope | SendRound | Flush | Decide


@attrs.frozen
class Ack:
    """A general's answer to a command, on the orchestrator's shared channel."""

    general: int
    timed_out: bool = False
    decision: str | None = None


class GeneralActor:
    """Runs one general until its inbox closes.

    A loyal general sends without awaiting anything, so its round costs no
    scheduling; a strategy may be ``async``, and then the round's deadline is
    what bounds it.
    """

    def __init__(
        self,
        state: General,
        *,
        strategy: Strategy | None,
        seed: int,
        post: Callable[[int, int, object, object], None],
        # post(round, receiver, path, value), already bound to this general as sender
        record: Callable[[Event], None],
    ) -> None:
        self.state = state
        self.strategy = strategy
        self.seed = seed
        self.received = 0
        self._post = post
        self._record = record

    @property
    def id(self) -> int:
        return self.state.me

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
            acks.send_nowait(Ack(self.id, decision=self.state.decide()))

    def _deliver(self, envelope: Envelope) -> None:
        self.received += 1
        rejection = self.state.receive(
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
                )
            )

    async def _send(self, round: int) -> None:
        for outgoing in self.state.outbox(round):
            if self.strategy is None:
                self._post(round, outgoing.receiver, outgoing.path, outgoing.value)
            else:
                await self._send_as_traitor(round, outgoing, self.strategy)

    async def _send_as_traitor(self, round: int, outgoing: Outgoing, strategy: Strategy) -> None:
        rng = random.Random(f"{self.seed}/{self.id}/{outgoing.path}/{outgoing.receiver}")
        try:
            choice = strategy.choose(round, outgoing.path, outgoing.receiver, outgoing.value, rng)
            if inspect.isawaitable(choice):
                choice = await choice
        except Exception as exc:
            self._record(StrategyFailed(round, self.id, outgoing.path, outgoing.receiver, repr(exc)))
            return
        if choice is None:
            return
        if isinstance(choice, Forgery):
            self._post(round, outgoing.receiver, choice.path, choice.value)
        else:
            self._post(round, outgoing.receiver, outgoing.path, choice)
