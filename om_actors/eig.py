"""A compact EIG store: OM(m)'s tree of paths as arrays, for runs too big for dicts.

The exponential information gathering tree of one OM(m) instance has, at
level ``k``, one node per path ``(commander, x1, ..., x_{k-1})`` of distinct
lieutenants.  Here a path is its *rank*: the children of the path ranked
``p`` are ranked ``p * width + slot``, ``slot`` counting the lieutenants not
yet on the path in increasing order.  Ranks are therefore lexicographic, the
log's order, and a node's children are contiguous -- so a general's values
are one small-integer array per level, and each majority is a reshape and a
few comparisons.

Values are indices into ``values``; :data:`NO_VOTE` marks paths through the
general itself, which it never receives and which must not vote.  This
module is as pure as :mod:`om_actors.protocol`: no trio, no clock, no log.
It computes the same thing as :meth:`om_actors.protocol.General.decide`,
and the differential tests hold it to that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .algorithm import Path, Setup

NO_VOTE = 255
"""A slot with no vote: the general is on that path."""

Values = npt.NDArray[np.uint8]


class EigLayout:
    """Where every path of one instance lives, shared read-only by all its generals.

    For each level it keeps the last general on each path and, for level
    ``k + 1``, where its value comes from: the flat position of
    ``(last relayer, parent rank)`` in the stacked level-``k`` arrays of all
    generals.  Building it touches each path once, level by level.
    """

    def __init__(self, setup: Setup) -> None:
        if setup.generals > NO_VOTE or len(setup.values) >= NO_VOTE:
            raise ValueError("the compact store holds at most 254 values and 255 generals")
        self.setup = setup
        self.lieutenants = setup.lieutenants
        count = len(self.lieutenants)
        self.widths = [count - (k - 1) for k in range(1, setup.rounds + 1)]
        self.sizes = [math.perm(count, k - 1) for k in range(1, setup.rounds + 1)]
        self.last: list[npt.NDArray[np.int16]] = [np.full(1, setup.commander, dtype=np.int16)]
        self.source: list[npt.NDArray[np.int64]] = [np.zeros(1, dtype=np.int64)]
        contains = {x: np.zeros(1, dtype=bool) for x in self.lieutenants}
        for level in range(1, setup.rounds):
            contains = self._grow(level, contains)

    def _grow(
        self, level: int, contains: dict[int, npt.NDArray[np.bool_]]
    ) -> dict[int, npt.NDArray[np.bool_]]:
        """Add level ``level + 1``: each parent's children are its free lieutenants, in order."""
        width, parents = self.widths[level - 1], self.sizes[level - 1]
        last = np.empty(parents * width, dtype=np.int16)
        slot = np.zeros(parents, dtype=np.int64)
        base = np.arange(parents, dtype=np.int64) * width
        for x in self.lieutenants:
            free = ~contains[x]
            last[base[free] + slot[free]] = x
            slot += free
        parent = np.repeat(np.arange(parents, dtype=np.int64), width)
        self.last.append(last)
        self.source.append(last.astype(np.int64) * parents + parent)
        return {x: np.repeat(contains[x], width) | (last == x) for x in self.lieutenants}

    def level_size(self, level: int) -> int:
        return self.sizes[level - 1]

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
            found.append(int(self.last[depth - 1][rank]))
            rank //= self.widths[depth - 2]
        return (self.setup.commander, *reversed(found))

    def messages_between(self, round: int, sender: int, receiver: int) -> int:
        """Messages a fully participating ``sender`` sends ``receiver`` in ``round``."""
        commander = self.setup.commander
        if round == 1:
            return int(sender == commander and receiver != commander)
        if commander in (sender, receiver) or sender == receiver:
            return 0
        return math.perm(len(self.lieutenants) - 2, round - 2)


class EigStore:
    """One general's received values, level by level, and its recursive majority."""

    def __init__(self, layout: EigLayout, me: int) -> None:
        self.layout = layout
        self.me = me
        self.default = layout.setup.values.index(layout.setup.default)
        self.levels: list[Values] = []
        self._mine = np.zeros(1, dtype=bool)  # paths at the current level that pass through me

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
        nothing.
        """
        layout = self.layout
        values = np.take(stacked.ravel(), layout.source[level - 1])
        if level > 1:
            width = layout.widths[level - 2]
            self._mine = np.repeat(self._mine, width) | (layout.last[level - 1] == self.me)
        values[self._mine] = NO_VOTE
        self.levels.append(values.astype(np.uint8, copy=False))

    def receive_first(self, value: int) -> None:
        """Round 1: the commander's order, or the default when nothing came."""
        self.levels.append(np.full(1, value, dtype=np.uint8))

    def overwrite(self, level: int, rank: int, value: int) -> None:
        """One path's value, for messages that arrive one at a time."""
        self.levels[level - 1][rank] = value

    def decide(self) -> int:
        """The index of ``OM([commander])`` for this general: majorities from the leaves up."""
        setup = self.layout.setup
        if self.me == setup.commander:
            raise ValueError("a commander decides its own order")
        choices = len(setup.values)
        results = self.levels[-1]
        for level in range(len(self.levels) - 1, 0, -1):
            width = self.layout.widths[level - 1]
            held = self.levels[level - 1]
            children = results.reshape(-1, width)
            counts = np.stack([(children == v).sum(axis=1) + (held == v) for v in range(choices)])
            winner = counts.argmax(axis=0)
            # Each path's votes: its own value and one per child, less the child through me.
            decided = np.where(2 * counts.max(axis=0) > width, winner, self.default).astype(np.uint8)
            decided[held == NO_VOTE] = NO_VOTE
            results = decided
        return int(results[0])


def stack_rows(rows: Sequence[Values | None], size: int, default: int) -> Values:
    """The senders' rows as one matrix; a sender that sent nothing counts as the default, as in A3."""
    matrix = np.full((len(rows), size), default, dtype=np.uint8)
    for general, row in enumerate(rows):
        if row is not None:
            matrix[general] = row
    return matrix
