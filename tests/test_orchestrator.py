"""Whole runs: generals as trio tasks, driven round by round.

Rules for this file:
- anything timed runs on trio's ``autojump_clock`` (MockClock with
  ``autojump_threshold=0``), so a timeout costs no real time;
- every async test is bounded by ``trio.fail_after``;
- outcomes are checked against the theorem or against numbers worked out by
  hand, never against a previous run of the same code.
"""

from __future__ import annotations

import gc
import io
import json
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
import trio
from conftest import Echo
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import (
    EVENT_BUFFER,
    Event,
    Instance,
    MessageRejected,
    MessageSent,
    OmActorsError,
    RoundEnded,
    RunStarted,
    Scenario,
    ScenarioError,
    Strategy,
    StrategyError,
    StrategyFailed,
    TraitorSpec,
    load_scenario,
    messages_received,
    messages_sent,
    open_simulation,
    simulate,
    simulate_sync,
)
from om_actors.limits import LIMIT_VARIABLE
from om_actors.oral import ORAL_MESSAGES
from om_actors.orchestrator import resolve_mode
from om_actors.scenario import scenario_from_dict
from om_actors.signed import SIGNED_MESSAGES

SCENARIOS = Path(__file__).parent.parent / "scenarios"


@contextmanager
def bounded(seconds: float = 10) -> Iterator[None]:
    with trio.fail_after(seconds):
        yield


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_shows_what_it_expects(path: Path) -> None:
    result = simulate_sync(load_scenario(path))
    assert result.unmet_expectations() == []


def test_the_seven_generals_decide_attack_with_156_messages() -> None:
    result = simulate_sync(load_scenario(SCENARIOS / "seven-generals.yaml"))
    assert result.decisions == {1: "attack", 2: "attack", 3: "attack", 4: "attack", 6: "attack"}
    assert (result.agreement, result.validity, result.success) == (True, None, True)
    assert result.messages_per_round == (6, 30, 120)
    assert result.traitors == (0, 5)


def test_three_generals_break_validity() -> None:
    result = simulate_sync(load_scenario(SCENARIOS / "three-generals.yaml"))
    assert result.decisions == {0: "attack", 1: "retreat"}
    assert (result.agreement, result.validity, result.success) == (True, False, False)


def test_thirteen_generals_each_lieutenant_receives_9032() -> None:
    result = simulate_sync(Scenario(generals=13, m=4, traitors={3: "loyal"}))
    assert result.messages == 108_384
    assert result.received == {0: 0, **dict.fromkeys(range(1, 13), 9_032)}
    assert result.success


@pytest.mark.parametrize(("generals", "m"), [(2, 0), (3, 1), (4, 1), (5, 2), (7, 2), (6, 4), (8, 3)])
def test_message_counts_match_the_formula(generals: int, m: int) -> None:
    result = simulate_sync(Scenario(generals=generals, m=m, traitors={1: "flip"}))
    assert result.messages == messages_sent(generals, m)
    lieutenants = {g: count for g, count in result.received.items() if g != 0}
    assert set(lieutenants.values()) == {messages_received(generals, m)}
    assert result.rounds == m + 1


def test_a_silent_traitor_sends_nothing_and_the_others_still_relay_for_it() -> None:
    result = simulate_sync(Scenario(generals=4, m=1, traitors={2: "silent"}))
    assert result.messages_per_round == (3, 4)  # 2's two relays are missing
    assert result.decisions == {0: "attack", 1: "attack", 3: "attack"}


async def test_a_silent_traitor_costs_no_waiting(autojump_clock: trio.testing.MockClock) -> None:
    with bounded():
        start = trio.current_time()
        await simulate(Scenario(generals=7, m=2, traitors={0: "silent", 3: "silent"}, round_timeout=30))
        assert trio.current_time() == start


async def test_a_hanging_general_is_cut_off_by_the_round_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = Scenario(generals=4, m=1, traitors={3: "adversaries:Hang"}, round_timeout=5)
    with bounded():
        start = trio.current_time()
        result = await simulate(scenario)
        assert trio.current_time() - start == 5  # only round 2 has anything for 3 to send
    assert result.timed_out == {2: (3,)}
    assert result.decisions == {0: "attack", 1: "attack", 2: "attack"}
    assert result.messages_per_round == (3, 4)


@attrs.frozen
class Dawdle:
    """A synchronous strategy whose every answer takes ``seconds`` of the mock clock."""

    clock: trio.testing.MockClock
    seconds: float

    def choose(self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: object) -> object:
        self.clock.jump(self.seconds)  # time passes, but the task never awaits
        return value


async def test_a_synchronous_choose_is_not_cut_off_by_the_round_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As Strategy's and round_timeout's docs say: only a strategy that awaits can be cut off."""
    scenario = Scenario(generals=4, m=1, traitors={3: Dawdle(autojump_clock, 10)}, round_timeout=5)
    with bounded(100):
        start = trio.current_time()
        result = await simulate(scenario)
        assert trio.current_time() - start == 20  # two answers in round 2, ten seconds each
    assert result.timed_out == {}
    assert result.messages_per_round == (3, 6)  # every one of them sent, the deadline long past
    assert "cannot be cut off" in (Strategy.__doc__ or "")


async def test_a_slow_general_within_the_timeout_changes_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = TraitorSpec("adversaries:Slow", {"delay": 0.1})
    with bounded():
        result = await simulate(Scenario(generals=4, m=1, traitors={3: slow}, round_timeout=1))
    assert result.timed_out == {}
    assert result.messages == messages_sent(4, 1)
    assert result.decisions == {0: "attack", 1: "attack", 2: "attack"}


def _rejections(scenario: Scenario) -> tuple[dict[int, str], list[MessageRejected]]:
    events: list[Event] = []
    result = simulate_sync(scenario, on_event=events.append)
    return dict(result.decisions), [e for e in events if isinstance(e, MessageRejected)]


@pytest.mark.parametrize(
    ("path", "round", "reason"),
    [
        ((0, 1), 2, "path does not end with the sender"),
        ((0, 3, 3), 2, "path repeats a general"),
        ((0, 3), 3, "path has the wrong length for the round"),
        ((1, 3), 2, "path does not start with the commander"),
        ((0, 17), 2, "path names a general out of range"),
        ("0,3", 2, "malformed path"),
    ],
)
def test_forged_looping_and_wrong_round_paths_are_rejected_without_harm(
    path: object, round: int, reason: str
) -> None:
    forger = TraitorSpec("adversaries:Forge", {"path": path, "round": round})
    decisions, rejected = _rejections(Scenario(generals=7, m=2, traitors={3: forger}))
    assert decisions == dict.fromkeys((0, 1, 2, 4, 5, 6), "attack")
    assert {(e.sender, e.round, str(e.reason)) for e in rejected} == {(3, round, reason)}
    assert len(rejected) == {2: 5, 3: 20}[round]


def test_garbage_values_are_rejected_and_logged_by_their_repr() -> None:
    log = io.BytesIO()
    scenario = Scenario(generals=7, m=2, traitors={4: "adversaries:Garbage"})
    result = simulate_sync(scenario, log=log)
    assert result.success
    assert result.rejected == 5 + 5 * 4  # every relay 4 owed, in rounds 2 and 3
    assert b'"value":"<object object>"' in log.getvalue()  # no address: logs must not vary
    assert b'"value":42' in log.getvalue()


def test_a_run_nobody_listens_to_has_the_result_of_one_that_is_logged() -> None:
    """Without a log or a handler a round's events are counted, not ordered: the result must not change."""
    scenario = Scenario(
        generals=7, m=2, traitors={4: "adversaries:Garbage", 2: "adversaries:Crash", 5: "split"}, seed=3
    )
    unheard = simulate_sync(scenario)
    logged = simulate_sync(scenario, log=io.BytesIO())
    assert unheard.rejected == logged.rejected > 0
    assert unheard == logged


def test_a_strategy_that_calls_sys_exit_stops_the_run_with_an_error_naming_it() -> None:
    """Before, the run ended there without a word: from the command line, exit status 0 and no verdict."""
    with pytest.raises(
        StrategyError, match=r"^general 2's strategy raised SystemExit\(0\) choosing its round-2"
    ):
        simulate_sync(Scenario(generals=4, m=1, traitors={2: "adversaries:Exits"}))


def test_a_batch_strategy_that_raises_stops_a_batched_run_with_an_error_naming_it() -> None:
    with pytest.raises(
        StrategyError, match=r"^general 3's strategy raised RuntimeError\('no batch for 1'\) "
    ):
        simulate_sync(Scenario(generals=7, m=2, traitors={3: "adversaries:BatchRaises"}), mode="batched")


def test_a_strategy_that_raises_trios_cancelled_itself_is_an_error_not_a_traceback() -> None:
    with pytest.raises(
        OmActorsError, match=r"^the run was cancelled from inside before the generals decided"
    ):
        simulate_sync(Scenario(generals=4, m=1, traitors={3: "adversaries:FakesCancellation"}))


def test_a_strategy_that_raises_loses_that_message_and_the_run_goes_on() -> None:
    events: list[Event] = []
    result = simulate_sync(
        Scenario(generals=4, m=1, traitors={2: "adversaries:Crash"}), on_event=events.append
    )
    failures = [e for e in events if isinstance(e, StrategyFailed)]
    assert [(f.general, f.receiver, f.error) for f in failures] == [
        (2, 1, "RuntimeError('boom at (0, 2)')"),
        (2, 3, "RuntimeError('boom at (0, 2)')"),
    ]
    assert result.messages_per_round == (3, 4)
    assert result.decisions == {0: "attack", 1: "attack", 3: "attack"}


def test_events_of_a_round_come_in_path_then_receiver_order() -> None:
    events: list[Event] = []
    simulate_sync(load_scenario(SCENARIOS / "seven-generals.yaml"), on_event=events.append)
    sent = [e for e in events if isinstance(e, MessageSent)]
    keys = [(e.round, ORAL_MESSAGES.path_of(e.payload), e.receiver) for e in sent]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1], k[2]))
    assert len(sent) == 156


def test_two_runs_write_byte_identical_logs(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    simulate_sync(scenario, log=first)
    simulate_sync(scenario, log=second)
    assert first.read_bytes() == second.read_bytes()


def test_random_traitors_depend_on_the_seed() -> None:
    logs = []
    for seed in (1, 1, 2):
        log = io.BytesIO()
        simulate_sync(Scenario(generals=7, m=2, traitors={2: "random"}, seed=seed), log=log)
        logs.append(log.getvalue())
    assert logs[0] == logs[1]
    assert logs[0] != logs[2]


BUILT_IN = ["loyal", "flip", "split", "silent", "random"]


@st.composite
def tolerable_scenarios(draw: st.DrawFn) -> Scenario:
    """Any scenario with n >= 3m + 1 and at most m traitors, which OM(m) must survive."""
    m = draw(st.integers(0, 3))
    generals = draw(st.integers(max(3 * m + 1, 2), 10))
    values = ("attack", "retreat", "hold")[: draw(st.integers(2, 3))]
    commander = draw(st.integers(0, generals - 1))
    traitors = draw(st.sets(st.integers(0, generals - 1), max_size=m))
    specs = {}
    for traitor in traitors:
        name = draw(st.sampled_from([*BUILT_IN, "constant"]))
        args = {"value": draw(st.sampled_from(values))} if name == "constant" else {}
        specs[traitor] = TraitorSpec(name, args)
    return Scenario(
        generals=generals,
        m=m,
        commander=commander,
        values=values,
        order=draw(st.sampled_from(values)),
        traitors=specs,
        seed=draw(st.integers(0, 2**32)),
    )


@settings(max_examples=60, deadline=None)
@given(tolerable_scenarios())
def test_agreement_and_validity_hold_whenever_n_is_at_least_3m_plus_1(scenario: Scenario) -> None:
    result = simulate_sync(scenario)
    assert result.agreement
    assert result.validity is not False
    if scenario.commander not in scenario.traitors:
        assert set(result.decisions.values()) == {scenario.order}


def test_progress_is_reported_while_a_long_round_sends() -> None:
    reports: list[tuple[int, int]] = []
    result = simulate_sync(Scenario(generals=10, m=3), on_progress=lambda r, sent: reports.append((r, sent)))
    assert reports == sorted(reports)
    assert reports[-1] == (4, result.messages)
    assert len([r for r in reports if r[0] == 4]) > 1  # round 4 reports before it ends


async def test_open_simulation_streams_every_event_in_log_order() -> None:
    scenario = load_scenario(SCENARIOS / "seven-generals.yaml")
    expected: list[Event] = []
    with bounded():
        await simulate(scenario, on_event=expected.append)
        async with open_simulation(scenario) as simulation:
            streamed = [event async for event in simulation.events()]
            result = await simulation.result()
    assert streamed == expected
    assert result.success


async def test_a_slow_reader_holds_the_run_back_and_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = Scenario(generals=8, m=2)
    with bounded(100):
        async with open_simulation(scenario) as simulation:
            await trio.sleep(10)  # read nothing for a while: the run must wait, not drop
            assert simulation.events().statistics().current_buffer_used == EVENT_BUFFER
            events = []
            async for event in simulation.events():
                events.append(event)
                await trio.sleep(0.01)
            result = await simulation.result()
    assert sum(isinstance(e, MessageSent) for e in events) == result.messages == messages_sent(8, 2)


async def test_leaving_open_simulation_early_cancels_the_run(tmp_path: Path) -> None:
    log = tmp_path / "early.jsonl"
    with bounded():
        async with open_simulation(Scenario(generals=8, m=2), log=log) as simulation:
            async for event in simulation.events():
                if isinstance(event, RoundEnded):
                    break
    lines = log.read_text().splitlines()
    assert json.loads(lines[-1])["event"] in {"message", "round.end"}
    assert not any('"verdict"' in line for line in lines)


async def test_an_error_in_a_handler_comes_out_of_open_simulation_as_itself() -> None:
    class Sink:
        def bind(self) -> Sink:
            return self

        def info(self, event: str, **fields: object) -> None:
            if event == "round.end":
                raise KeyError("sink full")

    with bounded(), pytest.raises(KeyError, match="sink full"):
        async with open_simulation(Scenario(generals=4, m=1), log=Sink()) as simulation:  # type: ignore[arg-type]
            await simulation.result()


async def test_an_error_that_ends_the_run_reaches_a_reader_who_only_read_the_events() -> None:
    """The channel closing ends the reader's loop and the block; the run's error must still come out of it.

    Trio schedules at random, so each way round is tried many times: before,
    about half of these runs ended the block with no error at all.
    """

    async def read_every_event() -> None:
        async with open_simulation(Scenario(generals=4, m=1), log=io.StringIO()) as simulation:  # type: ignore[arg-type]
            async for _event in simulation.events():
                pass

    for _ in range(20):
        with bounded(), pytest.raises(OmActorsError, match=r"^log= takes a binary file"):
            await read_every_event()


def test_an_applications_structlog_logger_receives_every_event() -> None:
    captured: list[dict[str, object]] = []

    def capture(_: object, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
        captured.append(dict(event_dict))
        raise structlog.DropEvent

    logger = structlog.wrap_logger(structlog.PrintLogger(), processors=[capture])
    simulate_sync(Scenario(generals=4, m=1), log=logger)
    assert captured[0]["event"] == "run.start"
    assert captured[1] == {
        "event": "message",
        "round": 1,
        "sender": 0,
        "receiver": 1,
        "path": (0,),
        "value": "attack",
    }
    assert captured[-1]["event"] == "verdict"
    assert not structlog.is_configured()


def test_several_instances_run_on_the_same_generals() -> None:
    scenario = Scenario(
        generals=7,
        m=2,
        instances=[Instance(0, "attack"), Instance(3, "retreat"), Instance(6, "attack")],
        traitors={3: "flip", 5: "split"},
    )
    log = io.BytesIO()
    result = simulate_sync(scenario, log=log)
    assert [(o.commander, o.order, o.validity) for o in result.instances] == [
        (0, "attack", True),
        (3, "retreat", None),
        (6, "attack", True),
    ]
    assert result.instances[2].decisions == dict.fromkeys((0, 1, 2, 4, 6), "attack")
    assert result.messages == 3 * messages_sent(7, 2)
    assert result.success
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert {line.get("instance") for line in lines if line["event"] == "message"} == {0, 1, 2}
    verdicts = [line for line in lines if line["event"] == "verdict"]
    assert [v.get("instance") for v in verdicts] == [0, 1, 2, None]


def test_instances_are_checked_like_everything_else() -> None:
    with pytest.raises(ScenarioError, match=r"instances\.1\.commander: must be a general id from 0 to 3"):
        Scenario(generals=4, m=1, instances=[Instance(0, "attack"), Instance(4, "attack")])


# --- refused before round 1 ---------------------------------------------------

RAISES_IN_INIT = """\
class Grumpy:
    def __init__(self, mood="bad"):
        raise ValueError(f"in a {mood} mood")

    def choose(self, round, path, receiver, value, rng):
        return value
"""


def test_a_strategy_class_that_raises_when_built_stops_the_run_before_round_1(tmp_path: Path) -> None:
    module = tmp_path / "grumpy_traitor.py"
    module.write_text(RAISES_IN_INIT)
    path = tmp_path / "grumpy.yaml"
    path.write_text("generals: 4\nm: 1\ntraitors:\n  2: {strategy: 'grumpy_traitor:Grumpy', mood: foul}\n")
    scenario = load_scenario(path)  # checking it only looks at the class
    log = tmp_path / "run.jsonl"
    with pytest.raises(StrategyError) as caught:
        simulate_sync(scenario, log=log)
    assert str(caught.value) == (
        f"scenario 'grumpy', traitor 2: strategy 'grumpy_traitor:Grumpy' (from {module}) "
        "raised when built: ValueError: in a foul mood"
    )
    assert not log.exists()


async def test_open_simulation_builds_the_strategies_on_entry(tmp_path: Path) -> None:
    (tmp_path / "grumpy_traitor2.py").write_text(RAISES_IN_INIT)
    path = tmp_path / "grumpy.yaml"
    path.write_text("generals: 4\nm: 1\ntraitors:\n  2: 'grumpy_traitor2:Grumpy'\n")
    with (
        bounded(),
        pytest.raises(StrategyError, match=r"traitor 2: .* raised when built: ValueError: in a bad mood"),
    ):
        async with open_simulation(load_scenario(path)):
            pass  # pragma: no cover -- refused on entry


async def _open(scenario: Scenario, mode: Any) -> None:
    async with open_simulation(scenario, mode=mode):
        pass  # pragma: no cover -- refused on entry


@pytest.mark.parametrize(
    "run",
    [
        simulate_sync,
        lambda s, mode: trio.run(partial(simulate, s, mode=mode)),
        lambda s, mode: trio.run(_open, s, mode),
    ],
)
def test_a_bogus_mode_names_the_modes(run: Callable[..., object]) -> None:
    with pytest.raises(
        ScenarioError,
        match=r"^scenario: mode: 'bogus' is not a mode: use one of 'per-message', 'batched', 'auto'$",
    ):
        run(Scenario(generals=4, m=1), mode="bogus")


async def test_per_message_mode_refuses_runs_too_big_for_it() -> None:
    scenario = Scenario(generals=19, m=5)  # 14,472,900 messages: fine batched, gigabytes one by one
    with bounded(), pytest.raises(ScenarioError) as caught:
        await simulate(scenario, mode="per-message")
    assert str(caught.value) == (
        "scenario: mode: per-message mode keeps every message as Python objects (about 300 bytes each), "
        "and 14,472,900 messages are over its limit of 10,000,000: use batched mode, or set "
        "OM_ACTORS_MAX_MESSAGES (or --max-messages) to raise it, if this machine has the memory"
    )


def test_batched_mode_refuses_more_generals_than_its_store_holds_and_auto_does_not_pick_it() -> None:
    scenario = Scenario(generals=300, m=1)  # 89,401 messages
    with pytest.raises(
        ScenarioError, match="batched mode holds at most 255 generals, and this scenario has 300"
    ):
        simulate_sync(scenario, mode="batched")
    wide = Scenario(generals=460, m=1)  # 210,681 messages: auto would batch them, if batched mode could
    assert resolve_mode("auto", wide) == "per-message"


def test_auto_batches_what_a_lowered_limit_keeps_from_per_message_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A limit of 1,000 leaves per-message mode 50; seven generals send 156, which batched mode takes."""
    monkeypatch.setenv(LIMIT_VARIABLE, "1000")
    seven = Scenario(generals=7, m=2)
    assert resolve_mode("auto", seven) == "batched"
    assert simulate_sync(seven).success
    with pytest.raises(ScenarioError, match=r"156 messages are over its limit of 50: use batched mode"):
        resolve_mode("per-message", seven)
    with pytest.raises(ScenarioError, match=r"over its limit of 50: set OM_ACTORS_MAX_MESSAGES"):
        resolve_mode("auto", Scenario(algorithm="sm", generals=12, m=2))  # no batched mode to fall back on
    monkeypatch.setenv(LIMIT_VARIABLE, "100")  # below the whole run: made before, so only the run can say
    with pytest.raises(ScenarioError, match=r"send 156 messages, over the limit of 100: set OM_ACTORS_MAX"):
        resolve_mode("auto", seven)


def test_a_strategy_module_that_raises_on_import_stops_the_run_before_round_1(tmp_path: Path) -> None:
    (tmp_path / "unready_traitor.py").write_text("raise KeyError('HOME')\n")
    data = {
        "name": "unready",
        "generals": 4,
        "m": 1,
        "traitors": {"3": "unready_traitor:Liar"},
        "strategy_folder": str(tmp_path),
    }
    scenario = scenario_from_dict(data)  # as replay and the nodes read it: nothing imported yet
    with pytest.raises(StrategyError) as caught:
        simulate_sync(scenario)
    assert str(caught.value) == (
        "scenario 'unready', traitor 3: importing module 'unready_traitor' for strategy "
        "'unready_traitor:Liar' raised KeyError: 'HOME'"
    )


async def test_simulate_sync_inside_trio_says_to_await_simulate() -> None:
    with (
        bounded(),
        pytest.raises(
            OmActorsError,
            match=r"^simulate_sync\(\) starts a trio run of its own, and this code is already inside one: "
            r"from trio, await simulate\(\), and from asyncio, await simulate_asyncio\(\)$",
        ),
    ):
        simulate_sync(load_scenario(SCENARIOS / "seven-generals.yaml"))


async def test_forty_generals_with_m_12_are_refused_before_anything_is_allocated() -> None:
    with bounded(5), pytest.raises(ScenarioError, match=r"^<data>: generals: 40 generals with m = 12 send "):
        await simulate(scenario_from_dict({"generals": 40, "m": 12}), mode="batched")


# --- any algorithm --------------------------------------------------------------


def test_signatures_save_the_three_generals_that_oral_messages_cannot() -> None:
    oral = simulate_sync(load_scenario(SCENARIOS / "three-generals.yaml"))
    signed = simulate_sync(load_scenario(SCENARIOS / "three-generals-signed.yaml"))
    assert not oral.success
    assert (signed.agreement, signed.validity, signed.success) == (True, None, True)
    assert signed.decisions == {1: "retreat", 2: "retreat"}  # both saw attack and retreat: the default
    assert signed.messages_per_round == (2, 2)


@pytest.mark.parametrize(("generals", "m"), [(3, 1), (4, 1), (5, 2), (7, 3), (8, 2)])
def test_signed_messages_without_traitors_send_n_minus_1_plus_n_minus_1_times_n_minus_2(
    generals: int, m: int
) -> None:
    result = simulate_sync(Scenario(algorithm="sm", generals=generals, m=m))
    assert result.messages == (generals - 1) + (generals - 1) * (generals - 2)
    assert result.rounds == m + 1
    assert result.success
    assert set(result.stats) == {"signatures_verified"}
    assert result.stats["signatures_verified"] >= generals - 1  # every lieutenant checked the commander
    assert result.to_dict()["signatures_verified"] == result.stats["signatures_verified"]


def test_a_result_without_stats_adds_no_keys() -> None:
    result = simulate_sync(Scenario(generals=4, m=1))
    assert result.stats == {}
    assert "signatures_verified" not in result.to_dict()
    assert result.to_dict()["algorithm"] == "om"


def test_two_values_in_play_cost_loyal_generals_at_most_twice_the_relays() -> None:
    generals = 7
    result = simulate_sync(Scenario(algorithm="sm", generals=generals, m=2, traitors={0: "split"}))
    assert result.agreement
    loyal_sent = sum(count for g, count in result.sent.items() if g != 0)
    assert loyal_sent <= 2 * (generals - 1) * (generals - 2)
    assert loyal_sent > (generals - 1) * (generals - 2)  # both values really went round


@pytest.mark.parametrize("run", [simulate_sync, lambda s, mode: trio.run(_open, s, mode)])
def test_batched_mode_is_refused_for_an_algorithm_without_one(run: Callable[..., object]) -> None:
    with pytest.raises(ScenarioError) as caught:
        run(Scenario(algorithm="sm", generals=4, m=1), mode="batched")
    assert str(caught.value) == (
        "scenario: mode: SM(m) has no batched mode: only an algorithm whose messages grow "
        "exponentially needs it; use per-message or auto"
    )


def test_per_message_mode_does_not_suggest_a_batched_mode_an_algorithm_lacks() -> None:
    with pytest.raises(ScenarioError) as caught:
        resolve_mode("per-message", Scenario(algorithm="sm", generals=5000, m=2))
    assert str(caught.value) == (
        "scenario: mode: per-message mode keeps every message as Python objects (about 300 bytes each), "
        "and 24,990,001 messages are over its limit of 10,000,000: set OM_ACTORS_MAX_MESSAGES "
        "(or --max-messages) to raise it, if this machine has the memory"
    )


def test_per_message_mode_is_sized_by_the_most_a_run_can_send() -> None:
    """SM(m)'s lieutenants forward each value they hold: 400 generals, 254 values took 1.77 GB unrefused."""
    values = tuple(f"v{i}" for i in range(254))
    scenario = Scenario(
        algorithm="sm", generals=400, m=2, values=values, default="v0", traitors={0: "random"}
    )
    bound = SIGNED_MESSAGES.message_bound(scenario.setup, 1)
    assert bound > 10_000_000 > SIGNED_MESSAGES.messages_sent(400, 2)  # the loyal count let it through
    with pytest.raises(ScenarioError) as caught:
        resolve_mode("auto", scenario)
    assert str(caught.value).startswith(
        f"scenario: mode: per-message mode keeps every message as Python objects (about 300 bytes each), "
        f"and {bound:,} messages are over its limit of 10,000,000: set OM_ACTORS_MAX_MESSAGES"
    )
    assert resolve_mode("auto", attrs.evolve(scenario, values=values[:2], default="v0")) == "per-message"


def test_auto_never_batches_an_algorithm_without_a_batched_mode() -> None:
    assert resolve_mode("auto", Scenario(algorithm="sm", generals=200, m=3)) == "per-message"
    assert resolve_mode("auto", Scenario(generals=16, m=5)) == "batched"


def test_simulate_runs_the_algorithm_it_is_given_instead_of_the_scenarios() -> None:
    scenario = Scenario(generals=3, m=1, traitors={2: "silent"})
    assert not simulate_sync(scenario).success  # 1 hears attack, and nothing from 2: a tie, so retreat
    signed = simulate_sync(scenario, algorithm="sm")
    assert signed.success
    assert signed.scenario.algorithm == "sm"
    assert signed.stats["signatures_verified"] > 0


def test_an_algorithm_given_to_simulate_is_checked_against_the_scenario() -> None:
    with pytest.raises(ScenarioError, match=r"flip"):
        simulate_sync(load_scenario(SCENARIOS / "three-generals.yaml"), algorithm="sm")
    with pytest.raises(ScenarioError, match=r"algorithm: unknown algorithm 'pk': use one of "):
        simulate_sync(Scenario(generals=4, m=1), algorithm="pk")


def test_signed_logs_are_byte_identical_run_after_run(tmp_path: Path) -> None:
    scenario = Scenario(algorithm="sm", generals=6, m=2, traitors={0: "split", 3: "random"}, seed=5)
    logs = []
    for attempt in range(3):
        log = tmp_path / f"{attempt}.jsonl"
        simulate_sync(scenario, log=log)
        logs.append(log.read_bytes())
    assert logs[0] == logs[1] == logs[2]
    start = json.loads(logs[0].splitlines()[0])
    assert set(start["public"]["keys"]) == {str(g) for g in range(6)}


async def test_open_simulation_streams_a_signed_run_and_takes_an_algorithm() -> None:
    scenario = Scenario(generals=4, m=1, traitors={0: "split"})
    with bounded():
        async with open_simulation(scenario, algorithm="sm") as simulation:
            streamed = [event async for event in simulation.events()]
            result = await simulation.result()
    assert simulation.scenario.algorithm == "sm"
    assert result.success
    assert sum(isinstance(e, MessageSent) for e in streamed) == result.messages
    start = streamed[0]
    assert isinstance(start, RunStarted)
    assert start.scenario["algorithm"] == "sm"
    assert start.public is not None
    assert sorted(start.public["keys"]) == ["0", "1", "2", "3"]


def test_an_algorithm_with_no_paths_and_its_own_rounds_runs_unchanged(echo: Echo, tmp_path: Path) -> None:
    scenario = Scenario(algorithm="echo", generals=5, m=0, traitors={2: "split"})
    log = tmp_path / "echo.jsonl"
    result = simulate_sync(scenario, log=log)
    assert result.rounds == 2  # the algorithm's, though m + 1 is 1
    assert result.messages_per_round == (4, 12)
    assert result.decisions == dict.fromkeys((0, 1, 3, 4), "attack")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    messages = [line for line in lines if line["event"] == "message"]
    assert set(messages[0]) == {"event", "round", "sender", "receiver", "value"}
    assert [(m["receiver"], m["sender"]) for m in messages if m["round"] == 2][:4] == [
        (1, 2),
        (1, 3),
        (1, 4),
        (2, 1),
    ]
    assert lines[-1]["rounds"] == 2


def test_a_run_puts_the_collectors_settings_back_as_it_found_them() -> None:
    """A run freezes old objects and collects young ones less often; an embedding app must not notice."""
    before = gc.get_threshold()
    during: list[tuple[int, int]] = []

    def look(event: Event) -> None:
        if isinstance(event, MessageSent):
            during.append((gc.get_threshold()[0], gc.get_freeze_count()))

    simulate_sync(Scenario(generals=4, m=1), on_event=look)
    assert len(during) == 9
    assert all(threshold == 50_000 and frozen > 0 for threshold, frozen in during)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


SEVEN = Scenario(generals=7, m=2, traitors={5: "flip"})


def test_overlapping_runs_put_the_collectors_settings_back_once_the_last_ends() -> None:
    before = gc.get_threshold()

    async def two_at_once() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(simulate, SEVEN))
            await trio.sleep(0.001)
            nursery.start_soon(partial(simulate, SEVEN))

    trio.run(two_at_once)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)
    threads = [threading.Thread(target=simulate_sync, args=(SEVEN,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (before, 0)


def test_a_run_leaves_what_the_application_froze_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        simulate_sync(SEVEN)
        assert 0.99 * frozen < gc.get_freeze_count() <= frozen  # neither unfrozen nor frozen more
    finally:
        gc.unfreeze()
