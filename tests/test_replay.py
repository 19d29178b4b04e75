"""Replaying logs: reading them back, checking them, running them again.

Rules for this file:
- logs are made by running a scenario, then edited as text the way a user
  (or a bug) would, never built by hand from scratch;
- the golden log under ``tests/golden/`` changes only when the format does,
  and then CHANGELOG.md says so.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from click.testing import CliRunner
from conftest import Gossip, GossipGeneral
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from om_actors.algorithm import Outgoing, Setup
from om_actors.algorithm import Path as Route
from om_actors.cli import main
from om_actors.cluster import run_cluster
from om_actors.explain import View, explain
from om_actors.registry import REGISTRY, algorithm_named
from om_actors.replay import Crash, reconstruct

ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "scenarios"
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


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(event) + "\n" for event in events))


def _replay_cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["replay", *args])


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
        f'line {line}: loyal general 2 relayed "attack" along [0, 1, 2] to 3, '
        'but it received "retreat" for [0, 1] (line 9)'
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
    assert str(only) == f'line {line}: general 3: the log says it decided "retreat", replay computes "attack"'


def test_a_dropped_message_is_owed(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    lines = log.read_text().splitlines()
    dropped = next(i for i, line in enumerate(lines) if '"receiver":3,"path":[0,1]' in line)
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
        (lambda text: text.replace('"schema":2', '"schema": 99', 1), ":1: log schema 99 is newer than this"),
        (lambda text: text.replace('"schema":2', '"schema": 0', 1), ":1: unknown log schema 0"),
        (lambda text: "\n".join(text.splitlines()[1:]) + "\n",
         ":1: a log starts with run.start, not 'message'"),
        (lambda text: text.replace("\n", "\n}{garbage\n", 1), ":2: not a JSON line: }{garbage"),
        (lambda text: text.replace("\n", "\n[1, 2]\n", 1), ":2: not a log event (no 'event' name): [1, 2]"),
        (lambda text: text.replace(',"path":[0]', "", 1), ":2: message event without 'path'"),
        (lambda text: text.replace('"event":"message"', '"event": "gossip"', 1),
         ":2: unknown event 'gossip'"),
        (lambda text: "\n".join(text.splitlines()[:-1]) + "\n", ":167: the log ends without a verdict"),
        (lambda text: "", ": the log is empty"),
        (lambda text: text.replace('"path":[0]', '"path": ' + "[" * 150 + "]" * 150, 1),
         ":2: lists or objects nested more than 100 deep: not a log line"),
        (lambda text: text.replace('"path":[0]', '"path": ' + "[" * 100_000 + "]" * 100_000, 1),
         ":2: lists or objects nested more than 100 deep: not a log line"),
        (lambda text: text.replace('"receiver":1', '"receiver": 1' + "0" * 5000, 1),
         ":2: a number with thousands of digits: not a log line"),
        (lambda text: text.replace('"timed_out":[]', '"timed_out": [[1]]', 1),
         ":8: round.end event with a malformed 'timed_out': expected a list of general ids, got [[1]]"),
        (lambda text: text.replace('"timed_out":[]', '"timed_out": [], "undelivered": -1', 1),
         ":8: round.end event with a malformed 'undelivered': expected a message count, got -1"),
        (lambda text: text.replace('"value":"retreat"}', '"value": "retreat", "delivered": true}', 1),
         ":2: message event with a malformed 'delivered': expected false"),
        (lambda text: text.replace('"round.end","round":1', '"round.end", "round": 2', 1),
         ":8: round.end for round 2, but round 1 ends next (this run has rounds 1 to 3)"),
        (lambda text: text.replace('"round.end","round":1', '"round.end", "round": 0', 1),
         ":8: round.end for round 0, but round 1 ends next (this run has rounds 1 to 3)"),
        (lambda text: text.replace("\n", '\n{"event": "general.crashed", "round": 1}\n', 1),
         ":2: general.crashed event without 'general'"),
        (lambda text: text.replace('"generals":7', '"generals": "7"', 1),
         ":1: run.start holds a scenario that does not load: generals: expected an integer, got '7'"),
        (lambda text: text.replace('"0":{"strategy":"split"', '"0": {"strategy": ["split"]', 1),
         ":1: run.start holds a scenario that does not load: traitors.0.strategy: expected a strategy name"),
    ],
)  # fmt: skip
def test_unreadable_logs_name_the_line(
    tmp_path: Path, damage: Callable[[str], str], error: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OM_ACTORS_MAX_MESSAGES", raising=False)
    log = tmp_path / "damaged.jsonl"
    log.write_text(damage(GOLDEN.read_text()))
    for read in (replay_log, reconstruct):
        with pytest.raises(LogError) as caught:
            read(log)
        assert str(caught.value).startswith(f"{log}{error}")
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("generals", "m", "count"),
    [(40, 12, "52,521,079,662,488,028,579"), (10**35, 1, f"{(10**35 - 1) * (10**35 - 1):,}")],
)
def test_a_scenario_too_big_is_refused_with_its_count(
    tmp_path: Path, generals: int, m: int, count: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OM_ACTORS_MAX_MESSAGES", raising=False)
    log = tmp_path / "big.jsonl"
    log.write_text(GOLDEN.read_text().replace('"generals":7,"m":2', f'"generals": {generals}, "m": {m}', 1))
    for read in (replay_log, reconstruct, rerun_log):
        with pytest.raises(LogError) as caught:
            read(log)
        message = str(caught.value)
        assert message.startswith(f"{log}:1: run.start holds a scenario ")
        assert (
            f"{generals:,} generals with m = {m} send {count} messages, over the limit of 200,000,000"
            in message
        )
        assert "set OM_ACTORS_MAX_MESSAGES" in message


def test_a_path_that_is_no_list_is_judged_by_the_algorithm(tmp_path: Path) -> None:
    """A payload's fields may hold anything a traitor put there: the core refuses it, and replay says so."""
    log = tmp_path / "edited.jsonl"
    log.write_text(GOLDEN.read_text().replace('"path":[0]', '"path": "0"', 1))
    assert [str(i) for i in replay_log(log).inconsistencies] == [
        'line 2: general 1, message along "0" from 0: the log says accepted, the protocol says rejected for '
        "malformed path"
    ]


def test_a_line_too_long_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("om_actors.log.MAX_LINE_BYTES", 1000)
    log = tmp_path / "long.jsonl"
    log.write_text(GOLDEN.read_text().replace('"value":"retreat"}', '"value": "' + "a" * 5000 + '"}', 1))
    with pytest.raises(LogError, match=r":2: a line longer than 1,000 bytes: not a log line$"):
        replay_log(log)


@pytest.mark.parametrize("path", [[[0], 1], [{"via": 0}, 1], [0, [1, [2]]]], ids=["list", "object", "nested"])
def test_a_forged_path_holding_lists_or_objects_replays(tmp_path: Path, path: list[object]) -> None:
    scenario = Scenario(generals=4, m=1, traitors={1: TraitorSpec("adversaries:Forge", {"path": path})})
    log = _log_of(scenario, tmp_path)
    assert any(event.get("path") == path for event in _events(log))
    report = replay_log(log)
    assert report.ok, report.inconsistencies


@pytest.mark.parametrize("command", ["replay", "explain", "show"])
def test_a_log_too_big_to_replay_is_refused_at_once(tmp_path: Path, command: str) -> None:
    """In a fresh process, bounded by a timeout: before the size guard this hung."""
    log = tmp_path / "big.jsonl"
    log.write_text(GOLDEN.read_text().replace('"generals":7,"m":2', '"generals": 40, "m": 12', 1))
    args = {"replay": [], "explain": ["--general", "1"], "show": ["--event", "verdict"]}[command]
    env = {k: v for k, v in os.environ.items() if k != "OM_ACTORS_MAX_MESSAGES"}
    done = subprocess.run(
        [sys.executable, "-m", "om_actors", command, str(log), *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    if command == "show":  # show reads lines and never builds the scenario
        assert (done.returncode, done.stderr) == (0, "")
        assert "verdict" in done.stdout
        return
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"{log}:1: run.start holds a scenario ")
    assert "40 generals with m = 12 send 52,521,079,662,488,028,579 messages" in done.stderr
    assert done.stderr.count("\n") == 1


MARKER_MODULE = """
from pathlib import Path

Path(__file__).with_name("IMPORTED").write_text("a log made me run")


class Liar:
    def choose(self, round, path, receiver, value, rng):
        return value
"""


@pytest.fixture
def hostile_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The golden log, its traitors changed to code that leaves a marker file if anything runs it.

    The module is importable from the Python path and from the log's
    ``strategy_folder``, so only a refusal to import keeps the marker away.
    """
    (tmp_path / "marker_traitor.py").write_text(MARKER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    log = tmp_path / "hostile.jsonl"
    events = _events(GOLDEN)
    events[0]["scenario"]["traitors"] = {
        "0": {"strategy": "subprocess:Popen", "args": ["touch", str(tmp_path / "POPENED")]},
        "5": "marker_traitor:Liar",
    }
    events[0]["scenario"]["strategy_folder"] = str(tmp_path)
    _write(log, events)
    yield log
    assert "marker_traitor" not in sys.modules
    assert not (tmp_path / "IMPORTED").exists()
    assert not (tmp_path / "POPENED").exists()


def test_replay_explain_and_show_never_import_a_logged_strategy(hostile_log: Path) -> None:
    report = replay_log(hostile_log)
    assert report.ok, report.inconsistencies
    assert explain(View(reconstruct(hostile_log), 1)).value == "attack"
    shown = CliRunner().invoke(main, ["show", str(hostile_log), "--event", "run.start"])
    assert shown.exit_code == 0
    assert "marker_traitor:Liar" in shown.stdout


def test_rerun_refuses_a_logged_strategy_unless_trusted(hostile_log: Path) -> None:
    with pytest.raises(LogError) as caught:
        rerun_log(hostile_log)
    assert str(caught.value) == (
        f"{hostile_log}:1: run.start names the strategy 'marker_traitor:Liar', 'subprocess:Popen': "
        "running it again would import and run that code, so rerun only a log you trust, "
        "with --trust-strategies"
    )
    result = _replay_cli(str(hostile_log), "--rerun")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == str(caught.value) + "\n"


def test_trust_strategies_goes_with_rerun() -> None:
    result = _replay_cli(str(GOLDEN), "--trust-strategies")
    assert result.exit_code == 2
    assert "--trust-strategies only matters with --rerun" in result.stderr


def test_rerun_with_trust_runs_the_example_strategy_from_any_folder(tmp_path: Path) -> None:
    """A user's ``module:Class`` next to its scenario file, logged and rerun from elsewhere."""
    log = tmp_path / "custom.jsonl"

    def om_actors(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "om_actors", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    ran = om_actors("run", str(ROOT / "examples" / "custom_traitor.yaml"), "--log", str(log), "--quiet")
    assert ran.returncode == 0, ran.stderr
    refused = om_actors("replay", str(log), "--rerun")
    assert refused.returncode == 2
    assert "'custom_traitor:Grudge'" in refused.stderr
    assert "--trust-strategies" in refused.stderr
    trusted = om_actors("replay", str(log), "--rerun", "--trust-strategies")
    assert (trusted.returncode, trusted.stderr) == (0, "")
    assert trusted.stdout.splitlines() == [
        "replay OK: 156 messages, decisions and verdict match",
        "rerun OK: all 168 events match the log",
    ]


def test_rerun_of_a_built_in_strategy_needs_no_trust() -> None:
    assert rerun_log(GOLDEN)[1] is None


def _mark_undelivered(log: Path, round: int, path: list[int], receiver: int, *, counted: bool = True) -> int:
    """Mark one message as sent but never delivered, as a network that lost it would log it."""
    events = _events(log)
    for number, event in enumerate(events, start=1):
        if event["event"] == "message" and (event["path"], event["receiver"]) == (path, receiver):
            event["delivered"] = False
            line = number
        if event["event"] == "round.end" and event["round"] == round and counted:
            event["undelivered"] = event.get("undelivered", 0) + 1
    _write(log, events)
    return line


def test_an_undelivered_message_is_counted_and_reported(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1, order="attack"), tmp_path)
    _mark_undelivered(log, 2, [0, 1], 2)  # a last-round message: it sways no majority here
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert (report.messages, report.undelivered) == (9, 1)
    result = _replay_cli(str(log))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "replay OK: 9 messages, decisions and verdict match",
        "1 message owed by loyal generals was not delivered: "
        "the synchrony assumption (A3) broke, so the verdict is not the theorem's",
    ]


def test_an_undelivered_message_never_reaches_its_receiver(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1, order="attack"), tmp_path)
    _mark_undelivered(log, 1, [0], 3)
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert found[0] == (
        'line 10: loyal general 3 relayed "attack" along [0, 3] to 1, '
        'but it never received [0], so it owed the default "retreat"'
    )


def test_round_end_must_count_the_undelivered_messages(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1, order="attack"), tmp_path)
    _mark_undelivered(log, 2, [0, 1], 2, counted=False)
    assert [str(i) for i in replay_log(log).inconsistencies] == [
        "line 12: round 2 claims 0 undelivered messages from loyal generals, the log marks 1"
    ]


def test_a_traitors_undelivered_message_is_not_the_loyal_count(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1, order="attack", traitors={1: "flip"}), tmp_path)
    _mark_undelivered(log, 2, [0, 1], 2, counted=False)
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert report.undelivered == 0


@attrs.frozen
class SilentFrom:
    """Sends truthfully until ``round``, then nothing: what a loyal node that died looks like."""

    round: int

    def choose(self, round: int, path: Route, receiver: int, value: str, rng: random.Random) -> object:
        return value if round < self.round else None


def _crash_log(tmp_path: Path, *, crashed: int = 3, round: int = 2, where: str = "before round.end") -> Path:
    """A run where loyal ``crashed`` dies in ``round``: its sends stop, its decision is gone.

    Made by running it as a traitor that falls silent, then logging it as
    loyal, with a ``general.crashed`` line placed ``where`` asked.
    """
    scenario = Scenario(generals=7, m=2, order="attack", traitors={crashed: SilentFrom(round)})
    events = _events(_log_of(scenario, tmp_path))
    del events[0]["scenario"]["traitors"][str(crashed)]
    events = [e for e in events if not (e["event"] == "decision" and e["general"] == crashed)]
    end = next(i for i, e in enumerate(events) if e["event"] == "round.end" and e["round"] == round)
    at = {"before round.end": end, "after round.end": end + 1, "at the end": len(events) - 1}[where]
    events.insert(at, {"event": "general.crashed", "round": round, "general": crashed})
    log = tmp_path / "crashed.jsonl"
    _write(log, events)
    return log


@pytest.mark.parametrize("where", ["before round.end", "after round.end", "at the end"])
def test_a_crash_excuses_what_the_general_never_sent_and_counts_it(tmp_path: Path, where: str) -> None:
    report = replay_log(_crash_log(tmp_path, where=where))
    assert report.ok, report.inconsistencies
    # Round 2: [0, 3] to 1, 2, 4, 5, 6; round 3: [0, x, 3] for five x, each to four generals.
    assert report.crashes == (Crash(3, 2, lost=5 + 5 * 4),)
    assert report.messages == 156 - 25


def test_replay_says_what_a_crash_lost(tmp_path: Path) -> None:
    result = _replay_cli(str(_crash_log(tmp_path)))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "replay OK: 131 messages, decisions and verdict match",
        "general 3 crashed in round 2: 25 messages it owed were never sent, and its decision is lost",
    ]


def test_without_its_crash_line_a_dead_general_is_an_inconsistency(tmp_path: Path) -> None:
    log = _crash_log(tmp_path)
    _write(log, [e for e in _events(log) if e["event"] != "general.crashed"])
    found = replay_log(log).inconsistencies
    assert len(found) == 25 + 1
    assert found[-1].message == "no decision logged for general 3"


def test_a_crashed_general_sends_correctly_until_it_dies(tmp_path: Path) -> None:
    log = _crash_log(tmp_path, round=3)
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 3 and e["round"] == 2, _flip)
    first, *downstream = replay_log(log).inconsistencies  # then whoever relayed it, in round 3
    assert first.line == line
    assert first.message.startswith('loyal general 3 relayed "retreat" along [0, 3]')
    assert {i.message.split(" to ")[0] for i in downstream} == {
        'loyal general 1 relayed "attack" along [0, 3, 1]'
    }


def test_a_crashed_general_has_no_decision(tmp_path: Path) -> None:
    log = _crash_log(tmp_path)
    events = _events(log)
    decision = next(i for i, e in enumerate(events) if e["event"] == "decision" and e["general"] == 4)
    events.insert(decision, {"event": "decision", "general": 3, "value": "attack", "traitor": False})
    _write(log, events)
    (only,) = replay_log(log).inconsistencies
    assert str(only) == f"line {decision + 1}: general 3 crashed in round 2, yet the log has its decision"


def test_a_crashed_receiver_owes_no_rejection_records(tmp_path: Path) -> None:
    scenario = Scenario(
        generals=7, m=2, order="attack", traitors={2: "adversaries:Garbage", 3: SilentFrom(2)}
    )
    events = _events(_log_of(scenario, tmp_path))
    del events[0]["scenario"]["traitors"]["3"]
    events = [
        e
        for e in events
        if not (e["event"] == "decision" and e["general"] == 3)
        and not (e["event"] == "message.rejected" and e["receiver"] == 3 and e["round"] >= 2)
    ]
    assert len(events) < len(_events(tmp_path / "run.jsonl")) - 1  # some rejection records went
    events.insert(-1, {"event": "general.crashed", "round": 2, "general": 3})
    log = tmp_path / "crashed.jsonl"
    _write(log, events)
    report = replay_log(log)
    assert report.ok, report.inconsistencies


@pytest.mark.parametrize(
    ("crash", "message"),
    [
        ({"round": 2, "general": 9}, "general 9 crashed, but this is a 7-general run"),
        ({"round": 7, "general": 3}, "general 3 crashed in round 7, but this run has rounds 1 to 3"),
    ],
)
def test_an_impossible_crash_is_an_inconsistency(tmp_path: Path, crash: dict[str, int], message: str) -> None:
    events = _events(GOLDEN)
    events.insert(-1, {"event": "general.crashed", **crash})
    log = tmp_path / "crash.jsonl"
    _write(log, events)
    assert [i.message for i in replay_log(log).inconsistencies] == [message]


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


# --- a hostile log's control characters never reach the terminal raw --------------


def test_a_line_of_random_bytes_is_quoted_with_its_control_characters_escaped(tmp_path: Path) -> None:
    log = tmp_path / "noise.jsonl"
    log.write_bytes(b"abc\x1b[5mblink\xc2\x9b2J\x7f\x07\n" + GOLDEN.read_bytes())
    result = _replay_cli(str(log))
    assert result.exit_code == 2
    assert result.stderr == rf"{log}:1: not a JSON line: abc\x1b[5mblink\x9b2J\x7f\x07" + "\n"


def test_replay_and_rerun_lines_show_logged_control_characters_escaped(tmp_path: Path) -> None:
    log = tmp_path / "edited.jsonl"
    lines = GOLDEN.read_text().splitlines()
    number = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "decision")
    decision = json.loads(lines[number])
    computed, decision["value"] = decision["value"], "\x1b[5mevil\x9b"
    lines[number] = json.dumps(decision, ensure_ascii=False)  # C1 and DEL may stand raw in JSON
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = _replay_cli(str(log), "--rerun")
    assert result.exit_code == 1
    general = decision["general"]
    assert result.stdout.splitlines()[0] == (
        rf'replay MISMATCH: line {number + 1}: general {general}: the log says it decided "\x1b[5mevil\x9b", '
        f'replay computes "{computed}"'
    )
    logged = lines[number].replace("\x9b", r"\x9b")  # ESC is \u001b in JSON already; the raw CSI is not
    assert f"  log:   {logged}" in result.stdout.splitlines()
    for control in "\x1b\x9b":
        assert control not in result.stdout + result.stderr


# --- any algorithm: SM(m)'s signatures checked from the log, a pathless algorithm replayed --------------

SIGNED = Scenario(algorithm="sm", generals=5, m=2, traitors={0: "split", 3: "late"})


def _tamper(signature: str) -> str:
    """One hex digit changed: a signature that no longer verifies."""
    return ("1" if signature[0] == "0" else "0") + signature[1:]


@pytest.mark.parametrize(
    "scenario",
    [
        SIGNED,
        load_scenario(SCENARIOS / "three-generals-signed.yaml"),
        Scenario(algorithm="sm", generals=7, m=2),
    ],
    ids=["split-late", "figure-5", "loyal"],
)
def test_an_sm_log_replays_and_reruns(scenario: Scenario, tmp_path: Path) -> None:
    log = _log_of(scenario, tmp_path)
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert report.messages == simulate_sync(scenario).messages
    assert rerun_log(log)[1] is None


def test_a_tampered_signature_is_caught_with_its_line(tmp_path: Path) -> None:
    log = _log_of(SIGNED, tmp_path)
    line = _edit(
        log,
        lambda e: e["event"] == "message" and e["sender"] == 1 and e["round"] == 2,
        lambda e: e.update(signatures=[e["signatures"][0], _tamper(e["signatures"][1])]),
    )
    sent, refused, *_ = replay_log(log).inconsistencies
    assert sent.line == refused.line == line
    assert sent.message.startswith("loyal general 1 sent [0, 1] to 2 with signatures[1] ")
    assert refused.message == (
        "general 2, message along [0, 1] from 1: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )


def test_a_tampered_value_is_caught_with_its_line(tmp_path: Path) -> None:
    """The value a traitor signed, changed in the log: the commander's signature no longer covers it."""
    log = _log_of(SIGNED, tmp_path)
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 0 and e["receiver"] == 1, _flip)
    first = replay_log(log).inconsistencies[0]
    assert str(first) == (
        f"line {line}: general 1, message along [0] from 0: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )


def test_a_loyal_sm_relay_of_another_value_cites_what_it_received(tmp_path: Path) -> None:
    log = _log_of(Scenario(algorithm="sm", generals=4, m=1, order="attack"), tmp_path)
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 2, _flip)
    assert str(replay_log(log).inconsistencies[0]) == (
        f'line {line}: loyal general 2 relayed "retreat" along [0, 2] to 1, '
        'but it received "attack" for [0] (line 3)'
    )


@pytest.fixture(scope="module")
def cluster_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SIGNED's log as a cluster writes it: every node signs with a key of its own, never the seed's."""
    path = tmp_path_factory.mktemp("cluster") / "cluster.jsonl"

    async def run() -> None:
        with trio.fail_after(60):
            await run_cluster(SIGNED, log=path)

    trio.run(run)
    return path


@pytest.fixture
def cluster_copy(cluster_log: Path, tmp_path: Path) -> Path:
    """A copy of the cluster's log, for a test to edit."""
    copy = tmp_path / "cluster.jsonl"
    copy.write_bytes(cluster_log.read_bytes())
    return copy


def test_a_cluster_sm_log_replays_though_replay_cannot_sign_again(cluster_log: Path, tmp_path: Path) -> None:
    seed_keys = SIGNED.rules.record(SIGNED.setup)["keys"]
    logged = _events(cluster_log)
    assert set(logged[0]["public"]["keys"].values()).isdisjoint(seed_keys.values())
    report = replay_log(cluster_log)
    assert report.ok, report.inconsistencies
    assert report.messages == simulate_sync(SIGNED).messages
    replayed = CliRunner().invoke(main, ["replay", str(cluster_log)])
    assert replayed.exit_code == 0, replayed.output


def test_a_cluster_sm_log_reruns_in_one_process_but_for_its_keys(cluster_copy: Path, tmp_path: Path) -> None:
    """A run here signs with the seed's keys: the rerun compares everything but keys and signatures."""
    assert rerun_log(cluster_copy) == (len(_events(cluster_copy)), None)
    line = _edit(cluster_copy, lambda e: e["event"] == "decision" and e["general"] == 2, _flip)
    _, divergence = rerun_log(cluster_copy)
    assert divergence is not None
    assert divergence.line == line
    # A log written in one process is still compared byte for byte, signatures and all.
    seeded = _log_of(SIGNED, tmp_path, "seeded.jsonl")
    tampered = _edit(
        seeded,
        lambda e: e["event"] == "message" and e["sender"] == 1,
        lambda e: e.update(signatures=[_tamper(e["signatures"][0]), *e["signatures"][1:]]),
    )
    found = rerun_log(seeded)[1]
    assert found is not None
    assert found.line == tampered


def test_a_tampered_signature_in_a_cluster_log_is_caught_with_its_line(cluster_copy: Path) -> None:
    line = _edit(
        cluster_copy,
        lambda e: e["event"] == "message" and e["sender"] == 1 and e["round"] == 2,
        lambda e: e.update(signatures=[e["signatures"][0], _tamper(e["signatures"][1])]),
    )
    sent, refused, *_ = replay_log(cluster_copy).inconsistencies
    assert sent.line == refused.line == line
    assert sent.message.startswith("loyal general 1 sent [0, 1] to 2 with signatures[1] ")
    assert sent.message.endswith('but the message it owed has "(one general 1\'s published key verifies)"')
    assert refused.message == (
        "general 2, message along [0, 1] from 1: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )


def test_a_cluster_log_message_signed_with_the_seeds_keys_is_caught(cluster_copy: Path) -> None:
    """What a traitor node could make: the commander's link as the seed gives it, in a cluster log."""
    seeded = _log_of(SIGNED, cluster_copy.parent, "seeded.jsonl")
    forged = next(e for e in _events(seeded) if e["event"] == "message" and e["sender"] == 1)
    line = _edit(
        cluster_copy,
        lambda e: e["event"] == "message" and (e["sender"], e["receiver"], e["round"]) == (1, 2, 2),
        lambda e: e.update(signatures=forged["signatures"]),
    )
    sent, refused, *then = replay_log(cluster_copy).inconsistencies
    assert sent.line == refused.line == line
    assert sent.message.startswith("loyal general 1 sent [0, 1] to 2 with signatures[0] ")
    assert refused.message == (
        "general 2, message along [0, 1] from 1: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )
    # Having refused it, general 2 owed no relay of it: the log's relays are flagged too.
    assert {i.message.split(" to ")[0] for i in then} == {"loyal general 2 sent [0, 1, 2]"}


def test_a_public_key_swapped_in_a_cluster_log_is_caught_at_the_first_message(cluster_copy: Path) -> None:
    """Every link signs every general's key (the run it belongs to), so one swapped key breaks them all."""
    other = SIGNED.rules.record(SIGNED.setup)["keys"][
        "1"
    ]  # a real key, but not the one general 1 signed with
    _edit(
        cluster_copy, lambda e: e["event"] == "run.start", lambda e: e["public"]["keys"].update({"1": other})
    )
    found = replay_log(cluster_copy).inconsistencies
    assert str(found[0]) == (
        "line 2: general 1, message along [0] from 0: the log says accepted, "
        "the protocol says rejected for signature does not verify"
    )


def test_a_public_key_that_is_not_the_scenarios_is_caught(tmp_path: Path) -> None:
    log = _log_of(SIGNED, tmp_path)
    _edit(log, lambda e: e["event"] == "run.start", lambda e: e["public"]["keys"].update({"2": "00"}))
    (only,) = replay_log(log).inconsistencies
    assert only.line == 1
    assert only.message.startswith('run.start has public.keys.2 "00", but SM(2) publishes "')


def test_a_log_without_its_public_keys_is_caught(tmp_path: Path) -> None:
    log = _log_of(SIGNED, tmp_path)
    _edit(log, lambda e: e["event"] == "run.start", lambda e: e.pop("public"))
    (only,) = replay_log(log).inconsistencies
    assert only.message.startswith('run.start has public nothing, but SM(2) publishes {"keys": ')


def test_a_message_out_of_its_round_is_an_inconsistency(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    line = _edit(log, lambda e: e["event"] == "message" and e["round"] == 2, lambda e: e.update(round=1))
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert found[0] == f"line {line}: message of round 1 logged where round 2 is under way"


def test_a_message_from_outside_the_army_is_an_inconsistency(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    line = _edit(log, lambda e: e["event"] == "message", lambda e: e.update(sender=9))
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert found[0] == f"line {line}: message from general 9, who is not in a 4-general run"


def test_a_pathless_algorithm_replays_and_its_edits_are_caught(tmp_path: Path, echo: object) -> None:
    log = _log_of(
        Scenario(algorithm="echo", generals=5, m=1, order="attack", traitors={2: "split"}), tmp_path
    )
    assert replay_log(log).ok, replay_log(log).inconsistencies
    assert rerun_log(log)[1] is None
    line = _edit(log, lambda e: e["event"] == "message" and e["sender"] == 1, _flip)
    assert str(replay_log(log).inconsistencies[0]) == (
        f'line {line}: loyal general 1 sent "retreat" to 2 in round 2, but it owed "attack"'
    )


# --- an algorithm without paths, over several rounds: conftest's Gossip ----------------


def _gossip_log(tmp_path: Path) -> Path:
    """Gossip, which the ``gossip`` fixture registers: round 1 the commander's order, then two rounds
    in which every general tells every other its value; traitor 3 tells odd and even ones apart."""
    scenario = Scenario(algorithm="gossip", generals=4, m=1, order="attack", traitors={3: "split"})
    return _log_of(scenario, tmp_path)


def _message(sender: int, receiver: int, round: int) -> Callable[[dict[str, Any]], bool]:
    def pick(event: dict[str, Any]) -> bool:
        wanted = ("message", sender, receiver, round)
        return (event["event"], event.get("sender"), event.get("receiver"), event.get("round")) == wanted

    return pick


def test_only_the_commanders_round_one_message_is_its_order(tmp_path: Path, gossip: object) -> None:
    """The loyal commander of Gossip also speaks in rounds 2 and 3, with its value: no longer an order."""
    log = _gossip_log(tmp_path)
    assert replay_log(log).ok, replay_log(log).inconsistencies
    later = _edit(log, _message(0, 1, 2), _flip)
    first = _edit(log, _message(0, 3, 1), _flip)  # to the traitor, whose relays nobody checks
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert found[:2] == [
        f'line {first}: the loyal commander sent "retreat" to 3, but its order is "attack"',
        f'line {later}: loyal general 0 sent "retreat" to 1 in round 2, but it owed "attack"',
    ]


def test_a_pathless_message_is_named_by_its_round(tmp_path: Path, gossip: object) -> None:
    """Missing, sent twice, or refused: without a path, the round and the sender say which message."""
    log = _gossip_log(tmp_path)
    events = _events(log)
    dropped = next(i for i, e in enumerate(events) if _message(1, 2, 3)(e))
    twice = next(i for i, e in enumerate(events) if _message(2, 3, 2)(e))
    events = [*events[:twice], events[twice], *events[twice:dropped], *events[dropped + 1 :]]
    _write(log, events)
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert f"line {twice + 2}: loyal general 2 sent 2 messages to 3 in round 2, but owed 1" in found
    assert (
        f"line {twice + 2}: general 3, message from 2 in round 2: the log says accepted, "
        "the protocol says rejected for second rumour from the same general in one round"
    ) in found
    assert any(
        'loyal general 1 owed "attack" to 2 in round 3, but the log has no such message' in text
        for text in found
    )
    assert not any("along" in text or "[]" in text for text in found), found


def test_every_message_a_pathless_algorithm_accepts_is_kept_apart(tmp_path: Path, gossip: object) -> None:
    """Arrivals are keyed by round and sender too: without paths, every message is along ()."""
    log = _gossip_log(tmp_path)
    reconstruction = reconstruct(log)
    to_1 = [e for e in _events(log) if e["event"] == "message" and e["receiver"] == 1]
    assert len(to_1) == 1 + 3 + 3
    kept = {key: [(a.sender, a.round, a.value, a.line) for a in arrivals]
            for key, arrivals in reconstruction.arrivals.items() if key[1] == 1}  # fmt: skip
    lines = {(e["sender"], e["round"]): number for number, e in enumerate(_events(log), start=1)
             if e["event"] == "message" and e["receiver"] == 1}  # fmt: skip
    assert kept == {
        (0, 1, e["round"], e["sender"], ()): [
            (e["sender"], e["round"], e["value"], lines[e["sender"], e["round"]])
        ]
        for e in to_1
    }
    assert [a.line for a in reconstruction.along(1, ())] == sorted(lines.values())
    assert reconstruct(log, watching=()).arrivals == {}


class RepeatingGeneral(GossipGeneral):
    """Gossip's general, saying everything twice from round 2 on: two equal messages a receiver a round."""

    def _outbox(self, round: int) -> list[Outgoing]:
        once = super()._outbox(round)
        return [out for out in once for _ in range(1 if round == 1 else 2)]


class Repeating(Gossip):
    name = "repeating"
    title = "REPEATING(m)"

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> RepeatingGeneral:
        return RepeatingGeneral(self, setup, me, order)


def test_several_messages_owed_along_one_path_pair_up_with_the_logged_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without paths, two messages to one receiver in one round are both along (): neither is "sent twice"."""
    monkeypatch.setitem(REGISTRY, "repeating", Repeating())
    scenario = Scenario(algorithm="repeating", generals=4, m=1, order="attack", traitors={3: "split"})
    log = _log_of(scenario, tmp_path)
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert report.messages == 3 + 2 * 2 * 4 * 3
    line = _edit(log, _message(1, 2, 2), _flip)
    assert str(replay_log(log).inconsistencies[0]) == (
        f'line {line}: loyal general 1 sent "retreat" to 2 in round 2, but it owed "attack"'
    )


def test_a_loyal_message_logged_twice_is_named_once_too_many(tmp_path: Path) -> None:
    log = _log_of(Scenario(generals=4, m=1), tmp_path)
    events = _events(log)
    copied = next(i for i, e in enumerate(events) if e["event"] == "message" and e["path"] == [0, 1])
    _write(log, [*events[: copied + 1], events[copied], *events[copied + 1 :]])
    found = [str(i) for i in replay_log(log).inconsistencies]
    receiver = events[copied]["receiver"]
    assert f"line {copied + 2}: loyal general 1 sent [0, 1] to {receiver} twice, but owed it once" in found


@attrs.frozen
class Hearsay:
    """A class shaped like Gossip's Rumour, field for field, but not it."""

    value: object


def test_a_compose_that_returns_another_class_is_said_in_words(
    tmp_path: Path, gossip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every field equal, the payloads still unequal: replay says why instead of raising StopIteration."""
    log = _gossip_log(tmp_path)
    monkeypatch.setattr(GossipGeneral, "_compose", lambda self, *_: Hearsay("attack"))
    found = replay_log(log).inconsistencies
    assert str(found[0]) == (
        "line 2: loyal general 0 sent a message to 1 in round 1: every field is the one it owed, but "
        "GOSSIP(m) composes a Hearsay where its payload class is Rumour, so no logged message can match: "
        "the algorithm's compose must return its payload class"
    )


@attrs.frozen(eq=False)
class Loner:
    """A payload class that compares unequal to any other instance, field for field the same or not."""

    value: object


def test_a_payload_unequal_to_its_equal_is_said_in_words(
    tmp_path: Path, gossip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _gossip_log(tmp_path)
    monkeypatch.setattr(gossip, "payload", Loner)
    monkeypatch.setattr(GossipGeneral, "_compose", lambda self, outgoing, path, value: Loner(value))
    found = [str(i) for i in replay_log(log).inconsistencies]
    assert (
        "line 2: loyal general 0 sent a message to 1 in round 1: every field reads as the one it owed, "
        "yet Loner compares the two unequal (a field that is not equal to itself, or an __eq__ of its own): "
        "the algorithm's payload must compare equal field for field"
    ) in found


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    algorithm=st.sampled_from(sorted(REGISTRY)),
    generals=st.integers(4, 6),
    traitors=st.dictionaries(
        st.integers(0, 5), st.sampled_from(["silent", "split", "random", "late", "flip"]), max_size=2
    ),
    seed=st.integers(0, 2**16),
)
def test_any_run_replays_ok_and_reruns_the_same(
    tmp_path: Path, algorithm: str, generals: int, traitors: dict[int, str], seed: int
) -> None:
    """Whatever the algorithm and its traitors do, replay reproduces the run from its log alone."""
    strategies = algorithm_named(algorithm).strategies()
    traitors = {g: name for g, name in traitors.items() if g < generals and name in strategies}
    scenario = Scenario(algorithm=algorithm, generals=generals, m=2, traitors=traitors, seed=seed)
    log = _log_of(scenario, tmp_path, f"{algorithm}-{seed}.jsonl")
    report = replay_log(log)
    assert report.ok, report.inconsistencies
    assert rerun_log(log)[1] is None
