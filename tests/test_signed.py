"""The SM(m) core, message by message, with no trio and no I/O.

Rules for this file:
- drive ``om_actors.signed`` through ``om_actors.driver`` (the pipeline every
  runtime shares) or directly; nothing here may import trio;
- expected values are worked out by hand from the paper (section 4 of
  Lamport, Shostak and Pease 1982), not read back from the code under test.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors.algorithm import DecisionPoint, Outgoing, Setup, Step, judge
from om_actors.driver import Ask, GeneralDriver, Send, answer_now
from om_actors.errors import ProtocolMisuse
from om_actors.events import MessageRejected
from om_actors.signed import (
    SIGNED_MESSAGES,
    Late,
    Signed,
    SignedGeneral,
    SignedRandom,
    SignedReason,
    SignedScripted,
    SignedSplit,
    keyring,
    signed_bytes,
)
from om_actors.strategies import Forgery, Strategy, build_strategy

VALUES = ("attack", "retreat")
THREE = Setup(generals=3, m=1, commander=0, values=VALUES, default="retreat")
FOUR = Setup(generals=4, m=2, commander=0, values=VALUES, default="retreat")


def setup(generals: int, m: int, *, seed: int = 0, instance: int = 0) -> Setup:
    return Setup(generals, m, 0, VALUES, "retreat", seed=seed, instance=instance)


@attrs.frozen
class Run:
    decisions: dict[int, str]
    sent: Counter[int]
    """Messages posted, by sender."""
    rejected: list[MessageRejected]
    cores: list[SignedGeneral]
    posts: list[tuple[int, int, int, str]]
    """Every message: round, sender, receiver and the payload's repr, in delivery order."""

    @property
    def messages(self) -> int:
        return sum(self.sent.values())


def run(
    setup: Setup,
    order: str = "attack",
    traitors: Mapping[int, Strategy] | None = None,
    *,
    shuffle: random.Random | None = None,
) -> Run:
    """One SM(m) instance in lockstep, every general through its own :class:`GeneralDriver`.

    Messages are delivered in sender order, or, with ``shuffle``, in an
    order it draws -- as the trio runtime's scheduling may deliver them.
    """
    traitors = traitors or {}
    cores = [SIGNED_MESSAGES.general(setup, g, order) for g in range(setup.generals)]
    drivers = [
        GeneralDriver([core], strategy=traitors.get(g), seed=setup.seed, tagged=False)
        for g, core in enumerate(cores)
    ]
    sent: Counter[int] = Counter()
    rejected: list[MessageRejected] = []
    delivered: list[tuple[int, int, int, str]] = []
    for round in range(1, SIGNED_MESSAGES.rounds(setup.generals, setup.m) + 1):
        posts: list[tuple[int, Send]] = []
        for general, driver in enumerate(drivers):
            for item in driver.round(round):
                answer = answer_now(driver, item) if isinstance(item, Ask) else item
                assert answer is None or isinstance(answer, Send), answer
                if answer is not None:
                    posts.append((general, answer))
        if shuffle is not None:
            shuffle.shuffle(posts)
        for sender, send in posts:
            sent[sender] += 1
            delivered.append((round, sender, send.receiver, repr(send.payload)))
            event = drivers[send.receiver].deliver(0, sender, round, send.payload)
            if event is not None:
                rejected.append(event)
    decisions = {g: driver.decide()[0] for g, driver in enumerate(drivers)}
    return Run(decisions, sent, rejected, cores, delivered)


def strategy(name: str, setup: Setup, **args: object) -> Strategy:
    built = SIGNED_MESSAGES.strategies()[name](**_filled(name, setup), **args)
    assert isinstance(built, Strategy)
    return built


def _filled(name: str, setup: Setup) -> dict[str, object]:
    fields = {f.name for f in attrs.fields(SIGNED_MESSAGES.strategies()[name])}
    return {key: value for key, value in (("values", setup.values), ("m", setup.m)) if key in fields}


def opened(setup: Setup, me: int, round: int, order: str = "attack") -> SignedGeneral:
    """A core with rounds 1..``round`` opened and nothing received."""
    core = SIGNED_MESSAGES.general(setup, me, order)
    for r in range(1, round + 1):
        core.outbox(r)
    return core


def from_commander(setup: Setup, value: str = "attack", receiver: int = 1) -> Signed:
    commander = opened(setup, 0, 1)
    payload = commander.compose(Outgoing((0,), receiver, "attack"), (0,), value)
    assert isinstance(payload, Signed)
    return payload


def forwarded(setup: Setup, via: int, value: str = "attack") -> Signed:
    """What loyal lieutenant ``via`` forwards in round 2, having got ``value`` from the commander."""
    relay = opened(setup, via, 1)
    assert relay.receive(sender=0, round=1, payload=from_commander(setup, value, via)) is None
    outgoing = relay.outbox(2)[0]
    payload = relay.compose(outgoing, outgoing.path, outgoing.value)
    assert isinstance(payload, Signed)
    return payload


# --- the paper's examples --------------------------------------------------------


def test_figure_5_a_two_faced_commander_cannot_split_the_lieutenants() -> None:
    """Commander 0 signs "attack" for lieutenant 2 and "retreat" for lieutenant 1 (odd)."""
    result = run(THREE, "attack", {0: strategy("split", THREE)})
    for lieutenant in (1, 2):
        assert set(result.cores[lieutenant].held) == {"attack", "retreat"}
        assert result.decisions[lieutenant] == "retreat"
    assert result.rejected == []
    assert judge(THREE, result.decisions, loyal={1, 2}, order="attack").success


def test_figure_5_holds_where_oral_messages_fail_it() -> None:
    """With three generals OM(1) lets a traitor lieutenant mislead the loyal one; SM(1) does not."""
    for name in ("loyal", "silent", "split", "late", "random"):
        result = run(THREE, "attack", {2: strategy(name, THREE)})
        assert result.decisions[1] == "attack", name
        assert set(result.cores[1].held) == {"attack"}, name


def test_a_traitor_that_changes_what_it_forwards_is_caught_by_the_signatures() -> None:
    @attrs.frozen
    class Liar:
        def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
        ) -> object:
            return "retreat"

    result = run(THREE, "attack", {2: Liar()})
    assert result.decisions[1] == "attack"
    assert [(e.sender, e.receiver, e.reason) for e in result.rejected] == [(2, 1, SignedReason.BAD_SIGNATURE)]


def test_a_traitor_that_forges_a_chain_is_caught() -> None:
    """Lieutenant 4 holds "attack" via [0, 1] and claims it came via [0, 2]: it cannot make 2's signature.

    A traitor commander signs for 1 alone, so [0, 1] is the only chain 4 holds:
    2 first signs "attack" in round 3, after [0, 1, 2].
    """

    @attrs.frozen
    class OnlyToOne:
        def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
        ) -> object:
            return value if round == 1 and receiver == 1 else None

    @attrs.frozen
    class Forger:
        def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
        ) -> object:
            return Forgery((0, 2, 4), value) if receiver == 3 else None

    result = run(setup(5, 2), "attack", {0: OnlyToOne(), 4: Forger()})
    assert [a.chain for a in result.cores[4].accepted(2)] == [(0, 1)]
    assert [(e.round, e.sender, e.receiver, e.reason) for e in result.rejected] == [
        (3, 4, 3, SignedReason.BAD_SIGNATURE)
    ]
    assert {result.decisions[g] for g in (1, 2, 3)} == {"attack"}


# --- message counts ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("generals", "m", "expected"),
    [(3, 1, 4), (4, 1, 9), (4, 2, 9), (5, 3, 16), (7, 2, 36), (10, 5, 81), (4, 0, 3)],
)
def test_a_loyal_army_sends_n_minus_1_plus_n_minus_1_times_n_minus_2(
    generals: int, m: int, expected: int
) -> None:
    assert SIGNED_MESSAGES.messages_sent(generals, m) == expected
    assert run(setup(generals, m)).messages == expected


@pytest.mark.parametrize(("generals", "m"), [(4, 1), (4, 2), (5, 2), (6, 3), (7, 4)])
def test_two_values_in_play_cost_the_loyal_at_most_twice_the_relaying(generals: int, m: int) -> None:
    """A split commander puts two values in play; every loyal lieutenant forwards each at most once."""
    result = run(setup(generals, m), "attack", {0: strategy("split", setup(generals, m))})
    loyal = sum(count for general, count in result.sent.items() if general != 0)
    assert (generals - 1) + loyal <= (generals - 1) + 2 * (generals - 1) * (generals - 2)
    assert len({result.decisions[g] for g in range(1, generals)}) == 1


def test_two_values_in_play_exactly_for_four_generals() -> None:
    """n = 4, m = 2: 3 orders; round 2, each forwards its value to 2; round 3, the other value to 1."""
    result = run(FOUR, "attack", {0: strategy("split", FOUR)})
    assert result.messages == 3 + 3 * 2 + 3 * 1


def test_message_counts_are_answered_at_once_for_any_size() -> None:
    huge = 10**35
    assert SIGNED_MESSAGES.messages_sent(huge, 10**30, limit=1000) == (huge - 1) * (huge - 1)
    assert SIGNED_MESSAGES.messages_sent(1, 0) == 0


def test_signatures_verified_counts_each_link_once_per_general() -> None:
    """n = 4, m = 1: each lieutenant checks the commander's link once and each relayer's link once."""
    assert run(setup(4, 1)).cores[1].stats["signatures_verified"] == 3
    total = sum(core.stats["signatures_verified"] for core in run(setup(4, 1)).cores)
    assert total == 9
    figure_5 = run(THREE, "attack", {0: strategy("split", THREE)})
    # Round 1: retreat from 0.  Round 2: attack via [0, 2], whose commander link is new to 1.
    assert figure_5.cores[1].stats["signatures_verified"] == 3


# --- each rule, with a hand-built bad message ------------------------------------------


def test_a_genuine_message_is_accepted_in_each_round() -> None:
    first = opened(FOUR, 1, 1)
    assert first.receive(sender=0, round=1, payload=from_commander(FOUR)) is None
    second = opened(FOUR, 1, 2)
    assert second.receive(sender=2, round=2, payload=forwarded(FOUR, 2)) is None
    assert second.held["attack"].chain == (0, 2)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (("attack", (0,)), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", [0], ("a" * 128,)), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", (), ()), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", (False,), ("a" * 128,)), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", (0,), ()), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", (0,), (None,)), SignedReason.MALFORMED_MESSAGE),
        (Signed("attack", (9,), ("a" * 128,)), SignedReason.OUT_OF_RANGE),
        (Signed("attack", (2,), ("a" * 128,)), SignedReason.NOT_FROM_COMMANDER),
    ],
)
def test_shape_rules(payload: object, reason: SignedReason) -> None:
    assert opened(FOUR, 1, 1).receive(sender=0, round=1, payload=payload) is reason


def test_a_chain_not_ending_with_its_sender_is_a_forgery() -> None:
    core = opened(FOUR, 1, 2)
    assert core.receive(sender=3, round=2, payload=forwarded(FOUR, 2)) is SignedReason.NOT_FROM_SENDER


def test_a_chain_that_repeats_or_contains_the_receiver_is_refused() -> None:
    genuine = forwarded(FOUR, 2)
    assert isinstance(genuine.signatures, tuple)
    repeated = Signed("attack", (0, 2, 2), (*genuine.signatures, genuine.signatures[-1]))
    assert opened(FOUR, 1, 3).receive(sender=2, round=3, payload=repeated) is SignedReason.REPEATS
    through = opened(FOUR, 2, 2)
    assert through.receive(sender=2, round=2, payload=genuine) is SignedReason.THROUGH_RECEIVER


def test_dolev_strong_a_chain_of_the_wrong_length_for_the_round_is_refused() -> None:
    late = opened(FOUR, 1, 2)
    assert late.receive(sender=0, round=2, payload=from_commander(FOUR)) is SignedReason.WRONG_ROUND
    assert late.held == {}


def test_a_value_outside_the_domain_is_refused_before_any_signature_is_checked() -> None:
    class Sly(str):
        """Says it is "attack", and is not a plain string."""

    class Unhashable:
        def __hash__(self) -> int:
            raise RuntimeError("no")

    commander = opened(FOUR, 0, 1)
    for garbage in ("charge", None, ["attack"], 10**5000, Sly("attack"), Unhashable()):
        payload = commander.compose(Outgoing((0,), 1, "attack"), (0,), garbage)
        core = opened(FOUR, 1, 1)
        assert core.receive(sender=0, round=1, payload=payload) is SignedReason.OUTSIDE_DOMAIN
        assert core.stats["signatures_verified"] == 0


def test_a_tampered_value_or_signature_does_not_verify() -> None:
    genuine = forwarded(FOUR, 2)
    assert isinstance(genuine.signatures, tuple)
    first, second = genuine.signatures
    flipped = second[:-1] + ("0" if second[-1] != "0" else "1")
    tampered = [
        attrs.evolve(genuine, value="retreat"),
        attrs.evolve(genuine, signatures=(first, flipped)),
        attrs.evolve(genuine, signatures=(first.upper(), second)),
        attrs.evolve(genuine, signatures=(first, second[:-2])),
        attrs.evolve(genuine, signatures=(second, first)),
    ]
    for payload in tampered:
        core = opened(FOUR, 1, 2)
        assert core.receive(sender=2, round=2, payload=payload) is SignedReason.BAD_SIGNATURE, payload
        assert core.held == {}


def test_a_signature_from_another_run_or_instance_does_not_verify() -> None:
    for other in (setup(4, 2, seed=1), setup(4, 2, instance=1)):
        payload = from_commander(other)
        assert opened(FOUR, 1, 1).receive(sender=0, round=1, payload=payload) is SignedReason.BAD_SIGNATURE
        assert opened(other, 1, 1).receive(sender=0, round=1, payload=payload) is None


def test_a_value_already_held_is_accepted_silently_and_not_forwarded_again() -> None:
    core = opened(FOUR, 1, 1)
    assert core.receive(sender=0, round=1, payload=from_commander(FOUR)) is None
    assert [(o.path, o.receiver) for o in core.outbox(2)] == [((0, 1), 2), ((0, 1), 3)]
    assert core.receive(sender=2, round=2, payload=forwarded(FOUR, 2)) is None
    assert core.held["attack"].chain == (0,)
    assert [core.joined(a) for a in core.accepted(2)] == [False]
    assert core.outbox(3) == []


def test_a_message_travels_through_the_log_as_json_and_still_verifies() -> None:
    genuine = forwarded(FOUR, 2)
    fields = json.loads(json.dumps(SIGNED_MESSAGES.payload_fields(genuine)))
    assert list(fields) == ["value", "chain", "signatures"]
    again = SIGNED_MESSAGES.payload_from_fields(fields)
    assert again == genuine
    assert SIGNED_MESSAGES.path_of(again) == (0, 2)
    assert opened(FOUR, 1, 2).receive(sender=2, round=2, payload=again) is None


def test_the_recorded_public_keys_check_a_signature_with_nothing_but_the_log() -> None:
    """What ``run.start`` records is enough: replay need not trust the cores' own keys."""
    genuine = from_commander(FOUR)
    keys = SIGNED_MESSAGES.record(FOUR)["keys"]
    assert sorted(keys) == ["0", "1", "2", "3"]
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(keys["0"]))
    assert isinstance(genuine.signatures, tuple)
    public.verify(bytes.fromhex(genuine.signatures[0]), signed_bytes(FOUR, "attack", (), ()))


# --- late releases ---------------------------------------------------------------------


def test_a_late_release_is_refused_when_its_chain_is_too_short() -> None:
    """m = 2: lieutenant 3 holds "attack" from round 1 and releases it in round 3 with 2 signatures."""
    result = run(FOUR, "attack", {3: Late(m=2)})
    assert [(e.round, e.sender, e.receiver, e.reason) for e in result.rejected] == [
        (3, 3, 1, SignedReason.WRONG_ROUND)
    ]
    assert result.sent[3] == 1
    assert result.decisions[1] == result.decisions[2] == "attack"


def test_a_release_in_round_m_plus_1_is_accepted_when_m_is_1() -> None:
    """m = 1: round 2 is when the chain [0, 2] is due, so the one receiver takes it."""
    result = run(THREE, "attack", {2: Late(m=1)})
    assert result.rejected == []
    assert result.cores[1].held["attack"].chain == (0,)
    assert [a.chain for a in result.cores[1].accepted(2)] == [(0, 2)]


def test_a_late_commander_reaches_nobody() -> None:
    result = run(FOUR, "attack", {0: Late(m=2, receiver=2)})
    assert [(e.round, e.receiver, e.reason) for e in result.rejected] == [(3, 2, SignedReason.WRONG_ROUND)]
    assert result.decisions[1] == result.decisions[2] == result.decisions[3] == "retreat"


def test_a_traitor_is_offered_what_it_holds_again_in_every_later_round() -> None:
    traitor = opened(FOUR, 3, 1)
    assert traitor.receive(sender=0, round=1, payload=from_commander(FOUR, receiver=3)) is None
    assert [(o.path, o.receiver) for o in traitor.offers(2)] == [((0, 3), 1), ((0, 3), 2)]
    assert [(o.path, o.receiver) for o in traitor.offers(3)] == [((0, 3), 1), ((0, 3), 2)]
    commander = opened(FOUR, 0, 1)
    assert [(o.path, o.receiver, o.value) for o in commander.offers(2)] == [
        ((0,), 1, "attack"),
        ((0,), 2, "attack"),
        ((0,), 3, "attack"),
    ]


FIVE = setup(5, 2)


def traitor_four_after_round_2(arrival_order: tuple[int, ...] = (1, 2, 3)) -> SignedGeneral:
    """Lieutenant 4 of five (m = 2): "attack" from the commander in round 1, via 1, 2 and 3 in round 2."""
    traitor = opened(FIVE, 4, 1)
    assert traitor.receive(sender=0, round=1, payload=from_commander(FIVE, receiver=4)) is None
    traitor.offers(2)
    for via in arrival_order:
        assert traitor.receive(sender=via, round=2, payload=forwarded(FIVE, via)) is None
    return traitor


def test_a_traitor_is_offered_every_chain_it_holds_not_only_the_one_it_keeps() -> None:
    """The issue: a traitor may send any value for which it holds a valid chain, after appending itself.

    4 holds "attack" since round 1, so it owes nothing in round 3; it may still
    extend each of [0, 1], [0, 2] and [0, 3] -- offered with NOTHING_OWED, the
    value a loyal general sends there -- besides releasing [0, 4] late.
    """
    expected = [
        ((0, 1, 4), 2, ""),
        ((0, 1, 4), 3, ""),
        ((0, 2, 4), 1, ""),
        ((0, 2, 4), 3, ""),
        ((0, 3, 4), 1, ""),
        ((0, 3, 4), 2, ""),
        ((0, 4), 1, "attack"),
        ((0, 4), 2, "attack"),
        ((0, 4), 3, "attack"),
    ]
    for order in itertools.permutations((1, 2, 3)):
        offers = traitor_four_after_round_2(order).offers(3)
        assert [(o.path, o.receiver, o.value) for o in offers] == expected, order


def test_a_scripted_traitor_sends_along_a_chain_it_holds_but_does_not_keep() -> None:
    """/tmp/hostile-work/chain.yaml: 4's entry for [0, 2, 4] used to pass validation and never be sent."""
    script = strategy(
        "scripted",
        FIVE,
        messages=[
            {"path": [0, 2, 4], "receiver": 1, "value": "attack"},
            {"path": [0, 2, 4], "receiver": 3, "silent": True},
        ],
    )
    result = run(FIVE, "attack", {4: script})
    assert [p[:3] for p in result.posts if p[0] == 3] == [(3, 4, 1)]
    assert [(a.chain, a.value) for a in result.cores[1].accepted(3)] == [((0, 2, 4), "attack")]
    assert not result.rejected


def test_a_chain_signs_only_the_value_it_brought() -> None:
    """Along [0, 2] 4 received "attack": it can sign that, and "retreat" along it does not verify."""
    traitor = traitor_four_after_round_2()
    (offer,) = [o for o in traitor.offers(3) if o.path == (0, 2, 4) and o.receiver == 1]
    receiver = opened(FIVE, 1, 3)
    assert receiver.receive(sender=4, round=3, payload=traitor.compose(offer, offer.path, "attack")) is None
    forged = traitor.compose(offer, offer.path, "retreat")
    assert receiver.receive(sender=4, round=3, payload=forged) == SignedReason.BAD_SIGNATURE


@pytest.mark.parametrize("name", ["loyal", "split", "random", "late"])
def test_built_in_strategies_send_nothing_along_a_chain_a_loyal_general_does_not_forward(name: str) -> None:
    """Only a script names a value for such a chain; loyal sends exactly what a loyal general does."""
    chosen = strategy(name, FIVE)
    asked = [chosen.choose(3, o.path, o.receiver, o.value, random.Random(0)) for o in extended_offers()]
    assert asked == [None] * len(asked)
    if name == "loyal":
        assert run(FIVE, "attack", {4: chosen}).posts == run(FIVE, "attack").posts


def extended_offers() -> list[Outgoing]:
    return [o for o in traitor_four_after_round_2().offers(3) if o.value == ""]


# --- the schedule ----------------------------------------------------------------------


def test_out_of_turn_calls_raise_protocol_misuse() -> None:
    core = SIGNED_MESSAGES.general(FOUR, 1)
    with pytest.raises(ProtocolMisuse, match="round 2's messages after round 0 of 3"):
        core.outbox(2)
    with pytest.raises(ProtocolMisuse, match="before round 1"):
        core.compose(Outgoing((0, 1), 2, "attack"), (0, 1), "attack")
    core.outbox(1)
    with pytest.raises(ProtocolMisuse, match="decide in round 1 of 3"):
        core.decide()
    with pytest.raises(ProtocolMisuse, match="round-2 message while in round 1"):
        core.receive(sender=2, round=2, payload=forwarded(FOUR, 2))
    with pytest.raises(ProtocolMisuse):
        core.outbox(1)


# --- the theorem, as a property ----------------------------------------------------------


@attrs.frozen
class Garbler:
    """Changes every value it is offered, late ones too, and sometimes sends garbage."""

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        return rng.choice(["attack", "retreat", None, 42, Forgery((0, receiver), "attack")])


@st.composite
def armies(draw: st.DrawFn) -> tuple[Setup, str, dict[int, Strategy]]:
    generals = draw(st.integers(3, 6))
    m = draw(st.integers(1, generals - 2))
    army = setup(generals, m, seed=draw(st.integers(0, 2**32)))
    chosen = draw(st.lists(st.integers(0, generals - 1), unique=True, max_size=m))
    traitors: dict[int, Strategy] = {}
    for traitor in chosen:
        name = draw(st.sampled_from(["loyal", "silent", "split", "late", "random", "scripted", "garbler"]))
        if name == "garbler":
            traitors[traitor] = Garbler()
        elif name == "scripted":
            points = list(SIGNED_MESSAGES.decision_points(army, traitor))
            picked = draw(st.lists(st.sampled_from(points), unique=True, max_size=6)) if points else []
            script = [
                {"path": list(p.path), "receiver": p.receiver, "value": draw(st.sampled_from(VALUES))}
                if draw(st.booleans())
                else {"path": list(p.path), "receiver": p.receiver, "silent": True}
                for p in picked
            ]
            traitors[traitor] = strategy("scripted", army, messages=script)
        else:
            traitors[traitor] = strategy(name, army)
    return army, draw(st.sampled_from(VALUES)), traitors


@settings(max_examples=200, deadline=None)
@given(armies())
def test_theorem_2_any_m_traitors_cannot_break_ic1_or_ic2(
    army: tuple[Setup, str, dict[int, Strategy]],
) -> None:
    setup, order, traitors = army
    result = run(setup, order, traitors)
    loyal = set(range(setup.generals)) - set(traitors)
    verdict = judge(setup, result.decisions, loyal=loyal, order=order)
    assert verdict.agreement
    assert verdict.validity is not False
    if not traitors:
        assert result.messages == SIGNED_MESSAGES.messages_sent(setup.generals, setup.m)


@settings(max_examples=100, deadline=None)
@given(armies(), st.randoms(use_true_random=False))
def test_the_order_messages_arrive_in_within_a_round_changes_nothing(
    army: tuple[Setup, str, dict[int, Strategy]], shuffle: random.Random
) -> None:
    """What is sent, decided, counted and explained is the same for any delivery order within a round."""
    setup, order, traitors = army
    in_order = run(setup, order, traitors)
    shuffled = run(setup, order, traitors, shuffle=shuffle)
    assert shuffled.decisions == in_order.decisions
    assert sorted(shuffled.posts) == sorted(in_order.posts)
    assert sorted(map(str, shuffled.rejected)) == sorted(map(str, in_order.rejected))
    for mixed, kept in zip(shuffled.cores, in_order.cores, strict=True):
        assert mixed.held == kept.held
        assert mixed.stats == kept.stats
        if mixed.me != setup.commander:
            assert SIGNED_MESSAGES.explain(mixed) == SIGNED_MESSAGES.explain(kept)


def test_the_smallest_chain_is_kept_whichever_arrives_first() -> None:
    """Lieutenant 3 gets "attack" only in round 2, via [0, 1] and via [0, 2]: it forwards [0, 1, 3]."""
    via_one, via_two = forwarded(FOUR, 1), forwarded(FOUR, 2)
    for first, second in ((via_one, via_two), (via_two, via_one)):
        core = opened(FOUR, 3, 2)
        assert core.receive(sender=first.chain[-1], round=2, payload=first) is None  # type: ignore[index]
        assert core.receive(sender=second.chain[-1], round=2, payload=second) is None  # type: ignore[index]
        assert core.held["attack"].chain == (0, 1)
        assert [(o.path, o.receiver) for o in core.outbox(3)] == [((0, 1, 3), 2)]
        assert [core.joined(a) for a in core.accepted(2)] == [True, False]


def test_more_traitors_than_m_can_break_agreement() -> None:
    """n = 4, m = 1, two traitors: the commander signs only for traitor 3, which passes it to 1 alone.

    Lieutenant 1 then holds {attack}, lieutenant 2 holds nothing: they disagree,
    and the theorem never promised otherwise.
    """
    army = setup(4, 1)

    @attrs.frozen
    class OnlyToOne:
        def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
        ) -> object:
            return "attack" if path == (0,) and receiver == 3 else None

    result = run(army, "attack", {0: OnlyToOne(), 3: Late(m=1, receiver=1)})
    assert result.decisions[1] == "attack"
    assert result.decisions[2] == "retreat"
    assert not judge(army, result.decisions, loyal={1, 2}, order="attack").agreement
    assert SIGNED_MESSAGES.warnings(4, 1, 2) == [
        "2 traitors are more than m = 1: SM(1) is only built to survive 1"
    ]
    assert SIGNED_MESSAGES.theorem_allows_failure(4, 1, 2)


# --- the algorithm as a whole ------------------------------------------------------------


def test_the_problem_is_refused_when_trivial() -> None:
    assert SIGNED_MESSAGES.problems(3, 2) == [
        "must be at most generals - 2 = 1: with n <= m + 1 generals and up to m traitors "
        "at most one general is loyal, so there is nothing to agree on"
    ]
    assert SIGNED_MESSAGES.problems(2, 1) != []
    assert SIGNED_MESSAGES.problems(3, 1) == []
    assert SIGNED_MESSAGES.problems(2, 0) == []
    assert SIGNED_MESSAGES.warnings(3, 1, 1) == []


def test_keys_are_the_same_for_a_seed_and_differ_across_seeds_and_generals() -> None:
    assert SIGNED_MESSAGES.record(setup(4, 1, seed=7)) == SIGNED_MESSAGES.record(setup(4, 1, seed=7))
    seven = SIGNED_MESSAGES.record(setup(4, 1, seed=7))["keys"]
    eight = SIGNED_MESSAGES.record(setup(4, 1, seed=8))["keys"]
    assert set(seven.values()).isdisjoint(eight.values())
    assert len(set(seven.values())) == 4
    assert keyring(7, 4) is keyring(7, 4)


def test_one_scenario_and_seed_give_the_same_messages_byte_for_byte() -> None:
    def payloads(seed: int) -> list[str]:
        army = setup(5, 2, seed=seed)
        cores = [opened(army, g, 0) for g in range(5)]
        found = []
        for round in (1, 2):
            outboxes = [core.outbox(round) for core in cores]
            for general, (core, outbox) in enumerate(zip(cores, outboxes, strict=True)):
                for out in outbox:
                    payload = core.compose(out, out.path, out.value)
                    found.append(json.dumps(SIGNED_MESSAGES.payload_fields(payload)))
                    cores[out.receiver].receive(sender=general, round=round, payload=payload)
        assert len(found) == 4 + 4 * 3
        return found

    assert payloads(3) == payloads(3)
    assert payloads(3) != payloads(4)


def test_signed_bytes_never_raise_on_garbage() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    loop: list[object] = []
    loop.append(loop)
    for garbage in (object(), {(1, 2): 3}, 10**5000, loop, Hostile(), float("nan"), "\ud800"):
        assert signed_bytes(FOUR, garbage, (0,), ("x",))
    assert signed_bytes(FOUR, "attack", (), ()) != signed_bytes(FOUR, "retreat", (), ())


def test_decision_points_are_every_due_chain_ending_in_the_traitor() -> None:
    assert list(SIGNED_MESSAGES.decision_points(THREE, 0)) == [
        DecisionPoint(1, (0,), 1),
        DecisionPoint(1, (0,), 2),
    ]
    assert list(SIGNED_MESSAGES.decision_points(THREE, 2)) == [DecisionPoint(2, (0, 2), 1)]
    assert list(SIGNED_MESSAGES.decision_points(FOUR, 3)) == [
        DecisionPoint(2, (0, 3), 1),
        DecisionPoint(2, (0, 3), 2),
        DecisionPoint(3, (0, 1, 3), 2),
        DecisionPoint(3, (0, 2, 3), 1),
    ]


def test_decision_points_of_a_large_army_come_one_at_a_time() -> None:
    """n = 31, m = 10 has perm(29, 9) chains of ten signers; the first ones come at once, shortest first."""
    points = SIGNED_MESSAGES.decision_points(setup(31, 10), 3)
    first = list(itertools.islice(points, 30))
    assert first[0] == DecisionPoint(2, (0, 3), 1)
    assert [p.round for p in first] == [2] * 29 + [3]
    assert first[29] == DecisionPoint(3, (0, 1, 3), 2)


@pytest.mark.parametrize(("generals", "m"), [(3, 1), (4, 2), (5, 2), (5, 3)])
def test_most_messages_bounds_every_offer_a_traitor_gets(generals: int, m: int) -> None:
    """Whatever the commander signs, every general's offers per receiver stay within most_messages."""

    @attrs.frozen
    class Everything:
        """A commander that signs both values; lieutenants send on every offer, every chain they hold too."""

        def choose(
            self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
        ) -> object:
            return VALUES[receiver % 2] if len(path) == 1 else value or VALUES[sum(path) % 2]

    army = setup(generals, m)
    cores = [SIGNED_MESSAGES.general(army, g, "attack") for g in range(generals)]
    drivers = [GeneralDriver([c], strategy=Everything(), seed=0, tagged=False) for c in cores]
    for round in range(1, m + 2):
        posts = []
        for general, driver in enumerate(drivers):
            asks = [item for item in driver.round(round) if isinstance(item, Ask)]
            per_receiver = Counter(ask.outgoing.receiver for ask in asks)
            for receiver in range(generals):
                most = SIGNED_MESSAGES.most_messages(army, general, receiver, round)
                assert per_receiver[receiver] <= most, (general, receiver, round)
            posts += [(general, answer_now(driver, ask)) for ask in asks]
        for sender, send in posts:
            assert isinstance(send, Send)
            drivers[send.receiver].deliver(0, sender, round, send.payload)
    assert SIGNED_MESSAGES.most_messages(army, 1, 0, 2) == 0
    assert SIGNED_MESSAGES.most_messages(army, 1, 2, 1) == 0
    assert SIGNED_MESSAGES.most_messages(army, 0, 1, m + 1) == 1
    assert SIGNED_MESSAGES.most_messages(army, 1, 2, m + 2) == 0
    assert SIGNED_MESSAGES.most_messages(army, 1, 2, 2) == 2
    assert SIGNED_MESSAGES.most_messages(setup(10**9, 10**6), 1, 2, 2) == 2
    assert SIGNED_MESSAGES.most_messages(setup(10**9, 10**6), 1, 2, 3) == 2 * (10**9 - 2)


def test_strategies_and_canonical_adversaries() -> None:
    names = SIGNED_MESSAGES.strategies()
    assert sorted(names) == ["late", "loyal", "random", "scripted", "silent", "split"]
    assert all(name in names for name, _ in SIGNED_MESSAGES.canonical(VALUES))
    assert SIGNED_MESSAGES.name == "sm"
    assert SIGNED_MESSAGES.titled(3) == "SM(3)"
    assert not SIGNED_MESSAGES.batchable


def test_split_lieutenant_forwards_to_even_generals_only_and_never_late() -> None:
    split = SignedSplit(VALUES)
    rng = random.Random(0)
    assert [split.choose(2, (0, 3), r, "attack", rng) for r in (1, 2, 4)] == [None, "attack", "attack"]
    assert [split.choose(1, (0,), r, "attack", rng) for r in (1, 2)] == ["retreat", "attack"]
    assert split.choose(3, (0, 3), 2, "attack", rng) is None


def test_scripted_follows_its_script_on_due_offers_only() -> None:
    scripted = SignedScripted(
        messages=[
            {"path": [0, 2], "receiver": 1, "value": "retreat"},
            {"path": [0, 2], "receiver": 3, "silent": True},
        ]
    )
    rng = random.Random(0)
    assert scripted.choose(2, (0, 2), 1, "attack", rng) == "retreat"
    assert scripted.choose(2, (0, 2), 3, "attack", rng) is None
    assert scripted.choose(2, (0, 2), 4, "attack", rng) == "attack"
    assert scripted.choose(3, (0, 2), 1, "attack", rng) is None
    written = scripted.to_args()["messages"]
    assert isinstance(written, list)
    assert written[0] == {"path": [0, 2], "receiver": 1, "value": "retreat"}


def test_scripted_entries_with_a_round_apply_in_that_round_only() -> None:
    """An SM chain fixes its round: an entry may say it, and one naming another round never applies."""
    scripted = SignedScripted(
        messages=[
            {"round": 2, "path": [0, 2], "receiver": 1, "value": "retreat"},
            {"round": 3, "path": [0, 2], "receiver": 3, "value": "retreat"},
        ]
    )
    rng = random.Random(0)
    assert scripted.choose(2, (0, 2), 1, "attack", rng) == "retreat"
    assert scripted.choose(2, (0, 2), 3, "attack", rng) == "attack"
    assert scripted.choose(3, (0, 2), 3, "attack", rng) is None  # not due: nothing late
    written = scripted.to_args()["messages"]
    assert isinstance(written, list)
    assert written[0] == {"round": 2, "path": [0, 2], "receiver": 1, "value": "retreat"}


def test_random_with_a_seed_of_its_own_draws_from_the_round_too() -> None:
    seeded = SignedRandom(VALUES, seed=7)
    options = (*VALUES, None)
    for round, path in ((1, (0,)), (2, (0, 3)), (3, (0, 1, 3))):
        for receiver in (2, 4):
            expected = random.Random(f"7/{round}/{path}/{receiver}").choice(options)
            assert seeded.choose(round, path, receiver, "attack", random.Random(0)) == expected


def test_late_goes_to_the_lowest_general_off_the_chain_by_default() -> None:
    rng = random.Random(0)
    late = Late(m=2)
    assert [late.choose(3, (0, 1, 3), r, "attack", rng) for r in (2, 4)] == ["attack", None]
    assert late.choose(2, (0, 3), 1, "attack", rng) is None


def test_built_by_name_with_the_scenario_filling_in_values_and_m() -> None:
    sm = SIGNED_MESSAGES.strategies()
    assert build_strategy("late", {}, values=VALUES, m=3, built_in=sm) == Late(m=3)
    assert build_strategy("late", {"receiver": 2}, values=VALUES, m=3, built_in=sm) == Late(m=3, receiver=2)
    assert build_strategy("split", {}, values=VALUES, m=3, built_in=sm) == SignedSplit(VALUES)


# --- explain -------------------------------------------------------------------------------


def test_explain_shows_v_round_by_round_for_figure_5() -> None:
    result = run(THREE, "attack", {0: strategy("split", THREE)})
    step = SIGNED_MESSAGES.explain(result.cores[1])
    assert (step.label, step.value) == ("general 1", "retreat")
    assert step.detail == "V = {attack, retreat}: 2 values, so the default retreat"
    first, second = step.children
    assert (first.label, first.value, first.detail) == ("round 1", "{retreat}", "accepted 1 message")
    assert [(c.label, c.path) for c in first.children] == [("retreat via [0]", (0,))]
    assert first.children[0].detail == "new: joins V, forwarded in round 2"
    assert (second.value, [c.label for c in second.children]) == ("{attack, retreat}", ["attack via [0, 2]"])
    assert second.children[0].detail == "new: joins V; the last round, so not forwarded"


def test_explain_depth_hides_and_counts_what_it_cuts() -> None:
    core = run(FOUR).cores[1]
    full = SIGNED_MESSAGES.explain(core)
    # round 1: attack via [0]; round 2: attack via [0, 2] and [0, 3], already held; round 3: nothing.
    assert [len(r.children) for r in full.children] == [1, 2, 0]
    assert full.children[1].children[0].detail == "already in V: not forwarded again"
    assert SIGNED_MESSAGES.explain(core, depth=0) == Step(full.label, full.value, full.detail, (), 6)
    shallow = SIGNED_MESSAGES.explain(core, depth=1)
    assert [(r.children, r.hidden) for r in shallow.children] == [((), 1), ((), 2), ((), 0)]


def test_explain_refuses_a_path_and_an_unfinished_run() -> None:
    core = run(THREE).cores[1]
    with pytest.raises(ValueError, match="SM\\(1\\) keeps a set of values, not a tree of paths"):
        SIGNED_MESSAGES.explain(core, path=(0,))
    with pytest.raises(ProtocolMisuse):
        SIGNED_MESSAGES.explain(opened(THREE, 1, 1))
    with pytest.raises(ValueError, match="general 0 is the commander: it decides its own order"):
        SIGNED_MESSAGES.explain(run(THREE).cores[0])


def test_importing_om_actors_loads_no_cryptography_until_a_signed_run_needs_it() -> None:
    """Start-up stays cheap for every program that never signs: the keys are made on first use."""
    import subprocess
    import sys

    probe = "import sys, om_actors; print('cryptography' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"


# --- keys: the seed's in one process, each general's own across processes ---------------


def own_keys(setup: Setup) -> Setup:
    """``setup`` as a cluster's nodes publish it: each general's key from a secret of its own."""
    identities = tuple(SIGNED_MESSAGES.identity(setup, g, bytes([g + 1]) * 32) for g in range(setup.generals))
    return attrs.evolve(setup, identities=identities)


def own(setup: Setup, me: int, round: int, order: str = "attack") -> SignedGeneral:
    """General ``me`` holding its own secret, rounds 1..``round`` opened."""
    core = SIGNED_MESSAGES.general(setup, me, order, secret=bytes([me + 1]) * 32)
    for r in range(1, round + 1):
        core.outbox(r)
    return core


def test_every_field_of_the_run_is_in_what_a_link_signs() -> None:
    """So a signature made in one run, instance or army verifies in no other, whatever the seed."""
    changed: dict[str, Any] = {
        "generals": 5,
        "m": 1,
        "commander": 1,
        "values": ("attack", "retreat", "wait"),
        "default": "attack",
        "seed": 1,
        "instance": 1,
        "identities": own_keys(FOUR).identities,
    }
    assert sorted(changed) == sorted(field.name for field in attrs.fields(Setup))
    base = signed_bytes(FOUR, "attack", (), ())
    for name, value in changed.items():
        assert signed_bytes(attrs.evolve(FOUR, **{name: value}), "attack", (), ()) != base, name


def test_a_general_with_its_own_secret_signs_what_only_its_published_key_verifies() -> None:
    published = own_keys(FOUR)
    assert published.identities[0] != keyring(FOUR.seed, 4).public_hex[0]
    commander = own(published, 0, 1)
    genuine = commander.compose(Outgoing((0,), 1, "attack"), (0,), "attack")
    assert own(published, 1, 1).receive(sender=0, round=1, payload=genuine) is None
    # What a traitor node could make from the seed: refused where each general published its own key.
    seeded = from_commander(FOUR)
    assert own(published, 1, 1).receive(sender=0, round=1, payload=seeded) is SignedReason.BAD_SIGNATURE
    seed_over_this_run = attrs.evolve(
        seeded, signatures=(keyring(0, 4).private[0].sign(signed_bytes(published, "attack", (), ())).hex(),)
    )
    refused = own(published, 1, 1).receive(sender=0, round=1, payload=seed_over_this_run)
    assert refused is SignedReason.BAD_SIGNATURE
    # And the seed's keys no longer check what the general signed with its own.
    assert opened(FOUR, 1, 1).receive(sender=0, round=1, payload=genuine) is SignedReason.BAD_SIGNATURE


def test_a_general_never_heard_from_verifies_nothing() -> None:
    published = own_keys(FOUR)
    silent = attrs.evolve(published, identities=("", *published.identities[1:]))
    genuine = own(published, 0, 1).compose(Outgoing((0,), 1, "attack"), (0,), "attack")
    assert own(silent, 1, 1).receive(sender=0, round=1, payload=genuine) is SignedReason.BAD_SIGNATURE


def test_a_secret_must_give_the_identity_the_setup_publishes() -> None:
    published = own_keys(FOUR)
    mismatch = "general 1's secret does not give the identity the setup names for it"
    with pytest.raises(ValueError, match=mismatch):
        SIGNED_MESSAGES.general(published, 1, secret=b"another secret")
    with pytest.raises(ValueError, match="general 1's secret does not give the identity"):
        SIGNED_MESSAGES.general(FOUR, 1, secret=bytes([2]) * 32)  # no identities: the seed's keys
    with pytest.raises(ValueError, match="the setup names 3 identities for 4 generals"):
        SIGNED_MESSAGES.general(attrs.evolve(FOUR, identities=published.identities[:3]), 1)


def test_a_core_without_its_key_checks_a_loyal_message_by_its_published_key() -> None:
    """Replay of a cluster's log: it cannot sign again, so it checks all but the bytes of the last link."""
    published = own_keys(FOUR)
    order = own(published, 0, 1).compose(Outgoing((0,), 2, "attack"), (0,), "attack")
    relay = own(published, 2, 1)
    assert relay.receive(sender=0, round=1, payload=order) is None
    outgoing = relay.outbox(2)[0]
    logged = relay.compose(outgoing, outgoing.path, outgoing.value)
    assert isinstance(logged, Signed)
    assert isinstance(logged.signatures, tuple)
    replayed = SIGNED_MESSAGES.general(published, 2)  # no secret: the keys are the nodes' own
    replayed.outbox(1)
    assert replayed.receive(sender=0, round=1, payload=order) is None
    owed = replayed.compose(replayed.outbox(2)[0], outgoing.path, outgoing.value)
    assert isinstance(owed, Signed)
    assert owed.signatures == (*logged.signatures[:1], "(one general 2's published key verifies)")
    assert owed != logged
    assert replayed.matches(owed, logged)
    first, last = logged.signatures
    for changed in (
        attrs.evolve(logged, value="retreat"),
        attrs.evolve(logged, chain=(0, 3)),
        attrs.evolve(logged, signatures=(first, last[::-1])),
        attrs.evolve(logged, signatures=(last, last)),
        attrs.evolve(logged, signatures=(first,)),
        attrs.evolve(logged, signatures=[first, last]),
    ):
        assert not replayed.matches(owed, changed), changed
    # A core with its key compares bytes, as replay of a log from one process does.
    assert not relay.matches(logged, attrs.evolve(logged, signatures=(first, last[::-1])))


def test_what_run_start_records_reads_back_as_the_identities() -> None:
    published = own_keys(FOUR)
    recorded = json.loads(json.dumps(SIGNED_MESSAGES.record(published)))
    assert SIGNED_MESSAGES.identities_in(recorded, 4) == published.identities
    unheard = attrs.evolve(published, identities=("", *published.identities[1:]))
    assert SIGNED_MESSAGES.identities_in(SIGNED_MESSAGES.record(unheard), 4) == unheard.identities
    seeded = SIGNED_MESSAGES.record(FOUR)  # no identities: a run in one process publishes the seed's
    assert seeded == {"keys": {str(g): key for g, key in enumerate(keyring(0, 4).public_hex)}}
    assert SIGNED_MESSAGES.identities_in(seeded, 4) == keyring(0, 4).public_hex
    for garbage in (
        None,
        {},
        {"keys": {"0": "00"} | {str(g): published.identities[g] for g in (1, 2, 3)}},
        {"keys": {str(g): published.identities[g] for g in (0, 1, 2)}},
        {"keys": [published.identities]},
        {"keys": {str(g): 7 for g in range(4)}},
    ):
        assert SIGNED_MESSAGES.identities_in(garbage, 4) == (), garbage
