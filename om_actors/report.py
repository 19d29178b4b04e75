"""The human-readable report of a run, in the seed's style: a line per general, then the verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from .result import InstanceOutcome, Result, describe_generals
from .scenario import Scenario


def report(out: Console, result: Result) -> None:
    """Print ``result`` for a person: who lied, who decided what, and whether OM(m) held."""
    scenario = result.scenario
    several = len(result.instances) > 1
    first = result.instances[0]
    army = f"{scenario.generals} generals, m = {scenario.m} ({result.rounds} rounds)"
    heading = f"[bold]{escape(scenario.name)}[/]: {army}"
    if several:
        out.print(f"{heading}, {len(result.instances)} instances at once")
    else:
        out.print(f'{heading}, commander {first.commander} would order "{escape(first.order)}"')
    traitors = ", ".join(f"{g} ({_strategy_label(scenario, g)})" for g in scenario.traitors) or "none"
    out.print(f"Traitors: {escape(traitors)}")
    for outcome in result.instances:
        if several:
            order = f'commander {outcome.commander} would order "{escape(outcome.order)}"'
            out.print(f"Instance {outcome.index}: {order}")
        _decisions(out, scenario, outcome, indent="  " if several else "")
        if several:
            out.print("  " + verdict_line(outcome))
    by_round = ", ".join(f"{count:,}" for count in result.messages_per_round)
    out.print(f"Messages: {result.messages:,} sent ({by_round} by round), {result.rejected:,} rejected")
    for round, late in result.timed_out.items():
        out.print(f"Round {round} timed out waiting for {describe_generals(list(late))}")
    out.print(_overall_line(result) if several else verdict_line(first))
    if scenario.expect is not None:
        unmet = result.unmet_expectations()
        if unmet:
            out.print(f"[bold red]UNEXPECTED:[/] {escape('; '.join(unmet))}")
        else:
            out.print("As this scenario expects.")


def _decisions(out: Console, scenario: Scenario, outcome: InstanceOutcome, *, indent: str) -> None:
    for general in range(scenario.generals):
        role = " (commander)" if general == outcome.commander else ""
        if general in scenario.traitors:
            out.print(f"{indent}General {general}{role} is a traitor")
        else:
            out.print(f"{indent}General {general}{role} decided {escape(outcome.decisions[general])}")


def _strategy_label(scenario: Scenario, general: int) -> str:
    spec = scenario.traitors[general]
    args = " ".join(f"{key}={value}" for key, value in spec.args.items())
    return f"{spec.strategy} {args}".strip()


def verdict_line(outcome: InstanceOutcome) -> str:
    """SUCCESS, or FAILURE and which condition broke, naming the generals involved."""
    lieutenants = {g: v for g, v in outcome.decisions.items() if g != outcome.commander}
    if outcome.success:
        decision = next(iter(set(outcome.decisions.values())), "")
        return f'[bold green]SUCCESS:[/] all loyal generals agreed on "{escape(decision)}"'
    if not outcome.agreement:
        camps: dict[str, list[int]] = {}
        for general, value in lieutenants.items():
            camps.setdefault(value, []).append(general)
        split = "; ".join(f'{describe_generals(g)} decided "{value}"' for value, g in sorted(camps.items()))
        return f"[bold red]FAILURE:[/] agreement (IC1) broken: loyal generals disagree: {escape(split)}"
    disobeyed = {g: v for g, v in lieutenants.items() if v != outcome.order}
    which = ", ".join(f'{describe_generals([g])} decided "{v}"' for g, v in disobeyed.items())
    ordered = f'the loyal commander ordered "{escape(outcome.order)}"'
    return f"[bold red]FAILURE:[/] validity (IC2) broken: {ordered} but {escape(which)}"


def _overall_line(result: Result) -> str:
    failed = [outcome.index for outcome in result.instances if not outcome.success]
    if not failed:
        return (
            f"[bold green]SUCCESS:[/] all {len(result.instances)} instances reached interactive consistency"
        )
    which = ", ".join(map(str, failed))
    return f"[bold red]FAILURE:[/] instance(s) {which} broke agreement or validity"
