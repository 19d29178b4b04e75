"""Phase King in both forms: the cores by hand, the theorem as a property, and every runtime and tool.

Rules for this file:
- the sans-IO part drives ``om_actors.phase_king`` through ``om_actors.driver``
  (the pipeline every runtime shares) or directly, with no trio;
- expected values are worked out by hand from the statements cited in
  docs/phase-king.md, not read back from the code under test;
- the runtime part goes through the library (``simulate``, ``replay_log``,
  ``explain``), the CLI and a cluster, each bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import attrs
import pytest
import trio
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from om_actors import Scenario, ScenarioError, TraitorSpec, load_scenario, simulate, simulate_sync
from om_actors.algorithm import DecisionPoint, Outgoing, Setup, Step
from om_actors.cli import main
from om_actors.cluster import run_cluster, running_nodes
from om_actors.driver import GeneralDriver, Send, answer_now
from om_actors.errors import ProtocolMisuse
from om_actors.events import MessageRejected
from om_actors.explain import explain, open_view, text_tree
from om_actors.lockstep import run_lockstep
from om_actors.phase_king import (
    GRADED_PHASE_KING,
    NOTHING,
    PHASE_KING,
    GradedGeneral,
    GradedRecord,
    KingGeneral,
    KingMessage,
    KingReason,
    PhaseKingAlgorithm,
    PhaseRecord,
)
from om_actors.registry import algorithm_named
from om_actors.replay import Inconsistency, replay_log, rerun_log
from om_actors.strategies import Strategy, build_strategy
from om_actors.verify import Case, check_case

ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "scenarios"
VALUES = ("attack", "retreat")
BOTH = [PHASE_KING, GRADED_PHASE_KING]
GRADED_BUILT_INS = GRADED_PHASE_KING.strategies()


def setup(generals: int, m: int, *, commander: int = 0, values: tuple[str, ...] = VALUES) -> Setup:
    return Setup(generals, m, commander, values, "retreat")


def strategy(
    rules: PhaseKingAlgorithm, name: str, values: tuple[str, ...] = VALUES, **args: object
) -> Strategy:
    return build_strategy(name, args, values=values, built_in=rules.strategies())


@attrs.frozen
class Run:
    """One instance in lockstep: decisions, every core, what was sent by round and what was refused."""

    decisions: dict[int, str]
    cores: list[KingGeneral | GradedGeneral]
    per_round: Counter[int]
    rejected: list[MessageRejected]

    @property
    def messages(self) -> int:
        return sum(self.per_round.values())


def run(
    rules: PhaseKingAlgorithm,
    setup: Setup,
    order: str = "attack",
    traitors: Mapping[int, Strategy] | None = None,
    *,
    shuffle: random.Random | None = None,
) -> Run:
    """Every general through its own :class:`GeneralDriver`, a round's messages delivered once all are sent.

    Delivered in sender order, or, with ``shuffle``, in an order it draws --
    as the trio runtime's scheduling may deliver them.
    """
    traitors = traitors or {}
    cores = [king_core(rules, setup, g, order) for g in range(setup.generals)]
    drivers = [
        GeneralDriver([core], strategy=traitors.get(core.me), seed=setup.seed, tagged=False) for core in cores
    ]
    per_round: Counter[int] = Counter()
    rejected = []
    for round in range(1, rules.rounds(setup.generals, setup.m) + 1):
        sent: list[tuple[int, Send]] = []
        for driver in drivers:
            for item in driver.round(round):
                answer = item if isinstance(item, Send) else answer_now(driver, item)
                if isinstance(answer, Send):
                    sent.append((driver.me, answer))
        if shuffle is not None:
            shuffle.shuffle(sent)
        per_round[round] += len(sent)
        for sender, message in sent:
            refused = drivers[message.receiver].deliver(0, sender, round, message.payload)
            if refused is not None:
                rejected.append(refused)
    decisions = {driver.me: driver.decide()[0] for driver in drivers}
    return Run(decisions, cores, per_round, rejected)


def king_core(rules: PhaseKingAlgorithm, setup: Setup, me: int, order: str) -> KingGeneral | GradedGeneral:
    core = rules.general(setup, me, order)
    assert isinstance(core, (KingGeneral, GradedGeneral))
    return core


def loyal_decisions(result: Run, traitors: Mapping[int, object], commander: int = 0) -> set[str]:
    return {v for g, v in result.decisions.items() if g not in traitors and g != commander}


# --- phase-king (n > 4t), worked by hand ---------------------------------------------------------


def test_a_loyal_army_keeps_the_order_in_every_phase() -> None:
    result = run(PHASE_KING, setup(5, 1))
    assert result.decisions == dict.fromkeys(range(5), "attack")
    # every general counts 5 "attack" (its own included): 5 > 5/2 + 1, so it keeps maj and ignores the king
    general_3 = result.cores[3]
    assert isinstance(general_3, KingGeneral)
    assert [(r.maj, r.mult, r.kept) for r in general_3.phases] == [("attack", 5, True)] * 2


def test_a_split_commander_is_outvoted_once_a_loyal_king_reigns() -> None:
    """Five generals, the commander (king of phase 1) two-faced; king 1 is loyal.

    Round 1: odd lieutenants get retreat, even ones attack.  Phase 1: general
    2 counts attack from 0 (split: the truth to evens), 4 and itself, retreat
    from 1 and 3: maj attack, mult 3, not > 5/2 + 1 = 3.5, so it takes king
    0's value -- attack for evens, retreat for odds.  Phase 2 counts the same,
    and loyal king 1 says its maj, retreat: everyone takes it.
    """
    traitors = {0: strategy(PHASE_KING, "split")}
    result = run(PHASE_KING, setup(5, 1), traitors=traitors)
    assert loyal_decisions(result, traitors) == {"retreat"}
    general_2 = result.cores[2]
    assert isinstance(general_2, KingGeneral)
    assert general_2.phases == [
        PhaseRecord(1, 0, "attack", "attack", 3, "attack", False, "attack"),
        PhaseRecord(2, 1, "attack", "attack", 3, "retreat", False, "retreat"),
    ]
    general_1 = result.cores[1]
    assert isinstance(general_1, KingGeneral)
    assert [(r.maj, r.mult, r.king_value) for r in general_1.phases] == [
        ("retreat", 3, "retreat"),  # king 0 lies to odd generals: the next value after attack
        ("retreat", 3, "retreat"),  # it is phase 2's king: its own maj
    ]


def test_a_tie_gives_the_default_and_a_silent_king_gives_the_default() -> None:
    """Five generals, 1 silent, and the order split by hand so the four heard tie two-two.

    Lieutenants 2 and 3 get attack, 4 gets retreat (scripted commander 0,
    which then tells the truth).  Phase 1: general 4 counts attack from 0, 2
    and 3, retreat from itself -- 3 to 1 -- but general 2 counts attack from
    0, 2, 3, retreat from 4: also 3 to 1.  Then in phase 2 king 1 is silent,
    so whoever does not keep maj takes the default.
    """
    commander = strategy(
        PHASE_KING, "scripted", messages=[{"round": 1, "path": [0], "receiver": 4, "value": "retreat"}]
    )
    traitors = {0: commander, 1: strategy(PHASE_KING, "silent")}
    result = run(PHASE_KING, setup(5, 1), traitors=traitors)
    general_4 = result.cores[4]
    assert isinstance(general_4, KingGeneral)
    # phase 1: attack x3 (0, 2, 3), retreat x1 (itself), 1 silent; mult 3 <= 3.5; king 0 says its maj attack
    assert general_4.phases[0] == PhaseRecord(1, 0, "retreat", "attack", 3, "attack", False, "attack")
    # phase 2: attack x4, silent king 1: mult 4 > 3.5 keeps attack without it
    assert general_4.phases[1] == PhaseRecord(2, 1, "attack", "attack", 4, None, True, "attack")

    two_two = {0: strategy(PHASE_KING, "split"), 1: strategy(PHASE_KING, "silent")}
    tied = run(PHASE_KING, setup(5, 1), traitors=two_two)
    general_2 = tied.cores[2]
    assert isinstance(general_2, KingGeneral)
    # round 1 (split): 2 and 4 attack, 3 retreat.  Phase 1 at 2: attack from 0, 4, itself; retreat from 3
    assert general_2.phases[0].mult == 3
    general_3 = tied.cores[3]
    assert isinstance(general_3, KingGeneral)
    # at 3: retreat from itself and from 0 (split lies to odd), attack from 2 and 4: a tie -> default retreat
    assert (general_3.phases[0].maj, general_3.phases[0].mult) == ("retreat", 2)
    # phase 2's king 1 is silent: nobody keeps (mult <= 3.5), so everyone takes the default
    assert [core.phases[1].king_value for core in tied.cores[2:]] == [None, None, None]
    assert loyal_decisions(tied, two_two) == {"retreat"}


def test_a_tie_for_the_most_frequent_value_gives_the_default_and_its_own_count() -> None:
    three = Setup(5, 1, 0, ("attack", "retreat", "hold"), "retreat")
    core = PHASE_KING.general(three, 3, "attack")
    core.outbox(1)  # no order arrives: its value is the default, retreat
    core.outbox(2)
    for sender, value in [(0, "attack"), (1, "hold"), (2, "attack"), (4, "hold")]:
        assert core.receive(sender=sender, round=2, payload=KingMessage("broadcast", 1, value)) is None
    core.outbox(3)
    assert isinstance(core, KingGeneral)
    # attack x2, hold x2, retreat x1 (its own): no single most frequent value, so maj is the default
    assert (core.maj, core.mult) == ("retreat", 1)


@pytest.mark.parametrize(("generals", "m"), [(2, 0), (5, 1), (9, 2), (13, 3), (17, 4), (8, 1)])
def test_the_count_is_n_minus_1_plus_t_plus_1_times_n_n_minus_1_plus_n_minus_1(generals: int, m: int) -> None:
    n = generals
    expected = (n - 1) + (m + 1) * (n * (n - 1) + (n - 1))
    result = run(PHASE_KING, setup(generals, m))
    assert result.messages == expected == PHASE_KING.messages_sent(generals, m)
    assert PHASE_KING.rounds(generals, m) == 1 + 2 * (m + 1) == len(result.per_round)
    # by round: the order, then each phase's broadcast and king round
    assert [result.per_round[r] for r in sorted(result.per_round)] == [n - 1] + [n * (n - 1), n - 1] * (m + 1)


@pytest.mark.parametrize(("generals", "m"), [(4, 1), (7, 2), (10, 3), (3, 0)])
def test_the_3t_count_has_two_all_to_all_rounds_a_phase(generals: int, m: int) -> None:
    n = generals
    expected = (n - 1) + (m + 1) * (2 * n * (n - 1) + (n - 1))
    result = run(GRADED_PHASE_KING, setup(generals, m))
    assert result.messages == expected == GRADED_PHASE_KING.messages_sent(generals, m)
    assert GRADED_PHASE_KING.rounds(generals, m) == 1 + 3 * (m + 1) == len(result.per_round)


def test_counts_are_answered_at_once_for_any_size() -> None:
    assert PHASE_KING.messages_sent(100, 24) == 250_074
    assert PHASE_KING.messages_sent(10**30, 10**20) > 10**80
    assert PHASE_KING.messages_sent(1, 0) == 0


# --- phase-king-3t (n > 3t), worked by hand ------------------------------------------------------


def test_graded_consensus_with_a_split_commander_king() -> None:
    """Four generals, t = 1: n - t = 3 makes a proposal and grade 2, t + 1 = 2 grade 1.

    Round 1 (split): 1 and 3 get retreat, 2 attack.  Phase 1, king 0 the
    traitor: 1 and 3 count retreat x3 and propose it; 2 counts two each and
    proposes nothing; 0 (attack, retreat, attack, retreat) is not entitled
    to propose and split keeps quiet.  Each sees 2 proposals of retreat:
    grade 1, so each takes king 0's word: split -- attack to 1 and 3,
    retreat to 2.  Phase 2 runs the same way to grade 1 for attack, and
    loyal king 1 says attack.
    """
    traitors = {0: strategy(GRADED_PHASE_KING, "split")}
    result = run(GRADED_PHASE_KING, setup(4, 1), traitors=traitors)
    assert loyal_decisions(result, traitors) == {"attack"}
    general_2 = result.cores[2]
    assert isinstance(general_2, GradedGeneral)
    assert general_2.phases == [
        GradedRecord(1, 0, "attack", 2, None, "retreat", 1, 2, "retreat", False, "retreat"),
        GradedRecord(2, 1, "retreat", 2, None, "attack", 1, 2, "attack", False, "attack"),
    ]
    # the propose rounds carry only 1's and 3's proposals: 2 x 3 messages
    assert [result.per_round[r] for r in range(1, 8)] == [3, 12, 6, 3, 12, 6, 3]


def test_a_traitor_may_propose_what_it_was_not_entitled_to() -> None:
    core = GRADED_PHASE_KING.general(setup(4, 1), 3, "attack")
    core.offers(1)
    core.receive(sender=0, round=1, payload=KingMessage("order", 0, "attack"))
    core.offers(2)
    core.receive(sender=0, round=2, payload=KingMessage("broadcast", 1, "retreat"))
    core.receive(sender=1, round=2, payload=KingMessage("broadcast", 1, "retreat"))
    core.receive(sender=2, round=2, payload=KingMessage("broadcast", 1, "attack"))
    # attack x2 (itself and 2), retreat x2 (0 and 1): no value has n - t = 3
    offers = core.offers(3)
    assert offers == [Outgoing((3,), g, "") for g in (0, 1, 2)]  # loyal value: nothing
    rng = random.Random(0)
    answers = {
        name: build_strategy(name, args, values=VALUES, built_in=GRADED_BUILT_INS).choose(
            3, (3,), 1, NOTHING, rng
        )
        for name, args in [
            ("loyal", {}),
            ("flip", {}),
            ("split", {}),
            ("silent", {}),
            ("constant", {"value": "retreat"}),
        ]
    }
    assert answers == {"loyal": None, "flip": None, "split": None, "silent": None, "constant": "retreat"}
    # a due proposal is a message like any other
    assert strategy(GRADED_PHASE_KING, "flip").choose(3, (3,), 1, "attack", rng) == "retreat"


def test_a_fabricated_proposal_counts_and_gives_a_grade() -> None:
    """n = 4, t = 1: one traitor's proposal is not t + 1 = 2, but with one loyal proposal it is."""
    core = GRADED_PHASE_KING.general(setup(4, 1), 1, "attack")
    core.outbox(1)
    core.receive(sender=0, round=1, payload=KingMessage("order", 0, "attack"))
    core.outbox(2)
    for sender in (0, 2):
        core.receive(sender=sender, round=2, payload=KingMessage("broadcast", 1, "attack"))
    assert core.outbox(3) == [Outgoing((1,), g, "attack") for g in (0, 2, 3)]  # attack x3 = n - t
    core.receive(sender=3, round=3, payload=KingMessage("propose", 1, "attack"))
    core.outbox(4)
    assert isinstance(core, GradedGeneral)
    assert (core.graded, core.grade, core.backing) == ("attack", 1, 2)

    lone = GRADED_PHASE_KING.general(setup(4, 1), 2, "attack")
    lone.outbox(1)
    lone.outbox(2)  # no order arrives: its value is retreat, and it sees no n - t of anything
    lone.outbox(3)
    lone.receive(sender=3, round=3, payload=KingMessage("propose", 1, "attack"))
    lone.outbox(4)
    assert isinstance(lone, GradedGeneral)
    # one proposal is t, not t + 1: grade 0, and it keeps its own value
    assert (lone.graded, lone.grade, lone.backing) == ("retreat", 0, 0)


def test_scripted_speaks_on_undue_proposals_only_where_its_script_does() -> None:
    scripted = strategy(
        GRADED_PHASE_KING,
        "scripted",
        messages=[
            {"round": 3, "path": [1], "receiver": 2, "value": "retreat"},
            {"round": 2, "path": [1], "receiver": 2, "silent": True},
        ],
    )
    rng = random.Random(0)
    assert scripted.choose(3, (1,), 2, NOTHING, rng) == "retreat"  # a proposal it was not entitled to
    assert scripted.choose(3, (1,), 2, "attack", rng) == "retreat"  # or one it was: the same message
    assert scripted.choose(3, (1,), 3, NOTHING, rng) is None  # loyal: proposes nothing undue
    assert scripted.choose(3, (1,), 3, "attack", rng) == "attack"
    assert scripted.choose(6, (1,), 2, NOTHING, rng) is None  # the entry is round 3's
    assert scripted.choose(2, (1,), 2, "attack", rng) is None
    assert scripted.choose(5, (1,), 2, "attack", rng) == "attack"


# --- what a general refuses ----------------------------------------------------------------------


def opened(
    rules: PhaseKingAlgorithm, me: int, round: int, generals: int = 5, m: int = 1
) -> KingGeneral | GradedGeneral:
    core = king_core(rules, setup(generals, m), me, "attack")
    for r in range(1, round + 1):
        core.outbox(r)
    return core


@pytest.mark.parametrize(
    ("round", "sender", "payload", "reason"),
    [
        (1, 0, "attack", KingReason.MALFORMED_MESSAGE),
        (1, 0, ("order", 0, "attack"), KingReason.MALFORMED_MESSAGE),
        (1, 0, KingMessage("broadcast", 0, "attack"), KingReason.WRONG_ROUND),
        (1, 0, KingMessage("order", 1, "attack"), KingReason.WRONG_ROUND),
        (1, 0, KingMessage("order", False, "attack"), KingReason.WRONG_ROUND),  # a bool is not a phase
        (1, 2, KingMessage("order", 0, "attack"), KingReason.NOT_COMMANDER),
        (2, 2, KingMessage("broadcast", 2, "attack"), KingReason.WRONG_ROUND),  # phase 2's, in phase 1
        (2, 2, KingMessage("king", 1, "attack"), KingReason.WRONG_ROUND),
        (3, 2, KingMessage("king", 1, "attack"), KingReason.NOT_KING),  # phase 1's king is general 0
        (5, 0, KingMessage("king", 2, "attack"), KingReason.NOT_KING),  # phase 2's king is general 1
        (2, 2, KingMessage("broadcast", 1, "charge"), KingReason.OUTSIDE_DOMAIN),
        (2, 2, KingMessage("broadcast", 1, ["attack"]), KingReason.OUTSIDE_DOMAIN),
    ],
)
def test_rejection_reasons(round: int, sender: int, payload: object, reason: KingReason) -> None:
    core = opened(PHASE_KING, 3, round)
    assert core.receive(sender=sender, round=round, payload=payload) is reason
    assert core.heard == {}  # a refused message leaves no trace


def test_a_second_message_from_one_general_in_a_round_is_refused_and_the_first_kept() -> None:
    core = opened(PHASE_KING, 3, 2)
    assert core.receive(sender=2, round=2, payload=KingMessage("broadcast", 1, "retreat")) is None
    assert (
        core.receive(sender=2, round=2, payload=KingMessage("broadcast", 1, "attack")) is KingReason.DUPLICATE
    )
    assert core.heard == {2: "retreat"}


def test_the_3t_form_refuses_a_proposal_in_a_broadcast_round_and_takes_one_in_its_own() -> None:
    core = opened(GRADED_PHASE_KING, 3, 2, generals=4)
    assert (
        core.receive(sender=1, round=2, payload=KingMessage("propose", 1, "attack")) is KingReason.WRONG_ROUND
    )
    core.outbox(3)
    assert core.receive(sender=1, round=3, payload=KingMessage("propose", 1, "attack")) is None
    assert core.receive(sender=2, round=3, payload=KingMessage("king", 1, "attack")) is KingReason.WRONG_ROUND


def test_out_of_turn_calls_are_protocol_misuse() -> None:
    core = PHASE_KING.general(setup(5, 1), 2, "attack")
    with pytest.raises(ProtocolMisuse, match=r"^general 2 was handed a round-1 message while in round 0$"):
        core.receive(sender=0, round=1, payload=KingMessage("order", 0, "attack"))
    core.outbox(1)
    with pytest.raises(ProtocolMisuse, match=r"^general 2 was asked to decide in round 1 of 5$"):
        core.decide()


def test_a_misbehaving_peer_is_refused_with_its_reason_through_the_driver() -> None:
    driver = GeneralDriver(
        [PHASE_KING.general(setup(5, 1), 1, "attack")], strategy=None, seed=0, tagged=False
    )
    list(driver.round(1))
    list(driver.round(2))
    list(driver.round(3))
    refused = driver.deliver(0, 4, 3, KingMessage("king", 1, "retreat"))
    assert refused == MessageRejected(3, 4, 1, KingMessage("king", 1, "retreat"), KingReason.NOT_KING)
    assert str(refused.reason) == "only this phase's king sends a king message"


# --- the theorem, as a property -------------------------------------------------------------------

BUILT_INS = ["loyal", "flip", "split", "split-even", "constant", "silent", "random", "table"]


@st.composite
def armies(draw: st.DrawFn, rules: PhaseKingAlgorithm) -> tuple[Setup, str, dict[int, Strategy]]:
    """An army within ``rules``' bound, at most ``t`` traitors, each with any strategy, any values."""
    m = draw(st.integers(0, 2))
    generals = draw(st.integers(rules.factor * m + 1, rules.factor * m + 3).filter(lambda n: n >= 2))
    values = ("attack", "retreat", "hold", "feint")[: draw(st.integers(2, 4))]
    commander = draw(st.integers(0, generals - 1))
    army = Setup(generals, m, commander, values, values[-1], seed=draw(st.integers(0, 99)))
    order = draw(st.sampled_from(values))
    ids = draw(st.lists(st.integers(0, generals - 1), unique=True, max_size=m))
    traitors = {}
    for traitor in ids:
        name = draw(st.sampled_from(BUILT_INS))
        if name == "table":  # any adversary at all: a value or silence on every message it may send
            points = list(rules.decision_points(army, traitor))
            choices = draw(
                st.lists(st.sampled_from([*values, None]), min_size=len(points), max_size=len(points))
            )
            messages = [
                {"round": p.round, "path": list(p.path), "receiver": p.receiver}
                | ({"value": choice} if choice is not None else {"silent": True})
                for p, choice in zip(points, choices)
            ]
            traitors[traitor] = strategy(rules, "scripted", values, messages=messages)
        elif name == "constant":
            traitors[traitor] = strategy(rules, name, values, value=draw(st.sampled_from(values)))
        elif name == "split-even":
            traitors[traitor] = strategy(rules, "split", values, lie_to="even")
        else:
            traitors[traitor] = strategy(rules, name, values)
    return army, order, traitors


@pytest.mark.parametrize("rules", BOTH, ids=lambda r: r.name)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_at_most_t_traitors_within_the_bound_cannot_break_ic1_or_ic2(
    rules: PhaseKingAlgorithm, data: st.DataObject
) -> None:
    army, order, traitors = data.draw(armies(rules))
    outcome = run_lockstep(rules, army, order, traitors)
    assert outcome.verdict.agreement, outcome.decisions
    assert outcome.verdict.validity is not False, outcome.decisions


@pytest.mark.parametrize("rules", BOTH, ids=lambda r: r.name)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32))
def test_the_order_a_rounds_messages_arrive_in_changes_nothing(
    rules: PhaseKingAlgorithm, data: st.DataObject, seed: int
) -> None:
    army, order, traitors = data.draw(armies(rules))
    in_order = run(rules, army, order, traitors)
    shuffled = run(rules, army, order, traitors, shuffle=random.Random(seed))
    assert shuffled.decisions == in_order.decisions
    assert [core.phases for core in shuffled.cores] == [core.phases for core in in_order.cores]


def test_more_traitors_than_t_can_break_agreement() -> None:
    """Five generals built for t = 1 with two traitor kings: the loyal ones never get a loyal king.

    Kings 0 and 1 split their king values; loyal 2, 3, 4 start split two to
    one and never reach mult > 3.5, so each follows the kings' two faces.
    """
    traitors = {0: strategy(PHASE_KING, "split"), 1: strategy(PHASE_KING, "split")}
    result = run(PHASE_KING, setup(5, 1), traitors=traitors)
    assert loyal_decisions(result, traitors) == {"attack", "retreat"}
    assert PHASE_KING.warnings(5, 1, 2) == [
        "2 traitors are more than m = 1: PhaseKing(1) is only built to survive 1"
    ]


# --- the algorithm as a whole ----------------------------------------------------------------------


def test_bounds_problems_and_warnings() -> None:
    assert PHASE_KING.problems(5, 1) == [] == GRADED_PHASE_KING.problems(3, 2)
    assert PHASE_KING.problems(3, 3) == [
        "must be at most generals - 1 = 2: the t + 1 kings are generals 0 to t"
    ]
    assert PHASE_KING.warnings(5, 1, 1) == []
    assert PHASE_KING.warnings(4, 1, 1) == [
        "4 generals are not more than 4m = 4: PhaseKing(1) promises nothing unless n > 4t"
    ]
    assert GRADED_PHASE_KING.warnings(4, 1, 1) == []
    assert GRADED_PHASE_KING.warnings(3, 1, 0) == [
        "3 generals are not more than 3m = 3: PhaseKing3t(1) promises nothing unless n > 3t"
    ]
    assert PHASE_KING.theorem_allows_failure(4, 1, 1)
    assert not GRADED_PHASE_KING.theorem_allows_failure(7, 2, 2)


def test_a_scenario_past_the_bound_runs_with_a_warning_and_one_that_cannot_run_is_refused() -> None:
    past = Scenario(algorithm="phase-king", generals=4, m=1, traitors={1: "split"})
    assert past.warnings == [
        "4 generals are not more than 4m = 4: PhaseKing(1) promises nothing unless n > 4t"
    ]
    with pytest.raises(ScenarioError, match="m: must be at most generals - 1 = 2: the t \\+ 1 kings"):
        Scenario(algorithm="phase-king", generals=3, m=3)
    with pytest.raises(ScenarioError, match="strategy 'late' is SM\\(m\\)'s, not PhaseKing\\(m\\)'s"):
        Scenario(algorithm="phase-king", generals=5, m=1, traitors={1: "late"})


def test_most_messages_bounds_every_offer_a_traitor_gets() -> None:
    for rules in BOTH:
        army = setup(7, 2)
        for traitor in range(7):
            core = rules.general(army, traitor, "attack")
            for round in range(1, core.rounds + 1):
                offered = Counter(out.receiver for out in core.offers(round))
                for receiver in range(7):
                    assert offered[receiver] <= rules.most_messages(army, traitor, receiver, round)
        assert (
            rules.most_messages(army, 3, 1, 3 if rules is PHASE_KING else 4) == 0
        )  # 3 is no king of phase 1
        assert rules.most_messages(army, 0, 0, 2) == 0
        assert rules.most_messages(army, 0, 1, 99) == 0


def test_decision_points_are_round_by_round_and_scripts_are_checked_against_them() -> None:
    army = setup(5, 1)
    points = list(PHASE_KING.decision_points(army, 1))
    # not the commander: two broadcasts to 4 others, and phase 2's king round (it is its king)
    assert [p.round for p in points] == [2] * 4 + [4] * 4 + [5] * 4
    assert {p.path for p in points} == {(1,)}
    graded = list(GRADED_PHASE_KING.decision_points(army, 3))
    assert Counter(p.round for p in graded) == {2: 4, 3: 4, 5: 4, 6: 4}  # broadcasts and proposals
    assert PHASE_KING.script_problem(army, 3, DecisionPoint(3, (3,), 1)) == (
        "round 3 is phase 1's king round: only general 0, its king, sends"
    )
    assert PHASE_KING.script_problem(army, 3, DecisionPoint(1, (3,), 1)) == (
        "round 1 carries the order: general 3 is not the commander (0)"
    )
    assert PHASE_KING.script_problem(army, 3, DecisionPoint(2, (0, 3), 1)) == (
        "path must be [3]: PhaseKing(1) messages carry no path, only their sender"
    )
    assert GRADED_PHASE_KING.script_problem(army, 3, DecisionPoint(3, (), 1)) == (
        "path must be [3]: PhaseKing3t(1) messages carry no path, only their sender"
    )
    assert PHASE_KING.script_problem(army, 3, DecisionPoint(2, (3,), 3)) == (
        "receiver 3 is the traitor itself, and nobody sends itself a message"
    )
    for rules in BOTH:
        for traitor in range(5):
            for point in rules.decision_points(army, traitor):
                assert rules.script_problem(army, traitor, point) is None


def test_a_script_naming_a_round_the_traitor_does_not_speak_in_is_refused_in_a_scenario() -> None:
    with pytest.raises(ScenarioError, match="only general 0, its king, sends"):
        Scenario(
            algorithm="phase-king",
            generals=5,
            m=1,
            traitors={
                3: TraitorSpec(
                    "scripted", {"messages": [{"round": 3, "path": [3], "receiver": 1, "value": "attack"}]}
                )
            },
        )


def test_explain_draws_a_row_per_phase_with_maj_mult_and_the_king_followed() -> None:
    traitors = {0: strategy(PHASE_KING, "split")}
    result = run(PHASE_KING, setup(5, 1), traitors=traitors)
    step = PHASE_KING.explain(result.cores[2])
    assert (step.label, step.value) == ("general 2", "retreat")
    assert [(row.label, row.value, row.detail) for row in step.children] == [
        ("round 1: the order", "attack", ""),
        (
            "phase 1 (king 0)",
            "attack",
            "value attack | maj attack | mult 3 | mult <= n/2 + t = 3.5: followed king 0",
        ),
        (
            "phase 2 (king 1)",
            "retreat",
            "value attack | maj attack | mult 3 | mult <= n/2 + t = 3.5: followed king 1",
        ),
    ]
    # each row holds the king's message, tied to it by round and sender, so explain can show who said it
    assert [row.children for row in step.children] == [
        (),
        (Step("king 0's word", "attack", round=3, sender=0),),
        (Step("king 1's word", "retreat", round=5, sender=1),),
    ]
    assert step.children[0] == Step("round 1: the order", "attack", round=1, sender=0)
    king = PHASE_KING.explain(result.cores[1])
    assert king.children[2].detail.endswith("the king itself: takes its own maj")
    assert king.children[2].children == ()  # its own word: no message
    assert PHASE_KING.explain(result.cores[2], depth=0).hidden == 5  # three rows, two kings' words
    assert [row.hidden for row in PHASE_KING.explain(result.cores[2], depth=1).children] == [0, 1, 1]
    with pytest.raises(ValueError, match="PhaseKing\\(1\\) messages carry no path"):
        PHASE_KING.explain(result.cores[2], path=(0,))


def test_explain_of_the_3t_form_shows_support_proposal_and_grade() -> None:
    traitors = {0: strategy(GRADED_PHASE_KING, "split")}
    result = run(GRADED_PHASE_KING, setup(4, 1), traitors=traitors)
    rows = GRADED_PHASE_KING.explain(result.cores[2]).children
    assert rows[1].detail == (
        "value attack | support 2 (n - t = 3) | proposed nothing | grade 1 for retreat (2 proposals) "
        "| followed king 0"
    )
    assert rows[2].value == "attack"


# --- the library, the log and the tools --------------------------------------------------------------


async def test_simulate_runs_a_shipped_king_scenario_and_logs_kind_and_phase(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "nine-generals-king.yaml")
    log = tmp_path / "nine.jsonl"
    with trio.fail_after(30):
        result = await simulate(scenario, log=log)
    assert result.verdict.agreement
    assert result.unmet_expectations() == []
    assert result.messages == 8 + 3 * (9 * 8 + 8)
    assert result.messages_per_round == (8, 72, 8, 72, 8, 72, 8)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    messages = [line for line in lines if line["event"] == "message"]
    assert {(m["round"], m["kind"], m["phase"]) for m in messages} == {
        (1, "order", 0),
        (2, "broadcast", 1),
        (3, "king", 1),
        (4, "broadcast", 2),
        (5, "king", 2),
        (6, "broadcast", 3),
        (7, "king", 3),
    }
    assert all("path" not in m for m in messages)
    assert {m["sender"] for m in messages if m["kind"] == "king"} == {0, 1, 2}


def test_replay_and_rerun_check_a_king_log_and_catch_a_tampered_kind(tmp_path: Path) -> None:
    scenario = Scenario(algorithm="phase-king-3t", generals=4, m=1, traitors={0: "split"}, order="attack")
    log = tmp_path / "k.jsonl"
    simulate_sync(scenario, log=log)
    report = replay_log(log)
    assert report.ok
    assert report.messages == 45
    assert rerun_log(log) == (len(log.read_text().splitlines()), None)  # every event compared, none differs

    lines = log.read_text().splitlines()

    def tampered(sender: int) -> tuple[int, list[Inconsistency]]:
        """The log with ``sender``'s first broadcast relabelled as a king message, and what replay finds."""
        index = next(
            i
            for i, line in enumerate(lines)
            if '"kind":"broadcast"' in line and f'"sender":{sender},' in line
        )
        changed = [*lines]
        changed[index] = lines[index].replace('"kind":"broadcast"', '"kind":"king"')
        path = tmp_path / f"tampered-{sender}.jsonl"
        path.write_text("\n".join(changed) + "\n")
        return index + 1, list(replay_log(path).inconsistencies)

    line, found = tampered(1)  # a loyal general: it never sends that
    assert [(f.line, f.message) for f in found][:1] == [
        (
            line,
            'loyal general 1 sent a message to 0 in round 2 with kind "king", '
            'but the message it owed has "broadcast"',
        )
    ]
    line, found = tampered(0)  # the traitor may send anything, but its receiver must refuse this
    assert found[0].line == line
    assert found[0].message.endswith("the protocol says rejected for kind or phase does not match the round")


def test_explain_reads_a_king_log(tmp_path: Path) -> None:
    log = tmp_path / "nine.jsonl"
    simulate_sync(load_scenario(SCENARIOS / "nine-generals-king.yaml"), log=log)
    step = explain(open_view(log, 3))
    assert [row.label for row in step.children] == [
        "round 1: the order",
        "phase 1 (king 0)",
        "phase 2 (king 1)",
        "phase 3 (king 2)",
    ]
    assert all(" | maj " in row.detail and " | mult " in row.detail for row in step.children[1:])
    tree = io.StringIO()
    Console(file=tree, width=200).print(text_tree(open_view(log, 3), step))
    # what the log says each king sent general 3, and which kings are traitors
    assert """king 0's word "retreat" (from traitor 0)\n""" in tree.getvalue()
    assert """king 2's word "retreat"\n""" in tree.getvalue()  # a loyal king: no mark


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_the_cli_runs_replays_and_explains_a_king_scenario(tmp_path: Path) -> None:
    log = tmp_path / "nine.jsonl"
    code, out = invoke("run", str(SCENARIOS / "nine-generals-king.yaml"), "--log", str(log))
    assert code == 0
    assert out.splitlines()[0] == (
        'nine-generals-king: PhaseKing(2) on 9 generals (7 rounds), commander 0 would order "attack"'
    )
    assert "Messages: 248 sent (8, 72, 8, 72, 8, 72, 8 by round), 0 rejected" in out
    code, out = invoke("run", str(SCENARIOS / "nine-generals-king.yaml"), "--json")
    assert code == 0
    assert json.loads(out)["algorithm"] == "phase-king"
    code, out = invoke("replay", str(log), "--rerun")
    assert code == 0
    assert "replay OK: 248 messages" in out
    code, out = invoke("explain", str(log), "-g", "5")
    assert code == 0
    assert "phase 3 (king 2)" in out
    assert "followed king" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("algorithm: phase-king\ngenerals: 3\nm: 3\n", "m: must be at most generals - 1 = 2"),
        ("algorithm: phase-king\ngenerals: 5\nm: 1\ntraitors: {1: late}\n", "strategy 'late' is SM(m)'s"),
        ("algorithm: phase-king-4t\ngenerals: 5\nm: 1\n", "unknown algorithm 'phase-king-4t'"),
    ],
)
def test_bad_king_input_is_one_clear_line_and_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out = invoke("run", str(path))
    assert code == 2
    assert expected in out
    assert "Traceback" not in out


def test_verify_finds_a_replayable_violation_just_past_the_bound(tmp_path: Path) -> None:
    """n = 4, t = 1 is 4t, not more: one traitor king that lies to one general in its phase is enough."""
    case = Case(generals=4, m=1, traitors=(1,), order="attack", algorithm="phase-king")
    report = check_case(case, "exhaustive", budget=100_000)
    assert report.violation is not None
    assert report.case.theorem_allows_failure
    path = tmp_path / "violation.yaml"
    from ruamel.yaml import YAML

    YAML().dump(report.violation.scenario, path)
    result = simulate_sync(load_scenario(path))
    assert result.verdict.agreement is False


@pytest.mark.parametrize(
    ("algorithm", "generals", "per_round"),
    [("phase-king", 5, (4, 20, 4, 20, 4)), ("phase-king-3t", 4, (3, 12, 6, 3, 12, 6, 3))],
)
async def test_a_cluster_writes_the_same_king_log_as_the_in_memory_run(
    tmp_path: Path, algorithm: str, generals: int, per_round: tuple[int, ...]
) -> None:
    scenario = Scenario(algorithm=algorithm, generals=generals, m=1, traitors={0: "split"}, order="attack")
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario, log=memory))
    assert outcome.result.decisions == expected.decisions
    assert outcome.result.messages_per_round == expected.messages_per_round == per_round
    assert log.read_bytes() == memory.getvalue()
    assert running_nodes() == 0


def test_a_module_class_strategy_lies_as_it_likes_and_receivers_refuse_what_is_not_a_value(
    tmp_path: Path,
) -> None:
    (tmp_path / "kinglies.py").write_text(
        "class Garbage:\n"
        "    def choose(self, round, path, receiver, value, rng):\n"
        "        return 'charge' if round % 2 == 0 else value\n"
    )
    (tmp_path / "scenario.yaml").write_text(
        "algorithm: phase-king\ngenerals: 5\nm: 1\norder: attack\ntraitors: {3: 'kinglies:Garbage'}\n"
    )
    log = tmp_path / "run.jsonl"
    result = simulate_sync(load_scenario(tmp_path / "scenario.yaml"), log=log)
    # general 3 broadcasts "charge" in rounds 2 and 4, to 4 generals each: all refused, the order still holds
    assert result.rejected == 8
    assert set(result.decisions.values()) == {"attack"}
    refused = [json.loads(line) for line in log.read_text().splitlines() if '"message.rejected"' in line]
    assert {(line["round"], line["sender"], line["reason"]) for line in refused} == {
        (2, 3, "value outside the domain"),
        (4, 3, "value outside the domain"),
    }


def test_the_shipped_king_scenarios_load_and_the_hundred_is_sized_by_the_formula() -> None:
    nine = load_scenario(SCENARIOS / "nine-generals-king.yaml")
    hundred = load_scenario(SCENARIOS / "hundred-generals-king.yaml")
    assert (nine.algorithm, nine.generals, nine.m, len(nine.traitors)) == ("phase-king", 9, 2, 2)
    assert (hundred.algorithm, hundred.generals, hundred.m, len(hundred.traitors)) == (
        "phase-king",
        100,
        24,
        24,
    )
    assert hundred.warnings == []
    assert algorithm_named("phase-king").messages_sent(100, 24) == 250_074
