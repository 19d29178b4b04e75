"""Checking a theorem: every traitor set, every order, a whole family of adversaries.

verify knows no algorithm's rules.  It asks the registered algorithm
(:mod:`om_actors.registry`) for everything: its rounds, when its theorem
promises agreement, its canonical traitors, and the messages a traitor
could send at all (:meth:`~om_actors.algorithm.Algorithm.decision_points`).
So ``--algorithm sm`` checks SM(m) with the same code that checks OM(m).

A *case* is an algorithm, an army (``generals``, ``m``), a set of traitors
and the order a loyal commander (general 0) would give.  An *adversary* is
how those traitors lie.  For each case verify runs every adversary of a
family -- ``canonical`` (every assignment of the algorithm's canonical
built-in strategies), ``exhaustive`` (every value or silence on every
decision point of every traitor) or ``search`` (a seeded hill climb towards
disagreement over the same space) -- through the lockstep driver, and
counts the adversaries that break agreement or validity.

Every adversary is an ordinary strategy, built by
:func:`~om_actors.strategies.build_strategy` from the algorithm's own
strategies -- exhaustive and search ones as its ``scripted`` strategy -- so
a lockstep run is exactly what a scenario file naming that strategy runs.
Every violation is shrunk -- fewest traitors first, then fewest deviating
messages -- and returned as a scenario, ``algorithm`` key included, that
``om-actors run`` reproduces, with an ``expect`` saying what breaks.  A
sample of adversaries, and every violation, is re-run through the trio
actors to check that the fast path and the real runtime agree.
"""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import math
import random
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any, Protocol

import attrs
import trio
import trio_parallel
from ruamel.yaml import YAML

from .algorithm import Algorithm, DecisionPoint, Path, Setup
from .errors import OmActorsError
from .limits import MAX_CHECKED_MESSAGES, VERIFY_BUDGET, size_problem
from .limits import Adversary as Adversary
from .lockstep import LockstepRun, run_lockstep
from .orchestrator import simulate, unwrapped
from .registry import DEFAULT_ALGORITHM, algorithm_named
from .scenario import DEFAULT_VALUES, scenario_from_dict
from .strategies import Strategy, build_strategy

Counts = Callable[[int], Sequence[int]]
"""Traitor-set sizes to try, given m, in ascending order."""
Point = tuple[int, DecisionPoint]
"""One message one traitor may send: the traitor, and the decision point."""
Table = dict[Point, str | None]
"""A scripted adversary: what each traitor sends on each of its decision points; ``None`` is silence."""
Plan = Any
"""An adversary in a family's own terms: strategy indices, or a message table."""
DEFAULT_BUDGET = VERIFY_BUDGET
"""Adversaries tried per case at most, by family, unless ``--budget`` says otherwise."""
DEFAULT_VALUE = "retreat"
"""A scenario's ``default`` when it names none, as verify's cases and counterexamples leave it."""

MAX_CASES = 1_000_000
"""Cases one verification may hold; wider ranges are refused before a single case is made."""


class RangesTooLarge(OmActorsError):
    """Ranges that ask for more than a run may: an army over the message limit, or too many cases."""


@attrs.frozen
class Case:
    """One algorithm, one army, one traitor set, one order; the commander is general 0.

    The algorithm is named, not held, so a case can be sent to a worker
    process: workers know the algorithms the package registers, so a
    program's own algorithm is verified with one job.
    """

    generals: int
    m: int
    traitors: tuple[int, ...]
    order: str
    algorithm: str = DEFAULT_ALGORITHM

    @property
    def rules(self) -> Algorithm:
        return algorithm_named(self.algorithm)

    @property
    def setup(self) -> Setup:
        """What a scenario of this case runs (:func:`_setup`)."""
        return _setup(self.generals, self.m)

    @property
    def theorem_allows_failure(self) -> bool:
        return self.rules.theorem_allows_failure(self.generals, self.m, len(self.traitors))


def _setup(generals: int, m: int) -> Setup:
    """What a scenario of a case runs: its defaults, seed 0, one instance; the commander is general 0."""
    return Setup(generals, m, 0, DEFAULT_VALUES, DEFAULT_VALUE)


@attrs.frozen
class Violation:
    """An adversary that broke IC1 or IC2, shrunk, as a scenario file's data."""

    case: Case
    agreement: bool
    validity: bool | None
    scenario: dict[str, Any]


@attrs.frozen
class CaseReport:
    """What one case came to."""

    case: Case
    adversaries: int
    agreement_broken: int
    validity_broken: int
    over_budget: int
    violation: Violation | None
    mismatch: str | None


def cases(
    generals: Sequence[int], ms: Sequence[int], traitor_counts: Counts, algorithm: str = DEFAULT_ALGORITHM
) -> Iterator[Case]:
    """Every case of the ranges: traitor sets of the allowed sizes, commander included, every order.

    Armies the algorithm cannot run at all (:meth:`Algorithm.problems`) are left out.
    """
    rules = algorithm_named(algorithm)
    for n in generals:
        for m in _runnable_ms(rules, n, ms):
            yield from _cases_of(n, m, traitor_counts(m), algorithm)


def _cases_of(n: int, m: int, sizes: Sequence[int], algorithm: str) -> Iterator[Case]:
    for k in sizes:
        for traitors in itertools.combinations(range(n), k):
            for order in DEFAULT_VALUES:
                yield Case(n, m, traitors, order, algorithm)


def check_ranges(
    generals: Sequence[int], ms: Sequence[int], traitor_counts: Counts, algorithm: str = DEFAULT_ALGORITHM
) -> None:
    """Refuse ranges too large to run, before any case exists or any worker starts.

    ``generals`` and ``ms`` must be ascending (the CLI passes ranges), and
    so must the traitor counts.  The largest army -- the most generals, with
    the largest m they run, and the most traitors it is given -- sends the
    most messages, so the message limit (:func:`om_actors.limits.size_problem`)
    is checked on it alone.  Then the cases are counted, stopping as soon as
    there are more than :data:`MAX_CASES`.
    """
    rules = algorithm_named(algorithm)
    if generals:
        largest, runs = generals[-1], _runnable_ms(rules, generals[-1], ms)
        counts = traitor_counts(runs[-1]) if runs else ()
        most = counts[-1] if counts else 0
        problem = size_problem(rules, _setup(largest, runs[-1]), most) if runs else None
        if problem is not None:
            raise RangesTooLarge(problem)
    if _count_cases(generals, ms, traitor_counts, cap=MAX_CASES, algorithm=algorithm) > MAX_CASES:
        raise RangesTooLarge(
            f"these ranges hold more than {MAX_CASES:,} cases: narrow --generals, --m or --traitors"
        )


def no_army(generals: Sequence[int], ms: Sequence[int], algorithm: str = DEFAULT_ALGORITHM) -> str | None:
    """Why no army in the ranges can run, from the one that comes closest; ``None`` when one can."""
    rules = algorithm_named(algorithm)
    if not generals or not ms or _runnable_ms(rules, generals[-1], ms):
        return None
    n, m = generals[-1], ms[0]
    if n < 2 or m < 0:
        return "an army needs at least 2 generals and m of 0 or more"
    problem = "; ".join(rules.problems(n, m))
    return f"no army in these ranges can run {rules.title}: for {n} generals, m = {m} {problem}"


def _runnable(rules: Algorithm, generals: int, m: int) -> bool:
    return generals >= 2 and m >= 0 and not rules.problems(generals, m)


def _runnable_ms(rules: Algorithm, generals: int, ms: Sequence[int]) -> Sequence[int]:
    """The values of ``ms`` (ascending) that ``generals`` generals can run: a prefix of them.

    An army that cannot be asked to survive m traitors cannot be asked to
    survive more, so a bisection finds the end, and a range of any width
    costs a few dozen checks.
    """
    end = bisect.bisect_left(ms, True, key=lambda m: not _runnable(rules, generals, m))
    return ms[:end]


def _count_cases(
    generals: Sequence[int],
    ms: Sequence[int],
    traitor_counts: Counts,
    *,
    cap: int,
    algorithm: str = DEFAULT_ALGORITHM,
) -> int:
    """How many cases :func:`cases` would make, or a number past ``cap`` as soon as it passes it.

    Armies only run more m as they grow, so for each m the armies that run
    it, and have room for the fewest traitors asked for, are a suffix of
    ``generals``, found by bisection; each adds at least one case, so the
    count passes ``cap`` after at most ``cap`` of them.
    """
    rules = algorithm_named(algorithm)
    if not generals:
        return 0
    total = 0
    for m in _runnable_ms(rules, generals[-1], ms):
        sizes = traitor_counts(m)
        if not sizes:
            continue
        first = bisect.bisect_left(generals, True, key=_room_for(rules, m, sizes[0]))  # Counts ascend
        for n in generals[first:]:
            for k in sizes:
                if k > n:
                    break
                total += _bounded_binomial(n, k, cap) * len(DEFAULT_VALUES)
                if total > cap:
                    return total
    return total


def _room_for(rules: Algorithm, m: int, traitors: int) -> Callable[[int], bool]:
    """Whether an army runs ``m`` and has at least ``traitors`` generals: true from some size on."""
    return lambda generals: generals >= traitors and _runnable(rules, generals, m)


def _bounded_binomial(n: int, k: int, cap: int) -> int:
    """``math.comb(n, k)``, or a number past ``cap`` once it is clear the true value is."""
    k = min(k, n - k)
    value = 1
    for i in range(k):
        value = value * (n - i) // (i + 1)  # C(n, i + 1), growing while i < k <= n / 2
        if value > cap:
            return value
    return value


# --- one case ------------------------------------------------------------------


@attrs.frozen
class Deviation:
    """What a traitor sent on a decision point where a loyal general sends ``loyal``; ``None`` is silence."""

    traitor: int
    point: DecisionPoint
    loyal: str
    sent: object


Question = tuple[int, DecisionPoint, str, object]
"""What a traitor's strategy was asked, and answered: the traitor, the point, the loyal value, the answer."""


@attrs.frozen
class Outcome:
    """One adversary's lockstep run, with every question its traitors' strategies were asked."""

    run: LockstepRun
    asked: tuple[Question, ...]

    def deviations(self, case: Case) -> tuple[Deviation, ...]:
        """What the traitors did differently on their decision points: a scripted family's script.

        A deviation is an answer on one of the traitor's decision points
        that differs from the loyal value; anything a strategy is offered
        beyond those (a late release, say) it may only keep silent about, as
        a loyal general does, or the decision points would not cover the
        adversary.  Worked out only when asked, since it needs the decision
        points listed: a canonical adversary's case may have billions
        (SM(10) on 16 generals), and its scenario names strategies instead.
        """
        return tuple(
            Deviation(t, point, loyal, sent)
            for t, point, loyal, sent in self.asked
            if sent != loyal and point in _decision_points(case, t)
        )


@attrs.define
class _Recording:
    """A strategy that notes every question it is asked and its answer: how deviations are found.

    Recording the answers, instead of reading them back from the messages
    sent, keeps verify ignorant of any algorithm's payload.
    """

    inner: Strategy
    traitor: int
    asked: list[Question]

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        answer = self.inner.choose(round, path, receiver, value, rng)
        self.asked.append((self.traitor, DecisionPoint(round, path, receiver), value, answer))
        return answer


def run_adversary(case: Case, traitors: Mapping[int, Strategy]) -> Outcome:
    """One adversary against ``case``, in lockstep; the traitors not in ``traitors`` are loyal.

    What the traitors did differently is :meth:`Outcome.deviations`.
    """
    asked: list[Question] = []
    recording = {t: _Recording(strategy, t, asked) for t, strategy in traitors.items()}
    run = run_lockstep(case.rules, case.setup, case.order, recording)
    return Outcome(run, tuple(asked))


@functools.lru_cache(maxsize=256)
def _decision_points(case: Case, traitor: int) -> frozenset[DecisionPoint]:
    """A traitor's decision points, worked out once per case rather than once per adversary."""
    return frozenset(case.rules.decision_points(case.setup, traitor))


def check_case(case: Case, adversary: Adversary, budget: int, seed: int = 0) -> CaseReport:
    """Run ``adversary`` against ``case``; meant to run in a worker process.

    A family larger than ``budget`` is not sampled but skipped and counted
    as over budget, so ``exhaustive`` never claims more than it covered;
    ``search`` simply stops after ``budget`` adversaries.  Its moves are
    made over a table of every decision point, so a case whose traitors
    have more than :data:`~om_actors.limits.MAX_CHECKED_MESSAGES` is
    skipped too.  Either is found by counting the points only as far as
    the answer needs, never by listing them: SM(10) on 16 generals gives
    one traitor billions.
    """
    family = _FAMILIES[adversary]
    if family.size(case, cap=budget) <= budget:
        if adversary == "search":
            family = _FAMILIES["exhaustive"]  # a space smaller than the budget is searched by enumerating it
    elif adversary != "search" or _count_points(case, most=MAX_CHECKED_MESSAGES + 1) > MAX_CHECKED_MESSAGES:
        return CaseReport(case, 0, 0, 0, 1, None, None)
    tried = agreement_broken = validity_broken = 0
    first_violation: tuple[Outcome, Plan] | None = None
    mismatch = None
    plans = family.plans(case, budget, seed)
    plan = next(plans, None)
    while plan is not None:
        outcome = run_adversary(case, family.strategies(case, plan))
        verdict = outcome.run.verdict
        tried += 1
        agreement_broken += not verdict.agreement
        validity_broken += verdict.validity is False
        if tried == 1:
            mismatch = _actor_check(family.scenario(case, plan, outcome), outcome.run)
        if first_violation is None and not verdict.success:
            first_violation = (outcome, plan)
        plan = _next_plan(plans, outcome)
    violation = None
    if first_violation is not None:
        violation = _named_after_its_case(family.shrink(case, *first_violation))
        mismatch = mismatch or _reproduces(violation)
    return CaseReport(case, tried, agreement_broken, validity_broken, 0, violation, mismatch)


def _named_after_its_case(violation: Violation) -> Violation:
    """A violation shrunk to fewer traitors, renamed to say which case it was found in.

    Cases that shrink to the same traitors would otherwise share a name, and
    so a file, the later overwriting the earlier; each case occurs once in a
    run, so the case's own traitors make the name unique, and it stays the
    same from run to run.
    """
    kept = tuple(violation.scenario["traitors"])
    if kept == violation.case.traitors:
        return violation
    found_in = "-".join(map(str, violation.case.traitors))
    renamed = {**violation.scenario, "name": f"{violation.scenario['name']}-shrunk-from-{found_in}"}
    return attrs.evolve(violation, scenario=renamed)


def _next_plan(plans: Generator[Plan, Outcome, None], outcome: Outcome) -> Plan | None:
    """The family's next adversary, told how the last one did (search climbs on it)."""
    try:
        return plans.send(outcome)
    except StopIteration:
        return None


# --- families ------------------------------------------------------------------


def _strategy(case: Case, name: str, args: Mapping[str, object]) -> Strategy:
    """One of the algorithm's built-in strategies, built as a scenario file's traitor is."""
    return build_strategy(name, args, values=case.setup.values, m=case.m, built_in=case.rules.strategies())


class _Canonical:
    """Every assignment of the algorithm's canonical strategies (``Algorithm.canonical``) to the traitors."""

    @staticmethod
    def table(case: Case) -> Sequence[tuple[str, dict[str, object]]]:
        return case.rules.canonical(case.setup.values)

    def size(self, case: Case, *, cap: int | None = None) -> int:
        """How many assignments there are, always exactly: a few strategies per traitor (``cap`` unused)."""
        return _power(len(self.table(case)), len(case.traitors))

    def plans(self, case: Case, budget: int, seed: int) -> Generator[tuple[int, ...], Outcome, None]:
        # Not `yield from`: that would pass check_case's send() on to the product, which has none.
        for plan in itertools.product(range(len(self.table(case))), repeat=len(case.traitors)):  # noqa: UP028
            yield plan

    def strategies(self, case: Case, plan: tuple[int, ...]) -> dict[int, Strategy]:
        table = self.table(case)
        return {t: _strategy(case, *table[i]) for t, i in zip(case.traitors, plan)}

    def scenario(self, case: Case, plan: tuple[int, ...], outcome: Outcome) -> dict[str, Any]:
        table = self.table(case)
        named = {t: _spec(*table[i]) for t, i in zip(case.traitors, plan)}
        return _scenario(case, named, outcome.run)

    def shrink(self, case: Case, outcome: Outcome, plan: tuple[int, ...]) -> Violation:
        kept = dict(zip(case.traitors, plan))
        for traitor in list(kept):
            trial = {t: i for t, i in kept.items() if t != traitor}
            smaller = attrs.evolve(case, traitors=tuple(trial))
            trial_outcome = run_adversary(smaller, self.strategies(smaller, tuple(trial.values())))
            if not trial_outcome.run.verdict.success:
                kept, outcome = trial, trial_outcome
        smaller = attrs.evolve(case, traitors=tuple(kept))
        scenario = self.scenario(smaller, tuple(kept.values()), outcome)
        return Violation(case, outcome.run.verdict.agreement, outcome.run.verdict.validity, scenario)


class _Scripted:
    """Adversaries as a table of what each traitor sends on each of its decision points."""

    @staticmethod
    def points(case: Case) -> list[Point]:
        return [(t, point) for t in case.traitors for point in case.rules.decision_points(case.setup, t)]

    @staticmethod
    def options(case: Case) -> list[str | None]:
        return [*case.setup.values, None]

    def size(self, case: Case, *, cap: int | None = None) -> int:
        """How many tables there are: exactly up to ``cap``, else some number past it.

        The decision points are counted no further than the answer needs --
        past ``cap`` after a dozen or so -- so a case with billions of them
        is answered at once.
        """
        options = len(self.options(case))
        most = None if cap is None else _exponent_past(options, cap)
        return _power(options, _count_points(case, most=most))

    def strategies(self, case: Case, plan: Table) -> dict[int, Strategy]:
        return {t: _strategy(case, "scripted", _script(case, t, plan)) for t in case.traitors}

    def scenario(self, case: Case, plan: Table, outcome: Outcome) -> dict[str, Any]:
        script = {(d.traitor, d.point): d.sent for d in outcome.deviations(case)}
        return _scenario(case, _scripts(case, script), outcome.run)

    def shrink(self, case: Case, outcome: Outcome, plan: Table) -> Violation:
        script: Table = {(d.traitor, d.point): _sent(d) for d in outcome.deviations(case)}
        traitors = list(case.traitors)
        for traitor in list(traitors):
            smaller = attrs.evolve(case, traitors=tuple(t for t in traitors if t != traitor))
            trial = {key: sent for key, sent in script.items() if key[0] != traitor}
            trial_outcome = run_adversary(smaller, self.strategies(smaller, trial))
            if not trial_outcome.run.verdict.success:
                traitors, script, outcome = list(smaller.traitors), trial, trial_outcome
        smaller = attrs.evolve(case, traitors=tuple(traitors))
        for key in list(script):
            trial = {k: sent for k, sent in script.items() if k != key}
            trial_outcome = run_adversary(smaller, self.strategies(smaller, trial))
            if not trial_outcome.run.verdict.success:
                script, outcome = trial, trial_outcome
        verdict = outcome.run.verdict
        return Violation(case, verdict.agreement, verdict.validity, self.scenario(smaller, script, outcome))


class _Exhaustive(_Scripted):
    """Every value, or silence, on every decision point of every traitor."""

    def plans(self, case: Case, budget: int, seed: int) -> Generator[Table, Outcome, None]:
        keys, options = self.points(case), self.options(case)
        for combination in itertools.product(options, repeat=len(keys)):
            yield dict(zip(keys, combination))


class _Search(_Scripted):
    """Random restarts and single-message moves, climbing towards more disagreement."""

    PATIENCE = 40
    """Moves without improvement before a restart."""

    def plans(self, case: Case, budget: int, seed: int) -> Generator[Table, Outcome, None]:
        keys, options = self.points(case), self.options(case)
        rng = random.Random(f"{seed}/{case.generals}/{case.m}/{case.traitors}/{case.order}")
        loyal = frozenset(range(case.generals)) - set(case.traitors)
        best: Table = {}
        best_score, stale = -1, self.PATIENCE
        for _ in range(budget):
            if stale >= self.PATIENCE or not keys:
                plan = {key: rng.choice(options) for key in keys}
                best_score, stale = -1, 0
            else:
                plan = dict(best)
                key = rng.choice(keys)
                plan[key] = rng.choice([o for o in options if o != best[key]])
            outcome = yield plan
            score = outcome.run.disagreement(case.setup, loyal, case.order)
            if score > best_score:
                best, best_score, stale = plan, score, 0
            else:
                if score == best_score:
                    best = plan  # sideways moves let the climb cross plateaus
                stale += 1


_FAMILIES: dict[Adversary, Any] = {
    "canonical": _Canonical(),
    "exhaustive": _Exhaustive(),
    "search": _Search(),
}


def exhaustive_plan(case: Case, index: int) -> Table:
    """The ``index``-th adversary of the exhaustive family, without enumerating the others."""
    keys, options = _Scripted.points(case), _Scripted.options(case)
    plan = {}
    for key in reversed(keys):
        index, digit = divmod(index, len(options))
        plan[key] = options[digit]
    return plan


def run_plan(case: Case, plan: Table) -> LockstepRun:
    """One scripted adversary against ``case``, in lockstep."""
    return run_adversary(case, _FAMILIES["exhaustive"].strategies(case, plan)).run


def exhaustive_size(case: Case, *, cap: int | None = None) -> int:
    """How many exhaustive adversaries ``case`` has: exactly up to ``cap``, else some number past it."""
    size: int = _FAMILIES["exhaustive"].size(case, cap=cap)
    return size


# --- helpers -------------------------------------------------------------------


def _power(base: int, exponent: int) -> int:
    return math.prod(itertools.repeat(base, exponent))


def _exponent_past(base: int, cap: int) -> int:
    """The least ``e`` with ``base ** e > cap``, for ``base`` of 2 or more."""
    exponent, power = 0, 1
    while power <= cap:
        exponent, power = exponent + 1, power * base
    return exponent


def _count_points(case: Case, *, most: int | None) -> int:
    """How many decision points the case's traitors have together, counting no further than ``most``.

    An algorithm may give them one at a time (SM(m) does), so counting
    to a bound costs no more than the bound, however many there are.
    """
    every = itertools.chain.from_iterable(case.rules.decision_points(case.setup, t) for t in case.traitors)
    return sum(1 for _ in itertools.islice(every, most))


def _sent(deviation: Deviation) -> str | None:
    """What a scripted traitor sent: a value, or ``None`` for silence; verify's tables hold nothing else."""
    assert deviation.sent is None or isinstance(deviation.sent, str)
    return deviation.sent


def _script(case: Case, traitor: int, plan: Mapping[Point, object]) -> dict[str, object]:
    """The ``scripted`` strategy's arguments for ``traitor``'s entries of a table, as a file writes them.

    An entry names its round only where the path does not fix it (see
    :func:`_needs_round`), so OM(m) and SM(m) files have none.
    """
    needs_round = _needs_round(case, traitor)
    return {
        "messages": [
            {
                **({"round": point.round} if point in needs_round else {}),
                "path": list(point.path),
                "receiver": point.receiver,
                **({"value": sent} if sent is not None else {"silent": True}),
            }
            for (t, point), sent in plan.items()
            if t == traitor
        ]
    }


@functools.lru_cache(maxsize=256)
def _needs_round(case: Case, traitor: int) -> frozenset[DecisionPoint]:
    """The decision points whose script entry must say its round, since one without it would mean another too.

    An entry without a round stands for its path and receiver in every
    round.  That is one decision point when the path is sent in the round
    its length says, and in no other: every point of OM(m) and SM(m).  An
    algorithm whose messages carry no path sends along ``(sender,)`` in
    several rounds, and each of those entries names its round.
    """
    points = _decision_points(case, traitor)
    rounds: dict[tuple[Path, int], set[int]] = {}
    for point in points:
        rounds.setdefault((point.path, point.receiver), set()).add(point.round)
    return frozenset(
        point
        for point in points
        if point.round != len(point.path) or len(rounds[point.path, point.receiver]) > 1
    )


def _spec(name: str, args: dict[str, object]) -> object:
    return {"strategy": name, **args} if args else name


def _scripts(case: Case, script: Mapping[Point, object]) -> dict[int, object]:
    """Each traitor's deviations as a ``scripted`` strategy; ``loyal`` when it has none."""
    scripts: dict[int, object] = {}
    for traitor in case.traitors:
        args = _script(case, traitor, script)
        scripts[traitor] = {"strategy": "scripted", **args} if args["messages"] else "loyal"
    return scripts


def _scenario(case: Case, traitors: Mapping[int, object], run: LockstepRun) -> dict[str, Any]:
    expect: dict[str, bool] = {}
    if not run.verdict.agreement:
        expect["agreement"] = False
    if run.verdict.validity is False:
        expect["validity"] = False
    names = "-".join(map(str, case.traitors)) or "none"
    prefix = "" if case.algorithm == DEFAULT_ALGORITHM else f"{case.algorithm}-"
    return {
        "name": f"{prefix}n{case.generals}-m{case.m}-traitors-{names}-{case.order}",
        "algorithm": case.algorithm,
        "generals": case.generals,
        "m": case.m,
        "order": case.order,
        "traitors": dict(traitors),
        **({"expect": expect} if expect else {}),
    }


def _actor_check(data: dict[str, Any], run: LockstepRun) -> str | None:
    """Run the same adversary through the trio actors; describe any difference."""
    scenario = scenario_from_dict(data)
    actual = trio.run(simulate, scenario)
    loyal = {g: v for g, v in run.decisions.items() if g not in scenario.traitors}
    if dict(actual.decisions) != loyal or actual.verdict != run.verdict:
        return (
            f"{scenario.name}: the lockstep driver decided {loyal} ({run.verdict}), "
            f"the actors {dict(actual.decisions)} ({actual.verdict})"
        )
    return None


def _reproduces(violation: Violation) -> str | None:
    result = trio.run(simulate, scenario_from_dict(violation.scenario))
    if result.unmet_expectations():
        return f"{violation.scenario['name']}: the actors do not reproduce it: {result.unmet_expectations()}"
    return None


# --- a whole verification ------------------------------------------------------


@attrs.frozen
class Row:
    """The table's line for one army and one number of traitors."""

    generals: int
    m: int
    traitors: int
    cases: int = 0
    adversaries: int = 0
    agreement_broken: int = 0
    validity_broken: int = 0
    over_budget: int = 0
    violating_cases: int = 0
    algorithm: str = DEFAULT_ALGORITHM

    @property
    def theorem_allows_failure(self) -> bool:
        return algorithm_named(self.algorithm).theorem_allows_failure(self.generals, self.m, self.traitors)

    @property
    def contradicts_theorem(self) -> bool:
        return self.violating_cases > 0 and not self.theorem_allows_failure

    def add(self, report: CaseReport) -> Row:
        return attrs.evolve(
            self,
            cases=self.cases + 1,
            adversaries=self.adversaries + report.adversaries,
            agreement_broken=self.agreement_broken + report.agreement_broken,
            validity_broken=self.validity_broken + report.validity_broken,
            over_budget=self.over_budget + report.over_budget,
            violating_cases=self.violating_cases + (report.violation is not None),
        )


def _enumeration_order(violation: Violation) -> tuple[int, int, int, tuple[int, ...], int]:
    """Where the violation's case comes in :func:`cases`: violations are listed, and written, so."""
    case = violation.case
    return (case.generals, case.m, len(case.traitors), case.traitors, DEFAULT_VALUES.index(case.order))


class Tally:
    """Case reports of one algorithm folded into rows as they arrive, in whatever order workers finish.

    Violations are kept in the order of their cases, and mismatches sorted,
    so the report is the same however the workers' finishing order fell.
    """

    def __init__(self, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.algorithm = algorithm
        self.rows: dict[tuple[int, int, int], Row] = {}
        self.violations: list[Violation] = []
        self.mismatches: list[str] = []

    def add(self, report: CaseReport) -> None:
        case = report.case
        if case.algorithm != self.algorithm:
            raise ValueError(f"a case of {case.algorithm!r} in a tally of {self.algorithm!r}")
        key = (case.generals, case.m, len(case.traitors))
        self.rows[key] = self.rows.get(key, Row(*key, algorithm=self.algorithm)).add(report)
        if report.violation is not None:
            bisect.insort(self.violations, report.violation, key=_enumeration_order)
        if report.mismatch is not None:
            bisect.insort(self.mismatches, report.mismatch)

    def sorted_rows(self) -> list[Row]:
        return [self.rows[key] for key in sorted(self.rows)]

    @property
    def contradictions(self) -> list[Violation]:
        return [v for v in self.violations if not v.case.theorem_allows_failure]


Batch = tuple[Case, ...]
"""Cases checked one after another by one task: a worker's unit of work, and a Dask task's."""


def check_batch(batch: Batch, adversary: Adversary, budget: int) -> list[CaseReport]:
    """Every case of ``batch``, in order; what an executor runs, in a worker process or on a cluster.

    A case's search is seeded by the case itself (see ``_Search.plans``), so
    its report is the same whichever batch, worker or machine checks it.
    """
    return [check_case(case, adversary, budget) for case in batch]


def batches(all_cases: Sequence[Case], size: int) -> list[Batch]:
    """``all_cases`` cut, in order, into batches of ``size`` cases (the last may hold fewer)."""
    return [tuple(all_cases[start : start + size]) for start in range(0, len(all_cases), size)]


Check = Callable[[Batch], list[CaseReport]]
"""One batch checked: :func:`check_batch` with the run's adversary and budget bound."""
Fold = Callable[[list[CaseReport]], None]


class Executor(Protocol):
    """Where batches run: the one thing that differs between a local verify and one on a cluster.

    The cases, their batches' contents, the seeds, the adversaries, the
    shrinking and the tally are verify's alone, so every executor gives the
    same answers; an executor only decides where :func:`check_batch` runs.
    """

    def batch_size(self, cases: int) -> int:
        """How many cases one task holds, for a run of ``cases`` cases."""
        ...

    async def run(self, check: Check, work: Sequence[Batch], fold: Fold) -> None:
        """Run ``check`` on every batch, handing each batch's reports to ``fold`` as it finishes.

        Cancelled (Ctrl-C), it stops the batches still outstanding before returning.
        """
        ...


@attrs.frozen
class WorkerProcesses:
    """``jobs`` local worker processes (trio-parallel), or with one job a worker thread of this process.

    A task is one case: a local worker costs far less than a case to hand
    one to, so batching would only make the progress bar coarser.
    """

    jobs: int

    def batch_size(self, cases: int) -> int:
        return 1

    async def run(self, check: Check, work: Sequence[Batch], fold: Fold) -> None:
        if self.jobs <= 1:
            # A thread, not this one: check_case starts trio runs of its own for its actor checks.
            for batch in work:
                fold(await trio.to_thread.run_sync(check, batch, abandon_on_cancel=True))
            return
        limiter = trio.CapacityLimiter(self.jobs)

        async def one(batch: Batch) -> None:
            fold(await trio_parallel.run_sync(check, batch, kill_on_cancel=True, limiter=limiter))

        with unwrapped():  # Ctrl-C comes out as KeyboardInterrupt, not inside a group
            async with trio.open_nursery() as nursery:
                for batch in work:
                    nursery.start_soon(one, batch)


async def verify(
    all_cases: Sequence[Case],
    adversary: Adversary,
    *,
    budget: int,
    jobs: int = 1,
    tally: Tally,
    on_case: Callable[[CaseReport], None] | None = None,
    executor: Executor | None = None,
) -> None:
    """Check every case, folding reports into ``tally`` as they arrive.

    The cases run where ``executor`` puts them: by default on ``jobs``
    local worker processes (:class:`WorkerProcesses`), or on a Dask cluster
    (:class:`om_actors.dask_sweep.DaskCluster`).  The cases name their
    algorithm (:func:`cases` takes it), and must all be the tally's.  On
    cancellation the executor stops what is outstanding, so Ctrl-C is
    prompt either way.
    """
    strays = {case.algorithm for case in all_cases} - {tally.algorithm}
    if strays:
        raise ValueError(f"cases of {sorted(strays)} for a tally of {tally.algorithm!r}")
    executor = executor or WorkerProcesses(jobs)

    def fold(reports: list[CaseReport]) -> None:
        for report in reports:
            tally.add(report)
            if on_case is not None:
                on_case(report)

    check = functools.partial(check_batch, adversary=adversary, budget=budget)
    await executor.run(check, batches(all_cases, executor.batch_size(len(all_cases))), fold)


def write_violation(violation: Violation, folder: FilePath, adversary: Adversary) -> FilePath:
    """The violation as a scenario file in ``folder``, with a header saying what it shows."""
    case = violation.case
    broken = " and ".join(
        name
        for name, held in (("agreement", violation.agreement), ("validity", violation.validity))
        if held is False
    )
    path = folder / f"{adversary}-{violation.scenario['name']}.yaml"
    command = "om-actors verify"
    if case.algorithm != DEFAULT_ALGORITHM:
        command += f" --algorithm {case.algorithm}"
    header = [
        f"Found by {command} --adversary {adversary}: {broken} broken with {case.generals} generals,",
        f"m = {case.m}, traitors {list(case.traitors)}, order {case.order!r}; shrunk to the traitors below.",
        _theorem_note(case),
        f"Reproduce it with: om-actors run {path}",
    ]
    yaml = YAML()
    yaml.default_flow_style = None
    text = io.StringIO()
    yaml.dump(violation.scenario, text)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"# {line}\n" for line in header) + text.getvalue(), encoding="utf-8")
    return path


def _theorem_note(case: Case) -> str:
    """What the algorithm's theorem says about the case, in the algorithm's own words."""
    rules = case.rules
    warnings = rules.warnings(case.generals, case.m, len(case.traitors))
    if warnings:
        return f"The theorem allows this: {'; '.join(warnings)}."
    title = rules.titled(case.m)
    return f"THE THEOREM FORBIDS THIS ({title} promises agreement here): a bug in the simulator."
