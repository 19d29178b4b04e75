"""The human-readable report of a run, in the seed's style: a line per general, then the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .registry import REGISTRY
from .result import describe_generals
from .terminal import markup

if TYPE_CHECKING:  # verify imports trio_parallel: only the verify command needs it
    from rich.console import Console
    from rich.table import Table

    from .result import InstanceOutcome, Result
    from .scenario import Scenario
    from .verify import Row, Tally


def report(out: Console, result: Result) -> None:
    """Print ``result`` for a person: the algorithm, who lied, who decided what, and whether it held."""
    scenario = result.scenario
    several = len(result.instances) > 1
    first = result.instances[0]
    army = f"{markup(scenario.title)} on {scenario.generals} generals ({result.rounds} rounds)"
    heading = f"[bold]{markup(scenario.name)}[/]: {army}"
    if several:
        out.print(f"{heading}, {len(result.instances)} instances at once")
    else:
        out.print(f'{heading}, commander {first.commander} would order "{markup(first.order)}"')
    traitors = ", ".join(f"{g} ({_strategy_label(scenario, g)})" for g in scenario.traitors) or "none"
    out.print(f"Traitors: {markup(traitors)}")
    for outcome in result.instances:
        if several:
            order = f'commander {outcome.commander} would order "{markup(outcome.order)}"'
            out.print(f"Instance {outcome.index}: {order}")
        _decisions(out, result, outcome, indent="  " if several else "")
        if several:
            out.print("  " + verdict_line(outcome))
    by_round = ", ".join(f"{count:,}" for count in result.messages_per_round)
    counted = "".join(
        f", {count:,} {markup(name.replace('_', ' '))}" for name, count in sorted(result.stats.items())
    )
    out.print(
        f"Messages: {result.messages:,} sent ({by_round} by round), {result.rejected:,} rejected{counted}"
    )
    for round, late in result.timed_out.items():
        out.print(f"Round {round} timed out waiting for {describe_generals(list(late))}")
    for warning in assumption_warnings(result):
        out.print(f"[bold yellow]WARNING:[/] {markup(warning)}")
    out.print(_overall_line(result) if several else verdict_line(first))
    if scenario.expect is not None:
        unmet = result.unmet_expectations()
        if unmet:
            out.print(f"[bold red]UNEXPECTED:[/] {markup('; '.join(unmet))}")
        else:
            out.print("As this scenario expects.")


def assumption_warnings(result: Result) -> list[str]:
    """How the run broke the paper's assumptions, one sentence each; empty when it kept them.

    Only a networked run can: a message lost on the way, or a general's
    process dying.  The algorithms' guarantees assume neither happens, so the
    verdict then describes what this run did, not what the theorem says.
    """
    return broken_assumptions(result.undelivered, list(result.crashed))


def broken_assumptions(undelivered: int, crashed: list[int]) -> list[str]:
    """:func:`assumption_warnings` from the counts alone, as a log records them, for the HTML report too."""
    found = []
    if undelivered:
        count = "1 message" if undelivered == 1 else f"{undelivered:,} messages"
        verb = "was" if undelivered == 1 else "were"
        found.append(
            f"{count} from loyal generals {verb} sent but never delivered: "
            "the synchrony assumption (A3) broke, and each counted as the default"
        )
    if crashed:
        what = "what it owed" if len(crashed) == 1 else "what they owed"
        lost = "its decision is lost" if len(crashed) == 1 else "their decisions are lost"
        found.append(f"{describe_generals(crashed)} crashed: {what} from then on was never sent, and {lost}")
    if found:
        found.append("the theorem's assumptions did not hold, so this verdict is not the theorem's")
    return found


def _decisions(out: Console, result: Result, outcome: InstanceOutcome, *, indent: str) -> None:
    scenario = result.scenario
    for general in range(scenario.generals):
        role = " (commander)" if general == outcome.commander else ""
        if general in result.crashed:
            out.print(f"{indent}General {general}{role} crashed: its decision is lost")
        elif general in scenario.traitors:
            out.print(f"{indent}General {general}{role} is a traitor")
        elif general not in outcome.decisions:
            out.print(f"{indent}General {general}{role} decided nothing")
        else:
            out.print(f"{indent}General {general}{role} decided {markup(outcome.decisions[general])}")


def _strategy_label(scenario: Scenario, general: int) -> str:
    spec = scenario.traitors[general]
    args = " ".join(f"{key}={value}" for key, value in spec.args.items())
    return f"{spec.strategy} {args}".strip()


def verdict_line(outcome: InstanceOutcome) -> str:
    """SUCCESS, or FAILURE and which condition broke, naming the generals involved.

    NO VERDICT for an instance whose loyal lieutenants all crashed
    (:attr:`~om_actors.algorithm.Verdict.decided`): nobody decided.
    """
    if not outcome.verdict.decided:
        return "[bold red]NO VERDICT:[/] every loyal lieutenant crashed, so no loyal general decided"
    lieutenants = {g: v for g, v in outcome.decisions.items() if g != outcome.commander}
    if outcome.success:
        decision = next(iter(set(outcome.decisions.values())), "")
        return f'[bold green]SUCCESS:[/] all loyal generals agreed on "{markup(decision)}"'
    if not outcome.agreement:
        camps: dict[str, list[int]] = {}
        for general, value in lieutenants.items():
            camps.setdefault(value, []).append(general)
        split = "; ".join(f'{describe_generals(g)} decided "{value}"' for value, g in sorted(camps.items()))
        return f"[bold red]FAILURE:[/] agreement (IC1) broken: loyal generals disagree: {markup(split)}"
    disobeyed = {g: v for g, v in lieutenants.items() if v != outcome.order}
    which = ", ".join(f'{describe_generals([g])} decided "{v}"' for g, v in disobeyed.items())
    ordered = f'the loyal commander ordered "{markup(outcome.order)}"'
    return f"[bold red]FAILURE:[/] validity (IC2) broken: {ordered} but {markup(which)}"


def _overall_line(result: Result) -> str:
    undecided = result.undecided()
    if undecided:
        which = ", ".join(map(str, undecided))
        return f"[bold red]NO VERDICT:[/] in instance(s) {which} every loyal lieutenant crashed"
    failed = [outcome.index for outcome in result.instances if not outcome.success]
    if not failed:
        return (
            f"[bold green]SUCCESS:[/] all {len(result.instances)} instances reached interactive consistency"
        )
    which = ", ".join(map(str, failed))
    return f"[bold red]FAILURE:[/] instance(s) {which} broke agreement or validity"


def verify_table(tally: Tally) -> Table:
    """One row per army and traitor count: what was covered, what broke, what the theorem says."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("n", "m", "traitors", "cases", "adversaries", "IC1 broken", "IC2 broken", "skipped"):
        table.add_column(header, justify="right")
    table.add_column("theorem")
    table.add_column("result")
    for row in tally.sorted_rows():
        theorem = "may fail" if row.theorem_allows_failure else "must hold"
        if row.contradicts_theorem:
            outcome = "[bold red]CONTRADICTION[/]"
        elif row.violating_cases:
            outcome = f"[yellow]{row.violating_cases} fail, allowed[/]"
        elif row.over_budget == row.cases:
            outcome = "[dim]not checked[/]"
        else:
            outcome = "[green]none fail[/]"
        numbers = (row.cases, row.adversaries, row.agreement_broken, row.validity_broken, row.over_budget)
        table.add_row(
            str(row.generals), str(row.m), str(row.traitors), *(f"{x:,}" for x in numbers), theorem, outcome
        )
    return table


@attrs.frozen
class VerifySummary:
    """Everything ``om-actors verify`` reports at the end, for the table or for JSON.

    ``interrupted`` says the run was stopped (Ctrl-C) before every planned
    case was checked: the counts are then of the cases done, and a script
    reading the JSON must not take them for the whole family.
    """

    tally: Tally
    adversary: str
    budget: int
    jobs: int
    seconds: float
    files: list[Path]
    planned: int
    interrupted: bool = False

    @property
    def done(self) -> int:
        return sum(row.cases for row in self.tally.rows.values())

    @property
    def adversaries(self) -> int:
        return sum(row.adversaries for row in self.tally.rows.values())

    @property
    def over_budget(self) -> int:
        return sum(row.over_budget for row in self.tally.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.tally.algorithm,
            "adversary": self.adversary,
            "budget": self.budget,
            "jobs": self.jobs,
            "cases": self.done,
            "cases_planned": self.planned,
            "interrupted": self.interrupted,
            "adversaries": self.adversaries,
            "seconds": round(self.seconds, 3),
            "cases_per_second": round(self.done / self.seconds, 1) if self.seconds else None,
            "rows": [_row_dict(row) for row in self.tally.sorted_rows()],
            "violations": [str(path) for path in self.files],
            "contradictions": len(self.tally.contradictions),
            "mismatches": self.tally.mismatches,
        }


def _row_dict(row: Row) -> dict[str, Any]:
    return {
        **attrs.asdict(row),
        "theorem_allows_failure": row.theorem_allows_failure,
        "contradicts_theorem": row.contradicts_theorem,
    }


def _title(algorithm: str) -> str:
    """The algorithm's title, ``SM(m)``; the bare name if no algorithm of that name is registered."""
    found = REGISTRY.get(algorithm)
    return found.title if found is not None else algorithm


def pace(cases: int, seconds: float) -> str:
    """How fast cases went: per second, or for a search slower than one a second, seconds a case."""
    if not cases or not seconds:
        return "0.0 cases/s"
    rate = cases / seconds
    return f"{rate:,.1f} cases/s" if rate >= 1 else f"{seconds / cases:,.1f} s a case"


def print_verify(out: Console, summary: VerifySummary) -> None:
    """The table, then the totals, where violations went, and what was not checked."""
    out.print(verify_table(summary.tally))
    out.print(
        f"{summary.done:,} cases, {summary.adversaries:,} adversaries ({summary.adversary}, "
        f"{markup(_title(summary.tally.algorithm))}) in "
        f"{summary.seconds:.2f} s: {pace(summary.done, summary.seconds)} on {summary.jobs} job(s)"
    )
    if summary.over_budget:
        out.print(
            f"[yellow]{summary.over_budget} case(s) have more than {summary.budget:,} adversaries and were "
            "skipped, not sampled:[/] raise --budget, or use --adversary search"
        )
    if summary.files:
        shown = ", ".join(str(p) for p in summary.files[:3])
        more = f" and {len(summary.files) - 3} more" if len(summary.files) > 3 else ""
        out.print(f"{len(summary.files)} violation(s) written as scenarios: {markup(shown)}{more}")
    for mismatch in summary.tally.mismatches:
        out.print(f"[bold red]SIMULATOR BUG:[/] {markup(mismatch)}")
    if summary.tally.contradictions:
        out.print(f"[bold red]{len(summary.tally.contradictions)} violation(s) contradict the theorem[/]")
    elif summary.tally.violations:
        out.print("Every violation found is one the theorem allows.")
    elif summary.interrupted:
        out.print("No violation found in the cases checked.")  # not a verdict on the ones never run
    else:
        out.print("No violation found.")
