"""Lamport, Shostak and Pease's oral-messages algorithm OM(m), as pure state.

No trio, no logging, no clock: everything that runs OM(m) drives
:class:`OralGeneral` through the :class:`~om_actors.algorithm.Core` interface
-- messages go in through ``receive``, what to send comes out of ``outbox``,
and ``decide`` evaluates the recursive majority.  This is the one copy of the
path rules and of the majority; the batched runtime's NumPy majority
(:mod:`om_actors.eig`) is its second form, and the differential tests hold
the two to the same answers.

A *path* is the chain of generals a value travelled along, starting with the
commander: ``(0, 3, 1)`` is "general 1 says general 3 says the commander said".
A message whose path has ``k`` generals travels in round ``k``.
"""

from __future__ import annotations

import enum
import itertools
import math
import weakref
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence

import attrs

from .algorithm import Algorithm, Core, DecisionPoint, Outgoing, Path, Setup, Step
from .strategies import BUILT_IN


class OralReason(str, enum.Enum):
    """Why a general refuses an oral message; the value then counts as missing."""

    MALFORMED_PATH = "malformed path"
    OUT_OF_RANGE = "path names a general out of range"
    NOT_FROM_COMMANDER = "path does not start with the commander"
    NOT_FROM_SENDER = "path does not end with the sender"
    REPEATS = "path repeats a general"
    THROUGH_RECEIVER = "path contains the receiver"
    WRONG_ROUND = "path has the wrong length for the round"
    OUTSIDE_DOMAIN = "value outside the domain"
    DUPLICATE = "duplicate message"
    MALFORMED_MESSAGE = "malformed message"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Relay:
    """An oral message: ``value``, said to have travelled along ``path``.

    Nothing vouches for either: a traitor may put anything in both, and the
    receiver judges them by the path rules.
    """

    path: object
    value: object


def messages_sent(generals: int, m: int, *, limit: int | None = None) -> int:
    """Messages in a run where everyone sends everything they owe.

    Round ``k`` carries one message per ordered choice of ``k`` distinct
    non-commanders (the ``k - 1`` relayers and the receiver), so the total is
    ``sum(P(n - 1, k) for k in 1..m + 1)``.  With ``limit``, the count stops
    at the first partial sum past it: at most ``m + 1`` multiplications of
    numbers no bigger than ``limit * generals``, so even ``10**35`` generals
    are answered at once.
    """
    if generals < 2 or m < 0:
        return 0
    total, level = 0, 1
    for k in range(1, m + 2):
        level *= generals - k  # P(n - 1, k) from P(n - 1, k - 1)
        if level <= 0:
            break
        total += level
        if limit is not None and total > limit:
            break
    return total


def messages_received(generals: int, m: int) -> int:
    """Messages each lieutenant receives with full participation.

    Only paths that do not already contain the receiver reach it, so this
    counts ``sum(P(n - 2, k - 1) for k in 1..m + 1)``.  Some texts also count
    the paths through the receiver itself; we do not, because nobody sends
    those.
    """
    return sum(math.perm(generals - 2, k - 1) for k in range(1, m + 2))


def majority(votes: Iterable[str], default: str) -> str:
    """The value held by more than half of ``votes``, else ``default``.

    A strict majority, as in the paper: a tie never picks a side, which is
    what lets loyal generals that saw a tie still agree with each other.
    Votes usually take two or three values, and counting each of those in
    C is several times cheaper than a :class:`~collections.Counter`.
    """
    ballot = list(votes)
    distinct = set(ballot)
    counts = Counter(ballot) if len(distinct) > _FEW_VALUES else {v: ballot.count(v) for v in distinct}
    for value, count in counts.items():
        if 2 * count > len(ballot):
            return value
    return default


_FEW_VALUES = 8
"""Up to this many different votes, each is counted on its own; beyond, all in one pass."""


def _majority_letter(ballot: str, default: str) -> str:
    """:func:`majority` of votes spelled one letter a value: the fold's form, held equal to it by a test."""
    for letter in set(ballot):
        if 2 * ballot.count(letter) > len(ballot):
            return letter
    return default


def paths_of_round(setup: Setup, round: int, *, excluding: int) -> Iterator[Path]:
    """The paths of ``round`` that do not pass through ``excluding``, in order.

    These are exactly the paths ``excluding`` receives in that round, and the
    order is lexicographic, which is the order the log uses.
    """
    others = [g for g in setup.lieutenants if g != excluding]
    for relayers in itertools.permutations(others, round - 1):
        yield (setup.commander, *relayers)


def rejection_reason(
    setup: Setup, *, receiver: int, sender: int, round: int, path: object, value: object
) -> OralReason | None:
    """Why ``receiver`` must refuse this message, or ``None`` to accept it.

    ``sender`` and ``round`` come from the runtime, never from the message, so
    a traitor can lie about values but not about who is speaking: a path whose
    last hop is not the sender is a forgery.
    """
    if type(path) is not tuple or not path or set(map(type, path)) != _INT:
        return OralReason.MALFORMED_PATH
    if min(path) < 0 or max(path) >= setup.generals:
        return OralReason.OUT_OF_RANGE
    if path[0] != setup.commander:
        return OralReason.NOT_FROM_COMMANDER
    if path[-1] != sender:
        return OralReason.NOT_FROM_SENDER
    if len(set(path)) != len(path):
        return OralReason.REPEATS
    if receiver in path or len(path) != round:
        return _misdirection(path, receiver, sender, round)
    if not isinstance(value, str) or value not in setup.values:
        return OralReason.OUTSIDE_DOMAIN
    return None


def _misdirection(path: Path, receiver: int, sender: int, round: int, /) -> OralReason | None:
    """The rules of :func:`rejection_reason` that depend on who sends and receives it, and when.

    Apart, because the rest depend on the message alone: a loyal general's
    relay goes to up to ``n - 2`` receivers as one object, and once one of
    them found it well-formed, the others need only ask this.
    """
    if path[-1] != sender:
        return OralReason.NOT_FROM_SENDER
    if receiver in path:
        return OralReason.THROUGH_RECEIVER
    if len(path) != round:
        return OralReason.WRONG_ROUND
    return None


def refusal(
    setup: Setup, *, receiver: int, sender: int, round: int, payload: object, seen: Container[object]
) -> OralReason | None:
    """Why ``receiver`` refuses this payload, ``seen`` holding the paths it already has; ``None`` to take it.

    Every OM(m) runtime judges a message here: the per-message core and the
    batched store's one-by-one messages alike.
    """
    if type(payload) is not Relay:
        return OralReason.MALFORMED_MESSAGE
    path = payload.path
    reason = rejection_reason(
        setup, receiver=receiver, sender=sender, round=round, path=path, value=payload.value
    )
    if reason is None and path in seen:
        return OralReason.DUPLICATE
    return reason


_INT = {int}
"""The only element type of a well-formed path: ``bool`` is an int, but not a general."""

_WellFormed = dict[int, tuple["Relay", Path, str]]

_WELL_FORMED: weakref.WeakKeyDictionary[Setup, _WellFormed] = weakref.WeakKeyDictionary()
"""Relays some general of an instance accepted, by identity, so its other receivers skip the path rules.

Keyed by identity, not equality: ``(0, True)`` equals ``(0, 1)``, and only
the very object that was judged is spared.  Holding it keeps its ``id``
from being reused; the entries go with their instance's :class:`Setup`.
"""

_WELL_FORMED_KEPT = 1 << 16
"""How many relays one instance remembers before starting afresh: verify runs thousands of adversaries
on one setup, and memory must not grow with them."""


def _remember_well_formed(well_formed: _WellFormed, relay: Relay, path: Path, value: str) -> None:
    """Remember an accepted ``relay`` whose judgement cannot change: a frozen path of ints, a plain string."""
    if type(value) is str:
        if len(well_formed) >= _WELL_FORMED_KEPT:
            well_formed.clear()
        well_formed[id(relay)] = (relay, path, value)


class OralGeneral(Core):
    """One general's view of one OM(m) instance.

    It stores what it accepted, by path, and derives everything else from
    that: what it relays and what it decides.  A value that never arrived, or
    was rejected, counts as ``setup.default`` -- assumption A3 of the paper,
    which lets a loyal general treat silence like any other lie.
    """

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None = None) -> None:
        super().__init__(algorithm, setup, me, order)
        self._received: dict[Path, str] = {}
        self._last = Relay((), None)
        self._well_formed = _WELL_FORMED.setdefault(setup, {})
        self._letters = {
            value: chr(i) for i, value in enumerate(dict.fromkeys((*setup.values, setup.default)))
        }
        self._spelled = {letter: value for value, letter in self._letters.items()}

    @property
    def received(self) -> Mapping[Path, str]:
        return self._received

    def _receive(self, sender: int, round: int, payload: object) -> OralReason | None:
        refused = self._receive_all(sender, round, (payload,))
        return refused[0][1] if refused else None

    def _receive_all(
        self, sender: int, round: int, payloads: Sequence[object]
    ) -> list[tuple[int, OralReason]]:
        """Each relay judged once per instance: one another receiver took is only checked for misdirection."""
        refused: list[tuple[int, OralReason]] = []
        well_formed, received, me = self._well_formed, self._received, self.me
        for index, payload in enumerate(payloads):
            known = well_formed.get(id(payload))
            if known is None or known[0] is not payload:
                reason = self._judge(sender, round, payload)
            else:
                path = known[1]
                reason = _misdirection(path, me, sender, round)
                if reason is None:
                    if path in received:
                        reason = OralReason.DUPLICATE
                    else:
                        received[path] = known[2]
            if reason is not None:
                refused.append((index, reason))
        return refused

    def _judge(self, sender: int, round: int, payload: object) -> OralReason | None:
        """Every path rule, for a payload no receiver of this instance has accepted yet."""
        reason = refusal(
            self.setup, receiver=self.me, sender=sender, round=round, payload=payload, seen=self._received
        )
        if reason is not None:
            return reason
        assert isinstance(payload, Relay)
        assert isinstance(payload.path, tuple)
        assert isinstance(payload.value, str)
        self._received[payload.path] = payload.value
        _remember_well_formed(self._well_formed, payload, payload.path, payload.value)
        return None

    def held(self, path: Path) -> str:
        """The value this general holds for ``path``: what arrived, else the default."""
        return self._received.get(path, self.setup.default)

    def _outbox(self, round: int) -> list[Outgoing]:
        """What a loyal general sends in ``round``, in path order, then receiver order.

        In round 1 only the commander speaks.  In round ``k + 1`` a lieutenant
        relays every round-``k`` path it could have received, appending itself,
        to every general not yet on the path -- including paths that never
        arrived, which it relays as the default.
        """
        return list(owed(self.setup, self.me, round, self.held if round > 1 else lambda _: self.order))

    def _sends(self, round: int) -> Iterator[tuple[int, Relay]]:
        """What :meth:`_outbox` and :meth:`_compose` give, without an :class:`Outgoing` per message.

        A lieutenant of thirteen generals sends 9,000-odd relays in round
        five, and one :class:`Relay` per path serves all of its receivers.
        """
        held = self.held if round > 1 else lambda _: self.order
        for path, value, receivers in owed_by_path(self.setup, self.me, round, held):
            relay = Relay(path, value)
            for receiver in receivers:
                yield receiver, relay

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Relay:
        """One frozen :class:`Relay` per path and value, shared by every receiver it goes to.

        A relay goes to up to ``n - 2`` generals with the same path and
        value, and a big run holds a round's messages until the round ends:
        sharing the payload keeps one object where there would be one per
        receiver.
        """
        last = self._last
        if last.path is path and last.value is value:
            return last
        self._last = relay = Relay(path, value)
        return relay

    def children(self, path: Sequence[int]) -> list[Path]:
        """The sub-paths whose values vote with ``path``'s own in the majority."""
        if len(path) >= self.rounds:
            return []
        return [(*path, g) for g in range(self.setup.generals) if g not in path and g != self.me]

    def resolve(self, path: Path) -> str:
        """``OM(path)`` as this general evaluates it: the recursive majority, folded level by level.

        The tree below ``path`` is ``path`` followed by every arrangement of
        the generals still free to relay, and :func:`itertools.permutations`
        lists each level in an order where a node's children sit side by
        side, in the order :meth:`children` gives them.  So each level is one
        string, a letter per held value, built without a Python call per
        path, and folding it into the level above is a majority per slice,
        counted in C: the same votes as the recursion, without its 9,000-odd
        calls per decision.
        """
        free = [g for g in range(self.setup.generals) if g not in path and g != self.me]
        below = max(self.rounds - len(path), 0)
        default = self._letters[self.setup.default]
        votes = self._level(path, free, below)
        for depth in range(below - 1, -1, -1):
            width = len(free) - depth
            own = self._level(path, free, depth)
            votes = "".join(
                [
                    _majority_letter(value + votes[i * width : (i + 1) * width], default)
                    for i, value in enumerate(own)
                ]
            )
        return self._spelled[votes[0]]

    def _level(self, path: Path, free: list[int], depth: int) -> str:
        """The values held for ``path`` extended by every arrangement of ``depth`` of ``free``, a letter each.

        Every value held passed the domain rule, so each has its letter; a
        level as one string lets :func:`_majority_letter` count its votes in C.
        """
        paths = map(path.__add__, itertools.permutations(free, depth))
        held = map(self._received.get, paths, itertools.repeat(self.setup.default))
        return "".join(map(self._letters.__getitem__, held))

    def explain(self, path: Path, depth: int | None = None) -> MajorityStep:
        """``OM(path)`` with its working shown: every vote, down to ``depth`` levels.

        Below ``depth`` the values are still computed, so the majorities shown
        are the real ones; only the nodes are left out.
        """
        children = self.children(path)
        if not children:
            return MajorityStep(path, self.held(path), (), self.held(path), (), 0)
        if depth == 0:
            hidden = _subtree_size(self, path) - 1
            return MajorityStep(path, self.held(path), (), self.resolve(path), (), hidden)
        below = None if depth is None else depth - 1
        steps = tuple(self.explain(child, below) for child in children)
        votes = (self.held(path), *(step.value for step in steps))
        return MajorityStep(path, self.held(path), votes, majority(votes, self.setup.default), steps, 0)

    def _decide(self) -> str:
        """The final decision; a commander trusts its own order."""
        if self.me == self.setup.commander:
            return self.order
        return self.resolve((self.setup.commander,))


def owed(setup: Setup, sender: int, round: int, held: Callable[[Path], str]) -> Iterator[Outgoing]:
    """Every message ``sender`` owes in ``round``, in log order: :func:`owed_by_path`, one per receiver."""
    for path, value, receivers in owed_by_path(setup, sender, round, held):
        for receiver in receivers:
            yield Outgoing(path, receiver, value)


def owed_by_path(
    setup: Setup, sender: int, round: int, held: Callable[[Path], str]
) -> Iterator[tuple[Path, str, list[int]]]:
    """Who-sends-what in OM(m): each path ``sender`` relays in ``round``, its value and its receivers.

    ``held`` gives the value the sender holds for a path of the round before
    (the order, for the commander in round 1).  Paths come in log order,
    receivers in ascending order.  This is the one copy of the rule;
    :func:`owed`, :meth:`OralGeneral.sends`, the batched store and the
    adversary space all read it.
    """
    if round == 1:
        if sender == setup.commander:
            yield (sender,), held((sender,)), list(setup.lieutenants)
        return
    if sender == setup.commander:
        return
    everyone = range(setup.generals)
    for path in paths_of_round(setup, round - 1, excluding=sender):
        relayed = (*path, sender)
        yield relayed, held(path), [receiver for receiver in everyone if receiver not in relayed]


@attrs.frozen
class MajorityStep:
    """One step of the recursive majority, as :meth:`OralGeneral.explain` shows it.

    ``votes`` is the path's own value followed by its children's results,
    empty for a leaf (whose value is simply what arrived) and for a step cut
    off by the depth limit, which then counts its ``hidden`` descendants.
    """

    path: Path
    held: str
    votes: tuple[str, ...]
    value: str
    children: tuple[MajorityStep, ...]
    hidden: int


def _subtree_size(general: OralGeneral, path: Path) -> int:
    """Steps in the recursion tree at and below ``path``.

    Each level down adds one general who is neither on the path nor the
    evaluating general, so level ``d`` holds ``P(available, d)`` steps.
    """
    available = general.setup.generals - len(path) - (general.me not in path)
    levels = general.rounds - len(path)
    return sum(math.perm(available, d) for d in range(levels + 1))


class OralMessages(Algorithm):
    """OM(m): m + 1 rounds of relaying every value along every path, then a recursive majority.

    The theorem (Lamport, Shostak and Pease 1982, theorem 1) promises IC1 and
    IC2 with more than ``3m`` generals and at most ``m`` traitors.
    """

    name = "om"
    title = "OM(m)"
    payload = Relay
    reasons = OralReason
    batchable = True

    def rounds(self, generals: int, m: int) -> int:
        return m + 1

    def problems(self, generals: int, m: int) -> list[str]:
        """Reported at the scenario's ``m``: a path of more than ``n - 1`` generals cannot exist."""
        if m > generals - 2:
            return [f"must be at most generals - 2 = {generals - 2}: no relay path can be longer than that"]
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        found = []
        needed = 3 * m + 1
        if generals < needed:
            found.append(
                f"{generals} generals are fewer than 3m + 1 = {needed}: "
                f"OM({m}) cannot guarantee agreement, and traitors can make loyal generals disagree"
            )
        if traitors > m:
            found.append(f"{traitors} traitors are more than m = {m}: OM({m}) is only built to survive {m}")
        return found

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        return messages_sent(generals, m, limit=limit)

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> OralGeneral:
        return OralGeneral(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return BUILT_IN

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        constants: list[tuple[str, dict[str, object]]] = [("constant", {"value": v}) for v in values]
        return [("flip", {}), ("split", {}), *constants, ("silent", {})]

    def explain(self, core: Core, *, path: Path | None = None, depth: int | None = None) -> Step:
        """The recursive majority from ``path`` (the commander's by default), vote by vote."""
        assert isinstance(core, OralGeneral)
        if core.round != core.rounds:
            core.decide()  # raises ProtocolMisuse, as deciding would
        if core.me == core.setup.commander:
            raise ValueError(
                f"general {core.me} is the commander: it decides its own order and evaluates no tree"
            )
        path = (core.setup.commander,) if path is None else path
        problem = _path_problem(core, path)
        if problem is not None:
            raise ValueError(problem)
        return _step(core.explain(path, depth))

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        """Paths of ``round`` that end with ``sender`` and miss ``receiver``: OM owes exactly these."""
        lieutenants = len(setup.lieutenants)
        if sender == receiver or not 1 <= round <= self.rounds(setup.generals, setup.m):
            return 0
        if round == 1:
            return int(sender == setup.commander)
        if setup.commander in (sender, receiver):
            return 0
        return math.perm(lieutenants - 2, round - 2)

    def decision_points(self, setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        """Which messages a general owes never depends on values, so the space is fixed before any run.

        A generator: a reader that only counts as far as its budget never
        lists the millions a big army has.
        """
        for round in range(1, self.rounds(setup.generals, setup.m) + 1):
            for out in owed(setup, traitor, round, lambda _: setup.default):
                yield DecisionPoint(round, out.path, out.receiver)

    def script_problem(self, setup: Setup, traitor: int, point: DecisionPoint) -> str | None:
        """The path rules, in words a scenario's author reads: exactly the decision points, never listed."""
        return relay_problem(self, setup, traitor, point)


def relay_problem(rules: Algorithm, setup: Setup, traitor: int, point: DecisionPoint) -> str | None:
    """Why ``traitor`` never relays along ``point``'s path to its receiver in its round, or ``None``.

    A relay path starts with the commander, ends with the traitor itself,
    repeats nobody and is no longer than the rounds, its receiver is not on
    it, and it is sent in the round its length says.  These are OM(m)'s
    paths, and SM(m)'s chains with the sender appended, so
    :class:`~om_actors.signed.SignedMessages` uses them too.
    """
    path, receiver, last = point.path, point.receiver, setup.generals - 1
    if not path:
        return "path is empty"
    outside = [g for g in path if not 0 <= g <= last]
    if outside:
        return f"path names general {outside[0]}, but ids run from 0 to {last}"
    if path[0] != setup.commander:
        return f"path must start with the commander ({setup.commander}), not {path[0]}"
    repeated = [g for i, g in enumerate(path) if g in path[:i]]
    if repeated:
        return f"path repeats general {repeated[0]}"
    rounds = rules.rounds(setup.generals, setup.m)
    if len(path) > rounds:
        return f"path has {len(path)} generals, but {rules.titled(setup.m)} paths have at most {rounds}"
    if path[-1] != traitor:
        return f"path must end with general {traitor}, the traitor itself, as all its messages do"
    if not 0 <= receiver <= last:
        return f"receiver {receiver}: ids run from 0 to {last}"
    if receiver in path:
        return f"receiver {receiver} is on the path, and nobody sends a general its own path back"
    if point.round != len(path):
        return f"a path of {len(path)} generals is sent in round {len(path)}, not round {point.round}"
    return None


def _path_problem(core: OralGeneral, path: Path) -> str | None:
    setup = core.setup
    if not path or path[0] != setup.commander:
        return f"a path starts with the commander, general {setup.commander}"
    if any(not 0 <= g < setup.generals for g in path):
        return f"general ids run from 0 to {setup.generals - 1}"
    if len(set(path)) != len(path):
        return "a path names each general at most once"
    if len(path) > core.rounds:
        return f"OM({setup.m}) paths have at most {core.rounds} generals"
    if core.me in path[1:]:
        return f"general {core.me} never receives a path through itself"
    return None


def _step(step: MajorityStep) -> Step:
    """A majority step as ``explain`` draws it: the votes tallied; a leaf's value is what arrived."""
    detail = f"votes {_tally(step.votes)}" if step.votes else ""
    children = tuple(_step(child) for child in step.children)
    return Step(f"OM({list(step.path)})", step.value, detail, children, step.hidden, step.path)


def _tally(votes: tuple[str, ...]) -> str:
    return ", ".join(f"{value} x{count}" for value, count in Counter(votes).most_common())


ORAL_MESSAGES = OralMessages()
"""OM(m), as the registry holds it."""
