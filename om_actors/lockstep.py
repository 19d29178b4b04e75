"""OM(m) run synchronously, all generals in lockstep: verify's fast path.

verify evaluates thousands of adversaries per case, and a trio task per
general, a barrier per round and an event per message would cost far more
than the algorithm itself.  This driver feeds the same protocol core
(:class:`~om_actors.protocol.General`) round by round in one loop, with no
tasks, events or logs.  It gives the actor runtime's results exactly --
verify re-runs a sample of its cases through the actors to keep it honest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from .algorithm import Path, Setup, Verdict, judge
from .oral import OralGeneral as General

Choice = Callable[[int, Path, int, str], "str | None"]
"""A traitor: ``(round, path, receiver, loyal value)`` to the value it sends, or ``None`` for silence."""


@attrs.frozen
class Deviation:
    """A message a traitor sent differently from a loyal general (``sent`` is ``None`` for silence)."""

    path: Path
    receiver: int
    loyal: str
    sent: str | None


@attrs.frozen
class LockstepRun:
    decisions: dict[int, str]
    verdict: Verdict
    deviations: tuple[Deviation, ...]

    def disagreement(self, setup: Setup, loyal: frozenset[int], order: str) -> int:
        """How far from interactive consistency: search's objective, 0 when IC1 and IC2 hold.

        Counts the loyal lieutenants outside the largest camp, plus, under a
        loyal commander, those that did not obey it.
        """
        lieutenants = [self.decisions[g] for g in setup.lieutenants if g in loyal]
        if not lieutenants:
            return 0
        largest = max(lieutenants.count(value) for value in set(lieutenants))
        score = len(lieutenants) - largest
        if setup.commander in loyal:
            score += sum(value != order for value in lieutenants)
        return score


def run_lockstep(setup: Setup, order: str, traitors: Mapping[int, Choice]) -> LockstepRun:
    """One OM(m) run with ``traitors`` choosing their messages; everyone else loyal."""
    states = [General(setup, g, order) for g in range(setup.generals)]
    deviations: list[Deviation] = []
    for round in range(1, setup.rounds + 1):
        for general, state in enumerate(states):
            choose = traitors.get(general)
            for outgoing in state.outbox(round):
                value: str | None = outgoing.value
                if choose is not None:
                    value = choose(round, outgoing.path, outgoing.receiver, outgoing.value)
                    if value != outgoing.value:
                        deviations.append(Deviation(outgoing.path, outgoing.receiver, outgoing.value, value))
                if value is not None:
                    states[outgoing.receiver].receive(
                        sender=general, round=round, path=outgoing.path, value=value
                    )
    decisions = {g: state.decide() for g, state in enumerate(states)}
    loyal = {g: decisions[g] for g in range(setup.generals) if g not in traitors}
    return LockstepRun(decisions, judge(setup, loyal, loyal=loyal, order=order), tuple(deviations))


def traitor_messages(setup: Setup, traitor: int) -> list[tuple[int, Path, int]]:
    """Every ``(round, path, receiver)`` a general sends, whatever it received.

    Which messages a general owes never depends on values, so the space an
    exhaustive adversary ranges over is fixed before any run.
    """
    probe = General(setup, traitor, setup.default)
    return [
        (round, outgoing.path, outgoing.receiver)
        for round in range(1, setup.rounds + 1)
        for outgoing in probe.outbox(round)
    ]
