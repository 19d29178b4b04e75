"""Benchmark om_actors against the plainest correct OM(m) and against its own past, in the same run.

    python bench/run.py                   # every target of issue 14, then the bigger armies' races
    python bench/run.py --quick           # the per-message and start-up targets only (seconds)
    python bench/run.py --before ff897d2  # also om_actors as it is at that git ref, side by side
    python bench/run.py --only 19,6       # only this army's race against the baseline
    python bench/run.py --sm-only         # only SM(10) with 31 generals

Every measurement is a fresh child process, so its peak RSS is its own and
its ``whole`` time is what a user waits for: spawn to exit, interpreter
start, imports and teardown included (in the races at the end, spawn to
answer: tearing down a big baseline's dicts takes minutes).  An in-process
case (the bare loop, a per-message or batched army, SM) runs a ``python -c``
program made of this file's yardstick and measuring functions only, so the
harness adds next to nothing to the bare loop's whole time.  A version of
om_actors is a folder put first on the child's ``PYTHONPATH``: this tree
("after"), or a temporary ``git worktree`` of ``--before``'s ref ("before").
Commands run as the ``om-actors`` script does (``from om_actors.cli import
main`` with ``sys.argv[0]`` set to ``om-actors``, so shell completion
answers too), in a scratch folder, so the working folder never shadows
``PYTHONPATH``; a cluster's nodes inherit it, so they run the same version
as their driver.  The header says which ``om_actors/__init__.py`` each
version imports.  Children keep bytecode in a scratch cache
(``PYTHONPYCACHEPREFIX``), as a user's install has it, even where
``PYTHONDONTWRITEBYTECODE`` is set; each contender runs once untimed first,
to fill that cache.

The yardstick is written here, on purpose without om_actors: a dict per
general keyed by path tuples, relays round by round, and the recursive
majority -- what anyone would write first.  Every OM army has its first m
lieutenants as traitors that flip every value, the same lie in both.

The targets (issue 14, and issue 12's Phase King), each sample printed as it
is measured, then one table of figure, goal and verdict.  Runs take turns
(before, after, before, after, ...) so that a drift in the machine's load
hurts both alike:

1. per-message OM(4) on 13 generals, every path logged: whole process at most
   5x the bare loop's whole process; without the log at most 4x.  Best of
   three runs each, the bare loop taking its turn too; the bare loop's best
   run of all is the yardstick of both.  Beside them, not a target, the
   design's floor (:func:`floor`): trio tasks passing one inbox item per
   sender, receiver and round, a shared attrs payload per path, and nothing
   else: what a per-message run costs before any rule.
2. ``om-actors --help``, ``--version`` and a TAB of completion at most 2x
   ``python -c "import click"``: the median of 11 runs of each.
3. batched OM(6) on 19 generals: peak RSS at most 450 MB and under 3 bytes
   per message sent (the larger of two runs), and whole time no worse than
   before (best of two).
4. ``om-actors cluster thirteen-generals``: the whole command at most 0.6x
   the before version's, best of two each; without ``--before``, one run
   and no verdict.
5. nothing else slower: ``verify --json``'s own cases/s on its default
   sweep, and ``replay`` of a thirteen-generals log (each version replays
   the log it wrote with ``run thirteen-generals --log``), best of two each.
6. ``run hundred-generals-king --log FILE``: whole process under 3 s, best
   of two.
7. SM(10) on 31 generals, ``split`` and ``late`` liars, every signature
   checked with Ed25519: whole process under 5 s, one run, this tree only.

A "no worse than before" verdict is ``yes`` when the after figure is at
least as good, ``within 10%`` when it is worse by less than this loaded
machine's noise, and ``NO`` beyond.  ``--quick`` measures targets 1 and 2
only, with two runs and five.  After the table, the full run races the
bigger armies (16 and 19 generals) against the baseline, one run each: a
baseline that exceeds ``--baseline-limit`` is stopped, and its row says how
far it got.  That table's ``seconds`` start after ``import om_actors``, so
they hold what a run imports lazily (numpy, for batched mode, since issue
14), and its ratios compare those; ``whole`` compares versions fairly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
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


def floor(n: int, m: int) -> dict[int, str]:
    """The design's floor: what one trio task per general costs before any rule of OM(m) runs.

    n tasks with memory-channel inboxes, and a barrier at each round's end
    (a ``None`` in every inbox, answered on one channel).  A round's
    messages wait in their sender's outbox, a list per receiver, and go to
    their receivers once all have sent: one inbox item per sender, receiver
    and round, as om_actors delivers them.  Every message the bare loop
    sends is there, each a frozen two-field attrs payload shared by the
    receivers of its path, and its receiver keeps the value in a dict per
    round.  No path rules, decisions, books or log: a per-message run can
    only be slower than this, so it shows how much of each target the
    design itself takes.  Traitors flip as in the bare loop; the "decision"
    is only the commander's order as each loyal lieutenant stored it.
    """
    import attrs
    import trio

    @attrs.frozen
    class Payload:
        path: tuple[int, ...]
        value: str

    flip = {"attack": "retreat", "retreat": "attack"}
    levels: list[list[dict[tuple[int, ...], str]]] = [[{} for _ in range(m + 2)] for _ in range(n)]

    async def general(inbox: Any, acks: Any, level: list[dict[tuple[int, ...], str]]) -> None:
        async for first in inbox:
            item = first
            while item is not None:
                round, payloads = item
                stored = level[round]
                for payload in payloads:
                    stored[payload.path] = payload.value
                item = inbox.receive_nowait()
            acks.send_nowait(None)

    async def run() -> None:
        channels = [trio.open_memory_channel[Any](math.inf) for _ in range(n)]
        acks, answers = trio.open_memory_channel[None](math.inf)
        async with trio.open_nursery() as nursery:
            for (_, inbox), level in zip(channels, levels):
                nursery.start_soon(general, inbox, acks, level)
            levels[0][0][()] = "attack"
            for k in range(1, m + 2):
                for sender in range(1, n) if k > 1 else (0,):
                    outbox: dict[int, list[Payload]] = {receiver: [] for receiver in range(1, n)}
                    for path, value in levels[sender][k - 1].items():
                        relayed = Payload((*path, sender), flip[value] if 0 < sender <= m else value)
                        for receiver in range(1, n):
                            if receiver not in relayed.path:
                                outbox[receiver].append(relayed)
                    for receiver, payloads in outbox.items():
                        if payloads:
                            channels[receiver][0].send_nowait((k, payloads))
                for send, _ in channels:
                    send.send_nowait(None)
                for _ in channels:
                    await answers.receive()
            for send, _ in channels:
                send.close()

    trio.run(run)
    return {g: levels[g][1][(0,)] for g in range(m + 1, n)}


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

    if kind not in ("baseline", "floor"):
        import om_actors  # before the clock starts: imports are not the algorithm
    started = time.perf_counter()
    if kind == "baseline":
        decisions = baseline(n, m, report=True)
    elif kind == "floor":
        decisions = floor(n, m)
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


@cache
def child_program() -> str:
    """The child's whole program, for ``python -c``: this file's yardstick and measuring code, and no more.

    Run as a script, the child would compile this file and import
    everything the parent needs before its clock could start; that would
    pad the bare loop's whole-process time and flatter every ratio.  The
    working folder is taken off ``sys.path``, so ``PYTHONPATH`` alone says
    which om_actors is measured.  Read once, so that an edit of this file
    during a run cannot reach the children.
    """
    import inspect

    parts = [
        "from __future__ import annotations",
        "import json, math, sys, time",
        "from typing import Any",
        "from collections import Counter",
        "if sys.path[0] == '': del sys.path[0]",
        f"DEFAULT = {DEFAULT!r}",
        f"BASELINE_MEMORY = {BASELINE_MEMORY}",
        *(inspect.getsource(function) for function in (baseline, floor, child, _measured)),
        "child(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)",
    ]
    return "\n".join(parts)


def measure(
    kind: str,
    n: int,
    m: int,
    *,
    log: Path | None = None,
    limit: float = 600,
    code: Path | None = None,
    to_exit: bool = False,
) -> dict[str, Any]:
    """Run one case in a child; on time-out, say how far it got.

    ``code`` is the version of om_actors to measure: it goes first on
    the child's ``PYTHONPATH``.  ``whole`` ends at the child's exit with
    ``to_exit``, else at its answer: tearing down a big baseline's dicts
    can take minutes more.
    """
    command = [sys.executable, "-c", child_program(), kind, str(n), str(m)]
    if log is not None:
        command.append(str(log))
    spawned = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=child_env(code))
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
                break
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return {
            "stopped": f"> {limit:.0f} s",
            "progress": _progress(lines),
            "decided": _progress(lines, "decided"),
        }
    if to_exit:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(deadline - time.monotonic(), 0))
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


# --- versions, commands and samples ---------------------------------------------------


@dataclass(frozen=True)
class Version:
    """One om_actors to measure: the folder that goes first on its children's ``PYTHONPATH``."""

    label: str
    code: Path


Sample = dict[str, Any]
"""One child's answer: ``whole`` seconds and ``peak`` bytes (more for some cases), or ``failed`` and why."""

Contender = tuple[str, Callable[[], Sample]]

CONSOLE = "import sys; from om_actors.cli import main; sys.argv[0] = 'om-actors'; sys.exit(main())"
"""What the ``om-actors`` script runs, importable from ``PYTHONPATH`` where the script is not."""

COMPLETION = {"_OM_ACTORS_COMPLETE": "bash_complete", "COMP_WORDS": "om-actors ru", "COMP_CWORD": "1"}
"""The environment of one TAB after ``om-actors ru`` in bash."""

NOISE = 0.10
"""How much worse than before a figure may be and still be called noise on this loaded machine."""


def keep_bytecode(work: Path) -> None:
    """Let every child write and read bytecode, in a cache inside ``work``.

    A user's install has bytecode (pip compiles a wheel; an editable
    install writes ``__pycache__`` on first import), but this machine sets
    ``PYTHONDONTWRITEBYTECODE``: every child would compile om_actors from
    source while ``import click`` and the bare loop would not.  The cache
    prefix keeps the tree clean; it holds nothing at first, hence the
    warm-up runs.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "bytecode")


def child_env(code: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
    return env


def om_actors_command(*args: str) -> list[str]:
    return [sys.executable, "-c", CONSOLE, *args]


def run_command(
    argv: list[str],
    work: Path,
    code: Path | None,
    *,
    env: dict[str, str] | None = None,
    answer: str | None = None,
    limit: float = 900,
) -> Sample:
    """Run ``argv`` to its end in ``work``; its wall time, and its peak RSS as ``wait4`` reports it.

    ``answer`` is text its output must hold, so that a command that
    answered something else (a usage message, an error) is not timed as if
    it had worked.
    """
    output, errors = work / "stdout.txt", work / "stderr.txt"
    with output.open("wb") as out, errors.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work, env=child_env(code, env)
        )
        timer = threading.Timer(limit, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        whole = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    text = output.read_text(errors="replace")
    if process.returncode != 0 or (answer is not None and answer not in text):
        said = (errors.read_text(errors="replace").strip() or text.strip()).splitlines()
        return {"failed": f"exit status {process.returncode}: {said[-1] if said else 'no output'}"}
    return {"whole": whole, "peak": usage.ru_maxrss * 1024, "stdout": text}


def om_sample(kind: str, n: int, m: int, code: Path | None, log: Path | None = None) -> Sample:
    """One in-process run, spawn to exit, as a sample; an OM army with a loyal commander must attack."""
    got = measure(kind, n, m, log=log, code=code, to_exit=True)
    if log is not None:
        log.unlink(missing_ok=True)
    if got.get("stopped"):
        return {"failed": got["stopped"]}
    if kind != "sm" and got["decisions"] != ["attack"]:  # the floor stores the order it was given
        return {"failed": f"the loyal generals decided {got['decisions']}"}
    return got


def alternate(case: str, runs: int, contenders: Sequence[Contender]) -> dict[str, list[Sample]]:
    """Each contender ``runs`` times, taking turns, so a drift in the machine's load hurts all alike.

    Each runs once untimed first, to compile its bytecode (see :func:`keep_bytecode`).
    """
    for label, measure_once in contenders:
        print(f"  {case}, {label}, warm-up (not counted): {describe(measure_once())}", flush=True)
    samples: dict[str, list[Sample]] = {label: [] for label, _ in contenders}
    for run in range(1, runs + 1):
        for label, measure_once in contenders:
            sample = measure_once()
            samples[label].append(sample)
            print(f"  {case}, {label}, run {run} of {runs}: {describe(sample)}", flush=True)
    return samples


def describe(sample: Sample) -> str:
    if "failed" in sample:
        return f"failed ({sample['failed']})"
    parts = [f"{float(sample['whole']):.3f} s whole"]
    if "seconds" in sample:
        parts.append(f"{float(sample['seconds']):.3f} s running")
    if "rate" in sample:
        parts.append(f"{float(sample['rate']):,.1f} cases/s")
    parts.append(f"peak RSS {int(sample['peak']) / 2**20:,.0f} MB")
    return ", ".join(parts)


def best(samples: list[Sample], key: str = "whole") -> Sample | None:
    """The fastest sample (the highest rate for ``rate``); ``None`` when every one failed."""
    good = [sample for sample in samples if "failed" not in sample]
    if not good:
        return None
    return max(good, key=lambda s: float(s[key])) if key == "rate" else min(good, key=lambda s: float(s[key]))


def median_whole(samples: list[Sample]) -> float | None:
    good = [float(sample["whole"]) for sample in samples if "failed" not in sample]
    return statistics.median(good) if len(good) == len(samples) else None


def failure(samples: list[Sample]) -> str:
    reasons = [str(sample["failed"]) for sample in samples if "failed" in sample]
    return f"failed ({reasons[0]})" if reasons else "-"


# --- the targets ---------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One row of the targets table: the figure of each version, the goal, and whether "after" meets it."""

    name: str
    goal: str
    figures: dict[str, str]
    met: str
    taken: str


def how_taken(runs: int, versions: list[Version], which: str = "best") -> str:
    """How a figure was taken from its runs, for the table's last column."""
    how = "one run" if runs == 1 else f"{which} of {runs} runs"
    return how + (", in turn with before" if len(versions) > 1 else "")


def at_most(value: float | None, goal: float) -> str:
    if value is None:
        return "-"
    return "yes" if value <= goal else "NO"


def no_worse(after: float | None, before: float | None, *, higher_is_better: bool = False) -> str:
    if after is None:
        return "-"
    if before is None:
        return "needs --before"
    worse = before / after if higher_is_better else after / before
    if worse <= 1:
        return "yes"
    return f"within {NOISE:.0%}" if worse <= 1 + NOISE else "NO"


def whole_of(sample: Sample | None) -> float | None:
    return None if sample is None else float(sample["whole"])


def per_message_targets(versions: list[Version], runs: int, work: Path) -> list[Target]:
    """Target 1: OM(4) on 13 generals per message, logged and not, against the bare loop, whole process.

    The bare loop runs in turn with both, and its best run of all is the yardstick of both.
    """
    cases = {"every path logged": (work / "thirteen.jsonl", 5.0), "no log": (None, 4.0)}
    measured, bare_runs = {}, []
    for case, (log, _) in cases.items():
        contenders: list[Contender] = [("bare loop", partial(om_sample, "baseline", 13, 4, None))]
        if log is None:
            contenders.append((FLOOR, partial(om_sample, "floor", 13, 4, None)))
        contenders += [(v.label, partial(om_sample, "per-message", 13, 4, v.code, log)) for v in versions]
        measured[case] = alternate(f"per-message n=13, m=4, {case}", runs, contenders)
        bare_runs += measured[case]["bare loop"]
    bare = best(bare_runs)
    targets = [_floor_row(measured["no log"][FLOOR], bare, bare_runs, runs)]
    for case, (_, goal) in cases.items():
        figures, ratios = {}, {}
        for version in versions:
            got = best(measured[case][version.label])
            if got is None or bare is None:
                figures[version.label] = failure(measured[case][version.label] + bare_runs)
                continue
            ratios[version.label] = float(got["whole"]) / float(bare["whole"])
            figures[version.label] = (
                f"{ratios[version.label]:.2f}x ({float(got['whole']):.2f} s / {float(bare['whole']):.2f} s)"
            )
        name = f"per-message n=13, m=4, {case}: whole vs bare loop"
        met = at_most(ratios.get("after"), goal)
        taken = f"{how_taken(runs, versions)}; bare loop best of {len(bare_runs)}, in turn with them"
        targets.append(Target(name, f"<= {goal:.0f}x", figures, met, taken))
    return targets


FLOOR = "design floor"


def _floor_row(floors: list[Sample], bare: Sample | None, bare_runs: list[Sample], runs: int) -> Target:
    """Not a target: what the design costs before OM(m)'s rules (:func:`floor`), for reading the two below."""
    got = best(floors)
    if got is None or bare is None:
        figure = failure(floors + bare_runs)
    else:
        ratio = float(got["whole"]) / float(bare["whole"])
        figure = f"{ratio:.2f}x ({float(got['whole']):.2f} s / {float(bare['whole']):.2f} s)"
    name = "per-message n=13, m=4: design floor (trio tasks, an inbox item per sender and receiver, no rules)"
    taken = f"best of {runs} runs, in turn with the no-log runs; no om_actors in it, so no before"
    return Target(name, "(info)", {"after": figure}, "-", taken)


def startup_targets(versions: list[Version], runs: int, work: Path) -> list[Target]:
    """Target 2: ``--help``, ``--version`` and a completion against ``import click``, medians."""
    commands = {
        "om-actors --help": (["--help"], {}, "Usage:"),
        "om-actors --version": (["--version"], {}, "version"),
        "completion of 'om-actors ru'": ([], COMPLETION, "plain,run"),
    }
    click = [sys.executable, "-c", "import click"]
    contenders: list[Contender] = [("import click", partial(run_command, click, work, None))]
    for name, (args, env, answer) in commands.items():
        for v in versions:
            command = om_actors_command(*args)
            contenders.append(
                (f"{name}, {v.label}", partial(run_command, command, work, v.code, env=env, answer=answer))
            )
    samples = alternate("start-up", runs, contenders)
    reference = median_whole(samples["import click"])
    targets = []
    for name in commands:
        figures, ratios = {}, {}
        for v in versions:
            own = median_whole(samples[f"{name}, {v.label}"])
            if own is None or reference is None:
                figures[v.label] = failure(samples[f"{name}, {v.label}"] + samples["import click"])
                continue
            ratios[v.label] = own / reference
            figures[v.label] = f"{own / reference:.2f}x ({own:.3f} s / {reference:.3f} s)"
        met = at_most(ratios.get("after"), 2.0)
        targets.append(
            Target(
                f"{name}: vs import click",
                "<= 2x",
                figures,
                met,
                how_taken(runs, versions, "median") + ", import click likewise",
            )
        )
    return targets


def batched_targets(versions: list[Version], runs: int) -> list[Target]:
    """Target 3: OM(6) on 19 generals, batched: peak RSS, bytes per message sent, and time."""
    n, m = 19, 6
    total = messages(n, m)
    contenders = [(v.label, partial(om_sample, "batched", n, m, v.code)) for v in versions]
    samples = alternate(f"batched n={n}, m={m}", runs, contenders)
    peaks, memory, times, fastest = {}, {}, {}, {}
    for v in versions:
        good = [sample for sample in samples[v.label] if "failed" not in sample]
        if not good:
            memory[v.label] = fastest[v.label] = failure(samples[v.label])
            continue
        peaks[v.label] = max(int(sample["peak"]) for sample in good)
        memory[v.label] = f"{peaks[v.label] / 2**20:,.0f} MB, {peaks[v.label] / total:.2f} B/message"
        times[v.label] = whole_of(best(good))
        fastest[v.label] = f"{times[v.label]:.2f} s"
    after = peaks.get("after")
    met = "-" if after is None else ("yes" if after <= 450 * 2**20 and after < 3 * total else "NO")
    name = f"batched n={n}, m={m}: peak RSS ({total:,} messages)"
    taken = how_taken(runs, versions, "largest")
    return [
        Target(name, "<= 450 MB and < 3 B/message", memory, met, taken),
        Target(
            f"batched n={n}, m={m}: whole process",
            "no worse than before",
            fastest,
            no_worse(times.get("after"), _before(times, versions)),
            how_taken(runs, versions),
        ),
    ]


def _before(figures: dict[str, Any], versions: list[Version]) -> Any:
    """The before version's figure, ``None`` without ``--before``."""
    return figures.get(versions[0].label) if versions[0].label != "after" else None


def compared(
    samples: dict[str, list[Sample]], versions: list[Version]
) -> tuple[dict[str, str], dict[str, float]]:
    """Each version's best whole time as a figure, and as a number where it did not fail."""
    figures, times = {}, {}
    for v in versions:
        got = best(samples[v.label])
        if got is None:
            figures[v.label] = failure(samples[v.label])
            continue
        times[v.label] = float(got["whole"])
        figures[v.label] = f"{times[v.label]:.2f} s"
    return figures, times


def cluster_target(versions: list[Version], runs: int, work: Path) -> Target:
    """Target 4: the whole ``cluster thirteen-generals`` command, at most 0.6x the before version's."""
    command = om_actors_command("cluster", "thirteen-generals")
    contenders = [(v.label, partial(run_command, command, work, v.code, answer="SUCCESS")) for v in versions]
    samples = alternate("cluster thirteen-generals", runs, contenders)
    figures, times = compared(samples, versions)
    before, after = _before(times, versions), times.get("after")
    if before is not None and after is not None:
        figures["after"] += f" ({after / before:.2f}x before)"
        met = at_most(after / before, 0.6)
    else:
        met = "-" if after is None else "needs --before"
    name = "cluster thirteen-generals: whole command"
    return Target(name, "<= 0.6x before", figures, met, how_taken(runs, versions))


def regression_targets(versions: list[Version], runs: int, work: Path) -> list[Target]:
    """Target 5: verify's cases/s on its default sweep and replay of a thirteen-generals log."""
    verify = om_actors_command("verify", "--json", "--out-dir", str(work / "violations"))
    contenders = [(v.label, partial(verify_sample, verify, work, v.code)) for v in versions]
    samples = alternate("verify --json (default sweep)", runs, contenders)
    rates, figures = {}, {}
    for v in versions:
        got = best(samples[v.label], "rate")
        figures[v.label] = failure(samples[v.label]) if got is None else f"{float(got['rate']):,.1f} cases/s"
        if got is not None:
            rates[v.label] = float(got["rate"])
    met = no_worse(rates.get("after"), _before(rates, versions), higher_is_better=True)
    taken = f"{how_taken(runs, versions)}; verify's own cases_per_second"
    targets = [Target("verify (its default sweep): cases/s", "no worse than before", figures, met, taken)]
    return [*targets, replay_target(versions, runs, work)]


def verify_sample(command: list[str], work: Path, code: Path) -> Sample:
    sample = run_command(command, work, code, answer="cases")
    if "failed" in sample:
        return sample
    summary = json.loads(sample["stdout"])
    rate = summary.get("cases_per_second") or summary["cases"] / summary["seconds"]
    return {**sample, "rate": float(rate)}


def replay_target(versions: list[Version], runs: int, work: Path) -> Target:
    """Each version replays the thirteen-generals log it wrote itself."""
    logs = {v.label: work / f"thirteen-{index}.jsonl" for index, v in enumerate(versions)}
    for v in versions:
        command = om_actors_command("run", "thirteen-generals", "--log", str(logs[v.label]))
        wrote = run_command(command, work, v.code, answer="SUCCESS")
        print(f"  run thirteen-generals --log (replay's log), {v.label}: {describe(wrote)}", flush=True)
    contenders = [
        (v.label, partial(run_command, om_actors_command("replay", str(logs[v.label])), work, v.code))
        for v in versions
    ]
    samples = alternate("replay thirteen-generals log", runs, contenders)
    figures, times = compared(samples, versions)
    met = no_worse(times.get("after"), _before(times, versions))
    name = "replay of a thirteen-generals log: whole"
    return Target(name, "no worse than before", figures, met, how_taken(runs, versions))


def king_target(versions: list[Version], runs: int, work: Path) -> Target:
    """Issue 12's target: Phase King with 100 generals, per message, every event logged, under 3 s."""
    command = om_actors_command("run", "hundred-generals-king", "--log", str(work / "king.jsonl"))
    contenders = [(v.label, partial(run_command, command, work, v.code, answer="SUCCESS")) for v in versions]
    samples = alternate("run hundred-generals-king --log", runs, contenders)
    figures, times = compared(samples, versions)
    for v in versions:
        got = best(samples[v.label])
        if got is not None:
            figures[v.label] += f", peak RSS {int(got['peak']) / 2**20:,.0f} MB"
    name = "run hundred-generals-king --log FILE: whole"
    return Target(name, "< 3 s", figures, at_most(times.get("after"), 2.999), how_taken(runs, versions))


def sm_target(versions: list[Version], n: int = 31, m: int = 10) -> Target:
    """SM(m) on 31 generals, this tree only, as the bench always measured it: one run."""
    contender = ("after", partial(om_sample, "sm", n, m, versions[-1].code))
    got = alternate(f"SM n={n}, m={m}", 1, [contender])["after"][0]
    figures = {"after": failure([got])} if "failed" in got else {"after": sm_figure(got)}
    met = "-" if "failed" in got else at_most(float(got["whole"]), 4.999)
    name = f"SM n={n}, m={m}, signed, split and late: whole"
    return Target(name, "< 5 s", figures, met, "one run, this tree only")


def sm_figure(got: Sample) -> str:
    return (
        f"{float(got['whole']):.2f} s, peak RSS {int(got['peak']) / 2**20:,.0f} MB, "
        f"{int(got['messages']):,} messages, {int(got['signatures']):,} signatures"
    )


def targets_table(targets: list[Target], versions: list[Version]) -> None:
    labels = [v.label for v in reversed(versions)]
    rows = [["target", "goal", *labels, "met", "taken as"]]
    rows += [
        [t.name, t.goal, *(t.figures.get(label, "-") for label in labels), t.met, t.taken] for t in targets
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    show(rows[0], widths)
    show(["-" * width for width in widths], widths)
    for cells in rows[1:]:
        show(cells, widths)


def measure_targets(quick: bool, versions: list[Version], work: Path) -> None:
    print("Targets (issue 14; Phase King from issue 12; SM as before), each sample as measured:", flush=True)
    targets = per_message_targets(versions, 2 if quick else 3, work)
    targets += startup_targets(versions, 5 if quick else 11, work)
    if not quick:
        targets += batched_targets(versions, 2)
        targets.append(cluster_target(versions, 2 if len(versions) > 1 else 1, work))
        targets += regression_targets(versions, 2, work)
        targets.append(king_target(versions, 2, work))
        targets.append(sm_target(versions))
    targets_table(targets, versions)
    if quick:
        print("--quick: targets 3 to 7 (batched, cluster, verify, replay, Phase King, SM) not measured.")


# --- the races against the baseline ---------------------------------------------------


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


WIDTHS = [10, 34, 12, 8, 6, 11, 9, 0]


def races(armies: list[tuple[int, int]], versions: list[Version], work: Path, limit: float) -> None:
    """Each army: the baseline once, then each version batched (and per message, logged, for n = 13).

    ``seconds`` start after ``import om_actors`` (lazy imports fall inside); the ratios compare those.
    """
    widths = [*WIDTHS]
    widths[1] = max(widths[1], *(len(f"per-message, logged, {v.label}") for v in versions))
    measure("baseline", 7, 2)  # warm-up runs, not shown: they compile the bytecode (keep_bytecode)
    for version in versions:
        measure("per-message", 7, 2, log=work / "warm-up.jsonl", code=version.code)
        measure("batched", 7, 2, code=version.code)
    print()
    show(["case", "mode", "messages", "seconds", "whole", "messages/s", "peak RSS", "vs baseline"], widths)
    for n, m in armies:
        name = f"n={n}, m={m}"
        base = measure("baseline", n, m, limit=limit)
        show(row(name, "baseline (dicts)", n, m, base, base), widths)
        for version in versions:
            label = "" if version.label == "after" else f", {version.label}"
            if n == 13:
                logged = measure("per-message", n, m, log=work / "thirteen.jsonl", code=version.code)
                show(row(name, f"per-message, logged{label}", n, m, logged, base), widths)
            batched = measure("batched", n, m, code=version.code)
            show(row(name, f"batched{label}", n, m, batched, base), widths)


def sm_case(code: Path, n: int = 31, m: int = 10) -> None:
    """SM(m) has no baseline to race: the issue's target is under 5 s for the whole process."""
    measure("sm", n, m, code=code)  # a warm-up run, to compile the bytecode (keep_bytecode)
    got = measure("sm", n, m, code=code, to_exit=True)
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


# --- the command line ------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="only the per-message and start-up targets")
    parser.add_argument("--only", metavar="N,M", help="only this army's race against the baseline, e.g. 19,6")
    parser.add_argument("--sm-only", action="store_true", help="only SM(10) with 31 generals")
    parser.add_argument("--before", metavar="REF", help="also measure om_actors at this git ref")
    parser.add_argument(
        "--baseline-limit", type=float, default=300, help="seconds before a race's baseline is stopped"
    )
    known = parser.parse_args()
    with checkout(known.before) as before, tempfile.TemporaryDirectory(prefix="om-actors-bench-") as folder:
        work = Path(folder)
        keep_bytecode(work)
        versions = [Version(f"before ({known.before})", before)] if before is not None else []
        versions.append(Version("after", ROOT))
        announce(versions, work)
        if known.sm_only:
            sm_case(ROOT)
        elif known.only:
            n, m = (int(part) for part in known.only.split(","))
            races([(n, m)], versions, work, known.baseline_limit)
        else:
            measure_targets(known.quick, versions, work)
            if not known.quick:
                print("\nThe bigger armies raced against the baseline (no targets; one run each):")
                races([(16, 5), (19, 6)], versions, work, known.baseline_limit)


def announce(versions: list[Version], work: Path) -> None:
    """Say which code each version imports, and stop if ``PYTHONPATH`` did not win."""
    where = [sys.executable, "-c", "import om_actors; print(om_actors.__file__)"]
    print(f"Python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} cores, load {_load()}")
    for version in versions:
        found = run_command(where, work, version.code)
        imported = str(found.get("stdout", found.get("failed", ""))).strip()
        print(f"{version.label}: {imported}")
        if not imported.startswith(str(version.code)):
            raise SystemExit(f"bench: {version.label} imports {imported}, not the code in {version.code}")
    print(flush=True)


def _load() -> str:
    return ", ".join(f"{load:.1f}" for load in os.getloadavg())


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
