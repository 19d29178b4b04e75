"""Fixtures shared by several test modules."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from om_actors.algorithm import Algorithm, Core, DecisionPoint, Outgoing, Setup, Step
from om_actors.oral import majority
from om_actors.registry import REGISTRY
from om_actors.strategies import Loyal, Silent, Split

HOSTILE = r"""name: "\e[31mRED\e]0;title\a"
generals: 4
m: 1
values: ["\e[5mblink", "\u009b2Jretreat"]
default: "\u009b2Jretreat"
order: "\e[5mblink"
traitors:
  1: {strategy: constant, value: "\u009b2Jretreat"}
  2: flip
"""
"""A scenario whose name, values and strategy argument hold escape sequences and a C1 control (CSI)."""


@pytest.fixture
def hostile_scenario(tmp_path: Path) -> Path:
    """:data:`HOSTILE` as a file, for the tests that check nothing of it reaches a terminal raw."""
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    return path


# --- an algorithm whose messages carry no path --------------------------------------


@attrs.frozen
class Vote:
    """Echo's one message: a value, and nothing about where it has been."""

    value: object


class EchoReason(str, enum.Enum):
    NOT_A_VOTE = "not a vote"
    OUT_OF_TURN = "the commander speaks in round 1, lieutenants in round 2"
    OUTSIDE_DOMAIN = "value outside the domain"
    DUPLICATE = "second vote from the same general"


class EchoGeneral(Core):
    """Round 1: the commander tells every lieutenant.  Round 2: each lieutenant tells the others.

    A lieutenant decides by a strict majority of what it heard, the
    commander's order counted once.
    """

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.heard: dict[int, str] = {}

    def _outbox(self, round: int) -> list[Outgoing]:
        setup = self.setup
        if round == 1 and self.me == setup.commander:
            return [Outgoing((self.me,), g, self.order) for g in setup.lieutenants]
        if round == 2 and self.me != setup.commander:
            told = self.heard.get(setup.commander, setup.default)
            return [Outgoing((self.me,), g, told) for g in setup.lieutenants if g != self.me]
        return []

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Vote:
        return Vote(value)

    def _receive(self, sender: int, round: int, payload: object) -> EchoReason | None:
        if type(payload) is not Vote:
            return EchoReason.NOT_A_VOTE
        if (round == 1) != (sender == self.setup.commander):
            return EchoReason.OUT_OF_TURN
        if payload.value not in self.setup.values:
            return EchoReason.OUTSIDE_DOMAIN
        if sender in self.heard:
            return EchoReason.DUPLICATE
        self.heard[sender] = str(payload.value)
        return None

    def _decide(self) -> str:
        if self.me == self.setup.commander:
            return self.order
        votes = [self.heard.get(g, self.setup.default) for g in self.setup.lieutenants if g != self.me]
        return majority(
            [self.heard.get(self.setup.commander, self.setup.default), *votes], self.setup.default
        )


class Echo(Algorithm):
    """A two-round algorithm shaped like Phase King's rounds: no paths, and two rounds whatever ``m`` is.

    Tests run it to hold the runtimes to the seam: nothing but this class
    and its registry entry may be needed for it to run, log and replay.
    """

    name = "echo"
    title = "ECHO(m)"
    payload = Vote
    reasons = EchoReason

    def rounds(self, generals: int, m: int) -> int:
        return 2

    def problems(self, generals: int, m: int) -> list[str]:
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        return ["echo promises nothing with a traitor"] if traitors else []

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        return (generals - 1) * (generals - 1)

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        if sender == receiver or receiver == setup.commander:
            return 0
        return int((round == 1) == (sender == setup.commander) and round in (1, 2))

    def general(self, setup: Setup, me: int, order: str | None = None) -> EchoGeneral:
        return EchoGeneral(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return {"loyal": Loyal, "silent": Silent, "split": Split}

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        return [("split", {}), ("silent", {})]

    def decision_points(self, setup: Setup, traitor: int) -> list[DecisionPoint]:
        probe = self.general(setup, traitor, setup.default)
        return [DecisionPoint(r, out.path, out.receiver) for r in (1, 2) for out in probe.outbox(r)]

    def explain(self, core: Core, *, path: tuple[int, ...] | None = None, depth: int | None = None) -> Step:
        assert isinstance(core, EchoGeneral)
        heard = ", ".join(f"{g}: {v}" for g, v in sorted(core.heard.items()))
        return Step(f"general {core.me}", core.decide(), f"heard {heard}")


ECHO = Echo()


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Echo:
    """:data:`ECHO`, registered for one test: scenarios may say ``algorithm: echo``."""
    monkeypatch.setitem(REGISTRY, ECHO.name, ECHO)
    return ECHO
