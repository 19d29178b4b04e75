"""verify on a Dask cluster gives a local run's answers: the same JSON, a complete table, a clean Ctrl-C.

Every cluster is a ``local:2`` one on 127.0.0.1, started and closed by
the test that uses it; a command runs in its own process under a hard
timeout, and an in-process run under ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner
from distributed import LocalCluster

import om_actors.dask_sweep
from om_actors.cli import main
from om_actors.dask_sweep import (
    CHEAPEST_CASE_SECONDS,
    OVERHEAD_SHARE,
    TASK_OVERHEAD_SECONDS,
    TASKS_PER_WORKER,
    DaskCluster,
    SchedulerError,
    cases_per_batch,
    local_workers,
    open_cluster,
)
from om_actors.verify import Adversary, CaseReport, Executor, Tally, WorkerProcesses, cases, verify

COMMAND_SECONDS = 180
"""The most a command of these tests may take, cluster start and close included, before it is killed."""
TIMING = ("seconds", "cases_per_second")
"""The fields of verify's JSON that measure the run rather than report on the cases."""


def _om_actors(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "om_actors", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )


def _without_timing(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in summary.items() if key not in TIMING}


@pytest.mark.parametrize(
    "sweep",
    [
        ["--generals", "3..5", "--m", "1..2"],
        [
            "--generals",
            "4..5",
            "--m",
            "1",
            "--traitors",
            "upto:2",
            "--adversary",
            "search",
            "--budget",
            "300",
        ],
    ],
    ids=["canonical", "search"],
)
def test_a_local_cluster_prints_the_json_and_writes_the_files_of_a_local_run(
    tmp_path: Path, sweep: list[str]
) -> None:
    """Same rows, same violations shrunk the same way, written where --out-dir says on this machine."""
    runs = {}
    for where, executor in (("processes", ["--jobs", "2"]), ("dask", ["--scheduler", "local:2"])):
        folder = tmp_path / where
        folder.mkdir()
        ran = _om_actors(folder, "verify", *sweep, *executor, "--json", "--out-dir", "found")
        assert (ran.returncode, ran.stderr) == (0, "")
        files = {path.name: path.read_text() for path in (folder / "found").glob("*.yaml")}
        runs[where] = (_without_timing(json.loads(ran.stdout)), files)
    assert runs["dask"] == runs["processes"]
    summary, files = runs["dask"]
    assert summary["cases"] == summary["cases_planned"] > 0
    assert len(files) == len(summary["violations"]) > 0


def test_a_killed_worker_still_gives_the_complete_table() -> None:
    """Dask reruns a lost worker's batches: the tally is a local run's, every case counted once."""
    all_cases = list(cases(range(5, 6), range(1, 2), lambda m: range(3)))
    adversary: Adversary = "search"
    budget = 400
    local = Tally()
    trio.run(partial(verify, all_cases, adversary, budget=budget, tally=local, executor=WorkerProcesses(1)))

    on_cluster, killed = Tally(), list[int]()
    with open_cluster("local:2") as cluster:
        pids = list(cluster.client.run(os.getpid).values())

        def kill_one_worker(report: CaseReport) -> None:
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        running = partial(
            verify, all_cases, adversary, budget=budget, tally=on_cluster, on_case=kill_one_worker
        )
        trio.run(partial(_bounded, partial(running, executor=cluster)))
        survivors = list(cluster.client.run(os.getpid).values())
    assert killed
    assert killed[0] not in survivors
    assert on_cluster.sorted_rows() == local.sorted_rows()
    assert on_cluster.violations == local.violations
    assert sum(row.cases for row in on_cluster.rows.values()) == len(all_cases)


async def _bounded(run: Any) -> None:
    with trio.fail_after(COMMAND_SECONDS):
        await run()


def test_cancelling_a_run_cancels_its_outstanding_batches() -> None:
    """What Ctrl-C does inside verify: the scheduler is left with no task of the run."""
    all_cases = list(cases(range(7, 8), range(2, 3), lambda m: range(m + 1)))
    folded: list[CaseReport] = []

    async def cut_short(cluster: DaskCluster) -> None:
        with trio.move_on_after(COMMAND_SECONDS) as scope:
            executor: Executor = cluster

            def cancel_after_the_first(report: CaseReport) -> None:
                folded.append(report)
                scope.cancel()

            await verify(
                all_cases,
                "search",
                budget=2000,
                tally=Tally(),
                on_case=cancel_after_the_first,
                executor=executor,
            )
        assert scope.cancelled_caught

    with open_cluster("local:2") as cluster:
        trio.run(cut_short, cluster)
        deadline = time.monotonic() + 30
        while cluster.client.run_on_scheduler(_tasks_held) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.client.run_on_scheduler(_tasks_held) == 0
    assert 0 < len(folded) < len(all_cases)


def _tasks_held(dask_scheduler: Any) -> int:
    return len(dask_scheduler.tasks)


def test_ctrl_c_prints_the_rows_so_far_and_exits_130(tmp_path: Path) -> None:
    """Ctrl-C, sent as a terminal sends it to every process of the command, local workers included."""
    command = [sys.executable, "-m", "om_actors", "verify", "--generals", "7", "--m", "2"]
    command += ["--adversary", "search", "--scheduler", "local:2", "--json"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_workers(process.pid, 2)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=COMMAND_SECONDS)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    summary = json.loads(out)
    assert process.returncode == 130
    assert err == f"interrupted: {summary['cases']} of 58 cases checked\n"
    assert summary["interrupted"] is True
    assert summary["cases"] == sum(row["cases"] for row in summary["rows"]) < 58


def _wait_for_workers(pid: int, count: int) -> None:
    """Until the command's cluster has its workers, ignoring Ctrl-C as a local cluster's do."""
    deadline = time.monotonic() + COMMAND_SECONDS
    while time.monotonic() < deadline:
        if sum(map(_ignores_ctrl_c, _children(pid))) >= count:
            return
        time.sleep(0.1)
    raise AssertionError("the cluster's workers never started")


def _children(pid: int) -> list[int]:
    """The process's children, from every process's parent in /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _ignores_ctrl_c(pid: int) -> bool:
    """Whether SIGINT is among the signals the process ignores, as /proc says."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # gone already
        return False
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.MULTILINE)[1], 16)  # type: ignore[index]
    return bool(ignored & (1 << (signal.SIGINT - 1)))


def test_the_batches_keep_dasks_overhead_under_five_percent() -> None:
    least = TASK_OVERHEAD_SECONDS / OVERHEAD_SHARE / CHEAPEST_CASE_SECONDS
    assert cases_per_batch(100_000, workers=8) >= least
    assert cases_per_batch(216, workers=2) == 7  # the default sweep: 16 batches a worker, 14 ms at the least
    assert cases_per_batch(58, workers=2) == 2
    assert cases_per_batch(3, workers=64) == 1
    assert cases_per_batch(10 * TASKS_PER_WORKER, workers=0) == 10


MOST_LOCAL = 4 * (os.cpu_count() or 1)


@pytest.mark.parametrize(
    ("scheduler", "workers"),
    [("local:2", 2), (f"local:{MOST_LOCAL}", MOST_LOCAL), ("tcp://host:8786", None)],
)
def test_local_n_is_a_local_cluster_and_anything_else_an_address(scheduler: str, workers: int | None) -> None:
    assert local_workers(scheduler) == workers


@pytest.mark.parametrize(
    "scheduler", ["local:0", "local:000", "local:abc", "local:", "local:-1", "local:\u0662"]
)
def test_a_local_cluster_needs_one_worker_or_more(scheduler: str) -> None:
    with pytest.raises(SchedulerError, match=re.escape(f"{scheduler!r}: write local:N with N worker")):
        local_workers(scheduler)


@pytest.mark.parametrize("count", [str(MOST_LOCAL + 1), str(10**20), "9" * 5000], ids=len)
def test_a_local_cluster_takes_at_most_four_workers_a_core(count: str) -> None:
    cores = os.cpu_count() or 1
    expected = f"this machine has {cores} cores, and local:N takes at most {MOST_LOCAL} worker processes"
    with pytest.raises(SchedulerError, match=re.escape(expected)):
        local_workers(f"local:{count}")


def test_a_scheduler_with_no_workers_is_refused_rather_than_waited_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(om_actors.dask_sweep, "CONNECT_SECONDS", 1)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        refusal = f"the Dask scheduler at {empty.scheduler_address} has no workers"
        with pytest.raises(SchedulerError, match=re.escape(refusal)), open_cluster(empty.scheduler_address):
            pass


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ("local:0", "'local:0': write local:N with N worker processes, 1 or more, like local:2"),
        ("nonsense", "cannot reach a Dask scheduler at nonsense: missing port number in address 'nonsense'"),
        (
            "tcp://127.0.0.1:1",
            "cannot reach a Dask scheduler at tcp://127.0.0.1:1: nothing listens there (connection refused)",
        ),
        (
            "tcp://127.0.0.1:99999",
            "cannot reach a Dask scheduler at tcp://127.0.0.1:99999: port out of range",
        ),
    ],
)
def test_a_scheduler_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, scheduler: str, message: str
) -> None:
    args = ["verify", "--generals", "4", "--m", "1", "--scheduler", scheduler]
    ran = _om_actors(tmp_path, *args)
    assert (ran.returncode, ran.stdout) == (2, "")
    assert len(ran.stderr.splitlines()) == 1
    assert ran.stderr.startswith(message)
    ran = _om_actors(tmp_path, *args, "--json")  # each is refused at once, Dask's 10 s never waited
    assert (ran.returncode, ran.stderr) == (2, "")
    assert json.loads(ran.stdout)["error"].startswith(message)


def test_an_address_where_something_else_answers_is_refused_in_a_line() -> None:
    """An HTTP server's reply read as a Dask frame would ask for exabytes: a MemoryError traceback, before."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)

    def answer() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                with client:
                    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)

    threading.Thread(target=answer, daemon=True).start()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        refusal = "something answered there, but not a Dask scheduler"
        with pytest.raises(SchedulerError, match=refusal), open_cluster(address):
            pass
    finally:
        server.close()


def test_an_address_that_accepts_and_never_answers_is_refused_after_the_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As an HTTP server does: Dask's own timeout stops at the connection, and the command waited forever."""
    monkeypatch.setattr(om_actors.dask_sweep, "CONNECT_SECONDS", 1)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        with pytest.raises(SchedulerError, match="no Dask answer in 1 s"), open_cluster(address):
            pass
    finally:
        server.close()


def test_jobs_and_a_scheduler_are_not_given_together() -> None:
    result = CliRunner().invoke(main, ["verify", "--jobs", "2", "--scheduler", "local:2"])
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: give --jobs or --scheduler, not both: a cluster has its own workers\n"
    )
