"""Built-in traitor strategies and how scenario files name them.

Rules for this file:
- strategies are called directly, as the runtime would, with a seeded rng.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import pickle
import random
from collections.abc import Callable, Iterator
from pathlib import Path

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
    limits,
    simulate_sync,
    strategies,
)
from om_actors.algorithm import Algorithm, DecisionPoint, Setup
from om_actors.oral import ORAL_MESSAGES, OralMessages
from om_actors.scenario import SEVEN_GENERALS
from om_actors.signed import NOTHING_OWED, SIGNED_MESSAGES, Late
from om_actors.strategies import (
    BatchStrategy,
    Parity,
    ScriptContext,
    Scripted,
    StrategyError,
    build_strategy,
    closest,
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


def test_late_releases_only_what_it_holds_and_only_in_the_last_round() -> None:
    late, rng = Late(m=2, receiver=3), random.Random(0)
    assert late.choose(3, (0, 1, 2), 3, "attack", rng) == "attack"
    assert late.choose(3, (0, 1, 2), 4, "attack", rng) is None  # another receiver
    assert late.choose(2, (0, 2), 3, "attack", rng) is None  # before round m + 1
    assert late.choose(3, (0, 1, 2), 3, NOTHING_OWED, rng) is None  # a chain along which it holds nothing
    assert Late(m=2).choose(3, (0, 1, 2), 3, "attack", rng) == "attack"  # the lowest general off the chain


def test_a_name_in_the_wrong_case_is_offered_the_right_one() -> None:
    with pytest.raises(StrategyError, match=r"^unknown strategy 'SPLIT': did you mean 'split'\? use one of "):
        build_strategy("SPLIT", {}, values=VALUES)
    assert closest("SM", ["om", "sm"]) == "sm"  # too short to be a misspelling of either
    assert closest("Flipp", ["flip", "split"]) == "flip"
    assert closest("pbft", ["om", "sm"]) is None


def test_a_spec_of_any_algorithms_built_in_keeps_its_short_name() -> None:
    assert TraitorSpec.of(Late(m=2, receiver=3)) == TraitorSpec("late", {"receiver": 3})
    assert TraitorSpec.of(Flip(VALUES)) == TraitorSpec("flip")


class _CommanderOnly(OralMessages):
    """OM(m)'s paths, but only the commander's round-1 messages are decision points, and so scriptable."""

    def decision_points(self, setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        return (point for point in super().decision_points(setup, traitor) if point.round == 1)

    script_problem = Algorithm.script_problem  # the default: the decision points decide


def test_by_default_a_script_names_only_the_algorithms_decision_points(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setups = (Setup(4, 1, 0, VALUES, "retreat"),)
    entries = [
        {"path": [0], "receiver": 1, "value": "hold"},
        {"path": [0, 2], "receiver": 1, "value": "hold"},
    ]
    lieutenant = ScriptContext(_CommanderOnly(), setups, traitor=2)
    assert script_problems(entries[1:], lieutenant, VALUES) == [
        (("messages", 0), "general 2 sends nothing along path [0, 2] to general 1 in any round of OM(1)")
    ]
    assert script_problems([{**entries[1], "round": 2}], lieutenant, VALUES) == [
        (("messages", 0), "general 2 sends nothing along path [0, 2] to general 1 in round 2 of OM(1)")
    ]
    commander = ScriptContext(_CommanderOnly(), setups, traitor=0)
    assert script_problems(entries[:1], commander, VALUES) == []
    to_itself = [{"path": [0], "receiver": 0, "value": "hold"}]
    assert script_problems(to_itself, commander, VALUES) == [
        (("messages", 0), "general 0 sends nothing along path [0] to general 0 in any round of OM(1)")
    ]
    monkeypatch.setattr(limits, "MAX_CHECKED_MESSAGES", 2)  # the commander has 3: too many to list
    assert script_problems(to_itself, commander, VALUES) == []  # past the bound, every entry is allowed


def test_oms_path_rules_say_exactly_its_decision_points() -> None:
    """OM(m) overrides the default with its path rules, and they allow no more and no fewer messages."""
    for generals, m in ((4, 1), (5, 2)):
        for commander in (0, 2):
            setup = Setup(generals, m, commander, VALUES, "retreat")
            for traitor in range(generals):
                points = set(ORAL_MESSAGES.decision_points(setup, traitor))
                candidates = {
                    DecisionPoint(round, (*path, traitor), receiver)
                    for round in range(1, m + 3)
                    for length in range(m + 2)
                    for path in itertools.permutations(range(generals), length)
                    for receiver in range(generals + 1)
                }
                allowed = {p for p in candidates if ORAL_MESSAGES.script_problem(setup, traitor, p) is None}
                assert allowed == points


def test_a_pathless_algorithm_checks_scripts_by_its_decision_points(echo: Algorithm) -> None:
    """Echo's messages carry no path: a lieutenant's offers are ``(sender,)``; OM's rules do not apply."""
    context = ScriptContext(echo, (Setup(4, 1, 0, VALUES, "retreat"),), traitor=2)
    assert script_problems([{"path": [2], "receiver": 1, "value": "hold"}], context, VALUES) == []
    assert script_problems([{"path": [2], "receiver": 0, "value": "hold"}], context, VALUES) == [
        (("messages", 0), "general 2 sends nothing along path [2] to general 0 in any round of ECHO(1)")
    ]


def test_sm_on_a_large_army_checks_a_script_by_its_chain_rules_without_listing() -> None:
    """SM(10) on 31 generals has billions of decision points: never listed, the chain rules decide."""
    context = ScriptContext(SIGNED_MESSAGES, (Setup(31, 10, 0, VALUES, "retreat"),), traitor=3)
    entries = [
        {"path": [0, 3], "receiver": 1, "value": "hold"},
        {"path": [0, 4], "receiver": 1, "value": "hold"},
        {"round": 2, "path": [0, *range(4, 13), 3], "receiver": 1, "value": "hold"},
        {"round": 11, "path": [0, *range(4, 13), 3], "receiver": 1, "value": "hold"},
        {"round": 12, "path": [0, 3], "receiver": 1, "value": "hold"},
    ]
    assert script_problems(entries, context, VALUES) == [
        (("messages", 1), "path must end with general 3, the traitor itself, as all its messages do"),
        (("messages", 2), "a path of 11 generals is sent in round 11, not round 2"),
        (("messages", 4), "round 12, but SM(10) runs 11 rounds"),
    ]


def test_a_script_entry_may_name_its_round(gossip: Algorithm) -> None:
    """Gossip sends along ``(sender,)`` in rounds 2 and 3: a round tells those messages apart."""
    context = ScriptContext(gossip, (Setup(4, 1, 0, VALUES, "retreat"),), traitor=2)
    entries = [
        {"path": [2], "receiver": 1, "value": "hold"},  # rounds 2 and 3
        {"round": 3, "path": [2], "receiver": 1, "value": "attack"},  # round 3: wins over the one above
        {"round": 3, "path": [2], "receiver": 1, "silent": True},
        {"round": 1, "path": [2], "receiver": 1, "value": "hold"},  # only the commander speaks in round 1
        {"round": 0, "path": [2], "receiver": 1, "value": "hold"},
        {"round": True, "path": [2], "receiver": 1, "value": "hold"},
        {"round": "2", "path": [2], "receiver": 1, "value": "hold"},
        {"round": None, "path": [2], "receiver": 1, "value": "hold"},
        {"round": 4, "path": [2], "receiver": 1, "value": "hold"},
    ]
    assert script_problems(entries, context, VALUES) == [
        (("messages", 2), "the same message as messages.1: script each message once"),
        (("messages", 3), "general 2 sends nothing along path [2] to general 1 in round 1 of GOSSIP(1)"),
        (("messages", 4), "round must be a round number, 1 or more, not 0"),
        (("messages", 5), "round must be a round number, 1 or more, not True"),
        (("messages", 6), "round must be a round number, 1 or more, not '2'"),
        (("messages", 7), "round must be a round number, 1 or more, not None"),
        (("messages", 8), "round 4, but GOSSIP(1) runs 3 rounds"),
    ]
    commander = ScriptContext(gossip, (Setup(4, 1, 0, VALUES, "retreat"),), traitor=0)
    assert (
        script_problems([{"round": 1, "path": [0], "receiver": 1, "value": "hold"}], commander, VALUES) == []
    )
    script = build_strategy(
        "scripted", {"messages": entries[:2]}, values=VALUES, built_in=gossip.strategies()
    )
    assert isinstance(script, Scripted)
    said = [script.choose(round, (2,), 1, "retreat", random.Random(0)) for round in (1, 2, 3)]
    assert said == ["hold", "hold", "attack"]
    assert script.choose(2, (2,), 3, "retreat", random.Random(0)) == "retreat"  # not scripted: loyal
    assert script.to_args() == {  # a file writes the round where it was given
        "messages": [
            {"path": [2], "receiver": 1, "value": "hold"},
            {"round": 3, "path": [2], "receiver": 1, "value": "attack"},
        ]
    }


def _sent_by(log: Path, traitor: int) -> dict[tuple[int, int], object]:
    """What ``traitor`` sent, by round and receiver, as the log says."""
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    return {
        (line["round"], line["receiver"]): line["value"]
        for line in lines
        if line["event"] == "message" and line["sender"] == traitor
    }


def test_a_scripted_traitor_says_different_things_in_different_rounds_along_one_pseudo_path(
    gossip: Algorithm, tmp_path: Path
) -> None:
    script = {
        "messages": [
            {"round": 2, "path": [2], "receiver": 1, "value": "retreat"},
            {"round": 3, "path": [2], "receiver": 1, "value": "hold"},
            {"path": [2], "receiver": 3, "value": "hold"},  # every round it sends to 3 in
            {"round": 3, "path": [2], "receiver": 3, "silent": True},  # but round 3's own entry wins
        ]
    }
    scenario = Scenario(
        algorithm="gossip",
        generals=4,
        m=1,
        values=VALUES,
        order="attack",
        traitors={2: TraitorSpec("scripted", script)},
    )
    log = tmp_path / "gossip.jsonl"
    simulate_sync(scenario, log=log)
    assert _sent_by(log, 2) == {
        (2, 0): "attack",  # loyal where the script says nothing
        (2, 1): "retreat",
        (2, 3): "hold",
        (3, 0): "attack",
        (3, 1): "hold",
    }


@pytest.mark.parametrize("seed", [None, 11])
def test_random_draws_afresh_each_round_along_one_pseudo_path(
    gossip: Algorithm, tmp_path: Path, seed: int | None
) -> None:
    """Gossip sends along ``(sender,)`` in rounds 2 and 3: the rng of each message knows its round."""
    args = {} if seed is None else {"seed": seed}
    scenario = Scenario(
        algorithm="gossip", generals=7, m=1, traitors={3: TraitorSpec("random", args)}, seed=5
    )
    log = tmp_path / "gossip.jsonl"
    simulate_sync(scenario, log=log)
    sent = _sent_by(log, 3)
    receivers = [g for g in range(7) if g != 3]
    assert [sent[2, r] for r in receivers] != [sent[3, r] for r in receivers]
    again = tmp_path / "again.jsonl"
    simulate_sync(scenario, log=again)
    assert _sent_by(again, 3) == sent  # and still a function of the message alone


def test_a_messages_rng_is_seeded_by_its_round_too() -> None:
    draws = {strategies.message_rng(5, round, 3, (3,), 1).random() for round in (1, 2, 3)}
    assert len(draws) == 3
    assert (
        strategies.message_rng(5, 2, 3, (3,), 1).random() == strategies.message_rng(5, 2, 3, (3,), 1).random()
    )
    assert (
        strategies.message_rng(5, 2, 3, (3,), 1, 0).random()
        != strategies.message_rng(5, 2, 3, (3,), 1).random()
    )
    seeded = RandomChoice(VALUES, seed=7)
    by_round = [seeded.choose(r, (3,), 1, "attack", random.Random(0)) for r in range(1, 13)]
    assert len(set(by_round)) > 1


def test_a_messages_rng_draws_as_if_seeded_at_once_with_the_messages_identity() -> None:
    lazy = strategies.message_rng(5, 2, 3, (0, 3), 1, 0)
    assert [lazy.random(), lazy.randrange(100)] == [
        (eager := random.Random("5/0/2/3/(0, 3)/1")).random(),
        eager.randrange(100),
    ]


def test_a_strategy_that_seeds_its_rng_itself_gets_its_own_seed() -> None:
    seeded = strategies.message_rng(5, 2, 3, (3,), 1)
    seeded.seed(42)
    restored = strategies.message_rng(5, 2, 3, (3,), 1)
    restored.setstate(random.Random(42).getstate())
    assert seeded.random() == restored.random() == random.Random(42).random()


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, lambda rng: pickle.loads(pickle.dumps(rng))])
@pytest.mark.parametrize("drawn_first", [0, 3])
def test_a_messages_rng_copied_or_pickled_draws_what_it_would(
    duplicate: Callable[[random.Random], random.Random], drawn_first: int
) -> None:
    """A strategy may copy its rng to try a lie before telling it: the copy goes on as the original."""
    rng = strategies.message_rng(5, 2, 3, (0, 3), 1)
    for _ in range(drawn_first):
        rng.random()
    twin = duplicate(rng)
    assert [twin.random(), twin.randrange(100)] == [rng.random(), rng.randrange(100)]


def test_several_instances_refusing_for_different_reasons_say_each() -> None:
    setups = (Setup(4, 1, 0, VALUES, "retreat"), Setup(4, 1, 2, VALUES, "retreat", instance=1))
    context = ScriptContext(ORAL_MESSAGES, setups, traitor=1)
    assert script_problems([{"path": [1, 3], "receiver": 2, "value": "hold"}], context, VALUES) == [
        (
            ("messages", 0),
            "instance 0: path must start with the commander (0), not 1; "
            "instance 1: path must start with the commander (2), not 1",
        )
    ]
    assert script_problems([{"path": [2, 1], "receiver": 3, "value": "hold"}], context, VALUES) == []
    assert script_problems([{"path": [9, 1], "receiver": 3, "value": "hold"}], context, VALUES) == [
        (("messages", 0), "path names general 9, but ids run from 0 to 3")  # once, as both instances say it
    ]
