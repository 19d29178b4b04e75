"""One general's recursive majority, drawn as a tree or as a Graphviz graph.

The tree comes from :meth:`om_actors.protocol.General.explain` on a general
rebuilt from the log, so what is drawn is exactly what the protocol computes;
this module only decides how each node reads.
"""

from __future__ import annotations

import json
from collections import Counter

from rich.markup import escape
from rich.tree import Tree

from .errors import OmActorsError
from .protocol import Node, Path
from .replay import Reconstruction

PALETTE = ("#8dd3c7", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd", "#ffed6f")
"""Fill colours for values in DOT, by their position in ``values``."""


class ExplainError(OmActorsError):
    """A general or path that the logged run has no tree for."""


def explain(
    reconstruction: Reconstruction, general: int, *, path: Path | None = None, depth: int | None = None
) -> Node:
    """The recursion tree ``general`` evaluated, from ``path`` (default: the root)."""
    scenario = reconstruction.scenario
    if not 0 <= general < scenario.generals:
        raise ExplainError(f"no general {general}: ids run from 0 to {scenario.generals - 1}")
    if general == scenario.commander:
        raise ExplainError(
            f"general {general} is the commander: it decides its own order and evaluates no tree"
        )
    start = path if path is not None else (scenario.commander,)
    problem = _path_problem(reconstruction, general, start)
    if problem:
        raise ExplainError(f"--path {','.join(map(str, start))}: {problem}")
    return reconstruction.states[general].explain(start, depth)


def _path_problem(reconstruction: Reconstruction, general: int, path: Path) -> str | None:
    scenario = reconstruction.scenario
    if not path or path[0] != scenario.commander:
        return f"a path starts with the commander, {scenario.commander}"
    if any(not 0 <= g < scenario.generals for g in path) or len(set(path)) != len(path):
        return "a path names distinct generals of this run"
    if general in path:
        return f"general {general} never receives a path through itself"
    if len(path) > scenario.setup.rounds:
        return f"paths are at most {scenario.setup.rounds} long with m = {scenario.m}"
    return None


def _path(path: Path) -> str:
    return json.dumps(list(path))


def _tally(votes: tuple[str, ...]) -> str:
    return ", ".join(f"{value} x{count}" for value, count in Counter(votes).most_common())


def _receipt(reconstruction: Reconstruction, general: int, node: Node) -> str:
    """What ``general`` got for the node's path, in words."""
    default = reconstruction.scenario.default
    state = reconstruction.states[general]
    if node.path in state.received:
        sender = node.path[-1]
        liar = f" [red](from traitor {sender})[/]" if sender in reconstruction.traitors else ""
        return f'"{escape(node.held)}"{liar}'
    reason = reconstruction.rejections.get((general, node.path))
    why = f"rejected: {escape(reason)}" if reason else "missing"
    return f'default "{escape(default)}" [yellow]({why})[/]'


def _label(reconstruction: Reconstruction, general: int, node: Node) -> str:
    text = f"[bold]{_path(node.path)}[/] {_receipt(reconstruction, general, node)}"
    if node.votes:
        text += f"  votes {escape(_tally(node.votes))} -> [bold]{escape(node.value)}[/]"
    elif node.hidden:
        text += f"  -> [bold]{escape(node.value)}[/] [dim]({node.hidden} nodes below not shown)[/]"
    return text


def text_tree(reconstruction: Reconstruction, general: int, node: Node) -> Tree:
    """A rich tree; the root line says what the general decided."""
    decision = reconstruction.states[general].decide()
    role = " (a traitor: its decision does not count)" if general in reconstruction.traitors else ""
    tree = Tree(f'General {general} decided [bold]"{escape(decision)}"[/]{role}')
    _grow(tree.add(_label(reconstruction, general, node)), reconstruction, general, node)
    return tree


def _grow(branch: Tree, reconstruction: Reconstruction, general: int, node: Node) -> None:
    for child in node.children:
        _grow(branch.add(_label(reconstruction, general, child)), reconstruction, general, child)


def dot_graph(reconstruction: Reconstruction, general: int, node: Node) -> str:
    """Graphviz DOT: nodes filled by the value they resolve to, edges from traitors dashed.

    A node whose own value a traitor sent also gets a red border, since the
    root has no edge to dash.
    """
    decision = reconstruction.states[general].decide()
    lines = [
        "digraph om {",
        "  rankdir=LR;",
        f'  label="{_dot_text(f"General {general} decided {decision}")}"; labelloc=t;',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    _dot_nodes(lines, reconstruction, general, node)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_nodes(lines: list[str], reconstruction: Reconstruction, general: int, node: Node) -> None:
    values = reconstruction.scenario.values
    colour = PALETTE[values.index(node.value) % len(PALETTE)] if node.value in values else "#ffffff"
    received = node.path in reconstruction.states[general].received
    from_traitor = received and node.path[-1] in reconstruction.traitors
    got = node.held if received else f"default {node.held}"
    label = f"{_path(node.path)}\n{got}" + (f" (from traitor {node.path[-1]})" if from_traitor else "")
    if node.votes:
        label += f"\n{_tally(node.votes)}\n-> {node.value}"
    elif node.hidden:
        label += f"\n-> {node.value} (+{node.hidden} hidden)"
    border = ', color="#d62728", penwidth=2' if from_traitor else ""
    lines.append(f'  "{_node_id(node.path)}" [label="{_dot_text(label)}", fillcolor="{colour}"{border}];')
    for child in node.children:
        style = ", style=dashed" if child.path[-1] in reconstruction.traitors else ""
        lines.append(
            f'  "{_node_id(node.path)}" -> "{_node_id(child.path)}" [label="{child.path[-1]}"{style}];'
        )
        _dot_nodes(lines, reconstruction, general, child)


def _dot_text(text: str) -> str:
    """Text for a quoted DOT string: quotes and backslashes escaped, line breaks as ``\\n``."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _node_id(path: Path) -> str:
    return "p" + "_".join(map(str, path))
