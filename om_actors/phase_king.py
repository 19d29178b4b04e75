"""Phase King: Byzantine agreement in polynomially many messages, in its two classic forms.

Two algorithms live here, as pure state like :mod:`om_actors.oral` and
:mod:`om_actors.signed`, behind the same :class:`~om_actors.algorithm.Core`
interface:

- ``phase-king`` (:class:`PhaseKing`), the textbook form for ``n > 4t``
  (Kshemkalyani and Singhal, figure 14.11; Attiya and Welch, section 5.2.4):
  phases of two rounds -- everyone broadcasts its value, then the phase's
  king broadcasts the most frequent value it saw.  A general keeps its own
  most frequent value ``maj`` if its count ``mult`` is more than ``n/2 + t``,
  else it takes the king's.
- ``phase-king-3t`` (:class:`GradedPhaseKing`), the form for the optimal
  ``n > 3t``, as Abraham and Lewis-Pye state it (Decentralized Thoughts,
  "Phase-King through the lens of Gradecast", 2022): phases of three rounds,
  a two-round *graded consensus* and then the king's round.  A general keeps
  its value if its grade is 2, else it takes the king's.

Both solve the Byzantine generals problem the way the project poses it, with
a commander: round 1 carries the commander's order, and each general's value
starts as the order it received (``default`` if none), the commander's as
its own order.  Then come ``t + 1`` phases, ``t`` being the scenario's
``m``; the king of phase ``k`` is general ``k - 1``, so the kings are the
first ``t + 1`` generals in id order, and at least one of them is loyal.
Every general decides its value after the last phase; the commander, as in
every algorithm here, decides its own order.

A message carries no path: ``kind``, ``phase`` and ``value``.  The runtime
stamps the sender, and that is what makes a message attributable -- a
message of the wrong kind or phase for the round, or a king message from a
general that is not this phase's king, is refused with its reason.  See
``docs/phase-king.md`` for the sources, the multi-valued argument and every
rejection reason.
"""

from __future__ import annotations

import abc
import enum
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

import attrs

from .algorithm import Algorithm, Core, DecisionPoint, Outgoing, Path, Setup, Step
from .strategies import BUILT_IN, Constant, Flip, Loyal, RandomChoice, Scripted, Silent, Split


class KingReason(str, enum.Enum):
    """Why a general refuses a Phase King message; it then counts as missing.

    The runtime's round, never the message, says which kind and phase are
    due, and the runtime's stamp says who sent it.
    """

    MALFORMED_MESSAGE = "malformed message"
    WRONG_ROUND = "kind or phase does not match the round"
    NOT_COMMANDER = "only the commander sends an order"
    NOT_KING = "only this phase's king sends a king message"
    OUTSIDE_DOMAIN = "value outside the domain"
    DUPLICATE = "second message from the same general this round"

    def __str__(self) -> str:
        return self.value


class Kind(str, enum.Enum):
    """What a round is for, and what its messages say they are."""

    ORDER = "order"
    """Round 1: the commander's order to each lieutenant."""
    BROADCAST = "broadcast"
    """A phase's first round: every general sends its value to every other."""
    PROPOSE = "propose"
    """``phase-king-3t`` only, a phase's second round: a value ``n - t`` generals broadcast."""
    KING = "king"
    """A phase's last round: the king sends its value to every other general."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class KingMessage:
    """One Phase King message: its ``kind``, its ``phase`` (0 for the order) and its ``value``.

    No path: the runtime-stamped sender is what the receiver attributes it
    to.  A loyal or traitorous core stamps ``kind`` and ``phase`` from the
    round it sends in, and a strategy chooses only the value; the fields are
    typed ``object`` because a log or a network peer may carry anything,
    and judging it is :meth:`Core.receive`'s job.
    """

    kind: object
    phase: object
    value: object


NOTHING = ""
"""The loyal value of an offer a loyal general would *not* send (see :meth:`GradedGeneral._offers`).

No scenario value is empty, so it is no value a general could mean.
"""


def leader(counts: Mapping[str, int], values: Sequence[str]) -> str | None:
    """The value counted most in ``counts``, a tie going to the first in ``values``; ``None`` if none.

    ``phase-king-3t``'s thresholds are above ``n/2`` within its bound, so at
    most one value ever reaches them there; past the bound this is the
    fixed rule that picks one.
    """
    best: str | None = None
    for value in values:
        if counts.get(value, 0) > 0 and (best is None or counts[value] > counts[best]):
            best = value
    return best


# --- one general ----------------------------------------------------------------------


@attrs.frozen
class PhaseRecord:
    """What one general saw and did in one phase of ``phase-king``: one row of ``explain``'s table."""

    phase: int
    king: int
    start: str
    maj: str
    mult: int
    king_value: str | None
    """What the king said, ``None`` if nothing valid arrived (the king's own: its ``maj``)."""
    kept: bool
    """Whether ``mult > n/2 + t``, so ``maj`` was kept and the king not followed."""
    end: str


@attrs.frozen
class GradedRecord:
    """What one general saw and did in one phase of ``phase-king-3t``: one row of ``explain``'s table."""

    phase: int
    king: int
    start: str
    support: int
    """How many generals (itself included) broadcast the value it proposed, or its best-backed value."""
    proposal: str | None
    """The value it proposed in the phase's second round: one ``n - t`` generals broadcast, else ``None``."""
    graded: str
    grade: int
    backing: int
    """How many proposals (its own included) backed ``graded``; 0 for grade 0."""
    king_value: str | None
    kept: bool
    """Whether the grade was 2, so the king was not followed."""
    end: str


class KingCore(Core):
    """What both forms share: the commander's round, the phases' bookkeeping, judging a message.

    A round's messages are taken as they come; what they mean is worked out
    when the next round opens (or at the decision), once all are in.  So a
    core gives the same answers whatever order one round's messages arrive
    in: only the set of what arrived counts.
    """

    algorithm: PhaseKingAlgorithm

    def __init__(self, algorithm: PhaseKingAlgorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.algorithm = algorithm
        self.value: str = self.order if me == setup.commander else setup.default
        """The general's value ``v``: its order at first, then what each phase ends with."""
        self.received_order: str | None = None
        self.heard: dict[int, str] = {}
        """This round's accepted values, by sender."""
        self._values = frozenset(setup.values)
        self._others = tuple(g for g in range(setup.generals) if g != me)
        self._closed = 0
        """The last round whose messages have been taken into account."""
        self._kind, self._phase = Kind.ORDER, 0
        """The open round's kind and phase: every message of a round is judged and composed against them."""
        self._king = -1
        """The open round's king, for a king round."""
        self._composed: dict[str, KingMessage] = {}
        """This round's payloads by value: a loyal general says one value to all, so one object will do."""
        self._start = self.value
        """The value the current phase started with, for its row in ``explain``."""
        self.phases: Sequence[PhaseRecord | GradedRecord] = []
        """What each phase came to, one record per phase so far: ``explain``'s rows."""

    # --- the schedule ----------------------------------------------------------

    def _outbox(self, round: int) -> list[Outgoing]:
        self._close(round - 1)
        kind, phase = self._kind, self._phase = self.algorithm.slot(round)
        self._king = self.algorithm.king(phase) if kind is Kind.KING else -1
        self._composed = {}
        if kind is Kind.ORDER:
            if self.me != self.setup.commander:
                return []
            return [Outgoing((self.me,), g, self.order) for g in self.setup.lieutenants]
        if kind is Kind.KING and self.me != self.algorithm.king(phase):
            return []
        said = self._says(kind)
        if said is None:
            return []
        return [Outgoing((self.me,), g, said) for g in self._others]

    def _close(self, round: int) -> None:
        """Take round ``round``'s arrivals into account, once, then forget them."""
        if round <= self._closed:
            return
        self._closed = round
        kind, phase = self.algorithm.slot(round)
        heard, self.heard = self.heard, {}
        if kind is Kind.ORDER:
            if self.me != self.setup.commander:
                self.received_order = heard.get(self.setup.commander)
                self.value = self.received_order if self.received_order is not None else self.setup.default
        else:
            self._closed_round(kind, phase, heard)
        if kind is Kind.ORDER or kind is Kind.KING:
            self._start = self.value

    @abc.abstractmethod
    def _says(self, kind: Kind) -> str | None:
        """What a loyal general sends to every other in a phase round of ``kind``; ``None`` for nothing."""

    @abc.abstractmethod
    def _closed_round(self, kind: Kind, phase: int, heard: Mapping[int, str]) -> None:
        """Take a phase round's accepted values, by sender, into account; a king round ends the phase."""

    def _king_value(self, phase: int, heard: Mapping[int, str], own: str) -> str | None:
        """What the phase's king said: its own value if this general is the king."""
        king = self.algorithm.king(phase)
        return own if king == self.me else heard.get(king)

    # --- messages ----------------------------------------------------------------

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> KingMessage:
        """The round's kind and phase, and ``value``: a strategy chooses the value, never the round.

        ``path`` is ignored: a Phase King message has none.  Payloads are
        frozen, so one object serves every receiver told the same value.
        """
        if type(value) is not str:
            return KingMessage(self._kind.value, self._phase, value)
        payload = self._composed.get(value)
        if payload is None:
            payload = self._composed[value] = KingMessage(self._kind.value, self._phase, value)
        return payload

    def _receive(self, sender: int, round: int, payload: object) -> KingReason | None:
        if type(payload) is not KingMessage:
            return KingReason.MALFORMED_MESSAGE
        kind = self._kind
        if payload.kind != kind or type(payload.phase) is not int or payload.phase != self._phase:
            return KingReason.WRONG_ROUND
        if kind is Kind.ORDER and sender != self.setup.commander:
            return KingReason.NOT_COMMANDER
        if kind is Kind.KING and sender != self._king:
            return KingReason.NOT_KING
        value = payload.value
        if type(value) is not str or value not in self._values:
            return KingReason.OUTSIDE_DOMAIN
        if sender in self.heard:
            return KingReason.DUPLICATE
        self.heard[sender] = value
        return None

    def _decide(self) -> str:
        """The value after the last phase; the commander decides its own order, as in every algorithm here."""
        self._close(self.rounds)
        return self.order if self.me == self.setup.commander else self.value


class KingGeneral(KingCore):
    """One general of ``phase-king`` (``n > 4t``): per phase, a broadcast and the king's round."""

    def __init__(self, algorithm: PhaseKingAlgorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.maj = setup.default
        self.mult = 0
        self.phases: list[PhaseRecord] = []

    def _says(self, kind: Kind) -> str | None:
        return self.value if kind is Kind.BROADCAST else self.maj

    def _closed_round(self, kind: Kind, phase: int, heard: Mapping[int, str]) -> None:
        setup = self.setup
        if kind is Kind.BROADCAST:
            counts = Counter(heard.values())
            counts[self.value] += 1
            ranked = counts.most_common(2)
            tie = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
            self.maj = setup.default if tie else ranked[0][0]
            self.mult = counts[self.maj]
            return
        told = self._king_value(phase, heard, self.maj)
        kept = 2 * self.mult > setup.generals + 2 * setup.m  # mult > n/2 + t, in integers
        if kept:
            self.value = self.maj
        else:
            self.value = told if told is not None else setup.default
        record = PhaseRecord(
            phase, self.algorithm.king(phase), self._start, self.maj, self.mult, told, kept, self.value
        )
        self.phases.append(record)


class GradedGeneral(KingCore):
    """One general of ``phase-king-3t`` (``n > 3t``): per phase, two rounds of graded consensus, then a king.

    Abraham and Lewis-Pye's graded consensus: broadcast ``v``; propose ``b``
    if ``n - t`` generals broadcast ``b``; then ``b`` with grade 2 if ``n -
    t`` proposed it, grade 1 if ``t + 1`` did, else ``v`` with grade 0.  A
    general counts its own broadcast and its own proposal, as it would the
    message it sends itself in the statement's "send to all parties".
    """

    def __init__(self, algorithm: PhaseKingAlgorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.proposal: str | None = None
        self.support = 0
        self.graded = self.value
        self.grade = 0
        self.backing = 0
        self.phases: list[GradedRecord] = []

    def _says(self, kind: Kind) -> str | None:
        if kind is Kind.BROADCAST:
            return self.value
        if kind is Kind.PROPOSE:
            return self.proposal
        return self.graded

    def _offers(self, round: int) -> list[Outgoing]:
        """What a traitor may send: what is due, and in a propose round with nothing due, a proposal anyway.

        A loyal general proposes only a value ``n - t`` generals broadcast;
        a traitor may propose anything to anyone.  Where a loyal general
        would propose nothing, the offer's loyal value is :data:`NOTHING`,
        the empty string, so a strategy (and ``verify``, which compares an
        answer with the loyal value) can tell a message a loyal general
        would send from one it would not.  The offer is the same message
        either way -- a proposal along ``(sender,)`` in that round -- so one
        script entry or decision point covers it, due or not.
        """
        due = self._outbox(round)
        kind, _ = self.algorithm.slot(round)
        if kind is not Kind.PROPOSE or due:
            return due
        return [Outgoing((self.me,), g, NOTHING) for g in self._others]

    def _closed_round(self, kind: Kind, phase: int, heard: Mapping[int, str]) -> None:
        setup = self.setup
        needed = quorum(setup)
        counts = Counter(heard.values())
        if kind is Kind.BROADCAST:
            counts[self.value] += 1
            backed = {v: c for v, c in counts.items() if c >= needed}
            self.proposal = leader(backed, setup.values)
            best = self.proposal if self.proposal is not None else leader(counts, setup.values)
            self.support = counts[best] if best is not None else 0
            return
        if kind is Kind.PROPOSE:
            if self.proposal is not None:
                counts[self.proposal] += 1
            strong = leader({v: c for v, c in counts.items() if c >= needed}, setup.values)
            weak = leader({v: c for v, c in counts.items() if c >= setup.m + 1}, setup.values)
            if strong is not None:
                self.graded, self.grade = strong, 2
            elif weak is not None:
                self.graded, self.grade = weak, 1
            else:
                self.graded, self.grade = self.value, 0
            self.backing = counts[self.graded] if self.grade else 0
            return
        told = self._king_value(phase, heard, self.graded)
        kept = self.grade == 2
        if kept:
            self.value = self.graded
        else:
            self.value = told if told is not None else setup.default
        record = GradedRecord(
            phase,
            self.algorithm.king(phase),
            self._start,
            self.support,
            self.proposal,
            self.graded,
            self.grade,
            self.backing,
            told,
            kept,
            self.value,
        )
        self.phases.append(record)


def quorum(setup: Setup) -> int:
    """``n - t``: how many generals must back a value for a proposal, and proposals for grade 2."""
    return setup.generals - setup.m


# --- traitors ---------------------------------------------------------------------------
#
# ``phase-king`` offers a traitor exactly what a loyal general sends, so OM's
# strategies mean the same here and are used as they are.  ``phase-king-3t``
# also offers proposals a loyal general would not make (loyal value NOTHING);
# its strategies below keep OM's meaning on the messages a loyal general sends
# and say what they do with the others.


def _due(value: str) -> bool:
    return value != NOTHING


@attrs.frozen
class GradedLoyal(Loyal):
    """Sends what a loyal general sends, and proposes nothing it was not entitled to."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return value if _due(value) else None


@attrs.frozen
class GradedFlip(Flip):
    """OM's ``flip`` on every message a loyal general would send; no proposal a loyal one would not make."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return super().choose(round, path, receiver, value, rng) if _due(value) else None


@attrs.frozen
class GradedSplit(Split):
    """OM's ``split`` on every message a loyal general would send; no proposal a loyal one would not make."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return super().choose(round, path, receiver, value, rng) if _due(value) else None


@attrs.frozen
class GradedScripted(Scripted):
    """OM's ``scripted``: the script where it speaks, due or not; elsewhere loyal, proposing nothing undue."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        answer = self.scripted(round, path, receiver, value)
        return answer if answer is None or _due(answer) else None


KING_STRATEGIES: Mapping[str, type] = BUILT_IN
"""``phase-king``'s built-in strategies: OM's own, which mean the same on its messages.

``split`` sends ``v`` to even-numbered receivers and the next value to odd
ones; as a king it splits its king value.  ``constant`` and ``random`` send
on every message the traitor owes.
"""

GRADED_STRATEGIES: Mapping[str, type] = {
    "loyal": GradedLoyal,
    "flip": GradedFlip,
    "split": GradedSplit,
    "constant": Constant,
    "silent": Silent,
    "random": RandomChoice,
    "scripted": GradedScripted,
}
"""``phase-king-3t``'s built-in strategies.

``constant`` and ``random`` send on every chance, so they also propose
where a loyal general would propose nothing; ``loyal``, ``flip``, ``split``
and ``scripted`` (outside its script) do not.
"""


# --- the algorithms ------------------------------------------------------------------------


class PhaseKingAlgorithm(Algorithm):
    """What both forms share: the commander's round, ``t + 1`` phases, the kings, the payload.

    A subclass names its phase's rounds in :attr:`kinds` and its bound's
    factor in :attr:`factor` (``n > factor * t``).
    """

    payload = KingMessage
    reasons = KingReason
    batchable = False
    kinds: tuple[Kind, ...]
    factor: int
    general_class: type[KingCore]
    strategy_table: Mapping[str, type]

    def slot(self, round: int) -> tuple[Kind, int]:
        """The kind and phase of ``round``: the order in round 1, then each phase's rounds in turn."""
        if round <= 1:
            return Kind.ORDER, 0
        phase, index = divmod(round - 2, len(self.kinds))
        return self.kinds[index], phase + 1

    def king(self, phase: int) -> int:
        """The king of ``phase``: general ``phase - 1``, so the first ``t + 1`` generals in id order."""
        return phase - 1

    def rounds(self, generals: int, m: int) -> int:
        return 1 + len(self.kinds) * (m + 1)

    def problems(self, generals: int, m: int) -> list[str]:
        """Only what cannot run: ``t + 1`` kings need ``t + 1`` generals.  Past the bound is a warning."""
        if m > generals - 1:
            return [f"must be at most generals - 1 = {generals - 1}: the t + 1 kings are generals 0 to t"]
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        found = []
        if generals <= self.factor * m:
            found.append(
                f"{generals} generals are not more than {self.factor}m = {self.factor * m}: "
                f"{self.titled(m)} promises nothing unless n > {self.factor}t"
            )
        if traitors > m:
            found.append(
                f"{traitors} traitors are more than m = {m}: {self.titled(m)} is only built to survive {m}"
            )
        return found

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        """The order to ``n - 1``, then per phase ``n(n - 1)`` per all-to-all round and the king's ``n - 1``.

        A closed form, so ``limit`` is never needed.
        """
        if generals < 2 or m < 0:
            return 0
        n = generals
        everyone = len(self.kinds) - 1  # every round of a phase but the king's is all-to-all with no traitor
        return (n - 1) + (m + 1) * (everyone * n * (n - 1) + (n - 1))

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> KingCore:
        """A fresh core; ``secret`` is ignored: Phase King signs nothing."""
        return self.general_class(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return self.strategy_table

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        constants: list[tuple[str, dict[str, object]]] = [("constant", {"value": v}) for v in values]
        return [("flip", {}), ("split", {}), *constants, ("silent", {})]

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        """At most one a round: the order from the commander, a king message from the king, else one each."""
        if sender == receiver or not 1 <= round <= self.rounds(setup.generals, setup.m):
            return 0
        if not (0 <= sender < setup.generals and 0 <= receiver < setup.generals):
            return 0
        kind, phase = self.slot(round)
        if kind is Kind.ORDER:
            return int(sender == setup.commander)
        if kind is Kind.KING:
            return int(sender == self.king(phase))
        return 1

    def decision_points(self, setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        """Each message ``traitor`` may send: round by round, receiver by receiver.

        The order if it is the commander; its value in each broadcast; in
        ``phase-king-3t`` its proposal in each propose round, whether or not
        a loyal general would make one; its king value in its own phase if
        it is a king.
        """
        others = [g for g in range(setup.generals) if g != traitor]
        for round in range(1, self.rounds(setup.generals, setup.m) + 1):
            kind, phase = self.slot(round)
            if kind is Kind.ORDER:
                if traitor == setup.commander:
                    yield from (DecisionPoint(round, (traitor,), r) for r in setup.lieutenants)
                continue
            if kind is Kind.KING and traitor != self.king(phase):
                continue
            yield from (DecisionPoint(round, (traitor,), receiver) for receiver in others)

    def script_problem(self, setup: Setup, traitor: int, point: DecisionPoint) -> str | None:
        """Exactly :meth:`decision_points`, in words: who sends in which round, to whom, along which path.

        The round is in range already: a script's entries are checked round
        by round within the run's rounds.
        """
        last, receiver, title = setup.generals - 1, point.receiver, self.titled(setup.m)
        kind, phase = self.slot(point.round)
        if point.path != (traitor,):
            return f"path must be [{traitor}]: {title} messages carry no path, only their sender"
        if not 0 <= receiver <= last:
            return f"receiver {receiver}: ids run from 0 to {last}"
        if receiver == traitor:
            return f"receiver {receiver} is the traitor itself, and nobody sends itself a message"
        if kind is Kind.ORDER and traitor != setup.commander:
            return f"round 1 carries the order: general {traitor} is not the commander ({setup.commander})"
        if kind is Kind.ORDER and receiver == setup.commander:
            return f"round 1 carries the order to the lieutenants, and general {receiver} is the commander"
        if kind is Kind.KING and traitor != self.king(phase):
            king = self.king(phase)
            return f"round {point.round} is phase {phase}'s king round: only general {king}, its king, sends"
        return None

    def explain(self, core: Core, *, path: Path | None = None, depth: int | None = None) -> Step:
        """A table per general: its value phase by phase, what it counted, whether it followed the king.

        One row per phase under the order it started from; below a row, the
        king's message as it arrived (tied to it by round and sender, so
        ``explain`` shows a traitor king's word as the lie it is).  ``depth``
        1 keeps the rows and drops the kings' messages, 0 keeps neither.
        """
        assert isinstance(core, KingCore)
        decision = core.decide()  # raises ProtocolMisuse before the last round, as deciding would
        if path is not None:
            raise ValueError(
                f"{self.titled(core.setup.m)} messages carry no path: its explanation has none to start from"
            )
        setup = core.setup
        if core.me == setup.commander:
            start = Step("round 1: the order", core.order, "the commander's own")
        elif core.received_order is not None:
            start = Step("round 1: the order", core.received_order, round=1, sender=setup.commander)
        else:
            start = Step(
                "round 1: the order",
                setup.default,
                "none valid: the default",
                round=1,
                sender=setup.commander,
            )
        rows = [start]
        for record in core.phases:
            row = self._row(core, record)
            word = self._word(core, record)
            if word is not None and (depth is None or depth >= 2):
                row = attrs.evolve(row, children=(word,))
            elif word is not None:
                row = attrs.evolve(row, hidden=1)
            rows.append(row)
        if core.me == setup.commander:
            detail = f"the commander decides its own order; its value ended {core.value}"
        else:
            detail = f"its value after phase {setup.m + 1}"
        if depth is not None and depth <= 0:
            return Step(f"general {core.me}", decision, detail, (), sum(1 + row.hidden for row in rows))
        return Step(f"general {core.me}", decision, detail, tuple(rows))

    def _word(self, core: KingCore, record: PhaseRecord | GradedRecord) -> Step | None:
        """The king's message of the record's phase as this general got it; ``None`` for the king itself."""
        if record.king == core.me:
            return None
        label = f"king {record.king}'s word"
        round = 1 + len(self.kinds) * record.phase
        if record.king_value is None:
            detail = f"counted as the default {core.setup.default}" if not record.kept else ""
            return Step(label, core.setup.default, detail, round=round, sender=record.king)
        return Step(label, record.king_value, round=round, sender=record.king)

    @abc.abstractmethod
    def _row(self, core: KingCore, record: PhaseRecord | GradedRecord) -> Step:
        """``explain``'s row for one phase."""


class PhaseKing(PhaseKingAlgorithm):
    """``phase-king``: ``t + 1`` phases of a broadcast and a king round, for ``n > 4t``."""

    name = "phase-king"
    title = "PhaseKing(m)"
    kinds = (Kind.BROADCAST, Kind.KING)
    factor = 4
    general_class = KingGeneral
    strategy_table = KING_STRATEGIES

    def _row(self, core: KingCore, record: PhaseRecord | GradedRecord) -> Step:
        assert isinstance(record, PhaseRecord)
        setup = core.setup
        threshold = f"n/2 + t = {setup.generals / 2 + setup.m:g}"
        if record.kept:
            how = f"mult > {threshold}: kept maj"
        elif record.king == core.me:
            how = f"mult <= {threshold}; the king itself: takes its own maj"
        elif record.king_value is None:
            how = f"mult <= {threshold}; king {record.king} said nothing valid: the default"
        else:
            how = f"mult <= {threshold}: followed king {record.king}"
        detail = f"value {record.start} | maj {record.maj} | mult {record.mult} | {how}"
        return Step(f"phase {record.phase} (king {record.king})", record.end, detail)


class GradedPhaseKing(PhaseKingAlgorithm):
    """``phase-king-3t``: ``t + 1`` phases of graded consensus and a king round, for ``n > 3t``."""

    name = "phase-king-3t"
    title = "PhaseKing3t(m)"
    kinds = (Kind.BROADCAST, Kind.PROPOSE, Kind.KING)
    factor = 3
    general_class = GradedGeneral
    strategy_table = GRADED_STRATEGIES

    def _row(self, core: KingCore, record: PhaseRecord | GradedRecord) -> Step:
        assert isinstance(record, GradedRecord)
        proposed = f"proposed {record.proposal}" if record.proposal is not None else "proposed nothing"
        grade = f"grade {record.grade}"
        if record.grade:
            grade += f" for {record.graded} ({record.backing} proposals)"
        if record.kept:
            how = "kept it"
        elif record.king == core.me:
            how = "the king itself: takes its own graded value"
        elif record.king_value is None:
            how = f"king {record.king} said nothing valid: the default"
        else:
            how = f"followed king {record.king}"
        support = f"support {record.support} (n - t = {quorum(core.setup)})"
        detail = f"value {record.start} | {support} | {proposed} | {grade} | {how}"
        return Step(f"phase {record.phase} (king {record.king})", record.end, detail)


PHASE_KING = PhaseKing()
"""``phase-king`` (``n > 4t``), as the registry holds it."""

GRADED_PHASE_KING = GradedPhaseKing()
"""``phase-king-3t`` (``n > 3t``), as the registry holds it."""
