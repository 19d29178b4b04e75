"""``om-actors compare``: one army under several algorithms, and army sizes swept.

What a user relies on: the rows (rounds, messages, bytes as the log has
them, signatures, verdicts, whether the theorem's bound holds), the notes
that say when a strategy fell back, the exit statuses, the computed rows
of a sweep, and the chart.  Phase King's own numbers are its tests'; here
the algorithms are OM(m), SM(m) and test-only ones, so these tests hold
whatever else is registered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result
from conftest import Echo
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import Scenario, load_scenario, simulate, simulate_sync
from om_actors.cli import main
from om_actors.compare import (
    DEFAULT_BUDGET,
    How,
    adapt,
    algorithms_named,
    compare,
    sweep,
    sweep_scenario,
    tolerated,
)
from om_actors.registry import REGISTRY, algorithm_named

SCENARIOS = Path(__file__).parent.parent / "scenarios"
SEVEN = SCENARIOS / "seven-generals.yaml"
OM, SM = algorithm_named("om"), algorithm_named("sm")


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, ["compare", *args])


class Picky(Echo):
    """Echo that refuses any army built for a traitor: an algorithm that cannot run some scenarios."""

    name = "picky"
    title = "PICKY(m)"

    def problems(self, generals: int, m: int) -> list[str]:
        return [f"must be 0: {self.name} runs no traitors"] if m else []


@pytest.fixture
def picky(monkeypatch: pytest.MonkeyPatch) -> Picky:
    algorithm = Picky()
    monkeypatch.setitem(REGISTRY, algorithm.name, algorithm)
    return algorithm


def message_line_bytes(log: Path) -> tuple[int, int]:
    """The message lines of a log: how many, and their bytes with line breaks."""
    lines = [
        line for line in log.read_bytes().splitlines(keepends=True) if line.startswith(b'{"event":"message",')
    ]
    return len(lines), sum(map(len, lines))


# --- one army, several algorithms --------------------------------------------------------


def test_seven_generals_table_has_a_row_per_algorithm_and_the_fallback_notes() -> None:
    result = cli(str(SEVEN), "--algorithms", "om,sm")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        'seven-generals: 7 generals, m = 2, commander 0 would order "retreat"; '
        "traitors: 0 (split lie_to=even), 5 (flip)"
    )
    rows = {line.split()[0]: line.split() for line in lines if line.strip().startswith(("OM(", "SM("))}
    assert rows["OM(2)"][:7] == ["OM(2)", "2", "3", "156", "13,389", "0", rows["OM(2)"][6]]
    assert rows["OM(2)"][7:] == ["success", "holds"]
    assert rows["SM(2)"][:4] == ["SM(2)", "2", "3", "56"]
    assert rows["SM(2)"][7:] == ["success", "holds"]
    assert (
        "note: SM(2): traitor 0's split lie_to=even has no meaning here (strategy 'split' takes no "
        "argument 'lie_to'): it plays SM(2)'s split instead"
    ) in lines
    assert any(line.startswith("note: SM(2): traitor 5's flip has no meaning here (") for line in lines)
    assert not any(line.startswith("note: OM(2)") for line in lines)  # OM plays the scenario as written
    assert result.stderr == ""


def test_seven_generals_json_measures_what_run_logs(tmp_path: Path) -> None:
    result = cli(str(SEVEN), "--algorithms", "om,sm", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["scenario"], data["generals"], data["budget_messages"]) == (
        "seven-generals",
        7,
        DEFAULT_BUDGET,
    )
    assert data["traitors"] == {"0": "split lie_to=even", "5": "flip"}
    om, sm = data["rows"]
    assert [om["algorithm"], om["title"], sm["algorithm"], sm["title"]] == ["om", "OM(2)", "sm", "SM(2)"]
    for row in (om, sm):
        assert (row["how"], row["rounds"], row["traitors"]) == ("run", 3, 2)
        assert (row["agreement"], row["validity"], row["success"], row["outcome"]) == (
            True,
            None,
            True,
            "success",
        )
        assert row["bound_holds"] is True
        assert row["seconds"] >= 0
    assert om["messages"] == 156
    assert om["signatures_verified"] == 0
    assert om["notes"] == []
    assert len(sm["notes"]) == 2

    # The bytes are those of the message lines `om-actors run --log` writes, the same run's.
    log = tmp_path / "om.jsonl"
    assert CliRunner().invoke(main, ["run", str(SEVEN), "--log", str(log)]).exit_code == 0
    assert message_line_bytes(log) == (om["messages"], om["bytes"])

    # SM's row is the run of the army with the fallbacks: its log and its signatures.
    adapted = adapt(load_scenario(SEVEN), SM).scenario
    assert adapted is not None
    assert {g: spec.strategy for g, spec in adapted.traitors.items()} == {0: "split", 5: "split"}
    sm_log = tmp_path / "sm.jsonl"
    direct = trio.run(lambda: simulate(adapted, log=sm_log))
    assert message_line_bytes(sm_log) == (sm["messages"], sm["bytes"])
    assert sm["signatures_verified"] == direct.stats["signatures_verified"] > 0


def test_a_row_whose_verdict_fails_is_data_and_says_it_is_allowed() -> None:
    result = cli("three-generals", "--algorithms", "om,sm", "--json")
    assert result.exit_code == 0
    om, sm = json.loads(result.stdout)["rows"]
    assert (om["outcome"], om["success"], om["bound_holds"]) == ("IC2 broken", False, False)
    assert (sm["outcome"], sm["bound_holds"]) == ("success", True)  # SM(1) holds with 3 generals

    table = cli("three-generals", "--algorithms", "om,sm")
    assert table.exit_code == 0
    assert "IC2 broken (allowed)  does not hold" in table.stdout
    assert (
        "OM(1): 3 generals are fewer than 3m + 1 = 4: OM(1) cannot guarantee agreement, "
        "and traitors can make loyal generals disagree"
    ) in table.stdout.splitlines()


def test_strategies_that_fit_are_kept_as_written() -> None:
    scenario = Scenario(generals=7, m=2, traitors={1: "split", 2: "silent", 3: "random"})
    for rules in (OM, SM):
        adapted = adapt(scenario, rules)
        assert adapted.notes == ()
        assert adapted.scenario is not None
        assert adapted.scenario.traitors == scenario.traitors
        assert adapted.scenario.algorithm == rules.name


def test_expect_is_dropped_and_the_rest_of_the_army_kept() -> None:
    scenario = load_scenario(SCENARIOS / "three-generals.yaml")
    assert scenario.expect is not None
    adapted = adapt(scenario, SM).scenario
    assert adapted is not None
    assert adapted.expect is None
    kept = ("generals", "m", "commander", "order", "values", "default", "seed", "name")
    assert [getattr(adapted, key) for key in kept] == [getattr(scenario, key) for key in kept]


def test_an_army_an_algorithm_cannot_run_is_a_refused_row(picky: Picky) -> None:
    result = cli(str(SEVEN), "--algorithms", "om,picky", "--json")
    assert result.exit_code == 0
    om, refused = json.loads(result.stdout)["rows"]
    assert om["how"] == "run"
    assert (refused["how"], refused["messages"], refused["success"], refused["outcome"]) == (
        "refused",
        None,
        None,
        "refused",
    )
    assert refused["notes"] == ["PICKY(2) cannot run this army: must be 0: picky runs no traitors"]


def test_the_default_list_is_every_registered_algorithm(monkeypatch: pytest.MonkeyPatch, echo: Echo) -> None:
    monkeypatch.setattr("om_actors.compare.REGISTRY", {"om": OM, "echo": echo})
    assert algorithms_named(None) == [OM, echo]
    result = cli(str(SEVEN), "--json")
    assert result.exit_code == 0
    assert [row["algorithm"] for row in json.loads(result.stdout)["rows"]] == ["om", "echo"]


def test_a_run_over_the_budget_is_computed() -> None:
    rows = trio.run(lambda: compare(load_scenario(SEVEN), [OM], budget=155))
    assert [(row.how, row.messages, row.verdict, row.bytes, row.seconds) for row in rows] == [
        (How.COMPUTED, 156, None, None, None)
    ]


# --- bad input: one line, exit 2 -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--algorithms", "om,nope"], "unknown algorithm 'nope': use one of"),
        (["--algorithms", " , "], "name one or more algorithms"),
        (["no-such-scenario"], "no-such-scenario"),
        (["--sweep", "m=1..3"], "only generals can be swept: write generals=4..100"),
        (["--sweep", "generals=9..4"], "is an empty or negative range"),
        (["--sweep", "generals=4..6", str(SEVEN)], "give a SCENARIO or --sweep, not both"),
        (["--plot", "chart.svg"], "--plot only matters with --sweep"),
        (["--traitors", "2"], "--traitors only matters with --sweep"),
        (["--sweep", "generals=4..6", "--traitors", "many"], "'many': use max or a number of traitors"),
        (["--sweep", "generals=4..6", "--plot", "chart.pdf"], "name an .svg or a .png file"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compare", *args], catch_exceptions=False)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_bad_input_under_json_is_one_json_object() -> None:
    result = cli("--algorithms", "nope", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"].startswith("unknown algorithm 'nope'")


# --- army sizes swept --------------------------------------------------------------------------


def test_tolerated_is_the_most_traitors_the_theorem_covers(echo: Echo) -> None:
    assert [tolerated(OM, n) for n in (3, 4, 6, 7, 10, 100)] == [0, 1, 1, 2, 3, 33]
    assert [tolerated(SM, n) for n in (3, 4, 100)] == [1, 2, 98]
    assert tolerated(echo, 9) == 0  # echo promises nothing with a traitor
    assert tolerated(OM, 1) is None


@settings(max_examples=25, deadline=None)
@given(generals=st.integers(2, 40), m=st.integers(0, 40))
def test_tolerated_is_the_largest_m_the_algorithm_promises(generals: int, m: int) -> None:
    for rules in (OM, SM):
        best = tolerated(rules, generals)
        promised = not rules.problems(generals, m) and not rules.theorem_allows_failure(generals, m, m)
        if promised:
            assert best is not None
            assert m <= best
        if best is not None:
            assert not rules.theorem_allows_failure(generals, best, best)


def test_sweep_army_has_a_loyal_commander_and_the_lowest_lieutenants_lying() -> None:
    scenario = sweep_scenario(SM, 6, 3, 3)
    assert (scenario.generals, scenario.m, scenario.commander, scenario.algorithm) == (6, 3, 0, "sm")
    assert {g: spec.strategy for g, spec in scenario.traitors.items()} == {1: "split", 2: "split", 3: "split"}


def test_sweep_runs_under_the_budget_and_computes_over_it() -> None:
    rows = trio.run(lambda: sweep(range(4, 11), [OM, SM], budget=1_000))
    assert [(row.generals, row.algorithm) for row in rows] == [
        (n, a) for n in range(4, 11) for a in ("om", "sm")
    ]
    om = {row.generals: row for row in rows if row.algorithm == "om"}
    assert {n: (row.m, row.how) for n, row in om.items()} == {
        4: (1, How.RUN),
        5: (1, How.RUN),
        6: (1, How.RUN),
        7: (2, How.RUN),
        8: (2, How.RUN),
        9: (2, How.RUN),
        10: (3, How.COMPUTED),  # OM(3) on 10 generals: 3,609 messages
    }
    assert om[10].messages == OM.messages_sent(10, 3) == 3_609
    assert (om[10].verdict, om[10].seconds, om[10].signatures) == (None, None, None)
    assert om[10].bound_holds
    for row in rows:
        assert row.bytes is None  # a sweep logs no message one by one
        if row.how is How.RUN:
            assert row.verdict is not None
            assert row.verdict.success
            assert row.traitors == row.m
            assert row.messages is not None
            assert row.messages <= 1_000
    assert all(row.how is How.RUN for row in rows if row.algorithm == "sm")
    assert [row.m for row in rows if row.algorithm == "sm"] == [n - 2 for n in range(4, 11)]


@settings(max_examples=15, deadline=None)
@given(generals=st.integers(4, 9), budget=st.integers(0, 500))
def test_a_sweep_row_is_computed_exactly_when_its_count_is_over_the_budget(
    generals: int, budget: int
) -> None:
    (row,) = trio.run(lambda: sweep(range(generals, generals + 1), [OM], budget=budget))
    count = OM.messages_sent(generals, row.m)
    assert (row.how is How.COMPUTED) == (count > budget)
    if row.how is How.RUN:
        assert row.messages == count  # split traitors send all that OM owes


def test_sweep_with_k_traitors_refuses_armies_that_cannot_hold_them() -> None:
    rows = trio.run(lambda: sweep(range(3, 6), [OM], traitors=2))
    assert [(row.generals, row.how) for row in rows] == [(3, How.REFUSED), (4, How.RUN), (5, How.RUN)]
    assert rows[0].notes[0].startswith("OM(2) cannot run this army: m: must be at most generals - 2 = 1")
    assert [row.bound_holds for row in rows] == [False, False, False]  # 2 traitors need 7 generals
    assert [row.traitors for row in rows] == [2, 2, 2]


def test_sweep_on_a_registered_algorithm_of_ones_own(echo: Echo) -> None:
    rows = trio.run(lambda: sweep(range(4, 6), [echo]))
    assert [(row.title, row.messages, row.how) for row in rows] == [
        ("ECHO(0)", 9, How.RUN),
        ("ECHO(0)", 16, How.RUN),
    ]


def test_sweep_json_marks_computed_rows() -> None:
    result = cli("--sweep", "generals=4..7", "--algorithms", "om", "--budget-messages", "100", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["sweep"] == {"generals": [4, 7], "traitors": "max"}
    assert data["budget_messages"] == 100
    assert [(row["generals"], row["how"], row["messages"]) for row in data["rows"]] == [
        (4, "run", 9),
        (5, "run", 16),
        (6, "run", 25),
        (7, "computed", 156),
    ]
    table = cli("--sweep", "generals=4..7", "--algorithms", "om", "--budget-messages", "100")
    assert table.exit_code == 0
    assert "computed: over the budget of 100 messages, so not run" in table.stdout


def test_sweep_on_worker_processes_gives_the_same_rows() -> None:
    one = trio.run(lambda: sweep(range(4, 8), [OM, SM], budget=100))
    two = trio.run(lambda: sweep(range(4, 8), [OM, SM], budget=100, jobs=2))
    strip = [(row.generals, row.algorithm, row.how, row.messages, row.verdict) for row in one]
    assert [(row.generals, row.algorithm, row.how, row.messages, row.verdict) for row in two] == strip


def test_sweep_rows_run_in_lockstep_give_what_the_actors_give(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep runs its per-message rows in lockstep; the actors, run on the same armies, agree with them."""
    import om_actors.compare

    through_actors: list[str] = []

    async def recorded(scenario: Scenario, **kwargs: object) -> object:
        through_actors.append(scenario.algorithm)
        return await simulate(scenario, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(om_actors.compare, "simulate", recorded)
    algorithms = [OM, SM, *(algorithm_named(name) for name in ("phase-king", "phase-king-3t"))]
    rows = trio.run(lambda: sweep(range(4, 11), algorithms, budget=5_000))
    assert set(through_actors) == {"om"}  # OM(m) runs batched, as before; the rest in lockstep
    ran = [row for row in rows if row.how is How.RUN]
    assert {row.algorithm for row in ran} == {"om", "sm", "phase-king", "phase-king-3t"}
    for row in ran:
        rules = algorithm_named(row.algorithm)
        scenario = sweep_scenario(rules, row.generals, row.m, row.traitors)
        actual = simulate_sync(scenario, mode="per-message")
        assert (row.rounds, row.messages, row.verdict) == (actual.rounds, actual.messages, actual.verdict)
        assert row.signatures == actual.stats.get("signatures_verified", 0)
        assert row.bytes is None
    assert any(row.signatures for row in ran if row.algorithm == "sm")


# --- the chart ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".svg", ".png"])
def test_plot_is_written(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")  # the test extra installs it; see test_plot_without_the_extra
    chart = tmp_path / f"scaling{suffix}"
    args = ["--sweep", "generals=4..12", "--algorithms", "om,sm", "--plot", str(chart), "--jobs", "1"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert f"chart written to {chart}" in result.stdout
    data = chart.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert b"<svg" in data[:1000]


def test_plot_labels_say_where_om_stops_being_run(tmp_path: Path) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    chart = tmp_path / "scaling.svg"
    args = ["--sweep", "generals=4..12", "--algorithms", "om,sm", "--budget-messages", "500"]
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text, to be read back
        result = cli(*args, "--plot", str(chart), "--jobs", "1")
    assert result.exit_code == 0
    text = chart.read_text()
    for label in ("OM(m), run", "OM(m), computed (not run)", "SM(m), run", "OM(m): run up to n = 9"):
        assert label in text
    assert "SM(m), computed" not in text  # SM runs at every size here


def test_plot_without_the_extra_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    chart = tmp_path / "scaling.svg"
    result = cli("--sweep", "generals=4..100", "--plot", str(chart))
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "--plot draws with matplotlib, which is not installed: pip install 'om_actors[plot]'"
    )
    assert result.stdout == ""  # refused before any row ran
    assert not chart.exists()
