"""An algorithm of your own, run by om_actors' actors, log and replay unchanged.

"Trust the commander" is the naive protocol every course starts from: the
commander sends its order in one round, and each lieutenant does what it was
told.  It needs no relaying and no majority -- and one two-faced commander
splits the army, which is the point of Lamport, Shostak and Pease's paper.

Everything an algorithm is lives in two classes, an :class:`om_actors.Algorithm`
and an :class:`om_actors.Core` per general, with no trio, no logging and no
clock.  :func:`om_actors.register` makes it a name a scenario can use::

    python examples/custom_algorithm.py

prints the run with a loyal commander, then with a split one, then replays the
second run's log.
"""

from __future__ import annotations

import enum
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

import om_actors
from om_actors import Algorithm, Core, DecisionPoint, Outgoing, Setup, Step


@attrs.frozen
class Order:
    """The one message of the protocol: the commander's order.  A traitor may put anything in it."""

    value: object


class Refusal(str, enum.Enum):
    NOT_AN_ORDER = "not an order"
    NOT_FROM_COMMANDER = "only the commander gives orders"
    OUTSIDE_DOMAIN = "value outside the domain"


class Trusting(Core):
    """One general: the commander orders in round 1; a lieutenant keeps what arrived."""

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None) -> None:
        super().__init__(algorithm, setup, me, order)
        self.told: str | None = None

    def _outbox(self, round: int) -> list[Outgoing]:
        if self.me != self.setup.commander:
            return []
        return [Outgoing((self.me,), lieutenant, self.order) for lieutenant in self.setup.lieutenants]

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Order:
        return Order(value)

    def _receive(self, sender: int, round: int, payload: object) -> Refusal | None:
        if not isinstance(payload, Order):
            return Refusal.NOT_AN_ORDER
        if sender != self.setup.commander:
            return Refusal.NOT_FROM_COMMANDER
        if payload.value not in self.setup.values:
            return Refusal.OUTSIDE_DOMAIN
        self.told = str(payload.value)
        return None

    def _decide(self) -> str:
        if self.me == self.setup.commander:
            return self.order
        return self.told if self.told is not None else self.setup.default


class TrustTheCommander(Algorithm):
    name = "trust"
    title = "TRUST"
    payload = Order
    reasons = Refusal

    def rounds(self, generals: int, m: int) -> int:
        return 1

    def problems(self, generals: int, m: int) -> list[str]:
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        return ["trusting the commander survives no traitor at all"] if traitors else []

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        return generals - 1

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> Trusting:
        return Trusting(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return {"loyal": om_actors.Loyal, "silent": om_actors.Silent, "split": om_actors.Split}

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        return [("split", {}), ("silent", {})]

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        return int(round == 1 and sender == setup.commander and receiver != sender)

    def decision_points(self, setup: Setup, traitor: int) -> list[DecisionPoint]:
        if traitor != setup.commander:
            return []
        return [DecisionPoint(1, (traitor,), lieutenant) for lieutenant in setup.lieutenants]

    def explain(self, core: Core, *, path: tuple[int, ...] | None = None, depth: int | None = None) -> Step:
        assert isinstance(core, Trusting)
        told = "nothing usable arrived" if core.told is None else f"the commander said {core.told}"
        return Step(f"general {core.me}", core.decide(), told)


om_actors.register(TrustTheCommander())


def show(title: str, result: om_actors.Result) -> None:
    decisions = dict(sorted(result.decisions.items()))
    print(f"{title}: decisions={decisions} agreement={result.agreement} messages={result.messages}")


def main() -> None:
    loyal = om_actors.Scenario(name="loyal", algorithm="trust", generals=4, m=1)
    show("loyal commander", om_actors.simulate_sync(loyal))
    split = om_actors.Scenario(name="split", algorithm="trust", generals=4, m=1, traitors={0: "split"})
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "split.jsonl"
        show("split commander", om_actors.simulate_sync(split, log=log))
        report = om_actors.replay_log(log)
        print(f"replay: ok={report.ok} messages={report.messages}")


if __name__ == "__main__":
    main()
