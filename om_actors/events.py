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
from typing import Any, ClassVar

import attrs

from .algorithm import Path

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
    mode: str | None = attrs.field(default=None, kw_only=True)
    messages_logged: bool | None = attrs.field(default=None, kw_only=True)
    public: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    """What the algorithm publishes about the run -- SM's public keys -- or ``None``."""
    schema: int
    version: str
    seed: int
    scenario: dict[str, Any]


@attrs.frozen
class MessageSent:
    """A message as the runtime saw it leave.

    ``payload`` is the algorithm's message (see
    :attr:`~om_actors.algorithm.Algorithm.payload`); its fields may hold a
    traitor's garbage.  The log writes them in place of ``payload``.
    """

    name: ClassVar[str] = "message"
    instance: int | None = attrs.field(default=None, kw_only=True)
    round: int
    sender: int
    receiver: int
    payload: object
    delivered: bool | None = attrs.field(default=None, kw_only=True)
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
    round: int
    sender: int
    receiver: int
    payload: object
    reason: enum.Enum


@attrs.frozen
class StrategyFailed:
    """A traitor's strategy raised; that one message is treated as never sent."""

    name: ClassVar[str] = "strategy.failed"
    instance: int | None = attrs.field(default=None, kw_only=True)
    round: int
    general: int
    path: Path
    receiver: int
    error: str


@attrs.frozen
class GeneralCrashed:
    """A general's process died in ``round``: from then on it sends nothing and decides nothing.

    Only networked runs log it.  Replay excuses what the crash explains --
    the general's missing sends and decision -- and says what was lost.
    """

    name: ClassVar[str] = "general.crashed"
    round: int
    general: int


@attrs.frozen
class RoundEnded:
    """A round's barrier passed. ``timed_out`` lists generals cut off by the timeout.

    ``undelivered`` counts the round's messages from loyal generals that were
    sent but never arrived: a broken synchrony assumption (the paper's A3),
    not a silent default.  It is ``None``, and left out of the log, when
    every one arrived.
    """

    name: ClassVar[str] = "round.end"
    round: int
    messages: int
    rejected: int
    timed_out: tuple[int, ...]
    undelivered: int | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Decided:
    """A general's final decision; traitors are listed too, flagged as such."""

    name: ClassVar[str] = "decision"
    instance: int | None = attrs.field(default=None, kw_only=True)
    general: int
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
    messages: int
    rounds: int


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
