"""The lockstep driver: verify's fast path must give exactly what the actors give.

Rules for this file:
- compare against the trio runtime on the same scenarios, never against
  numbers taken from the driver itself.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import Scenario, TraitorSpec, simulate_sync
from om_actors.lockstep import run_lockstep, traitor_messages
from om_actors.protocol import Setup
from om_actors.strategies import build_strategy
from om_actors.verify import strategy_choice

DETERMINISTIC = ["flip", "split", "silent", "loyal"]


@st.composite
def any_scenarios(draw: st.DrawFn) -> Scenario:
    generals = draw(st.integers(3, 8))
    m = draw(st.integers(0, min(2, generals - 2)))
    traitors = draw(st.sets(st.integers(0, generals - 1), max_size=generals - 1))
    return Scenario(
        generals=generals,
        m=m,
        order=draw(st.sampled_from(["attack", "retreat"])),
        traitors={t: TraitorSpec(draw(st.sampled_from(DETERMINISTIC))) for t in traitors},
    )


@settings(max_examples=40, deadline=None)
@given(any_scenarios())
def test_lockstep_decides_what_the_actors_decide(scenario: Scenario) -> None:
    choices = {
        g: strategy_choice(build_strategy(spec.strategy, spec.args, values=scenario.values))
        for g, spec in scenario.traitors.items()
    }
    run = run_lockstep(scenario.setup, scenario.order, choices)
    actual = simulate_sync(scenario)
    assert {g: v for g, v in run.decisions.items() if g in actual.decisions} == dict(actual.decisions)
    assert run.verdict == actual.verdict


def test_traitor_messages_are_what_a_general_owes() -> None:
    setup = Setup(7, 2, 0, ("attack", "retreat"), "retreat")
    assert len(traitor_messages(setup, 0)) == 6
    assert len(traitor_messages(setup, 3)) == 5 + 5 * 4
    assert {r for r, _, _ in traitor_messages(setup, 3)} == {2, 3}
    assert sum(len(traitor_messages(setup, g)) for g in range(7)) == sum(math.perm(6, k) for k in (1, 2, 3))


def test_deviations_record_what_the_traitor_changed() -> None:
    setup = Setup(4, 1, 0, ("attack", "retreat"), "retreat")
    run = run_lockstep(setup, "attack", {3: lambda r, p, recv, v: None if recv == 1 else v})
    assert [(d.path, d.receiver, d.loyal, d.sent) for d in run.deviations] == [((0, 3), 1, "attack", None)]
    assert run.verdict.success
