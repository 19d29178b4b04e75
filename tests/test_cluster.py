"""Every general its own process: the cluster against the in-memory run.

Rules for this file:
- loopback only; nodes bind port 0 and report the port they got, except
  where a test is about ports in use;
- every test is bounded with ``trio.fail_after`` and reaps every process
  it started (``run_cluster`` stops them; the last check is that none is
  left);
- a node dies by SIGKILL from a traitor strategy, in round 2, so the crash
  is mid-run by construction: a traitor that kills itself, or one that
  kills a loyal general's node.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from click.testing import CliRunner, Result
from conftest import masked, signatures
from ruamel.yaml import YAML

import om_actors.cluster as cluster_module
from om_actors import Scenario, ScenarioError, TraitorSpec, load_scenario, simulate_sync
from om_actors.cli import main
from om_actors.cluster import (
    ClusterError,
    load_cluster,
    node_processes,
    run_cluster,
    running_nodes,
    write_keys,
)
from om_actors.limits import LIMIT_VARIABLE
from om_actors.registry import REGISTRY
from om_actors.replay import replay_log

T = TypeVar("T")
ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "scenarios"
TESTS = Path(__file__).parent
FOUR = SCENARIOS / "four-generals-traitor-lieutenant.yaml"

KILLER = '''
"""A traitor that kills loyal general ``victim``'s node with SIGKILL when it first speaks in round 2."""
import os
import signal
from pathlib import Path

import attrs


@attrs.define
class KillsGeneral:
    victim: int
    done: bool = attrs.field(default=False, init=False)

    def choose(self, round, path, receiver, value, rng):
        if round == 2 and not self.done:
            self.done = True
            for entry in Path("/proc").iterdir():
                try:
                    name = (entry / "comm").read_text()
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                sibling = f"PPid:\\t{os.getppid()}\\n" in status
                if sibling and name == f"om-node-{self.victim}\\n":
                    os.kill(int(entry.name), signal.SIGKILL)
        return value
'''

GATE = """
import attrs
import trio
from pathlib import Path


@attrs.frozen
class Gate:
    \"\"\"A traitor lieutenant that tells the truth, but in round 2 only once the file ``gate`` exists.\"\"\"

    gate: str

    async def choose(self, round, path, receiver, value, rng):
        while round == 2 and not Path(self.gate).exists():
            await trio.sleep(0.05)
        return value
"""


@pytest.fixture(autouse=True)
def nodes_see_the_test_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


async def invoke_in_thread(*args: str) -> Result:
    """The CLI, whose own trio.run cannot nest in the test's, in a thread."""
    return await trio.to_thread.run_sync(lambda: invoke(*args), abandon_on_cancel=True)


def events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def scenario_file(folder: Path, text: str, **modules: str) -> Path:
    """A scenario file, with strategy modules of its own next to it."""
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    path = folder / "scenario.yaml"
    path.write_text(text)
    return path


def assert_run_logs_it(scenario: Scenario, cluster: Path, memory: bytes) -> None:
    """The cluster's log is run's, byte for byte -- but for the keys each node made itself, where it signs.

    Those are the one thing it must not share with run's: run's derive from
    the seed, which every node knows.  Either way, replay finds it consistent.
    """
    logged = cluster.read_bytes()
    if scenario.rules.identity(scenario.setup, 0, bytes(32)) is None:
        assert logged == memory
    else:
        assert masked(logged) == masked(memory)
        ours, seeds = (json.loads(text.splitlines()[0])["public"]["keys"] for text in (logged, memory))
        assert len(set(ours.values())) == scenario.generals
        assert set(ours.values()).isdisjoint(seeds.values())
        assert signatures(logged)
        assert signatures(logged).isdisjoint(signatures(memory))
    report = replay_log(cluster)
    assert report.inconsistencies == ()


SMALL = sorted(p for p in SCENARIOS.glob("*.yaml") if load_scenario(p).generals <= 7)
"""The shipped scenarios that fit a test's time as processes; thirteen generals was checked by hand."""


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
async def test_the_cluster_writes_the_same_log_as_the_in_memory_run(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario, log=memory))
    assert outcome.crashed == outcome.result.crashed == ()
    assert outcome.result.undelivered == 0
    assert outcome.result.decisions == expected.decisions
    assert outcome.result.messages_per_round == expected.messages_per_round
    assert outcome.result.received == expected.received
    assert outcome.result.stats == expected.stats
    assert_run_logs_it(scenario, log, memory.getvalue())
    assert running_nodes() == 0


SIGNED_SEVEN = {
    "split-and-late": "{0: split, 3: late}",
    "random-and-split": "{2: random, 5: split}",
}
"""Two SM(2) armies of seven whose values reach generals along several chains a round, late ones refused."""


@pytest.mark.parametrize("traitors", SIGNED_SEVEN.values(), ids=list(SIGNED_SEVEN))
async def test_a_signed_cluster_logs_what_the_in_memory_run_logs(traitors: str, tmp_path: Path) -> None:
    scenario = load_scenario(f"algorithm: sm\ngenerals: 7\nm: 2\nseed: 3\ntraitors: {traitors}\n")
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario, log=memory))
    assert outcome.result.success
    assert outcome.result.decisions == expected.decisions
    assert (outcome.result.rejected, outcome.result.undelivered) == (expected.rejected, 0)
    assert outcome.result.stats == expected.stats
    assert_run_logs_it(scenario, log, memory.getvalue())
    assert running_nodes() == 0


@pytest.mark.parametrize("algorithm", sorted(REGISTRY))
async def test_instances_run_together_over_http_log_what_run_logs(algorithm: str, tmp_path: Path) -> None:
    liar = "split" if "split" in REGISTRY[algorithm].strategies() else "silent"
    text = (
        f"algorithm: {algorithm}\ngenerals: 5\nm: 1\ntraitors: {{3: {liar}}}\ninstances:\n"
        "  - {commander: 0, order: attack}\n"
        "  - {commander: 3, order: attack}\n"
        "  - {commander: 4, order: retreat}\n"
    )
    scenario = load_scenario(text)
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario, log=memory))
    assert [i.decisions for i in outcome.result.instances] == [i.decisions for i in expected.instances]
    assert len({line["instance"] for line in events(log) if line["event"] == "message"}) == 3
    assert_run_logs_it(scenario, log, memory.getvalue())
    assert running_nodes() == 0


SIGNED_THREE = "algorithm: sm\ngenerals: 3\nm: 1\ntraitors: {0: split}\nexpect: {success: true}\n"
"""The paper's figure 5: a traitor commander tells one lieutenant attack and the other retreat."""


async def test_three_signed_generals_agree_over_http_with_a_traitor_commander(tmp_path: Path) -> None:
    signed = load_scenario(SIGNED_THREE)
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(signed, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(signed, log=memory))
    result = outcome.result
    # Both lieutenants hold V = {attack, retreat}, and both take the default.
    assert result.decisions == expected.decisions == {1: "retreat", 2: "retreat"}
    assert result.success
    assert result.messages_per_round == expected.messages_per_round == (2, 2)
    assert result.stats == expected.stats
    assert result.stats["signatures_verified"] > 0
    assert_run_logs_it(signed, log, memory.getvalue())
    lines = events(log)
    messages = [line for line in lines if line["event"] == "message"]
    assert {len(m["signatures"]) for m in messages if m["round"] == 2} == {2}  # type: ignore[arg-type]
    assert [m["chain"] for m in messages if m["round"] == 2] == [[0, 1], [0, 2]]
    assert running_nodes() == 0


@pytest.mark.parametrize("generals", [3, 5])
async def test_a_signed_cluster_run_with_no_traitor_sends_what_sm_owes(generals: int) -> None:
    scenario = Scenario(algorithm="sm", generals=generals, m=1, traitors={})
    with trio.fail_after(60):
        outcome = await run_cluster(scenario)
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario))
    n = generals
    assert outcome.result.messages == expected.messages == (n - 1) + (n - 1) * (n - 2)
    assert outcome.result.rejected == 0
    assert outcome.result.decisions == dict.fromkeys(range(n), "attack")
    assert outcome.result.stats == expected.stats
    assert running_nodes() == 0


async def test_a_strategy_next_to_the_scenario_file_runs_on_the_nodes(tmp_path: Path) -> None:
    for name in ("custom_traitor.yaml", "custom_traitor.py"):
        (tmp_path / name).write_text((ROOT / "examples" / name).read_text())
    scenario = load_scenario(tmp_path / "custom_traitor.yaml")
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    memory = io.BytesIO()
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario, log=memory))
    assert outcome.result.decisions == expected.decisions == dict.fromkeys((0, 1, 3, 4, 5, 6), "retreat")
    assert log.read_bytes() == memory.getvalue()
    assert running_nodes() == 0


async def test_a_strategy_the_nodes_cannot_load_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH")  # this process imports adversaries; the nodes now cannot
    scenario = Scenario(generals=4, m=1, traitors={3: TraitorSpec("adversaries:Slow", {"delay": 0.01})})
    with trio.fail_after(60), pytest.raises(ClusterError) as failure:
        await run_cluster(scenario)
    assert str(failure.value).startswith("node 0 did not start: ")
    assert "cannot load the allowed strategy 'adversaries:Slow'" in str(failure.value)
    assert running_nodes() == 0


async def test_a_scenario_made_before_the_limit_was_lowered_is_refused_before_any_node_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scenario = Scenario(generals=7, m=2)  # 156 messages, checked against the limit of the day
    monkeypatch.setenv(LIMIT_VARIABLE, "100")
    with trio.fail_after(30), pytest.raises(ScenarioError, match=r"156 messages, over the limit of 100"):
        await run_cluster(scenario)
    assert running_nodes() == 0


@pytest.mark.parametrize(
    ("strategy", "error"),
    [
        # The node answers the round with the strategy's error, as a run in one process raises it.
        ("adversaries:Exits", "node 2 refused /round: general 2's strategy raised SystemExit(0) "),
        # A strategy's Ctrl-C stops its node's round with no JSON answer; the node proved its key before.
        ("adversaries:Interrupts", "node 2 failed /round with HTTP 500 and no error of its own: "),
    ],
    ids=["sys.exit", "KeyboardInterrupt"],
)
async def test_a_strategy_that_would_stop_its_node_is_an_error_naming_the_node(
    strategy: str, error: str
) -> None:
    scenario = Scenario(generals=4, m=1, traitors={2: strategy})
    with trio.fail_after(60), pytest.raises(ClusterError) as failure:
        await run_cluster(scenario)
    assert str(failure.value).startswith(error)
    assert running_nodes() == 0


async def test_a_traitor_node_killed_mid_run_is_logged_as_crashed(tmp_path: Path) -> None:
    scenario = Scenario(generals=7, m=2, traitors={3: "adversaries:Crashes"}, round_timeout=2)
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    result = outcome.result
    assert outcome.crashed == result.crashed == (3,)
    assert result.decisions == dict.fromkeys((0, 1, 2, 4, 5, 6), "attack")
    assert result.success
    assert result.messages_per_round[0] == 6
    assert {"event": "general.crashed", "round": 2, "general": 3} in events(log)
    assert running_nodes() == 0


async def test_a_loyal_node_killed_mid_run_is_survived_logged_and_replayed(tmp_path: Path) -> None:
    text = "generals: 7\nm: 2\ntraitors:\n  3: {strategy: 'killer:KillsGeneral', victim: 2}\n"
    scenario = load_scenario(scenario_file(tmp_path, text, killer=KILLER))
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        outcome = await run_cluster(scenario, log=log)
    result = outcome.result
    assert result.crashed == (2,)
    assert result.decisions == dict.fromkeys((0, 1, 4, 5, 6), "attack")
    lines = events(log)
    crash = lines.index({"event": "general.crashed", "round": 2, "general": 2})
    assert lines[crash + 1]["event"] == "round.end"
    assert lines[crash + 1]["round"] == 2
    assert all(line.get("round") == 2 for line in lines[crash - 5 : crash])
    # Every loyal round-3 message to the dead general is logged, and logged as lost.
    to_the_dead = [x for x in lines if x["event"] == "message" and x["round"] == 3 and x["receiver"] == 2]
    assert to_the_dead
    assert all(x["delivered"] is False for x in to_the_dead)
    ends = {x["round"]: x for x in lines if x["event"] == "round.end"}
    lost = sum(x.get("delivered") is False and x["sender"] != 3 for x in lines if x["event"] == "message")
    assert result.undelivered == lost == sum(int(end.get("undelivered") or 0) for end in ends.values())  # type: ignore[call-overload]
    assert ends[3]["undelivered"] == len([x for x in to_the_dead if x["sender"] != 3])
    report = replay_log(log)
    assert report.inconsistencies == ()
    assert report.ok
    assert running_nodes() == 0


async def test_the_cluster_command_warns_of_a_crash_and_of_lost_messages(tmp_path: Path) -> None:
    text = "generals: 7\nm: 2\ntraitors:\n  3: {strategy: 'killer:KillsGeneral', victim: 2}\n"
    path = str(scenario_file(tmp_path, text, killer=KILLER))
    with trio.fail_after(120):
        as_text = await invoke_in_thread("cluster", path)
        as_json = await invoke_in_thread("cluster", path, "--json")
    lost = "from loyal generals were sent but never delivered: the synchrony assumption (A3) broke"
    # The report says it in text; with --json, stderr does.
    for outcome, said in ((as_text, as_text.stdout), (as_json, as_json.stderr)):
        assert outcome.exit_code == 0, outcome.stderr
        assert "general 2 crashed: what it owed from then on was never sent" in said
        assert lost in said
        assert "Traceback" not in outcome.stderr + outcome.stdout
    assert "General 2 crashed: its decision is lost" in as_text.stdout
    answer = json.loads(as_json.stdout)
    assert answer["crashed"] == [2]
    assert answer["undelivered"] > 0
    assert f"warning: {answer['undelivered']:,} messages {lost}" in as_json.stderr
    assert running_nodes() == 0


async def test_a_slow_node_within_the_timeout_changes_nothing() -> None:
    slow = TraitorSpec("adversaries:Slow", {"delay": 0.02})
    scenario = Scenario(generals=4, m=1, traitors={3: slow}, round_timeout=5)
    with trio.fail_after(60):
        outcome = await run_cluster(scenario)
    expected = await trio.to_thread.run_sync(lambda: simulate_sync(scenario))
    assert outcome.result.decisions == expected.decisions
    assert outcome.result.messages == expected.messages
    assert outcome.result.timed_out == {}


async def test_the_cluster_command_prints_what_run_prints() -> None:
    with trio.fail_after(90):
        cluster = await invoke_in_thread("cluster", str(FOUR))
        as_json = await invoke_in_thread("cluster", str(FOUR), "--json")
        run = await invoke_in_thread("run", str(FOUR))
    assert (cluster.exit_code, cluster.stdout) == (0, run.stdout)
    answer = json.loads(as_json.stdout)
    assert answer["decisions"] == {"0": "attack", "1": "attack", "2": "attack"}
    assert (answer["crashed"], answer["undelivered"]) == ([], 0)
    assert running_nodes() == 0


async def test_the_cluster_command_is_quiet_as_run_is() -> None:
    too_many = str(SCENARIOS / "too-many-traitors.yaml")  # warns that the theorem promises nothing
    with trio.fail_after(90):
        cluster = await invoke_in_thread("cluster", too_many, "--quiet")
        run = await invoke_in_thread("run", too_many, "--quiet")
    assert (cluster.exit_code, cluster.stdout, cluster.stderr) == (run.exit_code, "", "")
    assert (run.stdout, run.stderr) == ("", "")
    assert running_nodes() == 0


async def test_the_cluster_command_reports_a_signed_run_as_run_does() -> None:
    path = str(SCENARIOS / "three-generals-signed.yaml")
    with trio.fail_after(90):
        cluster = await invoke_in_thread("cluster", path)
        cluster_json = await invoke_in_thread("cluster", path, "--json")
        run = await invoke_in_thread("run", path)
        run_json = await invoke_in_thread("run", path, "--json")
    assert (cluster.exit_code, cluster.stdout) == (0, run.stdout)
    assert "6 signatures verified" in cluster.stdout
    assert (cluster_json.exit_code, cluster_json.stdout) == (0, run_json.stdout)
    answer = json.loads(cluster_json.stdout)
    assert (answer["algorithm"], answer["success"], answer["signatures_verified"]) == ("sm", True, 6)
    assert running_nodes() == 0


async def test_cluster_log_dash_writes_the_log_to_stdout_and_the_report_to_stderr() -> None:
    with trio.fail_after(90):
        cluster = await invoke_in_thread("cluster", str(FOUR), "--log", "-")
        run = await invoke_in_thread("run", str(FOUR), "--log", "-")
    assert (cluster.exit_code, cluster.stdout) == (0, run.stdout)
    assert json.loads(cluster.stdout.splitlines()[-1])["event"] == "verdict"
    assert "SUCCESS" in cluster.stderr
    assert running_nodes() == 0


async def test_a_cluster_log_that_cannot_be_written_is_named_and_every_node_stopped() -> None:
    with trio.fail_after(90):
        result = await invoke_in_thread("cluster", str(FOUR), "--log", "/dev/full")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "error: cannot write the log /dev/full: No space left on device\n"
    assert running_nodes() == 0


@contextmanager
def busy_port() -> Iterator[int]:
    """A port something else listens on, low enough for ``--base-port``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        while sock.getsockname()[1] > 64_000:
            sock.close()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_base_port_over_a_port_in_use_fails_the_run_naming_the_port() -> None:
    with busy_port() as port, trio.fail_after(60):
        outcome = await invoke_in_thread("cluster", str(FOUR), "--base-port", str(port))
    assert outcome.exit_code == 2
    assert f"node 0 did not start: general 0 cannot listen on 127.0.0.1:{port}: address already in use" in (
        outcome.stderr
    )
    assert "Traceback" not in outcome.stderr
    assert "FAILURE" not in outcome.stdout
    assert running_nodes() == 0


def test_a_node_on_a_port_in_use_exits_2_with_one_line(tmp_path: Path) -> None:
    with busy_port() as port:
        cluster = write_keys(tmp_path, {0: f"127.0.0.1:{port}", 1: "127.0.0.1:0"})
        outcome = invoke(
            "node", "--id", "0", "--cluster", str(cluster), "--key", str(tmp_path / "general-0.pem")
        )
    assert outcome.exit_code == 2
    assert outcome.stderr == f"general 0 cannot listen on 127.0.0.1:{port}: address already in use\n"


async def start_by_hand(folder: Path, count: int) -> tuple[Path, list[subprocess.Popen[bytes]]]:
    """``count`` nodes started as a user would, each on a port of its choosing; their cluster file."""
    cluster = write_keys(folder, dict.fromkeys(range(count), "127.0.0.1:0"))
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "om_actors", "node", "--id", str(g), "--cluster", str(cluster),
             "--key", str(folder / f"general-{g}.pem")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for g in range(count)
    ]  # fmt: skip
    yaml = YAML()
    data = yaml.load(cluster)
    for general, node in enumerate(nodes):
        assert node.stdout is not None
        line = await trio.to_thread.run_sync(node.stdout.readline, abandon_on_cancel=True)
        data["generals"][general]["address"] = json.loads(line)["address"]
    yaml.dump(data, cluster)
    return cluster, nodes


async def test_nodes_started_by_hand_obey_only_their_driver(tmp_path: Path) -> None:
    import httpx

    scenario = load_scenario(FOUR)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    with trio.fail_after(90):
        cluster, nodes = await start_by_hand(ours, 4)
    try:
        peers = load_cluster(cluster).generals
        with trio.fail_after(90):
            async with httpx.AsyncClient() as outsider:
                for peer in peers.values():  # an outsider's /start first, at every node
                    start = {"run": "x", "instance": 0, "scenario": scenario.to_dict()}
                    response = await outsider.post(f"http://{peer.address}/start", json=start)
                    assert response.status_code == 401
            # Another cluster's driver, at the same addresses, is refused by our nodes.
            impostor = write_keys(theirs, {g: p.address for g, p in peers.items()})
            with pytest.raises(
                ClusterError, match=r"^the server at 127\.0\.0\.1:[0-9]+ is not general 0 of this cluster"
            ):
                await run_cluster(scenario, nodes=impostor)
            # Our own driver, whose file names a key general 2 does not hold, finds out.
            forged = ours / "forged.yaml"
            data = YAML().load(cluster)
            data["generals"][2]["public_key"] = YAML().load(theirs / "cluster.yaml")["generals"][2][
                "public_key"
            ]
            YAML().dump(data, forged)
            with pytest.raises(ClusterError, match="does not prove it holds general 2's key"):
                await run_cluster(scenario, nodes=forged)
            outcome = await run_cluster(scenario, nodes=cluster)
            assert outcome.result.decisions == {0: "attack", 1: "attack", 2: "attack"}
            assert outcome.result.messages == 9
            again = await run_cluster(scenario, nodes=cluster)  # a second run on the same nodes
            assert again.result.decisions == outcome.result.decisions
            custom = Scenario(generals=4, m=1, traitors={3: "adversaries:Garbage"})
            with pytest.raises(
                ClusterError,
                match="node 0 refused /start: traitor 3: strategy 'adversaries:Garbage' is not allowed",
            ):
                await run_cluster(custom, nodes=cluster)
    finally:
        for node in nodes:
            node.terminate()
            node.wait(timeout=10)
            assert node.stdout is not None
            node.stdout.close()
    assert running_nodes() == 0


async def eventually(look: Callable[[], T], done: Callable[[T], bool]) -> T:
    """What ``look`` sees once ``done`` says so, polled: a process's life has no event to wait on."""
    while True:
        seen = look()
        if done(seen):
            return seen
        await trio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def gated(folder: Path) -> tuple[Path, Path]:
    """A scenario whose traitor holds round 2 up until the gate file exists, and that file."""
    gate = folder / "gate"
    traitor = f"{{strategy: 'gate:Gate', gate: '{gate}'}}"
    text = f"generals: 4\nm: 1\nround_timeout: 120\ntraitors:\n  3: {traitor}\n"
    return scenario_file(folder, text, gate=GATE), gate


def through_round_1(log: Path) -> list[bytes]:
    """The log's lines up to round 1's ``round.end``; none while that line is not written."""
    try:
        lines = log.read_bytes().splitlines(keepends=True)
    except FileNotFoundError:
        return []
    for number, line in enumerate(lines):
        fields = json.loads(line) if line.endswith(b"\n") else {}
        if fields.get("event") == "round.end" and fields.get("round") == 1:
            return lines[: number + 1]
    return []


def secrets_in(folder: Path) -> list[Path]:
    """The files under ``folder`` that hold a private key."""
    return [f for f in folder.rglob("*") if f.is_file() and b"PRIVATE KEY" in f.read_bytes()]


@pytest.mark.parametrize(
    ("stop", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGKILL, -9)]
)
async def test_a_stopped_driver_leaves_its_log_so_far_and_no_node_or_key(
    tmp_path: Path, stop: signal.Signals, status: int
) -> None:
    path, gate = gated(tmp_path)
    log, temporary = tmp_path / "cluster.jsonl", tmp_path / "tmp"
    temporary.mkdir()
    driver = await trio.lowlevel.open_process(
        [sys.executable, "-m", "om_actors", "cluster", str(path), "--log", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(temporary)},
    )
    try:
        with trio.fail_after(60):
            nodes = await eventually(lambda: node_processes(driver.pid), lambda pids: len(pids) == 4)
            cut = await eventually(lambda: through_round_1(log), bool)  # round 2 waits for the gate
            assert secrets_in(temporary) == []  # the nodes got their keys through a pipe
            driver.send_signal(stop)
            assert await driver.wait() == status
            await eventually(lambda: [pid for pid in nodes if alive(pid)], lambda pids: not pids)
        assert driver.stderr is not None
        if stop != signal.SIGKILL:
            stderr = (await driver.stderr.receive_some()).decode()
            assert stderr == f"stopped by {stop.name}: every node process was stopped\n"
            assert list(temporary.iterdir()) == []
    finally:
        driver.kill()
        await driver.wait()
        if driver.stderr is not None:
            await driver.stderr.aclose()
    assert not any(alive(pid) for pid in nodes)
    assert secrets_in(temporary) == []
    # What the run wrote before it was stopped is the in-memory run's log, up to round 1's end.
    assert log.read_bytes().splitlines(keepends=True) == cut
    gate.touch()
    with trio.fail_after(60):
        run = await invoke_in_thread("run", str(path), "--log", str(tmp_path / "run.jsonl"))
    assert run.exit_code == 0, run.stderr
    assert cut == through_round_1(tmp_path / "run.jsonl")
    assert json.loads(cut[0])["event"] == "run.start"


# Cancelled mid-request, httpx and httpcore leave async generators half-run, and trio warns when they
# are collected (encode/httpx#3686): a warning about their cleanup, not about this run.
@pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")
async def test_a_cancelled_cluster_run_keeps_every_closed_round_in_its_log(tmp_path: Path) -> None:
    path, gate = gated(tmp_path)
    log = tmp_path / "cluster.jsonl"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(run_cluster, load_scenario(path), log=log))
            cut = await eventually(lambda: through_round_1(log), bool)
            nursery.cancel_scope.cancel()
    assert log.read_bytes().splitlines(keepends=True) == cut
    gate.touch()
    memory = io.BytesIO()
    await trio.to_thread.run_sync(lambda: simulate_sync(load_scenario(path), log=memory))
    assert memory.getvalue().startswith(b"".join(cut))
    assert running_nodes() == 0


async def test_a_driver_removes_the_folders_that_killed_drivers_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = int(finished.stdout)
    stale = tmp_path / f"om-actors-cluster-{dead}-k7x2q9ab"
    stale.mkdir()
    (stale / "cluster.yaml").write_text("generals: {}\n")
    running = tmp_path / f"om-actors-cluster-{os.getpid()}-p3m8z1cd"  # a driver still alive
    running.mkdir()
    unrelated = tmp_path / "om-actors-cluster-notes"
    unrelated.mkdir()
    with trio.fail_after(60):
        outcome = await run_cluster(load_scenario(FOUR))
    assert outcome.result.success
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, unrelated.name])
    assert running_nodes() == 0


def test_keys_writes_a_cluster_file_that_loads(tmp_path: Path) -> None:
    result = invoke("keys", str(tmp_path), "--addresses", "hostA:9000,hostB:9000,hostC:9000")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"wrote {tmp_path / 'cluster.yaml'} and 3 private keys")
    assert f"and the driver's private key {tmp_path / 'driver.pem'}" in result.stdout
    spec = load_cluster(tmp_path / "cluster.yaml")
    assert [(p.id, p.address) for p in spec.generals.values()] == [
        (0, "hostA:9000"),
        (1, "hostB:9000"),
        (2, "hostC:9000"),
    ]
    for key in ("general-1.pem", "driver.pem"):
        assert oct((tmp_path / key).stat().st_mode & 0o777) == "0o600"
    bad = invoke("keys", str(tmp_path), "--addresses", "hostA")
    assert bad.exit_code == 2
    assert "write each address as host:port" in bad.stderr


@pytest.mark.parametrize(
    ("cluster_text", "key_text", "error"),
    [
        ("generals: 3\n", None, "expected a mapping 'generals' of id to address and public_key"),
        (
            "generals: {0: {address: 'x:1'}}\n",
            None,
            "general 0: needs an address and a base64 Ed25519 public_key",
        ),
        ("drop-driver", None, "needs 'driver: {public_key: ...}', the driver's base64 Ed25519 public key"),
        (None, "not a key", "not a readable PEM private key"),
        (None, "general-1", "general-0.pem: not the key"),
        ("strategies: 'x:Y'", None, "'strategies' must be a list of module:Class names"),
    ],
)
def test_a_node_with_a_bad_cluster_file_or_key_exits_2(
    tmp_path: Path, cluster_text: str | None, key_text: str | None, error: str
) -> None:
    cluster = write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"})
    if cluster_text == "drop-driver":
        data = YAML().load(cluster)
        del data["driver"]
        YAML().dump(data, cluster)
    elif cluster_text is not None and cluster_text.startswith("strategies"):
        cluster.write_text(cluster.read_text() + cluster_text + "\n")
    elif cluster_text is not None:
        cluster.write_text(cluster_text)
    if key_text == "general-1":
        (tmp_path / "general-0.pem").write_bytes((tmp_path / "general-1.pem").read_bytes())
    elif key_text is not None:
        (tmp_path / "general-0.pem").write_text(key_text)
    result = invoke("node", "--id", "0", "--cluster", str(cluster), "--key", str(tmp_path / "general-0.pem"))
    assert result.exit_code == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr


NOT_UTF8 = "g\u00e9n\u00e9raux: [0, 1]\n".encode("latin-1")


@pytest.mark.parametrize(
    ("which", "content", "error"),
    [
        (
            "cluster",
            NOT_UTF8,
            "cannot read the cluster file: not UTF-8 text: invalid continuation byte at byte 1",
        ),
        ("cluster", None, "cannot read the cluster file: longer than 1,048,576 bytes, the most it may have"),
        ("key", NOT_UTF8, "not a readable PEM private key"),
        ("key", None, "not a readable PEM private key: longer than 65,536 bytes, the most it may have"),
    ],
    ids=["cluster-latin-1", "cluster-dev-zero", "key-latin-1", "key-dev-zero"],
)
def test_a_node_given_something_else_than_a_cluster_file_or_key_exits_2_with_one_line(
    tmp_path: Path, which: str, content: bytes | None, error: str
) -> None:
    files = {
        "cluster": write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"}),
        "key": tmp_path / "general-0.pem",
    }
    if content is None:
        files[which] = Path("/dev/zero")  # endless: read up to the limit, never whole
    else:
        files[which].write_bytes(content)
    result = invoke("node", "--id", "0", "--cluster", str(files["cluster"]), "--key", str(files["key"]))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{files[which]}: {error}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_cluster_nodes_that_is_not_utf8_is_one_line_or_the_json_error_object(tmp_path: Path) -> None:
    nodes = tmp_path / "latin1.yaml"
    nodes.write_bytes(NOT_UTF8)
    error = f"{nodes}: cannot read the cluster file: not UTF-8 text: invalid continuation byte at byte 1"
    as_text = invoke("cluster", str(FOUR), "--nodes", str(nodes))
    as_json = invoke("cluster", str(FOUR), "--nodes", str(nodes), "--json")
    assert (as_text.exit_code, as_text.stdout, as_text.stderr) == (2, "", error + "\n")
    assert (as_json.exit_code, as_json.stderr) == (2, "")
    assert json.loads(as_json.stdout) == {
        "error": error,
        "source": None,
        "problems": [{"line": None, "column": None, "message": error}],
    }


def test_driver_key_without_nodes_is_a_usage_error(tmp_path: Path) -> None:
    write_keys(tmp_path, {0: "127.0.0.1:0"})
    key = str(tmp_path / "driver.pem")
    as_text = invoke("cluster", str(FOUR), "--driver-key", key)
    as_json = invoke("cluster", str(FOUR), "--driver-key", key, "--json")
    said = "--driver-key is the key for the nodes of --nodes: without --nodes, the driver makes its own"
    assert as_text.exit_code == as_json.exit_code == 2
    assert said in as_text.stderr
    assert json.loads(as_json.stdout)["error"] == said
    assert as_text.stdout == as_json.stderr == ""
    assert running_nodes() == 0


def test_a_node_reads_its_key_from_standard_input_given_key_dash(tmp_path: Path) -> None:
    cluster = write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"})
    node = ["node", "--id", "0", "--cluster", str(cluster), "--key", "-"]
    wrong = CliRunner().invoke(main, node, input=(tmp_path / "general-1.pem").read_bytes())
    assert (wrong.exit_code, wrong.stderr) == (
        2,
        f"standard input: not the key {cluster} names for general 0\n",
    )
    garbage = CliRunner().invoke(main, node, input=b"not a key")
    assert garbage.exit_code == 2
    assert garbage.stderr.startswith("standard input: not a readable PEM private key: ")
    endless = CliRunner().invoke(main, node, input=b"A" * 70_000)
    assert endless.exit_code == 2
    assert endless.stderr.startswith(
        "standard input: not a readable PEM private key: longer than 65,536 bytes"
    )


def test_a_node_refuses_to_start_with_an_allowed_strategy_it_cannot_load(tmp_path: Path) -> None:
    cluster = write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"})
    args = ["node", "--id", "0", "--cluster", str(cluster), "--key", str(tmp_path / "general-0.pem")]
    result = invoke(*args, "--allow-strategy", "no_such_module:Traitor")
    assert result.exit_code == 2
    assert result.stderr.startswith("cannot load the allowed strategy 'no_such_module:Traitor': ")


PROBE = '''
"""A strategy module that says, as a node imports it before serving, which heavy modules are loaded."""
import json
import sys

HEAVY = (
    "click", "rich", "numpy", "trio_parallel", "structlog", "asyncio", "om_actors.cli", "om_actors.verify",
)
print(json.dumps(sorted(name for name in HEAVY if name in sys.modules)), file=sys.stderr)


class Probe:
    def choose(self, round, path, receiver, value, rng):
        return value
'''


def fork_nodes(folder: Path, generals: str, *options: str) -> list[str]:
    """What a driver starts: one process that forks a node per general, for ``folder``'s cluster file."""
    command = [sys.executable, "-m", "om_actors.node", "--fork-nodes", generals]
    return [*command, "--cluster", str(folder / "cluster.yaml"), "--logs", str(folder), *options]


def pem(folder: Path, general: int) -> bytes:
    return (folder / f"general-{general}.pem").read_bytes()


@pytest.mark.parametrize("forked", [False, True], ids=["by-hand", "forked"])
def test_nodes_load_neither_the_cli_nor_what_they_never_use(tmp_path: Path, forked: bool) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"})
    strategy = ["--allow-strategy", "probe:Probe", "--strategy-folder", str(tmp_path)]
    if forked:
        node = fork_nodes(tmp_path, "0", *strategy)
    else:
        node = [
            sys.executable,
            "-m",
            "om_actors.node",
            "--id",
            "0",
            "--cluster",
            str(tmp_path / "cluster.yaml"),
        ]
        node += ["--key", "-", *strategy, "--exit-with-stdin"]
    served = subprocess.run(node, input=pem(tmp_path, 0), capture_output=True, timeout=60)
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout.splitlines()[0])["event"] == "node.listening"
    said = (tmp_path / "general-0.log").read_bytes() if forked else served.stderr
    assert said == b"[]\n"


def test_forked_nodes_take_the_keys_in_their_order_and_each_refuses_anothers(tmp_path: Path) -> None:
    cluster = write_keys(tmp_path, dict.fromkeys(range(3), "127.0.0.1:0"))
    keys = pem(tmp_path, 0) + pem(tmp_path, 2) + pem(tmp_path, 1)
    forked = subprocess.run(fork_nodes(tmp_path, "0,1,2"), input=keys, capture_output=True, timeout=60)
    assert (forked.returncode, forked.stderr) == (0, b"")
    said = [json.loads(line) for line in forked.stdout.splitlines()]
    assert [line["general"] for line in said if line["event"] == "node.listening"] == [0]
    # Each exits when its standard input closes: 0 once it served, 1 and 2 at once, exit status 2.
    assert {line["general"]: line["status"] for line in said if line["event"] == "node.exited"} == {
        0: 0,
        1: 2,
        2: 2,
    }
    for general in (1, 2):
        refusal = f"standard input: not the key {cluster} names for general {general}\n"
        assert (tmp_path / f"general-{general}.log").read_text() == refusal


async def test_forked_nodes_are_named_and_go_with_the_process_they_were_forked_from(tmp_path: Path) -> None:
    write_keys(tmp_path, dict.fromkeys(range(2), "127.0.0.1:0"))
    forker = await trio.lowlevel.open_process(
        fork_nodes(tmp_path, "0,1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        with trio.fail_after(60):
            assert forker.stdin is not None
            assert forker.stdout is not None
            await forker.stdin.send_all(pem(tmp_path, 0) + pem(tmp_path, 1))
            said = b""
            while said.count(b"node.listening") < 2:
                said += await forker.stdout.receive_some()
            nodes = node_processes(os.getpid())
            names = sorted(Path(f"/proc/{pid}/comm").read_text() for pid in nodes)
            assert names == ["om-node-0\n", "om-node-1\n"]
            forker.kill()  # as kill -9 would: nothing it does on the way out
            await forker.wait()
            await eventually(lambda: [pid for pid in nodes if alive(pid)], lambda pids: not pids)
    finally:
        forker.kill()
        await forker.wait()
        for stream in (forker.stdin, forker.stdout):
            if stream is not None:
                await stream.aclose()


def test_a_node_without_hypercorn_names_what_to_install(tmp_path: Path) -> None:
    cluster = write_keys(tmp_path, {0: "127.0.0.1:0", 1: "127.0.0.1:0"})
    args = ["--id", "0", "--cluster", str(cluster), "--key", str(tmp_path / "general-0.pem")]
    code = f"import sys; sys.modules['hypercorn'] = None; from om_actors.node import main; main({args!r})"
    node = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert node.returncode == 2
    assert (
        node.stderr
        == b"error: om-actors node needs hypercorn, which is not installed: pip install 'om_actors[net]'\n"
    )


def test_a_cluster_without_hypercorn_says_so_before_starting_a_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "find_spec", lambda name: None if name == "hypercorn" else object())
    result = invoke("cluster", str(FOUR))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: om-actors cluster needs hypercorn, which is not installed: pip install 'om_actors[net]'\n"
    )
    assert running_nodes() == 0
