"""How one general reached its decision, drawn as a tree or as a Graphviz graph.

The tree is the algorithm's own: :meth:`~om_actors.algorithm.Algorithm.explain`
on the general's core rebuilt from the log, a tree of
:class:`~om_actors.algorithm.Step` -- OM(m)'s recursive majority, vote by
vote; SM(m)'s set ``V`` round by round.  This module knows no algorithm.
It only decides how each step reads, and adds what the log knows that the
core does not: for a step tied to a path, what arrived along it (its value,
and whether a traitor sent it), or why nothing usable did (missing, or
rejected and why).
"""

from __future__ import annotations

import itertools
import json

import attrs
from rich.tree import Tree

from .algorithm import Core, Path, Step
from .errors import OmActorsError
from .replay import Arrival, LogPath, Reconstruction, reconstruct
from .terminal import markup, printable

PALETTE = ("#8dd3c7", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd", "#ffed6f")
"""Fill colours for values in DOT, by their position in ``values``."""


class ExplainError(OmActorsError):
    """A general, instance or path that the logged run has no tree for."""


@attrs.frozen
class View:
    """One general in one consensus instance of a reconstructed run."""

    reconstruction: Reconstruction
    general: int
    instance: int = 0

    @property
    def state(self) -> Core:
        """The general's core, fed with everything the log says reached it."""
        return self.reconstruction.state(self.general, self.instance)

    def arrival(self, path: Path) -> Arrival | None:
        """The message along ``path`` that the general accepted, if the log has one."""
        return self.reconstruction.arrivals.get((self.instance, self.general, path))

    def sent_by_traitor(self, path: Path) -> bool:
        arrival = self.arrival(path)
        return arrival is not None and arrival.sender in self.reconstruction.traitors

    def rejection(self, path: Path) -> str | None:
        return self.reconstruction.rejections.get((self.instance, self.general, path))

    @property
    def crashed_in(self) -> int | None:
        """The round the general crashed in, if the log says it did: then its decision is lost."""
        return self.reconstruction.crashed.get(self.general)


def open_view(log: LogPath, general: int, instance: int = 0) -> View:
    """A view of ``general`` in ``log``, keeping only what arrived at that one general."""
    return View(reconstruct(log, watching={(instance, general)}), general, instance)


def explain(view: View, *, path: Path | None = None, depth: int | None = None) -> Step:
    """The steps the view's general took to its decision, from ``path`` (default: all of them)."""
    reconstruction, general = view.reconstruction, view.general
    scenario = reconstruction.scenario
    if not 0 <= view.instance < len(reconstruction.instances):
        raise ExplainError(f"no instance {view.instance}: this run has {len(reconstruction.instances)}")
    if not 0 <= general < scenario.generals:
        raise ExplainError(f"no general {general}: ids run from 0 to {scenario.generals - 1}")
    try:
        return reconstruction.rules.explain(view.state, path=path, depth=depth)
    except ValueError as exc:
        where = "" if path is None else f"--path {','.join(map(str, path))}: "
        raise ExplainError(f"{where}{exc}") from None


def _path(path: Path) -> str:
    return json.dumps(list(path))


def _receipt(view: View, path: Path) -> str:
    """What the general got along ``path``, in words and rich markup."""
    arrival = view.arrival(path)
    if arrival is not None:
        liar = f" [red](from traitor {arrival.sender})[/]" if view.sent_by_traitor(path) else ""
        return f'"{markup(str(arrival.value))}"{liar}'
    reason = view.rejection(path)
    why = f"rejected: {markup(reason)}" if reason else "missing"
    return f'default "{markup(view.state.setup.default)}" [yellow]({why})[/]'


def _derived(step: Step) -> bool:
    """Whether the step's value comes from below it, so is worth an arrow; a path's leaf is what arrived."""
    return bool(step.children or step.hidden or step.path is None)


def _label(view: View, step: Step) -> str:
    if step.path is None:
        text = f"[bold]{markup(step.label)}[/]"
    else:
        text = f"[bold]{_path(step.path)}[/] {_receipt(view, step.path)}"
    if step.detail:
        text += f"  {markup(step.detail)}"
    if _derived(step):
        text += f"{'' if step.detail else ' '} -> [bold]{markup(step.value)}[/]"
    if step.hidden:
        text += f" [dim]({step.hidden:,} nodes below not shown)[/]"
    return text


def _title(view: View) -> str:
    instance = f" (instance {view.instance})" if view.reconstruction.tagged else ""
    return f"General {view.general}{instance} decided"


def _heading(view: View) -> str:
    """What the general decided, or for one that crashed, what it would have from what it had."""
    decision = f'[bold]"{markup(view.state.decide())}"[/]'
    if view.crashed_in is not None:
        instance = f" (instance {view.instance})" if view.reconstruction.tagged else ""
        return (
            f"General {view.general}{instance} crashed in round {view.crashed_in}, so its decision is lost; "
            f"from what it had received it would have decided {decision}"
        )
    role = " (a traitor: its decision does not count)" if view.general in view.reconstruction.traitors else ""
    return f"{_title(view)} {decision}{role}"


def text_tree(view: View, step: Step) -> Tree:
    """A rich tree; the root line says what the general decided."""
    tree = Tree(_heading(view))
    _grow(tree.add(_label(view, step)), view, step)
    return tree


def _grow(branch: Tree, view: View, step: Step) -> None:
    for child in step.children:
        _grow(branch.add(_label(view, child)), view, child)


def dot_graph(view: View, step: Step) -> str:
    """Graphviz DOT: steps filled by the value they come to, edges from traitors dashed.

    A step whose own message a traitor sent also gets a red border, since
    the root has no edge to dash.
    """
    lines = [
        "digraph om {",
        "  rankdir=LR;",
        f'  label="{_dot_text(_dot_title(view))}"; labelloc=t;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    counter = itertools.count()
    _dot_nodes(lines, view, step, _node_id(step, counter), counter)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_title(view: View) -> str:
    if view.crashed_in is not None:
        crashed = f"General {view.general} crashed in round {view.crashed_in}"
        return f"{crashed}: would have decided {printable(view.state.decide())}"
    return f"{_title(view)} {printable(view.state.decide())}"


def _dot_label(view: View, step: Step) -> str:
    if step.path is None:
        label = printable(step.label)
    else:
        arrival = view.arrival(step.path)
        got = printable(str(arrival.value)) if arrival else f"default {printable(view.state.setup.default)}"
        label = f"{_path(step.path)}\n{got}"
        if arrival is not None and view.sent_by_traitor(step.path):
            label += f" (from traitor {arrival.sender})"
    if step.detail:
        label += f"\n{printable(step.detail)}"
    if _derived(step):
        label += f"\n-> {printable(step.value)}"
    if step.hidden:
        label += f" (+{step.hidden} hidden)"
    return label


def _dot_nodes(lines: list[str], view: View, step: Step, me: str, counter: itertools.count[int]) -> None:
    values = view.reconstruction.scenario.values
    colour = PALETTE[values.index(step.value) % len(PALETTE)] if step.value in values else "#ffffff"
    border = ', color="#d62728", penwidth=2' if step.path and view.sent_by_traitor(step.path) else ""
    lines.append(f'  "{me}" [label="{_dot_text(_dot_label(view, step))}", fillcolor="{colour}"{border}];')
    for child in step.children:
        child_id = _node_id(child, counter)
        if child.path:
            sender = child.path[-1]
            style = ", style=dashed" if sender in view.reconstruction.traitors else ""
            lines.append(f'  "{me}" -> "{child_id}" [label="{sender}"{style}];')
        else:
            lines.append(f'  "{me}" -> "{child_id}";')
        _dot_nodes(lines, view, child, child_id, counter)


def _dot_text(text: str) -> str:
    """Text for a quoted DOT string: quotes and backslashes escaped, line breaks as ``\\n``."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_id(step: Step, counter: itertools.count[int]) -> str:
    """A step's DOT id: from its path, which no other step of the tree has, else a number."""
    if step.path is not None:
        return "p" + "_".join(map(str, step.path))
    return f"s{next(counter)}"
