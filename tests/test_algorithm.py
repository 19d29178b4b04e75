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

import pytest
from conftest import ECHO, GOSSIP

from om_actors import ProtocolMisuse
from om_actors.algorithm import Algorithm, Core, Outgoing, Setup, Verdict, combine, judge
from om_actors.oral import ORAL_MESSAGES
from om_actors.registry import REGISTRY
from om_actors.signed import SIGNED_MESSAGES

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
