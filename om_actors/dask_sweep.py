"""Verify's batches on a Dask cluster: ``om-actors verify --scheduler ADDRESS``.

Only *where* batches run is Dask's: the cases, their batches, the seeds,
the adversaries, the shrinking and the tally are :mod:`om_actors.verify`'s,
so a cluster's answers are a local run's.  The one function a worker is
sent is :func:`om_actors.verify.check_batch`, with cases as data; workers
need om_actors installed, and import nothing a message names beyond it.

Needs the ``dask`` extra (``pip install 'om_actors[dask]'``); the CLI
imports this module only when ``--scheduler`` is given.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import attrs
import trio
from distributed import Client, LocalCluster, Worker, WorkerPlugin, as_completed

from .errors import OmActorsError
from .verify import Batch, Check, Fold

LOCAL = "local:"
"""``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes on this machine."""

TASK_OVERHEAD_SECONDS = 0.001
"""What Dask costs a task, scheduling and transfer together: about a millisecond."""
OVERHEAD_SHARE = 0.05
"""The share of a task's time its overhead may take at most."""
CHEAPEST_CASE_SECONDS = 0.002
"""The cheapest case's time: three generals, canonical adversaries, mostly its actor check, which every
case runs; any other case costs more."""
TASKS_PER_WORKER = 16
"""Fewest batches per worker thread: enough to keep each busy to the end, and the progress bar moving."""
CONNECT_SECONDS = 10
"""How long to try reaching a scheduler before saying it cannot be reached, and for a worker to join it."""
MAX_LOCAL_PER_CORE = 4
"""``local:N`` worker processes a core at most: more only share the cores, and each costs a process."""


class SchedulerError(OmActorsError):
    """A ``--scheduler`` that names no usable Dask scheduler: malformed, or not reachable."""


def cases_per_batch(cases: int, workers: int) -> int:
    """How many cases one Dask task holds, for ``cases`` cases on ``workers`` worker threads.

    Enough that even the cheapest cases take 20 times a task's overhead
    (overhead under 5%), but no more than leaves every worker
    :data:`TASKS_PER_WORKER` batches, so that a sweep of a few long cases
    -- a search -- is still spread over the whole cluster.
    """
    least = math.ceil(TASK_OVERHEAD_SECONDS / OVERHEAD_SHARE / CHEAPEST_CASE_SECONDS)
    most = math.ceil(cases / (max(workers, 1) * TASKS_PER_WORKER))
    return max(1, min(least, most))


def local_workers(scheduler: str) -> int | None:
    """N for ``local:N``; ``None`` for a scheduler's address.  ``local:0`` or ``local:abc`` is refused."""
    if not scheduler.startswith(LOCAL):
        return None
    digits = scheduler.removeprefix(LOCAL).lstrip("0")
    cores = os.cpu_count() or 1
    most = MAX_LOCAL_PER_CORE * cores
    if not (digits.isascii() and digits.isdigit()):  # an empty, zero or negative count too
        raise SchedulerError(f"{scheduler!r}: write local:N with N worker processes, 1 or more, like local:2")
    if len(digits) > len(str(most)) or int(digits) > most:  # the length first: int() refuses 4,300 digits
        raise SchedulerError(
            f"{scheduler!r}: this machine has {cores} cores, and local:N takes at most "
            f"{most} worker processes ({MAX_LOCAL_PER_CORE} a core)"
        )
    return int(digits)


@attrs.frozen
class DaskCluster:
    """A connected Dask client as verify's executor (:class:`om_actors.verify.Executor`)."""

    client: Client

    @property
    def workers(self) -> int:
        """Worker threads the cluster has now: what a local run calls jobs."""
        return sum(self.client.nthreads().values())

    def batch_size(self, cases: int) -> int:
        return cases_per_batch(cases, self.workers)

    async def run(self, check: Check, work: Sequence[Batch], fold: Fold) -> None:
        """Submit every batch at once and fold each as it finishes; cancelled, cancel what is left.

        Dask reruns the batches of a worker lost on the way.  The waiting
        is done on a thread, so Ctrl-C reaches this run at once; the
        abandoned thread ends as soon as the cancelled futures report.
        """
        futures = self.client.map(check, work, pure=False)
        finished = as_completed(futures, with_results=True)
        try:
            for _ in futures:
                _, reports = await trio.to_thread.run_sync(next, finished, abandon_on_cancel=True)
                fold(reports)
        finally:
            self.client.cancel(futures)


class _CtrlCIsTheClients(WorkerPlugin):
    """A local worker ignores Ctrl-C: the terminal sends it to every process of the command.

    The client cancels the work and closes the cluster itself; a worker
    that died of the signal first would only print its own traceback.
    Registered with the cluster, it reaches a worker Dask restarts too.
    """

    def setup(self, worker: Worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # setup runs on the worker process's main thread


def _client(address: str) -> Client:
    """``Client(address)``, given :data:`CONNECT_SECONDS` in all, on a thread of its own.

    Dask's own timeout covers reaching the address, not the handshake: a
    server that accepts and then waits, as an HTTP server does, would hold
    the command forever.  The thread is left to its fate if it never ends.
    """
    import threading

    made: list[Client | BaseException] = []

    def connect() -> None:
        try:
            made.append(Client(address, timeout=CONNECT_SECONDS))
        except BaseException as exc:  # handed to the caller, on its own thread
            made.append(exc)

    connecting = threading.Thread(target=connect, name="om-actors dask connect", daemon=True)
    connecting.start()
    connecting.join(CONNECT_SECONDS + 1)
    if not made:
        raise SchedulerError(
            f"cannot reach a Dask scheduler at {address}: no Dask answer in {CONNECT_SECONDS} s"
        )
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def _refuse_if_nothing_listens(address: str) -> None:
    """Fail at once where a ``tcp://`` address refuses connections: Dask would retry it for 10 s.

    A host that does not answer is given the 10 s once, not twice; a name
    that does not resolve, or any other address, is left to Dask, whose
    errors say more.
    """
    import socket
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(address)
    except ValueError:
        return
    if parts.scheme != "tcp":
        return
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port out of range or not a number: Dask would wait 10 s on it too
        raise SchedulerError(f"cannot reach a Dask scheduler at {address}: {str(exc).lower()}") from None
    if host is None or port is None:
        return
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except ConnectionRefusedError:
        raise SchedulerError(
            f"cannot reach a Dask scheduler at {address}: nothing listens there (connection refused)"
        ) from None
    except TimeoutError:  # Dask would wait as long again
        raise SchedulerError(
            f"cannot reach a Dask scheduler at {address}: no answer in {CONNECT_SECONDS} s"
        ) from None
    except OSError:
        return


@contextmanager
def open_cluster(scheduler: str) -> Iterator[DaskCluster]:
    """The cluster ``scheduler`` names, connected, and closed afterwards.

    ``local:N`` starts one on 127.0.0.1 and stops it; an address
    (``tcp://host:8786``) is a running scheduler, left running.
    """
    workers = local_workers(scheduler)
    if workers is None:
        with _connected(scheduler) as client:
            yield DaskCluster(client)
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",  # no dashboard port of its own to fight over with another run
            silence_logs=logging.CRITICAL,  # Ctrl-C reaches its workers too: their ends are not news
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(_CtrlCIsTheClients())
        yield DaskCluster(client)


@contextmanager
def _connected(address: str) -> Iterator[Client]:
    _refuse_if_nothing_listens(address)
    try:
        client = _client(address)
    except (OSError, ValueError, TypeError) as exc:
        raise SchedulerError(f"cannot reach a Dask scheduler at {address}: {exc}") from None
    except MemoryError:  # Dask read something else's bytes as the length of a frame
        raise SchedulerError(
            f"cannot reach a Dask scheduler at {address}: something answered there, but not a Dask scheduler"
        ) from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        except TimeoutError:
            raise SchedulerError(
                f"the Dask scheduler at {address} has no workers, and none joined in {CONNECT_SECONDS} s: "
                f"start some with dask worker {address}"
            ) from None
        yield client
