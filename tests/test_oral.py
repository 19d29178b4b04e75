"""The OM(m) core, message by message, with no trio and no I/O.

Rules for this file:
- drive ``om_actors.oral`` directly, through the core's own schedule;
  nothing here may import trio;
- expected values are worked out by hand from the paper, not read back from
  the code under test.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors.algorithm import Outgoing, Setup, judge
from om_actors.oral import (
    ORAL_MESSAGES,
    OralGeneral,
    OralReason,
    Relay,
    majority,
    messages_received,
    messages_sent,
    owed,
    paths_of_round,
    refusal,
    rejection_reason,
)

FOUR = Setup(generals=4, m=1, commander=0, values=("attack", "retreat"), default="retreat")
SEVEN = Setup(generals=7, m=2, commander=0, values=("attack", "retreat"), default="retreat")


def general(setup: Setup, me: int, order: str | None = None) -> OralGeneral:
    return ORAL_MESSAGES.general(setup, me, order)


def run_through(state: OralGeneral, received: Mapping[tuple[int, ...], str]) -> None:
    """Open every round in turn and deliver each round's messages in it; every one must be accepted."""
    for round in range(1, state.rounds + 1):
        state.outbox(round)
        for path, value in received.items():
            if len(path) == round:
                assert state.receive(sender=path[-1], round=round, payload=Relay(path, value)) is None


@pytest.mark.parametrize(
    ("generals", "m", "sent", "received"),
    [(4, 1, 9, 3), (7, 2, 156, 26), (13, 4, 108_384, 9_032), (16, 5, 3_999_675, 266_645)],
)
def test_message_counts_match_the_closed_form(generals: int, m: int, sent: int, received: int) -> None:
    assert messages_sent(generals, m) == sent
    assert ORAL_MESSAGES.messages_sent(generals, m) == sent
    assert messages_received(generals, m) == received


def test_a_limited_count_stops_past_the_limit_and_answers_at_once_for_any_size() -> None:
    assert messages_sent(16, 5, limit=10**9) == 3_999_675
    assert 100 < messages_sent(16, 5, limit=100) < 3_999_675
    assert messages_sent(10**35, 10**30, limit=10**6) > 10**6


@pytest.mark.parametrize(("generals", "m"), [(4, 1), (5, 2), (7, 2), (6, 3)])
def test_outboxes_add_up_to_the_closed_form(generals: int, m: int) -> None:
    setup = Setup(generals, m, 0, ("attack", "retreat"), "retreat")
    states = [general(setup, g, "attack") for g in range(generals)]
    sent = sum(len(s.outbox(r)) for r in range(1, m + 2) for s in states)
    assert sent == messages_sent(generals, m)


def test_majority_is_strict() -> None:
    assert majority(["attack", "attack", "retreat"], "retreat") == "attack"
    assert majority(["attack", "hold"], "retreat") == "retreat"
    assert majority(["attack", "attack", "hold", "hold", "retreat"], "retreat") == "retreat"
    assert majority(["hold", "hold", "hold", "attack", "retreat"], "retreat") == "hold"
    assert majority([], "retreat") == "retreat"


def test_paths_of_round_skip_the_receiver_and_come_in_order() -> None:
    assert list(paths_of_round(FOUR, 1, excluding=2)) == [(0,)]
    assert list(paths_of_round(FOUR, 2, excluding=2)) == [(0, 1), (0, 3)]
    assert len(list(paths_of_round(SEVEN, 3, excluding=1))) == math.perm(5, 2)


def test_commander_sends_its_order_in_round_one_only() -> None:
    commander = general(FOUR, 0, "attack")
    assert commander.outbox(1) == [Outgoing((0,), r, "attack") for r in (1, 2, 3)]
    assert commander.outbox(2) == []
    assert general(FOUR, 1).outbox(1) == []


def test_owed_relays_each_path_held_to_every_general_not_on_it() -> None:
    five = Setup(5, 2, 0, ("attack", "retreat"), "retreat")
    held: dict[tuple[int, ...], str] = {(0, 2): "retreat", (0, 3): "attack", (0, 4): "attack"}
    assert list(owed(five, 1, 3, held.__getitem__)) == [
        Outgoing((0, 2, 1), 3, "retreat"),
        Outgoing((0, 2, 1), 4, "retreat"),
        Outgoing((0, 3, 1), 2, "attack"),
        Outgoing((0, 3, 1), 4, "attack"),
        Outgoing((0, 4, 1), 2, "attack"),
        Outgoing((0, 4, 1), 3, "attack"),
    ]
    assert list(owed(five, 0, 2, held.__getitem__)) == []
    assert list(owed(five, 1, 1, held.__getitem__)) == []


def test_lieutenant_relays_what_it_holds_and_default_for_what_is_missing() -> None:
    lieutenant = general(SEVEN, 1)
    lieutenant.outbox(1)
    assert lieutenant.receive(sender=0, round=1, payload=Relay((0,), "attack")) is None
    assert lieutenant.outbox(2) == [Outgoing((0, 1), r, "attack") for r in (2, 3, 4, 5, 6)]
    assert lieutenant.receive(sender=2, round=2, payload=Relay((0, 2), "attack")) is None
    round_three = {(o.path, o.receiver): o.value for o in lieutenant.outbox(3)}
    assert round_three[((0, 2, 1), 3)] == "attack"
    assert round_three[((0, 3, 1), 2)] == "retreat"  # (0, 3) never arrived
    assert ((0, 2, 1), 2) not in round_three


def test_paper_figure_one_loyal_lieutenants_obey_a_loyal_commander() -> None:
    # Commander 0 orders attack, lieutenant 3 is a traitor that relays retreat.
    lieutenant = general(FOUR, 1)
    run_through(lieutenant, {(0,): "attack", (0, 2): "attack", (0, 3): "retreat"})
    assert lieutenant.decide() == "attack"


def test_paper_figure_two_lieutenants_agree_on_a_traitor_commanders_mixed_orders() -> None:
    values = ("attack", "retreat", "hold")
    setup = Setup(4, 1, 0, values, "retreat")
    told = {1: "attack", 2: "hold", 3: "retreat"}
    decisions = set()
    for me in (1, 2, 3):
        state = general(setup, me)
        run_through(state, {(0,): told[me], **{(0, j): told[j] for j in told if j != me}})
        decisions.add(state.decide())
    assert decisions == {"retreat"}


def test_three_generals_a_lying_lieutenant_leaves_a_tie_and_the_default_wins() -> None:
    setup = Setup(3, 1, 0, ("attack", "retreat"), "retreat")
    lieutenant = general(setup, 1)
    run_through(lieutenant, {(0,): "attack", (0, 2): "retreat"})
    assert lieutenant.decide() == "retreat"


def test_om2_recursion_outvotes_a_liar_at_every_level() -> None:
    # Seven generals, loyal commander; traitor 6 says "retreat" in every relay.
    lieutenant = general(SEVEN, 1)
    paths = [(0,), *paths_of_round(SEVEN, 2, excluding=1), *paths_of_round(SEVEN, 3, excluding=1)]
    run_through(lieutenant, {path: "retreat" if 6 in path else "attack" for path in paths})
    assert lieutenant.resolve((0, 2)) == "attack"  # 6's lie about 2 is outvoted 4 to 1
    assert lieutenant.resolve((0, 6)) == "retreat"  # 6 lied consistently about itself
    assert lieutenant.decide() == "attack"  # 5 votes to 1


def textbook_om(state: OralGeneral, path: tuple[int, ...]) -> str:
    """OM(path) as the paper defines it, by recursion over the generals not yet on the path."""
    held = state.received.get(path, state.setup.default)
    if len(path) == state.rounds:
        return held
    free = [g for g in range(state.setup.generals) if g not in path and g != state.me]
    votes = [held, *(textbook_om(state, (*path, g)) for g in free)]
    best = max(set(votes), key=votes.count)
    return best if 2 * votes.count(best) > len(votes) else state.setup.default


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([(4, 1), (5, 1), (7, 2), (8, 2), (9, 3)]),
    st.integers(1, 8),
    st.randoms(use_true_random=False),
)
def test_the_level_by_level_fold_is_the_papers_recursion(
    size: tuple[int, int], me_hint: int, rng: random.Random
) -> None:
    generals, m = size
    setup = Setup(generals, m, 0, ("attack", "retreat", "wait"), "retreat")
    me = 1 + me_hint % (generals - 1)
    state = general(setup, me)
    paths = [p for r in range(1, m + 2) for p in paths_of_round(setup, r, excluding=me)]
    arrived = {p: rng.choice(setup.values) for p in paths if rng.random() < 0.9}
    run_through(state, arrived)
    for path in [(0,), *paths[1 : 1 + generals]]:
        assert state.resolve(path) == textbook_om(state, path)
    assert state.decide() == textbook_om(state, (0,))


@given(st.lists(st.sampled_from("abcdefghijkl"), max_size=30))
def test_majority_counts_few_or_many_values_alike(votes: list[str]) -> None:
    best = max(set(votes), key=votes.count, default="z")
    expected = best if 2 * votes.count(best) > len(votes) else "z"
    assert majority(votes, "z") == majority(iter(votes), "z") == expected


def test_commander_decides_its_own_order() -> None:
    commander = general(FOUR, 0, "attack")
    run_through(commander, {})
    assert commander.decide() == "attack"


@pytest.mark.parametrize(
    ("sender", "round", "path", "value", "reason"),
    [
        (1, 2, (0, 1), "attack", None),
        (1, 2, [0, 1], "attack", "malformed path"),
        (1, 2, (), "attack", "malformed path"),
        (1, 2, (0, "1"), "attack", "malformed path"),
        (1, 2, (0, True), "attack", "malformed path"),
        (1, 2, (0, 9), "attack", "path names a general out of range"),
        (1, 2, (3, 1), "attack", "path does not start with the commander"),
        (1, 2, (0, 3), "attack", "path does not end with the sender"),
        (1, 3, (0, 1, 1), "attack", "path repeats a general"),
        (1, 2, (0, 2, 1), "attack", "path contains the receiver"),
        (1, 3, (0, 1), "attack", "path has the wrong length for the round"),
        (1, 2, (0, 1), "charge", "value outside the domain"),
        (1, 2, (0, 1), ["attack"], "value outside the domain"),
        (1, 2, (0, 1), None, "value outside the domain"),
    ],
)
def test_rejection_reasons(sender: int, round: int, path: object, value: object, reason: str | None) -> None:
    setup = Setup(5, 2, 0, ("attack", "retreat"), "retreat")
    found = rejection_reason(setup, receiver=2, sender=sender, round=round, path=path, value=value)
    assert (None if found is None else str(found)) == reason


_ELEMENTS = st.one_of(st.integers(-1, 5), st.sampled_from([True, False, "1", 1.0]))
_PATHS = st.one_of(st.lists(_ELEMENTS, max_size=4).map(tuple), st.lists(st.integers(0, 4), max_size=3))
_VALUES = st.sampled_from(["attack", "retreat", "charge", None, 1])


@settings(max_examples=300)
@given(
    round=st.integers(1, 3),
    messages=st.lists(st.tuples(_PATHS, _VALUES, st.integers(0, 4)), max_size=12),
)
def test_a_relay_is_judged_alike_at_every_receiver_however_often_it_was_judged_before(
    round: int, messages: list[tuple[object, object, int]]
) -> None:
    """One relay object goes to many receivers, and only the first applies every path rule to it.

    Each receiver's answer must still be the rule's own (:func:`refusal`,
    against what that receiver held before), including for an equal but
    different relay -- ``(0, True)`` equals ``(0, 1)`` -- that comes after
    an accepted one.
    """
    setup = Setup(5, 2, 0, ("attack", "retreat"), "retreat")
    receivers = [general(setup, me) for me in range(1, 5)]
    for receiver in receivers:
        for opened in range(1, round + 1):
            receiver.outbox(opened)
    for path, value, sender in messages:
        relay = Relay(path, value)
        for twin in (relay, relay, Relay(path, value)):
            for receiver in receivers:
                held = dict(receiver.received)
                expected = refusal(
                    setup, receiver=receiver.me, sender=sender, round=round, payload=twin, seen=held
                )
                assert receiver.receive(sender=sender, round=round, payload=twin) == expected


@settings(max_examples=300)
@given(data=st.data(), round=st.integers(1, 3), sender=st.integers(0, 4))
def test_a_batch_is_judged_as_the_rules_judge_its_messages_in_turn(
    data: st.DataObject, round: int, sender: int
) -> None:
    """``receive_all`` against :func:`refusal` message by message, duplicates within the batch included.

    Every relay comes twice as the same object and once as an equal one;
    half the paths are ones some receiver must take from this sender in
    this round, the rest anything.
    """
    relayers = st.lists(st.sampled_from([g for g in range(1, 5) if g != sender]), unique=True)
    well_formed = relayers.filter(lambda mid: len(mid) == round - 2).map(lambda mid: (0, *mid, sender))
    paths = st.one_of(_PATHS, well_formed if round > 1 else st.just((0,)))
    messages = data.draw(st.lists(st.tuples(paths, _VALUES), max_size=8), label="messages")
    setup = Setup(5, 2, 0, ("attack", "retreat"), "retreat")
    relays = [Relay(path, value) for path, value in messages]
    batch = relays + relays + [Relay(path, value) for path, value in messages]
    receivers = [general(setup, me) for me in range(1, 5)]
    for receiver in receivers:
        for opened in range(1, round + 1):
            receiver.outbox(opened)
        held: dict[object, object] = {}
        expected = []
        for index, relay in enumerate(batch):
            reason = refusal(
                setup, receiver=receiver.me, sender=sender, round=round, payload=relay, seen=held
            )
            if reason is None:
                held[relay.path] = relay.value
            else:
                expected.append((index, reason))
        assert receiver.receive_all(sender=sender, round=round, payloads=batch) == expected
        assert receiver.received == held


def test_a_relay_equal_to_an_accepted_one_but_with_a_bool_in_its_path_is_still_malformed() -> None:
    setup = Setup(5, 2, 0, ("attack", "retreat"), "retreat")
    first, second = general(setup, 2), general(setup, 3)
    for receiver in (first, second):
        receiver.outbox(1)
        receiver.outbox(2)
    assert first.receive(sender=1, round=2, payload=Relay((0, 1), "attack")) is None
    assert second.receive(sender=1, round=2, payload=Relay((0, True), "attack")) is OralReason.MALFORMED_PATH


def test_a_rejected_message_leaves_no_trace_and_a_duplicate_is_refused() -> None:
    lieutenant = general(FOUR, 1)
    lieutenant.outbox(1)
    lieutenant.outbox(2)
    assert (
        lieutenant.receive(sender=3, round=2, payload=Relay((0, 2), "attack")) is OralReason.NOT_FROM_SENDER
    )
    assert lieutenant.received == {}
    assert lieutenant.receive(sender=2, round=2, payload=Relay((0, 2), "attack")) is None
    assert lieutenant.receive(sender=2, round=2, payload=Relay((0, 2), "retreat")) is OralReason.DUPLICATE
    assert lieutenant.received == {(0, 2): "attack"}


def test_a_payload_that_is_no_relay_is_refused_as_malformed() -> None:
    lieutenant = general(FOUR, 1)
    lieutenant.outbox(1)
    assert lieutenant.receive(sender=0, round=1, payload=("attack",)) is OralReason.MALFORMED_MESSAGE
    assert lieutenant.received == {}


def test_judge_checks_agreement_and_validity() -> None:
    everyone = range(4)
    assert judge(FOUR, {0: "attack", 1: "attack", 2: "attack"}, loyal=[0, 1, 2], order="attack").success
    split = judge(FOUR, {1: "attack", 2: "retreat", 3: "attack"}, loyal=[1, 2, 3], order="attack")
    assert (split.agreement, split.validity, split.success) == (False, None, False)
    disobeyed = judge(FOUR, dict.fromkeys(everyone, "retreat"), loyal=everyone, order="attack")
    assert (disobeyed.agreement, disobeyed.validity, disobeyed.success) == (True, False, False)


def test_a_relay_to_several_receivers_shares_one_payload() -> None:
    """A big run holds a round's messages until it ends: one payload per path and value, not per receiver."""
    lieutenant = ORAL_MESSAGES.general(SEVEN, 1)
    lieutenant.outbox(1)
    assert lieutenant.receive(sender=0, round=1, payload=Relay((0,), "attack")) is None
    owed = lieutenant.outbox(2)
    payloads = {id(lieutenant.compose(out, out.path, out.value)) for out in owed}
    assert len(owed) == 5
    assert len(payloads) == 1


def test_decision_points_come_one_at_a_time() -> None:
    """Nineteen generals with m = 6 have millions: a reader counting to its budget must not list them all."""
    big = Setup(generals=19, m=6, commander=0, values=("attack", "retreat"), default="retreat")
    points = ORAL_MESSAGES.decision_points(big, 1)
    assert not isinstance(points, (list, tuple))
    first = next(iter(points))
    assert (first.round, first.path) == (2, (0, 1))
