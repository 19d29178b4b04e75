"""Every general its own process: keys, the cluster file, the nodes, and the driver of the rounds.

``om-actors cluster`` makes a key pair per general and one for itself (the
driver), writes a cluster file naming their public keys in a temporary
folder, and starts a node process per general: one process imports what a
node needs and forks the nodes (:func:`fork_nodes`), handing each its own
private key through a pipe: no private key is written to disk.  Each node
binds a port of its own choosing (port 0, unless ``--base-port`` says) and
reports the address it got on its standard output; the driver then checks,
with a signed ``/status`` over a fresh nonce, that each answers with the id
and key it was given, so it knows it reached its own nodes and nobody
else's.  The rounds are driven over signed HTTP with the barriers of the
in-memory orchestrator: every node sends its round and waits for each
receiver to acknowledge its batch, then every node closes the round and
says what arrived.

Nothing is lost silently.  A batch its receiver never took is logged as
messages with ``delivered: false`` and counted (``RoundEnded.undelivered``,
``Result.undelivered``).  A node that dies is logged as ``general.crashed``
in the round it died, with everything it sent before -- what its receivers
report having got from it -- and is counted as neither loyal nor traitor.

The nodes go when the driver goes.  The process they are forked from runs
in a trio nursery (``trio.run_process``), which stops it, and it them, on
success, on error, on Ctrl-C and on cancellation; :func:`stoppable` turns
SIGTERM and SIGHUP into such a cancellation.  It also stops them when its
standard input, a pipe from the driver, closes, and each node exits when
its own standard input, a pipe from it, closes: that covers a driver, or
the process between, killed outright.  A driver
killed outright leaves its temporary folder (the cluster file and the nodes'
standard error); the next driver removes it (:func:`remove_stale_folders`).

The log is written a round at a time, as soon as the round closes, through
the in-memory run's writer, which flushes at every ``round.end``: a driver
stopped by any signal leaves every closed round in the file.  What it says
is what ``run`` says for the same scenario, byte for byte, whatever the
algorithm: the nodes run their generals through the same driver as the
in-memory actors (:mod:`om_actors.node`), and the run is ordered, counted
and concluded by the same :class:`~om_actors.accounting.Accounting`.  The
driver knows no algorithm's rules either: the number of rounds is the
scenario's, and messages are their payloads' fields.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, cast

import attrs
import httpx
import trio
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .algorithm import Algorithm
from .errors import OmActorsError
from .events import (
    Event,
    GeneralCrashed,
    MessageRejected,
    MessageSent,
    StrategyFailed,
)
from .limits import read_at_most, utf8_problem
from .node import (
    DELIVERY_TIMEOUT,
    FORK_NODES,
    MAX_ADDRESS,
    Node,
    Peer,
    control_headers,
    identified,
    identity_fields,
    plain_http_client,
    public_text,
    verify,
)
from .strategies import importable_from, strategy_class

if TYPE_CHECKING:  # the driver's alone: a node, which imports this module too, does without them
    from .accounting import Accounting
    from .log import LogTarget
    from .result import Result
    from .scenario import Scenario

STDIN = "-"
"""``--key -``: a node reads its private key from standard input, as the nodes the driver starts do."""
MAX_KEY_BYTES = 64 * 1024
"""A private key is refused past this many bytes, unread: an Ed25519 key in PEM has 119."""
MAX_CLUSTER_BYTES = 1024 * 1024
"""A cluster file is refused past this many bytes, before it is parsed: a general's entry has about 100."""
STARTUP_TIMEOUT = 20.0
"""Seconds the driver waits for every node to report its address and answer ``/status``."""
FOLDER_PREFIX = "om-actors-cluster-"
"""A driver's temporary folder is named this, its process id, a dash and a random part."""
_FOLDER_NAME = re.compile(rf"{re.escape(FOLDER_PREFIX)}([0-9]{{1,10}})-[a-z0-9_]+")
CLUSTER_FILE = "cluster.yaml"
FORKER_LOG = "nodes.log"
"""The standard error of the process a driver forks its nodes from, in the driver's temporary folder."""
STOP_GRACE = 2.0
"""Seconds a node has to exit on SIGTERM before it is killed: trio gives the whole process tree 5."""
DRIVER_KEY = "driver.pem"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
LISTEN_BACKLOG = 128
MAX_LISTENING_LINE = 4096

T = TypeVar("T")


class ClusterError(OmActorsError):
    """A cluster file, key or node that cannot be used."""


class Stopped(ClusterError):
    """The driver was stopped by a signal, and stopped every node it started on the way out."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}: every node process was stopped")

    @property
    def status(self) -> int:
        """The exit status a shell expects of a process a signal ended: 128 + the signal's number."""
        return 128 + self.signum


# --- keys and the cluster file ----------------------------------------------------


def general_key_file(general: int) -> str:
    return f"general-{general}.pem"


@attrs.frozen
class ClusterKeys:
    """A private key per general, and the driver's: what ``om-actors keys`` writes, and a run holds."""

    generals: Mapping[int, Ed25519PrivateKey]
    driver: Ed25519PrivateKey

    @classmethod
    def generate(cls, generals: Iterable[int]) -> ClusterKeys:
        return cls({g: Ed25519PrivateKey.generate() for g in generals}, Ed25519PrivateKey.generate())


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_key(key: Ed25519PrivateKey, path: Path) -> None:
    """``key`` as PEM in ``path``, readable by its owner alone before a byte of it is written."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(descriptor, 0o600)  # a file that existed keeps its mode through O_CREAT
        file.write(private_pem(key))


def load_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file, or from standard input when ``path`` is ``-``."""
    where = key_source(path)
    try:
        pem = read_key_from_stdin() if str(path) == STDIN else _read_bounded(path, MAX_KEY_BYTES)
        key = serialization.load_pem_private_key(pem, password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ClusterError(f"{where}: not a readable PEM private key: {_reason(exc)}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ClusterError(f"{where}: not an Ed25519 key")
    return key


def key_source(path: Path) -> str:
    """How an error names where a key came from."""
    return "standard input" if str(path) == STDIN else str(path)


def read_key_from_stdin() -> bytes:
    """A PEM key from standard input, read up to its ``-----END`` line and no further.

    The pipe may stay open after the key: the driver hands each node its key
    this way, so that no private key is ever written to disk, and keeps the
    pipe open for ``--exit-with-stdin``.  Read a chunk at a time, and refused
    past :data:`MAX_KEY_BYTES`, so an endless input costs nothing.
    """
    if sys.stdin is None:
        raise ValueError("standard input is closed")
    stream = cast(io.BufferedIOBase, sys.stdin.buffer)
    pem = b""
    while not _pem_ended(pem):
        chunk = stream.read1(4096)
        if not chunk:
            break
        pem += chunk
        if len(pem) > MAX_KEY_BYTES:
            raise ValueError(_too_long(MAX_KEY_BYTES))
    return pem


def _pem_ended(pem: bytes) -> bool:
    """Whether ``pem`` holds a whole ``-----END ...-----`` line's dashes."""
    end = pem.find(b"-----END ")
    return end >= 0 and pem.find(b"-----", end + len(b"-----END ")) >= 0


def _read_bounded(path: Path, limit: int) -> bytes:
    """A file's bytes, refused (``ValueError``) past ``limit``, unread: ``/dev/zero`` costs ``limit``."""
    with path.open("rb") as file:
        data = read_at_most(file, limit)
    if data is None:
        raise ValueError(_too_long(limit))
    return data


def _too_long(limit: int) -> str:
    return f"longer than {limit:,} bytes, the most it may have"


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return utf8_problem(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@attrs.frozen
class ClusterFile:
    """What a cluster file says: every general's address and key, the driver's key, and what nodes may run.

    ``strategies`` are ``module:Class`` traitor strategies every node of the
    cluster may run, besides the built-in ones, imported from
    ``strategy_folder`` too.
    """

    generals: Mapping[int, Peer]
    driver: Ed25519PublicKey
    strategies: tuple[str, ...] = ()
    strategy_folder: Path | None = None


def write_cluster(
    path: Path,
    addresses: Mapping[int, str],
    keys: Mapping[int, Ed25519PrivateKey],
    driver: Ed25519PublicKey,
) -> None:
    """The cluster file: the driver's public key, and for each general its address and public key."""
    generals = {
        g: {"address": addresses[g], "public_key": public_text(keys[g].public_key())}
        for g in sorted(addresses)
    }
    with path.open("w") as file:
        YAML().dump({"driver": {"public_key": public_text(driver)}, "generals": generals}, file)


def load_cluster(path: Path) -> ClusterFile:
    """Every general's address and public key, the driver's key and the allowed strategies, checked.

    The file is read up to :data:`MAX_CLUSTER_BYTES` and no further, and must
    be UTF-8: anything else is a :class:`ClusterError`, before it is parsed.
    """
    try:
        data = YAML(typ="safe").load(_read_bounded(path, MAX_CLUSTER_BYTES).decode("utf-8"))
    except (OSError, ValueError, YAMLError, RecursionError) as exc:
        raise ClusterError(f"{path}: cannot read the cluster file: {_reason(exc)}") from None
    generals = data.get("generals") if isinstance(data, dict) else None
    if not isinstance(generals, dict) or not generals:
        raise ClusterError(f"{path}: expected a mapping 'generals' of id to address and public_key")
    peers = {}
    for general, entry in generals.items():
        try:
            key = _public_key(entry["public_key"])
            peers[int(general)] = Peer(int(general), _address(entry["address"]), key)
        except (KeyError, TypeError, ValueError) as exc:
            raise ClusterError(
                f"{path}: general {general}: needs an address and a base64 Ed25519 public_key ({exc})"
            ) from None
    driver = data.get("driver")
    try:
        driver_key = _public_key(driver["public_key"])
    except (KeyError, TypeError, ValueError):
        raise ClusterError(
            f"{path}: needs 'driver: {{public_key: ...}}', the driver's base64 Ed25519 public key "
            "(om-actors keys writes it)"
        ) from None
    strategies = data.get("strategies", [])
    if not isinstance(strategies, list) or not all(isinstance(s, str) for s in strategies):
        raise ClusterError(f"{path}: 'strategies' must be a list of module:Class names")
    folder = data.get("strategy_folder")
    if folder is not None and not isinstance(folder, str):
        raise ClusterError(f"{path}: 'strategy_folder' must be a folder name")
    where = None if folder is None else (path.parent / folder).resolve()
    return ClusterFile(peers, driver_key, tuple(strategies), where)


def _address(address: object) -> str:
    if not isinstance(address, str) or len(address) > MAX_ADDRESS:
        raise TypeError(f"an address is host:port, at most {MAX_ADDRESS} characters")
    return address


def _public_key(text: object) -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise TypeError("a public key is base64 text")
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def write_keys(folder: Path, addresses: Mapping[int, str]) -> Path:
    """A key pair per general (``general-G.pem``), the driver's (``driver.pem``), and ``cluster.yaml``."""
    keys = ClusterKeys.generate(addresses)
    cluster = folder / CLUSTER_FILE
    write_cluster(cluster, addresses, keys.generals, keys.driver.public_key())
    for general, key in keys.generals.items():
        write_key(key, folder / general_key_file(general))
    write_key(keys.driver, folder / DRIVER_KEY)
    return cluster


# --- one node ---------------------------------------------------------------------


def load_strategies(names: Collection[str], folder: str | os.PathLike[str] | None) -> None:
    """Import the ``module:Class`` strategies a node's operator allowed, once, before it serves.

    So a request never makes a node import anything: a name the operator
    did not allow is refused, and an allowed one is already loaded.
    """
    with importable_from(folder):
        for name in sorted(names):
            try:
                strategy_class(name)
            except OmActorsError as exc:
                raise ClusterError(f"cannot load the allowed strategy {name!r}: {exc}") from None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as its host and port."""
    host, colon, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ClusterError(f"{address!r} is not an address: write host:port")
    return host, int(port)


def listen(general: int, address: str) -> tuple[socket.socket, str]:
    """A socket listening at ``address`` (port 0: any free port), and the address it got."""
    host, port = split_address(address)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ClusterError(f"general {general} cannot listen on {address}: {reason.lower()}") from None
    shown = f"[{host}]" if ":" in host else host
    return sock, f"{shown}:{sock.getsockname()[1]}"


async def serve_node(
    me: int,
    cluster: Path,
    key: Path,
    *,
    listen_on: str | None = None,
    allowed: Sequence[str] = (),
    strategy_folder: Path | None = None,
    exit_with_stdin: bool = False,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve general ``me`` until cancelled (or, with ``exit_with_stdin``, until stdin closes).

    It listens at ``listen_on``, else at its address in the cluster file,
    and prints one JSON line on stdout, ``{"event": "node.listening", ...}``,
    with the address it got -- the port, when asked for port 0.  It may run
    the built-in strategies and those ``allowed`` here or in the cluster
    file, all imported before it serves.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    spec = load_cluster(cluster)
    if me not in spec.generals:
        raise ClusterError(f"{cluster}: no general {me}")
    private = load_key(key)
    if public_text(private.public_key()) != public_text(spec.generals[me].public_key):
        raise ClusterError(f"{key_source(key)}: not the key {cluster} names for general {me}")
    names = sorted({*spec.strategies, *allowed})
    load_strategies(names, strategy_folder or spec.strategy_folder)
    sock, address = listen(me, listen_on or spec.generals[me].address)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.errorlog = None
    node = Node(me, private, spec.generals, spec.driver, allowed=names)
    listening = json.dumps({"event": "node.listening", "general": me, "address": address})
    sys.stdout.write(listening + "\n")  # one write, whole: forked nodes share one pipe
    sys.stdout.flush()
    async with trio.open_nursery() as nursery:
        if exit_with_stdin:
            nursery.start_soon(_cancel_when_stdin_closes, nursery.cancel_scope)
        await serve(node, config, task_status=task_status, mode="asgi")  # type: ignore[arg-type]


async def _cancel_when_stdin_closes(scope: trio.CancelScope) -> None:
    """Stop serving at once when standard input ends: the driver that holds the pipe is gone.

    At once, not gracefully: nobody is left to wait for an answer, and a
    strategy that hangs would otherwise hold the node up.
    """
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stream:
        while await stream.receive_some():
            pass
    scope.cancel()


# --- the nodes a driver starts, forked from one process ----------------------------


def fork_nodes(
    generals: Sequence[int],
    cluster: Path,
    logs: Path,
    *,
    allowed: Sequence[str] = (),
    strategy_folder: Path | None = None,
) -> int:
    """Fork a node per general, hand each its own key, and stay until the driver goes; the exit status.

    ``python -m om_actors.node --fork-nodes``, the one process a driver
    starts.  Most of a node's start is importing trio, hypercorn, httpx,
    cryptography and the algorithms: done here once, a fork serves at once,
    where thirteen processes would each import it all.  It forks before any
    trio run or thread exists, which is when forking is safe (POSIX).

    Each node is :func:`serve_node` with ``--key -`` and
    ``--exit-with-stdin``, its standard input a pipe from this process, and
    its standard error ``logs/general-G.log``.  The private keys come on
    this process's standard input, in the order of ``generals``, and are
    read only once every node is forked, so no node ever holds another's.
    The nodes share this process's standard output, where each prints its
    ``node.listening`` line and this process a ``node.exited`` line for each
    node that exits.

    It stops its nodes when its standard input closes (the driver is gone)
    and on SIGTERM, SIGHUP or SIGINT; and exits when the last node has.
    """
    _preload()
    gc.freeze()  # the collector leaves the imports' objects alone: 13 forks copy ~5 MiB fewer pages
    pipes: dict[int, int] = {}
    children: dict[int, int] = {}
    for general in generals:
        errors = os.open(logs / f"general-{general}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(write)
            _serve_forked(general, read, errors, pipes.values(), cluster, allowed, strategy_folder)
        os.close(read)
        os.close(errors)
        pipes[general] = write
        children[pid] = general
    return _tend(children, pipes)


def _preload() -> None:
    """Import what every node imports, in the process its nodes are forked from."""
    import hypercorn.config
    import hypercorn.trio  # noqa: F401

    from .registry import BUILT_IN, REGISTRY

    with suppress(ImportError):
        import httpcore  # noqa: F401  # what httpx imports when a node makes its client
    for name in BUILT_IN:
        REGISTRY.get(name)


def _serve_forked(
    general: int,
    key: int,
    errors: int,
    siblings: Iterable[int],
    cluster: Path,
    allowed: Sequence[str],
    strategy_folder: Path | None,
) -> NoReturn:
    """Be general ``general``'s node in a process just forked, its key read from ``key``; never return.

    It first closes the pipes of the nodes forked before it, which it
    inherited: no node can write into another's standard input.
    """
    from .node import served

    status = 1
    try:
        for descriptor in siblings:
            os.close(descriptor)
        os.dup2(key, 0)
        os.close(key)
        os.dup2(errors, 2)
        os.close(errors)
        _name_process(f"om-node-{general}")
        serving = partial(
            serve_node, general, cluster, Path(STDIN), allowed=allowed, strategy_folder=strategy_folder
        )
        status = served(lambda: trio.run(partial(serving, exit_with_stdin=True)))
    except BaseException:
        traceback.print_exc()  # into the node's log, whose last line the driver shows if it did not start
    finally:
        with suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _name_process(name: str) -> None:
    """Name this process for ``ps -o comm`` and ``top``, where Linux allows: forks share a command line."""
    with suppress(OSError):
        Path("/proc/self/comm").write_text(name)


def _tend(children: dict[int, int], pipes: Mapping[int, int]) -> int:
    """Hand the nodes their keys, report each that exits, and stop them all when the driver goes.

    ``children`` are the nodes' process ids, each with its general;
    ``pipes`` each general's standard input.  Signals wake the loop through a pipe of
    their own, so it reacts to them and to standard input alike.  When
    standard input closes, closing the nodes' pipes stops them, once each
    has started; a signal stops them at once.
    """
    woken, wake = os.pipe()
    os.set_blocking(wake, False)
    signal.set_wakeup_fd(wake)
    for signum in (signal.SIGCHLD, signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, _noted)
    stopping = {signal.SIGINT, *STOP_SIGNALS}
    waiting = list(pipes.values())  # in the order of the generals, as the keys come
    received = b""
    status = 0
    signalled = False
    try:
        _report_exits(children)
        while children:
            ready, _, _ = select.select([0, woken], [], [])
            if woken in ready:
                signalled = bool(stopping.intersection(os.read(woken, 256)))
                if signalled:
                    break
                _report_exits(children)
            if 0 in ready:
                chunk = os.read(0, 65536)
                if not chunk:
                    break
                if waiting:
                    received = _hand_keys(received + chunk, waiting)
    except ClusterError as exc:
        print(exc, file=sys.stderr)
        status = 2
    finally:
        for descriptor in pipes.values():
            os.close(descriptor)
        _stop(children, terminate=signalled)
    return status


def _noted(signum: int, frame: object) -> None:
    """A signal's handler: the wake-up pipe, not this, tells the loop of it."""


def _hand_keys(received: bytes, waiting: list[int]) -> bytes:
    """Write each whole key in ``received`` to the next pipe in ``waiting``; what remains of ``received``."""
    while waiting and _pem_ended(received):
        end = received.index(b"-----", received.index(b"-----END ") + len(b"-----END ")) + len(b"-----")
        key, received = received[:end] + b"\n", received[end:].lstrip(b"\r\n")
        with suppress(BrokenPipeError):  # a node that already died: its log says why
            os.write(waiting.pop(0), key)
    if len(received) > MAX_KEY_BYTES:
        raise ClusterError(f"standard input: a node's key is {_too_long(MAX_KEY_BYTES)}")
    return received


def _report_exits(children: dict[int, int], *, block: bool = False) -> None:
    """Reap the nodes that exited, and say so on standard output, where the driver reads their addresses."""
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        general = children.pop(pid, None)
        if general is not None:
            line = {"event": "node.exited", "general": general, "status": os.waitstatus_to_exitcode(status)}
            with suppress(OSError):  # a driver that no longer reads
                os.write(1, json.dumps(line).encode() + b"\n")


def _stop(children: dict[int, int], *, terminate: bool) -> None:
    """Wait for every node to exit, SIGTERM them first if ``terminate``; SIGKILL after :data:`STOP_GRACE`."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in children if terminate else ():
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while children and time.monotonic() < deadline:
        _report_exits(children)
        time.sleep(0.005)
    for pid in children:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _report_exits(children, block=True)


# --- the driver -------------------------------------------------------------------


@attrs.frozen
class ClusterRun:
    """A cluster run's result."""

    result: Result

    @property
    def crashed(self) -> tuple[int, ...]:
        """The generals whose processes died during the run: ``result.crashed``."""
        return self.result.crashed


async def run_cluster(
    scenario: Scenario,
    *,
    base_port: int | None = None,
    log: LogTarget | None = None,
    nodes: Path | None = None,
    driver_key: Path | None = None,
) -> ClusterRun:
    """Run ``scenario`` over signed HTTP, one node per general.

    Without ``nodes``, starts a node process per general on 127.0.0.1 (on
    ``base_port + g``, or on a port each node chooses) and stops them all
    afterwards; the scenario's ``module:Class`` strategies, and the folder
    of its file, are passed on to them.  With ``nodes``, a cluster file,
    drives nodes someone started already, wherever they run, signing with
    ``driver_key`` (by default ``driver.pem`` next to the cluster file).

    The nodes it starts get their private keys through their standard
    input; its own key never leaves memory.  Its temporary folder holds only
    the cluster file and the nodes' standard error.
    """
    from .orchestrator import unwrapped
    from .scenario import refuse_over_the_limit

    if driver_key is not None and nodes is None:
        raise ClusterError(
            "driver_key is the key for the nodes given by nodes: without them, the driver makes its own"
        )
    refuse_over_the_limit(scenario)
    if nodes is not None:
        spec = load_cluster(nodes)
        if set(spec.generals) != set(range(scenario.generals)):
            raise ClusterError(
                f"{nodes}: lists generals {sorted(spec.generals)}, the scenario has {scenario.generals}"
            )
        key_path = driver_key or nodes.parent / DRIVER_KEY
        key = load_key(key_path)
        if public_text(key.public_key()) != public_text(spec.driver):
            raise ClusterError(f"{key_path}: not the driver key {nodes} names")
        links = {g: _Link(g, peer.address, peer.public_key) for g, peer in spec.generals.items()}
        return await _drive(scenario, links, key, log)
    if find_spec("hypercorn") is None:  # the nodes serve with it; the driver never imports it
        raise ModuleNotFoundError("No module named 'hypercorn'", name="hypercorn")
    remove_stale_folders()
    with tempfile.TemporaryDirectory(prefix=f"{FOLDER_PREFIX}{os.getpid()}-") as name:
        folder = Path(name)
        ports = {g: base_port + g if base_port else 0 for g in range(scenario.generals)}
        keys = ClusterKeys.generate(ports)
        addresses = {g: f"127.0.0.1:{port}" for g, port in ports.items()}
        write_cluster(folder / CLUSTER_FILE, addresses, keys.generals, keys.driver.public_key())
        peers = {g: Peer(g, addresses[g], key.public_key()) for g, key in keys.generals.items()}
        spec = ClusterFile(peers, keys.driver.public_key())
        with unwrapped():
            async with trio.open_nursery() as nursery:
                try:
                    addresses = await _start_nodes(nursery, folder, scenario, spec, keys.generals)
                    links = {g: _Link(g, addresses[g], peer.public_key) for g, peer in spec.generals.items()}
                    return await _drive(scenario, links, keys.driver, log)
                finally:
                    nursery.cancel_scope.cancel()  # every node goes, whatever happened


def remove_stale_folders(root: Path | None = None) -> list[Path]:
    """Remove the folders that drivers killed outright left in ``root`` (the temporary folder); name them.

    A driver names its folder after its process id and removes it on the
    way out, unless it is killed with ``kill -9``.  A folder of this user's
    whose driver is no longer running is such a leftover.  It holds no
    secret -- the nodes get their keys through a pipe -- only the cluster
    file and the nodes' standard error, but nothing should pile up.
    """
    removed = []
    for entry in (Path(tempfile.gettempdir()) if root is None else root).glob(f"{FOLDER_PREFIX}*"):
        named = _FOLDER_NAME.fullmatch(entry.name)
        if named is None or _running(int(named[1])):
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists; one we may not signal exists too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's, or no process id at all: not ours to remove
    return True


async def stoppable(run: Callable[[], Awaitable[T]]) -> T:
    """``run()``, cancelled cleanly by SIGTERM or SIGHUP, which then raise :class:`Stopped`.

    Cancelling :func:`run_cluster` stops every node it started, so a
    terminal that closes or a ``kill`` leaves no node behind.  Call it from
    the main thread, where signals arrive; elsewhere it only runs ``run()``.
    """
    from .orchestrator import unwrapped

    if threading.current_thread() is not threading.main_thread():
        return await run()  # signals reach the main thread only: its own caller handles them
    caught: list[int] = []
    done: list[T] = []
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals, unwrapped():
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                async for signum in signals:
                    caught.append(signum)
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            done.append(await run())
            nursery.cancel_scope.cancel()
    if caught:
        raise Stopped(caught[0])
    return done[0]


async def _start_nodes(
    nursery: trio.Nursery,
    folder: Path,
    scenario: Scenario,
    spec: ClusterFile,
    keys: Mapping[int, Ed25519PrivateKey],
) -> dict[int, str]:
    """Start a node per general in ``nursery``, all at once; the address each reports, once all have.

    Most of a node's start is its imports, so the driver starts one process
    (:func:`fork_nodes`) that imports what serving needs once and forks the
    nodes from it.  It hands that process every private key through its
    standard input, a pipe the driver holds: no private key is ever written
    to disk, and each node gets only its own.
    """
    generals = sorted(spec.generals)
    command = [sys.executable, "-m", "om_actors.node", FORK_NODES, ",".join(map(str, generals))]
    command += ["--cluster", str(folder / CLUSTER_FILE), "--logs", str(folder)]
    command += [f"--allow-strategy={strategy}" for strategy in scenario.custom_strategies]
    if scenario.strategy_folder is not None:
        command.append(f"--strategy-folder={scenario.strategy_folder}")
    with (folder / FORKER_LOG).open("wb") as output:  # the child keeps its own copy of the descriptor
        process = await nursery.start(
            partial(
                trio.run_process,
                command,
                stdin=subprocess.PIPE,  # the nodes exit when this pipe closes: when we go
                stdout=subprocess.PIPE,
                stderr=output,
                check=False,
                env=_env(),
            )
        )
    assert process.stdin is not None
    assert process.stdout is not None
    with suppress(trio.BrokenResourceError):  # a process that died at once: its log says why
        await process.stdin.send_all(b"".join(private_pem(keys[general]) for general in generals))
    addresses: dict[int, str] = {}
    with trio.move_on_after(STARTUP_TIMEOUT):
        await _read_addresses(process.stdout, generals, addresses)
    for general in generals:
        if general not in addresses:
            reason = _last_line(folder / f"general-{general}.log") or _last_line(folder / FORKER_LOG)
            if reason is None:
                reason = f"it reported no address within {STARTUP_TIMEOUT:.0f} s"
            raise ClusterError(f"node {general} did not start: {reason}")
    return addresses


async def _read_addresses(
    stdout: trio.abc.ReceiveStream, generals: Collection[int], addresses: dict[int, str]
) -> None:
    """Put in ``addresses`` what the nodes' ``node.listening`` lines say, until each listens or exited."""
    settled: set[int] = set()
    pending = b""
    while not settled.issuperset(generals):
        chunk = await stdout.receive_some()
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        if len(pending) > MAX_LISTENING_LINE:
            return
        for line in lines:
            general, address = _announced(line)
            if general is not None and general in generals:
                settled.add(general)
                if address is not None:
                    addresses[general] = address


def _announced(line: bytes) -> tuple[int | None, str | None]:
    """The general a line of the nodes' standard output is about, and the address it listens at, if any."""
    try:
        announced = json.loads(line)
    except ValueError:
        return None, None
    if not isinstance(announced, dict) or type(announced.get("general")) is not int:
        return None, None
    address = announced.get("address") if announced.get("event") == "node.listening" else None
    return announced["general"], address if isinstance(address, str) else None


def _last_line(path: Path) -> str | None:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def running_nodes() -> int:
    """Node processes this process started that are still alive, read from /proc (Linux).

    Only our own children count: other runs on the machine may have nodes of
    their own.  The tests and the soak script use it to check for leaks.
    """
    return len(node_processes(os.getpid()))


def node_processes(parent: int) -> list[int]:
    """The process ids of the live node processes ``parent`` started, read from /proc (Linux).

    A node is ``om_actors node`` (``om-actors node``, ``python -m om_actors
    node``) or ``python -m om_actors.node``, as a user starts them, whose
    parent is ``parent``; or a process forked by a ``python -m om_actors.node
    --fork-nodes`` that ``parent`` started, as a driver starts them.  The
    process that forks them is no node.
    """
    table = _process_table()
    forkers = {
        pid for pid, (ppid, command) in table.items() if ppid == parent and FORK_NODES.encode() in command
    }
    return [
        pid
        for pid, (ppid, command) in table.items()
        if _is_node(command) and ((ppid == parent and pid not in forkers) or ppid in forkers)
    ]


def _process_table() -> dict[int, tuple[int, list[bytes]]]:
    """Each live process's parent and command line, by process id."""
    table = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if entry.name.isdigit() and not fields.get("State", "").strip().startswith("Z"):
            with suppress(ValueError):
                table[int(entry.name)] = (int(fields.get("PPid", "")), command)
    return table


def _is_node(command: list[bytes]) -> bool:
    return b"om_actors.node" in command or (b"om_actors" in command and b"node" in command)


def _env() -> dict[str, str]:
    """The nodes import om_actors from where this process did, whatever the working folder."""
    package_root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


@attrs.define
class _Link:
    """The driver's line to one node: where it is, the key it must prove, its session and counter."""

    general: int
    address: str
    public_key: Ed25519PublicKey
    session: str = ""
    counter: int = 0


async def _drive(
    scenario: Scenario, links: Mapping[int, _Link], key: Ed25519PrivateKey, log: LogTarget | None
) -> ClusterRun:
    # A node answers /round once its receivers acknowledged (or DELIVERY_TIMEOUT passed).
    timeout = scenario.round_timeout + DELIVERY_TIMEOUT + 30.0
    from .orchestrator import collector_spared

    async with plain_http_client(timeout) as client:
        driver = _Driver(scenario, links, key, client)
        await driver.connect()
        with collector_spared():
            return await driver.run(log)


class _Driver:
    def __init__(
        self,
        scenario: Scenario,
        links: Mapping[int, _Link],
        key: Ed25519PrivateKey,
        client: httpx.AsyncClient,
    ) -> None:
        self.scenario = scenario
        self.links = links
        self.key = key
        self.client = client
        self.id = secrets.token_hex(8)
        """The run's id, which every request about it names."""
        self.round = 1
        self.crashed: dict[int, int] = {}
        """Each general whose node stopped answering, and the round it did."""
        self.published: dict[str, Any] = {}
        """Each general's identities and its signature over them, by id, from ``/start``: for round 1."""

    # -- reaching our own nodes

    async def connect(self) -> None:
        """Learn each node's session and check it is ours: it proves the key the cluster file names."""
        errors: dict[int, ClusterError] = {}

        async def one(general: int) -> None:
            try:
                await self._handshake(self.links[general])
            except ClusterError as exc:
                errors[general] = exc

        async with trio.open_nursery() as nursery:
            for general in self.links:
                nursery.start_soon(one, general)
        if errors:
            raise errors[min(errors)]

    async def _handshake(self, link: _Link) -> None:
        general, address = link.general, link.address
        with trio.move_on_after(STARTUP_TIMEOUT) as waiting:
            while True:
                try:
                    response = await self.client.get(f"http://{address}/status")
                    break
                except httpx.TransportError:
                    await trio.sleep(0.05)
        if waiting.cancelled_caught:
            raise ClusterError(f"node {general} at {address} did not answer within {STARTUP_TIMEOUT:.0f} s")
        answer = _json(response)
        session, counter = answer.get("session"), answer.get("counter")
        if answer.get("general") != general or not isinstance(session, str) or type(counter) is not int:
            raise ClusterError(f"the server at {address} is not general {general} of this cluster")
        link.session, link.counter = session, counter  # another driver may have run on this node before
        nonce = secrets.token_hex(16)
        try:
            identity = await self._request(general, "GET", "/status", query=f"nonce={nonce}")
        except ClusterError as refusal:
            raise ClusterError(
                f"the server at {address} is not general {general} of this cluster: {refusal}"
            ) from None
        signature = identity.pop("signature", None)
        proven = (
            isinstance(signature, str)
            and identity.get("general") == general
            and identity.get("nonce") == nonce
            and identity.get("public_key") == public_text(link.public_key)
            and verify(link.public_key, signature, identity)
        )
        if not proven:
            raise ClusterError(
                f"the server at {address} does not prove it holds general {general}'s key: "
                "it is not a node of this cluster"
            )

    async def _request(
        self, general: int, method: str, path: str, body: Mapping[str, Any] | None = None, query: str = ""
    ) -> dict[str, Any]:
        """One control request, signed for this node's session with the next counter."""
        link = self.links[general]
        link.counter += 1
        content = b"" if body is None else json.dumps(body).encode()
        headers = control_headers(
            self.key,
            general=general,
            session=link.session,
            counter=link.counter,
            method=method,
            path=path,
            query=query,
            body=content,
        )
        url = f"http://{link.address}{path}" + (f"?{query}" if query else "")
        headers["content-type"] = "application/json"
        response = await self.client.request(method, url, content=content, headers=headers)
        answer = _json_object(response)
        if answer is None and response.status_code >= 500:  # it proved its key: a node, but a broken one
            raise ClusterError(
                f"node {general} failed {path} with HTTP {response.status_code} and no error of its own: "
                "something in its process raised what the node could not answer"
            )
        if answer is None:
            _not_a_node(response)
        if response.status_code >= 400:
            raise ClusterError(f"node {general} refused {path}: {answer.get('error', response.status_code)}")
        return answer

    async def _each(
        self, path: str, body: Callable[[int], Mapping[str, Any]] | Mapping[str, Any]
    ) -> dict[int, Any]:
        """The same request to every live node at once; one that stops answering joins ``crashed``.

        A refusal is an error of the whole run, raised as the
        :class:`ClusterError` of the lowest general that refused.
        """
        answers: dict[int, Any] = {}
        errors: dict[int, ClusterError] = {}

        async def one(general: int) -> None:
            content = body(general) if callable(body) else body
            try:
                answers[general] = await self._request(general, "POST", path, content)
            except httpx.TransportError:
                self.crashed.setdefault(general, self.round)
            except ClusterError as exc:
                errors[general] = exc

        async with trio.open_nursery() as nursery:
            for general in self.links:
                if general not in self.crashed:
                    nursery.start_soon(one, general)
        if errors:
            raise errors[min(errors)]
        return answers

    # -- the run

    async def run(self, log: LogTarget | None) -> ClusterRun:
        """Start the run on every node, then run the rounds, writing each round's events as it closes.

        The log is that of an in-memory run, byte for byte: the same
        accounting (:class:`~om_actors.accounting.Accounting`) orders,
        counts and concludes it, and the same writer, which flushes at every
        ``round.end``, writes it, so a run that dies midway leaves every
        closed round in the file.  Only one round's answers are held at a
        time.  It differs from ``run``'s only where the nodes' own keys
        show: the public keys ``run.start`` records, and the signatures.
        """
        from .accounting import Accounting
        from .log import open_log

        scenario = self.scenario
        addresses = {str(g): link.address for g, link in self.links.items()}
        data = scenario.to_dict()
        started = await self._each("/start", {"run": self.id, "scenario": data, "addresses": addresses})
        heard = {g: self._identities(g, answer) for g, answer in started.items()}
        setups = identified(scenario.setups, heard)
        books = Accounting(scenario)
        with open_log(log) as writer:
            write = writer or _ignore
            # What the nodes published, not what the seed gives: the keys a reader checks signatures with.
            write(attrs.evolve(books.started(), public=scenario.rules.record(setups[0]) or None))
            for round in range(1, scenario.rounds + 1):
                for event in await self._round(round, books):
                    write(event)
            decided = await self._each("/decide", {"run": self.id})
            for answer in decided.values():
                books.add_stats(answer["stats"])
            decisions = {g: tuple(str(d) for d in answer["decisions"]) for g, answer in decided.items()}
            events, result = books.conclude(decisions, crashed=self.crashed)
            for event in events:
                write(event)
        return ClusterRun(result)

    def _identities(self, general: int, answer: Mapping[str, Any]) -> list[str | None]:
        """What a node's ``/start`` answer publishes, kept to hand on, once its key's signature proves it."""
        listed, signature = answer.get("identities"), answer.get("signature")
        fields = identity_fields(self.id, general, listed if isinstance(listed, list) else [])
        proven = (
            isinstance(listed, list)
            and len(listed) == len(self.scenario.setups)
            and all(i is None or type(i) is str for i in listed)
            and isinstance(signature, str)
            and verify(self.links[general].public_key, signature, fields)
        )
        if not proven:
            raise ClusterError(
                f"node {general} answered /start with identities it did not sign as general {general}"
            )
        self.published[str(general)] = {"identities": listed, "signature": signature}
        return cast(list[str | None], listed)

    async def _round(self, round: int, books: Accounting) -> list[Event]:
        """Open ``round`` on every node, then close it: the round's events, counted, in log order.

        Round 1 hands every node the identities every general published, so
        that its cores check signatures against them before any arrives.
        """
        self.round = round
        opening: dict[str, Any] = {"run": self.id, "round": round}
        if round == 1:
            opening["identities"] = self.published
        sent = await self._each("/round", opening)
        late = tuple(sorted(g for g, answer in sent.items() if answer["timed_out"]))
        silent = sorted(g for g in self.links if g not in sent)
        close = {"run": self.id, "round": round, "batches_from": silent}
        closed = await self._each("/close", close)
        found = list(_round_events(self.scenario.rules, books.tag, round, sent, closed))
        books.count(found)
        for receiver, answer in closed.items():
            books.took(receiver, answer["received"])
        crashes = [GeneralCrashed(round, g) for g, r in sorted(self.crashed.items()) if r == round]
        return books.close_round(round, found, late=late, crashes=crashes)


def _ignore(event: Event) -> None:
    """Where a run without a log writes its events."""


def _round_events(
    rules: Algorithm,
    tag: Callable[[int], int | None],
    round: int,
    reports: Mapping[int, Any],
    closes: Mapping[int, Any],
) -> Iterator[Event]:
    """One round, from the nodes' ``/round`` and ``/close`` answers, unsorted.

    A batch counts as delivered when its receiver says it took it; when
    the receiver died before saying, the sender's acknowledgement
    decides.  A sender that died mid-round reported nothing: its
    receivers' copies of its batches are what it sent.
    """
    for sender, report in reports.items():
        yield from _sent_events(rules, tag, round, sender, report, closes)
    for receiver, close in closes.items():
        yield from _close_events(rules, tag, round, receiver, close)


def _sent_events(
    rules: Algorithm,
    tag: Callable[[int], int | None],
    round: int,
    sender: int,
    report: Mapping[str, Any],
    closes: Mapping[int, Any],
) -> Iterator[Event]:
    """What a sender says it sent in its ``/round`` answer, each marked delivered or not, and what failed."""
    for batch in report["sent"]:
        receiver = batch["receiver"]
        close = closes.get(receiver)
        delivered = sender in close["senders"] if close is not None else batch["delivered"]
        marked: Literal[False] | None = None if delivered else False
        for instance, messages in enumerate(batch["messages"]):
            for fields in messages:
                payload = rules.payload_from_fields(fields)
                yield MessageSent(round, sender, receiver, payload, instance=tag(instance), delivered=marked)
    for failure in report["failed"]:
        path, receiver, error = tuple(failure["path"]), failure["receiver"], failure["error"]
        yield StrategyFailed(round, sender, path, receiver, error, instance=failure["instance"])


def _close_events(
    rules: Algorithm, tag: Callable[[int], int | None], round: int, receiver: int, close: Mapping[str, Any]
) -> Iterator[Event]:
    """What a receiver's ``/close`` answer adds: the batches of senders that died, and its refusals."""
    for dead, batch in close["batches"].items():
        for instance, messages in enumerate(batch):
            for fields in messages:
                payload = rules.payload_from_fields(fields)
                yield MessageSent(round, int(dead), receiver, payload, instance=tag(instance))
    for refused in close["rejected"]:
        payload = rules.payload_from_fields(refused["message"])
        try:
            reason = rules.reasons(refused["reason"])
        except ValueError:
            raise ClusterError(
                f"node {receiver} refused a message for a reason {rules.title} does not have: "
                f"{str(refused['reason'])[:200]!r}"
            ) from None
        sender, where = refused["sender"], tag(refused["instance"])
        yield MessageRejected(round, sender, receiver, payload, reason, instance=where)


def _json(response: httpx.Response) -> dict[str, Any]:
    answer = _json_object(response)
    if answer is None:
        _not_a_node(response)
    return answer


def _not_a_node(response: httpx.Response) -> NoReturn:
    raise ClusterError(f"{response.request.url} did not answer with a JSON object: not an om-actors node")


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None
