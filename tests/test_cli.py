"""``om-actors run`` as a user types it.

Rules for this file:
- go through click's ``CliRunner`` with stdout and stderr kept apart, so that
  ``--json`` is checked to leave stdout pure;
- assert the lines a user reads and the exit status a script reads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result
from conftest import masked, signatures

from om_actors import replay_log
from om_actors.cli import main
from om_actors.limits import LIMIT_VARIABLE
from om_actors.scenario import load_scenario

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["run", *args])


def test_no_scenario_runs_the_seven_generals() -> None:
    result = run()
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        'seven-generals: OM(2) on 7 generals (3 rounds), commander 0 would order "retreat"',
        "Traitors: 0 (split lie_to=even), 5 (flip)",
        "General 0 (commander) is a traitor",
        "General 1 decided attack",
        "General 2 decided attack",
        "General 3 decided attack",
        "General 4 decided attack",
        "General 5 is a traitor",
        "General 6 decided attack",
        "Messages: 156 sent (6, 30, 120 by round), 0 rejected",
        'SUCCESS: all loyal generals agreed on "attack"',
        "As this scenario expects.",
    ]
    assert result.stderr == ""


def test_json_prints_one_object_and_nothing_else() -> None:
    result = run(str(SCENARIOS / "four-generals-traitor-lieutenant.yaml"), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["decisions"] == {"0": "attack", "1": "attack", "2": "attack"}
    assert (data["agreement"], data["validity"], data["success"]) == (True, True, True)
    assert (data["messages"], data["rounds"], data["traitors"]) == (9, 2, [3])
    assert data["received"] == {"0": 0, "1": 3, "2": 3, "3": 3}


def test_a_failure_the_scenario_expects_exits_0_and_says_so() -> None:
    result = run(str(SCENARIOS / "three-generals.yaml"))
    assert result.exit_code == 0
    assert (
        'FAILURE: validity (IC2) broken: the loyal commander ordered "attack" but general 1 decided "retreat"'
        in (result.stdout)
    )
    assert "As this scenario expects." in result.stdout
    assert result.stderr.startswith("warning: 3 generals are fewer than 3m + 1 = 4")


def test_an_unexpected_outcome_exits_1(tmp_path: Path) -> None:
    scenario = tmp_path / "hopeful.yaml"
    scenario.write_text("generals: 3\nm: 1\ntraitors: {2: flip}\n")
    result = run(str(scenario))
    assert result.exit_code == 1
    assert "FAILURE: validity (IC2) broken" in result.stdout
    assert "UNEXPECTED" not in result.stdout  # nothing was expected beyond success
    json_result = run(str(scenario), "--json")
    assert json_result.exit_code == 1
    assert json.loads(json_result.stdout)["unmet_expectations"] == ["expected success"]


def test_agreement_failures_name_the_camps() -> None:
    result = run(str(SCENARIOS / "too-many-traitors.yaml"))
    assert result.exit_code == 0
    assert (
        'FAILURE: agreement (IC1) broken: loyal generals disagree: general 3 decided "attack"; '
        'general 2 decided "retreat"'
    ) in result.stdout.splitlines()


def test_an_unmet_expectation_is_named(tmp_path: Path) -> None:
    scenario = tmp_path / "wishful.yaml"
    scenario.write_text("generals: 4\nm: 1\ntraitors: {3: flip}\nexpect: {decision: retreat}\n")
    result = run(str(scenario))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        "UNEXPECTED: expected every loyal lieutenant to decide 'retreat'; generals 1, 2 did not"
    )


def test_bad_scenarios_exit_2_with_located_errors_and_no_traceback(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("generals: seven\nm: 1\nsurprise: true\n")
    result = run(str(scenario))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{scenario}:1:11: generals: expected an integer, got 'seven'",
        f"{scenario}:3:1: surprise: unknown key 'surprise'",
    ]


def test_bad_scenarios_under_json_are_one_json_object_with_every_problem(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("generals: seven\nm: 1\nsurprise: true\n")
    result = run(str(scenario), "--json")
    assert (result.exit_code, result.stderr) == (2, "")
    error = json.loads(result.stdout)
    assert error["error"] == (
        f"{scenario}:1:11: generals: expected an integer, got 'seven'\n"
        f"{scenario}:3:1: surprise: unknown key 'surprise'"
    )
    assert error["source"] == str(scenario)
    assert error["problems"] == [
        {"line": 1, "column": 11, "message": "generals: expected an integer, got 'seven'"},
        {"line": 3, "column": 1, "message": "surprise: unknown key 'surprise'"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml"], "missing.yaml: no such file, nor a shipped scenario of that name"),
        (["--frobnicate"], "No such option"),
    ],
)
def test_unusable_arguments_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_log_exits_2(tmp_path: Path) -> None:
    result = run("--log", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert result.exit_code == 2
    assert "No such file or directory" in result.stderr


def test_quiet_prints_nothing_and_log_writes_the_file(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    result = run(str(SCENARIOS / "three-generals.yaml"), "--quiet", "--log", str(log))
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    lines = log.read_text().splitlines()
    assert json.loads(lines[0])["event"] == "run.start"
    assert json.loads(lines[-1])["event"] == "verdict"


GOLDEN = Path(__file__).parent / "golden" / "seven-generals.jsonl"
ROOT = Path(__file__).parent.parent


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_replay_of_a_fresh_log_is_ok(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    assert run("--log", str(log), "--quiet").exit_code == 0
    result = invoke("replay", str(log), "--rerun")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "replay OK: 156 messages, decisions and verdict match",
        "rerun OK: all 168 events match the log",
    ]


def test_replay_names_the_first_mismatch_and_exits_1(tmp_path: Path) -> None:
    log = tmp_path / "edited.jsonl"
    lines = GOLDEN.read_text().splitlines()
    relay = json.loads(lines[8])
    assert (relay["receiver"], relay["path"], relay["value"]) == (2, [0, 1], "retreat")
    lines[8] = json.dumps({**relay, "value": "attack"})
    log.write_text("\n".join(lines) + "\n")
    result = invoke("replay", str(log), "--rerun")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        'replay MISMATCH: line 9: loyal general 1 relayed "attack" along [0, 1] to 2, '
        'but it received "retreat" for [0] (line 2)'
    )
    assert lines[1] == "(4 more inconsistencies after it)"
    assert lines[2] == "rerun DIFFERS at line 9:"


def test_replay_counts_one_more_inconsistency_in_the_singular(tmp_path: Path) -> None:
    """Two decisions edited: the second is "1 more inconsistency", not "1 more inconsistencies"."""
    lines = GOLDEN.read_text().splitlines()
    for number in (161, 162):  # generals 1 and 2 decided "attack"
        decision = json.loads(lines[number])
        assert (decision["event"], decision["value"]) == ("decision", "attack")
        lines[number] = json.dumps({**decision, "value": "retreat"})
    log = tmp_path / "edited.jsonl"
    log.write_text("\n".join(lines) + "\n")
    result = invoke("replay", str(log))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1] == "(1 more inconsistency after it)"


def test_replay_of_a_truncated_log_exits_2_with_the_line(tmp_path: Path) -> None:
    log = tmp_path / "cut.jsonl"
    log.write_bytes(GOLDEN.read_bytes()[:-20])
    result = invoke("replay", str(log))
    assert result.exit_code == 2
    assert result.stderr == f"{log}:168: the last line is cut off: the run did not finish\n"


def test_replay_reads_a_log_from_a_pipe_though_it_passes_over_it_three_times() -> None:
    for source in ("/dev/stdin", "-"):
        piped = subprocess.run(
            [sys.executable, "-m", "om_actors", "replay", source, "--rerun"],
            input=GOLDEN.read_bytes(),
            capture_output=True,
            timeout=60,
        )
        assert (piped.returncode, piped.stderr) == (0, b"")
        assert piped.stdout.decode().splitlines() == [
            "replay OK: 156 messages, decisions and verdict match",
            "rerun OK: all 168 events match the log",
        ]


@pytest.mark.parametrize(
    "args",
    [
        ["show", "LOG", "--round", "2"],
        ["show", "LOG", "--json", "--event", "decision"],
        ["show", "LOG", "--format", "shiviz"],
        ["explain", "LOG", "--general", "1", "--depth", "all"],
        ["report", "LOG", "-o", "PAGE"],
    ],
)
def test_every_log_reader_reads_a_pipe_as_it_reads_the_file(args: list[str], tmp_path: Path) -> None:
    """``show``, ``explain`` and ``report`` take ``-`` and ``/dev/stdin`` as ``replay`` does."""
    page = tmp_path / "page.html"
    filed = invoke(*[str(GOLDEN) if a == "LOG" else str(page) if a == "PAGE" else a for a in args])
    assert filed.exit_code == 0, filed.stderr
    written = page.read_text(encoding="utf-8") if "PAGE" in args else None
    for source in ("-", "/dev/stdin"):
        piped = subprocess.run(
            [
                sys.executable,
                "-m",
                "om_actors",
                *[source if a == "LOG" else str(page) if a == "PAGE" else a for a in args],
            ],
            input=GOLDEN.read_bytes(),
            capture_output=True,
            timeout=60,
        )
        assert (piped.returncode, piped.stderr) == (0, b""), piped.stderr
        if written is None:
            assert piped.stdout.decode() == filed.stdout
        else:
            named = "standard input"
            assert page.read_text(encoding="utf-8").replace(f"log {named}:", f"log {GOLDEN.name}:") == written


def test_a_log_reader_names_standard_input_in_its_errors() -> None:
    result = CliRunner().invoke(main, ["show", "-"], input=GOLDEN.read_bytes()[:-20])
    assert result.exit_code == 2
    assert result.stderr.startswith("-:168: ")


@pytest.mark.parametrize(("command", "where"), [("show", "read_selected"), ("replay", "replay_log")])
def test_ctrl_c_ends_any_command_with_interrupted_and_status_130(
    command: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click alone would say "Aborted!" and exit 1; a shell expects 130."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    module = "om_actors.log" if where == "read_selected" else "om_actors.replay"
    monkeypatch.setattr(f"{module}.{where}", interrupted)
    result = invoke(command, str(GOLDEN))
    assert (result.exit_code, result.stderr) == (130, "interrupted\n")


def test_a_piped_log_is_copied_only_while_its_lines_are_log_lines() -> None:
    """An endless stream after a good first line would fill the disk: it stops at its second line."""
    script = '{ head -1 "$1"; yes \'{"event":"x"}\'; } | "$0" -m om_actors show -'
    shown = subprocess.run(["sh", "-c", script, sys.executable, str(GOLDEN)], capture_output=True, timeout=60)
    assert (shown.returncode, shown.stderr) == (2, b"-:2: unknown event 'x'\n")


def test_sigterm_while_a_piped_log_is_held_leaves_no_copy_behind(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with subprocess.Popen(
        [sys.executable, "-m", "om_actors", "show", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(scratch)},
    ) as shown:
        assert shown.stdin is not None
        shown.stdin.write(GOLDEN.read_bytes()[:2000])  # the stream stays open: the copy waits for more
        shown.stdin.flush()
        deadline = time.monotonic() + 30
        while not list(scratch.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(scratch.iterdir()), "the copy never started"
        shown.terminate()
        _, stderr = shown.communicate(timeout=30)
    assert (shown.returncode, stderr) == (128 + signal.SIGTERM, b"terminated\n")
    assert list(scratch.iterdir()) == []


def test_replay_of_a_cut_pipe_names_it_and_the_line() -> None:
    result = CliRunner().invoke(main, ["replay", "-"], input=GOLDEN.read_bytes()[:-20])
    assert result.exit_code == 2
    assert result.stderr == "-:168: the last line is cut off: the run did not finish\n"


def test_replay_of_a_closed_standard_input_is_one_line() -> None:
    closed = subprocess.run(
        ["sh", "-c", 'exec "$0" -m om_actors replay - <&-', sys.executable], capture_output=True, timeout=60
    )
    assert (closed.returncode, closed.stderr) == (2, b"-: standard input is closed\n")


def test_replay_stops_reading_a_stream_that_is_no_log_at_its_first_line() -> None:
    with subprocess.Popen(["yes"], stdout=subprocess.PIPE) as endless:
        try:
            refused = subprocess.run(
                [sys.executable, "-m", "om_actors", "replay", "-"],
                stdin=endless.stdout,
                capture_output=True,
                timeout=60,
            )
        finally:
            endless.kill()
    assert (refused.returncode, refused.stderr) == (2, b"-:1: not a JSON line: y\n")


def test_explain_prints_the_tree_and_dot() -> None:
    result = invoke("explain", str(GOLDEN), "--general", "1", "--depth", "1")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == 'General 1 decided "attack"'
    dot = invoke("explain", str(GOLDEN), "-g", "1", "--format", "dot")
    assert dot.exit_code == 0
    assert dot.stdout.startswith("digraph om {")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--general", "0"], "general 0 is the commander"),
        (["--general", "1", "--path", "0,x"], "'0,x' is not a path"),
        (["--general", "1", "--depth", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_explain_rejects_what_it_cannot_draw(args: list[str], message: str) -> None:
    result = invoke("explain", str(GOLDEN), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_show_filters_into_a_table_or_passes_json_through() -> None:
    table = invoke("show", str(GOLDEN), "--round", "2", "--sender", "5")
    assert table.exit_code == 0
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["line", "event", "round", "sender", "receiver", "path", "value", "detail"]
    assert [row.split()[:4] for row in rows[1:]] == [[str(n), "message", "2", "5"] for n in range(29, 34)]
    passed = invoke("show", str(GOLDEN), "--path-prefix", "0,5", "--receiver", "1", "--json")
    assert passed.stdout.splitlines() == [
        line
        for line in GOLDEN.read_text().splitlines()
        if json.loads(line).get("receiver") == 1 and json.loads(line).get("path", [])[:2] == [0, 5]
    ]
    assert len(passed.stdout.splitlines()) == 1 + 4  # [0, 5] itself, then 5's value as 2, 3, 4, 6 relay it
    decisions = invoke("show", str(GOLDEN), "--event", "decision", "--json")
    assert len(decisions.stdout.splitlines()) == 7


def test_explain_and_show_pick_an_instance(tmp_path: Path) -> None:
    scenario = tmp_path / "two.yaml"
    scenario.write_text(
        "generals: 4\nm: 1\ninstances: [{commander: 0, order: attack}, {commander: 2, order: retreat}]\n"
    )
    log = tmp_path / "two.jsonl"
    assert run(str(scenario), "--log", str(log), "--quiet").exit_code == 0
    tree = invoke("explain", str(log), "--general", "1", "--instance", "1")
    assert tree.exit_code == 0
    assert tree.stdout.splitlines()[:2] == [
        'General 1 (instance 1) decided "retreat"',
        '└── [2] "retreat"  votes retreat x3 -> retreat',
    ]
    shown = invoke("show", str(log), "--instance", "1", "--event", "verdict", "--json")
    assert [json.loads(line)["instance"] for line in shown.stdout.splitlines()] == [1]


def test_mode_batched_gives_the_same_report_and_a_summary_log(tmp_path: Path) -> None:
    log = tmp_path / "batched.jsonl"
    per_message = run(str(SCENARIOS / "seven-generals.yaml"), "--json", "--mode", "per-message")
    batched = run(str(SCENARIOS / "seven-generals.yaml"), "--json", "--mode", "batched", "--log", str(log))
    assert json.loads(batched.stdout) == json.loads(per_message.stdout)
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events.count("message") == 0
    assert events[:2] == ["run.start", "round.end"]
    replayed = invoke("replay", str(log), "--rerun")
    assert replayed.exit_code == 0
    assert "replay skipped: this log of a batched run holds round summaries" in replayed.stderr
    assert replayed.stdout == "rerun OK: all 12 events match the log\n"


def test_logging_every_message_of_a_big_batched_run_warns_of_the_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("om_actors.cli.BIG_LOG_MESSAGES", 100)
    args = [str(SCENARIOS / "seven-generals.yaml"), "--mode", "batched", "--log-messages"]
    quiet = run(*args, "--log", str(tmp_path / "quiet.jsonl"), "-q")
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    loud = run(*args, "--log", str(tmp_path / "loud.jsonl"), "--json")
    assert (
        "warning: logging all 156 messages writes about 0.0 MB, takes long and may need up to 0.1 MB"
        in loud.stderr
    )
    events = [json.loads(line)["event"] for line in (tmp_path / "loud.jsonl").read_text().splitlines()]
    assert events.count("message") == 156


# --- a log that would destroy its own scenario ---------------------------------


def test_a_log_over_its_own_scenario_is_refused_by_any_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = tmp_path / "s.yaml"
    text = (SCENARIOS / "four-generals-traitor-lieutenant.yaml").read_text()
    scenario.write_text(text)
    (tmp_path / "link.jsonl").symlink_to(scenario)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    for log in ["s.yaml", str(scenario), "sub/../s.yaml", "link.jsonl"]:
        result = run("s.yaml", "--log", log)
        assert result.exit_code == 2, log
        assert (
            f"Invalid value for '--log': {log} is the scenario file s.yaml: the log would overwrite it"
            in (result.stderr)
        )
        assert "Traceback" not in result.stderr
    assert scenario.read_text() == text


def test_a_log_over_a_shipped_scenario_named_by_name_is_refused() -> None:
    shipped = SCENARIOS / "seven-generals.yaml"
    text = shipped.read_text()
    result = run("seven-generals", "--log", str(shipped), "--json")
    assert result.exit_code == 2
    assert "the log would overwrite it" in json.loads(result.stdout)["error"]
    assert shipped.read_text() == text


def test_cluster_refuses_a_log_over_its_scenario_before_starting_nodes(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("generals: 4\nm: 1\n")
    result = invoke("cluster", str(scenario), "--log", str(scenario))
    assert result.exit_code == 2
    assert "the log would overwrite it" in result.stderr
    assert scenario.read_text() == "generals: 4\nm: 1\n"


def test_a_log_that_is_a_folder_is_refused_cleanly(tmp_path: Path) -> None:
    result = run("--log", str(tmp_path))
    assert result.exit_code == 2
    assert f"Invalid value for '--log': File '{tmp_path}' is a directory." in result.stderr
    assert "Traceback" not in result.stderr


# --- shipped scenarios, by name ---------------------------------------------------


def test_scenarios_lists_every_shipped_scenario_with_its_opening_line() -> None:
    result = invoke("scenarios")
    assert result.exit_code == 0
    listed = {line.split()[0]: line.split(maxsplit=2)[1:] for line in result.stdout.splitlines()}
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert sorted(listed) == sorted(path.stem for path in files)
    for path in files:
        summary = path.read_text().splitlines()[0].removeprefix("# ").strip()
        assert listed[path.stem] == [load_scenario(path).title, summary]
    assert listed["three-generals-signed"][0] == "SM(1)"


def test_run_finds_a_shipped_scenario_by_name() -> None:
    by_name = run("three-generals", "--json")
    by_path = run(str(SCENARIOS / "three-generals.yaml"), "--json")
    assert by_name.exit_code == 0
    assert json.loads(by_name.stdout) == json.loads(by_path.stdout)
    assert run("three-generals.yaml", "--json").stdout == by_name.stdout


def test_a_file_in_the_working_folder_wins_over_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seven-generals").write_text("name: mine\ngenerals: 4\nm: 1\n")
    monkeypatch.chdir(tmp_path)
    result = run("seven-generals", "--json")
    assert result.exit_code == 0
    assert (json.loads(result.stdout)["scenario"], json.loads(result.stdout)["generals"]) == ("mine", 4)


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    result = run("seven-general")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "seven-general: no such file, nor a shipped scenario of that name: did you mean 'seven-generals'? "
        "shipped scenarios: " + ", ".join(sorted(path.stem for path in SCENARIOS.glob("*.yaml")))
    ]


# --- "-": stdin and stdout --------------------------------------------------------


def test_run_dash_reads_the_scenario_from_stdin() -> None:
    text = (SCENARIOS / "four-generals-traitor-lieutenant.yaml").read_text()
    result = CliRunner().invoke(main, ["run", "-", "--json"], input=text)
    assert result.exit_code == 0
    assert json.loads(result.stdout)["scenario"] == "four-generals-traitor-lieutenant"
    bad = CliRunner().invoke(main, ["run", "-"], input="generals: seven\nm: 1\n")
    assert bad.exit_code == 2
    assert bad.stderr == "<stdin>:1:11: generals: expected an integer, got 'seven'\n"


def test_stdin_past_the_size_limit_is_refused_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("om_actors.scenario.MAX_SCENARIO_BYTES", 100)
    result = CliRunner().invoke(main, ["run", "-"], input="# padding\n" * 20 + "generals: 4\nm: 1\n")
    assert result.exit_code == 2
    assert result.stderr == "<stdin>: longer than 100 bytes, the most a scenario may have: not a scenario\n"


def test_log_dash_writes_the_log_to_stdout_and_the_report_to_stderr() -> None:
    result = run("three-generals", "--log", "-")
    assert result.exit_code == 0
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert (events[0], events[-1], events.count("message")) == ("run.start", "verdict", 4)
    assert "FAILURE: validity (IC2) broken" in result.stderr
    assert "As this scenario expects." in result.stderr


def test_log_dash_with_json_is_refused_as_json() -> None:
    result = run("--log", "-", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == (
        "--json and --log - would both write to stdout: give --log a file name"
    )


# --- --json keeps its promise -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--json", "--mode", "bogus"], "Invalid value for '--mode': 'bogus' is not one of"),
        (["run", "--json", "--frobnicate"], "No such option"),
        (["run", "missing.yaml", "--json"], "no such file, nor a shipped scenario of that name"),
        (["cluster", "--json"], "Missing argument 'SCENARIO'"),
        (["cluster", "missing.yaml", "--json"], "no such file, nor a shipped scenario of that name"),
        (["verify", "--json", "--generals", "x..7"], "'x..7' is not a range"),
        (
            ["verify", "--json", "--generals", "2", "--m", "3"],
            "no army in these ranges can run OM(m): for 2 generals, m = 3 must be at most generals - 2 = 0",
        ),
        (
            ["--max-messages", "0", "run", "--json"],
            "Invalid value for '--max-messages': 0 is not in the range",
        ),
    ],
)
def test_unusable_input_under_json_is_one_json_object(args: list[str], message: str) -> None:
    result = invoke(*args)
    assert (result.exit_code, result.stderr) == (2, "")
    error = json.loads(result.stdout)
    assert set(error) == {"error", "source", "problems"}
    assert message in error["error"]
    (problem,) = error["problems"]
    assert message in problem["message"]
    assert (problem["line"], problem["column"]) == (None, None)


# --- --max-messages ---------------------------------------------------------------


def test_max_messages_sets_the_limit_for_the_command_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIMIT_VARIABLE, raising=False)
    result = invoke("--max-messages", "100", "verify", "--generals", "7", "--m", "2")
    assert result.exit_code == 2
    assert result.stderr == (
        "7 generals with m = 2 send 156 messages, over the limit of 100: set OM_ACTORS_MAX_MESSAGES "
        "(or --max-messages) to raise it, if this machine has the memory\n"
    )
    assert LIMIT_VARIABLE not in os.environ


def test_max_messages_reaches_the_run_and_its_refusal_is_json_under_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(LIMIT_VARIABLE, raising=False)
    result = invoke("--max-messages", "100", "run", "--json")
    assert (result.exit_code, result.stderr) == (2, "")
    assert "--max-messages" in json.loads(result.stdout)["error"]
    assert run("--json").exit_code == 0  # the default limit is back


@pytest.mark.parametrize(
    "args", [["run"], ["run", "seven-generals"], ["verify"], ["scenarios"]], ids=" ".join
)
def test_a_limit_set_wrong_in_the_environment_is_one_line_and_exit_2(args: list[str]) -> None:
    """In a fresh interpreter: the scenario module builds nothing on import that reads the limit."""
    done = subprocess.run(
        [sys.executable, "-m", "om_actors", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), LIMIT_VARIABLE: "lots"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    expected = f"{LIMIT_VARIABLE}='lots': expected a positive whole number of messages\n"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", expected)


# --- stdout that cannot be written ------------------------------------------------

UNWRITABLE = "error: cannot write to standard output: No space left on device"


def _start(args: list[str], stdout: int | IO[Any], cwd: Path = ROOT) -> subprocess.Popen[str]:
    """``om-actors ARGS`` in a fresh interpreter, importing this tree's package wherever it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "om_actors", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    """The exit status and stderr of a process from :func:`_start`, killed if it hangs."""
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return process.wait(), stderr


def _commands(tmp_path: Path) -> list[list[str]]:
    golden = str(GOLDEN)
    return [
        ["run"],
        ["run", "--json"],
        ["run", "--log", "-", "--quiet"],
        ["scenarios"],
        ["--help"],
        ["verify", "--generals", "4", "--m", "1", "--jobs", "1", "--out-dir", str(tmp_path)],
        ["replay", golden],
        ["explain", golden, "-g", "1", "--format", "dot"],
        ["show", golden],
        ["show", golden, "--json"],
        ["keys", str(tmp_path / "keys"), "--addresses", "127.0.0.1:9000,127.0.0.1:9001"],
        ["cluster", "four-generals-traitor-lieutenant"],
    ]


def test_a_full_stdout_is_one_line_on_stderr_and_status_2_for_every_command(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        started = [(args, _start(args, full)) for args in _commands(tmp_path)]  # side by side: faster
    for args, process in started:
        assert _finish(process) == (2, UNWRITABLE + "\n"), args


def test_a_closed_stdout_is_one_line_on_stderr_and_status_2() -> None:
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m", "om_actors", "run"],
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "error: cannot write to standard output: standard output is closed\n",
    )


def _into_a_closed_pipe(args: list[str], cwd: Path = ROOT) -> tuple[int, str]:
    """Run with stdout a pipe whose reader left before the first write: every write breaks it."""
    read, write = os.pipe()
    os.close(read)
    try:
        process = _start(args, write, cwd)
    finally:
        os.close(write)
    return _finish(process)


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (
            ["verify", "--generals", "3..4", "--m", "1", "--jobs", "1"],
            0,
        ),  # `verify | head -1`: not a contradiction
        (["run", str(SCENARIOS / "three-generals.yaml")], 0),  # a failure the scenario expects
        (["run", "hopeful.yaml"], 1),  # a failure it does not
        (["show", str(GOLDEN), "--json"], 0),
    ],
)
def test_a_reader_that_leaves_early_keeps_the_status_the_outcome_deserves(
    tmp_path: Path, args: list[str], status: int
) -> None:
    (tmp_path / "hopeful.yaml").write_text("generals: 3\nm: 1\ntraitors: {2: flip}\n")
    returncode, stderr = _into_a_closed_pipe(args, tmp_path)
    assert returncode == status
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr


# --- a log that would overwrite the scenario read from stdin ----------------------


@pytest.mark.parametrize("command", ["run", "cluster"])
@pytest.mark.parametrize("log", ["/dev/stdin", "/proc/self/fd/0", "same"])
def test_a_log_over_the_scenario_piped_in_is_refused(tmp_path: Path, log: str, command: str) -> None:
    scenario = tmp_path / "s.yaml"
    text = (SCENARIOS / "four-generals-traitor-lieutenant.yaml").read_text()
    scenario.write_text(text)
    log = str(scenario) if log == "same" else log
    with scenario.open() as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "om_actors", command, "-", "--log", log],
            stdin=stdin,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
            timeout=120,
            check=False,
        )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.endswith(
        f"Invalid value for '--log': {log} is the standard input the scenario was read from: "
        "the log would overwrite it\n"
    )
    assert scenario.read_text() == text


# --- control characters from a scenario never reach the terminal raw -------------


def test_run_shows_a_scenarios_control_characters_escaped(hostile_scenario: Path) -> None:
    scenario = hostile_scenario
    result = run(str(scenario))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        r"\x1b[31mRED\x1b]0;title\x07: OM(1) on 4 generals (2 rounds), "
        r'commander 0 would order "\x1b[5mblink"',
        r"Traitors: 1 (constant value=\x9b2Jretreat), 2 (flip)",
    ]
    assert r"General 3 decided \x9b2Jretreat" in lines
    assert lines[-1] == (
        r'FAILURE: validity (IC2) broken: the loyal commander ordered "\x1b[5mblink" '
        r'but general 3 decided "\x9b2Jretreat"'
    )
    for control in "\x1b\x07\x9b":
        assert control not in result.stdout + result.stderr
    exact = run(str(scenario), "--json")  # JSON keeps the text exact: json.dumps escapes it itself
    assert json.loads(exact.stdout)["scenario"] == "\x1b[31mRED\x1b]0;title\x07"
    assert "\x1b" not in exact.stdout


def test_an_error_quoting_a_scenario_shows_its_control_characters_escaped(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        'generals: 4\nm: 1\n"\\e[2J\\u009b": 1\ntraitors: {1: {strategy: flip, "\\e]0;x": 1}}\n'
    )
    result = run(str(scenario))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        rf"{scenario}:3:1: \x1b[2J\x9b: unknown key '\x1b[2J\x9b'",
        rf"{scenario}:4:32: traitors.1.\x1b]0;x: strategy 'flip' takes no argument '\x1b]0;x'",
    ]


def test_show_escapes_control_characters_in_a_logs_field_names_too(tmp_path: Path) -> None:
    lines = GOLDEN.read_text().splitlines()
    message = json.loads(lines[1])
    message["\x1b[5mkey\x9b"] = "\x9bvalue"
    lines[1] = json.dumps(message, ensure_ascii=False)
    log = tmp_path / "keys.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = invoke("show", str(log), "--round", "1", "--receiver", "1")
    assert table.exit_code == 0
    assert table.stdout.splitlines()[1].split()[-1] == r'\x1b[5mkey\x9b="\u009bvalue"'
    assert "\x1b" not in table.stdout
    passed = invoke("show", str(log), "--round", "1", "--receiver", "1", "--json")
    assert passed.stdout.splitlines() == [lines[1]]  # --json passes the line through exactly


# --- a log or folder that cannot be written is named ------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_log_on_a_full_device_is_named_with_the_reason() -> None:
    result = run("--log", "/dev/full")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "error: cannot write the log /dev/full: No space left on device\n"
    as_json = run("--log", "/dev/full", "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"] == "cannot write the log /dev/full: No space left on device"


def test_a_log_that_cannot_be_opened_is_named_with_the_reason(tmp_path: Path) -> None:
    log = tmp_path / "missing" / "run.jsonl"
    result = run("--log", str(log))
    assert result.exit_code == 2
    assert result.stderr == f"error: cannot write the log {log}: No such file or directory\n"


def test_a_scenario_whose_strategy_fails_leaves_an_existing_log_untouched(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("generals: 4\nm: 1\ntraitors: {1: nowhere_to_be_found:Strategy}\n")
    log = tmp_path / "kept.jsonl"
    log.write_text("an earlier run's log\n")
    assert run(str(scenario), "--log", str(log)).exit_code == 2
    assert log.read_text() == "an earlier run's log\n"


# --- SM(m) through the same commands ----------------------------------------------

SIGNED = SCENARIOS / "three-generals-signed.yaml"
NO_BATCHED_SM = (
    "mode: SM(m) has no batched mode: only an algorithm whose messages grow exponentially needs it; "
    "use per-message or auto"
)


def test_signed_messages_survive_the_traitor_oral_messages_cannot() -> None:
    signed = run(str(SIGNED))
    assert signed.exit_code == 0
    assert signed.stdout.splitlines() == [
        'three-generals-signed: SM(1) on 3 generals (2 rounds), commander 0 would order "attack"',
        "Traitors: 0 (split)",
        "General 0 (commander) is a traitor",
        "General 1 decided retreat",
        "General 2 decided retreat",
        "Messages: 4 sent (2, 2 by round), 0 rejected, 6 signatures verified",
        'SUCCESS: all loyal generals agreed on "retreat"',
        "As this scenario expects.",
    ]
    assert signed.stderr == ""  # SM(1) promises agreement among three: nothing to warn of
    oral = json.loads(run(str(SCENARIOS / "three-generals.yaml"), "--json").stdout)
    assert (oral["algorithm"], oral["success"]) == ("om", False)


def test_the_lying_lieutenant_of_three_generals_cannot_lie_with_signatures(tmp_path: Path) -> None:
    scenario = tmp_path / "signed-lieutenant.yaml"
    scenario.write_text("algorithm: sm\ngenerals: 3\nm: 1\norder: attack\ntraitors: {2: split}\n")
    result = run(str(scenario), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["decisions"], data["success"]) == ({"0": "attack", "1": "attack"}, True)


def test_sm_json_keeps_every_key_and_adds_the_signatures_verified() -> None:
    oral = json.loads(run(str(SCENARIOS / "three-generals.yaml"), "--json").stdout)
    signed = json.loads(run(str(SIGNED), "--json").stdout)
    assert set(signed) == set(oral) | {"signatures_verified"}
    assert signed["algorithm"] == "sm"
    assert (signed["messages"], signed["rounds"], signed["signatures_verified"]) == (4, 2, 6)


def test_sm_with_no_traitor_sends_each_value_once_per_general() -> None:
    result = CliRunner().invoke(main, ["run", "-", "--json"], input="algorithm: sm\ngenerals: 6\nm: 3\n")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["messages"], data["messages_per_round"]) == (5 + 5 * 4, [5, 20, 0, 0])


def test_batched_mode_is_refused_for_sm_and_auto_runs_it_per_message(tmp_path: Path) -> None:
    batched = run(str(SIGNED), "--mode", "batched")
    assert (batched.exit_code, batched.stdout) == (2, "")
    assert batched.stderr == f"three-generals-signed: {NO_BATCHED_SM}\n"
    as_json = run(str(SIGNED), "--mode", "batched", "--json")
    assert as_json.exit_code == 2
    problem = {"line": None, "column": None, "message": NO_BATCHED_SM}
    assert json.loads(as_json.stdout)["problems"] == [problem]
    log = tmp_path / "auto.jsonl"
    assert run(str(SIGNED), "--mode", "auto", "--log", str(log), "--quiet").exit_code == 0
    assert '"mode"' not in log.read_text().splitlines()[0]  # a per-message log, as always for SM


def test_show_filters_and_draws_sm_messages_by_their_chain(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    assert run(str(SIGNED), "--log", str(log), "--quiet").exit_code == 0
    passed = invoke("show", str(log), "--path-prefix", "0,1", "--json")
    assert passed.exit_code == 0
    assert [json.loads(line)["chain"] for line in passed.stdout.splitlines()] == [[0, 1]]
    table = invoke("show", str(log), "--round", "2", "--receiver", "1")
    assert table.exit_code == 0
    row = table.stdout.splitlines()[1]
    assert row.split()[:7] == ["6", "message", "2", "2", "1", "[0,", "2]"]
    assert row.split()[7] == '"attack"'


def test_run_and_show_an_algorithm_without_paths(echo: object, tmp_path: Path) -> None:
    scenario, log = tmp_path / "echo.yaml", tmp_path / "echo.jsonl"
    scenario.write_text("algorithm: echo\ngenerals: 4\nm: 1\norder: attack\ntraitors: {2: split}\n")
    result = run(str(scenario), "--log", str(log))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == (
        'echo: ECHO(1) on 4 generals (2 rounds), commander 0 would order "attack"'
    )
    assert result.stderr == "warning: echo promises nothing with a traitor\n"
    table = invoke("show", str(log), "--round", "2", "--sender", "2")
    assert table.exit_code == 0
    assert [row.split()[:6] for row in table.stdout.splitlines()[1:]] == [
        ["6", "message", "2", "2", "1", '"retreat"'],  # the path column is empty: split lies to odd
        ["11", "message", "2", "2", "3", '"retreat"'],  # receivers, and both are odd
    ]


def _signed_log(tmp_path: Path) -> Path:
    log = tmp_path / "signed.jsonl"
    assert run(str(SIGNED), "--log", str(log), "--quiet").exit_code == 0
    return log


def test_replay_checks_an_sm_log_and_names_a_tampered_value_by_line(tmp_path: Path) -> None:
    log = _signed_log(tmp_path)
    replayed = invoke("replay", str(log), "--rerun")
    assert (replayed.exit_code, replayed.stdout.splitlines()) == (
        0,
        ["replay OK: 4 messages, decisions and verdict match", "rerun OK: all 11 events match the log"],
    )
    lines = log.read_text().splitlines()
    order = json.loads(lines[1])
    assert (order["chain"], order["value"]) == ([0], "retreat")
    order["value"] = "attack"  # what the commander signed was "retreat"
    lines[1] = json.dumps(order)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    result = invoke("replay", str(tampered))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "replay MISMATCH: line 2: general 1, message along [0] from 0: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )


def test_explain_shows_an_sm_generals_values_round_by_round(tmp_path: Path) -> None:
    log = _signed_log(tmp_path)
    result = invoke("explain", str(log), "--general", "1")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        'General 1 decided "retreat"',
        "└── general 1  V = {attack, retreat}: 2 values, so the default retreat -> retreat",
        "    ├── round 1  accepted 1 message -> {retreat}",
        '    │   └── [0] "retreat" (from traitor 0)  new: joins V, forwarded in round 2',
        "    └── round 2  accepted 1 message -> {attack, retreat}",
        '        └── [0, 2] "attack"  new: joins V; the last round, so not forwarded',
    ]
    no_tree = invoke("explain", str(log), "--general", "1", "--path", "0")
    assert (no_tree.exit_code, no_tree.stdout) == (2, "")
    assert "SM(1) keeps a set of values, not a tree of paths" in no_tree.stderr


def test_cluster_runs_sm_over_http_with_the_report_and_log_of_run(tmp_path: Path) -> None:
    ran = run(str(SIGNED), "--log", str(tmp_path / "run.jsonl"))
    process = _start(["cluster", str(SIGNED), "--log", str(tmp_path / "cluster.jsonl")], subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert (process.wait(), stderr) == (0, "")
    assert stdout == ran.stdout
    cluster, memory = ((tmp_path / name).read_bytes() for name in ("cluster.jsonl", "run.jsonl"))
    assert masked(cluster) == masked(memory)  # the nodes sign with keys of their own, not the seed's
    assert signatures(cluster).isdisjoint(signatures(memory))
    assert replay_log(tmp_path / "cluster.jsonl").ok


def test_reading_a_big_log_on_a_terminal_shows_how_far_it_has_got(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """replay, explain, report and run --html read logs through this bar; off a terminal there is none."""
    import io

    from rich.console import Console

    import om_actors.cli

    log = tmp_path / "run.jsonl"
    log.write_bytes(b"x" * 3_000_000)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, color_system=None, width=100)
    with om_actors.cli._reading_progress(terminal, log, "replaying") as on_read:
        assert on_read is not None
        on_read(1_500_000)
    assert "replaying" in screen.getvalue()
    assert "1.5/3.0 MB of the log, about" in screen.getvalue()
    piped = Console(file=io.StringIO(), force_terminal=False)
    with om_actors.cli._reading_progress(piped, log, "replaying") as on_read:
        assert on_read is None
    monkeypatch.setattr(om_actors.cli, "READ_PROGRESS_ABOVE", 3_000_000)
    with om_actors.cli._reading_progress(terminal, log, "replaying") as on_read:
        assert on_read is None  # a small log: done before a bar would help


def test_a_lowered_limit_blames_the_scenario_given_and_auto_says_it_batched(tmp_path: Path) -> None:
    """The default scenario is built only when it is the one to run; auto's switch is said, not silent."""
    small = invoke("--max-messages", "100", "run", "silent-traitor", "--log", str(tmp_path / "s.jsonl"))
    assert small.exit_code == 0
    assert small.stderr == (
        "warning: auto runs these 9 messages batched: the message limit keeps them from per-message mode, "
        "so the log holds round summaries unless --log-messages\n"
    )
    default = invoke("--max-messages", "100", "run")
    assert default.exit_code == 2
    assert default.stderr.startswith("seven-generals: ")
    assert "156 messages, over the limit of 100" in default.stderr
