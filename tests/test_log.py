"""The JSON-lines log.

Rules for this file:
- read logs back with ``json`` line by line, as a user's tools would;
- never configure structlog globally here either: the log must not need it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from unittest import mock

import attrs
import orjson
import pytest
import structlog
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import om_actors.log
from om_actors import (
    SCHEMA,
    Event,
    LogError,
    MessageRejected,
    MessageSent,
    OmActorsError,
    RoundEnded,
    Scenario,
    StrategyError,
    __version__,
    load_scenario,
    read_log,
    simulate_sync,
)
from om_actors.algorithm import Algorithm
from om_actors.cli import main
from om_actors.errors import CannotWrite
from om_actors.events import Kind
from om_actors.log import (
    LogWriter,
    Selection,
    as_logged,
    event_fields,
    has_paths,
    line_of,
    read_selected,
    rules_of,
)
from om_actors.oral import ORAL_MESSAGES, OralReason, Relay
from om_actors.registry import REGISTRY, algorithm_named
from om_actors.signed import SIGNED_MESSAGES, SignedReason

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
    text = text.replace('"value":"retreat"}', '"value":"retreat","delivered":false}', 1)
    text = text.replace('"timed_out":[]}', '"timed_out":[],"undelivered":1}', 1)
    text = text.replace("\n", '\n{"event": "general.crashed", "round": 1, "general": 3}\n', 1)
    log = tmp_path / "network.jsonl"
    log.write_text(text)
    lines = list(read_log(log))
    assert lines[1].fields == {"event": "general.crashed", "round": 1, "general": 3}
    assert lines[2].fields["delivered"] is False
    assert lines[8].fields["undelivered"] == 1


def test_reading_a_log_reports_how_far_it_has_got_and_ends_at_its_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(om_actors.log, "READ_PROGRESS_EVERY", 50)
    told: list[int] = []
    lines = list(read_log(GOLDEN, on_read=told.append))
    assert len(told) == len(lines) // 50 + 1
    assert told == sorted(told)
    assert told[-1] == GOLDEN.stat().st_size
    assert told[0] == sum(len(line.raw) for line in lines[:50])


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


# --- any algorithm: a message line is its payload's fields ---------------------------------


def _run(scenario: Scenario, path: Path) -> list[Event]:
    events: list[Event] = []
    simulate_sync(scenario, log=path, on_event=events.append)
    return events


def test_an_sm_message_line_carries_its_chain_and_signatures(tmp_path: Path) -> None:
    scenario = Scenario(algorithm="sm", generals=4, m=2, traitors={3: "split"})
    log = tmp_path / "signed.jsonl"
    _run(scenario, log)
    events = _lines(log.read_bytes())
    assert events[0]["public"] == scenario.rules.record(scenario.setup)
    assert set(events[0]["public"]["keys"]) == {"0", "1", "2", "3"}
    messages = [e for e in events if e["event"] == "message"]
    assert list(messages[0]) == ["event", "round", "sender", "receiver", "value", "chain", "signatures"]
    for message in messages:
        assert message["chain"][0] == 0
        assert message["chain"][-1] == message["sender"]
        assert len(message["chain"]) == len(message["signatures"]) == message["round"]
        assert all(len(signature) == 128 and int(signature, 16) >= 0 for signature in message["signatures"])


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(generals=7, m=2, traitors={0: "split", 5: "flip"}),
        Scenario(algorithm="sm", generals=5, m=2, traitors={0: "split", 2: "late"}),
        Scenario(algorithm="sm", generals=4, m=1, traitors={1: "random"}, seed=3),
    ],
    ids=["om", "sm-split-late", "sm-random"],
)
def test_every_payload_reads_back_as_it_was_sent(scenario: Scenario, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    sent = [event for event in _run(scenario, log) if isinstance(event, MessageSent)]
    read = [line for line in read_log(log) if line.event == "message"]
    assert [line.payload for line in read] == [event.payload for event in sent]
    assert [line.path for line in read] == [scenario.rules.path_of(event.payload) for event in sent]


def test_a_payload_is_written_as_its_fields_in_place_or_whole_when_it_has_none() -> None:
    relay = MessageRejected(1, 0, 1, Relay((0,), "x"), OralReason.DUPLICATE, instance=2)
    assert list(event_fields(relay).items()) == [
        ("event", "message.rejected"),
        ("instance", 2),
        ("round", 1),
        ("sender", 0),
        ("receiver", 1),
        ("path", (0,)),
        ("value", "x"),
        ("reason", "duplicate message"),
    ]
    bare = MessageSent(1, 0, 1, "no attrs class", delivered=False)
    assert event_fields(bare) == {
        "event": "message",
        "round": 1,
        "sender": 0,
        "receiver": 1,
        "payload": "no attrs class",
        "delivered": False,
    }


def test_a_line_is_compact_json_in_utf_8() -> None:
    line = line_of(MessageSent(1, 0, 2, Relay((0,), "attaque ☠")))
    assert (
        line
        == '{"event":"message","round":1,"sender":0,"receiver":2,"path":[0],"value":"attaque ☠"}'.encode()
    )


def test_an_integer_past_64_bits_is_written_whole_in_the_same_shape() -> None:
    """orjson stops at 64 bits; a traitor's longer integer still gets its line, and reads back exact."""
    line = line_of(MessageSent(2, 3, 1, Relay((0, 3), 2**70 + 1)))
    head = b'{"event":"message","round":2,"sender":3,"receiver":1,"path":[0,3],'
    assert line == head + b'"value":1180591620717411303425}'
    assert json.loads(line)["value"] == 2**70 + 1


def test_nan_beside_an_integer_past_64_bits_is_written_as_orjson_writes_nan() -> None:
    """A core's own payload may hold both; the standard library's fallback must not refuse the NaN."""
    line = line_of(MessageSent(2, 3, 1, Relay((0, 3), (float("nan"), 2**70, float("-inf"), 1.5))))
    assert line.endswith(b'"value":[null,1180591620717411303424,null,1.5]}')
    assert orjson.dumps([float("nan")]) == b"[null]"


def test_a_lone_surrogate_is_written_as_its_escape() -> None:
    """UTF-8 cannot hold a traitor's lone surrogate; JSON's escape can, and it reads back the same."""
    line = line_of(MessageSent(2, 3, 1, Relay((0, 3), "a\ud800")))
    assert line.endswith(b'"value":"a\\ud800"}')
    assert json.loads(line)["value"] == "a\ud800"


_TRAITORS_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True)
    | st.text(st.characters(codec=None)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-(2**70), 2**70), _TRAITORS_VALUES), min_size=1, max_size=8))
def test_the_file_writer_writes_exactly_the_lines_structlog_renders(said: list[tuple[int, object]]) -> None:
    """The writer calls orjson itself for speed; it must never differ from structlog's line by a byte."""
    events: list[Event] = [MessageSent(2, 3, 1, Relay((0, hop), as_logged(value))) for hop, value in said]
    events.append(RoundEnded(2, len(events), 0, ()))
    written = io.BytesIO()
    writer = LogWriter(written)
    for event in events:
        writer(event)
    assert written.getvalue() == b"".join(line_of(event) + b"\n" for event in events)
    at_once = io.BytesIO()
    LogWriter(at_once).write_all(events[:-1])  # messages alone: one layout for all of them
    LogWriter(at_once).write_all(events[-1:])
    assert at_once.getvalue() == written.getvalue()


@attrs.frozen
class _Nothing:
    """A payload class with no fields at all."""


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**70),
            st.integers(0, 2**70),
            st.one_of(_TRAITORS_VALUES.map(lambda value: Relay((0, 3), as_logged(value))), st.just(None)),
        ),
        max_size=8,
    ),
    st.sampled_from([Relay, _Nothing, dict, "mixed"]),
)
def test_messages_written_as_columns_are_the_lines_of_their_events(
    said: list[tuple[int, int, Relay | None]], kind: object
) -> None:
    """``write_messages`` never makes the events; its bytes must be theirs, each payload shared or not.

    ``None`` stands for the message before it again, as the same object.
    """
    payloads: list[object] = []
    for _, _, relay in said:
        payload: object = relay
        if kind is _Nothing:
            payload = _Nothing()
        elif kind is dict:
            payload = {"path": [0, 3]}
        elif kind == "mixed" and len(payloads) == 1:
            payload = _Nothing()
        payloads.append(payloads[-1] if relay is None and payloads else payload)
    senders, receivers = [s for s, _, _ in said], [r for _, r, _ in said]
    columns, events = io.BytesIO(), io.BytesIO()
    LogWriter(columns).write_messages(4, senders, receivers, payloads)
    LogWriter(events).write_all([MessageSent(4, s, r, p) for s, r, p in zip(senders, receivers, payloads)])
    assert columns.getvalue() == events.getvalue()


@attrs.frozen
class _Shadowing:
    """A payload whose field is named like a line's own key: the event's layout lets it overwrite the key."""

    value: str
    round: str


def test_a_payload_field_named_like_a_lines_key_is_written_as_its_event_writes_it() -> None:
    columns, events = io.BytesIO(), io.BytesIO()
    payload = _Shadowing("attack", "first")
    LogWriter(columns).write_messages(1, [0], [1], [payload])
    LogWriter(events).write_all([MessageSent(1, 0, 1, payload)])
    assert (
        columns.getvalue()
        == events.getvalue()
        == (b'{"event":"message","round":"first","sender":0,"receiver":1,"value":"attack"}\n')
    )


class _LinesAsWrite(io.BytesIO):
    """A file that says its ``writelines`` writes as its ``write`` would, and counts both."""

    writes_lines_as_write = True
    writes = 0
    lines = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        return super().write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.lines += 1
            self.write(line)


def test_a_file_whose_writelines_writes_as_write_gets_a_round_through_writelines_a_line_a_write() -> None:
    counted = _LinesAsWrite()
    assert _logged_alike(counted) == counted.writes == 168
    assert counted.lines > 150  # the messages, through writelines; the first and last lines come alone


def _logged_alike(file: io.BytesIO) -> int:
    """Log the seven generals to ``file`` and to a plain BytesIO; the bytes must match. How many lines."""
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    whole = io.BytesIO()
    simulate_sync(scenario, log=file)
    simulate_sync(scenario, log=whole)
    assert file.getvalue() == whole.getvalue()
    return whole.getvalue().count(b"\n")


def test_a_general_that_is_not_a_plain_int_is_written_as_its_event_writes_it() -> None:
    columns, events = io.BytesIO(), io.BytesIO()
    relay = Relay((0, 1), "attack")
    LogWriter(columns).write_messages(2, [True], [2], [relay])
    LogWriter(events).write_all([MessageSent(2, True, 2, relay)])
    assert (
        columns.getvalue()
        == events.getvalue()
        == (b'{"event":"message","round":2,"sender":true,"receiver":2,"path":[0,1],"value":"attack"}\n')
    )


@pytest.mark.parametrize(
    "name", ["seven-generals", "three-generals-signed", "nine-generals-king", "three-orders"]
)
def test_a_whole_runs_log_is_structlogs_lines(name: str) -> None:
    written = io.BytesIO()
    events: list[Event] = []
    simulate_sync(load_scenario(SCENARIOS / f"{name}.yaml"), log=written, on_event=events.append)
    assert written.getvalue() == b"".join(line_of(event) + b"\n" for event in events)


class _WriteOnly:
    """A binary file with nothing but ``write`` and ``flush``: all an application's log file must have."""

    def __init__(self) -> None:
        self.written = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.written.write(data)

    def flush(self) -> None:
        pass


def test_a_file_with_only_write_gets_the_same_log() -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    plain, whole = _WriteOnly(), io.BytesIO()
    simulate_sync(scenario, log=plain)  # type: ignore[arg-type]
    simulate_sync(scenario, log=whole)
    assert plain.written.getvalue() == whole.getvalue()


class _WriteAlone:
    """A file with ``write`` and nothing else, not even ``flush``."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)


def test_a_file_without_flush_gets_the_same_log() -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    alone, whole = _WriteAlone(), io.BytesIO()
    simulate_sync(scenario, log=alone)  # type: ignore[arg-type]
    simulate_sync(scenario, log=whole)
    assert bytes(alone.written) == whole.getvalue()


def test_a_log_that_is_no_binary_file_is_refused_before_the_run_with_what_log_takes(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    with pytest.raises(
        OmActorsError, match=r"^log= takes a file name, a binary file or a structlog logger, not int$"
    ):
        simulate_sync(scenario, log=42)  # type: ignore[arg-type]
    with pytest.raises(
        OmActorsError,
        match=r"^log= takes a binary file, and this StringIO is a text file: open it with mode 'wb'$",
    ):
        simulate_sync(scenario, log=io.StringIO())  # type: ignore[arg-type]
    with (
        open(tmp_path / "run.jsonl", "w") as text,
        pytest.raises(OmActorsError, match=r"^log= takes a binary file, and '.*run\.jsonl' is a text file"),
    ):
        simulate_sync(scenario, log=text)  # type: ignore[arg-type]
    assert (tmp_path / "run.jsonl").read_text() == ""


def test_a_temporary_text_file_is_refused_by_its_mode_and_a_mock_never_opens_a_descriptor() -> None:
    """NamedTemporaryFile("w") is no TextIOBase, but its mode says text; a MagicMock's fspath is no number."""
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    with tempfile.NamedTemporaryFile("w") as text, pytest.raises(OmActorsError, match=r"is a text file"):
        simulate_sync(scenario, log=text)
    with (
        tempfile.SpooledTemporaryFile(mode="w+") as spooled,
        pytest.raises(OmActorsError, match=r"text file"),
    ):
        simulate_sync(scenario, log=spooled)  # type: ignore[arg-type]
    with pytest.raises(OmActorsError):
        simulate_sync(scenario, log=mock.MagicMock())
    os.fstat(1)  # standard output is still open: a mock used to be opened as descriptor 1, and closed


class _FlushFails(io.BytesIO):
    """Takes round 1's flush, and fails every one after it: the one after the run has failed too."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes > 1:
            raise ValueError("flush of a file that broke")


def test_a_file_that_fails_as_the_run_ends_in_an_error_leaves_that_error_the_news() -> None:
    scenario = Scenario(generals=4, m=1, traitors={3: "adversaries:Exits"})  # sys.exit in round 2
    failing = _FlushFails()
    with pytest.raises(StrategyError, match="SystemExit"):
        simulate_sync(scenario, log=failing)
    assert failing.flushes == 2


def test_a_log_that_cannot_be_written_is_an_error_naming_it_and_why(tmp_path: Path) -> None:
    """What the system refuses is a CannotWrite, an OmActorsError like every other bad log=, never OSError."""
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    refused: dict[str | Path, str] = {
        tmp_path: r"^cannot write the log .+: Is a directory$",
        tmp_path / "no" / "run.jsonl": r"^cannot write the log .+/no/run\.jsonl: No such file or directory$",
        "/dev/full": r"^cannot write the log /dev/full: No space left on device$",
    }
    for target, message in refused.items():
        with pytest.raises(CannotWrite, match=message):
            simulate_sync(scenario, log=target)
    full = open("/dev/full", "wb")  # noqa: SIM115 -- its close fails too, and is no part of this test
    with pytest.raises(CannotWrite, match=r"^cannot write the log /dev/full: No space left on device$"):
        simulate_sync(scenario, log=full)
    with contextlib.suppress(OSError):
        full.close()


def test_a_file_that_is_closed_or_open_for_reading_or_a_socket_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"")
    with open(log, "rb") as reading, pytest.raises(OmActorsError, match=r"is open only for reading: open it"):
        simulate_sync(scenario, log=reading)
    closed = open(log, "wb")  # noqa: SIM115 -- closed at once, on purpose
    closed.close()
    with pytest.raises(
        OmActorsError, match=r"^log= takes a file open for writing, and '.*run\.jsonl' is closed$"
    ):
        simulate_sync(scenario, log=closed)
    with socket.socket() as sock, pytest.raises(OmActorsError, match=r"not socket$"):
        simulate_sync(scenario, log=sock)  # type: ignore[arg-type]  # it has bind(), but it is no logger


class _Counting(io.BytesIO):
    """A BytesIO whose ``write`` counts its calls: ``BytesIO.writelines`` would pass it by."""

    calls = 0

    def write(self, data: Any) -> int:
        self.calls += 1
        return super().write(data)


def test_a_file_whose_write_is_its_own_gets_every_line_through_it() -> None:
    counted = _Counting()
    assert _logged_alike(counted) == counted.calls == 168


@pytest.mark.parametrize("batch", [1, 7, 4096])
@pytest.mark.parametrize(
    "name", ["seven-generals", "nine-generals-king", "three-orders", "silent-traitor", "thirteen-generals"]
)
def test_a_log_with_no_other_listener_is_written_a_batch_at_a_time_to_the_same_bytes(
    name: str, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alone, the log gets a round at once (``write_messages``, ``write_all``); beside a handler, singly."""
    monkeypatch.setattr(om_actors.log, "_BATCH", batch)
    alone, beside = io.BytesIO(), io.BytesIO()
    scenario = load_scenario(SCENARIOS / f"{name}.yaml")
    simulate_sync(scenario, log=alone)
    simulate_sync(scenario, log=beside, on_event=lambda event: None)
    assert alone.getvalue() == beside.getvalue()


@pytest.mark.parametrize(
    ("sent", "received"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (-float("inf"), "-inf"),
        ((0, float("nan")), (0, "nan")),
        ([1.5, {"k": float("-inf")}], (1.5, {"k": "-inf"})),
        (2.5, 2.5),
    ],
)
def test_nan_and_the_infinities_are_sent_as_text_since_json_cannot_hold_them(
    sent: object, received: object
) -> None:
    """What a receiver judges is what the log reads back: a NaN written as ``null`` would not be."""
    assert as_logged(sent) == received
    line = line_of(MessageSent(2, 3, 1, Relay((0, 3), as_logged(sent))))
    assert as_logged(json.loads(line)["value"]) == received


def test_a_rejection_reason_is_written_as_its_text(tmp_path: Path) -> None:
    """``late`` releases in round m + 1 a value that arrived in round 1: Dolev-Strong refuses it."""
    log = tmp_path / "late.jsonl"
    _run(Scenario(algorithm="sm", generals=5, m=2, traitors={1: "late"}), log)
    reasons = {e["reason"] for e in _lines(log.read_bytes()) if e["event"] == "message.rejected"}
    assert reasons == {SignedReason.WRONG_ROUND.value}


def test_a_pathless_algorithms_lines_hold_its_value_only(tmp_path: Path, echo: object) -> None:
    log = tmp_path / "echo.jsonl"
    _run(Scenario(algorithm="echo", generals=4, m=1, traitors={2: "split"}), log)
    messages = [e for e in _lines(log.read_bytes()) if e["event"] == "message"]
    assert len(messages) == 3 + 3 * 2
    assert {tuple(message) for message in messages} == {("event", "round", "sender", "receiver", "value")}
    assert all(line.path == () for line in read_log(log) if line.event == "message")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    algorithm=st.sampled_from(sorted(REGISTRY)),
    traitors=st.dictionaries(
        st.integers(0, 4), st.sampled_from(["loyal", "silent", "split", "random"]), max_size=2
    ),
    seed=st.integers(0, 2**16),
)
def test_the_reader_takes_every_line_the_writer_writes(
    tmp_path: Path, algorithm: str, traitors: dict[int, str], seed: int
) -> None:
    """Writer and reader share one description of a line: what is written reads back field for field."""
    log = tmp_path / f"{algorithm}-{seed}.jsonl"
    strategies = algorithm_named(algorithm).strategies()
    traitors = {g: name for g, name in traitors.items() if name in strategies}
    events = _run(Scenario(algorithm=algorithm, generals=5, m=1, traitors=traitors, seed=seed), log)
    read = list(read_log(log))
    assert [line.fields for line in read] == [json.loads(json.dumps(event_fields(e))) for e in events]


def _damaged(tmp_path: Path, scenario: Scenario, damage: Any) -> Path:
    log = tmp_path / "damaged.jsonl"
    _run(scenario, log)
    events = _lines(log.read_bytes())
    damage(events)
    log.write_text("".join(json.dumps(event) + "\n" for event in events))
    return log


SM = Scenario(algorithm="sm", generals=4, m=1)


@pytest.mark.parametrize(
    ("scenario", "damage", "error"),
    [
        (SM, lambda events: events[1].pop("chain"), ":2: message event without 'chain'"),
        (SM, lambda events: events[1].update(round=-1),
         ":2: message event with a malformed 'round': expected a round number, got -1"),
        (SM, lambda events: events[0]["scenario"].update(algorithm="king"),
         ":1: run.start holds a scenario of unknown algorithm 'king': use one of "),
        (SM, lambda events: events[0]["scenario"].update(algorithm=["sm"]),
         ':1: run.start holds a scenario whose algorithm is not a name: ["sm"]'),
        (Scenario(generals=4, m=1), lambda events: events[0].update(schema=1),
         ":1: log schema 1 is older than this om_actors reads (2): it was written before scenarios named "
         "their algorithm; run the scenario again with this version to get a log it can read"),
        (Scenario(generals=4, m=1), lambda events: events[0].update(mode="fast"),
         ':1: run.start event with a malformed \'mode\': expected "batched", got "fast"'),
    ],
)  # fmt: skip
def test_a_line_that_breaks_the_schema_is_named(
    tmp_path: Path, scenario: Scenario, damage: Any, error: str
) -> None:
    log = _damaged(tmp_path, scenario, damage)
    with pytest.raises(LogError) as caught:
        list(read_log(log))
    assert str(caught.value).startswith(f"{log}{error}")


def test_the_schema_comes_from_a_classs_types_and_kinds() -> None:
    """A new event or payload needs no second table: its annotations are the schema."""

    @attrs.frozen
    class Probe:
        count: Annotated[int, Kind("a message count", minimum=0)]
        ids: tuple[int, ...]
        anything: object
        flag: Literal[False] | None = None
        maybe: bool | None = False

    rules = {rule.name: rule for rule in rules_of(Probe)}
    assert {name: (rule.required, rule.kind) for name, rule in rules.items()} == {
        "count": (True, "a message count"),
        "ids": (True, "a list of integers"),
        "anything": (True, "anything"),
        "flag": (False, "false"),
        "maybe": (True, "true, false or null"),
    }
    assert [rules["count"].check(v) for v in (0, 7, -1, True, 1.0)] == [True, True, False, False, False]
    assert [rules["ids"].check(v) for v in ([], [1, 2], [1, "2"], (1,))] == [True, True, False, False]
    assert [rules["flag"].check(v) for v in (False, 0, None, True)] == [True, False, False, False]
    assert [rules["maybe"].check(v) for v in (True, None, 0)] == [True, True, False]


def test_a_path_prefix_selects_sm_messages_by_their_chain(tmp_path: Path) -> None:
    """A split commander: lieutenant 1's "retreat" is new to 2 and 4, who sign and forward it in round 3."""
    log = tmp_path / "signed.jsonl"
    _run(Scenario(algorithm="sm", generals=5, m=2, traitors={0: "split"}), log)
    chosen = [line.fields for line in read_log(log) if Selection(path_prefix=(0, 1)).matches(line)]
    assert [(fields["chain"], fields["receiver"]) for fields in chosen] == [
        ([0, 1], 2),
        ([0, 1], 3),
        ([0, 1], 4),
        ([0, 1, 2], 3),
        ([0, 1, 2], 4),
        ([0, 1, 4], 2),
        ([0, 1, 4], 3),
    ]


def test_only_an_algorithm_with_the_default_path_of_and_no_path_field_has_no_paths(
    echo: Algorithm, gossip: Algorithm
) -> None:
    assert [has_paths(rules) for rules in (ORAL_MESSAGES, SIGNED_MESSAGES, echo, gossip)] == [
        True,
        True,
        False,
        False,
    ]


def test_a_path_prefix_on_a_log_without_paths_is_refused_not_matched_to_nothing(
    tmp_path: Path, gossip: Algorithm
) -> None:
    log = tmp_path / "gossip.jsonl"
    _run(Scenario(algorithm="gossip", generals=4, m=1, traitors={2: "split"}), log)
    error = (
        f"{log}:1: GOSSIP(m) messages carry no path, so a path prefix selects none of them: "
        "select them by round, sender or receiver instead"
    )
    with pytest.raises(LogError) as caught:
        list(read_selected(log, Selection(path_prefix=(0,))))
    assert str(caught.value) == error
    result = CliRunner().invoke(main, ["show", str(log), "--path-prefix", "0"])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", error + "\n")
    by_sender = CliRunner().invoke(main, ["show", str(log), "--sender", "0", "--json"])
    assert by_sender.exit_code == 0
    assert [line["round"] for line in _lines(by_sender.stdout_bytes)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]


def test_read_selected_is_read_log_filtered(tmp_path: Path) -> None:
    log = tmp_path / "signed.jsonl"
    _run(Scenario(algorithm="sm", generals=5, m=2, traitors={0: "split"}), log)
    for selection in (Selection(), Selection(path_prefix=(0, 1)), Selection(events=frozenset({"run.start"}))):
        assert [line.number for line in read_selected(log, selection)] == [
            line.number for line in read_log(log) if selection.matches(line)
        ]


# --- docs/log-format.md says what the code does --------------------------------------------

DOC = (Path(__file__).parent.parent / "docs" / "log-format.md").read_text()


def _documented_reasons(doc: str) -> dict[tuple[str, str], list[str]]:
    """The reasons section: each ``TITLE reasons (`module.Enum`)`` heading with the texts listed under it."""
    section = doc.split("<!-- reasons:")[1].split("<!-- end of reasons -->")[0]
    found: dict[tuple[str, str], list[str]] = {}
    texts: list[str] = []
    for line in section.splitlines():
        heading = re.match(r"^(\S+) reasons \(`([\w.]+)`\)", line)
        if heading:
            texts = found.setdefault((heading[1], heading[2]), [])
        elif line.startswith("- `"):
            texts.append(line[3:-1])
    return found


def _section_of(rules: Algorithm) -> tuple[str, str]:
    return rules.title, f"{rules.reasons.__module__}.{rules.reasons.__qualname__}"


def test_the_documented_rejection_reasons_are_the_algorithms() -> None:
    """One section per registered algorithm, whatever their number, each listing its reasons in order."""
    assert _documented_reasons(DOC) == {
        _section_of(rules): [reason.value for reason in rules.reasons] for rules in REGISTRY.values()
    }
    assert ("OM(m)", "om_actors.oral.OralReason") in _documented_reasons(DOC)  # the heading's form


def test_a_third_algorithm_is_one_more_reasons_section(gossip: Algorithm) -> None:
    """The reasons test reads any number of sections: a registered algorithm needs only its own."""
    listed = [f"- `{reason.value}`" for reason in gossip.reasons]
    section = "\n".join([f"{gossip.title} reasons (`conftest.GossipReason`):", "", *listed])
    doc = DOC.replace("<!-- end of reasons -->", section + "\n<!-- end of reasons -->")
    assert _documented_reasons(doc) == {
        _section_of(rules): [reason.value for reason in rules.reasons] for rules in REGISTRY.values()
    }
    assert _section_of(gossip) == ("GOSSIP(m)", "conftest.GossipReason")


@pytest.mark.parametrize("event", list(get_args(Event)), ids=lambda cls: cls.name)
def test_every_field_of_every_event_is_documented(event: type[Event]) -> None:
    section = DOC.split(f"### `{event.name}`")[1].split("\n### ")[0]
    if event is MessageRejected:  # "the fields of the message it refers to, plus"
        section += DOC.split("### `message`")[1].split("\n### ")[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE))
    if f"`{event.name}`" in DOC.split("| `instance` |")[1].split("\n")[0]:  # "the same optional field is on"
        documented.add("instance")
    fields = {field.name for field in attrs.fields(event)} - {"payload"}
    assert fields <= documented


@pytest.mark.parametrize("rules", list(REGISTRY.values()), ids=lambda rules: rules.name)
def test_every_payload_field_is_documented(rules: Algorithm) -> None:
    section = re.split(rf"An? \*\*{re.escape(rules.title)}\*\* message", DOC)[1].split("\n\n", 2)[1]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert documented == [field.name for field in attrs.fields(rules.payload)]
