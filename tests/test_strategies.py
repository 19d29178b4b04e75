"""Built-in traitor strategies and how scenario files name them.

Rules for this file:
- strategies are called directly, as the runtime would, with a seeded rng.
"""

from __future__ import annotations

import io
import itertools
import random

import attrs
import numpy as np
import pytest
from adversaries import Slow

from om_actors import (
    Constant,
    Flip,
    Loyal,
    RandomChoice,
    Scenario,
    ScenarioError,
    Silent,
    Split,
    Strategy,
    TraitorSpec,
    simulate_sync,
    strategies,
)
from om_actors.algorithm import Algorithm, DecisionPoint, Setup
from om_actors.oral import ORAL_MESSAGES, OralMessages
from om_actors.scenario import SEVEN_GENERALS
from om_actors.signed import SIGNED_MESSAGES, Late
from om_actors.strategies import (
    BatchStrategy,
    Parity,
    ScriptContext,
    StrategyError,
    build_strategy,
    following,
    script_problems,
    strategy_parameters,
)

VALUES = ("attack", "retreat", "hold")


def _choose(
    strategy: Strategy, receiver: int = 1, value: str = "attack", path: tuple[int, ...] = (0,)
) -> object:
    return strategy.choose(1, path, receiver, value, random.Random(0))


def test_following_wraps_around() -> None:
    assert [following(VALUES, v) for v in VALUES] == ["retreat", "hold", "attack"]


def test_built_ins_lie_as_documented() -> None:
    assert _choose(Loyal()) == "attack"
    assert _choose(Flip(VALUES), value="hold") == "attack"
    assert [_choose(Split(VALUES), receiver=r) for r in (1, 2, 3, 4)] == ["retreat", "attack"] * 2
    assert _choose(Constant("hold")) == "hold"
    assert _choose(Silent()) is None


def test_random_is_a_function_of_its_inputs_only() -> None:
    strategy = RandomChoice(VALUES)
    draws = {strategy.choose(2, (0, 1), 3, "attack", random.Random(seed)) for seed in range(30)}
    assert draws == set(VALUES)
    seeded = RandomChoice(VALUES, seed=7)
    first = [seeded.choose(2, (0, r), 3, "attack", random.Random(r)) for r in range(20)]
    again = [seeded.choose(2, (0, r), 3, "attack", random.Random(99)) for r in range(20)]
    assert first == again  # its own seed overrides the run's rng


def test_build_strategy_fills_in_the_values_and_checks_the_rest() -> None:
    assert build_strategy("flip", {}, values=VALUES) == Flip(VALUES)
    assert build_strategy("random", {"seed": 3}, values=VALUES) == RandomChoice(VALUES, seed=3)
    assert build_strategy("adversaries:Slow", {"delay": 0.5}, values=VALUES) == Slow(0.5)
    with pytest.raises(StrategyError, match="unknown strategy 'flipp'"):
        build_strategy("flipp", {}, values=VALUES)
    with pytest.raises(StrategyError, match="has no choose"):
        build_strategy("collections:OrderedDict", {}, values=VALUES)


def test_a_script_may_only_send_the_scenarios_values() -> None:
    context = ScriptContext(ORAL_MESSAGES, (Setup(4, 1, 0, VALUES, "retreat"),), traitor=2)
    messages = [
        {"path": [0, 2], "receiver": 1, "value": "atack"},
        {"path": [0, 2], "receiver": 3, "value": "hold"},
        {"path": [0, 2], "receiver": 1, "silent": True},
        {"path": [0, 2], "receiver": 3, "value": "x" * 5000},
    ]
    assert script_problems(messages, context, VALUES) == [
        (("messages", 0, "value"), "'atack' is not one of values ['attack', 'retreat', 'hold']"),
        (("messages", 2), "the same message as messages.0: script each message once"),
        (("messages", 3), "the same message as messages.1: script each message once"),
        (
            ("messages", 3, "value"),
            "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (5,002 characters) "
            "is not one of values ['attack', 'retreat', 'hold']",
        ),
    ]
    unusable_army = None  # paths cannot be checked, but values can
    assert script_problems(messages[:2], unusable_army, VALUES) == [
        (("messages", 0, "value"), "'atack' is not one of values ['attack', 'retreat', 'hold']")
    ]


def test_split_lies_to_the_parity_it_is_told() -> None:
    receivers = (1, 2, 3, 4)
    assert [_choose(Split(VALUES, lie_to=Parity.EVEN), receiver=r) for r in receivers] == [
        "attack",
        "retreat",
    ] * 2
    assert [_choose(Split(VALUES, lie_to="odd"), receiver=r) for r in receivers] == ["retreat", "attack"] * 2
    assert Split(VALUES) == Split(VALUES, lie_to=Parity.ODD)  # as before the option existed
    with pytest.raises(
        ScenarioError, match=r"^scenario: traitors.0.lie_to: expected 'odd' or 'even', got 'both'$"
    ):
        Scenario(generals=4, m=1, traitors={0: TraitorSpec("split", {"lie_to": "both"})})


@pytest.mark.parametrize(
    "strategy", [Flip(VALUES), Split(VALUES), Split(VALUES, lie_to=Parity.EVEN), Constant("hold"), Loyal()]
)
def test_choose_batch_gives_what_choose_gives_path_by_path(strategy: BatchStrategy) -> None:
    held = np.array([0, 1, 2, 2, 1, 0], dtype=np.uint8)
    for receiver in range(6):
        batch = strategy.choose_batch(2, receiver, held, VALUES)
        assert batch is not None
        one_by_one = [_choose(strategy, receiver, VALUES[i], path=(0, 1)) for i in held]  # type: ignore[arg-type]
        assert [VALUES[i] for i in batch] == one_by_one


def test_an_even_split_runs_the_same_batched_and_per_message() -> None:
    scenario = Scenario(
        generals=8, m=2, values=VALUES, traitors={0: TraitorSpec("split", {"lie_to": "even"}), 3: "flip"}
    )
    one, many = io.BytesIO(), io.BytesIO()
    per_message = simulate_sync(scenario, mode="per-message", log=one)
    batched = simulate_sync(scenario, mode="batched", log=many, log_messages=True)
    assert batched.instances == per_message.instances
    assert many.getvalue().split(b"\n")[1:] == one.getvalue().split(b"\n")[1:]


# --- the seven generals lie as the blog post's Flask system does ----------------


def _dca_decisions(generals: int, m: int, traitors: frozenset[int], order: str) -> dict[int, str]:
    """The loyal decisions of mtrencseni/dca's byzantine/simple/general.py, transcribed without Flask.

    Commander 0, when a traitor, sends the flipped order to even-numbered
    generals; a traitor lieutenant relays the flip of whatever it received;
    ``OM`` takes a strict majority for attack, else retreat.
    """

    def other(value: str) -> str:
        return "retreat" if value == "attack" else "attack"

    received: dict[int, dict[tuple[int, ...], str]] = {g: {} for g in range(generals)}

    def order_(me: int, path: tuple[int, ...], value: str) -> None:
        received[me][path] = value
        if 1 + m - len(path) > 0:
            relayed = other(value) if me in traitors else value
            for i in range(generals):
                if i not in (*path, me):
                    order_(i, (*path, me), relayed)

    for i in range(1, generals):
        order_(i, (0,), other(order) if 0 in traitors and i % 2 == 0 else order)

    def om(me: int, path: tuple[int, ...]) -> str:
        value = received[me][path]
        if 1 + m - len(path) == 0:
            return value
        votes = [value, *(om(me, (*path, i)) for i in range(generals) if i not in (*path, me))]
        return "attack" if votes.count("attack") > votes.count("retreat") else "retreat"

    decisions = {g: om(g, (0,)) for g in range(1, generals) if g not in traitors}
    if 0 not in traitors:
        decisions[0] = order  # its /decide answers the order /start gave it
    return decisions


def test_the_seven_generals_decide_as_the_flask_system_does() -> None:
    traitors = frozenset(SEVEN_GENERALS.traitors)
    assert traitors == {0, 5}
    assert simulate_sync(SEVEN_GENERALS).decisions == _dca_decisions(7, 2, traitors, "retreat")


@pytest.mark.parametrize("order", ["attack", "retreat"])
@pytest.mark.parametrize(
    "traitors", [frozenset(t) for k in (1, 2) for t in itertools.combinations(range(7), k)]
)
def test_split_even_and_flip_are_the_flask_systems_traitors(traitors: frozenset[int], order: str) -> None:
    """Any one or two traitors among seven, as the Flask driver draws them: the same decisions."""
    specs = {t: TraitorSpec("split", {"lie_to": "even"}) if t == 0 else TraitorSpec("flip") for t in traitors}
    scenario = attrs.evolve(SEVEN_GENERALS, traitors=specs, order=order)
    assert simulate_sync(scenario).decisions == _dca_decisions(7, 2, traitors, order)


# --- each algorithm has its own built-ins -----------------------------------------


@attrs.frozen
class _Counting:
    """A strategy that wants the scenario's values and m, as SM's late does."""

    values: tuple[str, ...]
    m: int
    spare: int = 0

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        return value


def test_build_strategy_fills_in_m_too_from_the_algorithms_built_ins() -> None:
    counting = {"counting": _Counting}
    assert build_strategy("counting", {"spare": 1}, values=VALUES, m=3, built_in=counting) == _Counting(
        VALUES, 3, 1
    )
    assert build_strategy("late", {}, values=VALUES, m=2, built_in=SIGNED_MESSAGES.strategies()) == Late(m=2)
    assert strategy_parameters(_Counting) == frozenset({"spare"})  # values and m are filled in
    with pytest.raises(
        StrategyError, match=r"^unknown strategy 'flip': use one of counting, or module:Class$"
    ):
        build_strategy("flip", {}, values=VALUES, built_in=counting)


def test_a_spec_of_any_algorithms_built_in_keeps_its_short_name() -> None:
    assert TraitorSpec.of(Late(m=2, receiver=3)) == TraitorSpec("late", {"receiver": 3})
    assert TraitorSpec.of(Flip(VALUES)) == TraitorSpec("flip")


class _CommanderOnly(OralMessages):
    """OM(m)'s path rules, but only the commander's round-1 messages are decision points."""

    def decision_points(self, setup: Setup, traitor: int) -> list[DecisionPoint]:
        return [point for point in super().decision_points(setup, traitor) if point.round == 1]


def test_a_script_names_only_the_algorithms_decision_points(monkeypatch: pytest.MonkeyPatch) -> None:
    setups = (Setup(4, 1, 0, VALUES, "retreat"),)
    entries = [
        {"path": [0], "receiver": 1, "value": "hold"},
        {"path": [0, 2], "receiver": 1, "value": "hold"},
    ]
    lieutenant = ScriptContext(_CommanderOnly(), setups, traitor=2)
    assert script_problems(entries[1:], lieutenant, VALUES) == [
        (("messages", 0), "general 2 sends nothing along path [0, 2] to general 1 in OM(1)")
    ]
    assert script_problems(entries[:1], ScriptContext(_CommanderOnly(), setups, traitor=0), VALUES) == []
    monkeypatch.setattr(strategies, "MAX_CHECKED_MESSAGES", 8)  # OM(1) on 4 generals sends 9
    assert lieutenant.sendable() is None
    assert script_problems(entries[1:], lieutenant, VALUES) == []  # the path rules alone allow it


def test_a_decision_point_is_sendable_whatever_the_path_rules_say(echo: Algorithm) -> None:
    """Echo's messages carry no path: a lieutenant's offers say only ``(sender,)``."""
    context = ScriptContext(echo, (Setup(4, 1, 0, VALUES, "retreat"),), traitor=2)
    assert script_problems([{"path": [2], "receiver": 1, "value": "hold"}], context, VALUES) == []
    assert script_problems([{"path": [2], "receiver": 0, "value": "hold"}], context, VALUES) == [
        (("messages", 0), "path must start with the commander (0), not 2")
    ]


def test_sm_on_a_large_army_checks_a_script_by_the_path_rules_alone() -> None:
    """SM(10) on 31 generals has billions of decision points: they are not listed, the path rules decide."""
    context = ScriptContext(SIGNED_MESSAGES, (Setup(31, 10, 0, VALUES, "retreat"),), traitor=3)
    assert context.sendable() is None
    entries = [
        {"path": [0, 3], "receiver": 1, "value": "hold"},
        {"path": [0, 4], "receiver": 1, "value": "hold"},
    ]
    assert script_problems(entries, context, VALUES) == [
        (("messages", 1), "path must end with general 3, the traitor itself, as all its messages do")
    ]
