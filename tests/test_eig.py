"""The compact EIG store, the batched core, and batched mode against per-message mode.

Rules for this file:
- batched runs are compared with per-message runs of the same scenario,
  decision by decision and count by count, never with stored numbers;
- paths and batch sizes are checked against the OM(m) core's own rules
  (``oral.paths_of_round``, ``oral.owed``).
"""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import (
    Instance,
    ProtocolMisuse,
    Scenario,
    TraitorSpec,
    messages_received,
    messages_sent,
    simulate_sync,
)
from om_actors import eig as eig_module
from om_actors.algorithm import Setup
from om_actors.driver import Send
from om_actors.eig import (
    COLUMNWISE_FROM,
    INT32_ENTRIES,
    BatchedDriver,
    EigGeneral,
    EigLayout,
    EigStore,
    RoundBatch,
    Values,
    index_dtype,
)
from om_actors.oral import ORAL_MESSAGES, OralReason, Relay, owed, paths_of_round
from om_actors.strategies import Flip, Split

SETUP = Setup(7, 2, 0, ("attack", "retreat", "hold"), "retreat")
LAYOUT = EigLayout(SETUP, ORAL_MESSAGES.rounds(SETUP.generals, SETUP.m))


def test_ranks_are_lexicographic_and_invert() -> None:
    layout = LAYOUT
    for level in (1, 2, 3):
        paths = sorted({p for me in SETUP.lieutenants for p in paths_of_round(SETUP, level, excluding=me)})
        assert len(paths) == layout.level_size(level)
        assert [layout.rank(p) for p in paths] == list(range(len(paths)))
        assert [layout.path(level, r) for r in range(len(paths))] == paths


@pytest.mark.parametrize("columnwise_from", [COLUMNWISE_FROM, 1])
def test_the_store_decides_what_the_oral_core_decides(
    columnwise_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NumPy majority is the second form of OralGeneral.resolve: held to the same answers here.

    Both ways of counting votes are held to it: row by row, and (for big levels) a column at a time.
    """
    monkeypatch.setattr(eig_module, "COLUMNWISE_FROM", columnwise_from)
    layout = LAYOUT
    values = {p: SETUP.values[hash(p) % 3] for level in (1, 2, 3) for p in _paths(level)}
    for me in SETUP.lieutenants:
        general, store = ORAL_MESSAGES.general(SETUP, me), EigStore(layout, me)
        store.receive_first(SETUP.values.index(values[(0,)]))
        for level in (2, 3):
            store.receive_level(level, _stacked(layout, level))
            for path in paths_of_round(SETUP, level, excluding=me):
                store.overwrite(level, layout.rank(path), SETUP.values.index(values[path]))
        for round in (1, 2, 3):
            general.outbox(round)
            for path, value in values.items():
                if me not in path and len(path) == round:
                    general.receive(sender=path[-1], round=round, payload=Relay(path, value))
        assert SETUP.values[store.decide()] == general.decide()


@pytest.mark.parametrize("seed", range(2))
def test_a_level_of_thousands_of_paths_decides_what_the_oral_core_decides(seed: int) -> None:
    """Nineteen generals, m = 3: 4,896 paths in the last level, enough to be counted a column at a time."""
    setup = Setup(19, 3, 0, ("attack", "retreat", "hold"), "hold")
    layout = EigLayout(setup, 4)
    assert layout.level_size(3) < COLUMNWISE_FROM < layout.level_size(4)
    rng = random.Random(seed)
    paths = sorted({p for me in (1, 2, 18) for p in _all_paths(setup, 4, me)})
    values = {p: rng.choice(("attack", "attack", "retreat", "hold")) for p in paths}
    for me in (1, 2, 18):
        general, store = ORAL_MESSAGES.general(setup, me), EigStore(layout, me)
        store.receive_first(setup.values.index(values[(0,)]))
        for level in (2, 3, 4):
            store.receive_level(
                level, np.zeros((setup.generals, layout.level_size(level - 1)), dtype=np.uint8)
            )
            for path in paths_of_round(setup, level, excluding=me):
                store.overwrite(level, layout.rank(path), setup.values.index(values[path]))
        for round in (1, 2, 3, 4):
            general.outbox(round)
            for path in paths_of_round(setup, round, excluding=me):
                general.receive(sender=path[-1], round=round, payload=Relay(path, values[path]))
        assert setup.values[store.decide()] == general.decide()


def _all_paths(setup: Setup, rounds: int, me: int) -> set[tuple[int, ...]]:
    return {p for level in range(1, rounds + 1) for p in paths_of_round(setup, level, excluding=me)}


def test_folding_the_last_level_early_decides_the_same() -> None:
    """A closed last round is folded into its parents' majorities at once; the decision does not change."""
    layout = LAYOUT
    rng = np.random.default_rng(7)
    for me in SETUP.lieutenants:
        whole, folded = EigStore(layout, me), EigStore(layout, me)
        whole.receive_first(1)
        for level in (2, 3):
            whole.receive_level(level, rng.integers(0, 3, _stacked(layout, level).shape, dtype=np.uint8))
        folded.levels = [level.copy() for level in whole.levels]
        folded.fold()
        assert len(folded.levels) == 2
        assert folded.decide() == whole.decide()


def test_only_the_levels_that_are_relayed_stay_after_the_last_round() -> None:
    lieutenant = eig(1)
    for round in (1, 2, 3):
        lieutenant.batches(round)
        lieutenant.close(round)
    assert [len(level) for level in lieutenant.store.levels] == [1, 6]
    assert lieutenant.decide() == "retreat"


@pytest.mark.parametrize(("attack", "decision"), [(255, "attack"), (129, "attack"), (128, "hold")])
def test_the_widest_army_counts_its_votes_without_overflow(attack: int, decision: str) -> None:
    """255 generals: lieutenant 1 counts up to 254 votes for the order, in a byte, and needs 128 of them.

    Rows ``2 .. attack - 1`` say attack, and so does the order itself; row 1 is its own, which never votes.
    """
    setup = Setup(255, 1, 0, ("attack", "retreat", "hold"), "hold")
    store = EigStore(EigLayout(setup, 2), 1)
    store.receive_first(0)
    stacked = np.ones((255, 1), dtype=np.uint8)
    stacked[:attack] = 0
    store.receive_level(2, stacked)
    assert setup.values[store.decide()] == decision


@pytest.mark.parametrize("entries", [INT32_ENTRIES, INT32_ENTRIES + 1])
def test_gather_indices_are_int32_up_to_the_limit(entries: int) -> None:
    assert index_dtype(entries) is (np.int32 if entries <= INT32_ENTRIES else np.int64)


@pytest.mark.parametrize("limit", [41, 42])
def test_int64_and_int32_gather_indices_decide_the_same(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven generals' last level gathers from 7 x 6 = 42 entries: int32 at the limit, int64 one below it."""
    monkeypatch.setattr(eig_module, "INT32_ENTRIES", limit)
    layout = EigLayout(SETUP, 3)
    assert layout.source[2].dtype == (np.int32 if limit >= 42 else np.int64)
    assert [layout.source[level - 1].tolist() for level in (1, 2, 3)] == [
        LAYOUT.source[level - 1].tolist() for level in (1, 2, 3)
    ]
    scenario = Scenario(generals=7, m=2, traitors={1: "flip", 4: "split"})
    one, many = io.BytesIO(), io.BytesIO()
    batched = simulate_sync(scenario, mode="batched", log=many, log_messages=True)
    assert batched.instances == simulate_sync(scenario, mode="per-message", log=one).instances
    assert many.getvalue().split(b"\n")[1:] == one.getvalue().split(b"\n")[1:]


def test_a_traitor_telling_several_receivers_the_same_lie_sends_one_row() -> None:
    """Each receiver's row waits until the round closes: equal lies share one array instead of one each."""
    for strategy, liars in ((Flip(SETUP.values), {2, 3, 4, 5, 6}), (Split(SETUP.values), {3, 5})):
        driver = BatchedDriver([eig(1)], strategy=strategy, seed=0, tagged=False)
        list(driver.round(1))
        driver.close(1)
        sends = [s for s in driver.round(2) if isinstance(s, Send)]
        held = driver.generals[0].store.held(1)
        rows = {s.receiver: s.payload.row for s in sends if isinstance(s.payload, RoundBatch)}
        assert {r for r, row in rows.items() if row is not held} == liars
        assert len({id(rows[r]) for r in liars}) == 1
        assert SETUP.values[int(rows[min(liars)][0])] == "hold"


def test_batch_sizes_are_what_the_oral_rule_owes() -> None:
    """A batch is as big as OM's most_messages says: held here to owed, the rule itself."""
    for round in (1, 2, 3):
        for sender in range(SETUP.generals):
            sent = [out.receiver for out in owed(SETUP, sender, round, lambda _: "attack")]
            for receiver in range(SETUP.generals):
                assert ORAL_MESSAGES.most_messages(SETUP, sender, receiver, round) == sent.count(receiver)


def eig(me: int, order: str = "attack") -> EigGeneral:
    return EigGeneral(ORAL_MESSAGES, SETUP, me, order, LAYOUT)


def test_a_batch_stands_for_the_messages_a_loyal_general_owes_one_by_one() -> None:
    commander, lieutenant = eig(0), eig(2)
    oral = ORAL_MESSAGES.general(SETUP, 2)
    batches = commander.batches(1)
    assert [(receiver, batch.count) for receiver, batch in batches] == [(g, 1) for g in range(1, 7)]
    lieutenant.batches(1)
    oral.outbox(1)
    lieutenant.take(0, 1, batches[1][1])
    oral.receive(sender=0, round=1, payload=Relay((0,), "attack"))
    lieutenant.close(1)
    relays = oral.outbox(2)
    for receiver, batch in lieutenant.batches(2):
        expected = [Relay(out.path, out.value) for out in relays if out.receiver == receiver]
        assert list(lieutenant.itemized(2, receiver, batch)) == expected
        assert batch.count == len(expected)


def test_the_batched_core_keeps_the_schedule() -> None:
    lieutenant = eig(1)
    with pytest.raises(
        ProtocolMisuse, match=r"^general 1 was asked for round 2's messages after round 0 of 3$"
    ):
        lieutenant.batches(2)
    lieutenant.batches(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a batch of round 2 while in round 1$"):
        lieutenant.take(0, 2, RoundBatch(np.zeros(1, dtype=np.uint8), 1))
    lieutenant.close(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was asked to close round 1 twice$"):
        lieutenant.close(1)
    lieutenant.batches(2)
    unclosed = r"^general 1 was asked for round 3's messages before closing round 2$"
    with pytest.raises(ProtocolMisuse, match=unclosed):
        lieutenant.batches(3)
    lieutenant.close(2)
    lieutenant.batches(3)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was asked to decide before closing round 3$"):
        lieutenant.decide()


def test_single_messages_are_judged_by_the_oral_rules_when_they_arrive() -> None:
    lieutenant = eig(1)
    lieutenant.batches(1)
    lieutenant.close(1)
    lieutenant.batches(2)
    assert lieutenant.receive(sender=2, round=2, payload=Relay((0, 2), "hold")) is None
    assert lieutenant.receive(sender=2, round=2, payload=Relay((0, 2), "attack")) is OralReason.DUPLICATE
    assert (
        lieutenant.receive(sender=3, round=2, payload=Relay((0, 2), "attack")) is OralReason.NOT_FROM_SENDER
    )
    assert lieutenant.receive(sender=3, round=2, payload="attack") is OralReason.MALFORMED_MESSAGE
    lieutenant.close(2)
    assert SETUP.values[int(lieutenant.store.held(2)[LAYOUT.rank((0, 2))])] == "hold"
    assert SETUP.values[int(lieutenant.store.held(2)[LAYOUT.rank((0, 3))])] == "retreat"  # nothing came


def test_a_batched_traitor_with_a_batch_form_lies_a_batch_at_a_time() -> None:
    driver = BatchedDriver([eig(0)], strategy=Flip(SETUP.values), seed=0, tagged=False)
    sends = list(driver.round(1))
    assert [s.receiver for s in sends if isinstance(s, Send)] == list(range(1, 7))
    first = sends[0]
    assert isinstance(first, Send)
    assert isinstance(first.payload, RoundBatch)
    assert SETUP.values[int(first.payload.row[0])] == "retreat"


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


def test_batched_mode_takes_the_algorithm_from_the_scenario_not_its_own_copy() -> None:
    scenario = Scenario(generals=7, m=2, traitors={3: "flip"})
    batched = simulate_sync(scenario, mode="batched")
    assert batched.rounds == scenario.rounds == 3
    assert batched.instances == simulate_sync(scenario, mode="per-message").instances


@pytest.mark.parametrize(("generals", "m"), [(13, 4), (16, 5)])
def test_big_armies_batched_match_the_closed_form(generals: int, m: int) -> None:
    result = simulate_sync(Scenario(generals=generals, m=m, traitors={1: "flip", 2: "split"}), mode="batched")
    assert result.messages == messages_sent(generals, m)
    assert set(result.received.values()) - {0} == {messages_received(generals, m)}
    assert result.success
