"""The seam itself: a core's schedule, and the verdict every algorithm is judged by.

Rules for this file:
- misuse is driven through real cores of every registered algorithm (and
  the test-only ones of conftest, which have no paths and their own number
  of rounds), and must raise ProtocolMisuse with a sentence, never decide
  on half a run; nothing here may assume a number of rounds or what a
  commander decides;
- no trio, no I/O.
"""

from __future__ import annotations

import random

import attrs
import pytest
from conftest import ECHO, GOSSIP, Echo
from hypothesis import given, settings
from hypothesis import strategies as st

import om_actors.registry
from om_actors import OmActorsError, ProtocolMisuse
from om_actors.algorithm import Algorithm, Core, Outgoing, Path, Setup, Verdict, combine, judge
from om_actors.lockstep import run_lockstep
from om_actors.oral import ORAL_MESSAGES, OralGeneral, OralReason, Relay
from om_actors.registry import REGISTRY, WRITTEN_BESIDE_PAYLOAD, register
from om_actors.signed import SIGNED_MESSAGES
from om_actors.strategies import Strategy, build_strategy

SETUP = Setup(generals=4, m=1, commander=0, values=("attack", "retreat"), default="retreat")
ALGORITHMS = [*sorted(REGISTRY.values(), key=lambda rules: rules.name), ECHO, GOSSIP]
"""Every registered algorithm, and the test-only ones without paths (Echo: two rounds; Gossip: three)."""

COMMANDER_DECIDES_ITS_ORDER = [ORAL_MESSAGES, SIGNED_MESSAGES, ECHO, GOSSIP]
"""The algorithms whose rules say a commander decides its own order.

That is no property of the seam -- Phase King's commander, say, ends with
whatever value its phases leave it -- so an algorithm is listed here only
if it makes that promise.
"""


def core(rules: Algorithm, me: int = 1) -> Core:
    return rules.general(SETUP, me, "attack")


def _named(rules: Algorithm) -> str:
    return rules.name


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
def test_a_round_opens_once_and_in_order(rules: Algorithm) -> None:
    general = core(rules)
    last = general.rounds
    assert last == rules.rounds(SETUP.generals, SETUP.m) >= 1
    with pytest.raises(
        ProtocolMisuse, match=rf"^general 1 was asked for round 2's messages after round 0 of {last}$"
    ):
        general.outbox(2)
    general.outbox(1)
    with pytest.raises(
        ProtocolMisuse, match=rf"^general 1 was asked for round 1's messages after round 1 of {last}$"
    ):
        general.offers(1)
    for round in range(2, last + 1):  # a round opens for a loyal general or a traitor alike
        if round % 2:
            general.offers(round)
        else:
            general.outbox(round)
    with pytest.raises(
        ProtocolMisuse,
        match=rf"^general 1 was asked for round {last + 1}'s messages after round {last} of {last}$",
    ):
        general.outbox(last + 1)
    assert general.round == last


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
def test_a_message_of_a_round_not_open_is_misuse_not_a_refusal(rules: Algorithm) -> None:
    general = core(rules)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a round-1 message while in round 0$"):
        general.receive(sender=0, round=1, payload=None)
    general.outbox(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a round-2 message while in round 1$"):
        general.receive(sender=0, round=2, payload=None)


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
def test_deciding_before_the_last_round_is_misuse(rules: Algorithm) -> None:
    general = core(rules)
    last = general.rounds
    for round in range(1, last + 1):
        with pytest.raises(
            ProtocolMisuse, match=rf"^general 1 was asked to decide in round {round - 1} of {last}$"
        ):
            general.decide()
        general.outbox(round)


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
def test_composing_before_round_one_is_misuse(rules: Algorithm) -> None:
    commander = core(rules, me=0)
    with pytest.raises(ProtocolMisuse, match=r"^general 0 was asked to compose a message before round 1$"):
        commander.compose(Outgoing((0,), 1, "attack"), (0,), "attack")


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
@pytest.mark.parametrize("me", [0, 1], ids=["commander", "lieutenant"])
def test_a_general_that_hears_nothing_still_decides_a_value_of_the_domain(rules: Algorithm, me: int) -> None:
    general = core(rules, me)
    for round in range(1, general.rounds + 1):
        general.outbox(round)
    assert general.decide() in SETUP.values


@pytest.mark.parametrize("rules", COMMANDER_DECIDES_ITS_ORDER, ids=_named)
def test_a_commander_run_through_every_round_decides_its_order(rules: Algorithm) -> None:
    commander = core(rules, me=0)
    for round in range(1, commander.rounds + 1):
        commander.outbox(round)
    assert commander.decide() == "attack"


def test_judge_leaves_validity_open_under_a_traitor_commander() -> None:
    assert judge(SETUP, {1: "attack", 2: "attack"}, loyal=[1, 2], order="attack") == Verdict(True, None)
    assert judge(SETUP, {0: "attack", 1: "retreat"}, loyal=[0, 1], order="attack") == Verdict(True, False)


def test_combine_needs_each_condition_in_every_instance() -> None:
    assert combine([Verdict(True, None), Verdict(True, True)]) == Verdict(True, True)
    assert combine([Verdict(True, None), Verdict(True, None)]) == Verdict(True, None)
    assert combine([Verdict(False, True), Verdict(True, False)]) == Verdict(False, False)
    assert not Verdict(True, False).success
    assert Verdict(True, None).success


# --- sizes: what a run is checked against before anything is allocated ----------------


@attrs.define
class _Flood:
    """A traitor that sends on every offer it gets, due or late: as many messages as a run can carry.

    Where the path is its own alone (a commander's order, or any message of
    an algorithm without paths) it gives each receiver another value, so
    generals hold as many values as they can; elsewhere it sends what it was
    offered, so signed chains stay valid and are forwarded again -- or a
    value of its choice where it was offered none to send.
    """

    values: tuple[str, ...]
    sent: int = 0

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        self.sent += 1
        return value if value and len(path) > 1 else self.values[receiver % len(self.values)]


@attrs.define
class _Counting:
    """Another strategy, counting what it sends: with the algorithm's ``loyal``, what a loyal general does."""

    inner: Strategy
    sent: int = 0

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        answer = self.inner.choose(round, path, receiver, value, rng)
        self.sent += answer is not None
        return answer


ARMIES = [(4, 1, 2), (5, 2, 4), (6, 3, 5), (7, 2, 7)]
"""Generals, m and how many values: small enough to flood, with values enough to matter to SM(m)."""


def _sent(rules: Algorithm, setup: Setup, flooding: range) -> int:
    """Every message of a run where the generals in ``flooding`` flood and the others are loyal."""
    loyal = build_strategy("loyal", {}, values=setup.values, m=setup.m, built_in=rules.strategies())
    counting = {g: _Counting(_Flood(setup.values) if g in flooding else loyal) for g in range(setup.generals)}
    run_lockstep(rules, setup, "v1", counting)
    return sum(general.sent for general in counting.values())


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
@pytest.mark.parametrize(("generals", "m", "values"), ARMIES)
def test_no_run_sends_more_than_its_message_bound(
    rules: Algorithm, generals: int, m: int, values: int
) -> None:
    setup = Setup(generals, m, 0, tuple(f"v{i}" for i in range(values)), "v0")
    if rules.problems(generals, m):
        pytest.skip(f"{rules.titled(m)} cannot run {generals} generals")
    assert _sent(rules, setup, range(0)) == rules.messages_sent(generals, m) <= rules.message_bound(setup, 0)
    for traitors in range(1, generals + 1):
        for flooding in (range(traitors), range(1, traitors + 1)):  # with the commander, then without
            assert _sent(rules, setup, flooding) <= rules.message_bound(setup, traitors), (traitors, flooding)


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
@pytest.mark.parametrize(("generals", "m", "values"), ARMIES)
def test_sends_is_outbox_then_compose_in_every_round(
    rules: Algorithm, generals: int, m: int, values: int
) -> None:
    """A loyal general's messages the fast way (``sends``) and the long way, round by round, alike."""
    if rules.problems(generals, m):
        pytest.skip(f"{rules.titled(m)} cannot run {generals} generals")
    setup = Setup(generals, m, 0, tuple(f"v{i}" for i in range(values)), "v0")
    fast = [rules.general(setup, g, "v1") for g in range(generals)]
    slow = [rules.general(setup, g, "v1") for g in range(generals)]
    for round in range(1, fast[0].rounds + 1):
        sent = []
        for g in range(generals):
            quick = list(fast[g].sends(round))
            long = [
                (out.receiver, slow[g].compose(out, out.path, out.value)) for out in slow[g].outbox(round)
            ]
            assert quick == long, (round, g)
            sent += [(g, receiver, payload) for receiver, payload in quick]
        for sender, receiver, payload in sent:
            for army in (fast, slow):
                army[receiver].receive(sender=sender, round=round, payload=payload)
    assert [core.decide() for core in fast] == [core.decide() for core in slow]


@pytest.mark.parametrize("rules", ALGORITHMS, ids=_named)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_receive_all_refuses_and_keeps_what_receive_one_by_one_does(
    rules: Algorithm, data: st.DataObject
) -> None:
    """A sender's batch (``receive_all``) and its messages one at a time: the same refusals and decision.

    Each round's batches hold the loyal messages, some twice, some
    replaced by garbage or by another sender's message, in any order.
    """
    generals, m, values = data.draw(st.sampled_from(ARMIES), label="army")
    if rules.problems(generals, m):
        return
    setup = Setup(generals, m, 0, tuple(f"v{i}" for i in range(values)), "v0")
    batched = [rules.general(setup, g, "v1") for g in range(generals)]
    single = [rules.general(setup, g, "v1") for g in range(generals)]
    for round in range(1, batched[0].rounds + 1):
        sent = [
            (g, receiver, payload) for g in range(generals) for receiver, payload in batched[g].sends(round)
        ]
        for g in range(generals):
            single[g].outbox(round)
        garbage = [None, "v1", *(payload for _, _, payload in sent[:3])]
        for sender in range(generals):
            for receiver in range(generals):
                payloads = [p for s, r, p in sent if (s, r) == (sender, receiver)]
                payloads = data.draw(
                    st.lists(st.sampled_from(payloads + garbage), max_size=len(payloads) + 3)
                    if payloads
                    else st.just([]),
                    label=f"round {round}: {sender} to {receiver}",
                )
                refused = batched[receiver].receive_all(sender=sender, round=round, payloads=payloads)
                one_by_one = [
                    single[receiver].receive(sender=sender, round=round, payload=p) for p in payloads
                ]
                assert refused == [(i, reason) for i, reason in enumerate(one_by_one) if reason is not None]
    assert [core.decide() for core in batched] == [core.decide() for core in single]


class _Deaf(OralGeneral):
    """Overrides the public ``receive``, not the rules: every runtime must still hand messages to it."""

    def receive(self, *, sender: int, round: int, payload: object) -> OralReason | None:
        return OralReason.MALFORMED_MESSAGE


def test_a_core_that_overrides_receive_gets_a_batch_through_it() -> None:
    deaf = _Deaf(ORAL_MESSAGES, SETUP, 1, "attack")
    deaf.outbox(1)
    said = [Relay((0,), "attack"), Relay((0,), "retreat")]
    assert deaf.receive_all(sender=0, round=1, payloads=said) == [
        (0, OralReason.MALFORMED_MESSAGE),
        (1, OralReason.MALFORMED_MESSAGE),
    ]
    assert deaf.received == {}


def test_receive_all_is_misuse_outside_the_open_round() -> None:
    general = core(ORAL_MESSAGES)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a round-1 message while in round 0$"):
        general.receive_all(sender=0, round=1, payloads=[])


def test_signed_messages_are_sized_by_their_values_and_their_traitors() -> None:
    """SM(m)'s loyal count is no bound: a lieutenant forwards each value it holds, and a traitor more."""
    setup = Setup(6, 3, 0, ("v0", "v1", "v2", "v3", "v4"), "v0")
    one = _sent(SIGNED_MESSAGES, setup, range(1))  # a commander that gives each lieutenant another value
    assert SIGNED_MESSAGES.messages_sent(6, 3) == 25 < one <= SIGNED_MESSAGES.message_bound(setup, 1)
    assert SIGNED_MESSAGES.message_bound(setup, 1) < SIGNED_MESSAGES.message_bound(setup, 2)
    two = attrs.evolve(setup, values=("v0", "v1"))
    assert SIGNED_MESSAGES.message_bound(two, 1) < SIGNED_MESSAGES.message_bound(setup, 1)
    huge = Setup(10**35, 10**30, 0, tuple(f"v{i}" for i in range(254)), "v0")
    assert SIGNED_MESSAGES.message_bound(huge, 10**35) > 10**100  # a closed form: any size at once


@pytest.mark.parametrize(("generals", "m", "values"), [(2, 0, 2), (3, 1, 3), *ARMIES, (8, 5, 3)])
def test_signed_bound_with_every_lieutenant_lying_is_most_messages_summed(
    generals: int, m: int, values: int
) -> None:
    """The closed form is :meth:`most_messages` over every sender, receiver and round, counted one by one."""
    for commander in (0, generals - 1):
        setup = Setup(generals, m, commander, tuple(f"v{i}" for i in range(values)), "v0")
        rounds = SIGNED_MESSAGES.rounds(generals, m)
        summed = sum(
            SIGNED_MESSAGES.most_messages(setup, sender, receiver, round)
            for sender in range(generals)
            for receiver in range(generals)
            for round in range(1, rounds + 1)
        )
        assert SIGNED_MESSAGES.message_bound(setup, generals - 1) == summed


def test_an_algorithm_sends_at_most_its_loyal_count_unless_it_says_otherwise() -> None:
    setup = Setup(7, 2, 0, ("v0", "v1", "v2"), "v0")
    assert ORAL_MESSAGES.message_bound(setup, 7) == ORAL_MESSAGES.messages_sent(7, 2) == 156
    assert ECHO.message_bound(setup, 3) == ECHO.messages_sent(7, 2)


# --- registering: a payload the log can write ---------------------------------------


@attrs.frozen
class _Ballot:
    value: object
    round: object


class _Clashing(Echo):
    name = "clashing"
    payload = _Ballot  # type: ignore[assignment]  # the point: a payload Echo's own code never sends


class _NotAttrs(Echo):
    name = "not-attrs"
    payload = dict  # type: ignore[assignment]


def test_a_payload_field_named_like_a_log_lines_own_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registered = dict(REGISTRY)
    monkeypatch.setattr(om_actors.registry, "REGISTRY", registered)  # whatever happens, this test's own
    with pytest.raises(
        OmActorsError,
        match=r"^algorithm 'clashing' cannot be registered: its payload _Ballot has a field named 'round', "
        r"which a message's log line already holds \(it holds delivered, event, instance, reason, receiver, "
        r"round, sender\): rename the field$",
    ):
        register(_Clashing())
    with pytest.raises(
        OmActorsError,
        match=r"^algorithm 'not-attrs' cannot be registered: its payload <class 'dict'> is not an attrs ",
    ):
        register(_NotAttrs())
    assert registered == REGISTRY


def test_no_registered_payload_takes_a_log_lines_own_field() -> None:
    for rules in ALGORITHMS:
        assert not {f.name for f in attrs.fields(rules.payload)} & WRITTEN_BESIDE_PAYLOAD, rules.name
