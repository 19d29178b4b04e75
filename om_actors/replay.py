"""Rebuild a run from its log, and check the log against the protocol.

A log records what was sent, so replaying it means feeding every logged
message to a fresh :class:`~om_actors.protocol.General` per receiver -- the
same core the run used -- and recomputing everything else: rejections,
relays, decisions, the verdict.  Anything the log claims that the protocol
does not reproduce is an inconsistency, reported with its line.

Checks happen a round at a time while the log streams past: a round's
relays depend only on the rounds before it, so nothing needs the whole file
in hand except the decisions, which need every received value anyway.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import attrs
import trio

from .errors import LogError, OmActorsError
from .events import Event
from .log import LogLine, path_of, read_log, render
from .orchestrator import simulate
from .protocol import General, Path, judge
from .scenario import Scenario, scenario_from_dict

LogPath = str | os.PathLike[str]


@attrs.frozen
class Inconsistency:
    """Something the log says that the protocol does not reproduce.

    ``cites`` names a received message, ``(receiver, path)``, that the
    message refers to; :func:`replay` finds the line it stands on as
    ``cited_line``, so a user sees both events of a bad relay.
    """

    line: int
    message: str
    cites: tuple[int, Path] | None = None
    cited_line: int | None = None

    def __str__(self) -> str:
        cited = f" (line {self.cited_line})" if self.cited_line is not None else ""
        return f"line {self.line}: {self.message}{cited}"


@attrs.frozen
class _Sent:
    value: object
    line: int


class Reconstruction:
    """Every general's state rebuilt from a log, and what the log claimed.

    Built by :func:`reconstruct`, which streams the log once; read by
    replay, which compares, and by explain, which shows one general's view.
    """

    def __init__(self, source: str, start: LogLine) -> None:
        self.source = source
        self.scenario = _scenario(source, start)
        setup = self.scenario.setup
        self.states = {g: General(setup, g, self.scenario.order) for g in range(setup.generals)}
        self.rejections: dict[tuple[int, Path], str] = {}
        self.messages = 0
        self.inconsistencies: list[Inconsistency] = []
        self.decisions: dict[int, tuple[object, int]] = {}
        self.verdict: LogLine | None = None
        self._round_sent: dict[int, dict[tuple[Path, int], _Sent]] = defaultdict(dict)
        # (sender, receiver, path as JSON) -> [(reason, line)], this round only
        self._computed_rejections: dict[tuple[int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._logged_rejections: dict[tuple[int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._round_count = 0

    @property
    def traitors(self) -> frozenset[int]:
        return frozenset(self.scenario.traitors)

    def feed(self, line: LogLine) -> None:
        handler = getattr(self, "_on_" + line.event.replace(".", "_"), None)
        if handler is not None:
            handler(line)

    def _flag(self, line: int, message: str, cites: tuple[int, Path] | None = None) -> None:
        self.inconsistencies.append(Inconsistency(line, message, cites))

    def _on_message(self, line: LogLine) -> None:
        fields = line.fields
        path, receiver, sender = path_of(line), fields["receiver"], fields["sender"]
        self.messages += 1
        self._round_count += 1
        if receiver not in self.states:
            self._flag(
                line.number, f"message to general {receiver}, who is not in a {len(self.states)}-general run"
            )
            return
        rejection = self.states[receiver].receive(
            sender=sender, round=fields["round"], path=path, value=fields["value"]
        )
        if rejection is not None:
            self.rejections[(receiver, path)] = rejection.reason
            key = (sender, receiver, json.dumps(fields["path"]))
            self._computed_rejections[key].append((rejection.reason, line.number))
        if sender in self.states and sender not in self.traitors:
            sent = self._round_sent[sender]
            if (path, receiver) in sent:
                self._flag(line.number, f"loyal general {sender} sent {_show(path)} to {receiver} twice")
            sent[(path, receiver)] = _Sent(fields["value"], line.number)

    def _on_message_rejected(self, line: LogLine) -> None:
        fields = line.fields
        key = (fields["sender"], fields["receiver"], json.dumps(fields["path"]))
        self._logged_rejections[key].append((fields["reason"], line.number))

    def _on_round_end(self, line: LogLine) -> None:
        round = line.fields["round"]
        if line.fields["messages"] != self._round_count:
            self._flag(
                line.number,
                f"round {round} claims {line.fields['messages']} messages, the log holds {self._round_count}",
            )
        self._check_rejections()
        self._check_relays(round, line, excused=set(line.fields["timed_out"]))
        self._round_sent.clear()
        self._computed_rejections.clear()
        self._logged_rejections.clear()
        self._round_count = 0

    def _on_decision(self, line: LogLine) -> None:
        self.decisions[line.fields["general"]] = (line.fields["value"], line.number)

    def _on_verdict(self, line: LogLine) -> None:
        self.verdict = line

    def _check_rejections(self) -> None:
        for key in self._computed_rejections.keys() | self._logged_rejections.keys():
            computed = self._computed_rejections.get(key, [])
            logged = self._logged_rejections.get(key, [])
            if sorted(r for r, _ in computed) != sorted(r for r, _ in logged):
                sender, receiver, path = key
                line = max(number for _, number in computed + logged)
                self._flag(line, _rejection_mismatch(sender, receiver, path, computed, logged))

    def _check_relays(self, round: int, end: LogLine, *, excused: set[int]) -> None:
        for general, state in self.states.items():
            if general in self.traitors:
                continue
            sent = self._round_sent.get(general, {})
            for owed in state.outbox(round):
                got = sent.pop((owed.path, owed.receiver), None)
                if got is None:
                    if general not in excused:
                        self._flag(end.number, _missing(general, round, owed.path, owed.receiver, owed.value))
                elif got.value != owed.value:
                    cites = (general, owed.path[:-1]) if owed.path[:-1] in state.received else None
                    self._flag(got.line, self._misrelay(general, owed.path, owed.receiver, got.value), cites)
            for (path, receiver), extra in sent.items():
                self._flag(
                    extra.line,
                    f"loyal general {general} sent {_show(path)} to {receiver}, which it did not owe",
                )

    def _misrelay(self, general: int, path: Path, receiver: int, value: object) -> str:
        state = self.states[general]
        if general == self.scenario.commander:
            return f'the loyal commander sent "{value}" to {receiver}, but its order is "{state.order}"'
        source = path[:-1]
        if source in state.received:
            held = f'it received "{state.received[source]}" for {_show(source)}'
        else:
            held = f'it never received {_show(source)}, so it owed the default "{state.setup.default}"'
        return f'loyal general {general} relayed "{value}" along {_show(path)} to {receiver}, but {held}'

    def finish(self) -> None:
        """The checks that need the whole log: decisions and the verdict."""
        decided = {g: state.decide() for g, state in self.states.items()}
        for general, (value, number) in sorted(self.decisions.items()):
            recomputed = decided.get(general)
            if recomputed != value:
                text = f'general {general}: the log says it decided "{value}", replay computes "{recomputed}"'
                self._flag(number, text)
        missing = sorted(set(decided) - set(self.decisions))
        if missing and self.verdict is not None:
            self._flag(self.verdict.number, f"no decision logged for general(s) {missing}")
        if self.verdict is not None:
            self._check_verdict(self.verdict, decided)

    def _check_verdict(self, line: LogLine, decided: dict[int, str]) -> None:
        loyal = {g: decided[g] for g in self.scenario.loyal}
        verdict = judge(self.scenario.setup, loyal, loyal=loyal, order=self.scenario.order)
        computed = {
            "agreement": verdict.agreement,
            "validity": verdict.validity,
            "success": verdict.success,
            "messages": self.messages,
            "rounds": self.scenario.setup.rounds,
        }
        for key, value in computed.items():
            if line.fields[key] != value:
                logged = json.dumps(line.fields[key])
                self._flag(
                    line.number, f"the verdict says {key} {logged}, replay computes {json.dumps(value)}"
                )


def _scenario(source: str, start: LogLine) -> Scenario:
    try:
        return scenario_from_dict(start.fields["scenario"], source=f"{source}:{start.number}")
    except OmActorsError as exc:
        raise LogError(
            source, start.number, f"run.start holds a scenario that does not load: {exc}"
        ) from None


def _show(path: object) -> str:
    return json.dumps(list(path) if isinstance(path, tuple) else path)


def _rejection_mismatch(
    sender: int, receiver: int, path: str, computed: list[tuple[str, int]], logged: list[tuple[str, int]]
) -> str:
    def verdict(rejections: list[tuple[str, int]]) -> str:
        return "rejected for " + "; ".join(r for r, _ in rejections) if rejections else "accepted"

    return (
        f"general {receiver}, message along {path} from {sender}: the log says {verdict(logged)}, "
        f"the protocol says {verdict(computed)}"
    )


def _missing(general: int, round: int, path: Path, receiver: int, value: str) -> str:
    return (
        f'loyal general {general} owed "{value}" along {_show(path)} to {receiver} in round {round}, '
        "but the log has no such message"
    )


def reconstruct(path: LogPath) -> Reconstruction:
    """Stream the log at ``path`` once and rebuild every general from it."""
    lines = read_log(path)
    reconstruction = Reconstruction(os.fspath(path), next(lines))
    for line in lines:
        reconstruction.feed(line)
    reconstruction.finish()
    return reconstruction


@attrs.frozen
class ReplayReport:
    """What replaying a log found; ``inconsistencies`` come in line order."""

    messages: int
    inconsistencies: tuple[Inconsistency, ...]

    @property
    def ok(self) -> bool:
        return not self.inconsistencies


def replay_log(path: LogPath) -> ReplayReport:
    """Recompute a logged run with the protocol core and compare.

    Raises :class:`LogError` for a log that cannot be read at all.
    """
    reconstruction = reconstruct(path)
    found = sorted(reconstruction.inconsistencies, key=lambda i: i.line)
    return ReplayReport(reconstruction.messages, tuple(_with_cited_lines(path, found)))


def _with_cited_lines(path: LogPath, found: list[Inconsistency]) -> list[Inconsistency]:
    """Fill in ``cited_line`` with a second pass, rather than keep a line per message."""
    wanted = {i.cites for i in found if i.cites is not None}
    lines: dict[tuple[int, Path], int] = {}
    if wanted:
        for line in read_log(path):
            if line.event == "message":
                key = (line.fields["receiver"], path_of(line))
                if key in wanted:
                    lines.setdefault(key, line.number)
    return [attrs.evolve(i, cited_line=lines.get(i.cites)) if i.cites else i for i in found]


@attrs.frozen
class Divergence:
    """The first event where a rerun differs from the log; ``None`` on a side that ran out."""

    line: int
    logged: str | None
    rerun: str | None


class _Diverged(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence)
        self.divergence = divergence


def rerun_log(path: LogPath) -> tuple[int, Divergence | None]:
    """Run the logged scenario again and compare event by event.

    Stops at the first difference.  ``version`` in ``run.start`` is not
    compared: showing that another version of om_actors, or of a strategy,
    reproduces a run is the point.  Returns the events compared and the
    divergence, if any.
    """
    lines = read_log(path)
    first = next(lines)
    scenario = _scenario(os.fspath(path), first)
    compared = [0]
    pending: Iterator[LogLine] = _chain(first, lines)

    def compare(event: Event) -> None:
        rendered = render(event)
        logged = next(pending, None)
        compared[0] += 1
        if logged is None:
            raise _Diverged(Divergence(compared[0], None, rendered))
        if not _same(logged.fields, json.loads(rendered)):
            raise _Diverged(Divergence(logged.number, logged.raw.decode("utf-8").rstrip("\n"), rendered))

    try:
        trio.run(lambda: simulate(scenario, on_event=compare))
    except _Diverged as diverged:
        return compared[0], diverged.divergence
    extra = next(pending, None)
    if extra is not None:
        return compared[0], Divergence(extra.number, extra.raw.decode("utf-8").rstrip("\n"), None)
    return compared[0], None


def _chain(first: LogLine, rest: Iterator[LogLine]) -> Iterator[LogLine]:
    yield first
    yield from rest


def _same(logged: dict[str, Any], rerun: dict[str, Any]) -> bool:
    if logged.get("event") == "run.start":
        logged, rerun = {**logged, "version": None}, {**rerun, "version": None}
    return logged == rerun
