"""A general as a trio task: a driver, wired to an inbox.

The actor owns no algorithm and no pipeline.  Its
:class:`~om_actors.driver.GeneralDriver` -- one core per consensus
instance, since the same generals can run several at once -- says what to
send when the orchestrator opens a round, asks a traitor's strategy what to
say instead, and judges what arrives; the actor only moves items between
the driver, its inbox and the runtime.  It never names itself as the
sender: the ``post`` function the runtime hands it does that, which is what
stops a traitor from speaking for anyone else.

In batched mode the driver is a :class:`~om_actors.eig.BatchedDriver`, whose
messages are mostly whole :class:`~om_actors.eig.RoundBatch` payloads; the
actor moves those the same way, and tells the driver when a round's
messages have all arrived.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

import attrs
import trio

from .driver import Awaiting, GeneralDriver, Send
from .events import Event, StrategyFailed

if TYPE_CHECKING:
    from .eig import BatchedDriver


@attrs.frozen
class SendRound:
    """Send everything owed for ``round``; stop at ``deadline`` whatever is left."""

    round: int
    deadline: float


@attrs.frozen
class Flush:
    """Acknowledge once everything queued before this has been delivered: ``round`` is over."""

    round: int


@attrs.frozen
class Decide:
    """Report the decisions; nothing more will arrive."""


@attrs.frozen
class Delivery:
    """What ``sender`` said to a general in ``round`` of ``instance``: its payloads, in the order sent.

    The runtime stamps the sender and round, never the general.  One item
    carries all of a sender's messages to one receiver in a round: a
    lieutenant of thirteen generals takes 9,032 messages in round five, from
    eleven senders, and a trip through the channel for each would cost more
    than judging it.
    """

    round: int
    sender: int
    instance: int
    payloads: tuple[object, ...]


Command = Delivery | SendRound | Flush | Decide
"""What an inbox carries: the messages other generals sent, and the orchestrator's commands."""


@attrs.frozen
class Ack:
    """A general's answer to a command, on the orchestrator's shared channel.

    The answer to :class:`Decide` carries the decision in every instance and
    what the general's cores counted (``stats``), summed over instances.
    """

    general: int
    timed_out: bool = False
    decisions: tuple[str, ...] = ()
    stats: Mapping[str, int] = attrs.field(factory=dict)


Post = Callable[[int, int, int, object], None]
"""The runtime's delivery of a message -- ``(round, instance, receiver, payload)`` -- bound to one
general as the sender."""


class GeneralActor:
    """Runs one general until its inbox closes.

    A loyal general sends without awaiting anything, so its round costs no
    scheduling; a strategy may be ``async``, and then the round's deadline is
    what bounds it.
    """

    def __init__(self, driver: GeneralDriver, *, post: Post, record: Callable[[Event], None]) -> None:
        self.driver = driver
        driver.cancellation = (trio.Cancelled,)  # a round timeout's, passed on
        self.id = driver.me
        self._post = post
        self._record = record

    @property
    def received(self) -> int:
        """Messages that reached this general, refused ones included."""
        return self.driver.received

    async def run(
        self,
        inbox: trio.MemoryReceiveChannel[Command],
        acks: trio.MemorySendChannel[Ack],
    ) -> None:
        """Handle commands until the orchestrator closes the inbox.

        Whatever is already queued is drained without yielding: a trip
        through the scheduler for each delivery would cost more than most
        of them.
        """
        deliver_all, record = self.driver.deliver_all, self._record
        while True:
            try:
                command = await inbox.receive()
                while True:
                    if type(command) is Delivery:  # the common case, without a coroutine
                        got = command
                        for refused in deliver_all(got.instance, got.sender, got.round, got.payloads):
                            record(refused)
                    else:
                        await self._handle(cast(SendRound | Flush | Decide, command), acks)
                    command = inbox.receive_nowait()
            except trio.WouldBlock:
                continue
            except trio.EndOfChannel:
                return

    async def _handle(self, command: SendRound | Flush | Decide, acks: trio.MemorySendChannel[Ack]) -> None:
        if isinstance(command, SendRound):
            with trio.move_on_at(command.deadline) as scope:
                await self._send(command.round)
            acks.send_nowait(Ack(self.id, timed_out=scope.cancelled_caught))
        elif isinstance(command, Flush):
            self._flush(command.round)
            acks.send_nowait(Ack(self.id))
        elif isinstance(command, Decide):
            stats: Counter[str] = Counter()
            for core in self.driver.cores:
                stats.update(core.stats)
            acks.send_nowait(Ack(self.id, decisions=self.driver.decide(), stats=dict(stats)))

    async def _send(self, round: int) -> None:
        post = self._post
        if self.driver.strategy is None:  # loyal: only sends, and nothing to await
            for instance, sends in enumerate(self.driver.sends(round)):
                for receiver, payload in sends:
                    post(round, instance, receiver, payload)
            return
        for item in self.driver.lies(round):
            if type(item) is tuple:
                post(round, *item)
                continue
            sent: object = item
            if isinstance(item, Awaiting):
                sent = self.driver.answer(item.ask, await self.driver.told_later(item.ask, item.pending))
            if isinstance(sent, Send):
                post(round, sent.instance, sent.receiver, sent.payload)
            elif isinstance(sent, StrategyFailed):
                self._record(sent)

    def _flush(self, round: int) -> None:
        """Every message of ``round`` has arrived: nothing to do for a core that takes them one by one."""


class BatchedGeneralActor(GeneralActor):
    """A general in batched mode: the same commands, but a round's level is built when it is flushed."""

    def __init__(self, driver: BatchedDriver, *, post: Post, record: Callable[[Event], None]) -> None:
        super().__init__(driver, post=post, record=record)
        self.batched = driver

    def _flush(self, round: int) -> None:
        self.batched.close(round)
