"""Benchmark om_actors against the plainest correct OM(m), measured in the same run.

    python bench/run.py                 # every case
    python bench/run.py --quick         # the small cases only
    python bench/run.py --before main   # also om_actors as it is at git ref ``main``, side by side
    python bench/run.py --sm-only       # only SM(10) with 31 generals

Each case runs in a fresh interpreter, so its peak RSS is its own.  The
``whole`` column is the child's life from spawn to answer -- interpreter
start, imports and all -- which is what a user waits for.
The
baseline is written here, on purpose without om_actors: a dict per general
keyed by path tuples, relays round by round, and the recursive majority --
what anyone would write first.  A baseline that exceeds its time limit is
stopped, and the table says how far it got.

Every OM army has its first m lieutenants as traitors that flip every value,
the same lie in every implementation.  The SM(m) case has the signed
algorithm's worst built-in liars instead: m lieutenants, half of them ``split``
(forwarding to even-numbered generals only) and half ``late`` (releasing every
value in the last round), every message signed and every signature checked
with Ed25519.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VALUES = ("attack", "retreat")
DEFAULT = "retreat"
ROOT = Path(__file__).resolve().parent.parent

# --- the yardstick ---------------------------------------------------------------


def baseline(n: int, m: int, report: bool = False) -> dict[int, str]:
    """OM(m) as plainly as it can be written: dicts of paths, then recursion."""
    traitors = set(range(1, m + 1))
    flip = {"attack": "retreat", "retreat": "attack"}
    levels: list[list[dict[tuple[int, ...], str]]] = [[{} for _ in range(m + 2)] for _ in range(n)]
    for r in range(1, n):
        levels[r][1][(0,)] = "attack"
    delivered = n - 1
    for k in range(1, m + 1):
        for j in range(1, n):
            for path, value in levels[j][k].items():
                sent = flip[value] if j in traitors else value
                relayed = (*path, j)
                for r in range(1, n):
                    if r not in relayed:
                        levels[r][k + 1][relayed] = sent
                        delivered += 1
            if report:
                print(json.dumps({"progress": delivered}), flush=True)

    def om(me: int, path: tuple[int, ...]) -> str:
        own = levels[me][len(path)].get(path, DEFAULT)
        if len(path) == m + 1:
            return own
        votes = [own, *(om(me, (*path, j)) for j in range(1, n) if j not in path and j != me)]
        value, count = Counter(votes).most_common(1)[0]
        return value if 2 * count > len(votes) else DEFAULT

    decisions = {}
    for g in range(1, n):
        if g not in traitors:
            decisions[g] = om(g, (0,))
            if report:
                print(json.dumps({"decided": len(decisions)}), flush=True)
    return decisions


# --- one measurement, in a child process -------------------------------------------


BASELINE_MEMORY = 8 * 2**30
"""The baseline's address-space cap: on a 24 GB machine, n = 19 would otherwise swap it to a halt."""


def child(kind: str, n: int, m: int, log: str | None) -> None:
    import resource

    if kind == "baseline":
        resource.setrlimit(resource.RLIMIT_AS, (BASELINE_MEMORY, BASELINE_MEMORY))
        try:
            _measured(kind, n, m, log)
        except MemoryError:
            print(json.dumps({"out_of_memory": True}), flush=True)
        return
    _measured(kind, n, m, log)


def _measured(kind: str, n: int, m: int, log: str | None) -> None:
    import resource

    if kind != "baseline":
        import om_actors  # before the clock starts: imports are not the algorithm
    started = time.perf_counter()
    if kind == "baseline":
        decisions = baseline(n, m, report=True)
    elif kind == "sm":
        traitors = {g: "split" if g % 2 else "late" for g in range(1, m + 1)}
        scenario = om_actors.Scenario(algorithm="sm", generals=n, m=m, traitors=traitors)
        result = om_actors.simulate_sync(scenario, mode="per-message", log=log)
        decisions = {g: v for g, v in result.decisions.items() if g != 0}
        extra = {"messages": result.messages, "signatures": result.stats.get("signatures_verified", 0)}
    else:
        scenario = om_actors.Scenario(generals=n, m=m, traitors=dict.fromkeys(range(1, m + 1), "flip"))
        result = om_actors.simulate_sync(scenario, mode=kind, log=log)  # type: ignore[arg-type]
        decisions = {g: v for g, v in result.decisions.items() if g != 0}
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    agreed = sorted(set(decisions.values()))
    answer = {"seconds": seconds, "peak": peak, "decisions": agreed, **(extra if kind == "sm" else {})}
    print(json.dumps(answer), flush=True)


def measure(
    kind: str, n: int, m: int, *, log: Path | None = None, limit: float = 600, code: Path | None = None
) -> dict[str, Any]:
    """Run one case in a child; on time-out, say how far it got.

    ``code`` is a checkout of another version of om_actors to measure
    instead of this one: it goes first on the child's ``PYTHONPATH``.
    """
    command = [sys.executable, __file__, "--child", kind, str(n), str(m)]
    if log is not None:
        command += ["--log", str(log)]
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.get("PYTHONPATH")]))
    spawned = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    assert process.stdout is not None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(command, limit)
            line = _readline(process, remaining)
            if not line:
                break
            lines.append(json.loads(line))
            if "seconds" in lines[-1] or "out_of_memory" in lines[-1]:
                break  # measured; tearing down a big baseline's dicts can take minutes more
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return {
            "stopped": f"> {limit:.0f} s",
            "progress": _progress(lines),
            "decided": _progress(lines, "decided"),
        }
    whole = time.perf_counter() - spawned
    process.kill()
    process.wait()
    if not lines:
        return {"stopped": "crashed", "progress": 0, "decided": 0}
    lines[-1]["whole"] = whole
    if lines[-1].get("out_of_memory"):
        stopped = f"out of memory at {BASELINE_MEMORY / 2**30:.0f} GB"
        return {"stopped": stopped, "progress": _progress(lines), "decided": _progress(lines, "decided")}
    return lines[-1]


def _progress(lines: list[dict[str, Any]], key: str = "progress") -> int:
    progress = [int(line[key]) for line in lines if key in line]
    return progress[-1] if progress else 0


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise subprocess.TimeoutExpired(process.args, timeout)
    return process.stdout.readline()


# --- the table -----------------------------------------------------------------------


def messages(n: int, m: int) -> int:
    return sum(math.perm(n - 1, k) for k in range(1, m + 2))


def row(case: str, mode: str, n: int, m: int, got: dict[str, Any], base: dict[str, Any]) -> list[str]:
    total = messages(n, m)
    if got.get("stopped"):
        share = int(got["progress"]) / total
        decided = f"{got['decided']} of {n - 1 - m} loyal generals decided"
        done = f"stopped ({got['stopped']}): {share:.0%} of messages relayed, {decided}"
        return [case, mode, f"{total:,}", "-", "-", "-", "-", done]
    seconds, peak = float(got["seconds"]), int(got["peak"])
    ratio = "-"
    if base is not got and not base.get("stopped"):
        ratio = f"{seconds / float(base['seconds']):.2f}x time, {peak / int(base['peak']):.2f}x RSS"
    return [
        case,
        mode,
        f"{total:,}",
        f"{seconds:.2f}",
        f"{float(got['whole']):.2f}",
        f"{total / seconds:,.0f}",
        f"{peak / 2**20:,.0f} MB",
        ratio,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only n = 13, m = 4")
    parser.add_argument("--only", metavar="N,M", help="only this army, e.g. 19,6")
    parser.add_argument("--sm-only", action="store_true", help="only SM(10) with 31 generals")
    parser.add_argument("--before", metavar="REF", help="also measure om_actors at this git ref")
    parser.add_argument(
        "--baseline-limit", type=float, default=300, help="seconds before the baseline is stopped"
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "M"), help=argparse.SUPPRESS)
    known, extra = parser.parse_known_args()
    if known.child:
        kind, n, m = known.child[0], int(known.child[1]), int(known.child[2])
        log = extra[extra.index("--log") + 1] if "--log" in extra else None
        child(kind, n, m, log)
        return
    show(["case", "mode", "messages", "seconds", "whole", "messages/s", "peak RSS", "vs baseline"], WIDTHS)
    with checkout(known.before) as before:
        if not known.sm_only:
            om_cases(known, before)
        sm_case()


WIDTHS = [10, 34, 12, 8, 6, 11, 9, 0]


def om_cases(known: argparse.Namespace, before: Path | None) -> None:
    log_file = ROOT / "bench" / "thirteen.jsonl"
    cases = [(13, 4)] if known.quick else [(13, 4), (16, 5), (19, 6)]
    if known.only:
        n, m = (int(part) for part in known.only.split(","))
        cases = [(n, m)]
    versions = [("", None)] if before is None else [("", None), (f" (at {known.before})", before)]
    for n, m in cases:
        name = f"n={n}, m={m}"
        base = measure("baseline", n, m, limit=known.baseline_limit)
        show(row(name, "baseline (dicts)", n, m, base, base), WIDTHS)
        for label, code in versions:
            if n == 13:
                logged = measure("per-message", n, m, log=log_file, code=code)
                show(row(name, f"per-message, logged{label}", n, m, logged, base), WIDTHS)
                log_file.unlink(missing_ok=True)
            show(row(name, f"batched{label}", n, m, measure("batched", n, m, code=code), base), WIDTHS)


def sm_case(n: int = 31, m: int = 10) -> None:
    """SM(m) has no baseline to race: the issue's target is under 5 s for the whole process."""
    got = measure("sm", n, m)
    if got.get("stopped"):
        print(f"SM n={n}, m={m}: stopped ({got['stopped']})")
        return
    print(
        f"SM n={n}, m={m}, {m} traitors (split and late), per-message, signed: {got['messages']:,} messages, "
        f"{got['signatures']:,} signatures verified, {float(got['seconds']):.2f} s running, "
        f"{float(got['whole']):.2f} s whole process, peak RSS {int(got['peak']) / 2**20:,.0f} MB, "
        f"decisions {got['decisions']}",
        flush=True,
    )


@contextlib.contextmanager
def checkout(ref: str | None) -> Iterator[Path | None]:
    """A temporary ``git worktree`` of ``ref``, removed afterwards; ``None`` for no ref."""
    if ref is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="om-actors-bench-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True, capture_output=True
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)],
                cwd=ROOT,
                check=False,
                capture_output=True,
            )


def show(cells: list[str], widths: list[int]) -> None:
    """One table row, printed as soon as it is measured: a full run takes minutes."""
    print("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip(), flush=True)


if __name__ == "__main__":
    main()
