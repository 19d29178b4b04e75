"""Any algorithm run synchronously, all generals in lockstep: verify's fast path.

verify evaluates thousands of adversaries per case, and a trio task per
general, a barrier per round and an event per message would cost far more
than the algorithm itself.  This loop runs the same pipeline the actors run
-- one :class:`~om_actors.driver.GeneralDriver` per general, strategies asked
through :meth:`~om_actors.driver.GeneralDriver.lies` with the same per-message rng --
round by round, with no tasks, events or logs.  Every general's messages of
a round are collected before any is delivered, as the core's schedule
requires: a general opens a round before anything of it arrives.  It gives
the actor runtime's decisions exactly; verify re-runs a sample of its cases
through the actors to keep it honest.

An ``async`` strategy cannot run here, and is refused with an
:class:`~om_actors.errors.OmActorsError` saying so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

import attrs

from .algorithm import Algorithm, Setup, Verdict, judge
from .driver import Awaiting, GeneralDriver, refuse_to_await
from .strategies import Strategy


@attrs.frozen
class LockstepRun:
    """Every general's decision (traitors' too), the verdict on the loyal ones', and what the run cost.

    ``messages`` counts every message posted, the traitors' included, as
    the actor runtime counts them;
    ``stats`` sums what the generals' cores counted before they decided,
    as a run's ``Result.stats`` does.
    """

    decisions: dict[int, str]
    verdict: Verdict
    messages: int = 0
    stats: dict[str, int] = attrs.field(factory=dict)

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


def run_lockstep(rules: Algorithm, setup: Setup, order: str, traitors: Mapping[int, Strategy]) -> LockstepRun:
    """One instance of ``rules`` with ``traitors`` lying as their strategies say; everyone else loyal.

    Each traitor's rng is the one a run of a scenario with ``setup.seed``
    gives it, so a ``random`` traitor lies here as it does in that run.
    """
    drivers = [
        GeneralDriver(
            [rules.general(setup, g, order)], strategy=traitors.get(g), seed=setup.seed, tagged=False
        )
        for g in range(setup.generals)
    ]
    messages = 0
    for round in range(1, rules.rounds(setup.generals, setup.m) + 1):
        sent: list[tuple[int, int, int, object]] = []
        for driver in drivers:
            sent += _round_of(driver, round)
        messages += len(sent)
        for sender, instance, receiver, payload in sent:
            drivers[receiver].deliver(instance, sender, round, payload)
    stats: Counter[str] = Counter()
    for driver in drivers:  # before deciding, as the actors count them
        for core in driver.cores:
            stats.update(core.stats)
    decisions = {driver.me: driver.decide()[0] for driver in drivers}
    loyal = {g: decisions[g] for g in range(setup.generals) if g not in traitors}
    verdict = judge(setup, loyal, loyal=loyal, order=order)
    return LockstepRun(decisions, verdict, messages, dict(sorted(stats.items())))


def _round_of(driver: GeneralDriver, round: int) -> Iterator[tuple[int, int, int, object]]:
    """What ``driver``'s general sends in ``round``, as ``(sender, instance, receiver, payload)``.

    A loyal general's messages come as :meth:`~GeneralDriver.sends` gives
    them, a traitor's as :meth:`~GeneralDriver.lies` does, as in the
    actors; a strategy that raised sends nothing, and an ``async`` one is
    refused (:func:`~om_actors.driver.refuse_to_await`).
    """
    me = driver.me
    if driver.strategy is None:
        for instance, sends in enumerate(driver.sends(round)):
            for receiver, payload in sends:
                yield me, instance, receiver, payload
        return
    for item in driver.lies(round):
        if type(item) is tuple:
            yield me, *item
        elif isinstance(item, Awaiting):
            refuse_to_await(driver, item.pending)
