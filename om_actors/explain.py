"""How one general reached its decision, drawn as a tree or as a Graphviz graph.

The tree is the algorithm's own: :meth:`~om_actors.algorithm.Algorithm.explain`
on the general's core rebuilt from the log, a tree of
:class:`~om_actors.algorithm.Step` -- OM(m)'s recursive majority, vote by
vote; SM(m)'s set ``V`` round by round.  This module knows no algorithm.
It only decides how each step reads, and adds what the log knows that the
core does not: for a step tied to messages -- by its path, or, for an
algorithm whose messages carry none, by its round and sender -- what
arrived (its value, and whether a traitor sent it), or why nothing usable
did (missing, or rejected and why).  Where several messages came along one
path -- every message of an algorithm without paths comes along ``()`` --
it shows them all, each with its round and sender, rather than one of them.

A step with a round and neither path nor sender stands for the whole round
(SM(m)'s "round 4"): below it comes every message the general refused in
that round and why, since a refused message leaves no trace in the core
and the algorithm's own tree cannot show it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import attrs
from rich.tree import Tree

from .algorithm import Core, Path, Step
from .errors import OmActorsError
from .log import ReadProgress
from .replay import Arrival, LogPath, Reconstruction, Refusal, reconstruct
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

    def received(self, path: Path) -> list[Arrival | Refusal]:
        """Every message along ``path`` that reached the general, accepted or refused, in log order."""
        return self.reconstruction.along(self.general, path, self.instance)

    def arrivals(self, path: Path) -> list[Arrival]:
        """The messages along ``path`` that the general accepted: one at most for OM, bar forgeries."""
        return [a for a in self.received(path) if isinstance(a, Arrival)]

    def arrival(self, path: Path) -> Arrival | None:
        """The one message along ``path`` the general accepted; ``None`` when it accepted none, or several."""
        arrivals = self.arrivals(path)
        return arrivals[0] if len(arrivals) == 1 else None

    def sent_by_traitor(self, path: Path) -> bool:
        """Whether a traitor sent a message along ``path`` that the general accepted."""
        return any(a.sender in self.reconstruction.traitors for a in self.arrivals(path))

    def rejection(self, path: Path) -> str | None:
        """Why the general refused what came along ``path``, when it accepted nothing there."""
        if self.arrivals(path):
            return None
        reasons = dict.fromkeys(r.reason for r in self.received(path) if isinstance(r, Refusal))
        return "; ".join(reasons) or None

    def messages(self, step: Step) -> list[Arrival | Refusal] | None:
        """What reached the general that ``step`` is tied to; ``None`` for a step tied to no message.

        A step with a ``path`` stands for the messages along it (of its
        ``round`` and from its ``sender`` only, if it names them too); one
        without stands for the messages of its ``round`` from its ``sender``.
        """
        if step.path is not None:
            found = self.received(step.path)
            return [m for m in found if step.round in (None, m.round) and step.sender in (None, m.sender)]
        if step.round is not None and step.sender is not None:
            return self.reconstruction.from_sender(self.general, step.round, step.sender, self.instance)
        return None

    def refused(self, round: int) -> list[tuple[object, Refusal]]:
        """Every message of ``round`` the general refused, with the path it claimed, in log order."""
        reconstruction, me = self.reconstruction, (self.instance, self.general, round)
        found = [
            (key[4], refusal)
            for key, refusals in reconstruction.rejections.items()
            if key[:3] == me
            for refusal in refusals
        ]
        return sorted(found, key=lambda item: item[1].line)

    @property
    def crashed_in(self) -> int | None:
        """The round the general crashed in, if the log says it did: then its decision is lost."""
        return self.reconstruction.crashed.get(self.general)


def open_view(log: LogPath, general: int, instance: int = 0, *, on_read: ReadProgress | None = None) -> View:
    """A view of ``general`` in ``log``, keeping only what arrived at that one general.

    ``on_read`` is :func:`~om_actors.log.read_log`'s, for a progress bar.
    """
    return View(reconstruct(log, watching={(instance, general)}, on_read=on_read), general, instance)


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


def stands_for_messages(step: Step) -> bool:
    """Whether a step stands for messages: by its path, or by its round and sender."""
    return step.path is not None or (step.round is not None and step.sender is not None)


def round_refusals(view: View, step: Step) -> list[tuple[object, Refusal]]:
    """What the general refused in the round a step stands for as a whole; nothing for any other step."""
    if step.round is None or step.sender is not None or step.path is not None:
        return []
    return view.refused(step.round)


def _refused_count(count: int) -> str:
    """How many messages a round refused, said on the round's own line: the list below may be cut by depth."""
    return f"refused {count} message{'' if count == 1 else 's'}"


def _refusal_where(path: object, refusal: Refusal) -> str:
    """Along which path a refused message came (if the algorithm has paths), and its line in the log."""
    along = f" along {_path(path)}" if isinstance(path, tuple) and path else ""
    return f"{along} (log line {refusal.line})"


def arrivals_of(view: View, step: Step) -> list[Arrival]:
    """The accepted messages a step tied to messages stands for.

    All that it is tied to; but a leaf's value is what arrived, so when
    several came, a leaf stands for the one with its value, if only one has
    it (SM's set V can take two values along one chain).
    """
    arrivals = [m for m in view.messages(step) or () if isinstance(m, Arrival)]
    if len(arrivals) > 1 and not derived_from_below(step):
        same = [arrival for arrival in arrivals if arrival.value == step.value]
        if len(same) == 1:
            return same
    return arrivals


def refusal_of(view: View, step: Step) -> str | None:
    """Why the general refused what the step is tied to, when it accepted none of it."""
    messages = view.messages(step) or []
    if any(isinstance(m, Arrival) for m in messages):
        return None
    return "; ".join(dict.fromkeys(m.reason for m in messages if isinstance(m, Refusal))) or None


def _receipt(view: View, step: Step) -> str:
    """What the general got of what the step is tied to, in words and rich markup."""
    arrivals = arrivals_of(view, step)
    traitors = view.reconstruction.traitors
    if len(arrivals) == 1:
        arrival = arrivals[0]
        liar = f" [red](from traitor {arrival.sender})[/]" if arrival.sender in traitors else ""
        return f'"{markup(str(arrival.value))}"{liar}'
    if arrivals:
        each = (
            f'"{markup(str(a.value))}" '
            + (f"[red]from traitor {a.sender}[/]" if a.sender in traitors else f"from {a.sender}")
            + f" in round {a.round}"
            for a in arrivals
        )
        return f"{len(arrivals)} messages: " + ", ".join(each)
    reason = refusal_of(view, step)
    why = f"rejected: {markup(reason)}" if reason else "missing"
    if step.path is None:  # what stands in for a missing message is the algorithm's business
        return f"[yellow]nothing ({why})[/]"
    return f'default "{markup(view.state.setup.default)}" [yellow]({why})[/]'


def derived_from_below(step: Step) -> bool:
    """Whether the step's value comes from below it, so is worth an arrow; a leaf is what arrived."""
    return bool(step.children or step.hidden or not stands_for_messages(step))


def _label(view: View, step: Step) -> str:
    if step.path is not None:
        text = f"[bold]{_path(step.path)}[/] {_receipt(view, step)}"
    elif stands_for_messages(step):
        text = f"[bold]{markup(step.label)}[/] {_receipt(view, step)}"
    else:
        text = f"[bold]{markup(step.label)}[/]"
    if step.detail:
        text += f"  {markup(step.detail)}"
    refusals = round_refusals(view, step)
    if refusals:
        text += f"{';' if step.detail else ''} [yellow]{_refused_count(len(refusals))}[/]"
    if derived_from_below(step):
        text += f"{'' if step.detail or refusals else ' '} -> [bold]{markup(step.value)}[/]"
    if step.hidden:
        text += f" [dim]({step.hidden:,} node{'' if step.hidden == 1 else 's'} below not shown)[/]"
    return text


def _refusal_label(view: View, path: object, refusal: Refusal) -> str:
    """One refused message and why, as a line below its round."""
    sender = refusal.sender
    who = f"[red]traitor {sender}[/]" if sender in view.reconstruction.traitors else str(sender)
    where = markup(_refusal_where(path, refusal))
    return f"[yellow]refused[/] from {who}{where}: {markup(refusal.reason)}"


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
    if not step.hidden:  # a depth limit that cut the round's steps cuts what it refused too
        for path, refusal in round_refusals(view, step):
            branch.add(_refusal_label(view, path, refusal))


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
    for element in _elements(view, step):
        if isinstance(element, _Node):
            border = ', color="#d62728", penwidth=2' if element.lied else ""
            label = _dot_text(element.label)
            lines.append(f'  "{element.id}" [label="{label}", fillcolor="{element.fill}"{border}];')
        elif element.sender is None:
            lines.append(f'  "{element.source}" -> "{element.target}";')
        else:
            style = ", style=dashed" if element.dashed else ""
            lines.append(f'  "{element.source}" -> "{element.target}" [label="{element.sender}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


MERMAID_MAX_TEXT = 50_000
"""Mermaid's default ``maxTextSize``: a renderer with default settings, GitHub's too, refuses longer text."""

MERMAID_MAX_EDGES = 500
"""Mermaid's default ``maxEdges``: past it a renderer with default settings draws nothing."""

_MERMAID_SAFE = frozenset(" ,.()[]_+-=/'*!?@$^~")
"""Punctuation a Mermaid label shows as it is; everything else but letters and digits is an entity code."""


def mermaid_graph(view: View, step: Step) -> str:
    """A Mermaid flowchart of the same tree as :func:`dot_graph`, which GitHub renders in a ``mermaid`` block.

    Nodes are filled by value, edges from traitors dotted, steps whose
    message a traitor sent outlined in red, as in DOT; the title is the
    DOT graph's label.  Every label is quoted and spelled with entity codes
    (:func:`mermaid_text`), so no value a traitor made up can end a label,
    start a link or inject HTML.
    """
    lines = [
        "---",
        f"title: {json.dumps(_dot_title(view))}",  # YAML; Mermaid decodes no entity codes in it
        "---",
        "flowchart LR",
    ]
    classes: dict[str, list[str]] = {}
    for element in _elements(view, step):
        if isinstance(element, _Node):
            lines.append(f'  {element.id}["{_mermaid_label(element.label)}"]')
            classes.setdefault(_mermaid_class(element.fill), []).append(element.id)
            if element.lied:
                classes.setdefault("lied", []).append(element.id)
        else:
            arrow = "-.->" if element.dashed else "-->"
            label = "" if element.sender is None else f'|"{mermaid_text(str(element.sender))}"|'
            lines.append(f"  {element.source} {arrow}{label} {element.target}")
    for index, colour in enumerate(PALETTE):
        lines.append(f"  classDef value{index} fill:{colour}")
    lines.append("  classDef other fill:#ffffff")
    lines.append("  classDef lied stroke:#d62728,stroke-width:3px")
    lines.extend(f"  class {','.join(ids)} {name}" for name, ids in classes.items())
    return "\n".join(lines) + "\n"


def _mermaid_class(fill: str) -> str:
    return f"value{PALETTE.index(fill)}" if fill in PALETTE else "other"


def _mermaid_label(label: str) -> str:
    """A multi-line label as Mermaid text: each line escaped, joined by the line breaks Mermaid draws."""
    return "<br>".join(mermaid_text(line) for line in label.split("\n"))


def mermaid_text(text: str) -> str:
    """``text`` safe in a quoted Mermaid label: letters, digits and plain punctuation kept, the rest ``#N;``.

    Mermaid turns ``#quot;``-style and numeric entity codes back into the
    characters, so quotes, brackets, ``<``, ``#``, ``%``, backticks, line
    breaks and anything unpaired (a lone surrogate) show as written.
    """
    return "".join(char if char.isalnum() or char in _MERMAID_SAFE else f"#{ord(char)};" for char in text)


def mermaid_problem(text: str) -> str | None:
    """Why a renderer with Mermaid's default limits, like GitHub's, would refuse ``text``; else ``None``."""
    edges = sum("-->" in line or "-.->" in line for line in text.splitlines())  # labels never hold a ">"
    if len(text) > MERMAID_MAX_TEXT:
        return f"{len(text):,} characters, more than Mermaid's default limit of {MERMAID_MAX_TEXT:,}"
    if edges > MERMAID_MAX_EDGES:
        return f"{edges:,} edges, more than Mermaid's default limit of {MERMAID_MAX_EDGES:,}"
    return None


@attrs.frozen
class _Node:
    """One box of a drawn tree: a step, or a message refused below a round."""

    id: str
    label: str
    fill: str
    lied: bool = False


@attrs.frozen
class _Edge:
    """An arrow from a step to one below it, labelled with the general whose message it stands for."""

    source: str
    target: str
    sender: object = None
    dashed: bool = False


def _elements(view: View, step: Step) -> Iterator[_Node | _Edge]:
    """The tree's boxes and arrows, each box before the arrows from it, in the order DOT lists them."""
    ids = _Ids()
    yield from _subtree(view, step, ids.of(step), ids)


def _subtree(view: View, step: Step, me: str, ids: _Ids) -> Iterator[_Node | _Edge]:
    values = view.reconstruction.scenario.values
    colour = PALETTE[values.index(step.value) % len(PALETTE)] if step.value in values else "#ffffff"
    traitors = view.reconstruction.traitors
    lied = any(a.sender in traitors for a in arrivals_of(view, step))
    yield _Node(me, _dot_label(view, step), colour, lied)
    for child in step.children:
        child_id = ids.of(child)
        sender = child.path[-1] if child.path else child.sender
        yield _Edge(me, child_id, sender, sender is not None and sender in traitors)
        yield from _subtree(view, child, child_id, ids)
    if not step.hidden:
        for path, refusal in round_refusals(view, step):
            refused_id = ids.fresh()
            traitor = "traitor " if refusal.sender in traitors else ""
            said = f"refused from {traitor}{refusal.sender}{_refusal_where(path, refusal)}"
            yield _Node(refused_id, f"{printable(said)}\n{printable(refusal.reason)}", "#ffffff")
            yield _Edge(me, refused_id, refusal.sender, refusal.sender in traitors)


def depth_note(step: Step, depth: int) -> str | None:
    """What a depth limit left out of the tree from ``step``, and the options that show it; else ``None``.

    A zoomed view is suggested by the path of the first cut step right
    below the start, when the algorithm's steps have paths.
    """
    hidden = hidden_below(step)
    if not hidden:
        return None
    cut = next((child for child in step.children if hidden_below(child) and child.path), None)
    subtree = ""
    if cut is not None and cut.path:
        subtree = f", or start at a subtree with --path {','.join(map(str, cut.path))}"
    return (
        f"{hidden:,} step{'' if hidden == 1 else 's'} deeper than {depth} level{'' if depth == 1 else 's'} "
        f"not shown: --depth {depth + 1} shows one more level, --depth all every one{subtree}"
    )


def hidden_below(step: Step) -> int:
    """How many steps a depth limit left out of the tree from ``step``, all levels together."""
    return step.hidden + sum(hidden_below(child) for child in step.children)


def _dot_title(view: View) -> str:
    if view.crashed_in is not None:
        crashed = f"General {view.general} crashed in round {view.crashed_in}"
        return f"{crashed}: would have decided {printable(view.state.decide())}"
    return f"{_title(view)} {printable(view.state.decide())}"


def _dot_label(view: View, step: Step) -> str:
    if step.path is not None:
        label = f"{_path(step.path)}\n{_dot_receipt(view, step)}"
    elif stands_for_messages(step):
        label = f"{printable(step.label)}\n{_dot_receipt(view, step)}"
    else:
        label = printable(step.label)
    if step.detail:
        label += f"\n{printable(step.detail)}"
    refusals = round_refusals(view, step)
    if refusals:
        label += f"\n{_refused_count(len(refusals))}"
    if derived_from_below(step):
        label += f"\n-> {printable(step.value)}"
    if step.hidden:
        label += f" (+{step.hidden} hidden)"
    return label


def _dot_receipt(view: View, step: Step) -> str:
    """What the general got of what the step is tied to, one line per message when several came."""
    traitors = view.reconstruction.traitors

    def sender(arrival: Arrival) -> str:
        return f"traitor {arrival.sender}" if arrival.sender in traitors else str(arrival.sender)

    arrivals = arrivals_of(view, step)
    if len(arrivals) == 1:
        (arrival,) = arrivals
        liar = f" (from {sender(arrival)})" if arrival.sender in traitors else ""
        return printable(str(arrival.value)) + liar
    if arrivals:
        return "\n".join(f"{printable(str(a.value))} (round {a.round}, from {sender(a)})" for a in arrivals)
    if step.path is None:
        return "nothing"
    return f"default {printable(view.state.setup.default)}"


def _dot_text(text: str) -> str:
    """Text for a quoted DOT string: quotes and backslashes escaped, line breaks as ``\\n``."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Ids:
    """DOT ids for the steps of one tree: from a step's path, else a number; never one twice."""

    def __init__(self) -> None:
        self._numbers = itertools.count()
        self._taken: set[str] = set()

    def of(self, step: Step) -> str:
        """``p0_2`` by path, or ``r2_s3`` by round and sender, for the first step with it; else a number."""
        name = None
        if step.path is not None:
            name = "p" + "_".join(map(str, step.path))
        elif step.round is not None and step.sender is not None:
            name = f"r{step.round}_s{step.sender}"
        if name is not None and name not in self._taken:
            self._taken.add(name)
            return name
        return self.fresh()

    def fresh(self) -> str:
        """A numbered id, for a step with nothing to name it by, or a node that stands for no step."""
        return f"s{next(self._numbers)}"
