"""om-actors verify: the theorem checked case by case, and counterexamples that replay.

Rules for this file:
- the cases the issue names are checked with the numbers worked out by hand:
  n = 4, m = 1 has 2 + 108 adversaries (27 for a traitor commander, 9 for a
  traitor lieutenant, per order); for SM(m) the decision points are the
  commander's n - 1 round-1 messages, and for a lieutenant every chain
  ending with it of at most m + 1 signers, to every general not on it;
- every violation file is run through ``load_scenario`` and the actors, as
  ``om-actors run`` would;
- the same code verifies both algorithms: OM and SM are checked on the same
  cases, and must differ exactly where their theorems do.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import trio
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import load_scenario, simulate_sync
from om_actors.algorithm import Algorithm, DecisionPoint, Setup
from om_actors.cli import main
from om_actors.limits import MAX_CHECKED_MESSAGES
from om_actors.oral import ORAL_MESSAGES
from om_actors.registry import REGISTRY
from om_actors.signed import SIGNED_MESSAGES
from om_actors.verify import (
    DEFAULT_BUDGET,
    Adversary,
    Case,
    Counts,
    Tally,
    _count_cases,
    cases,
    check_case,
    exhaustive_plan,
    exhaustive_size,
    run_plan,
    write_violation,
)


def _tally(
    generals: list[int],
    ms: list[int],
    adversary: Adversary,
    counts: list[int] | None = None,
    algorithm: str = "om",
) -> Tally:
    tally = Tally(algorithm)
    for case in cases(generals, ms, lambda m: counts if counts is not None else range(m + 1), algorithm):
        tally.add(check_case(case, adversary, DEFAULT_BUDGET[adversary]))
    return tally


def test_four_generals_survive_every_exhaustive_adversary() -> None:
    tally = _tally([4], [1], "exhaustive")
    rows = tally.sorted_rows()
    assert [(r.traitors, r.cases, r.adversaries) for r in rows] == [(0, 2, 2), (1, 8, 2 * 27 + 6 * 9)]
    assert tally.violations == []
    assert tally.mismatches == []


def test_three_generals_fail_and_the_counterexample_replays(tmp_path: Path) -> None:
    tally = _tally([3], [1], "exhaustive")
    assert len(tally.violations) == 2
    assert tally.contradictions == []
    for violation in tally.violations:
        path = write_violation(violation, tmp_path, "exhaustive")
        assert path.read_text().startswith(
            "# Found by om-actors verify --adversary exhaustive: validity broken"
        )
        result = simulate_sync(load_scenario(path))
        assert result.validity is False
        assert result.unmet_expectations() == []
    traitors = load_scenario(tmp_path / "exhaustive-n3-m1-traitors-1-attack.yaml").traitors
    assert traitors[1].strategy == "scripted"
    assert traitors[1].args == {"messages": [{"path": [0, 1], "receiver": 2, "value": "retreat"}]}


def test_seven_generals_survive_every_canonical_pair_of_traitors() -> None:
    tally = _tally([7], [2], "canonical", counts=[2])
    (row,) = tally.sorted_rows()
    assert (row.cases, row.adversaries, row.violating_cases) == (42, 42 * 5**2, 0)


def test_search_breaks_six_generals_with_two_traitors() -> None:
    report = check_case(Case(6, 2, (3, 4), "attack"), "search", DEFAULT_BUDGET["search"])
    assert report.adversaries == DEFAULT_BUDGET["search"]
    assert report.violation is not None
    assert report.mismatch is None
    shrunk = report.violation.scenario
    assert set(shrunk["traitors"]) <= {3, 4}
    assert simulate_sync(load_scenario(json.dumps(shrunk) + "\n")).unmet_expectations() == []


def test_shrinking_keeps_only_needed_traitors_and_messages() -> None:
    report = check_case(Case(4, 1, (0, 1), "attack"), "canonical", 1000)
    assert report.violation is not None
    scenario = report.violation.scenario
    assert len(scenario["traitors"]) == 2  # one traitor cannot break OM(1) on four generals
    with_fewer = dict(scenario, traitors=dict(list(scenario["traitors"].items())[:1]))
    assert simulate_sync(load_scenario(json.dumps(with_fewer) + "\n")).success


def test_a_case_over_budget_is_skipped_never_sampled() -> None:
    report = check_case(Case(7, 2, (3,), "attack"), "exhaustive", 1000)
    assert (report.adversaries, report.over_budget, report.violation) == (0, 1, None)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_exhaustive_adversaries_never_break_four_generals(data: st.DataObject) -> None:
    traitor = data.draw(st.sampled_from([(), (0,), (1,), (2,), (3,)]))
    case = Case(4, 1, traitor, data.draw(st.sampled_from(["attack", "retreat"])))
    index = data.draw(st.integers(0, exhaustive_size(case) - 1))
    assert run_plan(case, exhaustive_plan(case, index)).verdict.success


def _verify(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["verify", "--jobs", "1", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_table_exit_status_and_files(tmp_path: Path) -> None:
    status, out, _ = _verify(
        "--generals", "3..4", "--m", "1", "--adversary", "exhaustive", "--out-dir", str(tmp_path)
    )
    assert status == 0
    lines = out.splitlines()
    assert lines[1].split() == [
        "n", "m", "traitors", "cases", "adversaries", "IC1", "broken", "IC2", "broken", "skipped", "theorem",
        "result",
    ]  # fmt: skip
    rows = [line.split() for line in lines[3:7]]
    assert rows[1] == ["3", "1", "1", "6", "30", "0", "4", "0", "may", "fail", "2", "fail,", "allowed"]
    assert rows[3] == ["4", "1", "1", "8", "108", "0", "0", "0", "must", "hold", "none", "fail"]
    assert "Every violation found is one the theorem allows." in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "exhaustive-n3-m1-traitors-1-attack.yaml",
        "exhaustive-n3-m1-traitors-2-attack.yaml",
    ]


def test_cli_json_summary(tmp_path: Path) -> None:
    status, out, _ = _verify(
        "--generals", "4", "--m", "1", "--adversary", "exhaustive", "--json", "--out-dir", str(tmp_path)
    )
    assert status == 0
    summary = json.loads(out)
    assert (summary["cases"], summary["adversaries"], summary["contradictions"]) == (10, 110, 0)
    assert summary["violations"] == []


def test_a_violation_the_theorem_forbids_exits_1(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ORAL_MESSAGES, "theorem_allows_failure", lambda generals, m, traitors: False)
    status, out, _ = _verify(
        "--generals", "3", "--m", "1", "--adversary", "exhaustive", "--out-dir", str(tmp_path)
    )
    assert status == 1
    assert "CONTRADICTION" in out
    assert "2 violation(s) contradict the theorem" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--generals", "x..7"], "'x..7' is not a range"),
        (["--traitors", "most"], "'most': use upto-m, exactly:K or upto:K"),
        (
            ["--generals", "2", "--m", "3"],
            "no army in these ranges can run OM(m): for 2 generals, m = 3 must be at most generals - 2 = 0",
        ),
        (["--generals", "2..3", "--m", "2", "--algorithm", "sm"], "can run SM(m): for 3 generals, m = 2"),
        (["--adversary", "lucky"], "'lucky' is not one of"),
        (["--algorithm", "pbft"], "'pbft' is not one of " + ", ".join(map(repr, sorted(REGISTRY)))),
        (["--generals", "3", "--traitors", "exactly:4"], "no army in these ranges has room for so many"),
    ],
)
def test_cli_bad_arguments_exit_2(args: list[str], message: str) -> None:
    status, _, err = _verify(*args)
    assert status == 2
    assert message in err


def test_cli_runs_cases_on_two_worker_processes(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["verify", "--generals", "3..4", "--m", "1", "--jobs", "2", "--json", "--out-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["jobs"], summary["cases"], summary["mismatches"]) == (2, 18, [])
    assert sorted(Path(file).name for file in summary["violations"]) == [
        "canonical-n3-m1-traitors-1-attack.yaml",  # three generals fail, as the theorem allows
        "canonical-n3-m1-traitors-2-attack.yaml",
    ]


def test_violations_shrunk_to_the_same_traitors_get_files_of_their_own(tmp_path: Path) -> None:
    status, out, _ = _verify(
        "--generals", "5", "--m", "1", "--traitors", "exactly:3", "--json", "--out-dir", str(tmp_path)
    )
    assert status == 0
    files = json.loads(out)["violations"]
    assert len(files) == 16
    assert sorted(files) == sorted(str(path) for path in tmp_path.iterdir())  # none overwrote another
    shrunk = tmp_path / "canonical-n5-m1-traitors-2-3-attack-shrunk-from-1-2-3.yaml"
    assert str(shrunk) in files
    scenario = load_scenario(shrunk)
    assert (scenario.name, sorted(scenario.traitors)) == (
        "n5-m1-traitors-2-3-attack-shrunk-from-1-2-3",
        [2, 3],
    )
    assert simulate_sync(scenario).unmet_expectations() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--generals", "40", "--m", "12"],
            "40 generals with m = 12 send 52,521,079,662,488,028,579 messages, over the limit of 200,000,000",
        ),
        (["--generals", "3..1000000000000000000000000000000", "--m", "1"], "over the limit of 200,000,000"),
        (
            ["--generals", "60", "--m", "3", "--traitors", "exactly:30"],
            "these ranges hold more than 1,000,000 cases: narrow --generals, --m or --traitors",
        ),
    ],
)
def test_ranges_too_large_are_refused_before_any_case_is_made(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OM_ACTORS_MAX_MESSAGES", raising=False)
    monkeypatch.setattr("om_actors.verify.cases", _no_cases)
    status, out, err = _verify(*args)
    assert (status, out) == (2, "")
    assert message in err
    assert len(err.splitlines()) == 1
    json_status, json_out, _ = _verify(*args, "--json")
    assert json_status == 2
    assert message in json.loads(json_out)["error"]


def _no_cases(*args: object) -> None:
    raise AssertionError("cases were made for ranges that should have been refused")


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 9),
    st.integers(0, 4),
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(["upto-m", "exactly", "upto"]),
    st.integers(0, 6),
)
def test_counting_cases_agrees_with_making_them(
    low: int, width: int, m_low: int, m_width: int, kind: str, k: int
) -> None:
    generals, ms = range(low, low + width + 1), range(m_low, m_low + m_width + 1)
    counts: Counts = {
        "upto-m": lambda m: range(m + 1),
        "exactly": lambda m: [k],
        "upto": lambda m: range(k + 1),
    }[kind]
    made = len(list(cases(generals, ms, counts)))
    assert _count_cases(generals, ms, counts, cap=10**9) == made
    if made:
        assert _count_cases(generals, ms, counts, cap=made - 1) > made - 1


def _interrupted_after_one_case(
    all_cases: list[Case], adversary: Adversary, *, tally: Tally, **_: object
) -> Coroutine[Any, Any, None]:
    """``verify`` as Ctrl-C leaves it: one case folded into the tally, then KeyboardInterrupt."""

    async def cut_short() -> None:
        # check_case starts trio runs of its own, so it runs on a thread, as verify runs it
        tally.add(
            await trio.to_thread.run_sync(check_case, all_cases[0], adversary, DEFAULT_BUDGET[adversary])
        )
        raise KeyboardInterrupt

    return cut_short()


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_an_interrupted_verify_says_so_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    monkeypatch.setattr("om_actors.verify.verify", _interrupted_after_one_case)
    args = ["--generals", "4..5", "--m", "1", "--out-dir", str(tmp_path)]
    status, out, err = _verify(*args, *(["--json"] if as_json else []))
    assert status == 130
    assert err == "interrupted: 1 of 22 cases checked\n"
    if as_json:
        summary = json.loads(out)
        assert (summary["interrupted"], summary["cases"], summary["cases_planned"]) == (True, 1, 22)
    else:
        assert "1 cases, 1 adversaries (canonical, OM(m))" in out
        assert out.splitlines()[-1] == "No violation found in the cases checked."


def test_a_verify_that_ran_to_the_end_says_it_was_not_interrupted(tmp_path: Path) -> None:
    status, out, _ = _verify("--generals", "4", "--m", "1", "--json", "--out-dir", str(tmp_path))
    assert status == 0
    assert json.loads(out)["interrupted"] is False


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_an_out_dir_that_is_not_a_folder_is_refused_before_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("om_actors.verify.cases", _no_cases)
    status, out, err = _verify("--generals", "3", "--m", "1", "--out-dir", "/dev/full")
    assert (status, out) == (2, "")
    assert err.endswith("Error: Invalid value for '--out-dir': /dev/full is not a folder\n")
    status, out, _ = _verify("--generals", "3", "--m", "1", "--out-dir", "/dev/full", "--json")
    assert status == 2
    assert json.loads(out)["error"] == "Invalid value for '--out-dir': /dev/full is not a folder"


def test_violations_that_cannot_be_written_name_the_folder_and_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    out_dir = tmp_path / "a-file" / "violations"
    status, out, err = _verify("--generals", "3", "--m", "1", "--out-dir", str(out_dir))
    assert (status, out) == (2, "")
    assert err == f"error: cannot write the violations into --out-dir {out_dir}: Not a directory\n"


# --- SM(m): the same verify, another algorithm ------------------------------------


def test_signed_three_generals_survive_every_adversary_that_breaks_oral_three_generals() -> None:
    oral = _tally([3], [1], "exhaustive")
    signed = _tally([3], [1], "exhaustive", algorithm="sm")
    # a traitor commander has 2 decision points (3**2 adversaries), a traitor lieutenant 1 (3)
    assert [(r.traitors, r.cases, r.adversaries) for r in signed.sorted_rows()] == [
        (0, 2, 2),
        (1, 6, 2 * 9 + 4 * 3),
    ]
    assert (signed.violations, signed.mismatches) == ([], [])
    assert len(oral.violations) == 2
    assert oral.contradictions == []  # OM(1) makes no promise for three generals


def test_signed_four_generals_survive_every_adversary_of_a_traitor_commander_and_lieutenant() -> None:
    case = Case(4, 2, (0, 1), "attack", "sm")
    report = check_case(case, "exhaustive", DEFAULT_BUDGET["exhaustive"])
    # the commander: 3 round-1 messages; lieutenant 1: (0, 1) to 2 and 3, (0, 2, 1) to 3, (0, 3, 1) to 2
    assert exhaustive_size(case) == 3 ** (3 + 4)
    assert (report.adversaries, report.agreement_broken, report.over_budget) == (3**7, 0, 0)
    assert (report.violation, report.mismatch) == (None, None)


@pytest.mark.parametrize(
    "case", [Case(4, 1, (1,), "attack"), Case(4, 2, (0, 1), "attack", "sm"), Case(5, 2, (), "retreat", "sm")]
)
def test_a_capped_size_is_exact_up_to_the_cap_and_past_it_beyond(case: Case) -> None:
    size = exhaustive_size(case)
    for cap in range(size + 2):
        capped = exhaustive_size(case, cap=cap)
        assert capped == size if cap >= size else capped > cap, cap


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """SM's decision points as drawn, one by one, failing once more are drawn than any check may need."""
    points: list[object] = []
    listing = SIGNED_MESSAGES.decision_points

    def counted(setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        for point in listing(setup, traitor):
            points.append(point)
            assert len(points) <= 2 * MAX_CHECKED_MESSAGES, "decision points listed past every bound"
            yield point

    monkeypatch.setattr(SIGNED_MESSAGES, "decision_points", counted)
    return points


def test_a_case_with_billions_of_decision_points_is_skipped_having_counted_a_few(drawn: list[object]) -> None:
    case = Case(16, 10, (3,), "attack", "sm")  # every chain of up to 10 generals ending with 3: billions
    report = check_case(case, "exhaustive", DEFAULT_BUDGET["exhaustive"])
    assert (report.adversaries, report.over_budget, report.violation) == (0, 1, None)
    assert len(drawn) == 11  # 3**11 > 100,000: no need to count further
    drawn.clear()
    report = check_case(case, "search", DEFAULT_BUDGET["search"])
    assert (report.adversaries, report.over_budget, report.violation) == (0, 1, None)
    assert len(drawn) == 7 + MAX_CHECKED_MESSAGES + 1  # 3**7 > 2,000, and more than search lists: skipped
    drawn.clear()
    report = check_case(case, "canonical", DEFAULT_BUDGET["canonical"])
    assert (report.adversaries, report.over_budget, report.mismatch) == (3, 0, None)
    assert drawn == []  # a canonical adversary's scenario names its strategies: no point is needed


def test_cli_skips_signed_cases_too_large_for_the_budget_at_once(drawn: list[object]) -> None:
    args = ["--algorithm", "sm", "--generals", "16", "--m", "10", "--traitors", "exactly:1", "--json"]
    status, out, _ = _verify(*args, "--adversary", "exhaustive")
    assert status == 0
    summary = json.loads(out)
    (row,) = summary["rows"]
    assert (row["cases"], row["over_budget"], summary["adversaries"]) == (32, 32, 0)
    assert len(drawn) == 32 * 11


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_exhaustive_adversaries_never_break_signed_four_generals_of_two_traitors(data: st.DataObject) -> None:
    traitors = data.draw(st.sampled_from([(0, 1), (0, 3), (1, 2), (1, 3), (2, 3)]))
    case = Case(4, 2, traitors, data.draw(st.sampled_from(["attack", "retreat"])), "sm")
    index = data.draw(st.integers(0, exhaustive_size(case) - 1))
    assert run_plan(case, exhaustive_plan(case, index)).verdict.success


def test_signed_with_more_traitors_than_m_fails_and_the_counterexamples_replay(tmp_path: Path) -> None:
    tally = _tally([4], [1], "exhaustive", counts=[2], algorithm="sm")
    (row,) = tally.sorted_rows()
    # 3 sets with the commander (3**5 adversaries each), 3 without (3**4), both orders
    assert (row.cases, row.adversaries) == (12, 2 * (3 * 3**5 + 3 * 3**4))
    assert (tally.contradictions, tally.mismatches) == ([], [])
    # without the commander the order itself reaches every loyal lieutenant, and nothing can forge another
    found = sorted(v.case.traitors for v in tally.violations)
    assert found == [(0, 1), (0, 1), (0, 2), (0, 2), (0, 3), (0, 3)]
    for violation in tally.violations:
        assert (violation.agreement, violation.validity) == (False, None)
        assert len(violation.scenario["traitors"]) == 2  # one traitor is within m: SM(1) survives it
        path = write_violation(violation, tmp_path, "exhaustive")
        assert path.read_text().startswith(
            "# Found by om-actors verify --algorithm sm --adversary exhaustive: agreement broken"
        )
        scenario = load_scenario(path)
        assert (scenario.algorithm, scenario.traitors[0].strategy) == ("sm", "scripted")
        result = simulate_sync(scenario)
        assert result.agreement is False
        assert result.unmet_expectations() == []
    run = CliRunner().invoke(main, ["run", str(tmp_path / "exhaustive-sm-n4-m1-traitors-0-1-attack.yaml")])
    assert run.exit_code == 0, run.stderr
    assert "agreement" in run.stdout


def test_search_breaks_signed_five_generals_with_three_traitors() -> None:
    case = Case(5, 1, (0, 1, 2), "attack", "sm")
    assert exhaustive_size(case) == 3 ** (4 + 3 + 3) > 300  # so search searches, not enumerates
    report = check_case(case, "search", 300)
    assert report.adversaries == 300
    assert report.violation is not None
    assert report.mismatch is None
    shrunk = report.violation.scenario
    assert shrunk["algorithm"] == "sm"
    assert set(shrunk["traitors"]) <= {0, 1, 2}
    assert simulate_sync(load_scenario(json.dumps(shrunk) + "\n")).unmet_expectations() == []


def test_signed_canonical_adversaries_never_break_the_theorem() -> None:
    tally = _tally([3, 4, 5], [1], "canonical", algorithm="sm")
    assert (tally.violations, tally.mismatches) == ([], [])
    # split, late and silent for each traitor
    assert [(r.generals, r.traitors, r.adversaries) for r in tally.sorted_rows()] == [
        (3, 0, 2), (3, 1, 6 * 3), (4, 0, 2), (4, 1, 8 * 3), (5, 0, 2), (5, 1, 10 * 3)
    ]  # fmt: skip


def test_cli_signed_exhaustive_three_generals_finds_no_violation_where_oral_finds_two(tmp_path: Path) -> None:
    args = ["--generals", "3", "--m", "1", "--adversary", "exhaustive"]
    status, out, _ = _verify(*args, "--algorithm", "sm", "--out-dir", str(tmp_path / "sm"))
    assert status == 0
    rows = [line.split() for line in out.splitlines()[3:5]]
    assert rows[1] == ["3", "1", "1", "6", "30", "0", "0", "0", "must", "hold", "none", "fail"]
    assert "No violation found." in out
    assert not (tmp_path / "sm").exists()
    status, out, _ = _verify(*args, "--algorithm", "om", "--out-dir", str(tmp_path / "om"))
    assert status == 0
    assert "2 violation(s) written as scenarios" in out
    assert "Every violation found is one the theorem allows." in out


def test_cli_signed_json_rows_name_the_algorithm(tmp_path: Path) -> None:
    status, out, _ = _verify(
        "--algorithm", "sm", "--generals", "4", "--m", "1", "--traitors", "exactly:2", "--adversary",
        "exhaustive", "--json", "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert status == 0
    summary = json.loads(out)
    assert summary["algorithm"] == "sm"
    (row,) = summary["rows"]
    assert (row["algorithm"], row["theorem_allows_failure"], row["violating_cases"]) == ("sm", True, 6)
    assert summary["contradictions"] == 0
    assert len(summary["violations"]) == 6


def test_signed_ranges_are_sized_by_signed_message_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OM_ACTORS_MAX_MESSAGES", raising=False)
    monkeypatch.setattr("om_actors.verify.cases", _no_cases)
    # OM(12) with forty generals is refused for its messages; SM(12), polynomial, is refused for its cases
    status, _, err = _verify("--algorithm", "sm", "--generals", "40", "--m", "12")
    assert status == 2
    assert err.endswith("these ranges hold more than 1,000,000 cases: narrow --generals, --m or --traitors\n")


def test_a_tally_takes_the_cases_of_its_own_algorithm_only() -> None:
    report = check_case(Case(3, 1, (), "attack", "sm"), "canonical", 10)
    with pytest.raises(ValueError, match="a case of 'sm' in a tally of 'om'"):
        Tally().add(report)


# --- an algorithm whose messages carry no path: scripts name their rounds ------------


def _any_algorithm_verify(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Let ``verify --algorithm`` take ``name``: its choices are fixed when the CLI is imported."""
    option = next(p for p in main.commands["verify"].params if p.name == "algorithm")
    assert isinstance(option.type, click.Choice)
    monkeypatch.setattr(option.type, "choices", [*option.type.choices, name])


def test_a_pathless_algorithms_counterexamples_name_their_rounds_and_replay(
    gossip: Algorithm, tmp_path: Path
) -> None:
    """Gossip's commander sends along ``(0,)`` in rounds 1, 2 and 3: each entry says which round it is."""
    tally = _tally([3], [1], "exhaustive", algorithm="gossip")
    rows = tally.sorted_rows()
    # a traitor commander: 2 + 2 + 2 decision points; a lieutenant: 2 + 2; three options each, both orders
    assert [(r.traitors, r.cases, r.adversaries) for r in rows] == [(0, 2, 2), (1, 6, 2 * (3**6 + 2 * 3**4))]
    assert (tally.contradictions, tally.mismatches) == ([], [])
    assert tally.violations
    for violation in tally.violations:
        path = write_violation(violation, tmp_path, "exhaustive")
        assert path.read_text().startswith(
            "# Found by om-actors verify --algorithm gossip --adversary exhaustive"
        )
        (script,) = violation.scenario["traitors"].values()
        assert script["strategy"] == "scripted"
        assert all("round" in entry for entry in script["messages"])
        assert len({entry["round"] for entry in script["messages"]}) > 1  # one path, several rounds
        run = CliRunner().invoke(main, ["run", str(path)])
        assert run.exit_code == 0, run.stderr
        assert "As this scenario expects." in run.stdout
        result = simulate_sync(load_scenario(path))
        assert result.agreement is False
        assert result.unmet_expectations() == []


def test_search_breaks_a_pathless_algorithm_and_its_scenario_replays(gossip: Algorithm) -> None:
    case = Case(4, 1, (0,), "attack", "gossip")
    assert exhaustive_size(case) == 3 ** (3 + 3 + 3) > 300  # so search searches, not enumerates
    report = check_case(case, "search", 300)
    assert report.adversaries == 300
    assert (report.violation is not None, report.mismatch) == (True, None)
    assert report.violation is not None
    shrunk = report.violation.scenario
    assert {entry["round"] for entry in shrunk["traitors"][0]["messages"]} <= {1, 2, 3}
    assert simulate_sync(load_scenario(json.dumps(shrunk) + "\n")).unmet_expectations() == []


def test_cli_verify_runs_a_pathless_algorithm(
    gossip: Algorithm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _any_algorithm_verify(monkeypatch, "gossip")
    args = ["--algorithm", "gossip", "--generals", "3", "--m", "1", "--out-dir", str(tmp_path)]
    status, out, err = _verify(*args, "--adversary", "exhaustive")
    assert status == 0, err
    assert "2 violation(s) written as scenarios" in out
    assert "Every violation found is one the theorem allows." in out
    for path in sorted(tmp_path.iterdir()):
        run = CliRunner().invoke(main, ["run", str(path)])
        assert run.exit_code == 0, run.stderr
        assert "As this scenario expects." in run.stdout
    status, out, err = _verify(*args, "--generals", "4", "--adversary", "search", "--budget", "300")
    assert status == 0, err
    assert "violation(s) written as scenarios" in out


def test_om_and_sm_counterexamples_name_no_round() -> None:
    """In OM(m) and SM(m) a path is sent in the round its length says: their files stay as they were."""
    for algorithm in ("om", "sm"):
        for violation in _tally([3, 4], [1], "exhaustive", counts=[2], algorithm=algorithm).violations:
            for spec in violation.scenario["traitors"].values():
                if isinstance(spec, dict):
                    assert all("round" not in entry for entry in spec["messages"])


def test_violations_are_listed_in_the_order_of_their_cases_whichever_finished_first() -> None:
    """Workers finish in any order; the tally, and so the report and the files, do not show it."""
    all_cases = list(cases(range(3, 5), range(1, 2), lambda m: range(m + 1)))
    reports = [check_case(case, "canonical", DEFAULT_BUDGET["canonical"]) for case in all_cases]
    in_order, reversed_order = Tally(), Tally()
    for report in reports:
        in_order.add(report)
    for report in reversed(reports):
        reversed_order.add(report)
    found = [report.violation for report in reports if report.violation is not None]
    assert len(found) > 1
    assert in_order.violations == reversed_order.violations == found
