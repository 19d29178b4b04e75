"""The OM(m) algorithm as pure state: no trio, no logging, no clock.

Everything that runs OM(m) -- the trio actors, replay, verify -- drives this
module, in the manner of h11: messages go in through :meth:`General.receive`,
what to send comes out of :meth:`General.outbox`, and :meth:`General.decide`
evaluates the recursive majority.  Keeping I/O out means the algorithm can be
tested message by message, and that there is exactly one copy of the path
rules and of the majority.

A *path* is the chain of generals a value travelled along, starting with the
commander: ``(0, 3, 1)`` is "general 1 says general 3 says the commander said".
A message whose path has ``k`` generals travels in round ``k``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

import attrs

Path = tuple[int, ...]


@attrs.frozen
class Setup:
    """The parameters every general of one OM(m) instance shares."""

    generals: int
    m: int
    commander: int
    values: tuple[str, ...]
    default: str

    @property
    def rounds(self) -> int:
        return self.m + 1

    @property
    def lieutenants(self) -> tuple[int, ...]:
        return tuple(g for g in range(self.generals) if g != self.commander)


@attrs.frozen
class Outgoing:
    """One message a loyal general owes: ``value`` along ``path`` to ``receiver``."""

    path: Path
    receiver: int
    value: str


@attrs.frozen
class Rejection:
    """Why a delivered message was refused; the value then counts as missing."""

    reason: str


def messages_sent(generals: int, m: int) -> int:
    """Messages in a run where everyone sends everything they owe.

    Round ``k`` carries one message per ordered choice of ``k`` distinct
    non-commanders (the ``k - 1`` relayers and the receiver), so the total is
    ``sum(P(n - 1, k) for k in 1..m + 1)``.
    """
    return sum(math.perm(generals - 1, k) for k in range(1, m + 2))


def messages_received(generals: int, m: int) -> int:
    """Messages each lieutenant receives with full participation.

    Only paths that do not already contain the receiver reach it, so this
    counts ``sum(P(n - 2, k - 1) for k in 1..m + 1)``.  Some texts also count
    the paths through the receiver itself; we do not, because nobody sends
    those.
    """
    return sum(math.perm(generals - 2, k - 1) for k in range(1, m + 2))


def theorem_allows_failure(generals: int, m: int, traitors: int) -> bool:
    """Whether the paper's theorem leaves OM(m) free to fail here.

    It promises IC1 and IC2 only with more than ``3m`` generals and at most
    ``m`` traitors; outside that, a violation is no bug.
    """
    return generals <= 3 * m or traitors > m


def majority(votes: Iterable[str], default: str) -> str:
    """The value held by more than half of ``votes``, else ``default``.

    A strict majority, as in the paper: a tie never picks a side, which is
    what lets loyal generals that saw a tie still agree with each other.
    """
    counts = Counter(votes)
    total = counts.total()
    if not total:
        return default
    value, count = counts.most_common(1)[0]
    return value if 2 * count > total else default


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
) -> str | None:
    """Why ``receiver`` must refuse this message, or ``None`` to accept it.

    ``sender`` and ``round`` come from the runtime, never from the message, so
    a traitor can lie about values but not about who is speaking: a path whose
    last hop is not the sender is a forgery.
    """
    # Written for speed: every message of a run passes through here.
    if type(path) is not tuple or not path or set(map(type, path)) != _INT:
        return "malformed path"
    if min(path) < 0 or max(path) >= setup.generals:
        return "path names a general out of range"
    if path[0] != setup.commander:
        return "path does not start with the commander"
    if path[-1] != sender:
        return "path does not end with the sender"
    if len(set(path)) != len(path):
        return "path repeats a general"
    if receiver in path:
        return "path contains the receiver"
    if len(path) != round:
        return f"path has the wrong length for round {round}"
    if not isinstance(value, str) or value not in setup.values:
        return "value outside the domain"
    return None


_INT = {int}
"""The only element type of a well-formed path: ``bool`` is an int, but not a general."""


class General:
    """One general's view of one OM(m) instance.

    It stores what it accepted, by path, and derives everything else from
    that: what it relays and what it decides.  A value that never arrived, or
    was rejected, counts as ``setup.default`` -- assumption A3 of the paper,
    which lets a loyal general treat silence like any other lie.
    """

    def __init__(self, setup: Setup, me: int, order: str | None = None) -> None:
        self.setup = setup
        self.me = me
        self.order = order if order is not None else setup.default
        self._received: dict[Path, str] = {}

    @property
    def received(self) -> Mapping[Path, str]:
        return self._received

    def receive(self, *, sender: int, round: int, path: object, value: object) -> Rejection | None:
        """Accept a delivered message, or say why it was refused.

        A refused message leaves no trace in the state, so a traitor's garbage
        can never crash or sway a loyal general beyond counting as missing.
        """
        reason = rejection_reason(
            self.setup, receiver=self.me, sender=sender, round=round, path=path, value=value
        )
        if reason is None and path in self._received:
            reason = "duplicate message"
        if reason is not None:
            return Rejection(reason)
        assert isinstance(path, tuple)
        assert isinstance(value, str)
        self._received[path] = value
        return None

    def held(self, path: Path) -> str:
        """The value this general holds for ``path``: what arrived, else the default."""
        return self._received.get(path, self.setup.default)

    def outbox(self, round: int) -> Iterator[Outgoing]:
        """What a loyal general sends in ``round``, in path order, then receiver order.

        In round 1 only the commander speaks.  In round ``k + 1`` a lieutenant
        relays every round-``k`` path it could have received, appending itself,
        to every general not yet on the path -- including paths that never
        arrived, which it relays as the default.
        """
        setup = self.setup
        if round == 1:
            if self.me == setup.commander:
                for receiver in setup.lieutenants:
                    yield Outgoing((self.me,), receiver, self.order)
            return
        if self.me == setup.commander:
            return
        for path in paths_of_round(setup, round - 1, excluding=self.me):
            value = self.held(path)
            relayed = (*path, self.me)
            for receiver in range(setup.generals):
                if receiver not in relayed:
                    yield Outgoing(relayed, receiver, value)

    def children(self, path: Sequence[int]) -> list[Path]:
        """The sub-paths whose values vote with ``path``'s own in the majority."""
        if len(path) >= self.setup.rounds:
            return []
        return [(*path, g) for g in range(self.setup.generals) if g not in path and g != self.me]

    def resolve(self, path: Path) -> str:
        """``OM(path)`` as this general evaluates it: the recursive majority."""
        children = self.children(path)
        if not children:
            return self.held(path)
        votes = [self.held(path), *(self.resolve(child) for child in children)]
        return majority(votes, self.setup.default)

    def explain(self, path: Path, depth: int | None = None) -> Node:
        """``OM(path)`` with its working shown: every vote, down to ``depth`` levels.

        Below ``depth`` the values are still computed, so the majorities shown
        are the real ones; only the nodes are left out.
        """
        children = self.children(path)
        if not children:
            return Node(path, self.held(path), (), self.held(path), (), 0)
        if depth == 0:
            return Node(path, self.held(path), (), self.resolve(path), (), _subtree_size(self, path) - 1)
        below = None if depth is None else depth - 1
        nodes = tuple(self.explain(child, below) for child in children)
        votes = (self.held(path), *(node.value for node in nodes))
        return Node(path, self.held(path), votes, majority(votes, self.setup.default), nodes, 0)

    def decide(self) -> str:
        """The final decision; a commander trusts its own order."""
        if self.me == self.setup.commander:
            return self.order
        return self.resolve((self.setup.commander,))


@attrs.frozen
class Node:
    """One step of the recursive majority, as :meth:`General.explain` shows it.

    ``votes`` is the path's own value followed by its children's results,
    empty for a leaf (whose value is simply what arrived) and for a node cut
    off by the depth limit, which then counts its ``hidden`` descendants.
    """

    path: Path
    held: str
    votes: tuple[str, ...]
    value: str
    children: tuple[Node, ...]
    hidden: int


def _subtree_size(general: General, path: Path) -> int:
    """Nodes in the recursion tree at and below ``path``.

    Each level down adds one general who is neither on the path nor the
    evaluating general, so level ``d`` holds ``P(available, d)`` nodes.
    """
    available = general.setup.generals - len(path) - (general.me not in path)
    levels = general.setup.rounds - len(path)
    return sum(math.perm(available, d) for d in range(levels + 1))


@attrs.frozen
class Verdict:
    """The two interactive-consistency conditions of the paper.

    ``validity`` is ``None`` when the commander is a traitor: IC2 says nothing
    then.  With fewer than two loyal lieutenants agreement holds trivially.
    """

    agreement: bool
    validity: bool | None

    @property
    def success(self) -> bool:
        return self.agreement and self.validity is not False


def judge(setup: Setup, decisions: Mapping[int, str], *, loyal: Iterable[int], order: str) -> Verdict:
    """The verdict for the decisions of the loyal generals in ``loyal``."""
    loyal = set(loyal)
    lieutenant_decisions = {decisions[g] for g in setup.lieutenants if g in loyal}
    agreement = len(lieutenant_decisions) <= 1
    validity = None
    if setup.commander in loyal:
        validity = lieutenant_decisions <= {order}
    return Verdict(agreement=agreement, validity=validity)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for several instances run together: each condition must hold in all.

    Validity is ``None`` only when it is ``None`` in every instance, that is
    when every commander is a traitor.
    """
    verdicts = list(verdicts)
    validities = [v.validity for v in verdicts if v.validity is not None]
    return Verdict(
        agreement=all(v.agreement for v in verdicts),
        validity=all(validities) if validities else None,
    )
