"""The lockstep driver: verify's fast path must give exactly what the actors give.

Rules for this file:
- compare against the trio runtime on the same scenarios, never against
  numbers taken from the driver itself;
- every registered algorithm goes through the same loop.
"""

from __future__ import annotations

import random

import pytest
from conftest import Echo
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import OmActorsError, Scenario, TraitorSpec, simulate_sync
from om_actors.algorithm import Setup
from om_actors.lockstep import LockstepRun, run_lockstep
from om_actors.oral import ORAL_MESSAGES

STRATEGIES = {
    "om": ["flip", "split", "silent", "loyal", "random"],
    "sm": ["split", "silent", "late", "random"],
}


@st.composite
def any_scenarios(draw: st.DrawFn) -> Scenario:
    algorithm = draw(st.sampled_from(sorted(STRATEGIES)))
    generals = draw(st.integers(3, 7))
    m = draw(st.integers(1 if algorithm == "sm" else 0, min(2, generals - 2)))
    traitors = draw(st.sets(st.integers(0, generals - 1), max_size=generals - 1))
    return Scenario(
        algorithm=algorithm,
        generals=generals,
        m=m,
        commander=draw(st.integers(0, generals - 1)),
        order=draw(st.sampled_from(["attack", "retreat"])),
        traitors={t: TraitorSpec(draw(st.sampled_from(STRATEGIES[algorithm]))) for t in traitors},
        seed=draw(st.integers(0, 100)),
    )


def lockstep(scenario: Scenario) -> tuple[dict[int, str], object]:
    run = run_lockstep(scenario.rules, scenario.setup, scenario.order, scenario.strategies())
    return run.decisions, run.verdict


@settings(max_examples=40, deadline=None)
@given(any_scenarios())
def test_lockstep_decides_what_the_actors_decide(scenario: Scenario) -> None:
    decisions, verdict = lockstep(scenario)
    actual = simulate_sync(scenario)
    assert {g: v for g, v in decisions.items() if g in actual.decisions} == dict(actual.decisions)
    assert verdict == actual.verdict
    run = run_lockstep(scenario.rules, scenario.setup, scenario.order, scenario.strategies())
    assert (run.messages, run.stats) == (actual.messages, dict(actual.stats))


@pytest.mark.parametrize(
    ("algorithm", "generals", "m", "traitors"),
    [
        ("om", 4, 1, {3: "flip"}),
        ("om", 7, 2, {0: "split", 5: "flip"}),
        ("om", 7, 2, {2: "random", 4: "silent"}),
        ("sm", 5, 3, {1: "split", 2: "split", 3: "split"}),
        ("sm", 6, 2, {0: "split", 4: "silent"}),
        ("phase-king", 9, 2, {1: "split", 2: "flip"}),
        ("phase-king", 9, 2, {0: "split", 8: "silent"}),
        ("phase-king-3t", 10, 3, {1: "split", 2: "split", 3: "flip"}),
        ("phase-king-3t", 7, 2, {0: "flip", 6: "split"}),
    ],
)
def test_lockstep_counts_the_messages_and_stats_the_actors_count(
    algorithm: str, generals: int, m: int, traitors: dict[int, str]
) -> None:
    scenario = Scenario(
        algorithm=algorithm,
        generals=generals,
        m=m,
        traitors={t: TraitorSpec(strategy) for t, strategy in traitors.items()},
        seed=7,
    )
    run = run_lockstep(scenario.rules, scenario.setup, scenario.order, scenario.strategies())
    actual = simulate_sync(scenario, mode="per-message")
    assert run.messages == actual.messages
    assert run.stats == dict(actual.stats)
    assert run.verdict == actual.verdict
    if algorithm == "sm":
        assert run.stats["signatures_verified"] > 0  # the count is compared, not two empty dicts


def test_an_algorithm_without_paths_runs_in_lockstep_too(echo: Echo) -> None:
    scenario = Scenario(algorithm="echo", generals=5, m=0, traitors={0: "split"})
    decisions, verdict = lockstep(scenario)
    actual = simulate_sync(scenario)
    assert {g: decisions[g] for g in actual.decisions} == dict(actual.decisions)
    assert verdict == actual.verdict
    assert set(actual.decisions.values()) == {"retreat"}  # every lieutenant hears two of each: the default


def test_every_general_decides_traitors_included() -> None:
    scenario = Scenario(generals=4, m=1, traitors={3: "flip"})
    decisions, _ = lockstep(scenario)
    assert sorted(decisions) == [0, 1, 2, 3]


def test_disagreement_counts_the_loyal_lieutenants_outside_the_largest_camp_and_the_disobedient() -> None:
    setup = Setup(5, 1, 0, ("attack", "retreat"), "retreat")
    run = run_lockstep(ORAL_MESSAGES, setup, "attack", {})
    assert run.disagreement(setup, frozenset(range(5)), "attack") == 0
    split = LockstepRun({0: "attack", 1: "attack", 2: "retreat", 3: "retreat", 4: "attack"}, run.verdict)
    assert split.disagreement(setup, frozenset(range(5)), "attack") == 2 + 2
    assert split.disagreement(setup, frozenset({1, 2, 3, 4}), "attack") == 2


class Awaits:
    async def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        return value


def test_an_async_strategy_is_refused_with_a_sentence() -> None:
    setup = Setup(4, 1, 0, ("attack", "retreat"), "retreat")
    with pytest.raises(
        OmActorsError, match="general 0's strategy is async, and this runtime cannot await it"
    ):
        run_lockstep(ORAL_MESSAGES, setup, "attack", {0: Awaits()})
