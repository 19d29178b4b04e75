"""Soak test, not part of CI: many cluster runs in a row, checking that nothing leaks.

    python bench/soak.py            # 200 runs of the seven generals
    python bench/soak.py --runs 20

Every run uses the same ports (``--base-port``), so a port left bound
fails the next run at once.  After each run the script checks that every
message was delivered and no node crashed, that no ``om_actors node``
process is left, that every port is free again, that the run's temporary
folder is gone, and that this process holds no more file descriptors than
after the first run.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import trio

import om_actors
from om_actors.cluster import FOLDER_PREFIX, run_cluster, running_nodes

ROOT = Path(__file__).resolve().parent.parent


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def folders_left() -> list[Path]:
    """This process's driver folders still in the temporary folder: each run must remove its own."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}{os.getpid()}-*"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--base-port", type=int, default=23700)
    args = parser.parse_args()
    scenario = om_actors.load_scenario(ROOT / "scenarios" / "seven-generals.yaml")
    expected = om_actors.simulate_sync(scenario)
    ports = [args.base_port + g for g in range(scenario.generals)]
    baseline_fds = None
    started = time.monotonic()
    for run in range(1, args.runs + 1):
        outcome = trio.run(lambda: run_cluster(scenario, base_port=args.base_port))
        problems = []
        if outcome.result.decisions != expected.decisions or outcome.result.messages != expected.messages:
            problems.append("decisions or message count differ from the in-memory run")
        if outcome.crashed:
            problems.append(f"generals {outcome.crashed} crashed")
        if outcome.result.undelivered:
            problems.append(f"{outcome.result.undelivered} messages from loyal generals were not delivered")
        if running_nodes():
            problems.append(f"{running_nodes()} node process(es) left")
        if folders_left():
            problems.append(f"temporary folders left: {[str(f) for f in folders_left()]}")
        busy = [port for port in ports if not port_free(port)]
        if busy:
            problems.append(f"ports still bound: {busy}")
        fds = descriptors()
        baseline_fds = fds if baseline_fds is None else baseline_fds
        if fds > baseline_fds:
            problems.append(f"{fds} file descriptors open, {baseline_fds} after the first run")
        if problems:
            raise SystemExit(f"run {run}: " + "; ".join(problems))
        if run % 20 == 0:
            elapsed = time.monotonic() - started
            print(f"{run} runs, {elapsed:.0f} s, {fds} descriptors, no node left, ports free", flush=True)
    print(f"soak OK: {args.runs} cluster runs in {time.monotonic() - started:.0f} s, nothing leaked")


if __name__ == "__main__":
    main()
