"""Every general its own process: keys, the cluster file, and the driver of the rounds.

``om-actors cluster`` makes a key pair per general and a cluster file in a
temporary folder, starts one ``om-actors node`` process per general on
127.0.0.1, waits until each answers ``/status``, then drives the rounds over
HTTP with the same barrier as the in-memory orchestrator: every node sends
its round, and the next round starts only when all have answered, or their
round timeout has passed.  It stops every process it started, on success,
on error and on Ctrl-C.

A node that dies mid-run is treated as silent from then on, like a traitor
that stopped talking, and is named in the result; its own decision is lost,
so it does not count as loyal.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from ._version import __version__
from .errors import OmActorsError
from .events import SCHEMA, Event, MessageRejected, MessageSent, RoundEnded, RunStarted, StrategyFailed
from .log import LogTarget, open_log
from .node import Node, Peer
from .orchestrator import conclusion, event_order, unwrapped
from .result import Result
from .scenario import Scenario

STARTUP_TIMEOUT = 20.0
"""Seconds the driver waits for every node to answer ``/status``."""


class ClusterError(OmActorsError):
    """A cluster file, key or node that cannot be used."""


# --- keys and the cluster file ----------------------------------------------------


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def write_key(key: Ed25519PrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ClusterError(f"{path}: not a readable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ClusterError(f"{path}: not an Ed25519 key")
    return key


def write_cluster(path: Path, addresses: Mapping[int, str], keys: Mapping[int, Ed25519PrivateKey]) -> None:
    """The cluster file: for each general, its address and public key."""
    generals = {
        g: {"address": addresses[g], "public_key": public_text(keys[g].public_key())}
        for g in sorted(addresses)
    }
    with path.open("w") as file:
        YAML().dump({"generals": generals}, file)


def load_cluster(path: Path) -> dict[int, Peer]:
    """Every general's address and public key, checked."""
    try:
        data = YAML(typ="safe").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise ClusterError(f"{path}: cannot read the cluster file: {exc}") from None
    generals = data.get("generals") if isinstance(data, dict) else None
    if not isinstance(generals, dict) or not generals:
        raise ClusterError(f"{path}: expected a mapping 'generals' of id to address and public_key")
    peers = {}
    for general, entry in generals.items():
        try:
            raw = base64.b64decode(entry["public_key"], validate=True)
            peers[int(general)] = Peer(
                int(general), str(entry["address"]), Ed25519PublicKey.from_public_bytes(raw)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(
                f"{path}: general {general}: needs an address and a base64 Ed25519 public_key ({exc})"
            ) from None
    return peers


def free_ports(count: int) -> list[int]:
    """Ports the system says are free right now, on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# --- one node ---------------------------------------------------------------------


async def serve_node(
    me: int, cluster: Path, key: Path, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve general ``me`` at its address in the cluster file, until cancelled."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    peers = load_cluster(cluster)
    if me not in peers:
        raise ClusterError(f"{cluster}: no general {me}")
    config = Config()
    config.bind = [peers[me].address]
    config.accesslog = None
    config.errorlog = None
    node = Node(me, load_key(key), peers)
    await serve(node, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]


# --- the driver -------------------------------------------------------------------


@attrs.frozen
class ClusterRun:
    """A cluster run's result, and the generals whose processes died during it."""

    result: Result
    crashed: tuple[int, ...]


async def run_cluster(
    scenario: Scenario,
    *,
    base_port: int | None = None,
    log: LogTarget | None = None,
    nodes: Path | None = None,
) -> ClusterRun:
    """Run ``scenario`` over HTTP, one node per general.

    Without ``nodes``, starts a node process per general on 127.0.0.1 (on
    ``base_port + g``, or on free ports) and stops them all afterwards.
    With ``nodes``, a cluster file, drives nodes someone started already,
    wherever they run.
    """
    if nodes is not None:
        peers = load_cluster(nodes)
        if set(peers) != set(range(scenario.generals)):
            raise ClusterError(
                f"{nodes}: lists generals {sorted(peers)}, the scenario has {scenario.generals}"
            )
        return await _drive(scenario, {g: peer.address for g, peer in peers.items()}, [], log)
    with tempfile.TemporaryDirectory(prefix="om-actors-cluster-") as folder:
        ports = (
            [base_port + g for g in range(scenario.generals)] if base_port else free_ports(scenario.generals)
        )
        addresses = {g: f"127.0.0.1:{port}" for g, port in enumerate(ports)}
        write_keys(Path(folder), addresses)
        with _processes(Path(folder), scenario.generals) as processes:
            return await _drive(scenario, addresses, processes, log)


def write_keys(folder: Path, addresses: Mapping[int, str]) -> Path:
    """A key pair per general, ``general-G.pem``, and ``cluster.yaml`` naming them all."""
    keys = {g: Ed25519PrivateKey.generate() for g in addresses}
    cluster = folder / "cluster.yaml"
    write_cluster(cluster, addresses, keys)
    for general, key in keys.items():
        write_key(key, folder / f"general-{general}.pem")
    return cluster


async def _drive(
    scenario: Scenario,
    addresses: Mapping[int, str],
    processes: Sequence[subprocess.Popen[bytes]],
    log: LogTarget | None,
) -> ClusterRun:
    async with httpx.AsyncClient(timeout=max(5.0, 2 * scenario.round_timeout)) as client:
        driver = _Driver(scenario, addresses, processes, client)
        await driver.wait_until_healthy()
        return await driver.run(log)


@contextmanager
def _processes(folder: Path, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start a node process per general; terminate, then kill, every one of them on the way out."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for general in range(count):
            key = folder / f"general-{general}.pem"
            command = [sys.executable, "-m", "om_actors", "node", "--id", str(general)]
            command += ["--cluster", str(folder / "cluster.yaml"), "--key", str(key)]
            # The child keeps its own copy of the descriptor; ours closes at once.
            with (folder / f"general-{general}.log").open("wb") as output:
                process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=_env())
            processes.append(process)
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def running_nodes() -> int:
    """Node processes this process started that are still alive, read from /proc (Linux).

    Only our own children count: other runs on the machine may have nodes of
    their own.  The tests and the soak script use it to check for leaks.
    """
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        parent = next((line.split()[1] for line in status.splitlines() if line.startswith("PPid:")), "")
        count += parent == str(os.getpid()) and b"om_actors" in command and b"node" in command
    return count


def _env() -> dict[str, str]:
    """The nodes import om_actors from where this process did, whatever the working folder."""
    package_root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


class _Driver:
    def __init__(
        self,
        scenario: Scenario,
        addresses: Mapping[int, str],
        processes: Sequence[subprocess.Popen[bytes]],
        client: httpx.AsyncClient,
    ) -> None:
        self.scenario = scenario
        self.addresses = addresses
        self.processes = processes
        self.client = client
        self.crashed: set[int] = set()

    def _url(self, general: int, endpoint: str) -> str:
        return f"http://{self.addresses[general]}{endpoint}"

    async def wait_until_healthy(self) -> None:
        with trio.move_on_after(STARTUP_TIMEOUT) as waiting:
            for general in self.addresses:
                while True:
                    if self.processes and self.processes[general].poll() is not None:
                        raise ClusterError(f"node {general} exited during start-up")
                    try:
                        (await self.client.get(self._url(general, "/status"))).raise_for_status()
                        break
                    except httpx.HTTPError:
                        await trio.sleep(0.05)
        if waiting.cancelled_caught:
            raise ClusterError(f"the nodes did not all answer within {STARTUP_TIMEOUT:.0f} s")

    async def _each(self, call: Any) -> dict[int, Any]:
        """``call(general)`` for every live general at once; a dead one joins ``crashed``."""
        answers: dict[int, Any] = {}

        async def one(general: int) -> None:
            try:
                answers[general] = await call(general)
            except httpx.TransportError:
                self.crashed.add(general)

        with unwrapped():  # a refusal comes out as the ClusterError it is
            async with trio.open_nursery() as nursery:
                for general in self.addresses:
                    if general not in self.crashed:
                        nursery.start_soon(one, general)
        return answers

    async def _post(self, general: int, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(self._url(general, endpoint), json=body)
        if response.status_code >= 400:
            raise ClusterError(f"node {general} refused {endpoint}: {response.json().get('error')}")
        answer: dict[str, Any] = response.json()
        return answer

    async def run(self, log: LogTarget | None) -> ClusterRun:
        scenario = self.scenario
        instances = scenario.effective_instances
        for index in range(len(instances)):
            start = {
                "instance": index,
                "scenario": scenario.to_dict(),
                "round_timeout": scenario.round_timeout,
            }
            await self._each(lambda g, start=start: self._post(g, "/start", start))
        late: dict[int, list[int]] = {}
        for round in range(1, scenario.m + 2):
            for index in range(len(instances)):
                body = {"instance": index, "round": round}
                answers = await self._each(lambda g, body=body: self._post(g, "/round", body))
                late.setdefault(round, []).extend(g for g, a in answers.items() if a["timed_out"])
        reports = [
            await self._each(lambda g, i=index: self._get_decision(g, i)) for index in range(len(instances))
        ]
        with open_log(log) as writer:
            return self._conclude(reports, late, writer)

    async def _get_decision(self, general: int, instance: int) -> dict[str, Any]:
        response = await self.client.get(self._url(general, "/decide"), params={"instance": instance})
        if response.status_code != 200:
            raise ClusterError(f"node {general} has no decision: {response.json().get('error')}")
        answer: dict[str, Any] = response.json()
        return answer

    def _conclude(self, reports: list[dict[int, Any]], late: dict[int, list[int]], writer: Any) -> ClusterRun:
        """The same events, counts and result as an in-memory run, from what the nodes report."""
        scenario = self.scenario
        tagged = len(scenario.effective_instances) > 1
        events: list[Event] = [RunStarted(SCHEMA, __version__, scenario.seed, scenario.to_dict())]
        per_round, per_instance = [0] * (scenario.m + 1), [0] * len(reports)
        rejected_total = 0
        for round in range(1, scenario.m + 2):
            found = sorted(
                (
                    event
                    for index, report in enumerate(reports)
                    for general, answer in report.items()
                    for event in _round_events(general, answer, round, index if tagged else None)
                ),
                key=event_order,
            )
            sent = [e for e in found if isinstance(e, MessageSent)]
            rejected = sum(isinstance(e, MessageRejected) for e in found)
            per_round[round - 1], rejected_total = len(sent), rejected_total + rejected
            for message in sent:
                per_instance[message.instance or 0] += 1
            cut_off = tuple(sorted(set(late.get(round, [])) | self.crashed))
            events += [*found, RoundEnded(round, len(sent), rejected, cut_off)]
        live = [g for g in range(scenario.generals) if g not in self.crashed]
        decisions = {g: tuple(str(report[g]["decision"]) for report in reports) for g in live}
        outcomes, ending = conclusion(scenario, decisions, per_instance, faulty=self.crashed)
        events += ending
        if writer is not None:
            for event in events:
                writer(event)
        sent_by = dict.fromkeys(range(scenario.generals), 0)
        for event in events:
            if isinstance(event, MessageSent):
                sent_by[event.sender] += 1
        received = {g: sum(report[g]["received"] for report in reports) if g in live else 0 for g in sent_by}
        timed_out = {r: tuple(sorted(set(gs) | self.crashed)) for r, gs in late.items() if gs or self.crashed}
        result = Result(
            scenario=scenario,
            instances=tuple(outcomes),
            messages_per_round=tuple(per_round),
            sent=sent_by,
            received=received,
            rejected=rejected_total,
            timed_out=timed_out,
        )
        return ClusterRun(result, tuple(sorted(self.crashed)))


def _round_events(general: int, answer: Mapping[str, Any], round: int, tag: int | None) -> Iterator[Event]:
    """A node's report of one round as the events an in-memory run logs."""
    for message in answer["sent"]:
        if message["round"] == round:
            path = tuple(message["path"])
            yield MessageSent(round, general, message["receiver"], path, message["value"], instance=tag)
    for message in answer["rejected"]:
        if message["round"] == round:
            path = tuple(message["path"]) if isinstance(message["path"], list) else message["path"]
            reason = message["reason"]
            yield MessageRejected(
                round, message["sender"], general, path, message["value"], reason, instance=tag
            )
    for failure in answer["failed"]:
        if failure["round"] == round:
            path = tuple(failure["path"])
            yield StrategyFailed(round, general, path, failure["receiver"], failure["error"], instance=tag)
