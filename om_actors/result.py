"""What a run produced, and whether that is what its scenario expected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .algorithm import Verdict, combine
from .scenario import Scenario


class _Conditions:
    """IC1, IC2 and success, read off a ``verdict``."""

    @property
    def verdict(self) -> Verdict:
        raise NotImplementedError

    @property
    def agreement(self) -> bool:
        return self.verdict.agreement

    @property
    def validity(self) -> bool | None:
        return self.verdict.validity

    @property
    def success(self) -> bool:
        return self.verdict.success


@attrs.frozen
class InstanceOutcome(_Conditions):
    """How one consensus instance ended: every loyal general's decision, and IC1/IC2."""

    index: int
    commander: int
    order: str
    decisions: Mapping[int, str]
    verdict: Verdict


@attrs.frozen
class Result(_Conditions):
    """The outcome of one run.

    ``instances`` holds one outcome per consensus instance -- just one,
    unless the scenario lists ``instances``.  ``decisions`` is the first
    instance's, which is all there is in a single-instance run: every loyal
    general's decision, a loyal commander included.  ``verdict`` holds for
    the whole run: each condition must hold in every instance.

    ``sent`` and ``received`` count messages per general, refused ones
    included; ``rejected`` counts the refused ones across all generals.
    ``timed_out`` maps a round to the generals its timeout cut off.
    ``undelivered`` counts messages loyal generals sent that never arrived,
    and ``crashed`` lists the generals whose process died: both only happen
    over a network, and either means the paper's assumptions did not hold.
    ``stats`` sums what the algorithm's generals counted as they worked --
    SM(m)'s ``signatures_verified``, say; OM(m) counts nothing -- and
    :meth:`to_dict` gives each at the top level, beside ``messages``.
    """

    scenario: Scenario
    instances: tuple[InstanceOutcome, ...]
    messages_per_round: tuple[int, ...]
    sent: Mapping[int, int]
    received: Mapping[int, int]
    rejected: int
    timed_out: Mapping[int, tuple[int, ...]]
    undelivered: int = 0
    crashed: tuple[int, ...] = ()
    stats: Mapping[str, int] = attrs.field(factory=dict)

    @property
    def decisions(self) -> Mapping[int, str]:
        return self.instances[0].decisions

    @property
    def verdict(self) -> Verdict:
        return combine(outcome.verdict for outcome in self.instances)

    @property
    def messages(self) -> int:
        return sum(self.messages_per_round)

    @property
    def rounds(self) -> int:
        return len(self.messages_per_round)

    @property
    def traitors(self) -> tuple[int, ...]:
        return tuple(self.scenario.traitors)

    def undecided(self) -> list[int]:
        """The instances whose loyal lieutenants all crashed: nobody decided, so they have no verdict.

        Agreement and validity would hold of nobody; a run that lost every
        loyal decision must not read as a success (:attr:`Verdict.decided`).
        """
        return [outcome.index for outcome in self.instances if not outcome.verdict.decided]

    def unmet_expectations(self) -> list[str]:
        """How the outcome differs from the scenario's ``expect``, one line each.

        Without ``expect`` a scenario is expected to succeed.  ``decision`` is
        checked against the lieutenants: a loyal commander decides its own
        order by definition.
        """
        undecided = self.undecided()
        if undecided:
            lost = [g for g in self.crashed if g in self.scenario.loyal]
            where = f" in instance(s) {', '.join(map(str, undecided))}" if len(self.instances) > 1 else ""
            return [f"no loyal lieutenant decided{where}: {describe_generals(lost)} crashed"]
        expect = self.scenario.expect
        if expect is None:
            return [] if self.success else ["expected success"]
        unmet = []
        for key in ("agreement", "validity", "success"):
            wanted = getattr(expect, key)
            if wanted is not None and wanted != getattr(self, key):
                unmet.append(f"expected {key} {_yaml(wanted)}, got {_yaml(getattr(self, key))}")
        if expect.decision is not None:
            off = sorted(
                {
                    g
                    for outcome in self.instances
                    for g, v in outcome.decisions.items()
                    if v != expect.decision and g != outcome.commander
                }
            )
            if off:
                wanted = f"expected every loyal lieutenant to decide {expect.decision!r}"
                unmet.append(f"{wanted}; {describe_generals(off)} did not")
        return unmet

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON data; ids become strings because JSON keys are.

        Each of :attr:`stats` is a key of its own; one that would hide a
        key of the result is refused, since a reader could not tell them apart.
        """
        unmet = self.unmet_expectations()
        data = {
            "scenario": self.scenario.name,
            "algorithm": self.scenario.algorithm,
            "decisions": {str(g): v for g, v in self.decisions.items()},
            "agreement": self.agreement,
            "validity": self.validity,
            "success": self.success,
            "undecided": self.undecided(),
            "expected": not unmet,
            "unmet_expectations": unmet,
            "messages": self.messages,
            "messages_per_round": list(self.messages_per_round),
            "rounds": self.rounds,
            "received": {str(g): count for g, count in self.received.items()},
            "rejected": self.rejected,
            "timed_out": {str(r): list(gs) for r, gs in self.timed_out.items()},
            "undelivered": self.undelivered,
            "crashed": list(self.crashed),
            "instances": [
                {
                    "commander": outcome.commander,
                    "order": outcome.order,
                    "decisions": {str(g): v for g, v in outcome.decisions.items()},
                    "agreement": outcome.agreement,
                    "validity": outcome.validity,
                    "success": outcome.success,
                }
                for outcome in self.instances
            ],
            "sent": {str(g): count for g, count in self.sent.items()},
            "traitors": list(self.traitors),
            "generals": self.scenario.generals,
            "m": self.scenario.m,
            "seed": self.scenario.seed,
        }
        clashing = sorted(set(self.stats) & set(data))
        if clashing:
            raise ValueError(f"the algorithm's count {clashing[0]!r} has the name of a result key")
        data.update(self.stats)
        return data


def _yaml(value: bool | None) -> str:
    return "null" if value is None else str(value).lower()


def describe_generals(ids: list[int]) -> str:
    return f"general {ids[0]}" if len(ids) == 1 else f"generals {', '.join(map(str, ids))}"
