"""A whole run on one self-contained HTML page: verdict, counts, a space-time diagram, every decision tree.

The page is built from a log, streamed once through replay's
:class:`~om_actors.replay.Reconstruction` -- the cores it rebuilds give the
decision trees (:mod:`om_actors.explain`'s, for any algorithm) and say
which messages were refused -- while this module notes what the pictures
need: each message's sender, receiver, round and value, or, past
:data:`ONE_ARROW_PER_MESSAGE` messages, their counts per sender, receiver
and round.  ``om-actors run --html`` writes a log and reports on it, so
both commands give the same page.

Nothing is fetched: the styles, the script and the SVG pictures are all in
the file, which opens from disk in any browser.  The template is Jinja2's
(``templates/report.html.j2``), with escaping on, so nothing a log says --
a traitor's value may be any text -- can become markup.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path as FilePath
from typing import Any

import attrs

from .algorithm import Algorithm, Core, Outgoing, Step, Verdict
from .errors import CannotWrite, LogError
from .explain import (
    PALETTE,
    ExplainError,
    View,
    arrivals_of,
    derived_from_below,
    explain,
    refusal_of,
    round_refusals,
    stands_for_messages,
)
from .log import LogLine, ReadProgress, hashable, read_log
from .replay import LogPath, Reconstruction
from .scenario import Scenario

MOST_ARROWS = 4_000
"""The most arrows the diagram draws; rounds past them are left out (a hundred generals: 9,900 a round)."""

ONE_ARROW_PER_MESSAGE = 600
"""Up to this many messages the space-time diagram draws each; past it, one per sender, receiver, round."""

TREE_NODES = 15_000
"""The most tree nodes the page holds, over all generals: past it, trees are inlined only so deep."""

DEVIATIONS_SHOWN = 200
"""The most deviating messages listed; the page says how many more there were."""

OPEN_DEPTH = 2
"""Tree levels shown open when the page loads; deeper ones open with a click."""

UNKNOWN_COLOUR = "#bbbbbb"
"""The colour of a value the scenario does not list: a traitor may send anything."""


@attrs.frozen
class Arrow:
    """One arrow of the space-time diagram: a message, or all of one sender's to one receiver in a round."""

    instance: int
    round: int
    sender: int
    receiver: int
    value: str
    traitor: bool
    rejected: bool
    count: int
    tip: str


@attrs.frozen
class Deviation:
    """A traitor's message that is not what a loyal general in its place would have sent.

    ``sent`` is ``None`` when it kept silent where a loyal general speaks;
    ``loyal`` is ``None`` when a loyal general would have sent nothing.
    ``scripted`` marks one a ``scripted`` strategy's script names: for a
    counterexample ``verify`` wrote, the shrunk minimal set.
    """

    traitor: int
    round: int
    receiver: int
    where: str
    sent: str | None
    loyal: str | None
    line: int | None
    scripted: bool


@attrs.frozen
class TreeNode:
    """One step of a decision tree as the page draws it."""

    label: str
    value: str
    received: str
    from_traitor: bool
    refused: str
    detail: str
    derived: bool
    hidden: int
    on_decision_path: bool
    children: tuple[TreeNode, ...]
    notes: tuple[str, ...]

    @property
    def cells(self) -> tuple[str, ...]:
        """The detail's cells, when it is a table row (``value x | maj y | ...``: Phase King's phases)."""
        return tuple(self.detail.split(" | ")) if " | " in self.detail else ()


@attrs.frozen
class Tree:
    """One loyal general's decision tree, with what it decided."""

    general: int
    instance: int
    heading: str
    decision: str
    root: TreeNode
    nodes: int
    hidden: int


class _Collector:
    """What the pictures need from the message lines, gathered as the log streams past."""

    def __init__(self, scenario: Scenario, source: str) -> None:
        self.scenario = scenario
        self.source = source
        self.traitors = frozenset(scenario.traitors)
        self.messages: list[tuple[int, int, int, int, str, str, bool, int, str]] = []
        self.grouped: dict[tuple[int, int, int, int], Counter[str]] = defaultdict(Counter)
        self.undelivered: Counter[tuple[int, int, int, int]] = Counter()
        self.by_round: Counter[tuple[int, str]] = Counter()
        self.sent: Counter[int] = Counter()
        self.received: Counter[int] = Counter()
        self.total = 0

    def message(self, line: LogLine, rules: Algorithm) -> None:
        fields = line.fields
        sender, receiver, round = fields["sender"], fields["receiver"], fields["round"]
        generals = self.scenario.generals
        if not (0 <= sender < generals and 0 <= receiver < generals):
            raise LogError(
                self.source,
                line.number,
                f"a message from general {sender} to general {receiver}, "
                f"but this army's generals are 0 to {generals - 1}",
            )
        instance = fields.get("instance") or 0
        said = rules.value_of(line.payload)
        value = _text(said)
        delivered = fields.get("delivered", True) is not False
        self.total += 1
        self.by_round[(round, value)] += 1
        self.sent[sender] += 1
        self.received[receiver] += delivered
        if self.total <= ONE_ARROW_PER_MESSAGE:
            self.messages.append(
                (
                    instance,
                    round,
                    sender,
                    receiver,
                    value,
                    _where(line.path),
                    delivered,
                    line.number,
                    _shown(said),
                )
            )
        self.grouped[(instance, round, sender, receiver)][value] += 1
        if not delivered:
            self.undelivered[(instance, round, sender, receiver)] += 1


class _Deviations:
    """Each traitor's messages held against what a loyal general in its place would have sent.

    A loyal core per traitor, built by the algorithm and fed what reached
    the traitor, says what it owes each round (:meth:`Core.outbox`); the
    traitor's logged messages are paired with those by receiver and path,
    the way replay checks a loyal general, and what is left differs.
    """

    def __init__(self, reconstruction: Reconstruction) -> None:
        self.rules = reconstruction.rules
        scenario = reconstruction.scenario
        self.cores: dict[tuple[int, int], Core] = {
            (index, traitor): self.rules.general(setup, traitor, instance.order)
            for index, (setup, instance) in enumerate(zip(reconstruction.setups, reconstruction.instances))
            for traitor in scenario.traitors
        }
        self.scripts = _scripts(scenario)
        self.rounds = reconstruction.rounds
        self.found: list[Deviation] = []
        self._owed: dict[tuple[int, int], list[Outgoing]] = {}
        self._sent: dict[tuple[int, int], list[LogLine]] = defaultdict(list)
        self._open(1)

    def _open(self, round: int) -> None:
        for key, core in self.cores.items():
            self._owed[key] = core.outbox(round)

    def message(self, line: LogLine) -> None:
        fields = line.fields
        instance = fields.get("instance") or 0
        receiving = self.cores.get((instance, fields["receiver"]))
        if (
            receiving is not None
            and fields.get("delivered", True) is not False
            and receiving.round == fields["round"]
        ):
            receiving.receive(sender=fields["sender"], round=fields["round"], payload=line.payload)
        if (instance, fields["sender"]) in self.cores:
            self._sent[(instance, fields["sender"])].append(line)

    def round_end(self, round: int) -> None:
        for key, core in self.cores.items():
            self._compare(core, round, self._owed.pop(key, []), self._sent.pop(key, []))
        if round < self.rounds:
            self._open(round + 1)

    def _compare(self, core: Core, round: int, owed: list[Outgoing], sent: list[LogLine]) -> None:
        rules = self.rules
        along: dict[tuple[int, object], list[LogLine]] = defaultdict(list)
        for line in sent:
            along[(line.fields["receiver"], hashable(line.path))].append(line)
        unmatched = []
        for outgoing in owed:
            payload = core.compose(outgoing, outgoing.path, outgoing.value)
            path = hashable(rules.path_of(payload))
            lines = along[(outgoing.receiver, path)]
            same = next((i for i, got in enumerate(lines) if core.matches(payload, got.payload)), None)
            if same is None:
                unmatched.append((outgoing, path))
            else:
                del lines[same]
        for outgoing, path in unmatched:
            lines = along[(outgoing.receiver, path)]
            got = lines.pop(0) if lines else None
            sent_value = None if got is None else _text(rules.value_of(got.payload))
            scripted = self._scripted(core.me, round, outgoing)
            where = _where(path) if path != () else f"round {round}"
            number = None if got is None else got.number
            self.found.append(
                Deviation(
                    core.me, round, outgoing.receiver, where, sent_value, outgoing.value, number, scripted
                )
            )
        for (receiver, path), lines in along.items():
            for got in lines:
                where = _where(path) if path != () else f"round {round}"
                value = _text(rules.value_of(got.payload))
                self.found.append(Deviation(core.me, round, receiver, where, value, None, got.number, False))

    def _scripted(self, traitor: int, round: int, outgoing: Outgoing) -> bool:
        """Whether the traitor's script names this message: by round, path and receiver, or without round."""
        script = self.scripts.get(traitor, set())
        return any((when, outgoing.path, outgoing.receiver) in script for when in (round, None))


def _scripts(scenario: Scenario) -> dict[int, set[tuple[int | None, object, int]]]:
    """The messages each ``scripted`` traitor's script names, by round (or ``None``), path and receiver."""
    found: dict[int, set[tuple[int | None, object, int]]] = {}
    for traitor, spec in scenario.traitors.items():
        if spec.strategy != "scripted":
            continue
        found[traitor] = {
            (entry.get("round"), tuple(entry.get("path", ())), entry.get("receiver", -1))
            for entry in _entries(spec.args)
        }
    return found


def _entries(args: Mapping[str, object]) -> list[dict[str, Any]]:
    """A ``scripted`` strategy's entries, as its scenario spells them."""
    entries = args.get("messages", ())
    return (
        [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, (list, tuple)) else []
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _shown(value: object) -> str:
    """A value as a message's tip says it: text in quotes, anything else a traitor sent as its JSON."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _where(path: object) -> str:
    return json.dumps(list(path)) if isinstance(path, tuple) else json.dumps(path, default=str)


def build(log: LogPath, *, on_read: ReadProgress | None = None) -> dict[str, Any]:
    """Everything the template draws, from the log at ``log``, streamed once."""
    source = os.fspath(log)
    lines = read_log(log, on_read=on_read)
    reconstruction = Reconstruction(source, next(lines))
    collector = _Collector(reconstruction.scenario, source)
    deviations = _Deviations(reconstruction)
    for line in lines:
        reconstruction.feed(line)
        if line.event == "message":
            collector.message(line, reconstruction.rules)
            deviations.message(line)
        elif line.event == "round.end":
            deviations.round_end(line.fields["round"])
    reconstruction.finish()
    return _page(source, reconstruction, collector, deviations.found)


def _page(
    source: str, reconstruction: Reconstruction, collector: _Collector, deviations: list[Deviation]
) -> dict[str, Any]:
    scenario = reconstruction.scenario
    colours = _colours(scenario.values, collector)
    trees, untreed, depth = _trees(reconstruction)
    return {
        "source": os.path.basename(source),
        "scenario": scenario,
        "title": scenario.rules.titled(scenario.m),
        "rounds": reconstruction.rounds,
        "verdicts": _verdicts(reconstruction),
        "warnings": _warnings(reconstruction),
        "strategies": {g: _strategy(scenario, g) for g in scenario.traitors},
        "colours": colours,
        "chart": _chart(collector, reconstruction.rounds, colours),
        "counts": collector,
        "diagram": _diagram(collector, reconstruction, colours),
        "trees": trees,
        "tree_depth": depth,
        "untreed": untreed,
        "hidden": sum(tree.hidden for tree in trees),
        "deviations": sorted(deviations, key=lambda d: (not d.scripted, d.line or 0))[:DEVIATIONS_SHOWN],
        "deviation_count": len(deviations),
        "scripted": sum(d.scripted for d in deviations),
        "inconsistencies": [str(i) for i in reconstruction.inconsistencies[:20]],
        "inconsistency_count": len(reconstruction.inconsistencies),
        "open_depth": OPEN_DEPTH,
    }


def _verdicts(reconstruction: Reconstruction) -> list[tuple[bool, str]]:
    """Each instance's verdict in the terminal report's words, from the decisions and verdicts logged."""
    from rich.text import Text

    from .algorithm import no_loyal_decision
    from .report import verdict_line
    from .result import InstanceOutcome

    scenario, found = reconstruction.scenario, []
    for index, instance in enumerate(reconstruction.instances):
        line = reconstruction.verdicts.get(index if reconstruction.tagged else None)
        if line is None:
            continue
        decisions = {
            general: str(value)
            for (i, general), (value, _) in reconstruction.decisions.items()
            if i == index and general not in scenario.traitors
        }
        commander = reconstruction.setups[index].commander
        decided = not no_loyal_decision(scenario.loyal, commander, reconstruction.crashed)  # logs of old too
        verdict = Verdict(line.fields["agreement"], line.fields["validity"], decided=decided)
        outcome = InstanceOutcome(index, commander, instance.order, decisions, verdict)
        prefix = f"Instance {index}: " if reconstruction.tagged else ""
        found.append((verdict.success, prefix + Text.from_markup(verdict_line(outcome)).plain))
    return found


def _warnings(reconstruction: Reconstruction) -> list[str]:
    """How the run broke the paper's assumptions, in the terminal report's words: lost messages, crashes."""
    from .report import broken_assumptions

    return broken_assumptions(reconstruction.undelivered, sorted(reconstruction.crashed))


def _strategy(scenario: Scenario, general: int) -> str:
    spec = scenario.traitors[general]
    if spec.strategy == "scripted":
        count = len(_entries(spec.args))
        return f"scripted ({count} message{'' if count == 1 else 's'} set by its script)"
    args = " ".join(f"{key}={value}" for key, value in spec.args.items())
    return f"{spec.strategy} {args}".strip()


def _colours(values: Sequence[str], collector: _Collector) -> dict[str, str]:
    """A colour per value: the scenario's values first, then anything else a traitor sent, in grey."""
    colours = {value: PALETTE[i % len(PALETTE)] for i, value in enumerate(values)}
    for _, value in sorted(collector.by_round):
        colours.setdefault(value, UNKNOWN_COLOUR)
    return colours


def _chart(collector: _Collector, rounds: int, colours: dict[str, str]) -> dict[str, Any]:
    """Stacked bars, one per round, one segment per value."""
    totals = [
        sum(c for (r, _), c in collector.by_round.items() if r == round) for round in range(1, rounds + 1)
    ]
    most = max(totals, default=0) or 1
    width, bar, gap, height = 60, 40, 20, 160
    bars = []
    for index, total in enumerate(totals):
        x, y = gap + index * width, float(height)
        segments = []
        for value in colours:
            count = collector.by_round.get((index + 1, value), 0)
            if count:
                h = count / most * (height - 30)
                y -= h
                segments.append({"y": y, "h": h, "colour": colours[value], "tip": f"{value}: {count:,}"})
        bars.append({"x": x, "w": bar, "total": total, "round": index + 1, "segments": segments, "top": y})
    return {"bars": bars, "width": gap + len(totals) * width, "height": height + 20, "base": height}


def _diagram(
    collector: _Collector, reconstruction: Reconstruction, colours: dict[str, str]
) -> dict[str, Any]:
    """The space-time diagram's arrows, laid out: one line per general, rounds going down."""
    traitors, rounds = collector.traitors, reconstruction.rounds
    per_message = collector.total <= ONE_ARROW_PER_MESSAGE
    rejected = {r.line for refusals in reconstruction.rejections.values() for r in refusals}
    arrows: list[Arrow] = []
    if per_message:
        for instance, round, sender, receiver, value, where, delivered, number, shown in collector.messages:
            refused = number in rejected
            said = f"path {where}" if where != "[]" else f"from {sender}"
            state = " (rejected)" if refused else "" if delivered else " (never delivered)"
            tip = f"{said}: {shown} to {receiver}, round {round}{state}, log line {number}"
            arrows.append(
                Arrow(instance, round, sender, receiver, value, sender in traitors, refused, 1, tip)
            )
    per_round = Counter(a.round for a in arrows) if per_message else Counter(k[1] for k in collector.grouped)
    drawn = _rounds_that_fit(per_round, rounds)
    if not per_message:
        arrows = _grouped(collector, reconstruction, drawn)
    page = _layout(arrows, reconstruction.scenario.generals, drawn, colours, per_message)
    page["left_out"] = sum(count for round, count in per_round.items() if round > drawn)
    page["rounds"] = rounds
    return page


def _grouped(collector: _Collector, reconstruction: Reconstruction, rounds: int) -> list[Arrow]:
    """An arrow per sender, receiver and round up to ``rounds``, coloured by its commonest value."""
    refused: Counter[tuple[int, int, int, int]] = Counter()
    for (instance, receiver, round, sender, _), refusals in reconstruction.rejections.items():
        refused[(instance, round, sender, receiver)] += len(refusals)
    arrows = []
    for key, values in sorted(collector.grouped.items()):
        instance, round, sender, receiver = key
        if round > rounds:
            continue
        count = sum(values.values())
        said = ", ".join(f'{n:,} "{value}"' for value, n in values.most_common())
        lost = [f"{refused[key]:,} rejected"] if refused[key] else []
        lost += [f"{collector.undelivered[key]:,} never delivered"] if collector.undelivered[key] else []
        state = f" ({', '.join(lost)})" if lost else ""
        messages = f"{count:,} message{'' if count == 1 else 's'}"
        tip = f"{messages} from {sender} to {receiver}, round {round}: {said}{state}"
        value = values.most_common(1)[0][0]
        arrows.append(
            Arrow(
                instance,
                round,
                sender,
                receiver,
                value,
                sender in collector.traitors,
                refused[key] > 0,
                count,
                tip,
            )
        )
    return arrows


def _rounds_that_fit(per_round: Counter[int], rounds: int) -> int:
    """How many rounds, from the first, the diagram can draw in :data:`MOST_ARROWS` (the first, always)."""
    drawn, total = 1, per_round[1]
    while drawn < rounds and total + per_round[drawn + 1] <= MOST_ARROWS:
        drawn += 1
        total += per_round[drawn]
    return drawn


def _layout(
    arrows: list[Arrow], generals: int, rounds: int, colours: dict[str, str], per_message: bool
) -> dict[str, Any]:
    column, margin, gap, slope, top = 84, 44, 5, 22, 40
    x = [margin + g * column for g in range(generals)]
    drawn, bands, y = [], [], top
    for round in range(1, rounds + 1):
        mine = [a for a in arrows if a.round == round]
        start = y
        for index, arrow in enumerate(mine):
            y1 = start + 10 + index * gap
            drawn.append(
                {
                    "x1": x[arrow.sender],
                    "y1": y1,
                    "x2": x[arrow.receiver],
                    "y2": y1 + slope,
                    "colour": colours.get(arrow.value, UNKNOWN_COLOUR),
                    "arrow": arrow,
                    "width": 1.2 if per_message else min(1 + arrow.count**0.5 / 8, 4),
                }
            )
        y = start + 10 + len(mine) * gap + slope + 14
        bands.append({"round": round, "y": start, "h": y - start})
    return {
        "arrows": drawn,
        "bands": bands,
        "x": x,
        "width": margin * 2 + (generals - 1) * column,
        "height": y + 10,
        "per_message": per_message,
        "limit": ONE_ARROW_PER_MESSAGE,
        "top": top,
    }


def _trees(reconstruction: Reconstruction) -> tuple[list[Tree], list[str], int | None]:
    """Every loyal general's tree, as deep as :data:`TREE_NODES` allows over all of them (``None``: whole).

    A general its algorithm draws no tree for (OM's commander, which
    decides its own order) gets the algorithm's sentence saying so instead.
    """
    views, untreed = [], []
    for instance in range(len(reconstruction.instances)):
        for general in range(reconstruction.scenario.generals):
            if general in reconstruction.traitors or general in reconstruction.crashed:
                continue
            view = View(reconstruction, general, instance)
            try:
                explain(view, depth=0)
            except ExplainError as exc:
                said = str(exc)
                untreed.append(
                    f"Instance {instance}: {said}" if reconstruction.tagged else said[:1].upper() + said[1:]
                )
            else:
                views.append(view)
    depth: int | None = None
    steps = [explain(view, depth=depth) for view in views]
    while sum(map(_count, steps)) > TREE_NODES and (depth is None or depth > 1):
        depth = _deepest(steps) - 1 if depth is None else depth - 1
        steps = [explain(view, depth=depth) for view in views]
    return [_tree(view, step) for view, step in zip(views, steps)], untreed, depth


def _count(step: Step) -> int:
    return 1 + sum(_count(child) for child in step.children)


def _deepest(steps: Iterable[Step]) -> int:
    def depth(step: Step) -> int:
        return 1 + max((depth(child) for child in step.children), default=-1)

    return max((depth(step) for step in steps), default=0)


def _tree(view: View, step: Step) -> Tree:
    decision = str(view.state.decide())
    root = _node(view, step, on_path=True)
    instance = f" (instance {view.instance})" if view.reconstruction.tagged else ""
    commander = " (commander)" if view.general == view.reconstruction.setups[view.instance].commander else ""
    heading = f"General {view.general}{commander}{instance} decided"
    return Tree(view.general, view.instance, heading, decision, root, _count(step), _hidden(step))


def _hidden(step: Step) -> int:
    return step.hidden + sum(_hidden(child) for child in step.children)


def _node(view: View, step: Step, *, on_path: bool) -> TreeNode:
    """A step with what reached the general for it; ``on_path`` when its value carried the decision."""
    traitors = view.reconstruction.traitors
    arrivals = arrivals_of(view, step) if stands_for_messages(step) else []
    if len(arrivals) == 1:
        received = _text(arrivals[0].value)
    elif arrivals:
        received = ", ".join(f'"{_text(a.value)}" from {a.sender} in round {a.round}' for a in arrivals)
    elif stands_for_messages(step):
        why = refusal_of(view, step)
        nothing = "nothing" if step.path is None else f'default "{view.state.setup.default}"'
        received = f"{nothing} ({'rejected: ' + why if why else 'missing'})"
    else:
        received = ""
    children = tuple(
        _node(view, child, on_path=on_path and child.value == step.value) for child in step.children
    )
    refusals = [] if step.hidden else round_refusals(view, step)  # a cut round's refusals are cut too
    notes = tuple(
        f"refused from {r.sender}{' (traitor)' if r.sender in traitors else ''}: {r.reason}"
        for _, r in refusals
    )
    return TreeNode(
        label=_where(step.path) if step.path is not None else step.label,
        value=step.value,
        received=received,
        from_traitor=any(a.sender in traitors for a in arrivals),
        refused=refusal_of(view, step) or "" if stands_for_messages(step) and not arrivals else "",
        detail=step.detail,
        derived=derived_from_below(step),
        hidden=step.hidden,
        on_decision_path=on_path,
        children=children,
        notes=notes,
    )


def render(page: dict[str, Any]) -> str:
    """The page as HTML text, from :func:`build`'s data."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("om_actors", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(**page)


def write_html_report(
    log: LogPath,
    out: str | os.PathLike[str],
    *,
    kept: bool = True,
    named: str | None = None,
    on_read: ReadProgress | None = None,
) -> FilePath:
    """Write the HTML report of the run logged at ``log`` to ``out``; returns the path written.

    ``kept`` says the log stays for the reader to look into; ``run --html``
    without ``--log`` reports from a temporary one, and the page then says so.
    ``named`` is how the page names the log, its file's name by default:
    ``report -`` reads a copy of standard input, which the page calls so.
    ``on_read(bytes)`` is told how far through the log it has got, for a
    progress bar (:func:`~om_actors.log.read_log`): a log of millions of
    messages takes minutes.  Raises :class:`~om_actors.errors.LogError` for a log that cannot be
    read, and :class:`~om_actors.errors.CannotWrite` for a file that
    cannot be written.
    """
    page = build(log, on_read=on_read)
    if named is not None:
        page["source"] = named
    if not kept:
        page["source"] = None
    text = render(page)
    target = FilePath(out)
    try:
        target.write_text(text, encoding="utf-8", errors="backslashreplace")  # a traitor's lone surrogate
    except OSError as exc:
        raise CannotWrite(f"the report {os.fspath(target)}", exc) from None
    return target
