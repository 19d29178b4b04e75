"""Rebuild a run from its log, and check the log against the algorithm.

A log records what was sent, so replaying it means feeding every logged
message to a fresh core of the logged scenario's algorithm per general --
the same cores the run used, built by
:meth:`~om_actors.algorithm.Algorithm.general` -- and recomputing
everything else: rejections, what loyal generals owed, decisions, the
verdict.  Anything the log claims that the algorithm does not reproduce is
an inconsistency, reported with its line.  Nothing here knows an
algorithm's rules: each core's own schedule says what it owes in each
round, and a loyal general's message is checked by composing it again, so
a signed message is reproduced exactly, signatures and all -- except in a
cluster's log, signed with keys only its nodes held: there every signature
is checked against the keys ``run.start`` publishes
(:meth:`~om_actors.algorithm.Core.matches`).

Checks happen a round at a time while the log streams past: every core
opens round ``r`` (as a runtime does) before round ``r``'s messages are
fed, and at the round's ``round.end`` every loyal general's logged sends
are held against what its core owed.  Only the decisions need the whole
file.

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
from collections.abc import Collection, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from .algorithm import Algorithm, Core, Outgoing, Setup, Verdict, combine, judge
from .errors import LogError, OmActorsError, ScenarioError
from .events import Event
from .log import LogLine, ReadProgress, hashable, json_fallback, read_log, reason_text, render
from .scenario import Scenario, scenario_from_dict

if TYPE_CHECKING:
    from .orchestrator import Mode

LogPath = str | os.PathLike[str]

Key = tuple[int, int, int, int, object]
"""A message to one general as replay finds it again: ``(instance, receiver, round, sender, path)``.

``path`` is the one the algorithm says the message travelled
(:meth:`~om_actors.algorithm.Algorithm.path_of`), ``()`` for an algorithm
whose messages carry none: the round and the sender tell such messages
apart, whatever the algorithm.
"""

Along = tuple[int, int, object]
"""Messages to one general along one path, whatever their round and sender: ``(instance, receiver, path)``."""


@attrs.frozen
class Cite:
    """The message a loyal general's bad relay came from: what it received along ``path``.

    :func:`replay_log` looks for it in a second pass over the log: ``value``
    is what the general owed, so a message along ``path`` with that value is
    the one it relayed wrongly.  ``said`` is the start of the sentence.
    """

    instance: int
    receiver: int
    path: object
    value: object
    said: str


@attrs.frozen
class Inconsistency:
    """Something the log says that the algorithm does not reproduce.

    ``cites`` names a received message that the message refers to;
    :func:`replay_log` finds the line it stands on as ``cited_line``, so a
    user sees both events of a bad relay.
    """

    line: int
    message: str
    cites: Cite | None = None
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
class Arrival:
    """A message a general accepted, as the log has it: who sent it in which round, what it said, where."""

    sender: int
    value: object
    line: int
    round: int


@attrs.frozen
class Refusal:
    """A message a general refused, as replay judges it: who sent it in which round, why, on which line."""

    sender: int
    reason: str
    line: int
    round: int


@attrs.frozen
class _Sent:
    payload: object
    line: int


@attrs.frozen
class _Unexplained:
    """An inconsistency a crash of ``general`` by ``round`` would explain; ``message`` if one went unsent."""

    general: int
    round: int
    inconsistency: Inconsistency
    message: bool


class Reconstruction:
    """Every general's core rebuilt from a log, and what the log claimed.

    Built by :func:`reconstruct`, which streams the log once; read by
    replay, which compares, and by explain, which shows one general's view.
    Cores are kept per consensus instance: ``states[instance][general]``.
    ``arrivals`` holds what the generals in ``watching`` accepted -- every
    general's when ``watching`` is ``None`` -- and ``rejections`` what they
    refused and why, both by :data:`Key`, so messages of an algorithm
    without paths stay apart by round and sender; :meth:`along` finds them
    by path, :meth:`from_sender` by round and sender.
    """

    def __init__(
        self, source: str, start: LogLine, *, watching: Collection[tuple[int, int]] | None = None
    ) -> None:
        self.source = source
        if _summary_only(start):
            raise LogError(source, start.number, SUMMARY_ONLY)
        self.scenario = _scenario(source, start)
        self.rules = self.scenario.rules
        self.instances = self.scenario.effective_instances
        self.tagged = len(self.instances) > 1
        self.rounds = self.scenario.rounds
        self.watching = watching
        self.setups = _published_setups(self.rules, self.scenario, start)
        """Each instance's setup: the scenario's, with the identities a cluster's run.start publishes."""
        self.states: list[dict[int, Core]] = [
            {g: self.rules.general(setup, g, instance.order) for g in range(self.scenario.generals)}
            for setup, instance in zip(self.setups, self.instances)
        ]
        self.arrivals: dict[Key, list[Arrival]] = {}
        self.rejections: dict[Key, list[Refusal]] = {}
        # (instance, receiver, path) -> what arrived along it, in log order, for explain
        self._along: dict[Along, list[Arrival | Refusal]] = defaultdict(list)
        # (instance, receiver, round, sender) -> what that sender's messages of the round were, for explain
        self._from: dict[tuple[int, int, int, int], list[Arrival | Refusal]] = defaultdict(list)
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
        # This round only: (instance, loyal general) -> what its core owes.
        self._owed: dict[tuple[int, int], list[Outgoing]] = {}
        # This round only: (instance, loyal sender) -> {(receiver, path): what was sent, in log order}
        self._round_sent: dict[tuple[int, int], dict[tuple[int, object], list[_Sent]]] = defaultdict(dict)
        # This round only: (instance, sender, receiver, path) -> [(reason, line)]
        self._computed_rejections: dict[tuple[int, int, int, object], list[tuple[str, int]]] = defaultdict(
            list
        )
        self._logged_rejections: dict[tuple[int, int, int, object], list[tuple[str, int]]] = defaultdict(list)
        self._round_count = 0
        self._round_undelivered = 0
        self._check_public(start)
        self._open(1)

    @property
    def traitors(self) -> frozenset[int]:
        return frozenset(self.scenario.traitors)

    def crashes(self) -> tuple[Crash, ...]:
        """Every crashed general, by id, with what it owed and never sent."""
        return tuple(
            Crash(general, round, None if general in self.traitors else self.lost[general])
            for general, round in sorted(self.crashed.items())
        )

    def state(self, general: int, instance: int = 0) -> Core:
        return self.states[instance][general]

    def along(self, general: int, path: object, instance: int = 0) -> list[Arrival | Refusal]:
        """Every message along ``path`` that reached ``general`` (one being watched), in log order.

        For OM and SM a path names one message at most, bar duplicates and
        forgeries; for an algorithm whose messages carry no path every
        message is along ``()``, whatever its round and sender.
        """
        return self._along.get((instance, general, path), [])

    def from_sender(
        self, general: int, round: int, sender: int, instance: int = 0
    ) -> list[Arrival | Refusal]:
        """Every message of ``round`` from ``sender`` that reached ``general`` (if watched), in log order.

        What ties a message to a step of an algorithm whose messages carry
        no path: one at most, unless a traitor sent more.
        """
        return self._from.get((instance, general, round, sender), [])

    def feed(self, line: LogLine) -> None:
        handler = getattr(self, "_on_" + line.event.replace(".", "_"), None)
        if handler is not None:
            handler(line)

    def _flag(self, line: int, message: str, cites: Cite | None = None) -> None:
        self.inconsistencies.append(Inconsistency(line, message, cites))

    def _open(self, round: int) -> None:
        """Open ``round`` in every core, as a runtime does before the round's messages arrive."""
        for instance, states in enumerate(self.states):
            for general, core in states.items():
                if general in self.traitors:
                    core.offers(round)
                else:
                    self._owed[(instance, general)] = core.outbox(round)

    def _check_public(self, start: LogLine) -> None:
        """What run.start publishes -- SM's public keys -- must be what the algorithm publishes for it."""
        published = self.rules.record(self.setups[0]) or None
        computed = json.loads(json.dumps(published, default=json_fallback))
        logged = start.fields.get("public")
        if logged != computed:
            self._flag(start.number, _public_mismatch(self.scenario.title, logged, computed))

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

    def _in_run(self, line: LogLine, role: str, general: int) -> bool:
        if 0 <= general < self.scenario.generals:
            return True
        self._flag(
            line.number,
            f"message {role} general {general}, who is not in a {self.scenario.generals}-general run",
        )
        return False

    def _in_round(self, line: LogLine) -> bool:
        """Whether the message belongs to the round under way: the only one its receiver can take."""
        round, under_way = line.fields["round"], self.rounds_ended + 1
        if round == under_way and under_way <= self.rounds:
            return True
        where = f"round {under_way} is under way" if under_way <= self.rounds else "the last round ended"
        self._flag(line.number, f"message of round {round} logged where {where}")
        return False

    def _on_message(self, line: LogLine) -> None:
        fields = line.fields
        receiver, sender = fields["receiver"], fields["sender"]
        self.messages += 1
        self._round_count += 1
        instance = self._instance(line)
        if instance is None:
            return
        self.messages_by_instance[instance] += 1
        if not (
            self._in_run(line, "to", receiver) and self._in_run(line, "from", sender) and self._in_round(line)
        ):
            return
        if fields.get("delivered", True) is False:
            self._round_undelivered += self._loyal(sender)
        else:
            self._deliver(line, instance)
        if self._loyal(sender):
            sent = self._round_sent[(instance, sender)].setdefault((receiver, line.path), [])
            sent.append(_Sent(line.payload, line.number))

    def _deliver(self, line: LogLine, instance: int) -> None:
        """Hand a message that arrived to its receiver, and note the rejection the core computes."""
        fields = line.fields
        receiver, sender = fields["receiver"], fields["sender"]
        rejection = self.states[instance][receiver].receive(
            sender=sender, round=fields["round"], payload=line.payload
        )
        round, watched = fields["round"], self.watching is None or (instance, receiver) in self.watching
        if rejection is None:
            if watched:
                arrival = Arrival(sender, self.rules.value_of(line.payload), line.number, round)
                self.arrivals.setdefault((instance, receiver, round, sender, line.path), []).append(arrival)
                self._along[(instance, receiver, line.path)].append(arrival)
                self._from[(instance, receiver, round, sender)].append(arrival)
            return
        reason = reason_text(rejection)
        if watched:
            refusal = Refusal(sender, reason, line.number, round)
            self.rejections.setdefault((instance, receiver, round, sender, line.path), []).append(refusal)
            self._along[(instance, receiver, line.path)].append(refusal)
            self._from[(instance, receiver, round, sender)].append(refusal)
        self._computed_rejections[(instance, sender, receiver, line.path)].append((reason, line.number))

    def _on_general_crashed(self, line: LogLine) -> None:
        general, round = line.fields["general"], line.fields["round"]
        if not 0 <= general < self.scenario.generals:
            self._flag(
                line.number, f"general {general} crashed, but this is a {self.scenario.generals}-general run"
            )
        elif not 1 <= round <= self.rounds:
            self._flag(
                line.number,
                f"general {general} crashed in round {round}, but this run has rounds 1 to {self.rounds}",
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
            key = (instance, fields["sender"], fields["receiver"], line.path)
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
            self._check_sends(instance, round, line, cut_off=set(line.fields["timed_out"]))
        self._round_sent.clear()
        self._computed_rejections.clear()
        self._logged_rejections.clear()
        self._round_count = 0
        self._round_undelivered = 0
        self.rounds_ended = round
        if round < self.rounds:
            self._open(round + 1)

    def _check_round_order(self, line: LogLine) -> None:
        """Rounds end one after the other, 1 to the last: anything else is no run of this scenario.

        Refused outright rather than flagged, since checking a round the
        scenario does not have would mean computing sends it never owed.
        """
        round, last = line.fields["round"], self.rounds
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
                text = _rejection_mismatch(sender, receiver, round, path, computed, logged)
                found = Inconsistency(line, text)
                if logged:
                    self.inconsistencies.append(found)
                else:  # a receiver that crashed never got to record the rejections it computed
                    self._unexplained.append(_Unexplained(receiver, round, found, message=False))

    def _check_sends(self, instance: int, round: int, end: LogLine, *, cut_off: set[int]) -> None:
        """Every loyal general's logged sends of the round against what its core owed, message for message.

        Messages pair up by receiver and path.  An algorithm may owe one
        receiver several messages along one path in a round (without paths,
        every message is along ``()``), so each is paired with a logged one
        equal to it first, and only what is left with what is left, in order.
        """
        path_of = self.rules.path_of
        for general, core in self.states[instance].items():
            if general in self.traitors:
                continue
            sent = self._round_sent.get((instance, general), {})
            unmatched: list[tuple[Outgoing, object, object]] = []
            owed_along: Counter[tuple[int, object]] = Counter()
            for owed in self._owed.pop((instance, general), []):
                payload = core.compose(owed, owed.path, owed.value)
                path = hashable(path_of(payload))
                owed_along[(owed.receiver, path)] += 1
                along = sent.get((owed.receiver, path), [])
                same = next((i for i, got in enumerate(along) if core.matches(payload, got.payload)), None)
                if same is None:
                    unmatched.append((owed, payload, path))
                else:
                    del along[same]
            for owed, payload, path in unmatched:
                along = sent.get((owed.receiver, path), [])
                if along:
                    self._misrelay(instance, round, core, owed, payload, along.pop(0))
                else:
                    self._owed_but_missing(general, round, end, owed, path, cut_off=general in cut_off)
            for (receiver, path), extras in sent.items():
                owed_count = owed_along[(receiver, path)]
                for extra in extras:
                    if owed_count:
                        text = _sent_too_often(path, receiver, round, owed_count + len(extras), owed_count)
                    else:
                        text = f"sent {_message_to(path, receiver, round)}, which it did not owe"
                    self._flag(extra.line, f"loyal general {general} {text}")

    def _misrelay(
        self, instance: int, round: int, core: Core, owed: Outgoing, payload: object, got: _Sent
    ) -> None:
        """A loyal general's message that is not the one it owed: say what differs, and where it came from.

        Only the commander's round-1 message is its order; any other is
        named by its path, or, for an algorithm whose messages carry none,
        by its round.
        """
        rules = self.rules
        sent, due = rules.value_of(got.payload), rules.value_of(payload)
        general, receiver = core.me, owed.receiver
        pathless = hashable(rules.path_of(payload)) == ()
        if sent != due:
            if round == 1 and general == core.setup.commander and due == core.order:
                text = f'the loyal commander sent "{sent}" to {receiver}, but its order is "{due}"'
                self._flag(got.line, text)
                return
            if pathless:
                said = f'loyal general {general} sent "{sent}" to {receiver} in round {round}'
                self._flag(got.line, f'{said}, but it owed "{due}"')
                return
            path = owed.path
            source = path[:-1]
            verb = "relayed" if source else "sent"
            said = f'loyal general {general} {verb} "{sent}" along {_show(path)} to {receiver}'
            cite = Cite(instance, general, source, due, said) if source else None
            self._flag(got.line, f'{said}, but it owed "{due}"', cite)
            return
        what = _message_to(() if pathless else owed.path, receiver, round)
        differs = _first_field(rules.payload_fields(got.payload), rules.payload_fields(payload))
        if differs is None:
            unequal = _unequal(rules, got.payload, payload)
            self._flag(got.line, f"loyal general {general} sent {what}: {unequal}")
            return
        name, logged, computed = differs
        self._flag(
            got.line,
            f"loyal general {general} sent {what} with {name} {_excerpt(logged)}, "
            f"but the message it owed has {_excerpt(computed)}",
        )

    def _owed_but_missing(
        self, general: int, round: int, end: LogLine, owed: Outgoing, path: object, *, cut_off: bool
    ) -> None:
        """A loyal general's message that is not in the log: lost to a crash, cut off, or an inconsistency."""
        if self._crashed_by(general, round):
            self.lost[general] += 1
        elif cut_off:
            self._cut_off[(general, round)] += 1
        else:
            found = Inconsistency(end.number, _missing(general, round, owed, path))
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
        nor traitor, as in the run that wrote the log.  A log that stops
        before its last ``round.end`` is flagged, and its cores are taken
        through the rounds left without messages, so they can still decide.
        """
        self._settle_crashes()
        if self.rounds_ended < self.rounds:
            last = self.verdicts.get(None)
            self._flag(
                last.number if last else 0, f"the log has no round.end for round {self.rounds_ended + 1}"
            )
            for round in range(self.rounds_ended + 2, self.rounds + 1):
                self._open(round)
            self._owed.clear()
        verdicts = []
        for instance, states in enumerate(self.states):
            decided = {g: core.decide() for g, core in states.items() if g not in self.crashed}
            self._check_decisions(instance, decided)
            loyal = {g: decided[g] for g in self.scenario.loyal if g not in self.crashed}
            setup = self.scenario.setup_for(instance)
            order = self.instances[instance].order
            verdict = judge(setup, loyal, loyal=self.scenario.loyal, order=order, crashed=self.crashed)
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
            "rounds": self.rounds,
        }
        for key, value in computed.items():
            if line.fields[key] != value:
                logged = json.dumps(line.fields[key])
                self._flag(
                    line.number, f"the verdict says {key} {logged}, replay computes {json.dumps(value)}"
                )


def _published_setups(rules: Algorithm, scenario: Scenario, start: LogLine) -> tuple[Setup, ...]:
    """The run's setups: the scenario's, with the identities run.start publishes when they are not the seed's.

    A log written in one process publishes what the seed gives, and its
    cores sign every loyal message again, byte for byte.  A cluster's nodes
    publish keys of their own, which replay never holds: its cores then
    check signatures against those, and loyal messages by what they can
    (:meth:`~om_actors.algorithm.Core.matches`).  Identities the algorithm
    could not have recorded leave the seed's, and :meth:`Reconstruction._check_public`
    names the difference.
    """
    setups = scenario.setups
    logged = start.fields.get("public")
    if logged == json.loads(json.dumps(rules.record(setups[0]) or None, default=json_fallback)):
        return setups
    identities = rules.identities_in(logged, scenario.generals)
    if not identities:
        return setups
    return tuple(attrs.evolve(setup, identities=identities) for setup in setups)


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
    return json.dumps(path, default=json_fallback)


def _excerpt(value: object) -> str:
    text = json.dumps(value, default=json_fallback)
    return text if len(text) <= 60 else text[:57] + "..."


_MISSING = object()


def _difference(logged: object, computed: object, where: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Where two JSON values first differ, as the keys that lead there."""
    if isinstance(logged, dict) and isinstance(computed, dict):
        for key in sorted(logged.keys() | computed.keys()):
            if logged.get(key, _MISSING) != computed.get(key, _MISSING):
                return _difference(logged.get(key, _MISSING), computed.get(key, _MISSING), (*where, key))
    return where


def _at(value: object, where: tuple[str, ...]) -> object:
    for key in where:
        value = value.get(key, _MISSING) if isinstance(value, dict) else _MISSING
    return value


def _public_mismatch(title: str, logged: object, computed: object) -> str:
    where = _difference(logged, computed)

    def shown(value: object) -> str:
        return "nothing" if value is _MISSING or value is None else _excerpt(value)

    name = ".".join(["public", *where])
    return (
        f"run.start has {name} {shown(_at(logged, where))}, but {title} publishes "
        f"{shown(_at(computed, where))} for this scenario and seed"
    )


def _first_field(logged: dict[str, object], computed: dict[str, object]) -> tuple[str, object, object] | None:
    """The first field in which two payloads differ; in a list, the first item that differs.

    ``None`` when no field differs: two payloads can still be unequal then
    (see :func:`_unequal`).
    """
    name = next((name for name in computed if logged.get(name) != computed[name]), None)
    if name is None:
        return None
    mine, theirs = logged.get(name), computed[name]
    if isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs):
        index = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
        if index is not None:
            return f"{name}[{index}]", mine[index], theirs[index]
    return name, mine, theirs


def _unequal(rules: Algorithm, logged: object, computed: object) -> str:
    """Why a logged payload differs from the one owed although every field reads the same.

    The log holds fields only, read back as the algorithm's declared
    :attr:`~om_actors.algorithm.Algorithm.payload` class, so a core whose
    ``compose`` returns another class can never match its own log.
    """
    declared, composed = rules.payload, type(computed)
    if composed is not declared:
        return (
            f"every field is the one it owed, but {rules.title} composes a {composed.__qualname__} "
            f"where its payload class is {declared.__qualname__}, so no logged message can match: "
            "the algorithm's compose must return its payload class"
        )
    return (
        f"every field reads as the one it owed, yet {declared.__qualname__} compares the two unequal "
        "(a field that is not equal to itself, or an __eq__ of its own): the algorithm's payload "
        "must compare equal field for field"
    )


def _rejection_mismatch(
    sender: int,
    receiver: int,
    round: int,
    path: object,
    computed: list[tuple[str, int]],
    logged: list[tuple[str, int]],
) -> str:
    def verdict(rejections: list[tuple[str, int]]) -> str:
        return "rejected for " + "; ".join(r for r, _ in rejections) if rejections else "accepted"

    where = f" along {_show(path)} from {sender}" if path != () else f" from {sender} in round {round}"
    return (
        f"general {receiver}, message{where}: the log says {verdict(logged)}, "
        f"the protocol says {verdict(computed)}"
    )


def _message_to(path: object, receiver: int, round: int) -> str:
    """A message in words: by its path, or, for an algorithm whose messages carry none, by its round."""
    return f"{_show(path)} to {receiver}" if path != () else f"a message to {receiver} in round {round}"


def _sent_too_often(path: object, receiver: int, round: int, sent: int, owed: int) -> str:
    """More messages along a path to a receiver than owed: ``sent [0, 1] to 3 twice, but owed it once``."""
    if path == ():
        return f"sent {sent} messages to {receiver} in round {round}, but owed {owed}"
    return f"sent {_show(path)} to {receiver} {_times(sent)}, but owed it {_times(owed)}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _missing(general: int, round: int, owed: Outgoing, path: object) -> str:
    to = f"along {_show(owed.path)} to {owed.receiver}" if path != () else f"to {owed.receiver}"
    return (
        f'loyal general {general} owed "{owed.value}" {to} in round {round}, but the log has no such message'
    )


def reconstruct(
    path: LogPath,
    *,
    watching: Collection[tuple[int, int]] | None = None,
    on_read: ReadProgress | None = None,
) -> Reconstruction:
    """Stream the log at ``path`` once and rebuild every general from it.

    ``watching`` limits whose arrivals are kept, as ``(instance, general)``
    pairs (explain needs one general's; replay none); ``None`` keeps all.
    ``on_read`` is :func:`~om_actors.log.read_log`'s.
    """
    lines = read_log(path, on_read=on_read)
    reconstruction = Reconstruction(os.fspath(path), next(lines), watching=watching)
    for line in lines:
        reconstruction.feed(line)
    reconstruction.finish()
    return reconstruction


SUMMARY_ONLY = (
    "this log of a batched run holds round summaries, not messages, so no general can be rebuilt from it "
    "to replay, explain or draw: replay --rerun checks it by running it again, and run --log-messages "
    "(or run --html) logs every message"
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


def replay_log(path: LogPath, *, on_read: ReadProgress | None = None) -> ReplayReport:
    """Recompute a logged run with its algorithm's cores and compare.

    ``on_read(bytes)`` is told how far through the log replay has got, for
    a progress bar (:func:`~om_actors.log.read_log`).  Raises
    :class:`LogError` for a log that cannot be read at all.
    """
    if _summary_only(next(read_log(path))):
        return ReplayReport(0, (), summary_only=True)
    reconstruction = reconstruct(path, watching=(), on_read=on_read)
    found = sorted(reconstruction.inconsistencies, key=lambda i: i.line)
    return ReplayReport(
        reconstruction.messages,
        tuple(_with_cited_lines(path, reconstruction, found)),
        undelivered=reconstruction.undelivered,
        crashes=reconstruction.crashes(),
    )


def _with_cited_lines(
    path: LogPath, reconstruction: Reconstruction, found: list[Inconsistency]
) -> list[Inconsistency]:
    """Say where each bad relay came from, with a second pass, rather than keep every message in hand."""
    wanted = {(c.instance, c.receiver, c.path) for i in found if (c := i.cites) is not None}
    arrived: dict[Along, list[tuple[object, int]]] = defaultdict(list)
    if wanted:
        value_of = reconstruction.rules.value_of
        for line in read_log(path):
            if line.event == "message" and line.fields.get("delivered", True) is not False:
                key = (line.fields.get("instance") or 0, line.fields["receiver"], line.path)
                if key in wanted:
                    arrived[key].append((value_of(line.payload), line.number))
    return [_cited(i, i.cites, arrived, reconstruction) if i.cites else i for i in found]


def _cited(
    found: Inconsistency,
    cite: Cite,
    arrived: dict[Along, list[tuple[object, int]]],
    reconstruction: Reconstruction,
) -> Inconsistency:
    """The relay's sentence finished by what its general had received along the path it relayed."""
    along = arrived.get((cite.instance, cite.receiver, cite.path), [])
    match = next((number for value, number in along if value == cite.value), None)
    if match is not None:
        text = f'{cite.said}, but it received "{cite.value}" for {_show(cite.path)}'
        return attrs.evolve(found, message=text, cited_line=match)
    if along:
        return found
    default = reconstruction.scenario.setup_for(cite.instance).default
    owed = f'the default "{cite.value}"' if cite.value == default else f'"{cite.value}"'
    return attrs.evolve(
        found, message=f"{cite.said}, but it never received {_show(cite.path)}, so it owed {owed}"
    )


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

    A cluster's log is signed with keys only its nodes held, and a run
    here signs with the seed's: for such a log, ``public`` and the
    algorithm's :attr:`~om_actors.algorithm.Algorithm.keyed` fields are not
    compared, everything else is (``replay`` checks those signatures).

    Running again means running the traitors' strategies, and a
    ``module:Class`` one is code the log merely names: it is imported (from
    the folder of the scenario file the run read, which the log records)
    only with ``trust_strategies``, and otherwise refused with a
    :class:`LogError` naming it.  Built-in strategies need no trust.
    """
    import trio  # a rerun runs; checking a log never does

    from .orchestrator import simulate

    lines = read_log(path)
    first = next(lines)
    scenario = _trusted_scenario(os.fspath(path), first, trust_strategies=trust_strategies)
    compared = [0]
    pending: Iterator[LogLine] = _chain(first, lines)
    keyed = (
        scenario.rules.keyed
        if _published_setups(scenario.rules, scenario, first) != scenario.setups
        else None
    )

    def compare(event: Event) -> None:
        rendered = render(event)
        logged = next(pending, None)
        compared[0] += 1
        if logged is None:
            raise _Diverged(Divergence(compared[0], None, rendered))
        if not _same(logged.fields, json.loads(rendered), keyed):
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


def _same(logged: dict[str, Any], rerun: dict[str, Any], keyed: tuple[str, ...] | None = None) -> bool:
    """Whether a logged event is the rerun's, but for ``version`` and, for a cluster's log, its own keys.

    ``keyed`` names the payload fields made with a general's key when the
    log was signed with keys of a cluster's nodes (``None`` otherwise):
    those, and ``public``, are compared by shape only.
    """
    if logged.get("event") == "run.start":
        logged, rerun = {**logged, "version": None}, {**rerun, "version": None}
    if keyed is not None:
        logged, rerun = _unkeyed(logged, keyed), _unkeyed(rerun, keyed)
    return logged == rerun


def _unkeyed(fields: dict[str, Any], keyed: tuple[str, ...]) -> dict[str, Any]:
    """``fields`` with ``public`` and the ``keyed`` fields blanked, keeping how many items a list had."""
    blanked = {*keyed, "public"}
    return {
        name: ([None] * len(value) if isinstance(value, list) else None) if name in blanked else value
        for name, value in fields.items()
    }
