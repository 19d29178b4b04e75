"""One general's recursive majority, drawn as a tree or as a Graphviz graph.

The tree comes from :meth:`om_actors.protocol.General.explain` on a general
rebuilt from the log, so what is drawn is exactly what the protocol computes;
this module only decides how each node reads.
"""

from __future__ import annotations

import json
from collections import Counter

import attrs
from rich.tree import Tree

from .errors import OmActorsError
from .algorithm import Path
from .oral import MajorityStep as Node
from .oral import OralGeneral as General
from .replay import Reconstruction
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
    def state(self) -> General:
        return self.reconstruction.state(self.general, self.instance)

    def sent_by_traitor(self, path: Path) -> bool:
        return path in self.state.received and path[-1] in self.reconstruction.traitors

    def rejection(self, path: Path) -> str | None:
        return self.reconstruction.rejections.get((self.instance, self.general, path))

    @property
    def crashed_in(self) -> int | None:
        """The round the general crashed in, if the log says it did: then its decision is lost."""
        return self.reconstruction.crashed.get(self.general)


def explain(view: View, *, path: Path | None = None, depth: int | None = None) -> Node:
    """The recursion tree the view's general evaluated, from ``path`` (default: the root)."""
    reconstruction, general = view.reconstruction, view.general
    scenario = reconstruction.scenario
    if not 0 <= view.instance < len(reconstruction.instances):
        raise ExplainError(f"no instance {view.instance}: this run has {len(reconstruction.instances)}")
    if not 0 <= general < scenario.generals:
        raise ExplainError(f"no general {general}: ids run from 0 to {scenario.generals - 1}")
    commander = reconstruction.instances[view.instance].commander
    if general == commander:
        raise ExplainError(
            f"general {general} is the commander: it decides its own order and evaluates no tree"
        )
    start = path if path is not None else (commander,)
    problem = _path_problem(view, commander, start)
    if problem:
        raise ExplainError(f"--path {','.join(map(str, start))}: {problem}")
    return view.state.explain(start, depth)


def _path_problem(view: View, commander: int, path: Path) -> str | None:
    scenario = view.reconstruction.scenario
    if not path or path[0] != commander:
        return f"a path starts with the commander, {commander}"
    if any(not 0 <= g < scenario.generals for g in path) or len(set(path)) != len(path):
        return "a path names distinct generals of this run"
    if view.general in path:
        return f"general {view.general} never receives a path through itself"
    if len(path) > scenario.m + 1:
        return f"paths are at most {scenario.m + 1} long with m = {scenario.m}"
    return None


def _path(path: Path) -> str:
    return json.dumps(list(path))


def _tally(votes: tuple[str, ...]) -> str:
    return ", ".join(f"{value} x{count}" for value, count in Counter(votes).most_common())


def _receipt(view: View, node: Node) -> str:
    """What the general got for the node's path, in words."""
    if node.path in view.state.received:
        liar = f" [red](from traitor {node.path[-1]})[/]" if view.sent_by_traitor(node.path) else ""
        return f'"{markup(node.held)}"{liar}'
    reason = view.rejection(node.path)
    why = f"rejected: {markup(reason)}" if reason else "missing"
    return f'default "{markup(node.held)}" [yellow]({why})[/]'


def _label(view: View, node: Node) -> str:
    text = f"[bold]{_path(node.path)}[/] {_receipt(view, node)}"
    if node.votes:
        text += f"  votes {markup(_tally(node.votes))} -> [bold]{markup(node.value)}[/]"
    elif node.hidden:
        text += f"  -> [bold]{markup(node.value)}[/] [dim]({node.hidden} nodes below not shown)[/]"
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


def text_tree(view: View, node: Node) -> Tree:
    """A rich tree; the root line says what the general decided."""
    tree = Tree(_heading(view))
    _grow(tree.add(_label(view, node)), view, node)
    return tree


def _grow(branch: Tree, view: View, node: Node) -> None:
    for child in node.children:
        _grow(branch.add(_label(view, child)), view, child)


def dot_graph(view: View, node: Node) -> str:
    """Graphviz DOT: nodes filled by the value they resolve to, edges from traitors dashed.

    A node whose own value a traitor sent also gets a red border, since the
    root has no edge to dash.
    """
    lines = [
        "digraph om {",
        "  rankdir=LR;",
        f'  label="{_dot_text(_dot_title(view))}"; labelloc=t;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    _dot_nodes(lines, view, node)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_title(view: View) -> str:
    if view.crashed_in is not None:
        crashed = f"General {view.general} crashed in round {view.crashed_in}"
        return f"{crashed}: would have decided {printable(view.state.decide())}"
    return f"{_title(view)} {printable(view.state.decide())}"


def _dot_nodes(lines: list[str], view: View, node: Node) -> None:
    values = view.reconstruction.scenario.values
    colour = PALETTE[values.index(node.value) % len(PALETTE)] if node.value in values else "#ffffff"
    received = node.path in view.state.received
    held, value = printable(node.held), printable(node.value)
    got = held if received else f"default {held}"
    label = f"{_path(node.path)}\n{got}"
    if view.sent_by_traitor(node.path):
        label += f" (from traitor {node.path[-1]})"
    if node.votes:
        label += f"\n{printable(_tally(node.votes))}\n-> {value}"
    elif node.hidden:
        label += f"\n-> {value} (+{node.hidden} hidden)"
    border = ', color="#d62728", penwidth=2' if view.sent_by_traitor(node.path) else ""
    lines.append(f'  "{_node_id(node.path)}" [label="{_dot_text(label)}", fillcolor="{colour}"{border}];')
    for child in node.children:
        style = ", style=dashed" if child.path[-1] in view.reconstruction.traitors else ""
        lines.append(
            f'  "{_node_id(node.path)}" -> "{_node_id(child.path)}" [label="{child.path[-1]}"{style}];'
        )
        _dot_nodes(lines, view, child)


def _dot_text(text: str) -> str:
    """Text for a quoted DOT string: quotes and backslashes escaped, line breaks as ``\\n``."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_id(path: Path) -> str:
    return "p" + "_".join(map(str, path))
