"""OM(m) at batch granularity: a general whose tree of paths is arrays, for runs too big for dicts.

The exponential information gathering tree of one OM(m) instance has, at
level ``k``, one node per path ``(commander, x1, ..., x_{k-1})`` of distinct
lieutenants.  Here a path is its *rank*: the children of the path ranked
``p`` are ranked ``p * width + slot``, ``slot`` counting the lieutenants not
yet on the path in increasing order.  Ranks are therefore lexicographic, the
log's order, and a node's children are contiguous -- so a general's values
are one small-integer array per level, and each majority is a reshape and a
few comparisons.

Values are indices into ``values``; :data:`NO_VOTE` marks paths through the
general itself, which it never receives and which must not vote.

:class:`EigGeneral` is the batched runtime's core: a
:class:`~om_actors.algorithm.Core` like :class:`~om_actors.oral.OralGeneral`,
with the same schedule (a round opens once, in order, and deciding comes
after the last; anything else raises
:class:`~om_actors.errors.ProtocolMisuse`), but what it sends a receiver in a
round is one :class:`RoundBatch`.  :class:`BatchedDriver` is
:class:`~om_actors.driver.GeneralDriver` for it, so the trio actor only
moves items.  Like every core it is pure: no trio, no clock, no log.

Two rules have a second form here, each held to the first by tests:

- the majority: :meth:`EigStore.decide` is the NumPy form of
  :meth:`OralGeneral.resolve <om_actors.oral.OralGeneral.resolve>`, and the
  differential tests (``tests/test_eig.py``) hold the two -- and whole
  batched runs against per-message runs -- to the same answers;
- who sends what: a batch's size is the algorithm's
  :meth:`~om_actors.algorithm.Algorithm.most_messages` (for OM(m), exactly
  what a loyal general owes), and a test holds it to
  :func:`~om_actors.oral.owed`, which is what every message sent one at a
  time (:meth:`EigGeneral.outbox`, :meth:`EigGeneral.itemized`) comes from.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, cast

import attrs
import numpy as np
import numpy.typing as npt

from .algorithm import Algorithm, Core, Outgoing, Path, Setup
from .driver import Ask, Awaiting, GeneralDriver, Send
from .errors import ProtocolMisuse
from .events import MessageRejected, StrategyFailed
from .oral import OralReason, Relay, owed, refusal
from .strategies import BatchStrategy, Strategy, stopped_by

NO_VOTE = 255
"""A slot with no vote: the general is on that path."""

Values = npt.NDArray[np.uint8]


INT32_ENTRIES = 2**31 - 1
"""The most entries a stacked level may have for its gather indices to be ``int32`` rather than ``int64``."""

Indices = npt.NDArray[np.signedinteger[Any]]


def index_dtype(entries: int) -> type[np.int32] | type[np.int64]:
    """The narrowest type that indexes ``entries`` positions: ``int32`` takes half the memory of ``int64``."""
    return np.int32 if entries <= INT32_ENTRIES else np.int64


class EigLayout:
    """Where every path of one instance lives, shared read-only by all its generals.

    For each level it keeps where its value comes from: the flat position of
    ``(last relayer, parent rank)`` in the stacked arrays of the level below,
    one per general, as the narrowest integer that fits.  Every level but the
    last also keeps the last general on each path, from which the next level
    is built and each general finds the paths through itself; the last
    level, by far the largest, keeps only its positions, and its last
    generals are worked out from them when asked.
    """

    def __init__(self, setup: Setup, rounds: int) -> None:
        if setup.generals > NO_VOTE or len(setup.values) >= NO_VOTE:
            raise ValueError("the compact store holds at most 254 values and 255 generals")
        self.setup = setup
        self.rounds = rounds
        self.lieutenants = setup.lieutenants
        count = len(self.lieutenants)
        self.widths = [count - (k - 1) for k in range(1, rounds + 1)]
        self.sizes = [math.perm(count, k - 1) for k in range(1, rounds + 1)]
        self.last: list[Values] = [np.full(1, setup.commander, dtype=np.uint8)]
        self.source: list[Indices] = [np.zeros(1, dtype=np.int32)]
        for level in range(2, rounds + 1):
            last = self._children(level)
            self.source.append(self._positions(level, last))
            if level < rounds:
                self.last.append(last)

    def _children(self, level: int) -> Values:
        """The last general of each path at ``level``: its parent's free lieutenants, in order.

        A path's free lieutenants are its parent's, less the one it ends
        with, so row ``q * width + i`` of the level is row ``q`` of the level
        above without its entry ``i``: one slice copy per ``i``.
        """
        if level == 2:
            return np.array(self.lieutenants, dtype=np.uint8)
        width = self.widths[level - 3]
        above = self.last[level - 2].reshape(-1, width)
        children = np.empty((len(above), width, width - 1), dtype=np.uint8)
        for i in range(width):
            children[:, i, :i] = above[:, :i]
            children[:, i, i:] = above[:, i + 1 :]
        return children.ravel()

    def _positions(self, level: int, last: Values) -> Indices:
        """Where each path at ``level`` reads its value: row ``last``, column parent, of the level below."""
        parents, width = self.sizes[level - 2], self.widths[level - 2]
        positions: Indices = last.astype(index_dtype(self.setup.generals * parents))
        positions *= parents
        by_parent = positions.reshape(parents, width)
        by_parent += np.arange(parents, dtype=positions.dtype)[:, None]
        return positions

    def level_size(self, level: int) -> int:
        return self.sizes[level - 1]

    def last_general(self, level: int, rank: int) -> int:
        """The general that ends the path with ``rank`` at ``level``."""
        if level <= len(self.last):
            return int(self.last[level - 1][rank])
        return int(self.source[level - 1][rank]) // self.sizes[level - 2]

    def rank(self, path: Path) -> int:
        """The rank of ``path`` within its level; ``path`` must be a valid path."""
        rank, taken = 0, {path[0]}
        for depth, general in enumerate(path[1:], start=1):
            free = [x for x in self.lieutenants if x not in taken]
            rank = rank * self.widths[depth - 1] + free.index(general)
            taken.add(general)
        return rank

    def path(self, level: int, rank: int) -> Path:
        """The path with ``rank`` at ``level``: the inverse of :meth:`rank`."""
        found: list[int] = []
        for depth in range(level, 1, -1):
            found.append(self.last_general(depth, rank))
            rank //= self.widths[depth - 2]
        return (self.setup.commander, *reversed(found))


class EigStore:
    """One general's received values, level by level, and its recursive majority.

    The last level is the largest by far (``n - m`` times the size of the
    one before), and nothing is ever relayed from it, so :meth:`fold` turns
    it into its parents' majorities as soon as its round is complete: at
    most one general's last level exists at a time.
    """

    def __init__(self, layout: EigLayout, me: int) -> None:
        self.layout = layout
        self.me = me
        self.default = layout.setup.values.index(layout.setup.default)
        self.levels: list[Values] = []
        self._mine = np.zeros(1, dtype=bool)  # paths at the last level received that pass through me
        self._folded: Values | None = None

    def held(self, level: int) -> Values:
        """What this general holds at ``level``, ``NO_VOTE`` on paths through it.

        This is also exactly what a loyal general relays in the next round:
        the value for each path, the default where nothing arrived.
        """
        return self.levels[level - 1]

    def receive_level(self, level: int, stacked: Values) -> None:
        """Take level ``level`` from the senders' arrays of the level below, stacked in general order.

        Row ``g`` of ``stacked`` is what general ``g`` sent this general: its
        held values, or a traitor's lies, with the default where it sent
        nothing.  This general's own row is overwritten with ``NO_VOTE``: it
        sends itself nothing, and paths it ends must not vote.
        """
        layout = self.layout
        stacked[self.me] = NO_VOTE
        values = stacked.ravel()[layout.source[level - 1]]
        values.reshape(-1, layout.widths[level - 2])[self._mine] = NO_VOTE
        if level < layout.rounds:
            width = layout.widths[level - 2]
            self._mine = np.repeat(self._mine, width) | (layout.last[level - 1] == self.me)
        else:
            self._mine = np.zeros(0, dtype=bool)
        self.levels.append(values)

    def receive_first(self, value: int) -> None:
        """Round 1: the commander's order, or the default when nothing came."""
        self.levels.append(np.full(1, value, dtype=np.uint8))

    def overwrite(self, level: int, rank: int, value: int) -> None:
        """One path's value, for messages that arrive one at a time."""
        self.levels[level - 1][rank] = value

    def fold(self) -> None:
        """Replace the last level by its parents' majorities, the first step of :meth:`decide`.

        After it the last level is gone: nothing more may be received.
        """
        if len(self.levels) > 1 and self._folded is None:
            leaves = self.levels.pop()
            self._folded = self._majority(len(self.levels), leaves)

    def decide(self) -> int:
        """The index of ``OM([commander])`` for this general: majorities from the leaves up."""
        if self.me == self.layout.setup.commander:
            raise ValueError("a commander decides its own order")
        results = self.levels[-1] if self._folded is None else self._folded
        for level in range(len(self.levels) - 1, 0, -1):
            results = self._majority(level, results)
        return int(results[0])

    def _majority(self, level: int, children: Values) -> Values:
        """Each path's decision at ``level``, from its own value and its children's decisions."""
        width = self.layout.widths[level - 1]
        held = self.levels[level - 1]
        rows = children.reshape(-1, width)
        choices = len(self.layout.setup.values)
        counts = np.stack([_votes(rows, held, v) for v in range(choices)])
        winner = counts.argmax(axis=0)
        # Each path's votes: its own value and one per child, less the child through me.
        decided = np.where(counts.max(axis=0) > width // 2, winner, self.default).astype(np.uint8)
        decided[held == NO_VOTE] = NO_VOTE
        return decided


COLUMNWISE_FROM = 4096
"""How many paths a level needs for its votes to be counted a column of children at a time."""


def _votes(children: Values, held: Values, value: int) -> Values:
    """How many of each path's votes go to ``value``: its children's (one row per path) and its own.

    At most 254 lieutenants, so a count fits in a byte.  Many short rows
    are counted a column at a time, twice as fast as NumPy's sum along them.
    """
    votes: Values = (held == value).astype(np.uint8)
    equal: Values = (children == value).view(np.uint8)
    if len(children) < COLUMNWISE_FROM:
        votes += equal.sum(axis=1, dtype=np.uint8)
        return votes
    for column in equal.T:
        votes += column
    return votes


def stack_rows(rows: Sequence[Values | None], size: int, default: int) -> Values:
    """The senders' rows as one matrix; a sender that sent nothing counts as the default, as in A3."""
    matrix = np.full((len(rows), size), default, dtype=np.uint8)
    for general, row in enumerate(rows):
        if row is not None:
            matrix[general] = row
    return matrix


# --- one general at batch granularity ------------------------------------------------


@attrs.frozen(eq=False)
class RoundBatch:
    """All of one round's messages from one general to another, as one payload.

    ``row`` gives, per path of the previous round, the value index sent
    along that path extended by the sender (the sender's own held array
    when it is loyal, shared by every receiver, never copied); in round 1 it
    holds the order alone.  ``count`` is how many messages it stands for.
    It travels as the payload of a :class:`~om_actors.driver.Send`, and the
    runtime stamps its sender, round and instance as for any message.
    """

    row: Values
    count: int


class EigGeneral(Core):
    """One general of one OM(m) instance, its values in an :class:`EigStore`.

    A round goes: :meth:`batches` (loyal, or a traitor with a batch form)
    or :meth:`~om_actors.algorithm.Core.offers` (a traitor asked message by
    message) opens it; :meth:`take` and
    :meth:`~om_actors.algorithm.Core.receive` collect what arrives, batches
    and single messages; :meth:`close` builds the round's level of the
    store from them, senders that sent nothing counting as the default.
    :meth:`~om_actors.algorithm.Core.decide` needs every round closed.
    """

    def __init__(
        self, algorithm: Algorithm, setup: Setup, me: int, order: str | None, layout: EigLayout
    ) -> None:
        super().__init__(algorithm, setup, me, order)
        self.layout = layout
        self.store = EigStore(layout, me)
        self.closed = 0
        """The last round whose level is built."""
        self._rows: dict[int, Values] = {}
        self._singles: list[tuple[int, int]] = []
        self._seen: set[Path] = set()
        self._itemizing: tuple[int, dict[int, tuple[Values, dict[int, list[Relay]]]]] = (0, {})

    # sending

    def _open(self, round: int) -> None:
        """The core's schedule, and one rule more: a round's level is built before the next round opens."""
        if round == self.round + 1 and self.closed != self.round:
            raise ProtocolMisuse(
                f"general {self.me} was asked for round {round}'s messages before closing round {self.round}"
            )
        super()._open(round)

    def batches(self, round: int) -> list[tuple[int, RoundBatch]]:
        """Open ``round``: what a loyal general sends in it, one ``(receiver, batch)`` per receiver."""
        self._open(round)
        setup = self.setup
        most = self.algorithm.most_messages
        counts = [(r, most(setup, self.me, r, round)) for r in range(setup.generals)]
        receivers = [(r, count) for r, count in counts if count]
        if not receivers:
            return []
        row = self._held_row(round)
        return [(receiver, RoundBatch(row, count)) for receiver, count in receivers]

    def _held_row(self, round: int) -> Values:
        """What a loyal general relays in ``round``: its order in round 1, else what it holds."""
        if round == 1:
            return np.full(1, self.setup.values.index(self.order), dtype=np.uint8)
        return self.store.held(round - 1)

    def _outbox(self, round: int) -> list[Outgoing]:
        """The round's messages one at a time, for a traitor whose strategy has no batch form."""
        values = self.setup.values
        if round == 1:
            return list(owed(self.setup, self.me, 1, lambda _: self.order))
        level = self.store.held(round - 1) if self.me != self.setup.commander else None

        def held(path: Path) -> str:
            assert level is not None
            return values[int(level[self.layout.rank(path)])]

        return list(owed(self.setup, self.me, round, held))

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Relay:
        return Relay(path, value)

    def itemized(self, round: int, receiver: int, batch: RoundBatch) -> list[Relay]:
        """The messages ``batch`` stands for, one by one, in log order: for logging a batched run.

        Slow, and as big as the run: only a run that logs its messages asks.
        A round's messages are worked out once per row sent, for every
        receiver at once, since a loyal general sends each the same row.
        """
        if self._itemizing[0] != round:
            self._itemizing = (round, {})
        rows = self._itemizing[1]
        found = rows.get(id(batch.row))
        if found is None or found[0] is not batch.row:
            found = (batch.row, self._by_receiver(round, batch.row))
            rows[id(batch.row)] = found
        return found[1].get(receiver, [])

    def _by_receiver(self, round: int, row: Values) -> dict[int, list[Relay]]:
        values, rank = self.setup.values, self.layout.rank

        def held(path: Path) -> str:
            return values[int(row[0] if round == 1 else row[rank(path)])]

        by_receiver: dict[int, list[Relay]] = {}
        for out in owed(self.setup, self.me, round, held):
            by_receiver.setdefault(out.receiver, []).append(Relay(out.path, out.value))
        return by_receiver

    # receiving

    def take(self, sender: int, round: int, batch: RoundBatch) -> None:
        """Keep ``sender``'s batch of the current round until :meth:`close`."""
        self._check_round(round, "a batch")
        self._rows[sender] = batch.row

    def _receive(self, sender: int, round: int, payload: object) -> OralReason | None:
        """A message sent one at a time, judged by OM's rules now and stored at :meth:`close`."""
        reason = refusal(
            self.setup, receiver=self.me, sender=sender, round=round, payload=payload, seen=self._seen
        )
        if reason is not None:
            return reason
        assert isinstance(payload, Relay)
        path, value = payload.path, payload.value
        assert isinstance(path, tuple)
        assert isinstance(value, str)
        self._seen.add(path)
        self._singles.append((self.layout.rank(path), self.setup.values.index(value)))
        return None

    def close(self, round: int) -> None:
        """Build ``round``'s level of the store from its batches, then its single messages."""
        self._check_round(round, "the end of the round")
        if round == self.closed:
            raise ProtocolMisuse(f"general {self.me} was asked to close round {round} twice")
        self.closed = round
        rows, singles = self._rows, self._singles
        self._rows, self._singles, self._seen = {}, [], set()
        setup, store = self.setup, self.store
        if self.me == setup.commander:
            return
        if round == 1:
            first = rows.get(setup.commander)
            store.receive_first(int(first[0]) if first is not None else store.default)
        else:
            size = self.layout.level_size(round - 1)
            senders = [rows.get(g) for g in range(setup.generals)]
            store.receive_level(round, stack_rows(senders, size, store.default))
        for rank, value in singles:
            store.overwrite(round, rank, value)
        if round == self.rounds:
            store.fold()

    def _check_round(self, round: int, what: str) -> None:
        if round != self.round or round < 1:
            raise ProtocolMisuse(
                f"general {self.me} was handed {what} of round {round} while in round {self.round}"
            )

    def _decide(self) -> str:
        if self.closed != self.rounds:
            raise ProtocolMisuse(f"general {self.me} was asked to decide before closing round {self.rounds}")
        if self.me == self.setup.commander:
            return self.order
        return self.setup.values[self.store.decide()]


class BatchedDriver(GeneralDriver):
    """:class:`~om_actors.driver.GeneralDriver` for :class:`EigGeneral` cores: the same items, batched.

    A loyal general's round is one :class:`~om_actors.driver.Send` per
    receiver, whose payload is a :class:`RoundBatch`.  A traitor whose
    strategy has a batch form (:class:`~om_actors.strategies.BatchStrategy`)
    lies a batch at a time; any other strategy is asked message by message,
    exactly as per-message mode asks it, and its answers travel as single
    messages.
    """

    def __init__(
        self, cores: Sequence[EigGeneral], *, strategy: Strategy | None, seed: int, tagged: bool
    ) -> None:
        super().__init__(cores, strategy=strategy, seed=seed, tagged=tagged)
        self.generals = cores

    def round(self, round: int) -> Iterator[Send | Ask]:
        strategy = self.strategy
        if not isinstance(strategy, BatchStrategy):
            return super().round(round)
        items: list[Send | Ask] = []
        for instance, core in enumerate(self.generals):
            values = core.setup.values
            told: Values | None = None
            for receiver, batch in core.batches(round):
                lie = self._chosen(strategy, round, receiver, batch, values)
                if lie is None:
                    continue
                if lie is not batch.row:
                    told = lie = _shared(lie, told)
                items.append(Send(instance, round, receiver, RoundBatch(lie, batch.count)))
        return iter(items)

    def _chosen(
        self, strategy: BatchStrategy, round: int, receiver: int, batch: RoundBatch, values: Sequence[str]
    ) -> Values | None:
        """The strategy's batch for ``receiver``, or an error that names the strategy if it raises.

        Per-message mode loses the one message a strategy fails on; a batch
        has no one message to lose.
        """
        try:
            return strategy.choose_batch(round, receiver, batch.row, values)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            why = (
                "in batched mode a strategy's choose_batch must answer "
                "(--mode per-message loses only the messages a strategy fails on)"
            )
            raise stopped_by(self.me, exc, f"its round-{round} batch for general {receiver}", why) from exc

    def lies(self, round: int) -> Iterator[tuple[int, int, object] | StrategyFailed | Awaiting]:
        if not isinstance(self.strategy, BatchStrategy):
            return super().lies(round)
        sends = cast(Iterator[Send], self.round(round))
        return ((send.instance, send.receiver, send.payload) for send in sends)

    def sends(self, round: int) -> list[Iterator[tuple[int, object]]]:
        """A loyal general's round: one :class:`RoundBatch` per receiver, in every instance."""
        return [iter(list(core.batches(round))) for core in self.generals]

    def deliver(self, instance: int, sender: int, round: int, payload: object) -> MessageRejected | None:
        if type(payload) is RoundBatch:
            self.received += payload.count
            self.generals[instance].take(sender, round, payload)
            return None
        return super().deliver(instance, sender, round, payload)

    def deliver_all(
        self, instance: int, sender: int, round: int, payloads: Sequence[object]
    ) -> list[MessageRejected]:
        refused = (self.deliver(instance, sender, round, payload) for payload in payloads)
        return [event for event in refused if event is not None]

    def close(self, round: int) -> None:
        """Every message of ``round`` has arrived: build its level in every instance."""
        for core in self.generals:
            core.close(round)


def _shared(lie: Values, told: Values | None) -> Values:
    """``told`` if ``lie`` equals it: the same lie to many receivers is one row, not one each.

    A strategy makes a new array per receiver, and they all wait in the
    receivers' rounds until the round closes: in the last round of
    nineteen generals with six ``flip`` traitors, a hundred one-megabyte
    rows where six do.
    """
    if (
        told is not None
        and isinstance(lie, np.ndarray)
        and lie.dtype == told.dtype
        and np.array_equal(lie, told)
    ):
        return told
    return lie
