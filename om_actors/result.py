"""What a run produced, and whether that is what its scenario expected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .protocol import Verdict
from .scenario import Scenario


@attrs.frozen
class Result:
    """The outcome of one run.

    ``decisions`` holds every loyal general, a loyal commander included.
    ``received`` counts every message delivered to a general, refused ones
    included; ``rejected`` counts the refused ones across all generals.
    ``timed_out`` maps a round to the generals its timeout cut off.
    """

    scenario: Scenario
    decisions: Mapping[int, str]
    verdict: Verdict
    messages_per_round: tuple[int, ...]
    received: Mapping[int, int]
    rejected: int
    timed_out: Mapping[int, tuple[int, ...]]

    @property
    def agreement(self) -> bool:
        return self.verdict.agreement

    @property
    def validity(self) -> bool | None:
        return self.verdict.validity

    @property
    def success(self) -> bool:
        return self.verdict.success

    @property
    def messages(self) -> int:
        return sum(self.messages_per_round)

    @property
    def rounds(self) -> int:
        return len(self.messages_per_round)

    @property
    def traitors(self) -> tuple[int, ...]:
        return tuple(self.scenario.traitors)

    def unmet_expectations(self) -> list[str]:
        """How the outcome differs from the scenario's ``expect``, one line each.

        Without ``expect`` a scenario is expected to succeed.  ``decision`` is
        checked against the lieutenants: a loyal commander decides its own
        order by definition.  ``decision`` is
        checked against the lieutenants: a loyal commander decides its own
        order by definition.
        """
        expect = self.scenario.expect
        if expect is None:
            return [] if self.success else ["expected success"]
        unmet = []
        for key in ("agreement", "validity", "success"):
            wanted = getattr(expect, key)
            if wanted is not None and wanted != getattr(self, key):
                unmet.append(f"expected {key} {_yaml(wanted)}, got {_yaml(getattr(self, key))}")
        if expect.decision is not None:
            commander = self.scenario.commander
            off = [g for g, v in self.decisions.items() if v != expect.decision and g != commander]
            if off:
                wanted = f"expected every loyal lieutenant to decide {expect.decision!r}"
                unmet.append(f"{wanted}; {describe_generals(off)} did not")
        return unmet

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON data; ids become strings because JSON keys are."""
        return {
            "scenario": self.scenario.name,
            "decisions": {str(g): v for g, v in self.decisions.items()},
            "agreement": self.agreement,
            "validity": self.validity,
            "success": self.success,
            "expected": not self.unmet_expectations(),
            "unmet_expectations": self.unmet_expectations(),
            "messages": self.messages,
            "messages_per_round": list(self.messages_per_round),
            "rounds": self.rounds,
            "received": {str(g): count for g, count in self.received.items()},
            "rejected": self.rejected,
            "timed_out": {str(r): list(gs) for r, gs in self.timed_out.items()},
            "traitors": list(self.traitors),
            "generals": self.scenario.generals,
            "m": self.scenario.m,
            "seed": self.scenario.seed,
        }


def _yaml(value: bool | None) -> str:
    return "null" if value is None else str(value).lower()


def describe_generals(ids: list[int]) -> str:
    return f"general {ids[0]}" if len(ids) == 1 else f"generals {', '.join(map(str, ids))}"
