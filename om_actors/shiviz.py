"""A log as a ShiViz input file: one host per general, vector clocks that give every message its arrow.

ShiViz (and DisViz) draw a space-time diagram from a text log whose first
line is a regular expression with the named groups ``host``, ``clock``
and ``event``, and whose second line is the delimiter between several
executions (empty here: one run is one execution).  Each event's clock is
a JSON object from host to count.  ShiViz infers an arrow from a vector
clock alone, and checks every clock: a host's own entry is 1 on its first
event and rises by exactly 1 on each later one, and an event's clock is
the pointwise maximum of the clocks it follows.

So each message is two events.  The *send*, at the sender, ticks its own
entry.  The *receive*, at the receiver, ticks the receiver's entry and
takes the maximum with the send's clock -- that is the arrow.  A message
that never arrived (``"delivered": false``) is a send alone.  The rounds
are synchronous: every message of a round is sent before any of them is
received, and what a general sends in round ``r`` depends on everything
it received before.  So a round's sends are events as the log lists them,
and its receives follow at the round's end, in log order; a send's clock
never holds a receive of its own round.  A crash, a traitor's failed
strategy and each decision are events of one host, ticking its entry.

The log is read as it streams (:func:`~om_actors.log.read_log`): only the
current round's receives are kept: receiver, sender, the send's count and
a line of text each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import attrs

from .errors import LogError
from .log import LogLine, read_log
from .registry import DEFAULT_ALGORITHM, algorithm_named

PARSER = r"(?<host>\S+) (?<clock>\{[^}]*\}) (?<event>.*)"
"""The first line: ShiViz's log parsing regular expression, which it anchors with ``^`` and ``$`` itself."""

DELIMITER = ""
"""The second line: no delimiter, since a log is one execution."""

Clock = dict[str, int]

_EVENT_FIELDS = frozenset({"event", "instance", "round", "sender", "receiver", "delivered"})
"""A message line's fields that are the event's, not the payload's."""


def host(general: object) -> str:
    """The host a general is in ShiViz: ``general-3``."""
    return f"general-{general}"


@attrs.define
class _Receipt:
    """One message of the current round, waiting for the round's end to be received."""

    receiver: int
    sender: int
    sent_at: int
    text: str
    rejected: str | None = None


class _Clocks:
    """Every general's vector clock, and the events that tick them, as ShiViz lines."""

    def __init__(self) -> None:
        self.clocks: dict[str, Clock] = {}

    def tick(self, general: object, text: str, merged: Clock | None = None) -> str:
        """One event at ``general``: its own entry plus one, after the maximum with ``merged``."""
        me = host(general)
        clock = self.clocks.setdefault(me, {})
        for other, count in (merged or {}).items():
            if count > clock.get(other, 0):
                clock[other] = count
        clock[me] = clock.get(me, 0) + 1
        return f"{me} {_clock_text(clock)} {text}"

    def own(self, general: object) -> int:
        return self.clocks[host(general)][host(general)]

    def snapshot(self) -> dict[str, Clock]:
        return {name: dict(clock) for name, clock in self.clocks.items()}


def _clock_text(clock: Clock) -> str:
    """A clock as ShiViz reads it: JSON, hosts in general order."""
    ordered = sorted(clock.items(), key=lambda item: int(item[0].rpartition("-")[2]))
    return json.dumps(dict(ordered), separators=(",", ":"))


def shiviz_lines(path: str | os.PathLike[str]) -> Iterator[str]:
    """The ShiViz file for the log at ``path``, line by line, without line ends.

    Raises :class:`~om_actors.errors.LogError` for a file that is no log,
    and for a log that holds no messages (a batched run written without
    ``--log-messages``), of which ShiViz could draw nothing.
    """
    lines = read_log(path)
    start = next(lines)
    _check_messages_logged(os.fspath(path), start)
    writer = _Writer(os.fspath(path), start)
    yield PARSER
    yield DELIMITER
    for line in lines:
        yield from writer.take(line)
    yield from writer.receive_all()


def _check_messages_logged(source: str, start: LogLine) -> None:
    if start.fields.get("mode") == "batched" and not start.fields.get("messages_logged"):
        raise LogError(
            source,
            start.number,
            "a batched run logged without its messages: ShiViz has nothing to draw; "
            "run it again with --log-messages",
        )


class _Writer:
    """Turns log lines into ShiViz events, holding back each round's receives until the round ends."""

    def __init__(self, source: str, start: LogLine) -> None:
        self.source = source
        scenario: dict[str, Any] = start.fields["scenario"]
        self.keyed = frozenset(algorithm_named(scenario.get("algorithm", DEFAULT_ALGORITHM)).keyed)
        self.traitors = _traitors(scenario.get("traitors"))
        self.clocks = _Clocks()
        self.receipts: list[_Receipt] = []
        self.round: object = None

    def take(self, line: LogLine) -> Iterator[str]:
        fields, event = line.fields, line.event
        if event == "message" and fields["round"] != self.round:
            yield from self.receive_all()
            self.round = fields["round"]
        if event == "message":
            yield self._send(line)
        elif event == "message.rejected":
            self._reject(line)
        elif event == "round.end":
            yield from self.receive_all()
        elif event == "strategy.failed":
            to = host(fields["receiver"])
            yield self.clocks.tick(
                fields["general"],
                f"round {fields['round']}: its strategy failed on the message to {to} along "
                f"{_json(fields['path'])}, so sent nothing: {_json(fields['error'])}{_where(line)}",
            )
        elif event == "general.crashed":
            yield self.clocks.tick(fields["general"], f"round {fields['round']}: crashed{_where(line)}")
        elif event == "decision":
            role = " (a traitor: its decision does not count)" if fields.get("traitor") else ""
            yield self.clocks.tick(fields["general"], f"decided {_json(fields['value'])}{role}{_where(line)}")

    def _send(self, line: LogLine) -> str:
        fields = line.fields
        sender, receiver = fields["sender"], fields["receiver"]
        said = self._payload(line)
        liar = " (a traitor)" if sender in self.traitors else ""
        lost = fields.get("delivered") is False
        end = ", never delivered" if lost else ""
        when = f"round {fields['round']}" + (
            f", instance {fields['instance']}" if "instance" in fields else ""
        )
        sent = self.clocks.tick(sender, f"{when}: sends{liar} to {host(receiver)}{said}{end}{_where(line)}")
        if not lost:
            text = f"{when}: receives from {host(sender)}{liar}{said}{_where(line)}"
            self.receipts.append(_Receipt(receiver, sender, self.clocks.own(sender), text))
        return sent

    def _reject(self, line: LogLine) -> None:
        """The receiver refused the message just before: its receive says why."""
        fields = line.fields
        last = self.receipts[-1] if self.receipts else None
        if last is None or (last.sender, last.receiver) != (fields["sender"], fields["receiver"]):
            raise LogError(
                self.source, line.number, "a message.rejected that follows no message it could reject"
            )
        last.rejected = str(fields["reason"])

    def _payload(self, line: LogLine) -> str:
        """The message's own fields as ``name=JSON``; signatures, long and unreadable, only counted."""
        shown = []
        for name, value in line.fields.items():
            if name in _EVENT_FIELDS:
                continue
            if name in self.keyed and isinstance(value, list):
                shown.append(f"{name}: {len(value)}")
            else:
                shown.append(f"{name}={_json(value)}")
        return f": {' '.join(shown)}" if shown else ""

    def receive_all(self) -> Iterator[str]:
        """The round's receives, in log order, each merging its send's clock as it was when sent."""
        sent_from = self.clocks.snapshot()
        for receipt in self.receipts:
            sender = host(receipt.sender)
            clock = {**sent_from[sender], sender: receipt.sent_at}
            refused = f" -- rejected: {_json(receipt.rejected)}" if receipt.rejected is not None else ""
            yield self.clocks.tick(receipt.receiver, receipt.text + refused, clock)
        self.receipts = []


def _traitors(listed: object) -> set[int]:
    """The traitors a logged scenario names, by id; a log is data, so anything else names none."""
    if not isinstance(listed, dict):
        return set()
    return {int(general) for general in listed if isinstance(general, str) and general.isdecimal()}


def _json(value: object) -> str:
    """A logged value on one line of ASCII: no line break, no character ShiViz's ``.`` would not match."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def _where(line: LogLine) -> str:
    return f" (log line {line.number})"
