"""The HTML report: one self-contained page per run, the same from ``run --html`` as from ``report``."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from om_actors import Scenario, html_report, simulate_sync, write_html_report
from om_actors.errors import LogError

SEVEN = Path(__file__).parent.parent / "scenarios" / "seven-generals.yaml"

SCRIPTED = """\
name: counterexample
algorithm: om
generals: 4
m: 1
order: attack
traitors:
  1:
    strategy: scripted
    messages:
    - path: [0, 1]
      receiver: 3
      value: retreat
  2:
    strategy: scripted
    messages:
    - path: [0, 2]
      receiver: 3
      value: retreat
"""
"""A counterexample as ``verify --out-dir`` writes one: validity (IC2) broken by two scripted relays."""


def om_actors(*args: str | Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "om_actors", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        input=input,
    )


def arrows(page: str) -> int:
    return len(re.findall(r'<g class="msg', page))


@pytest.fixture(scope="module")
def seven(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The seven generals' log and the page ``run --html`` wrote beside it."""
    folder = tmp_path_factory.mktemp("seven")
    log, page = folder / "seven.log", folder / "seven.html"
    done = om_actors("run", SEVEN, "--log", log, "--html", page)
    assert done.returncode == 0, done.stderr
    return log, page


def test_run_html_writes_the_verdict_scenario_and_legend(seven: tuple[Path, Path]) -> None:
    page = seven[1].read_text(encoding="utf-8")
    assert "SUCCESS: all loyal generals agreed on &#34;attack&#34;" in page
    assert "OM(2), 3 rounds" in page
    assert "0</span> (split lie_to=even), " in page
    assert "5</span> (flip)" in page
    assert 'id="legend"' in page
    assert "rejected" in page


def test_the_page_fetches_nothing(seven: tuple[Path, Path]) -> None:
    page = seven[1].read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page
    assert "url(http" not in page
    assert "<script src" not in page
    assert "<link" not in page


def test_seven_generals_draw_one_arrow_per_message(seven: tuple[Path, Path]) -> None:
    page = seven[1].read_text(encoding="utf-8")
    assert arrows(page) == 156
    assert page.count(' traitor"') + page.count(" traitor ") >= 1  # dashed from traitors


def test_every_loyal_lieutenant_has_a_tree(seven: tuple[Path, Path]) -> None:
    page = seven[1].read_text(encoding="utf-8")
    assert re.findall(r'id="tree-0-(\d+)"', page) == ["1", "2", "3", "4", "6"]
    assert "votes attack x4, retreat x2" in page  # the majority computed at a node
    assert 'class="node lied' in page  # where a traitor's value entered


def test_report_of_the_log_is_the_page_run_wrote(seven: tuple[Path, Path], tmp_path: Path) -> None:
    log, page = seven
    done = om_actors("report", log, "-o", tmp_path / "again.html")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "again.html").read_bytes() == page.read_bytes()


def test_run_html_without_a_log_says_it_was_not_kept(tmp_path: Path) -> None:
    done = om_actors("run", SEVEN, "--html", tmp_path / "seven.html")
    assert done.returncode == 0, done.stderr
    assert "From a run whose log was not kept" in (tmp_path / "seven.html").read_text(encoding="utf-8")
    assert list(tmp_path.iterdir()) == [tmp_path / "seven.html"]


def test_above_the_limit_one_arrow_stands_for_a_sender_receiver_and_round(tmp_path: Path) -> None:
    scenario = tmp_path / "eight.yaml"
    scenario.write_text("name: eight\ngenerals: 8\nm: 3\ntraitors: {3: flip}\n")
    log = tmp_path / "eight.log"
    done = om_actors("run", scenario, "--log", log, "--html", tmp_path / "eight.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "eight.html").read_text(encoding="utf-8")
    assert 'id="aggregated"' in page
    assert "more than 600" in page
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    pairs = {
        (line["round"], line["sender"], line["receiver"]) for line in lines if line["event"] == "message"
    }
    assert arrows(page) == len(pairs)
    assert re.search(r'data-tip="\d+ messages', page)


def test_trees_too_big_to_inline_say_what_was_left_out(
    seven: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(html_report, "TREE_NODES", 40)
    write_html_report(seven[0], tmp_path / "cut.html")
    page = (tmp_path / "cut.html").read_text(encoding="utf-8")
    assert "too big to put in the page whole: they are inlined 1 level deep, and 100 nodes below" in page
    assert "(4 nodes below left out)" in page


def test_a_counterexample_shows_what_broke_and_its_script_first(tmp_path: Path) -> None:
    scenario = tmp_path / "counterexample.yaml"
    scenario.write_text(SCRIPTED)
    done = om_actors("run", scenario, "--html", tmp_path / "c.html")
    assert done.returncode == 1, done.stderr  # no expectation is met: validity breaks
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "FAILURE: validity (IC2) broken" in page
    assert "The script\u2019s 2 message(s), the shrunk minimal set that breaks it, come first" in page
    row = r'<tr( class="scripted")?><td class="traitor-name">(\d+)</td><td>(\d+)</td><td>([^<]*)<'
    rows = re.findall(row, page)
    assert [(bool(mark), traitor, path) for mark, traitor, _, path in rows] == [
        (True, "1", "[0, 1]"),
        (True, "2", "[0, 2]"),
    ]


def test_deviations_list_every_lie_of_a_strategy(seven: tuple[Path, Path]) -> None:
    page = seven[1].read_text(encoding="utf-8")
    # The commander lies to generals 2, 4 and 6; general 5 flips its five round-2 relays and 20 in round 3.
    assert "28 message(s) from traitors differ from what a loyal general in their place" in page


@pytest.mark.parametrize("scenario", ["three-generals-signed", "nine-generals-king"])
def test_every_algorithm_gets_its_own_trees(scenario: str, tmp_path: Path) -> None:
    done = om_actors("run", scenario, "--html", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert 'class="tree"' in page
    if scenario.endswith("signed"):  # SM: the set V, round by round
        assert '"label">round 2<' in page
        assert '<table class="rows">' not in page
    else:  # Phase King: a table of phases per general, each row a phase
        assert page.count('<table class="rows">') == 9 - 2
        assert page.count('"label">phase 3 (king 2)<') == 9 - 2


def test_a_value_a_traitor_makes_up_is_text_not_markup(tmp_path: Path) -> None:
    scenario = tmp_path / "hostile.yaml"
    scenario.write_text(
        "name: hostile\ngenerals: 4\nm: 1\norder: attack\ndefault: attack\n"
        'values: [attack, "</script><b>bold</b>"]\n'
        'traitors: {2: {strategy: constant, value: "</script><b>bold</b>"}}\n'
    )
    done = om_actors("run", scenario, "--html", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "<b>bold</b>" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_a_bad_log_is_one_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text('{"event":"message"}\n')
    done = om_actors("report", bad, "-o", tmp_path / "bad.html")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "bad.log:1" in done.stderr
    assert not (tmp_path / "bad.html").exists()
    with pytest.raises(LogError):
        write_html_report(tmp_path / "missing.log", tmp_path / "x.html")


def test_report_refuses_to_overwrite_its_log(seven: tuple[Path, Path], tmp_path: Path) -> None:
    log = tmp_path / "run.html"
    log.write_bytes(seven[0].read_bytes())
    done = om_actors("report", log)
    assert done.returncode == 2
    assert "would overwrite the log" in done.stderr
    assert log.read_bytes() == seven[0].read_bytes()


def test_html_needs_a_log_it_can_read_back(tmp_path: Path) -> None:
    done = om_actors("run", SEVEN, "--log", "-", "--html", tmp_path / "page.html")
    assert done.returncode == 2
    assert "--log FILE" in done.stderr


def test_a_batched_run_logs_every_message_for_its_page(tmp_path: Path) -> None:
    done = om_actors("run", SEVEN, "--mode", "batched", "--html", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    assert arrows((tmp_path / "page.html").read_text(encoding="utf-8")) == 156


def test_a_log_of_round_summaries_only_is_refused_with_its_reason(tmp_path: Path) -> None:
    log = tmp_path / "batched.log"
    assert om_actors("run", SEVEN, "--mode", "batched", "--log", log, "-q").returncode == 0
    done = om_actors("report", log, "-o", tmp_path / "page.html")
    assert done.returncode == 2
    assert "holds round summaries, not messages" in done.stderr


def test_a_traitors_lone_surrogate_is_written_as_its_escape(tmp_path: Path) -> None:
    """UTF-8 cannot hold it; the log writes its JSON escape, and the page shows that text."""
    (tmp_path / "surrogate.py").write_text(
        "class Half:\n    def choose(self, round, path, receiver, value, rng):\n        return '\\ud800'\n"
    )
    scenario = tmp_path / "s.yaml"
    scenario.write_text("generals: 4\nm: 1\norder: attack\ntraitors: {3: surrogate:Half}\n")
    done = om_actors("run", scenario, "--html", tmp_path / "page.html", "-q")
    assert done.returncode == 0, done.stderr
    assert "\\ud800" in (tmp_path / "page.html").read_text(encoding="utf-8")


def test_a_message_naming_a_general_outside_the_army_is_one_line_and_status_2(
    seven: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "outside.log"
    log.write_text(seven[0].read_text().replace('"sender":2,', '"sender":-1,', 1))
    done = om_actors("report", log, "-o", tmp_path / "page.html")
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)
    assert "a message from general -1 to general 1, but this army's generals are 0 to 6" in done.stderr


def test_a_lost_message_and_a_crash_are_warned_about_as_the_terminal_report_does(tmp_path: Path) -> None:
    log = tmp_path / "network.log"
    assert om_actors("run", "-", "--log", log, "-q", input="generals: 4\nm: 1\n").returncode == 0
    text = log.read_text()
    text = text.replace('"value":"attack"}', '"value":"attack","delivered":false}', 1)
    text = text.replace('"timed_out":[]}', '"timed_out":[],"undelivered":1}', 1)
    log.write_text(text)
    done = om_actors("report", log, "-o", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert (
        "WARNING: 1 message from loyal generals was sent but never delivered: "
        "the synchrony assumption (A3) broke, and each counted as the default"
    ) in page
    assert "WARNING: the theorem&#39;s assumptions did not hold" in page


def test_a_run_whose_loyal_lieutenants_all_crashed_says_no_verdict_as_the_terminal_does(
    tmp_path: Path,
) -> None:
    """A cluster whose nodes all died logs a vacuous verdict; the page must not call it a success."""
    log = tmp_path / "crashed.log"
    assert om_actors("run", "-", "--log", log, "-q", input="generals: 4\nm: 1\n").returncode == 0
    lines = [line for line in log.read_text().splitlines() if not re.search(r'"general":[123],"value"', line)]
    first_decision = next(i for i, line in enumerate(lines) if '"event":"decision"' in line)
    lines[first_decision:first_decision] = [
        f'{{"event":"general.crashed","round":2,"general":{g}}}' for g in (1, 2, 3)
    ]
    log.write_text("\n".join(lines) + "\n")
    done = om_actors("report", log, "-o", tmp_path / "page.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "NO VERDICT: every loyal lieutenant crashed, so no loyal general decided" in page
    assert "SUCCESS" not in page


def test_a_messages_tip_quotes_text_and_shows_anything_else_a_traitor_sent_as_it_is(tmp_path: Path) -> None:
    """42 is no "42": a traitor's number, list or object reads in the tip as the log holds it."""
    log = tmp_path / "garbage.jsonl"
    simulate_sync(Scenario(generals=7, m=2, traitors={4: "adversaries:Garbage"}), log=log)
    page = write_html_report(log, tmp_path / "page.html").read_text(encoding="utf-8")
    tips = html.unescape(" | ".join(re.findall(r'data-tip="([^"]*)"', page)))
    assert 'path [0]: "attack" to 1, round 1' in tips
    assert "path [0, 4]: 42 to 2, round 2 (rejected)" in tips
    assert 'path [0, 4]: ["attack"] to 1, round 2 (rejected)' in tips
    assert '"42"' not in tips


def test_the_page_never_overwrites_the_scenario_read_from_stdin(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SEVEN.read_text())
    with scenario.open() as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "om_actors", "run", "-", "--html", "/dev/stdin"],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 2
    assert "is the standard input the scenario was read from: the HTML report would overwrite it" in (
        done.stderr
    )
    assert scenario.read_text() == SEVEN.read_text()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["run", SEVEN, "--html", "-"], "the page is written to a file: name one"),
        (["run", SEVEN, "--html", "page.html", "--log", "/dev/stdout"], "needs the log in a file"),
        (["report", "/dev/stdin"], "LOG is standard input, a link, a pipe or a device"),
        (["report", "-"], "LOG is standard input, a link, a pipe or a device"),
    ],
)
def test_a_page_needs_a_real_file_and_so_does_its_log(
    seven: tuple[Path, Path], tmp_path: Path, args: list[str | Path], error: str
) -> None:
    with seven[0].open() as stdin:
        done = subprocess.run(
            [sys.executable, "-m", "om_actors", *map(str, args)],
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            timeout=60,
        )
    assert done.returncode == 2
    assert error in done.stderr
    assert list(tmp_path.iterdir()) == []
