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
from functools import partial
from typing import Any

import attrs
import trio

from .errors import LogError, OmActorsError
from .events import Event
from .log import LogLine, path_of, read_log, render
from .orchestrator import Mode, simulate
from .protocol import General, Path, Verdict, combine, judge
from .scenario import Scenario, scenario_from_dict

LogPath = str | os.PathLike[str]


@attrs.frozen
class Inconsistency:
    """Something the log says that the protocol does not reproduce.

    ``cites`` names a received message, ``(instance, receiver, path)``, that the
    message refers to; :func:`replay` finds the line it stands on as
    ``cited_line``, so a user sees both events of a bad relay.
    """

    line: int
    message: str
    cites: tuple[int, int, Path] | None = None
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
    States are kept per consensus instance: ``states[instance][general]``.
    """

    def __init__(self, source: str, start: LogLine) -> None:
        self.source = source
        if _summary_only(start):
            raise LogError(source, start.number, SUMMARY_ONLY)
        self.scenario = _scenario(source, start)
        self.instances = self.scenario.effective_instances
        self.tagged = len(self.instances) > 1
        self.states = [
            {
                g: General(self.scenario.setup_for(instance), g, instance.order)
                for g in range(self.scenario.generals)
            }
            for instance in self.instances
        ]
        self.rejections: dict[tuple[int, int, Path], str] = {}
        self.messages = 0
        self.messages_by_instance = [0] * len(self.instances)
        self.inconsistencies: list[Inconsistency] = []
        self.decisions: dict[tuple[int, int], tuple[object, int]] = {}
        self.verdicts: dict[int | None, LogLine] = {}
        # This round only: (instance, sender) -> {(path, receiver): what was sent}
        self._round_sent: dict[tuple[int, int], dict[tuple[Path, int], _Sent]] = defaultdict(dict)
        # This round only: (instance, sender, receiver, path as JSON) -> [(reason, line)]
        self._computed_rejections: dict[tuple[int, int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._logged_rejections: dict[tuple[int, int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._round_count = 0

    @property
    def traitors(self) -> frozenset[int]:
        return frozenset(self.scenario.traitors)

    def state(self, general: int, instance: int = 0) -> General:
        return self.states[instance][general]

    def feed(self, line: LogLine) -> None:
        handler = getattr(self, "_on_" + line.event.replace(".", "_"), None)
        if handler is not None:
            handler(line)

    def _flag(self, line: int, message: str, cites: tuple[int, int, Path] | None = None) -> None:
        self.inconsistencies.append(Inconsistency(line, message, cites))

    def _instance(self, line: LogLine) -> int | None:
        """The event's instance index, or ``None`` (flagged) when it cannot be one of this run's."""
        given = line.fields.get("instance")
        if given is None and not self.tagged:
            return 0
        if self.tagged and type(given) is int and 0 <= given < len(self.instances):
            return given
        wanted = f"an instance from 0 to {len(self.instances) - 1}" if self.tagged else "no instance"
        self._flag(
            line.number, f"{line.event} event with instance {json.dumps(given)}, where this run has {wanted}"
        )
        return None

    def _on_message(self, line: LogLine) -> None:
        fields = line.fields
        path, receiver, sender = path_of(line), fields["receiver"], fields["sender"]
        self.messages += 1
        self._round_count += 1
        instance = self._instance(line)
        if instance is None:
            return
        self.messages_by_instance[instance] += 1
        states = self.states[instance]
        if receiver not in states:
            self._flag(
                line.number, f"message to general {receiver}, who is not in a {len(states)}-general run"
            )
            return
        rejection = states[receiver].receive(
            sender=sender, round=fields["round"], path=path, value=fields["value"]
        )
        if rejection is not None:
            self.rejections[(instance, receiver, path)] = rejection.reason
            key = (instance, sender, receiver, json.dumps(fields["path"]))
            self._computed_rejections[key].append((rejection.reason, line.number))
        if sender in states and sender not in self.traitors:
            sent = self._round_sent[(instance, sender)]
            if (path, receiver) in sent:
                self._flag(line.number, f"loyal general {sender} sent {_show(path)} to {receiver} twice")
            sent[(path, receiver)] = _Sent(fields["value"], line.number)

    def _on_message_rejected(self, line: LogLine) -> None:
        instance = self._instance(line)
        if instance is not None:
            fields = line.fields
            key = (instance, fields["sender"], fields["receiver"], json.dumps(fields["path"]))
            self._logged_rejections[key].append((fields["reason"], line.number))

    def _on_round_end(self, line: LogLine) -> None:
        round = line.fields["round"]
        if line.fields["messages"] != self._round_count:
            claimed = line.fields["messages"]
            self._flag(
                line.number, f"round {round} claims {claimed} messages, the log holds {self._round_count}"
            )
        self._check_rejections()
        for instance in range(len(self.instances)):
            self._check_relays(instance, round, line, excused=set(line.fields["timed_out"]))
        self._round_sent.clear()
        self._computed_rejections.clear()
        self._logged_rejections.clear()
        self._round_count = 0

    def _on_decision(self, line: LogLine) -> None:
        instance = self._instance(line)
        if instance is not None:
            self.decisions[(instance, line.fields["general"])] = (line.fields["value"], line.number)

    def _on_verdict(self, line: LogLine) -> None:
        given = line.fields.get("instance")
        self.verdicts[None if given is None else self._instance(line)] = line

    def _check_rejections(self) -> None:
        for key in self._computed_rejections.keys() | self._logged_rejections.keys():
            computed = self._computed_rejections.get(key, [])
            logged = self._logged_rejections.get(key, [])
            if sorted(r for r, _ in computed) != sorted(r for r, _ in logged):
                _, sender, receiver, path = key
                line = max(number for _, number in computed + logged)
                self._flag(line, _rejection_mismatch(sender, receiver, path, computed, logged))

    def _check_relays(self, instance: int, round: int, end: LogLine, *, excused: set[int]) -> None:
        for general, state in self.states[instance].items():
            if general in self.traitors:
                continue
            sent = self._round_sent.get((instance, general), {})
            for owed in state.outbox(round):
                got = sent.pop((owed.path, owed.receiver), None)
                if got is None:
                    if general not in excused:
                        self._flag(end.number, _missing(general, round, owed.path, owed.receiver, owed.value))
                elif got.value != owed.value:
                    source = owed.path[:-1]
                    cites = (instance, general, source) if source in state.received else None
                    self._flag(got.line, _misrelay(state, owed.path, owed.receiver, got.value), cites)
            for (path, receiver), extra in sent.items():
                self._flag(
                    extra.line,
                    f"loyal general {general} sent {_show(path)} to {receiver}, which it did not owe",
                )

    def finish(self) -> None:
        """The checks that need the whole log: decisions and the verdicts."""
        verdicts = []
        for instance, states in enumerate(self.states):
            decided = {g: state.decide() for g, state in states.items()}
            self._check_decisions(instance, decided)
            loyal = {g: decided[g] for g in self.scenario.loyal}
            setup = self.scenario.setup_for(self.instances[instance])
            verdict = judge(setup, loyal, loyal=loyal, order=self.instances[instance].order)
            verdicts.append(verdict)
            if self.tagged:
                self._check_verdict(instance, verdict, self.messages_by_instance[instance])
        self._check_verdict(None, combine(verdicts), self.messages)

    def _check_decisions(self, instance: int, decided: dict[int, str]) -> None:
        for general, recomputed in decided.items():
            logged = self.decisions.get((instance, general))
            if logged is None:
                last = self.verdicts.get(None)
                self._flag(last.number if last else 0, f"no decision logged for general {general}")
            elif logged[0] != recomputed:
                value, number = logged
                text = f'general {general}: the log says it decided "{value}", replay computes "{recomputed}"'
                self._flag(number, text)

    def _check_verdict(self, instance: int | None, verdict: Verdict, messages: int) -> None:
        line = self.verdicts.get(instance)
        if line is None:
            last = self.verdicts.get(None)
            self._flag(last.number if last else 0, f"no verdict logged for instance {instance}")
            return
        computed = {
            "agreement": verdict.agreement,
            "validity": verdict.validity,
            "success": verdict.success,
            "messages": messages,
            "rounds": self.scenario.m + 1,
        }
        for key, value in computed.items():
            if line.fields[key] != value:
                logged = json.dumps(line.fields[key])
                self._flag(
                    line.number, f"the verdict says {key} {logged}, replay computes {json.dumps(value)}"
                )


def _misrelay(state: General, path: Path, receiver: int, value: object) -> str:
    if state.me == state.setup.commander:
        return f'the loyal commander sent "{value}" to {receiver}, but its order is "{state.order}"'
    source = path[:-1]
    if source in state.received:
        held = f'it received "{state.received[source]}" for {_show(source)}'
    else:
        held = f'it never received {_show(source)}, so it owed the default "{state.setup.default}"'
    return f'loyal general {state.me} relayed "{value}" along {_show(path)} to {receiver}, but {held}'


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


SUMMARY_ONLY = (
    "this log of a batched run holds round summaries, not messages, so there is nothing to replay: "
    "check it with replay --rerun, or run again with --log-messages"
)


def _summary_only(start: LogLine) -> bool:
    return start.fields.get("mode") == "batched" and not start.fields.get("messages_logged")


@attrs.frozen
class ReplayReport:
    """What replaying a log found; ``inconsistencies`` come in line order.

    ``summary_only`` says the log was written by a batched run without its
    messages: nothing could be replayed, only rerun.
    """

    messages: int
    inconsistencies: tuple[Inconsistency, ...]
    summary_only: bool = False

    @property
    def ok(self) -> bool:
        return not self.inconsistencies and not self.summary_only


def replay_log(path: LogPath) -> ReplayReport:
    """Recompute a logged run with the protocol core and compare.

    Raises :class:`LogError` for a log that cannot be read at all.
    """
    if _summary_only(next(read_log(path))):
        return ReplayReport(0, (), summary_only=True)
    reconstruction = reconstruct(path)
    found = sorted(reconstruction.inconsistencies, key=lambda i: i.line)
    return ReplayReport(reconstruction.messages, tuple(_with_cited_lines(path, found)))


def _with_cited_lines(path: LogPath, found: list[Inconsistency]) -> list[Inconsistency]:
    """Fill in ``cited_line`` with a second pass, rather than keep a line per message."""
    wanted = {i.cites for i in found if i.cites is not None}
    lines: dict[tuple[int, int, Path], int] = {}
    if wanted:
        for line in read_log(path):
            if line.event == "message":
                key = (line.fields.get("instance") or 0, line.fields["receiver"], path_of(line))
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

    mode: Mode = "batched" if first.fields.get("mode") == "batched" else "per-message"
    logged = bool(first.fields.get("messages_logged"))
    try:
        trio.run(partial(simulate, scenario, on_event=compare, mode=mode, log_messages=logged))
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
