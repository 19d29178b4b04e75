"""The compact EIG store, and batched mode against per-message mode.

Rules for this file:
- batched runs are compared with per-message runs of the same scenario,
  decision by decision and count by count, never with stored numbers;
- paths are checked against the protocol core's own enumeration.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import Instance, Scenario, TraitorSpec, messages_received, messages_sent, simulate_sync
from om_actors.eig import EigLayout, EigStore, Values
from om_actors.protocol import General, Setup, paths_of_round

SETUP = Setup(7, 2, 0, ("attack", "retreat", "hold"), "retreat")


def test_ranks_are_lexicographic_and_invert() -> None:
    layout = EigLayout(SETUP)
    for level in (1, 2, 3):
        paths = sorted({p for me in SETUP.lieutenants for p in paths_of_round(SETUP, level, excluding=me)})
        assert len(paths) == layout.level_size(level)
        assert [layout.rank(p) for p in paths] == list(range(len(paths)))
        assert [layout.path(level, r) for r in range(len(paths))] == paths


def test_the_store_decides_what_the_protocol_decides() -> None:
    layout = EigLayout(SETUP)
    values = {p: SETUP.values[hash(p) % 3] for level in (1, 2, 3) for p in _paths(level)}
    for me in SETUP.lieutenants:
        general, store = General(SETUP, me), EigStore(layout, me)
        store.receive_first(SETUP.values.index(values[(0,)]))
        for level in (2, 3):
            store.receive_level(level, _stacked(layout, level))
            for path in paths_of_round(SETUP, level, excluding=me):
                store.overwrite(level, layout.rank(path), SETUP.values.index(values[path]))
        for path, value in values.items():
            if me not in path:
                general.receive(sender=path[-1], round=len(path), path=path, value=value)
        assert SETUP.values[store.decide()] == general.decide()


def _paths(level: int) -> set[tuple[int, ...]]:
    return {p for me in SETUP.lieutenants for p in paths_of_round(SETUP, level, excluding=me)}


def _stacked(layout: EigLayout, level: int) -> Values:
    return np.zeros((SETUP.generals, layout.level_size(level - 1)), dtype=np.uint8)


STRATEGIES: list[TraitorSpec | str] = [
    "loyal",
    "flip",
    "split",
    "silent",
    "random",
    TraitorSpec("constant", {"value": "hold"}),
    "adversaries:Garbage",
    "adversaries:Crash",
    TraitorSpec("adversaries:Forge", {"path": [0, 1]}),
]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    generals = draw(st.integers(3, 8))
    m = draw(st.integers(0, min(3, generals - 2)))
    traitors = draw(st.sets(st.integers(0, generals - 1), max_size=generals - 1))
    commanders = draw(st.lists(st.integers(0, generals - 1), min_size=1, max_size=2))
    values = ("attack", "retreat", "hold")
    return Scenario(
        generals=generals,
        m=m,
        values=values,
        instances=[Instance(c, draw(st.sampled_from(values))) for c in commanders]
        if len(commanders) > 1
        else (),
        commander=commanders[0],
        order=draw(st.sampled_from(values)),
        traitors={t: draw(st.sampled_from(STRATEGIES)) for t in traitors},
        seed=draw(st.integers(0, 1000)),
    )


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_batched_and_per_message_agree_on_everything(scenario: Scenario) -> None:
    one, many = io.BytesIO(), io.BytesIO()
    per_message = simulate_sync(scenario, mode="per-message", log=one)
    batched = simulate_sync(scenario, mode="batched", log=many, log_messages=True)
    assert batched.instances == per_message.instances
    assert batched.messages_per_round == per_message.messages_per_round
    assert batched.sent == per_message.sent
    assert batched.received == per_message.received
    assert batched.rejected == per_message.rejected
    assert many.getvalue().split(b"\n")[1:] == one.getvalue().split(b"\n")[1:]


@pytest.mark.parametrize(("generals", "m"), [(13, 4), (16, 5)])
def test_big_armies_batched_match_the_closed_form(generals: int, m: int) -> None:
    result = simulate_sync(Scenario(generals=generals, m=m, traitors={1: "flip", 2: "split"}), mode="batched")
    assert result.messages == messages_sent(generals, m)
    assert set(result.received.values()) - {0} == {messages_received(generals, m)}
    assert result.success
