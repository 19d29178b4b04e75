"""Replaying logs: reading them back, checking them, running them again.

Rules for this file:
- logs are made by running a scenario, then edited as text the way a user
  (or a bug) would, never built by hand from scratch;
- the golden log under ``tests/golden/`` changes only when the format does,
  and then CHANGELOG.md says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from om_actors import (
    LogError,
    Scenario,
    TraitorSpec,
    load_scenario,
    read_log,
    replay_log,
    rerun_log,
    simulate_sync,
)

SCENARIOS = Path(__file__).parent.parent / "scenarios"
GOLDEN = Path(__file__).parent / "golden" / "seven-generals.jsonl"


def _log_of(scenario: Scenario, tmp_path: Path, name: str = "run.jsonl") -> Path:
    path = tmp_path / name
    simulate_sync(scenario, log=path)
    return path


def _edit(
    path: Path, pick: Callable[[dict[str, Any]], bool], change: Callable[[dict[str, Any]], None]
) -> int:
    """Change the first event ``pick`` accepts; returns its line number."""
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        event = json.loads(line)
        if pick(event):
            change(event)
            lines[index] = json.dumps(event)
            path.write_text("\n".join(lines) + "\n")
            return index + 1
    raise AssertionError("nothing to edit")


def _flip(event: dict[str, Any]) -> None:
    event["value"] = "attack" if event["value"] == "retreat" else "retreat"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_replays_ok(scenario: Path, tmp_path: Path) -> None:
    loaded = load_scenario(scenario)
    log = _log_of(loaded, tmp_path)
    report = replay_log(log)
    if report.summary_only:  # batched by `auto`: the log has round summaries, which rerun checks
        assert loaded.generals >= 16
        assert rerun_log(log)[1] is None
        return
    assert report.ok, report.inconsistencies
    assert report.messages == simulate_sync(loaded).messages


def test_replay_checks_rejections_forgeries_and_timeouts_too(tmp_path: Path) -> None:
    scenario = Scenario(
        generals=7,
        m=2,
        traitors={
            2: "adversaries:Garbage",
            3: TraitorSpec("adversaries:Forge", {"path": [0, 1]}),
            4: "silent",
        },
    )
    report = replay_log(_log_of(scenario, tmp_path))
    assert report.ok, report.inconsistencies


def test_an_edited_relay_is_caught_with_both_lines(tmp_path: Path) -> None:
    log = _log_of(load_scenario(SCENARIOS / "seven-generals.yaml"), tmp_path)
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 2 and e["round"] == 3, _flip)
    report = replay_log(log)
    assert str(report.inconsistencies[0]) == (
        f'line {line}: loyal general 2 relayed "retreat" along [0, 1, 2] to 3, '
        'but it received "attack" for [0, 1] (line 9)'
    )


def test_an_edit_that_changes_no_decision_is_still_caught(tmp_path: Path) -> None:
    log = _log_of(load_scenario(SCENARIOS / "seven-generals.yaml"), tmp_path)
    assert replay_log(log).ok
    # A last-round message: nobody relays it, and one vote among many sways no majority here.
    line = _edit(log, lambda e: e["event"] == "message" and e["round"] == 3 and e["sender"] == 6, _flip)
    report = replay_log(log)
    assert [i.line for i in report.inconsistencies] == [line]


def test_an_edited_decision_names_both_values(tmp_path: Path) -> None:
    log = _log_of(load_scenario(SCENARIOS / "seven-generals.yaml"), tmp_path)
    line = _edit(log, lambda e: e["event"] == "decision" and e["general"] == 3, _flip)
    (only,) = replay_log(log).inconsistencies
    assert str(only) == f'line {line}: general 3: the log says it decided "attack", replay computes "retreat"'


def test_a_dropped_message_is_owed(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    lines = log.read_text().splitlines()
    dropped = next(i for i, line in enumerate(lines) if '"path": [0, 1]' in line and '"receiver": 3' in line)
    log.write_text("\n".join(lines[:dropped] + lines[dropped + 1 :]) + "\n")
    assert [str(i) for i in replay_log(log).inconsistencies] == [
        "line 11: round 2 claims 6 messages, the log holds 5",
        'line 11: loyal general 1 owed "attack" along [0, 1] to 3 in round 2, '
        "but the log has no such message",
        "line 16: the verdict says messages 9, replay computes 8",
    ]


def test_an_invented_rejection_is_caught(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    lines = log.read_text().splitlines()
    message = json.loads(lines[1])
    lines.insert(2, json.dumps({**message, "event": "message.rejected", "reason": "duplicate message"}))
    log.write_text("\n".join(lines) + "\n")
    (first, *_) = replay_log(log).inconsistencies
    assert first.message == (
        "general 1, message along [0] from 0: the log says rejected for duplicate message, "
        "the protocol says accepted"
    )


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda text: text[:-30], ":168: the last line is cut off: the run did not finish"),
        (lambda text: text.replace('"schema": 1', '"schema": 99', 1), ":1: log schema 99 is newer than this"),
        (lambda text: text.replace('"schema": 1', '"schema": 0', 1), ":1: unknown log schema 0"),
        (lambda text: "\n".join(text.splitlines()[1:]) + "\n",
         ":1: a log starts with run.start, not 'message'"),
        (lambda text: text.replace("\n", "\n}{garbage\n", 1), ":2: not a JSON line: }{garbage"),
        (lambda text: text.replace("\n", "\n[1, 2]\n", 1), ":2: not a log event (no 'event' name): [1, 2]"),
        (lambda text: text.replace('"path": [0]', '"path": "0"', 1),
         ":2: message event with a malformed path: expected a list of general ids, got \"0\""),
        (lambda text: text.replace(', "path": [0]', "", 1), ":2: message event without 'path'"),
        (lambda text: text.replace('"event": "message"', '"event": "gossip"', 1),
         ":2: unknown event 'gossip'"),
        (lambda text: "\n".join(text.splitlines()[:-1]) + "\n", ":167: the log ends without a verdict"),
        (lambda text: "", ": the log is empty"),
    ],
)  # fmt: skip
def test_unreadable_logs_name_the_line(tmp_path: Path, damage: Callable[[str], str], error: str) -> None:
    log = tmp_path / "damaged.jsonl"
    log.write_text(damage(GOLDEN.read_text()))
    with pytest.raises(LogError) as caught:
        replay_log(log)
    assert str(caught.value).startswith(f"{log}{error}")
    assert "\n" not in str(caught.value)


def test_rerun_of_an_unchanged_log_finds_no_difference(tmp_path: Path) -> None:
    scenario = Scenario(generals=7, m=2, traitors={1: "random", 4: "split"}, seed=9)
    compared, divergence = rerun_log(_log_of(scenario, tmp_path))
    assert divergence is None
    assert compared == 1 + 156 + 3 + 7 + 1


def test_rerun_names_the_first_event_that_differs(tmp_path: Path) -> None:
    log = _log_of(load_scenario(SCENARIOS / "seven-generals.yaml"), tmp_path)
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 5, _flip)
    _, divergence = rerun_log(log)
    assert divergence is not None
    assert divergence.line == line
    assert divergence.logged is not None
    assert divergence.rerun is not None
    assert json.loads(divergence.logged)["value"] != json.loads(divergence.rerun)["value"]


def test_rerun_ignores_the_version_that_wrote_the_log(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    _edit(log, lambda e: e["event"] == "run.start", lambda e: e.update(version="0.0.1"))
    assert rerun_log(log)[1] is None


def test_the_golden_log_is_what_the_seven_generals_write_today(tmp_path: Path) -> None:
    fresh = _log_of(load_scenario(SCENARIOS / "seven-generals.yaml"), tmp_path).read_bytes().splitlines()
    golden = GOLDEN.read_bytes().splitlines()
    first_fresh, first_golden = json.loads(fresh[0]), json.loads(golden[0])
    first_fresh.pop("version")
    first_golden.pop("version")
    assert first_fresh == first_golden
    assert fresh[1:] == golden[1:]


def test_reading_streams_line_by_line(tmp_path: Path) -> None:
    lines = read_log(GOLDEN)
    first = next(lines)
    assert (first.number, first.event) == (1, "run.start")
    assert sum(1 for _ in lines) == 167


def test_a_log_of_several_instances_replays_and_reruns(tmp_path: Path) -> None:
    scenario = load_scenario(
        "generals: 7\nm: 2\ntraitors: {3: flip, 5: split}\n"
        "instances: [{commander: 0, order: attack}, {commander: 3, order: retreat}]\n"
    )
    log = _log_of(scenario, tmp_path)
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert report.messages == 2 * 156
    assert rerun_log(log)[1] is None
    line = _edit(
        log, lambda e: e["event"] == "message" and e.get("instance") == 1 and e["sender"] == 2, _flip
    )
    assert replay_log(log).inconsistencies[0].line == line
