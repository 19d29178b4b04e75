"""Every general its own process: the cluster against the in-memory run.

Rules for this file:
- loopback only, on ports chosen free at run time;
- every test is bounded with ``trio.fail_after`` and reaps every process
  it started (``run_cluster`` stops them; the last check is that none is
  left);
- a node that dies does so by SIGKILL, from a traitor strategy that kills
  its own process in round 2, so the crash is mid-run by construction.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner, Result

from om_actors import Scenario, TraitorSpec, load_scenario, simulate_sync
from om_actors.cli import main
from om_actors.cluster import free_ports, load_cluster, run_cluster, running_nodes, write_keys

SCENARIOS = Path(__file__).parent.parent / "scenarios"
TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def nodes_see_the_test_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


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
    assert outcome.crashed == ()
    assert outcome.result.decisions == expected.decisions
    assert outcome.result.messages_per_round == expected.messages_per_round
    assert outcome.result.received == expected.received
    assert log.read_bytes() == memory.getvalue()
    assert running_nodes() == 0


async def test_a_node_killed_mid_run_is_named_and_counted_silent() -> None:
    scenario = Scenario(generals=7, m=2, traitors={3: "adversaries:Crashes"}, round_timeout=2)
    with trio.fail_after(60):
        outcome = await run_cluster(scenario)
    assert outcome.crashed == (3,)
    result = outcome.result
    assert result.decisions == dict.fromkeys((0, 1, 2, 4, 5, 6), "attack")
    assert result.success
    assert result.messages_per_round[0] == 6
    assert 3 in result.timed_out[2]
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
    scenario = str(SCENARIOS / "four-generals-traitor-lieutenant.yaml")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args))

    with trio.fail_after(90):
        cluster = await trio.to_thread.run_sync(invoke, "cluster", scenario, abandon_on_cancel=True)
        as_json = await trio.to_thread.run_sync(invoke, "cluster", scenario, "--json", abandon_on_cancel=True)
        run = await trio.to_thread.run_sync(invoke, "run", scenario)  # trio.run cannot nest in this one
    assert (cluster.exit_code, cluster.stdout) == (0, run.stdout)
    assert json.loads(as_json.stdout)["decisions"] == {"0": "attack", "1": "attack", "2": "attack"}
    assert json.loads(as_json.stdout)["crashed"] == []
    assert running_nodes() == 0


async def test_nodes_started_by_hand_are_driven_from_their_cluster_file(tmp_path: Path) -> None:
    addresses = {g: f"127.0.0.1:{port}" for g, port in enumerate(free_ports(4))}
    cluster = write_keys(tmp_path, addresses)
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "om_actors", "node", "--id", str(g), "--cluster", str(cluster),
             "--key", str(tmp_path / f"general-{g}.pem")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for g in addresses
    ]  # fmt: skip
    try:
        scenario = load_scenario(SCENARIOS / "four-generals-traitor-lieutenant.yaml")
        with trio.fail_after(60):
            outcome = await run_cluster(scenario, nodes=cluster)
        assert outcome.result.decisions == {0: "attack", 1: "attack", 2: "attack"}
        assert outcome.result.messages == 9
    finally:
        for node in nodes:
            node.terminate()
            node.wait(timeout=10)
    assert running_nodes() == 0


def test_keys_writes_a_cluster_file_that_loads(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["keys", str(tmp_path), "--addresses", "hostA:9000,hostB:9000,hostC:9000"]
    )
    assert result.exit_code == 0
    assert result.stdout.startswith(f"wrote {tmp_path / 'cluster.yaml'} and 3 private keys")
    peers = load_cluster(tmp_path / "cluster.yaml")
    assert [(p.id, p.address) for p in peers.values()] == [
        (0, "hostA:9000"),
        (1, "hostB:9000"),
        (2, "hostC:9000"),
    ]
    assert oct((tmp_path / "general-1.pem").stat().st_mode & 0o777) == "0o600"
    bad = CliRunner().invoke(main, ["keys", str(tmp_path), "--addresses", "hostA"])
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
        (None, "not a key", "not a readable PEM private key"),
    ],
)
def test_a_node_with_a_bad_cluster_file_or_key_exits_2(
    tmp_path: Path, cluster_text: str | None, key_text: str | None, error: str
) -> None:
    write_keys(tmp_path, {0: "127.0.0.1:1", 1: "127.0.0.1:2"})
    if cluster_text is not None:
        (tmp_path / "cluster.yaml").write_text(cluster_text)
    if key_text is not None:
        (tmp_path / "general-0.pem").write_text(key_text)
    args = [
        "node",
        "--id",
        "0",
        "--cluster",
        str(tmp_path / "cluster.yaml"),
        "--key",
        str(tmp_path / "general-0.pem"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert error in result.stderr
    assert "Traceback" not in result.stderr
