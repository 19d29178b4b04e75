"""verify on a local Dask cluster against local worker processes, in the same run (issue 15).

    python bench/scheduler.py            # both targets, best of two runs each
    python bench/scheduler.py --runs 3

1. The default ``verify`` sweep with ``--scheduler local:2`` within 1.3x of
   ``--jobs 2``.
2. A search sweep that takes about a minute with ``--jobs 1`` at least 1.8x
   faster with ``--scheduler local:2``.

Each run is a fresh ``om-actors verify --json`` process.  Two times are
printed for every run: the sweep's own ``seconds`` from its JSON (from the
moment the workers are ready to the last case), and the whole process
(spawn to exit: interpreter, imports, and for Dask the cluster's start and
close, about two seconds).  The targets are judged on the sweep's seconds,
the work the issue asks to spread; the whole times are there to show what
a one-off command on a small sweep pays for its cluster.  Runs take turns
(local, Dask, local, Dask) so a drift in the machine's load hurts both
alike; the best of each is kept.  Both must print the same JSON object,
timing fields aside, or the bench stops.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SWEEP = ["--generals", "3..7", "--m", "1..2"]
SEARCH_SWEEP = ["--generals", "7", "--m", "2", "--adversary", "search"]
TIMING = ("seconds", "cases_per_second", "jobs")
"""Fields that say how a run went, not what it found; jobs differs between --jobs 1 and local:2."""


def verify(args: list[str], folder: Path) -> tuple[float, float, dict[str, Any]]:
    """One ``om-actors verify --json`` process: the sweep's seconds, the whole process's, its answer."""
    command = [sys.executable, "-m", "om_actors", "verify", *args, "--json", "--out-dir", "found"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    whole = time.perf_counter() - started
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    summary = json.loads(done.stdout)
    return summary["seconds"], whole, {k: v for k, v in summary.items() if k not in TIMING}


def race(name: str, sweep: list[str], local: list[str], runs: int) -> tuple[float, float, float, float]:
    """Best sweep and whole seconds of ``local`` and of ``local:2``, taking turns."""
    contenders = {"local": local, "dask": ["--scheduler", "local:2"]}
    best: dict[str, tuple[float, float]] = {}
    answers: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(runs):
            for who, args in contenders.items():
                folder = Path(scratch) / f"{who}-{run}"
                folder.mkdir()
                sweep_s, whole_s, answer = verify([*sweep, *args], folder)
                print(f"{name}: {' '.join(args)}: sweep {sweep_s:.2f} s, whole {whole_s:.2f} s", flush=True)
                old = best.get(who, (float("inf"), float("inf")))
                best[who] = (min(old[0], sweep_s), min(old[1], whole_s))
                answers[who] = answer
    if answers["local"] != answers["dask"]:
        raise SystemExit(f"{name}: the cluster's answer differs from the local one")
    return (*best["local"], *best["dask"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs of each contender (default 2)")
    runs = parser.parse_args().runs
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    default = race("default sweep", DEFAULT_SWEEP, ["--jobs", "2"], runs)
    search = race("search sweep", SEARCH_SWEEP, ["--jobs", "1"], runs)
    slowdown = default[2] / default[0]
    speedup = search[0] / search[2]
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print()
    print(f"{'target':<44} {'local':>8} {'local:2':>8} {'figure':>8} {'goal':>8}  met")
    rows = [
        ("default, local:2 / jobs 2 (sweep s)", default[0], default[2], slowdown, "<= 1.3x", slowdown <= 1.3),
        ("  the same, whole process s", default[1], default[3], default[3] / default[1], "", None),
        ("search, jobs 1 / local:2 (sweep s)", search[0], search[2], speedup, ">= 1.8x", speedup >= 1.8),
        ("  the same, whole process s", search[1], search[3], search[1] / search[3], "", None),
    ]  # fmt: skip
    for label, local, dask, figure, goal, met in rows:
        verdict = "" if met is None else ("yes" if met else "NO")
        print(f"{label:<44} {local:>8.2f} {dask:>8.2f} {figure:>7.2f}x {goal:>8}  {verdict}")


if __name__ == "__main__":
    main()
