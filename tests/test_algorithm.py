"""The seam itself: a core's schedule, and the verdict every algorithm is judged by.

Rules for this file:
- misuse is driven through real cores of every registered algorithm, and
  must raise ProtocolMisuse with a sentence, never decide on half a run;
- no trio, no I/O.
"""

from __future__ import annotations

import pytest

from om_actors import ProtocolMisuse, algorithm_named
from om_actors.algorithm import Core, Outgoing, Setup, Verdict, combine, judge
from om_actors.registry import REGISTRY

SETUP = Setup(generals=4, m=1, commander=0, values=("attack", "retreat"), default="retreat")
ALGORITHMS = sorted(REGISTRY)


def core(name: str, me: int = 1) -> Core:
    return algorithm_named(name).general(SETUP, me, "attack")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_round_opens_once_and_in_order(name: str) -> None:
    general = core(name)
    with pytest.raises(
        ProtocolMisuse, match=r"^general 1 was asked for round 2's messages after round 0 of 2$"
    ):
        general.outbox(2)
    general.outbox(1)
    with pytest.raises(
        ProtocolMisuse, match=r"^general 1 was asked for round 1's messages after round 1 of 2$"
    ):
        general.offers(1)
    general.offers(2)
    with pytest.raises(
        ProtocolMisuse, match=r"^general 1 was asked for round 3's messages after round 2 of 2$"
    ):
        general.outbox(3)
    assert general.round == 2


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_message_of_a_round_not_open_is_misuse_not_a_refusal(name: str) -> None:
    general = core(name)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a round-1 message while in round 0$"):
        general.receive(sender=0, round=1, payload=None)
    general.outbox(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was handed a round-2 message while in round 1$"):
        general.receive(sender=0, round=2, payload=None)


@pytest.mark.parametrize("name", ALGORITHMS)
def test_deciding_before_the_last_round_is_misuse(name: str) -> None:
    general = core(name)
    general.outbox(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 1 was asked to decide in round 1 of 2$"):
        general.decide()


@pytest.mark.parametrize("name", ALGORITHMS)
def test_composing_before_round_one_is_misuse(name: str) -> None:
    commander = core(name, me=0)
    with pytest.raises(ProtocolMisuse, match=r"^general 0 was asked to compose a message before round 1$"):
        commander.compose(Outgoing((0,), 1, "attack"), (0,), "attack")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_commander_run_through_every_round_decides_its_order(name: str) -> None:
    commander = core(name, me=0)
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
