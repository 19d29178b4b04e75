"""Rebuild a run from its log, and check the log against the protocol.

A log records what was sent, so replaying it means feeding every logged
message to a fresh :class:`~om_actors.protocol.General` per receiver -- the
same core the run used -- and recomputing everything else: rejections,
relays, decisions, the verdict.  Anything the log claims that the protocol
does not reproduce is an inconsistency, reported with its line.

Checks happen a round at a time while the log streams past: a round's
relays depend only on the rounds before it, so nothing needs the whole file
in hand except the decisions, which need every received value anyway.

Nothing is lost silently.  A message the log marks ``"delivered": false``
reached no one: it is not fed to its receiver, and those from loyal
generals are counted, since each one means the synchrony assumption (A3)
broke.  A ``general.crashed`` line explains what a dead general no longer
sent or decided, which replay then counts as lost instead of flagging.

Replay never imports the strategies a log names: the log says what every
traitor sent, so their code is not needed, and a log is not trusted.  Only
:func:`rerun_log` runs a scenario again, and it asks first.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from functools import partial
from typing import Any

import attrs
import trio

from .errors import LogError, OmActorsError, ScenarioError
from .events import Event
from .log import LogLine, path_of, read_log, render
from .orchestrator import Mode, simulate
from .algorithm import Outgoing, Path, Verdict, combine, judge
from .oral import OralGeneral as General
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
class Crash:
    """A general that died mid-run, as a ``general.crashed`` line records it, and what died with it.

    ``lost`` counts the messages a loyal general owed from ``round`` on that
    were never sent; a traitor owed nothing, so it is ``None`` for one.
    """

    general: int
    round: int
    lost: int | None

    def __str__(self) -> str:
        if self.lost is None:
            return f"general {self.general}, a traitor, crashed in round {self.round}"
        owed = "1 message it owed was" if self.lost == 1 else f"{self.lost:,} messages it owed were"
        return (
            f"general {self.general} crashed in round {self.round}: {owed} never sent, "
            "and its decision is lost"
        )


@attrs.frozen
class _Sent:
    value: object
    line: int


@attrs.frozen
class _Unexplained:
    """An inconsistency a crash of ``general`` by ``round`` would explain; ``message`` if one went unsent."""

    general: int
    round: int
    inconsistency: Inconsistency
    message: bool


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
        self.undelivered = 0
        """Messages from loyal generals that the log marks as never delivered."""
        self.crashed: dict[int, int] = {}
        """Each general a ``general.crashed`` line names, with the round it died in."""
        self.lost: Counter[int] = Counter()
        """Messages each crashed loyal general owed and never sent."""
        self.rounds_ended = 0
        # Flags a crash could still explain, held until the end, since a crash line may come late.
        self._unexplained: list[_Unexplained] = []
        # (general, round) -> messages missing from a general the round's timeout cut off.
        self._cut_off: Counter[tuple[int, int]] = Counter()
        # This round only: (instance, sender) -> {(path, receiver): what was sent}
        self._round_sent: dict[tuple[int, int], dict[tuple[Path, int], _Sent]] = defaultdict(dict)
        # This round only: (instance, sender, receiver, path as JSON) -> [(reason, line)]
        self._computed_rejections: dict[tuple[int, int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._logged_rejections: dict[tuple[int, int, int, str], list[tuple[str, int]]] = defaultdict(list)
        self._round_count = 0
        self._round_undelivered = 0

    @property
    def traitors(self) -> frozenset[int]:
        return frozenset(self.scenario.traitors)

    def crashes(self) -> tuple[Crash, ...]:
        """Every crashed general, by id, with what it owed and never sent."""
        return tuple(
            Crash(general, round, None if general in self.traitors else self.lost[general])
            for general, round in sorted(self.crashed.items())
        )

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

    def _loyal(self, general: int) -> bool:
        return 0 <= general < self.scenario.generals and general not in self.traitors

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
        if fields.get("delivered", True) is False:
            self._round_undelivered += self._loyal(sender)
        else:
            self._deliver(line, instance, path)
        if self._loyal(sender):
            sent = self._round_sent[(instance, sender)]
            if (path, receiver) in sent:
                self._flag(line.number, f"loyal general {sender} sent {_show(path)} to {receiver} twice")
            sent[(path, receiver)] = _Sent(fields["value"], line.number)

    def _deliver(self, line: LogLine, instance: int, path: Path) -> None:
        """Hand a message that arrived to its receiver, and note the rejection the protocol computes."""
        fields = line.fields
        receiver, sender = fields["receiver"], fields["sender"]
        rejection = self.states[instance][receiver].receive(
            sender=sender, round=fields["round"], path=path, value=fields["value"]
        )
        if rejection is not None:
            self.rejections[(instance, receiver, path)] = rejection.reason
            key = (instance, sender, receiver, json.dumps(fields["path"]))
            self._computed_rejections[key].append((rejection.reason, line.number))

    def _on_general_crashed(self, line: LogLine) -> None:
        general, round = line.fields["general"], line.fields["round"]
        if not 0 <= general < self.scenario.generals:
            self._flag(
                line.number, f"general {general} crashed, but this is a {self.scenario.generals}-general run"
            )
        elif not 1 <= round <= self.scenario.m + 1:
            self._flag(
                line.number,
                f"general {general} crashed in round {round}, "
                f"but this run has rounds 1 to {self.scenario.m + 1}",
            )
        elif general in self.crashed:
            self._flag(
                line.number, f"general {general} crashed twice, in rounds {self.crashed[general]} and {round}"
            )
        else:
            self.crashed[general] = round

    def _on_message_rejected(self, line: LogLine) -> None:
        instance = self._instance(line)
        if instance is not None:
            fields = line.fields
            key = (instance, fields["sender"], fields["receiver"], json.dumps(fields["path"]))
            self._logged_rejections[key].append((fields["reason"], line.number))

    def _on_round_end(self, line: LogLine) -> None:
        round = line.fields["round"]
        self._check_round_order(line)
        if line.fields["messages"] != self._round_count:
            claimed = line.fields["messages"]
            self._flag(
                line.number, f"round {round} claims {claimed} messages, the log holds {self._round_count}"
            )
        claimed = line.fields.get("undelivered", 0)
        if claimed != self._round_undelivered:
            self._flag(
                line.number,
                f"round {round} claims {claimed} undelivered messages from loyal generals, "
                f"the log marks {self._round_undelivered}",
            )
        self.undelivered += self._round_undelivered
        self._check_rejections(round)
        for instance in range(len(self.instances)):
            self._check_relays(instance, round, line, cut_off=set(line.fields["timed_out"]))
        self._round_sent.clear()
        self._computed_rejections.clear()
        self._logged_rejections.clear()
        self._round_count = 0
        self._round_undelivered = 0
        self.rounds_ended = round

    def _check_round_order(self, line: LogLine) -> None:
        """Rounds end one after the other, 1 to m + 1: anything else is no run of this scenario.

        Refused outright rather than flagged, since checking a round the
        scenario does not have would mean computing relays it never owed.
        """
        round, last = line.fields["round"], self.scenario.m + 1
        if self.rounds_ended == last:
            raise LogError(
                self.source, line.number, f"round.end for round {round} after the last round, {last}"
            )
        if round != self.rounds_ended + 1:
            raise LogError(
                self.source,
                line.number,
                f"round.end for round {round}, but round {self.rounds_ended + 1} ends next "
                f"(this run has rounds 1 to {last})",
            )

    def _on_decision(self, line: LogLine) -> None:
        instance, general = self._instance(line), line.fields["general"]
        if not 0 <= general < self.scenario.generals:
            self._flag(
                line.number,
                f"decision of general {general}, who is not in a {self.scenario.generals}-general run",
            )
        elif instance is not None:
            self.decisions[(instance, general)] = (line.fields["value"], line.number)

    def _on_verdict(self, line: LogLine) -> None:
        given = line.fields.get("instance")
        self.verdicts[None if given is None else self._instance(line)] = line

    def _check_rejections(self, round: int) -> None:
        for key in self._computed_rejections.keys() | self._logged_rejections.keys():
            computed = self._computed_rejections.get(key, [])
            logged = self._logged_rejections.get(key, [])
            if sorted(r for r, _ in computed) != sorted(r for r, _ in logged):
                _, sender, receiver, path = key
                line = max(number for _, number in computed + logged)
                found = Inconsistency(line, _rejection_mismatch(sender, receiver, path, computed, logged))
                if logged:
                    self.inconsistencies.append(found)
                else:  # a receiver that crashed never got to record the rejections it computed
                    self._unexplained.append(_Unexplained(receiver, round, found, message=False))

    def _check_relays(self, instance: int, round: int, end: LogLine, *, cut_off: set[int]) -> None:
        for general, state in self.states[instance].items():
            if general in self.traitors:
                continue
            sent = self._round_sent.get((instance, general), {})
            for owed in state.outbox(round):
                got = sent.pop((owed.path, owed.receiver), None)
                if got is None:
                    self._owed_but_missing(general, round, end, owed, cut_off=general in cut_off)
                elif got.value != owed.value:
                    source = owed.path[:-1]
                    cites = (instance, general, source) if source in state.received else None
                    self._flag(got.line, _misrelay(state, owed.path, owed.receiver, got.value), cites)
            for (path, receiver), extra in sent.items():
                self._flag(
                    extra.line,
                    f"loyal general {general} sent {_show(path)} to {receiver}, which it did not owe",
                )

    def _owed_but_missing(
        self, general: int, round: int, end: LogLine, owed: Outgoing, *, cut_off: bool
    ) -> None:
        """A loyal general's message that is not in the log: lost to a crash, cut off, or an inconsistency."""
        if self._crashed_by(general, round):
            self.lost[general] += 1
        elif cut_off:
            self._cut_off[(general, round)] += 1
        else:
            found = Inconsistency(end.number, _missing(general, round, owed.path, owed.receiver, owed.value))
            self._unexplained.append(_Unexplained(general, round, found, message=True))

    def _crashed_by(self, general: int, round: int) -> bool:
        return general in self.crashed and self.crashed[general] <= round

    def _settle_crashes(self) -> None:
        """Now that every crash line is known: count what crashes explain, flag the rest."""
        for (general, round), count in self._cut_off.items():
            if self._crashed_by(general, round):
                self.lost[general] += count
        for unexplained in self._unexplained:
            if not self._crashed_by(unexplained.general, unexplained.round):
                self.inconsistencies.append(unexplained.inconsistency)
            elif unexplained.message:
                self.lost[unexplained.general] += 1
        self._cut_off.clear()
        self._unexplained.clear()

    def finish(self) -> None:
        """The checks that need the whole log: what crashes explain, decisions and the verdicts.

        A general that crashed decides nothing, and counts as neither loyal
        nor traitor, as in the run that wrote the log.
        """
        self._settle_crashes()
        if self.rounds_ended < self.scenario.m + 1:
            last = self.verdicts.get(None)
            self._flag(
                last.number if last else 0, f"the log has no round.end for round {self.rounds_ended + 1}"
            )
        verdicts = []
        for instance, states in enumerate(self.states):
            decided = {g: state.decide() for g, state in states.items() if g not in self.crashed}
            self._check_decisions(instance, decided)
            loyal = {g: decided[g] for g in self.scenario.loyal if g not in self.crashed}
            setup = self.scenario.setup_for(self.instances[instance])
            verdict = judge(setup, loyal, loyal=loyal, order=self.instances[instance].order)
            verdicts.append(verdict)
            if self.tagged:
                self._check_verdict(instance, verdict, self.messages_by_instance[instance])
        self._check_verdict(None, combine(verdicts), self.messages)

    def _check_decisions(self, instance: int, decided: dict[int, str]) -> None:
        for general, round in self.crashed.items():
            logged = self.decisions.get((instance, general))
            if logged is not None:
                self._flag(
                    logged[1], f"general {general} crashed in round {round}, yet the log has its decision"
                )
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


def _scenario(source: str, start: LogLine, *, import_strategies: bool = False) -> Scenario:
    """The scenario ``run.start`` holds, checked, as a :class:`LogError` if it does not load.

    Scenario validation refuses a run over the size limit before anything
    is allocated.  ``module:Class`` strategies are imported only with
    ``import_strategies``; they are never constructed here either way.
    """
    try:
        scenario = scenario_from_dict(start.fields["scenario"], import_strategies=import_strategies)
    except ScenarioError as exc:
        problems = "; ".join(problem.message for problem in exc.problems)
        raise LogError(
            source, start.number, f"run.start holds a scenario that does not load: {problems}"
        ) from None
    except OmActorsError as exc:
        raise LogError(
            source, start.number, f"run.start holds a scenario that does not load: {exc}"
        ) from None
    return scenario


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
    messages: nothing could be replayed, only rerun.  ``undelivered`` counts
    messages from loyal generals the log marks as never delivered, and
    ``crashes`` lists the generals that died mid-run: a log can be
    consistent with both, but either means the paper's assumptions did not
    hold, so the verdict is not the theorem's.
    """

    messages: int
    inconsistencies: tuple[Inconsistency, ...]
    summary_only: bool = False
    undelivered: int = 0
    crashes: tuple[Crash, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.inconsistencies and not self.summary_only

    @property
    def lost(self) -> int:
        """Messages crashed loyal generals owed and never sent."""
        return sum(crash.lost or 0 for crash in self.crashes)

    def losses(self) -> list[str]:
        """What the run lost, one sentence each: undelivered messages, then every crash."""
        found = []
        if self.undelivered:
            count = "1 message" if self.undelivered == 1 else f"{self.undelivered:,} messages"
            found.append(
                f"{count} owed by loyal generals {'was' if self.undelivered == 1 else 'were'} not delivered: "
                "the synchrony assumption (A3) broke, so the verdict is not the theorem's"
            )
        return found + [str(crash) for crash in self.crashes]


def replay_log(path: LogPath) -> ReplayReport:
    """Recompute a logged run with the protocol core and compare.

    Raises :class:`LogError` for a log that cannot be read at all.
    """
    if _summary_only(next(read_log(path))):
        return ReplayReport(0, (), summary_only=True)
    reconstruction = reconstruct(path)
    found = sorted(reconstruction.inconsistencies, key=lambda i: i.line)
    return ReplayReport(
        reconstruction.messages,
        tuple(_with_cited_lines(path, found)),
        undelivered=reconstruction.undelivered,
        crashes=reconstruction.crashes(),
    )


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


def rerun_log(path: LogPath, *, trust_strategies: bool = False) -> tuple[int, Divergence | None]:
    """Run the logged scenario again and compare event by event.

    Stops at the first difference.  ``version`` in ``run.start`` is not
    compared: showing that another version of om_actors, or of a strategy,
    reproduces a run is the point.  Returns the events compared and the
    divergence, if any.

    Running again means running the traitors' strategies, and a
    ``module:Class`` one is code the log merely names: it is imported (from
    the folder of the scenario file the run read, which the log records)
    only with ``trust_strategies``, and otherwise refused with a
    :class:`LogError` naming it.  Built-in strategies need no trust.
    """
    lines = read_log(path)
    first = next(lines)
    scenario = _trusted_scenario(os.fspath(path), first, trust_strategies=trust_strategies)
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


def _trusted_scenario(source: str, start: LogLine, *, trust_strategies: bool) -> Scenario:
    """The logged scenario, ready to run: its ``module:Class`` strategies imported, if trusted."""
    scenario = _scenario(source, start)
    if not scenario.custom_strategies:
        return scenario
    if not trust_strategies:
        names = ", ".join(repr(name) for name in scenario.custom_strategies)
        raise LogError(
            source,
            start.number,
            f"run.start names the strategy {names}: running it again would import and run that code, "
            "so rerun only a log you trust, with --trust-strategies",
        )
    return _scenario(source, start, import_strategies=True)


def _chain(first: LogLine, rest: Iterator[LogLine]) -> Iterator[LogLine]:
    yield first
    yield from rest


def _same(logged: dict[str, Any], rerun: dict[str, Any]) -> bool:
    if logged.get("event") == "run.start":
        logged, rerun = {**logged, "version": None}, {**rerun, "version": None}
    return logged == rerun
