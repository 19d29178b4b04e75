"""One army under several algorithms, and army sizes swept: the numbers behind the scaling paradox.

``om-actors compare`` runs the same generals, commander, order, traitor ids
and strategies under each algorithm it is given and puts the results side
by side; ``om-actors compare --sweep`` does it for every army size in a
range, with as many traitors as each algorithm tolerates, and draws the
messages against the number of generals.

Nothing here knows an algorithm's rules.  Everything comes from the
:class:`~om_actors.algorithm.Algorithm` interface: the rounds, the
closed-form message count (:meth:`~om_actors.algorithm.Algorithm.messages_sent`),
whether the theorem promises agreement
(:meth:`~om_actors.algorithm.Algorithm.theorem_allows_failure`), what
cannot run at all (:meth:`~om_actors.algorithm.Algorithm.problems`) and
the traitor strategies (:meth:`~om_actors.algorithm.Algorithm.strategies`).
A compared run goes through :func:`~om_actors.orchestrator.simulate`, the
runtime ``om-actors run`` uses, so a row's numbers are a run's numbers.  A
sweep logs nothing, so its rows that would run message by message go
through :func:`~om_actors.lockstep.run_lockstep` instead: the same
pipeline, decisions and counts without a task per general, which costs
the actors some three times the algorithm's own work; rows that run
batched still run batched.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from .algorithm import Algorithm, Verdict
from .errors import OmActorsError, ScenarioError
from .events import Event, MessageSent
from .limits import COMPARE_BUDGET, MAX_BATCHED_GENERALS
from .lockstep import run_lockstep
from .log import render
from .orchestrator import Mode, resolve_mode, simulate, unwrapped
from .registry import REGISTRY, algorithm_named
from .scenario import Scenario, TraitorSpec

FALLBACK_STRATEGY = "split"
"""What a traitor plays under an algorithm for which its own strategy means nothing.

Every algorithm's ``split`` is its canonical two-faced lie, so a traitor
that falls back still lies, in the way that algorithm's lies are written.
"""

DEFAULT_BUDGET = COMPARE_BUDGET
"""Messages a row may send and still be run; a bigger one is computed from the closed form."""

SIGNATURES = "signatures_verified"
"""The count ``run --json`` reports for an algorithm that signs; the ``signatures`` column shows it."""

PLOT_SUFFIXES = (".svg", ".png")
HEADROOM = 1e6
"""How far the chart's axis reaches above the largest measured count: six decades."""
PLOT_EXTRA = "pip install 'om_actors[plot]'"


class How(str, enum.Enum):
    """How a row's numbers came about."""

    RUN = "run"
    """The army ran: every number is measured."""
    COMPUTED = "computed"
    """Over the message budget, so not run: the closed form counts a run with every general loyal."""
    REFUSED = "refused"
    """The algorithm cannot run this army at all (its ``problems``), or the runtime refused its size."""

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Row:
    """One algorithm on one army: what it cost, whether it agreed, and whether its theorem promised that.

    ``messages`` counts every message sent, the traitors' included, or for
    a computed row the closed form's count.  ``bytes`` is the size of the
    run's ``message`` lines in its log, line breaks included -- ``None`` when
    they were not logged one by one (a batched run, a sweep) or there was
    no run.  ``bound_holds`` says whether the theorem promises agreement for
    this many generals, ``m`` and traitors; a failing verdict where it does
    not is allowed, and is data, not an error.
    """

    algorithm: str
    title: str
    generals: int
    m: int
    traitors: int
    how: How
    rounds: int
    messages: int | None
    bound_holds: bool
    bytes: int | None = None
    signatures: int | None = None
    seconds: float | None = None
    verdict: Verdict | None = None
    notes: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        """The verdict in words -- ``success``, ``IC1 broken``, ``IC1, IC2 broken`` -- or how the row came."""
        verdict = self.verdict
        if verdict is None:
            return str(self.how)
        if verdict.success:
            return "success"
        broken = [name for name, ok in (("IC1", verdict.agreement), ("IC2", verdict.validity)) if ok is False]
        return f"{', '.join(broken)} broken"

    @property
    def contradicts_theorem(self) -> bool:
        """A failure where the theorem promised agreement: a bug in an algorithm or the runtime."""
        return self.verdict is not None and not self.verdict.success and self.bound_holds

    def to_dict(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "algorithm": self.algorithm,
            "title": self.title,
            "generals": self.generals,
            "m": self.m,
            "traitors": self.traitors,
            "how": str(self.how),
            "rounds": self.rounds,
            "messages": self.messages,
            "bytes": self.bytes,
            SIGNATURES: self.signatures,
            "seconds": None if self.seconds is None else round(self.seconds, 4),
            "agreement": None if verdict is None else verdict.agreement,
            "validity": None if verdict is None else verdict.validity,
            "success": None if verdict is None else verdict.success,
            "outcome": self.outcome,
            "bound_holds": self.bound_holds,
            "notes": list(self.notes),
        }


def algorithms_named(names: Iterable[str] | None) -> list[Algorithm]:
    """The registered algorithms ``names`` lists, each once, in its order; every registered one for ``None``.

    An unknown name is an :class:`~om_actors.errors.OmActorsError` listing
    the known ones, and so is an empty list.
    """
    if names is None:
        return list(REGISTRY.values())
    chosen = [algorithm_named(name) for name in dict.fromkeys(names)]
    if not chosen:
        raise OmActorsError(f"no algorithm to compare: name one or more of {', '.join(REGISTRY)}")
    return chosen


# --- one army, several algorithms ------------------------------------------------------


@attrs.frozen
class Adapted:
    """A scenario as one algorithm runs it, and what had to change for that; or why it cannot run."""

    rules: Algorithm
    scenario: Scenario | None
    notes: tuple[str, ...] = ()
    refusal: str | None = None


def adapt(scenario: Scenario, rules: Algorithm) -> Adapted:
    """``scenario``'s army under ``rules``: the same generals, orders, traitors and, where it can, strategies.

    A traitor whose strategy (with its arguments) is not one ``rules`` can
    run falls back to ``rules``' own :data:`FALLBACK_STRATEGY`, with a
    note saying so.  ``expect`` is dropped: it describes the outcome under
    the scenario's own algorithm, and under another a failure is data.  An
    army ``rules`` cannot run at all gives a :attr:`Adapted.refusal`.
    """
    try:
        army = attrs.evolve(scenario, algorithm=rules.name, traitors={}, expect=None)
    except ScenarioError as exc:
        return Adapted(rules, None, refusal=_problems(exc))
    traitors: dict[int, TraitorSpec] = {}
    notes = []
    for general, spec in scenario.traitors.items():
        try:
            attrs.evolve(army, traitors={general: spec})
            traitors[general] = spec
            continue
        except ScenarioError as exc:
            why = _problems(exc)
        fallback = TraitorSpec(FALLBACK_STRATEGY)
        try:
            attrs.evolve(army, traitors={general: fallback})
        except ScenarioError:
            return Adapted(
                rules, None, refusal=f"traitor {general}: {why}, and there is no {FALLBACK_STRATEGY}"
            )
        traitors[general] = fallback
        title = rules.titled(scenario.m)
        notes.append(
            f"{title}: traitor {general}'s {describe(spec)} has no meaning here ({why}): "
            f"it plays {title}'s {FALLBACK_STRATEGY} instead"
        )
    return Adapted(rules, attrs.evolve(army, traitors=traitors), tuple(notes))


def describe(spec: TraitorSpec) -> str:
    """A strategy as a scenario file writes it: ``split lie_to=even``."""
    return " ".join([spec.strategy, *(f"{key}={value}" for key, value in spec.args.items())])


def _problems(exc: ScenarioError) -> str:
    """A scenario's problems in one sentence, each without the key it was found at."""
    return "; ".join(problem.message.split(": ", 1)[-1] for problem in exc.problems)


async def compare(
    scenario: Scenario,
    algorithms: Sequence[Algorithm],
    *,
    budget: int = DEFAULT_BUDGET,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """One row per algorithm, each running ``scenario``'s army (see :func:`adapt`), in order.

    Each run logs its messages one by one, so ``bytes`` is measured --
    except in a batched run, where logging millions of messages is what
    batching avoids.  A run over ``budget`` messages is computed instead.
    """
    rows = []
    for rules in algorithms:
        adapted = adapt(scenario, rules)
        if adapted.scenario is None:
            row = _refused(rules, scenario.generals, scenario.m, len(scenario.traitors), adapted.refusal)
        else:
            row = await _row(adapted.scenario, budget=budget, measure_bytes=True, notes=adapted.notes)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


# --- army sizes swept ------------------------------------------------------------------


def tolerated(rules: Algorithm, generals: int) -> int | None:
    """The most traitors ``rules`` is built to survive among ``generals``: the largest such ``m``.

    That is the largest ``m`` the algorithm can run on this army for which
    its theorem promises agreement with ``m`` traitors; ``None`` when there
    is none.
    """
    fitting = [
        m
        for m in range(generals)
        if not rules.problems(generals, m) and not rules.theorem_allows_failure(generals, m, m)
    ]
    return max(fitting, default=None)


def sweep_scenario(rules: Algorithm, generals: int, m: int, traitors: int) -> Scenario:
    """The army a sweep runs: a loyal commander 0, and lieutenants ``1 .. traitors`` lying by ``split``.

    The commander stays loyal so that validity (IC2) is checked as well as
    agreement; the traitors are the lowest-numbered lieutenants, so a
    scheme that takes turns by id meets them first.  Raises
    :class:`ScenarioError` for an army the algorithm or the runtime refuses.
    """
    return Scenario(
        name=f"sweep-{generals}",
        algorithm=rules.name,
        generals=generals,
        m=m,
        traitors=dict.fromkeys(range(1, traitors + 1), FALLBACK_STRATEGY),
    )


async def sweep(
    generals: range,
    algorithms: Sequence[Algorithm],
    *,
    traitors: int | None = None,
    budget: int = DEFAULT_BUDGET,
    jobs: int = 1,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """The scaling table: one row per army size in ``generals`` and algorithm, in that order.

    Each algorithm gets as many traitors as it tolerates (:func:`tolerated`),
    or ``traitors`` when given, with ``m`` the same number; see
    :func:`sweep_scenario`.  A row over ``budget`` messages is not run but
    computed, and a row whose army the algorithm cannot run is refused.
    Messages are not logged one by one, so ``bytes`` is not measured.

    With ``jobs`` above 1 the rows run on that many worker processes, the
    biggest armies first, and ``on_row`` sees them as they finish.  A worker
    knows the algorithms that importing :mod:`om_actors` registers, so an
    algorithm a program registers itself needs ``jobs=1``.
    """
    wanted = [(n, rules) for n in generals for rules in algorithms]
    found: dict[tuple[int, str], Row] = {}

    def done(row: Row) -> None:
        found[row.generals, row.algorithm] = row
        if on_row is not None:
            on_row(row)

    if jobs <= 1:
        for n, rules in wanted:
            done(await _sweep_row(rules, n, traitors, budget))
    else:
        import trio_parallel  # worker processes: only a sweep with jobs needs them

        limiter = trio.CapacityLimiter(jobs)

        async def one(n: int, rules: Algorithm) -> None:
            done(
                await trio_parallel.run_sync(
                    _sweep_row_sync, rules.name, n, traitors, budget, kill_on_cancel=True, limiter=limiter
                )
            )

        with unwrapped():  # Ctrl-C comes out as KeyboardInterrupt, not inside a group
            async with trio.open_nursery() as nursery:
                for n, rules in reversed(wanted):
                    nursery.start_soon(one, n, rules)
    return [found[n, rules.name] for n, rules in wanted]


def _sweep_row_sync(algorithm: str, generals: int, traitors: int | None, budget: int) -> Row:
    """One sweep row in a worker process, which runs it in a trio run of its own."""
    return trio.run(_sweep_row, algorithm_named(algorithm), generals, traitors, budget)


async def _sweep_row(rules: Algorithm, generals: int, traitors: int | None, budget: int) -> Row:
    m = tolerated(rules, generals) if traitors is None else traitors
    if m is None:
        refusal = f"{rules.title} can run no army of {generals} generals with its theorem's promise"
        return _refused(rules, generals, 0, 0, refusal)
    problems = rules.problems(generals, m)
    if problems:
        return _refused(rules, generals, m, m, f"m: {'; '.join(problems)}")
    if rules.messages_sent(generals, m, limit=budget) > budget:
        return _computed(rules, generals, m, m, budget)
    try:
        scenario = sweep_scenario(rules, generals, m, m)
        mode = _quickest(scenario)
        runtime = resolve_mode(mode, scenario)  # the runtime's own limits, as simulate would check them
    except ScenarioError as exc:
        return _refused(rules, generals, m, m, _problems(exc))
    if runtime == "batched" or len(scenario.setups) != 1:
        return await _row(scenario, budget=budget, measure_bytes=False, mode=mode)
    return _lockstep_row(scenario)


def _lockstep_row(scenario: Scenario) -> Row:
    """A sweep row run in lockstep: what :func:`_row` measures, without the actors, and no bytes."""
    started = time.perf_counter()
    (instance,) = scenario.effective_instances
    run = run_lockstep(scenario.rules, scenario.setup, instance.order, scenario.strategies())
    seconds = time.perf_counter() - started
    return _ran(scenario, messages=run.messages, stats=run.stats, verdict=run.verdict, seconds=seconds)


def _quickest(scenario: Scenario) -> Mode:
    """Batched whenever the algorithm and the army allow it: a sweep logs nothing, so nothing is lost."""
    fits = scenario.rules.batchable and scenario.generals <= MAX_BATCHED_GENERALS
    return "batched" if fits else "auto"


# --- rows --------------------------------------------------------------------------------


async def _row(
    scenario: Scenario,
    *,
    budget: int,
    measure_bytes: bool,
    notes: tuple[str, ...] = (),
    mode: Mode = "auto",
) -> Row:
    """Run ``scenario`` and measure it; computed instead when it is over ``budget``."""
    rules, n, m, count = scenario.rules, scenario.generals, scenario.m, len(scenario.traitors)
    instances = len(scenario.effective_instances)
    if rules.messages_sent(n, m, limit=budget) * instances > budget:
        return attrs.evolve(_computed(rules, n, m, count, budget, instances), notes=notes)
    wire = _WireBytes()
    started = time.perf_counter()
    try:
        result = await simulate(scenario, on_event=wire if measure_bytes else None, mode=mode)
    except ScenarioError as exc:  # the runtime's own limits: per-message mode's size, say
        return attrs.evolve(_refused(rules, n, m, count, _problems(exc)), notes=notes)
    seconds = time.perf_counter() - started
    return _ran(
        scenario,
        messages=result.messages,
        stats=result.stats,
        verdict=result.verdict,
        seconds=seconds,
        rounds=result.rounds,
        bytes=wire.bytes if measure_bytes and wire.messages == result.messages else None,
        notes=notes,
    )


def _ran(
    scenario: Scenario,
    *,
    messages: int,
    stats: Mapping[str, int],
    verdict: Verdict,
    seconds: float,
    rounds: int | None = None,
    bytes: int | None = None,
    notes: tuple[str, ...] = (),
) -> Row:
    """The row of a run of ``scenario``, by whichever runtime it went through."""
    rules, n, m, count = scenario.rules, scenario.generals, scenario.m, len(scenario.traitors)
    return Row(
        algorithm=rules.name,
        title=rules.titled(m),
        generals=n,
        m=m,
        traitors=count,
        how=How.RUN,
        rounds=scenario.rounds if rounds is None else rounds,
        messages=messages,
        bound_holds=not rules.theorem_allows_failure(n, m, count),
        bytes=bytes,
        signatures=stats.get(SIGNATURES, 0),
        seconds=seconds,
        verdict=verdict,
        notes=notes,
    )


def _computed(rules: Algorithm, generals: int, m: int, traitors: int, budget: int, instances: int = 1) -> Row:
    messages = rules.messages_sent(generals, m) * instances
    return _unrun(rules, generals, m, traitors, How.COMPUTED, messages)


def _refused(rules: Algorithm, generals: int, m: int, traitors: int, why: str | None) -> Row:
    note = f"{rules.titled(m)} cannot run this army: {why}"
    return attrs.evolve(_unrun(rules, generals, m, traitors, How.REFUSED, None), notes=(note,))


def _unrun(rules: Algorithm, generals: int, m: int, traitors: int, how: How, messages: int | None) -> Row:
    """A row for an army that was not run: what the algorithm says of it without running it."""
    return Row(
        algorithm=rules.name,
        title=rules.titled(m),
        generals=generals,
        m=m,
        traitors=traitors,
        how=how,
        rounds=rules.rounds(generals, m),
        messages=messages,
        bound_holds=not rules.theorem_allows_failure(generals, m, traitors),
    )


class _WireBytes:
    """Counts the bytes of every ``message`` line the log writes, as :func:`~om_actors.log.render` writes it.

    A batched run that does not log its messages gives no such events, so
    the count is only trusted when it saw as many messages as the run sent.
    """

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0

    def __call__(self, event: Event) -> None:
        if type(event) is MessageSent:
            self.bytes += len(render(event).encode("utf-8")) + 1
            self.messages += 1


# --- the chart -----------------------------------------------------------------------------


class PlotUnavailable(OmActorsError):
    """``--plot`` without matplotlib: says which extra to install."""


def check_plot(path: Path) -> None:
    """Refuse, before any run, a chart that cannot be drawn: a file type other than ours, or no matplotlib."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise OmActorsError(f"--plot {path}: name an .svg or a .png file")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(f"--plot draws with matplotlib, which is not installed: {PLOT_EXTRA}") from None


def plot(rows: Sequence[Row], path: Path, *, budget: int, traitors: int | None = None) -> None:
    """Messages against generals, one line per algorithm, on a log axis; written as SVG or PNG by its suffix.

    Measured points are solid; computed ones (over ``budget``) are dashed and
    hollow, and a dotted line marks where an algorithm stops being run.  The
    axis ends :data:`HEADROOM` times above the largest measured count, so
    the polynomial lines keep their shape; a computed line that leaves the
    chart there says at its edge how far it goes.
    """
    check_plot(path)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_yscale("log")
    measured = [count for row in rows for _, count in _points([row], How.RUN)]
    ceiling = max(measured, default=1.0) * HEADROOM
    axes.set_ylim(0.5, ceiling)
    top = axes.get_xaxis_transform()  # x in data, y in axes fractions
    for index, (algorithm, series) in enumerate(_series(rows).items()):
        color = f"C{index}"
        ran = _points(series, How.RUN)
        computed = _points(series, How.COMPUTED)
        label = REGISTRY[algorithm].title if algorithm in REGISTRY else algorithm
        if ran:
            axes.plot(*zip(*ran), color=color, marker="o", markersize=3, label=f"{label}, run")
        if computed:
            points = computed if not ran else [ran[-1], *computed]
            axes.plot(*zip(*points), color=color, linestyle="--", marker="o", markersize=3,
                      markerfacecolor="none", label=f"{label}, computed (not run)")  # fmt: skip
            if computed[-1][1] > ceiling:
                (n, count), *_ = (row for row in reversed(computed))
                axes.annotate(f"{label} off the chart: {count:.1e} at n = {n}", (n, 0.98),
                              xycoords=top, ha="right", va="top", color=color, fontsize=8)  # fmt: skip
        if ran and computed:
            last = ran[-1][0]
            axes.axvline(last, color=color, linestyle=":", linewidth=1)
            axes.annotate(f"{label}: run up to n = {last}, computed beyond", (last, 0.02), xycoords=top,
                          xytext=(4, 0), textcoords="offset points", va="bottom", color=color,
                          fontsize=8)  # fmt: skip
    axes.set_xlabel("generals (n)")
    axes.set_ylabel("messages sent (log scale)")
    who = "the most traitors each algorithm tolerates" if traitors is None else f"{traitors} traitor(s)"
    axes.set_title(f"Messages per run, with {who}\n(runs over {budget:,} messages computed, not run)")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.savefig(path)


def _points(rows: Iterable[Row], how: How) -> list[tuple[int, float]]:
    """``(generals, messages)`` of the rows that came about ``how``; counts past a float's range left out."""
    points = []
    for row in rows:
        if row.how is how and row.messages:
            try:
                points.append((row.generals, float(row.messages)))
            except OverflowError:  # OM(m) past some 170 generals: more than 10**308 messages
                continue
    return points


def _series(rows: Iterable[Row]) -> Mapping[str, list[Row]]:
    found: dict[str, list[Row]] = {}
    for row in rows:
        found.setdefault(row.algorithm, []).append(row)
    return found
