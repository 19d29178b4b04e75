"""Checking the theorem: every traitor set, every order, a whole family of adversaries.

A *case* is an army (``generals``, ``m``), a set of traitors and the order a
loyal commander (general 0) would give.  An *adversary* is how those
traitors lie.  For each case verify runs every adversary of a family --
``canonical`` (every assignment of the deterministic built-in strategies),
``exhaustive`` (every value or silence on every message a traitor sends) or
``search`` (a seeded hill climb towards disagreement) -- through the
lockstep driver, and counts the adversaries that break agreement or
validity.

Every violation is shrunk -- fewest traitors first, then fewest deviating
messages -- and returned as a scenario that ``om-actors run`` reproduces,
with an ``expect`` saying what breaks.  A sample of adversaries, and every
violation, is re-run through the trio actors to check that the fast path
and the real runtime agree.
"""

from __future__ import annotations

import bisect
import io
import itertools
import math
import random
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any, Literal

import attrs
import trio
import trio_parallel
from ruamel.yaml import YAML

from .errors import OmActorsError
from .limits import size_problem
from .lockstep import Choice, LockstepRun, run_lockstep, traitor_messages
from .orchestrator import simulate, unwrapped
from .algorithm import Path, Setup
from .oral import ORAL_MESSAGES

theorem_allows_failure = ORAL_MESSAGES.theorem_allows_failure
from .scenario import DEFAULT_VALUES, scenario_from_dict
from .strategies import Constant, Flip, Silent, Split, Strategy

Adversary = Literal["canonical", "exhaustive", "search"]
Counts = Callable[[int], Sequence[int]]
"""Traitor-set sizes to try, given m."""
Table = dict[tuple[Path, int], str | None]
"""A scripted adversary: what to send on each ``(path, receiver)``; ``None`` is silence."""
Plan = Any
"""An adversary in a family's own terms: strategy indices, or a message table."""
ADVERSARIES: tuple[Adversary, ...] = ("canonical", "exhaustive", "search")
DEFAULT_BUDGET: Mapping[Adversary, int] = {"canonical": 100_000, "exhaustive": 100_000, "search": 2_000}
"""Adversaries tried per case at most, by family, unless ``--budget`` says otherwise."""

MAX_CASES = 1_000_000
"""Cases one verification may hold; wider ranges are refused before a single case is made."""

_ANY_RNG = random.Random(0)  # canonical strategies are deterministic and never draw from it


class RangesTooLarge(OmActorsError):
    """Ranges that ask for more than a run may: an army over the message limit, or too many cases."""


@attrs.frozen
class Case:
    """One army, one traitor set, one order; the commander is general 0."""

    generals: int
    m: int
    traitors: tuple[int, ...]
    order: str

    @property
    def setup(self) -> Setup:
        return Setup(self.generals, self.m, 0, DEFAULT_VALUES, "retreat")

    @property
    def theorem_allows_failure(self) -> bool:
        return theorem_allows_failure(self.generals, self.m, len(self.traitors))


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


def cases(generals: Sequence[int], ms: Sequence[int], traitor_counts: Counts) -> Iterator[Case]:
    """Every case of the ranges: traitor sets of the allowed sizes, commander included, every order."""
    for n, m in itertools.product(generals, ms):
        if not 0 <= m <= n - 2:
            continue
        for k in traitor_counts(m):
            for traitors in itertools.combinations(range(n), k):
                for order in DEFAULT_VALUES:
                    yield Case(n, m, traitors, order)


def check_ranges(generals: Sequence[int], ms: Sequence[int], traitor_counts: Counts) -> None:
    """Refuse ranges too large to run, before any case exists or any worker starts.

    ``generals`` and ``ms`` must be ascending (the CLI passes ranges), so the
    largest army -- the most generals, with the largest m they allow -- is
    found without walking them, and the message limit
    (:func:`om_actors.limits.size_problem`) is checked on it alone: every
    other army sends fewer messages.  Then the cases are counted, stopping
    as soon as there are more than :data:`MAX_CASES`.
    """
    if not generals or not ms or ms[0] > generals[-1] - 2:
        return
    largest = generals[-1]
    problem = size_problem(largest, min(ms[-1], largest - 2))
    if problem is not None:
        raise RangesTooLarge(problem)
    if _count_cases(generals, ms, traitor_counts, cap=MAX_CASES) > MAX_CASES:
        raise RangesTooLarge(
            f"these ranges hold more than {MAX_CASES:,} cases: narrow --generals, --m or --traitors"
        )


def _count_cases(generals: Sequence[int], ms: Sequence[int], traitor_counts: Counts, *, cap: int) -> int:
    """How many cases :func:`cases` would make, or a number past ``cap`` as soon as it passes it."""
    total = 0
    for m in ms:
        if m > generals[-1] - 2:
            break
        sizes = traitor_counts(m)
        smallest = max(m + 2, min(sizes[:1], default=0))  # no case has fewer generals than traitors
        for n in generals[bisect.bisect_left(generals, smallest) :]:
            for k in sizes:
                if k > n:
                    break
                total += _bounded_binomial(n, k, cap) * len(DEFAULT_VALUES)
                if total > cap:
                    return total
    return total


def _bounded_binomial(n: int, k: int, cap: int) -> int:
    """``math.comb(n, k)``, or a number past ``cap`` once it is clear the true value is."""
    k = min(k, n - k)
    value = 1
    for i in range(k):
        value = value * (n - i) // (i + 1)  # C(n, i + 1), growing while i < k <= n / 2
        if value > cap:
            return value
    return value


def check_case(case: Case, adversary: Adversary, budget: int, seed: int = 0) -> CaseReport:
    """Run ``adversary`` against ``case``; meant to run in a worker process.

    A family larger than ``budget`` is not sampled but skipped and counted
    as over budget, so ``exhaustive`` never claims more than it covered;
    ``search`` simply stops after ``budget`` adversaries.
    """
    family = _FAMILIES[adversary]
    if family.size(case) <= budget and adversary == "search":
        family = _FAMILIES["exhaustive"]  # a space smaller than the budget is searched by enumerating it
    elif family.size(case) > budget and adversary != "search":
        return CaseReport(case, 0, 0, 0, 1, None, None)
    tried = agreement_broken = validity_broken = 0
    first_violation: tuple[LockstepRun, Plan] | None = None
    mismatch = None
    plans = family.plans(case, budget, seed)
    plan = next(plans, None)
    while plan is not None:
        run = run_lockstep(case.setup, case.order, family.choices(case, plan))
        tried += 1
        agreement_broken += not run.verdict.agreement
        validity_broken += run.verdict.validity is False
        if tried == 1:
            mismatch = _actor_check(family.scenario(case, plan, run), run)
        if first_violation is None and not run.verdict.success:
            first_violation = (run, plan)
        plan = _next_plan(plans, run)
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


def _next_plan(plans: Generator[Plan, LockstepRun, None], run: LockstepRun) -> Plan | None:
    """The family's next adversary, told how the last one did (search climbs on it)."""
    try:
        return plans.send(run)
    except StopIteration:
        return None


# --- families ------------------------------------------------------------------


class _Canonical:
    """Every assignment of flip, split, constant (each value) and silent to the traitors."""

    @staticmethod
    def strategies() -> list[tuple[str, dict[str, object], Strategy]]:
        values = DEFAULT_VALUES
        table: list[tuple[str, dict[str, object], Strategy]] = [
            ("flip", {}, Flip(values)),
            ("split", {}, Split(values)),
        ]
        table.extend(("constant", {"value": v}, Constant(v)) for v in values)
        table.append(("silent", {}, Silent()))
        return table

    def size(self, case: Case) -> int:
        return _power(len(self.strategies()), len(case.traitors))

    def plans(self, case: Case, budget: int, seed: int) -> Generator[tuple[int, ...], LockstepRun, None]:
        # Not `yield from`: that would pass check_case's send() on to the product, which has none.
        for plan in itertools.product(range(len(self.strategies())), repeat=len(case.traitors)):  # noqa: UP028
            yield plan

    def choices(self, case: Case, plan: tuple[int, ...]) -> dict[int, Choice]:
        table = self.strategies()
        return {t: strategy_choice(table[i][2]) for t, i in zip(case.traitors, plan)}

    def scenario(self, case: Case, plan: tuple[int, ...], run: LockstepRun) -> dict[str, Any]:
        table = self.strategies()
        named = {t: _spec(table[i][0], table[i][1]) for t, i in zip(case.traitors, plan)}
        return _scenario(case, named, run)

    def shrink(self, case: Case, run: LockstepRun, plan: tuple[int, ...]) -> Violation:
        kept = dict(zip(case.traitors, plan))
        for traitor in list(kept):
            trial = {t: i for t, i in kept.items() if t != traitor}
            smaller = attrs.evolve(case, traitors=tuple(trial))
            trial_run = run_lockstep(case.setup, case.order, self.choices(smaller, tuple(trial.values())))
            if not trial_run.verdict.success:
                kept, run = trial, trial_run
        smaller = attrs.evolve(case, traitors=tuple(kept))
        scenario = self.scenario(smaller, tuple(kept.values()), run)
        return Violation(case, run.verdict.agreement, run.verdict.validity, scenario)


class _Scripted:
    """Adversaries as a table of what each traitor sends on each of its messages."""

    def messages(self, case: Case) -> list[tuple[Path, int]]:
        return [(p, r) for t in case.traitors for _, p, r in traitor_messages(case.setup, t)]

    def choices(self, case: Case, plan: Table) -> dict[int, Choice]:
        return {t: _table_choice(plan) for t in case.traitors}

    def scenario(self, case: Case, plan: Table, run: LockstepRun) -> dict[str, Any]:
        return _scenario(case, _scripts(case, run), run)

    def shrink(self, case: Case, run: LockstepRun, plan: Table) -> Violation:
        script = {(d.path, d.receiver): d.sent for d in run.deviations}
        traitors = list(case.traitors)
        for traitor in list(traitors):
            smaller = attrs.evolve(case, traitors=tuple(t for t in traitors if t != traitor))
            trial = {key: sent for key, sent in script.items() if key[0][-1] != traitor}
            trial_run = run_lockstep(case.setup, case.order, self.choices(smaller, trial))
            if not trial_run.verdict.success:
                traitors, script, run = list(smaller.traitors), trial, trial_run
        smaller = attrs.evolve(case, traitors=tuple(traitors))
        for key in list(script):
            trial = {k: sent for k, sent in script.items() if k != key}
            trial_run = run_lockstep(case.setup, case.order, self.choices(smaller, trial))
            if not trial_run.verdict.success:
                script, run = trial, trial_run
        return Violation(
            case, run.verdict.agreement, run.verdict.validity, self.scenario(smaller, script, run)
        )


class _Exhaustive(_Scripted):
    """Every value, or silence, on every message every traitor sends."""

    def size(self, case: Case) -> int:
        return _power(len(DEFAULT_VALUES) + 1, len(self.messages(case)))

    def plans(self, case: Case, budget: int, seed: int) -> Generator[Table, LockstepRun, None]:
        keys = self.messages(case)
        options: list[str | None] = [*DEFAULT_VALUES, None]
        for combination in itertools.product(options, repeat=len(keys)):
            yield dict(zip(keys, combination))


class _Search(_Scripted):
    """Random restarts and single-message moves, climbing towards more disagreement."""

    PATIENCE = 40
    """Moves without improvement before a restart."""

    def size(self, case: Case) -> int:
        return _power(len(DEFAULT_VALUES) + 1, len(self.messages(case)))

    def plans(self, case: Case, budget: int, seed: int) -> Generator[Table, LockstepRun, None]:
        keys = self.messages(case)
        options: list[str | None] = [*DEFAULT_VALUES, None]
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
            run = yield plan
            score = run.disagreement(case.setup, loyal, case.order)
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
    keys = _FAMILIES["exhaustive"].messages(case)
    options: list[str | None] = [*DEFAULT_VALUES, None]
    plan = {}
    for key in reversed(keys):
        index, digit = divmod(index, len(options))
        plan[key] = options[digit]
    return plan


def run_plan(case: Case, plan: Table) -> LockstepRun:
    """One scripted adversary against ``case``, in lockstep."""
    return run_lockstep(case.setup, case.order, _FAMILIES["exhaustive"].choices(case, plan))


def exhaustive_size(case: Case) -> int:
    size: int = _FAMILIES["exhaustive"].size(case)
    return size


# --- helpers -------------------------------------------------------------------


def _power(base: int, exponent: int) -> int:
    return math.prod(itertools.repeat(base, exponent))


def strategy_choice(strategy: Strategy) -> Choice:
    def choose(round: int, path: Path, receiver: int, value: str) -> str | None:
        sent = strategy.choose(round, path, receiver, value, _ANY_RNG)
        assert sent is None or isinstance(sent, str)
        return sent

    return choose


def _table_choice(plan: Table) -> Choice:
    def choose(round: int, path: Path, receiver: int, value: str) -> str | None:
        return plan.get((path, receiver), value)

    return choose


def _spec(name: str, args: dict[str, object]) -> object:
    return {"strategy": name, **args} if args else name


def _scripts(case: Case, run: LockstepRun) -> dict[int, object]:
    """Each traitor's deviations as a ``scripted`` strategy; ``loyal`` when it has none."""
    scripts: dict[int, object] = {}
    for traitor in case.traitors:
        entries = [
            {
                "path": list(d.path),
                "receiver": d.receiver,
                **({"value": d.sent} if d.sent else {"silent": True}),
            }
            for d in run.deviations
            if d.path[-1] == traitor
        ]
        scripts[traitor] = {"strategy": "scripted", "messages": entries} if entries else "loyal"
    return scripts


def _scenario(case: Case, traitors: Mapping[int, object], run: LockstepRun) -> dict[str, Any]:
    expect: dict[str, bool] = {}
    if not run.verdict.agreement:
        expect["agreement"] = False
    if run.verdict.validity is False:
        expect["validity"] = False
    names = "-".join(map(str, case.traitors)) or "none"
    return {
        "name": f"n{case.generals}-m{case.m}-traitors-{names}-{case.order}",
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

    @property
    def theorem_allows_failure(self) -> bool:
        return theorem_allows_failure(self.generals, self.m, self.traitors)

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


class Tally:
    """Case reports folded into rows as they arrive, in whatever order workers finish."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, int, int], Row] = {}
        self.violations: list[Violation] = []
        self.mismatches: list[str] = []

    def add(self, report: CaseReport) -> None:
        case = report.case
        key = (case.generals, case.m, len(case.traitors))
        self.rows[key] = self.rows.get(key, Row(*key)).add(report)
        if report.violation is not None:
            self.violations.append(report.violation)
        if report.mismatch is not None:
            self.mismatches.append(report.mismatch)

    def sorted_rows(self) -> list[Row]:
        return [self.rows[key] for key in sorted(self.rows)]

    @property
    def contradictions(self) -> list[Violation]:
        return [v for v in self.violations if not v.case.theorem_allows_failure]


async def verify(
    all_cases: Sequence[Case],
    adversary: Adversary,
    *,
    budget: int,
    jobs: int,
    tally: Tally,
    on_case: Callable[[CaseReport], None] | None = None,
) -> None:
    """Check every case, on ``jobs`` worker processes, folding reports into ``tally``.

    With one job everything runs in this process, a case at a time on a
    worker thread.  On cancellation workers are killed and the thread is
    abandoned, so Ctrl-C is prompt either way.
    """

    def fold(report: CaseReport) -> None:
        tally.add(report)
        if on_case is not None:
            on_case(report)

    if jobs <= 1:
        # A thread, not this one: check_case starts trio runs of its own for its actor checks.
        for case in all_cases:
            fold(await trio.to_thread.run_sync(check_case, case, adversary, budget, abandon_on_cancel=True))
        return
    limiter = trio.CapacityLimiter(jobs)

    async def one(case: Case) -> None:
        fold(
            await trio_parallel.run_sync(
                check_case, case, adversary, budget, kill_on_cancel=True, limiter=limiter
            )
        )

    with unwrapped():  # Ctrl-C comes out as KeyboardInterrupt, not inside a group
        async with trio.open_nursery() as nursery:
            for case in all_cases:
                nursery.start_soon(one, case)


def write_violation(violation: Violation, folder: FilePath, adversary: Adversary) -> FilePath:
    """The violation as a scenario file in ``folder``, with a header saying what it shows."""
    case = violation.case
    broken = " and ".join(
        name
        for name, held in (("agreement", violation.agreement), ("validity", violation.validity))
        if held is False
    )
    path = folder / f"{adversary}-{violation.scenario['name']}.yaml"
    header = [
        f"Found by om-actors verify --adversary {adversary}: {broken} broken with {case.generals} generals,",
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
    if case.generals <= 3 * case.m:
        return f"The theorem allows this: {case.generals} generals are not more than 3m = {3 * case.m}."
    if len(case.traitors) > case.m:
        return f"The theorem allows this: {len(case.traitors)} traitors are more than m = {case.m}."
    return "THE THEOREM FORBIDS THIS (n >= 3m + 1, at most m traitors): a bug in the simulator."
