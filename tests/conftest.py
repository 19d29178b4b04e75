"""Fixtures shared by several test modules."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs
import pytest

from om_actors.algorithm import Algorithm, Core, DecisionPoint, Outgoing, Setup, Step
from om_actors.oral import majority
from om_actors.registry import REGISTRY
from om_actors.strategies import Flip, Loyal, RandomChoice, Scripted, Silent, Split

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

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> EchoGeneral:
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


# --- an algorithm shaped like Phase King: several rounds, no paths, a majority -------


@attrs.frozen
class Rumour:
    """Gossip's one message: a value; where it has been is nobody's business."""

    value: object


class GossipReason(str, enum.Enum):
    NOT_A_RUMOUR = "not a rumour"
    OUT_OF_TURN = "only the commander speaks in round 1"
    OUTSIDE_DOMAIN = "value outside the domain"
    DUPLICATE = "second rumour from the same general in one round"


class GossipGeneral(Core):
    """Round 1: the commander tells every lieutenant its order.  Rounds 2 and 3: everyone tells everyone.

    A lieutenant's value is the order it heard (``default`` if none) after
    round 1, then the strict majority of its own value and the values it
    heard that round.  It decides its value; the commander, its order.
    Every offer's path is ``(sender,)``, the same in every round.
    """

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.value = self.order if me == setup.commander else setup.default
        self.heard: dict[int, str] = {}
        self.values: list[str] = []
        """The value after each round that is over."""

    def _settle(self, over: int) -> None:
        """Fold the rounds up to ``over`` not yet counted into the value."""
        setup = self.setup
        while len(self.values) < over:
            if self.me == setup.commander:
                pass  # the commander keeps its order
            elif not self.values:
                self.value = self.heard.get(setup.commander, setup.default)
            else:
                self.value = majority([self.value, *self.heard.values()], setup.default)
            self.values.append(self.value)
            self.heard = {}

    def _outbox(self, round: int) -> list[Outgoing]:
        self._settle(round - 1)
        setup = self.setup
        if round == 1:
            speaks = self.me == setup.commander
            return [Outgoing((self.me,), g, self.order) for g in setup.lieutenants if speaks]
        return [Outgoing((self.me,), g, self.value) for g in range(setup.generals) if g != self.me]

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Rumour:
        return Rumour(value)

    def _receive(self, sender: int, round: int, payload: object) -> GossipReason | None:
        if type(payload) is not Rumour:
            return GossipReason.NOT_A_RUMOUR
        if round == 1 and sender != self.setup.commander:
            return GossipReason.OUT_OF_TURN
        if payload.value not in self.setup.values:
            return GossipReason.OUTSIDE_DOMAIN
        if sender in self.heard:
            return GossipReason.DUPLICATE
        self.heard[sender] = str(payload.value)
        return None

    def _decide(self) -> str:
        self._settle(self.rounds)
        return self.order if self.me == self.setup.commander else self.value


class Gossip(Algorithm):
    """Phase King's shape in miniature: three rounds, messages without paths, a majority.

    The same general sends along the same pseudo-path ``(sender,)`` in
    several rounds, so only the round tells its messages apart: tests hold
    scripts, randomness, verify, the log and replay to that.
    """

    name = "gossip"
    title = "GOSSIP(m)"
    payload = Rumour
    reasons = GossipReason

    def rounds(self, generals: int, m: int) -> int:
        return 3

    def problems(self, generals: int, m: int) -> list[str]:
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        return ["gossip promises nothing with a traitor"] if traitors else []

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        return (generals - 1) + 2 * generals * (generals - 1)

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        if sender == receiver or not 1 <= round <= 3:
            return 0
        return int(round > 1 or (sender == setup.commander))

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> GossipGeneral:
        return GossipGeneral(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return {
            "loyal": Loyal,
            "silent": Silent,
            "split": Split,
            "flip": Flip,
            "random": RandomChoice,
            "scripted": Scripted,
        }

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        return [("split", {}), ("flip", {}), ("silent", {})]

    def decision_points(self, setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        if traitor == setup.commander:
            yield from (DecisionPoint(1, (traitor,), g) for g in setup.lieutenants)
        for round in (2, 3):
            yield from (DecisionPoint(round, (traitor,), g) for g in range(setup.generals) if g != traitor)

    def explain(self, core: Core, *, path: tuple[int, ...] | None = None, depth: int | None = None) -> Step:
        assert isinstance(core, GossipGeneral)
        decision = core.decide()
        rounds = tuple(Step(f"round {r}", v) for r, v in enumerate(core.values, start=1))
        return Step(f"general {core.me}", decision, "value round by round", rounds)


GOSSIP = Gossip()


@pytest.fixture
def gossip(monkeypatch: pytest.MonkeyPatch) -> Gossip:
    """:data:`GOSSIP`, registered for one test: scenarios may say ``algorithm: gossip``."""
    monkeypatch.setitem(REGISTRY, GOSSIP.name, GOSSIP)
    return GOSSIP


def masked(log: bytes) -> list[dict[str, object]]:
    """A log's events with the public keys and signatures blanked: all a cluster's log may differ in."""
    found = []
    for line in log.splitlines():
        event = json.loads(line)
        public = event.get("public")
        if isinstance(public, dict):
            event["public"] = {name: dict.fromkeys(keys, "(key)") for name, keys in public.items()}
        if isinstance(event.get("signatures"), list):
            event["signatures"] = ["(signature)"] * len(event["signatures"])
        found.append(event)
    return found


def signatures(log: bytes) -> set[str]:
    return {s for line in log.splitlines() for s in json.loads(line).get("signatures", [])}
