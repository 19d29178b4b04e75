"""What happens during a run, as small frozen records.

``instance`` is set only when a scenario runs several consensus instances at
once; a single-instance run leaves it ``None``, and the log leaves it out.

The orchestrator emits these in a fixed order -- by round, then path, then
receiver -- never in the order trio happened to schedule the generals, so
one scenario and seed always give the same sequence.  The log, the CLI and
an embedding application all consume the same events.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar, Literal

import attrs


@attrs.frozen
class Kind:
    """What a logged field holds, in the words the log reader's errors use.

    Attached to a field's type with ``Annotated``.  The reader derives each
    event's schema from these classes -- a field's type says what JSON it
    must be, ``Kind`` words it and bounds it -- so a new event or field
    needs no second table.  A payload class may use it too.
    """

    text: str
    minimum: int | None = None


Round = Annotated[int, Kind("a round number", minimum=0)]
GeneralId = Annotated[int, Kind("a general id")]
Count = Annotated[int, Kind("a message count", minimum=0)]
GeneralIds = Annotated[tuple[int, ...], Kind("a list of general ids")]
NotDelivered = Annotated[Literal[False], Kind("false (a message that arrived has no 'delivered')")]

SCHEMA = 2
"""Version of the log format; bumped whenever an event's meaning changes.

2: the scenario names its ``algorithm``; a message's fields are its
algorithm's payload (``path`` and ``value`` for OM, ``value``, ``chain`` and
``signatures`` for SM); ``run.start`` carries what the algorithm publishes
(``public``); rejection reasons are fixed texts, one per rule."""


@attrs.frozen
class RunStarted:
    """The first line of every log: enough to run the same thing again.

    ``mode`` is ``"batched"`` for a batched run, with ``messages_logged``
    saying whether its messages are in the log; both are left out of a
    per-message run's log, where every message always is.
    """

    name: ClassVar[str] = "run.start"
    mode: Literal["batched"] | None = attrs.field(default=None, kw_only=True)
    messages_logged: bool | None = attrs.field(default=None, kw_only=True)
    schema: Annotated[int, Kind("a schema number", minimum=0)]
    version: Annotated[str, Kind("a version string")]
    seed: int
    scenario: Annotated[dict[str, Any], Kind("a scenario mapping")]
    public: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    """What the algorithm publishes about the run -- SM's public keys -- or ``None``."""


@attrs.frozen
class MessageSent:
    """A message as the runtime saw it leave.

    ``payload`` is the algorithm's message (see
    :attr:`~om_actors.algorithm.Algorithm.payload`); its fields may hold a
    traitor's garbage.  The log writes them in place of ``payload``.
    """

    name: ClassVar[str] = "message"
    instance: int | None = attrs.field(default=None, kw_only=True)
    round: Round
    sender: GeneralId
    receiver: GeneralId
    payload: object
    delivered: NotDelivered | None = attrs.field(default=None, kw_only=True)
    """``False`` for a message that left its sender but never reached its
    receiver (a network that lost it, a receiver that died); ``None``, and
    left out of the log, for every message that arrived."""


@attrs.frozen
class MessageRejected:
    """A message the receiver refused; it counts as missing.

    ``reason`` is one of the algorithm's :attr:`~om_actors.algorithm.Algorithm.reasons`.
    """

    name: ClassVar[str] = "message.rejected"
    instance: int | None = attrs.field(default=None, kw_only=True)
    round: Round
    sender: GeneralId
    receiver: GeneralId
    payload: object
    reason: Annotated[enum.Enum, Kind("a reason")]


@attrs.frozen
class StrategyFailed:
    """A traitor's strategy raised; that one message is treated as never sent."""

    name: ClassVar[str] = "strategy.failed"
    instance: int | None = attrs.field(default=None, kw_only=True)
    round: Round
    general: GeneralId
    path: GeneralIds
    receiver: GeneralId
    error: Annotated[str, Kind("an error text")]


@attrs.frozen
class GeneralCrashed:
    """A general's process died in ``round``: from then on it sends nothing and decides nothing.

    Only networked runs log it.  Replay excuses what the crash explains --
    the general's missing sends and decision -- and says what was lost.
    """

    name: ClassVar[str] = "general.crashed"
    round: Round
    general: GeneralId


@attrs.frozen
class RoundEnded:
    """A round's barrier passed. ``timed_out`` lists generals cut off by the timeout.

    ``undelivered`` counts the round's messages from loyal generals that were
    sent but never arrived: a broken synchrony assumption (the paper's A3),
    not a silent default.  It is ``None``, and left out of the log, when
    every one arrived.
    """

    name: ClassVar[str] = "round.end"
    round: Round
    messages: Count
    rejected: Count
    timed_out: GeneralIds
    undelivered: Count | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Decided:
    """A general's final decision; traitors are listed too, flagged as such."""

    name: ClassVar[str] = "decision"
    instance: int | None = attrs.field(default=None, kw_only=True)
    general: GeneralId
    value: str
    traitor: bool


@attrs.frozen
class VerdictReached:
    """The last event of a run: IC1, IC2 and the totals."""

    name: ClassVar[str] = "verdict"
    instance: int | None = attrs.field(default=None, kw_only=True)
    agreement: bool
    validity: bool | None
    success: bool
    messages: Count
    rounds: Annotated[int, Kind("a round count", minimum=0)]


Event = (
    RunStarted
    | MessageSent
    | MessageRejected
    | StrategyFailed
    | GeneralCrashed
    | RoundEnded
    | Decided
    | VerdictReached
)
