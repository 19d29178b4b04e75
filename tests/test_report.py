"""The human report of a run, rendered as a person reads it.

Rules for this file:
- results come from real runs; a network's losses (``undelivered``,
  ``crashed``) are set on them with ``attrs.evolve``, as a cluster run sets them;
- the report is rendered by rich to plain text and checked line by line.
"""

from __future__ import annotations

import attrs
from rich.console import Console

from om_actors import Result, Scenario, simulate_sync
from om_actors.algorithm import Verdict
from om_actors.report import pace, report
from om_actors.result import InstanceOutcome

FOUR = Scenario(name="four", generals=4, m=1, order="attack")


def _render(result: Result) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    report(console, result)
    return console.export_text().splitlines()


def test_a_run_that_kept_the_assumptions_has_no_warning() -> None:
    lines = _render(simulate_sync(FOUR))
    assert not any("WARNING" in line for line in lines)
    assert lines[-1] == 'SUCCESS: all loyal generals agreed on "attack"'


def test_undelivered_messages_are_a_warning_that_the_theorem_does_not_apply() -> None:
    result = attrs.evolve(simulate_sync(FOUR), undelivered=1234)
    assert _render(result)[-4:] == [
        "Messages: 9 sent (3, 6 by round), 0 rejected",
        "WARNING: 1,234 messages from loyal generals were sent but never delivered: "
        "the synchrony assumption (A3) broke, and each counted as the default",
        "WARNING: the theorem's assumptions did not hold, so this verdict is not the theorem's",
        'SUCCESS: all loyal generals agreed on "attack"',
    ]


def _without(result: Result, crashed: int) -> Result:
    """``result`` as a cluster reports it when ``crashed``'s node died: its decision lost, not judged."""
    first = result.instances[0]
    decisions = {g: v for g, v in first.decisions.items() if g != crashed}
    outcome = InstanceOutcome(first.index, first.commander, first.order, decisions, Verdict(True, True))
    return attrs.evolve(result, instances=(outcome,), crashed=(crashed,))


def test_a_crashed_general_is_named_and_its_decision_is_lost() -> None:
    lines = _render(_without(simulate_sync(FOUR), crashed=2))
    assert "General 2 crashed: its decision is lost" in lines
    assert (
        "WARNING: general 2 crashed: what it owed from then on was never sent, and its decision is lost"
        in lines
    )
    assert "WARNING: the theorem's assumptions did not hold, so this verdict is not the theorem's" in lines


def test_a_crashed_commander_is_named_too() -> None:
    lines = _render(_without(simulate_sync(FOUR), crashed=0))
    assert lines[1:3] == ["Traitors: none", "General 0 (commander) crashed: its decision is lost"]


def test_several_crashed_generals_are_named_together() -> None:
    result = attrs.evolve(_without(simulate_sync(FOUR), crashed=1), crashed=(1, 2))
    assert (
        "WARNING: generals 1, 2 crashed: what they owed from then on was never sent, "
        "and their decisions are lost"
    ) in _render(result)


def test_json_carries_the_same_counts() -> None:
    data = _without(attrs.evolve(simulate_sync(FOUR), undelivered=3), crashed=2).to_dict()
    assert (data["undelivered"], data["crashed"]) == (3, [2])


def test_a_slow_search_says_seconds_a_case_rather_than_nought_cases_a_second() -> None:
    assert pace(216, 1.98) == "109.1 cases/s"
    assert pace(58, 4436.12) == "76.5 s a case"
    assert pace(0, 0.0) == "0.0 cases/s"


def test_a_run_whose_loyal_lieutenants_all_crashed_has_no_verdict_and_fails_its_expectation() -> None:
    """Every node lost at once (the cluster's forking process killed): agreement of nobody is no success."""
    ran = simulate_sync(FOUR)
    first = ran.instances[0]
    nobody = Verdict(True, True, decided=False)
    lost = InstanceOutcome(first.index, first.commander, first.order, {0: "attack"}, nobody)
    result = attrs.evolve(ran, instances=(lost,), crashed=(1, 2, 3))
    assert _render(result)[-1] == "NO VERDICT: every loyal lieutenant crashed, so no loyal general decided"
    assert result.undecided() == [0]
    assert result.unmet_expectations() == ["no loyal lieutenant decided: generals 1, 2, 3 crashed"]
    assert (result.agreement, result.validity, result.success) == (True, True, False)
    data = result.to_dict()
    assert (data["success"], data["undecided"], data["expected"]) == (False, [0], False)
    assert data["instances"][0]["success"] is False
    one_left = attrs.evolve(_without(ran, crashed=2), crashed=(2, 3))
    assert (one_left.undecided(), one_left.unmet_expectations()) == ([], [])
