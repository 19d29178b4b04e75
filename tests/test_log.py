"""The JSON-lines log.

Rules for this file:
- read logs back with ``json`` line by line, as a user's tools would;
- never configure structlog globally here either: the log must not need it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from om_actors import (
    SCHEMA,
    Event,
    RoundEnded,
    Scenario,
    __version__,
    load_scenario,
    read_log,
    simulate_sync,
)
from om_actors.cli import main

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def seven_generals_log() -> list[dict[str, Any]]:
    log = io.BytesIO()
    simulate_sync(load_scenario(SCENARIOS / "seven-generals.yaml"), log=log)
    return _lines(log.getvalue())


def test_the_log_opens_with_everything_needed_to_run_it_again(
    seven_generals_log: list[dict[str, Any]],
) -> None:
    start = seven_generals_log[0]
    assert list(start) == ["event", "schema", "version", "seed", "scenario"]
    assert (start["event"], start["schema"], start["version"], start["seed"]) == (
        "run.start",
        SCHEMA,
        __version__,
        42,
    )
    assert start["scenario"]["traitors"] == {"0": {"strategy": "split", "lie_to": "even"}, "5": "flip"}


def test_every_message_is_a_line_with_its_path(seven_generals_log: list[dict[str, Any]]) -> None:
    messages = [e for e in seven_generals_log if e["event"] == "message"]
    assert len(messages) == 156
    assert messages[0] == {
        "event": "message",
        "round": 1,
        "sender": 0,
        "receiver": 1,
        "path": [0],
        "value": "retreat",
    }
    assert all(m["path"][-1] == m["sender"] and len(m["path"]) == m["round"] for m in messages)


def test_the_log_ends_with_decisions_and_the_verdict(seven_generals_log: list[dict[str, Any]]) -> None:
    decisions = [e for e in seven_generals_log if e["event"] == "decision"]
    assert [(d["general"], d["traitor"]) for d in decisions] == [(g, g in (0, 5)) for g in range(7)]
    assert seven_generals_log[-1] == {
        "event": "verdict",
        "agreement": True,
        "validity": None,
        "success": True,
        "messages": 156,
        "rounds": 3,
    }
    ends = [e for e in seven_generals_log if e["event"] == "round.end"]
    assert [(e["round"], e["messages"], e["rejected"], e["timed_out"]) for e in ends] == [
        (1, 6, 0, []),
        (2, 30, 0, []),
        (3, 120, 0, []),
    ]


def test_no_line_carries_a_timestamp(seven_generals_log: list[dict[str, Any]]) -> None:
    assert not any("timestamp" in e or "time" in e for e in seven_generals_log)


def test_rejections_follow_the_message_they_refuse() -> None:
    log = io.BytesIO()
    simulate_sync(Scenario(generals=4, m=1, traitors={3: "adversaries:Garbage"}), log=log)
    events = _lines(log.getvalue())
    rejected = [i for i, e in enumerate(events) if e["event"] == "message.rejected"]
    assert len(rejected) == 2
    for index in rejected:
        message, rejection = events[index - 1], events[index]
        assert message["event"] == "message"
        assert (message["path"], message["receiver"]) == (rejection["path"], rejection["receiver"])
        assert rejection["reason"] == "value outside the domain"


class _Stop(Exception):
    pass


def test_a_run_that_dies_midway_leaves_a_valid_prefix(tmp_path: Path) -> None:
    def die_after_round_two(event: Event) -> None:
        if isinstance(event, RoundEnded) and event.round == 2:
            raise _Stop

    path = tmp_path / "partial.jsonl"
    with pytest.raises(_Stop):
        simulate_sync(Scenario(generals=7, m=2), log=path, on_event=die_after_round_two)
    events = _lines(path.read_bytes())
    assert events[0]["event"] == "run.start"
    assert events[-1] == {"event": "round.end", "round": 2, "messages": 30, "rejected": 0, "timed_out": []}


def test_logging_leaves_structlog_unconfigured() -> None:
    simulate_sync(Scenario(generals=4, m=1), log=io.BytesIO())
    assert not structlog.is_configured()


GOLDEN = Path(__file__).parent / "golden" / "seven-generals.jsonl"


def test_the_reader_takes_what_a_networked_run_logs(tmp_path: Path) -> None:
    text = GOLDEN.read_text()
    text = text.replace('"value": "retreat"}', '"value": "retreat", "delivered": false}', 1)
    text = text.replace('"timed_out": []}', '"timed_out": [], "undelivered": 1}', 1)
    text = text.replace("\n", '\n{"event": "general.crashed", "round": 1, "general": 3}\n', 1)
    log = tmp_path / "network.jsonl"
    log.write_text(text)
    lines = list(read_log(log))
    assert lines[1].fields == {"event": "general.crashed", "round": 1, "general": 3}
    assert lines[2].fields["delivered"] is False
    assert lines[8].fields["undelivered"] == 1


def test_show_prints_each_piece_of_its_table_as_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A damaged line 50 stops show there, after the rows before it are out: nothing is held back."""
    monkeypatch.setattr("om_actors.cli.SHOW_ROWS_PER_TABLE", 10)
    lines = GOLDEN.read_text().splitlines()
    lines[49] = "}{garbage"
    log = tmp_path / "damaged.jsonl"
    log.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["show", str(log)])
    assert result.exit_code == 2
    assert result.stderr == f"{log}:50: not a JSON line: }}{{garbage\n"
    rows = result.stdout.splitlines()
    assert rows[0].split() == ["line", "event", "round", "sender", "receiver", "path", "value", "detail"]
    assert [row.split()[0] for row in rows[1:]] == [str(n) for n in range(1, 41)]
    starts = {row.index(" message ") for row in rows if " message " in row}
    assert len(starts) == 1  # the pieces line up as one table
