"""show --format shiviz: a run as a ShiViz input file, whose vector clocks ShiViz accepts.

Rules for this file:
- the clocks are checked against ShiViz's own rules (its ``modelGraph.js``),
  written out here independently of :mod:`om_actors.shiviz`: each host's
  own entry is 1, 2, 3, ... on its events in order; a send or a local event
  changes nothing else; a receive is the pointwise maximum of the host's
  previous clock and its send's clock, plus its own tick; no entry is below
  1 or past the events its host has;
- a send and its receive are paired by the log line both name, never by
  reading the clocks the module computed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from om_actors import Scenario, TraitorSpec, load_scenario, simulate_sync
from om_actors.cli import main
from om_actors.errors import LogError
from om_actors.shiviz import PARSER, shiviz_lines

ROOT = Path(__file__).parent.parent
GOLDEN = ROOT / "tests" / "golden" / "seven-generals.jsonl"

EVENT = re.compile("^" + PARSER.replace("(?<", "(?P<") + "$")
"""ShiViz's parser as it uses it -- anchored by ``^`` and ``$`` -- in Python's spelling of named groups."""


@attrs.frozen
class Event:
    host: str
    clock: dict[str, int]
    text: str

    @property
    def line(self) -> int:
        """The log line the event came from."""
        found = re.search(r"\(log line (\d+)\)", self.text)
        assert found is not None, self.text
        return int(found.group(1))


def parse(text: str) -> list[Event]:
    """The events of a ShiViz file, as ShiViz reads an uploaded one: regex, delimiter, then the log."""
    lines = text.split("\n")
    assert lines[0] == PARSER
    assert lines[1] == ""  # no delimiter: one execution
    assert text.endswith("\n")
    events = []
    for line in lines[2:-1]:
        found = EVENT.match(line)
        assert found is not None, line
        events.append(Event(found["host"], json.loads(found["clock"]), found["event"]))
    return events


def check_clocks(events: list[Event]) -> None:
    """ShiViz's rules for vector clocks, with every receive paired to its send by log line."""
    sends = {event.line: event for event in events if " sends " in event.text}
    previous: dict[str, dict[str, int]] = {}
    for event in events:
        before = previous.get(event.host, {})
        assert event.clock[event.host] == before.get(event.host, 0) + 1  # 1 first, then +1 each
        expected = dict(before)
        if " receives " in event.text:
            send = sends[event.line]
            for host, count in send.clock.items():
                expected[host] = max(expected.get(host, 0), count)
        expected[event.host] = event.clock[event.host]
        assert event.clock == expected, event
        previous[event.host] = event.clock
    for event in events:
        assert all(1 <= count <= previous[host][host] for host, count in event.clock.items())


def check_shiviz(log: Path) -> list[Event]:
    """``show --format shiviz`` of ``log``, checked whole: a send per message, a receive per arrival."""
    result = CliRunner().invoke(main, ["show", str(log), "--format", "shiviz"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.isascii()
    events = parse(result.stdout)
    check_clocks(events)
    messages = [json.loads(line) for line in log.read_text().splitlines()]
    numbers = [n for n, fields in enumerate(messages, start=1) if fields["event"] == "message"]
    arrived = [n for n in numbers if messages[n - 1].get("delivered") is not False]
    assert sorted(e.line for e in events if " sends " in e.text) == numbers
    assert sorted(e.line for e in events if " receives " in e.text) == arrived
    for event in events:
        fields = messages[event.line - 1]
        if " sends " in event.text:
            assert event.host == f"general-{fields['sender']}"
        if " receives " in event.text:
            assert event.host == f"general-{fields['receiver']}"
    return events


def test_seven_generals_every_message_is_an_arrow_shiviz_accepts() -> None:
    events = check_shiviz(GOLDEN)
    assert len(events) == 156 * 2 + 7  # a send and a receive per message, and seven decisions
    first = events[0]
    assert (first.host, first.clock) == ("general-0", {"general-0": 1})
    assert first.text == 'round 1: sends (a traitor) to general-1: path=[0] value="retreat" (log line 2)'
    receive = next(e for e in events if e.host == "general-1")
    assert receive.clock == {"general-0": 1, "general-1": 1}
    assert (
        receive.text == 'round 1: receives from general-0 (a traitor): path=[0] value="retreat" (log line 2)'
    )


def test_a_round_is_sent_before_it_is_received() -> None:
    """Synchronous rounds: no send's clock holds a receive of its own round."""
    events = check_shiviz(GOLDEN)
    round_of = {
        e.line: int(e.text.split(":")[0].removeprefix("round ")) for e in events if " sends " in e.text
    }
    received_in: dict[str, list[tuple[int, int]]] = {}  # host -> (own count, round) of its receives
    for event in events:
        if " receives " in event.text:
            received_in.setdefault(event.host, []).append((event.clock[event.host], round_of[event.line]))
    for send in (e for e in events if " sends " in e.text):
        seen = [r for count, r in received_in.get(send.host, []) if count < send.clock[send.host]]
        assert all(r < round_of[send.line] for r in seen)


@pytest.mark.parametrize(
    "scenario",
    ["three-generals-signed.yaml", "nine-generals-king.yaml", "four-generals-traitor-commander.yaml"],
)
def test_every_algorithm_gives_clocks_shiviz_accepts(scenario: str, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    simulate_sync(load_scenario(ROOT / "scenarios" / scenario), log=log)
    check_shiviz(log)


def test_an_algorithm_without_paths_still_has_its_messages(tmp_path: Path, echo: object) -> None:
    log = tmp_path / "echo.jsonl"
    simulate_sync(Scenario(algorithm="echo", generals=4, m=1, order="attack", traitors={3: "split"}), log=log)
    events = check_shiviz(log)
    assert any(" sends " in e.text and "path" not in e.text for e in events)


def test_sm_signatures_are_counted_not_copied(tmp_path: Path) -> None:
    log = tmp_path / "sm.jsonl"
    simulate_sync(load_scenario(ROOT / "scenarios" / "three-generals-signed.yaml"), log=log)
    events = check_shiviz(log)
    assert all("signatures: " in e.text for e in events if " sends " in e.text)
    assert max(len(e.text) for e in events) < 200


def test_a_rejected_message_is_received_and_says_why(tmp_path: Path) -> None:
    log = tmp_path / "refused.jsonl"
    lie = {"path": [0, 3], "receiver": 1, "value": "retreat"}
    scenario = Scenario(
        algorithm="sm",
        generals=4,
        m=2,
        order="attack",
        traitors={3: TraitorSpec("scripted", {"messages": [lie]})},
    )
    simulate_sync(scenario, log=log)
    events = check_shiviz(log)
    refused = [e for e in events if "rejected" in e.text]
    assert len(refused) == 1
    assert refused[0].host == "general-1"
    assert refused[0].text.endswith(' -- rejected: "signature does not verify"')


def test_undelivered_messages_crashes_and_failed_strategies(tmp_path: Path) -> None:
    lines = GOLDEN.read_text().splitlines()
    lost = json.loads(lines[40])
    assert lost["event"] == "message"
    lines[40] = json.dumps({**lost, "delivered": False})
    lines.insert(-9, json.dumps({"event": "general.crashed", "round": 3, "general": 4}))
    failed = {"event": "strategy.failed", "round": 3, "general": 5, "path": [0, 1, 5], "receiver": 2}
    lines.insert(-9, json.dumps({**failed, "error": "ValueError('no\nway')"}))  # a line break
    log = tmp_path / "network.jsonl"
    log.write_text("\n".join(lines) + "\n")
    events = check_shiviz(log)
    path = json.dumps(lost["path"], separators=(",", ":"))
    assert [e.text for e in events if e.line == 41] == [
        f"round {lost['round']}: sends to general-{lost['receiver']}: path={path}"
        f" value={json.dumps(lost['value'])}, never delivered (log line 41)"
    ]
    (crash,) = [e for e in events if "crashed" in e.text]
    assert (crash.host, crash.text) == ("general-4", f"round 3: crashed (log line {len(lines) - 10})")
    (failure,) = [e for e in events if "strategy failed" in e.text]
    assert failure.host == "general-5"
    assert "\\n" in failure.text  # the error's line break, escaped
    assert "\n" not in failure.text


def test_several_instances_share_the_generals(tmp_path: Path) -> None:
    scenario = tmp_path / "two.yaml"
    scenario.write_text(
        "generals: 4\nm: 1\ninstances: [{commander: 0, order: attack}, {commander: 2, order: retreat}]\n"
    )
    log = tmp_path / "two.jsonl"
    simulate_sync(load_scenario(scenario), log=log)
    events = check_shiviz(log)
    sends = [e.text for e in events if " sends " in e.text]
    assert {text.split(":")[0] for text in sends} == {
        "round 1, instance 0",
        "round 1, instance 1",
        "round 2, instance 0",
        "round 2, instance 1",
    }
    assert {e.host for e in events} == {f"general-{g}" for g in range(4)}


def test_hostile_values_stay_on_their_line_in_ascii(hostile_scenario: Path, tmp_path: Path) -> None:
    log = tmp_path / "hostile.jsonl"
    simulate_sync(load_scenario(hostile_scenario), log=log)
    events = check_shiviz(log)
    assert any("\\u001b[5mblink" in e.text for e in events)


def test_the_file_is_written_as_the_log_streams(tmp_path: Path) -> None:
    """A log cut off in round 2: the events before the cut are out, then the error."""
    log = tmp_path / "cut.jsonl"
    log.write_bytes(GOLDEN.read_bytes()[:3000])
    lines = shiviz_lines(log)
    assert next(lines) == PARSER
    with pytest.raises(LogError, match="the last line is cut off"):
        list(lines)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"not a log\n", "bad.jsonl:1: not a JSON line: not a log\n"),
        (b"", "bad.jsonl: the log is empty: it has no run.start line\n"),
        (b'{"event":"verdict"}\n', "bad.jsonl:1: a log starts with run.start, not 'verdict'\n"),
    ],
)
def test_a_file_that_is_no_log_is_one_line_and_exit_2(tmp_path: Path, content: bytes, error: str) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_bytes(content)
    result = CliRunner().invoke(main, ["show", str(log), "--format", "shiviz"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"{tmp_path}/{error}"


def test_a_missing_file_and_a_batched_log_without_messages(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["show", str(tmp_path / "none.jsonl"), "--format", "shiviz"])
    assert missing.exit_code == 2
    assert len(missing.stderr.splitlines()) == 1
    log = tmp_path / "batched.jsonl"
    scenario = tmp_path / "seven.yaml"
    scenario.write_text((ROOT / "scenarios" / "seven-generals.yaml").read_text())
    ran = CliRunner().invoke(main, ["run", str(scenario), "--mode", "batched", "--log", str(log), "--quiet"])
    assert ran.exit_code == 0, ran.output
    result = CliRunner().invoke(main, ["show", str(log), "--format", "shiviz"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.endswith("ShiViz has nothing to draw; run it again with --log-messages\n")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("option", [["--round", "2"], ["--json"], ["--event", "message"]])
def test_shiviz_takes_the_whole_run_only(option: list[str]) -> None:
    result = CliRunner().invoke(main, ["show", str(GOLDEN), "--format", "shiviz", *option])
    assert (result.exit_code, result.stdout) == (2, "")
    assert "--format shiviz writes the whole run: it takes no filters and no --json" in result.stderr


def test_a_scenario_whose_traitors_are_no_mapping_marks_none(tmp_path: Path) -> None:
    """A log is data: a run.start whose traitors are a list converts, with no sender called a traitor."""
    lines = GOLDEN.read_text().splitlines()
    start = json.loads(lines[0])
    start["scenario"]["traitors"] = [0, 5]
    log = tmp_path / "list.jsonl"
    log.write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    events = check_shiviz(log)
    assert not any("traitor" in e.text for e in events if " sends " in e.text)
