"""Built-in traitor strategies and how scenario files name them.

Rules for this file:
- strategies are called directly, as the runtime would, with a seeded rng.
"""

from __future__ import annotations

import random

import pytest
from adversaries import Slow

from om_actors import Constant, Flip, Loyal, RandomChoice, Silent, Split, Strategy
from om_actors.strategies import StrategyError, build_strategy, following

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
