"""explain: one general's recursion tree, from a log.

Rules for this file:
- the expected tree comes from the protocol core fed with the run's own
  messages, independently of the log reader;
- rendered text is checked line by line where a person reads it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from om_actors import Event, MessageSent, Scenario, TraitorSpec, load_scenario, simulate_sync
from om_actors.algorithm import Core, Step
from om_actors.cli import main
from om_actors.explain import (
    ExplainError,
    View,
    dot_graph,
    explain,
    mermaid_graph,
    mermaid_problem,
    mermaid_text,
    open_view,
    text_tree,
)
from om_actors.replay import reconstruct

GOLDEN = Path(__file__).parent / "golden" / "seven-generals.jsonl"
SEVEN = Path(__file__).parent.parent / "scenarios" / "seven-generals.yaml"


def _core_fed_by_the_run(scenario: Scenario, general: int) -> Core:
    """The general's core fed with the run's own messages, round by round -- no log involved."""
    events: list[Event] = []
    simulate_sync(scenario, on_event=events.append)
    core = scenario.rules.general(scenario.setup, general, scenario.order)
    for round in range(1, scenario.rounds + 1):
        core.outbox(round)
        for event in events:
            if isinstance(event, MessageSent) and (event.receiver, event.round) == (general, round):
                core.receive(sender=event.sender, round=round, payload=event.payload)
    return core


def test_explain_gives_the_tree_the_protocol_core_computes() -> None:
    scenario = load_scenario(SEVEN)
    step = explain(View(reconstruct(GOLDEN), 1))
    assert step == scenario.rules.explain(_core_fed_by_the_run(scenario, 1))
    assert step.value == "attack"
    assert len(step.children) == 5
    assert all(len(child.children) == 4 for child in step.children)


def _render(general: int, **options: object) -> list[str]:
    view = View(reconstruct(GOLDEN), general)
    step = explain(view, **options)  # type: ignore[arg-type]
    console = Console(width=100, record=True, color_system=None)
    console.print(text_tree(view, step))
    return console.export_text().splitlines()


def test_text_tree_reads_vote_by_vote() -> None:
    assert _render(1, depth=1) == [
        'General 1 decided "attack"',
        '└── [0] "retreat" (from traitor 0)  votes attack x4, retreat x2 -> attack',
        '    ├── [0, 2] "attack"  -> attack (4 nodes below not shown)',
        '    ├── [0, 3] "retreat"  -> retreat (4 nodes below not shown)',
        '    ├── [0, 4] "attack"  -> attack (4 nodes below not shown)',
        '    ├── [0, 5] "attack" (from traitor 5)  -> attack (4 nodes below not shown)',
        '    └── [0, 6] "attack"  -> attack (4 nodes below not shown)',
    ]


def test_the_seven_generals_tree_fits_100_columns_at_depth_2() -> None:
    lines = _render(1, depth=2)
    assert len(lines) == 1 + 1 + 5 + 20
    assert max(map(len, lines)) <= 100


def test_a_subtree_by_path() -> None:
    lines = _render(2, path=(0, 5))
    assert lines[1].startswith('└── [0, 5] "attack" (from traitor 5)  votes ')
    assert len(lines) == 2 + 4


def test_missing_and_rejected_values_say_why(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    simulate_sync(Scenario(generals=4, m=1, traitors={2: "silent", 3: "adversaries:Garbage"}), log=log)
    view = View(reconstruct(log), 1)
    console = Console(width=100, record=True, color_system=None)
    console.print(text_tree(view, explain(view)))
    assert console.export_text().splitlines() == [
        'General 1 decided "retreat"',
        '└── [0] "attack"  votes retreat x2, attack x1 -> retreat',  # two traitors: more than m
        '    ├── [0, 2] default "retreat" (missing)',
        '    └── [0, 3] default "retreat" (rejected: value outside the domain)',
    ]


@pytest.mark.parametrize(
    ("general", "path", "error"),
    [
        (0, None, "general 0 is the commander: it decides its own order and evaluates no tree"),
        (9, None, "no general 9: ids run from 0 to 6"),
        (1, (0, 1), "--path 0,1: general 1 never receives a path through itself"),
        (1, (2,), "--path 2: a path starts with the commander, general 0"),
        (1, (0, 2, 3, 4), "--path 0,2,3,4: OM(2) paths have at most 3 generals"),
    ],
)
def test_impossible_requests_are_errors(general: int, path: tuple[int, ...] | None, error: str) -> None:
    with pytest.raises(ExplainError, match=re.escape(error)):
        explain(View(reconstruct(GOLDEN), general), path=path)


def test_dot_colours_by_value_and_dashes_edges_from_traitors() -> None:
    view = View(reconstruct(GOLDEN), 1)
    dot = dot_graph(view, explain(view))
    assert dot.startswith("digraph om {\n")
    assert dot.endswith("}\n")
    assert dot.count(" -> ") == 25
    assert '"p0" -> "p0_5" [label="5", style=dashed];' in dot
    assert '"p0" -> "p0_2" [label="2"];' in dot
    assert (
        '"p0" [label="[0]\\nretreat (from traitor 0)\\nvotes attack x4, retreat x2\\n-> attack", '
        'fillcolor="#8dd3c7", color="#d62728", penwidth=2];'
    ) in dot


def test_a_crashed_general_is_explained_as_one_whose_decision_is_lost(tmp_path: Path) -> None:
    lines = GOLDEN.read_text().splitlines()
    lines.insert(-1, '{"event": "general.crashed", "round": 3, "general": 3}')
    log = tmp_path / "crashed.jsonl"
    log.write_text("\n".join(lines) + "\n")
    view = View(reconstruct(log), 3)
    console = Console(width=200, record=True, color_system=None)
    console.print(text_tree(view, explain(view, depth=0)))
    assert console.export_text().splitlines()[0] == (
        "General 3 crashed in round 3, so its decision is lost; "
        'from what it had received it would have decided "attack"'
    )
    assert 'label="General 3 crashed in round 3: would have decided attack"' in dot_graph(view, explain(view))


def test_explain_shows_logged_control_characters_escaped(hostile_scenario: Path, tmp_path: Path) -> None:
    scenario = hostile_scenario
    log = tmp_path / "hostile.jsonl"
    simulate_sync(load_scenario(scenario), log=log)
    tree = CliRunner().invoke(main, ["explain", str(log), "-g", "3"])
    assert tree.exit_code == 0
    assert tree.stdout.splitlines() == [
        r'General 3 decided "\x9b2Jretreat"',
        r'└── [0] "\x1b[5mblink"  votes \x9b2Jretreat x2, \x1b[5mblink x1 -> \x9b2Jretreat',
        r'    ├── [0, 1] "\x9b2Jretreat" (from traitor 1)',
        r'    └── [0, 2] "\x9b2Jretreat" (from traitor 2)',
    ]
    dot = CliRunner().invoke(main, ["explain", str(log), "-g", "3", "--format", "dot"])
    assert dot.exit_code == 0
    assert r'label="General 3 decided \\x9b2Jretreat"' in dot.stdout
    assert (
        r'"p0" [label="[0]\n\\x1b[5mblink\nvotes \\x9b2Jretreat x2, \\x1b[5mblink x1\n-> \\x9b2Jretreat"'
        in (dot.stdout)
    )
    for control in "\x1b\x9b":
        assert control not in tree.stdout + dot.stdout


# --- any algorithm: SM(m)'s set V, and an algorithm without paths ------------------------

SIGNED = Path(__file__).parent.parent / "scenarios" / "three-generals-signed.yaml"


def _text(view: View, step: Step, width: int = 120) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(text_tree(view, step))
    return console.export_text().splitlines()


@pytest.fixture(scope="module")
def signed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = tmp_path_factory.mktemp("signed") / "figure5.jsonl"
    simulate_sync(load_scenario(SIGNED), log=log)
    return log


def test_sm_explain_shows_v_round_by_round(signed_log: Path) -> None:
    """The paper's figure 5: the traitor commander's two orders both reach lieutenant 1, signed."""
    view = open_view(signed_log, 1)
    step = explain(view)
    scenario = load_scenario(SIGNED)
    assert step == scenario.rules.explain(_core_fed_by_the_run(scenario, 1))
    assert _text(view, step) == [
        'General 1 decided "retreat"',
        "└── general 1  V = {attack, retreat}: 2 values, so the default retreat -> retreat",
        "    ├── round 1  accepted 1 message -> {retreat}",
        '    │   └── [0] "retreat" (from traitor 0)  new: joins V, forwarded in round 2',
        "    └── round 2  accepted 1 message -> {attack, retreat}",
        '        └── [0, 2] "attack"  new: joins V; the last round, so not forwarded',
    ]


def test_sm_dot_gives_every_step_its_own_node(signed_log: Path) -> None:
    view = open_view(signed_log, 2)
    dot = dot_graph(view, explain(view))
    nodes = [line.split('"')[1] for line in dot.splitlines() if "[label=" in line and " -> " not in line]
    assert nodes == ["s0", "s1", "p0", "s2", "p0_1"]
    assert '"s1" -> "p0" [label="0", style=dashed];' in dot
    assert '"s2" -> "p0_1" [label="1"];' in dot


def _refused_log(tmp_path: Path) -> tuple[Path, int]:
    """SM(2) on four generals; traitor 3 signs "retreat" along [0, 3] to 1, where 0 signed "attack".

    Returns the log and the line of that message, which 1 refuses in round 2.
    """
    lie = {"path": [0, 3], "receiver": 1, "value": "retreat"}
    traitor = TraitorSpec("scripted", {"messages": [lie]})
    scenario = Scenario(algorithm="sm", generals=4, m=2, order="attack", traitors={3: traitor})
    log = tmp_path / "refused.jsonl"
    simulate_sync(scenario, log=log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    numbers = [
        number
        for number, fields in enumerate(lines, start=1)
        if fields["event"] == "message" and (fields["sender"], fields["receiver"]) == (3, 1)
    ]
    return log, numbers[0]


def test_sm_explain_shows_what_each_round_refused_and_why(tmp_path: Path) -> None:
    """A refused message leaves nothing in the core: explain finds it in the log, under its round."""
    log, line = _refused_log(tmp_path)
    view = open_view(log, 1)
    assert _text(view, explain(view)) == [
        'General 1 decided "attack"',
        "└── general 1  V = {attack}: its one value -> attack",
        "    ├── round 1  accepted 1 message -> {attack}",
        '    │   └── [0] "attack"  new: joins V, forwarded in round 2',
        "    ├── round 2  accepted 1 message; refused 1 message -> {attack}",
        '    │   ├── [0, 2] "attack"  already in V: not forwarded again',
        f"    │   └── refused from traitor 3 along [0, 3] (log line {line}): signature does not verify",
        "    └── round 3  accepted nothing -> {attack}",
    ]
    dot = dot_graph(view, explain(view))
    assert "round 2\\naccepted 1 message\\nrefused 1 message\\n-> {attack}" in dot
    refused = f"refused from traitor 3 along [0, 3] (log line {line})\\nsignature does not verify"
    (node,) = [entry.split('"')[1] for entry in dot.splitlines() if f'[label="{refused}"' in entry]
    assert f'-> "{node}" [label="3", style=dashed];' in dot


def test_a_depth_limit_counts_what_it_cuts_in_the_singular_too(tmp_path: Path) -> None:
    """One step cut is "1 node", and a round whose steps are cut keeps only the count of what it refused."""
    log, _ = _refused_log(tmp_path)
    view = open_view(log, 1)
    assert _text(view, explain(view, depth=1))[2:] == [
        "    ├── round 1  accepted 1 message -> {attack} (1 node below not shown)",
        "    ├── round 2  accepted 1 message; refused 1 message -> {attack} (1 node below not shown)",
        "    └── round 3  accepted nothing -> {attack}",
    ]


def test_sm_explain_has_no_path_to_start_from(signed_log: Path) -> None:
    with pytest.raises(ExplainError, match=r"^--path 0: SM\(1\) keeps a set of values, not a tree of paths"):
        explain(open_view(signed_log, 1), path=(0,))


def test_a_pathless_algorithm_is_drawn_by_its_labels(tmp_path: Path, echo: object) -> None:
    log = tmp_path / "echo.jsonl"
    simulate_sync(Scenario(algorithm="echo", generals=4, m=1, order="attack", traitors={3: "split"}), log=log)
    view = open_view(log, 1)
    assert _text(view, explain(view)) == [
        'General 1 decided "attack"',
        "└── general 1  heard 0: attack, 2: attack, 3: retreat -> attack",
    ]


def test_two_values_along_one_chain_are_each_drawn_as_they_came(signed_log: Path, tmp_path: Path) -> None:
    """A log in which the traitor commander's signed "attack" to 2 is also delivered to 1, along [0]:
    1's V takes both values along one chain, and each step shows its own message, with a node of its own."""
    lines = signed_log.read_text().splitlines()
    copied = json.loads(lines[2])
    assert (copied["sender"], copied["receiver"], copied["value"]) == (0, 2, "attack")
    lines.insert(3, json.dumps({**copied, "receiver": 1}))
    log = tmp_path / "both.jsonl"
    log.write_text("\n".join(lines) + "\n")
    view = open_view(log, 1)
    step = explain(view)
    assert _text(view, step)[2:5] == [
        "    ├── round 1  accepted 2 messages -> {attack, retreat}",
        '    │   ├── [0] "retreat" (from traitor 0)  new: joins V, forwarded in round 2',
        '    │   └── [0] "attack" (from traitor 0)  new: joins V, forwarded in round 2',
    ]
    dot = dot_graph(view, step)
    ids = [line.split('"')[1] for line in dot.splitlines() if "[label=" in line and " -> " not in line]
    assert len(ids) == len(set(ids)) == 6
    assert "[0]\\nattack (from traitor 0)" in dot
    assert "[0]\\nretreat (from traitor 0)" in dot
    assert [arrival.value for arrival in view.arrivals((0,))] == ["retreat", "attack"]
    assert view.arrival((0,)) is None  # not one message: two


def test_a_step_along_a_path_that_many_messages_share_lists_them_all(tmp_path: Path, gossip: object) -> None:
    """Without paths, every message is along (): a step tied to () stands for all of them, never for one."""
    log = tmp_path / "gossip.jsonl"
    simulate_sync(
        Scenario(algorithm="gossip", generals=4, m=1, order="attack", traitors={3: "split"}), log=log
    )
    view = open_view(log, 1)
    step = Step("general 1", "attack", "every message", path=())
    (line,) = _text(view, step, width=400)[1:]
    assert line == (
        '└── [] 7 messages: "attack" from 0 in round 1, "attack" from 0 in round 2, '
        '"attack" from 2 in round 2, "retreat" from traitor 3 in round 2, "attack" from 0 in round 3, '
        '"attack" from 2 in round 3, "retreat" from traitor 3 in round 3  every message'
    )
    assert "retreat (round 3, from traitor 3)" in dot_graph(view, step).replace("\\n", "\n")
    assert [(a.round, a.sender, a.value) for a in view.arrivals(())] == [
        (1, 0, "attack"),
        (2, 0, "attack"),
        (2, 2, "attack"),
        (2, 3, "retreat"),
        (3, 0, "attack"),
        (3, 2, "attack"),
        (3, 3, "retreat"),
    ]
    assert view.arrival(()) is None


def test_a_step_may_stand_for_one_message_by_its_round_and_sender(tmp_path: Path, gossip: object) -> None:
    """An algorithm without paths ties a step to a round's message from one sender: explain shows it."""
    log = tmp_path / "gossip.jsonl"
    scenario = Scenario(
        algorithm="gossip", generals=4, m=1, order="attack", traitors={2: "split", 3: "adversaries:Garbage"}
    )
    simulate_sync(scenario, log=log)
    view = open_view(log, 1)
    heard = (
        Step("round 1 from 0", "attack", round=1, sender=0),
        Step("round 2 from 2", "retreat", round=2, sender=2),
        Step("round 3 from 3", "retreat", round=3, sender=3),
        Step("round 3 from 1", "retreat", round=3, sender=1),
    )
    step = Step("general 1", "attack", "what it heard", heard)
    assert _text(view, step)[1:] == [
        "└── general 1  what it heard -> attack",
        '    ├── round 1 from 0 "attack"',
        '    ├── round 2 from 2 "retreat" (from traitor 2)',
        "    ├── round 3 from 3 nothing (rejected: value outside the domain)",
        "    └── round 3 from 1 nothing (missing)",
    ]
    dot = dot_graph(view, step)
    assert '"s0" -> "r2_s2" [label="2", style=dashed];' in dot
    assert (
        '"r2_s2" [label="round 2 from 2\\nretreat (from traitor 2)", fillcolor="#fb8072", color="#d62728"'
        in dot
    )
    assert '"r3_s3" [label="round 3 from 3\\nnothing"' in dot


# --- Mermaid, and the default depth --------------------------------------------------------

MERMAID_NODE = re.compile(r'^  (\w+)\["([^"]*)"\]$')
MERMAID_EDGE = re.compile(r'^  (\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)$')
MERMAID_CLASS = re.compile(r"^  class ([\w,]+) (\w+)$")


def _unescaped(text: str) -> str:
    """Mermaid's reading of a label: its entity codes back as characters, its line breaks as newlines."""
    return re.sub(r"#(\d+);", lambda found: chr(int(found.group(1))), text.replace("<br>", "\n"))


def _mermaid_parts(
    text: str,
) -> tuple[dict[str, str], list[tuple[str, str, str | None, str]], dict[str, set[str]]]:
    """Nodes (id to label as drawn), edges and classes of a flowchart; any other line fails the test."""
    lines = text.splitlines()
    assert lines[0] == "---"
    assert lines[1].startswith("title: ")
    assert lines[2:4] == ["---", "flowchart LR"]
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str | None, str]] = []
    classes: dict[str, set[str]] = {}
    for line in lines[4:]:
        if node := MERMAID_NODE.match(line):
            assert node[1] not in nodes
            nodes[node[1]] = _unescaped(node[2])
        elif edge := MERMAID_EDGE.match(line):
            edges.append((edge[1], edge[2], edge[3], edge[4]))
        elif assigned := MERMAID_CLASS.match(line):
            for node_id in assigned[1].split(","):
                classes.setdefault(node_id, set()).add(assigned[2])
        else:
            assert line.startswith("  classDef "), line
    assert {edge[0] for edge in edges} | {edge[3] for edge in edges} <= set(nodes)
    assert set(classes) == set(nodes)
    return nodes, edges, classes


def test_mermaid_draws_the_dot_tree() -> None:
    view = View(reconstruct(GOLDEN), 1)
    step = explain(view)
    text = mermaid_graph(view, step)
    assert text.splitlines()[1] == 'title: "General 1 decided attack"'
    nodes, edges, classes = _mermaid_parts(text)
    assert len(nodes) == 26
    assert len(edges) == 25
    assert nodes["p0_5"] == "[0, 5]\nattack (from traitor 5)\nvotes attack x5\n-> attack"
    assert ("p0", "-.->", "5", "p0_5") in edges  # from a traitor: dotted
    assert ("p0", "-->", "2", "p0_2") in edges
    assert classes["p0_5"] == {"value0", "lied"}  # attack, the first value; a traitor's message
    assert classes["p0_2"] == {"value0"}
    assert classes["p0_3"] == {"value1"}


@pytest.mark.parametrize(
    "text",
    [
        'say "hi"]) --> x',
        "<script>alert(1)</script> <br> &amp;",
        "#quot; #35; %% comment\nnext line\r\x1b[31m",
        "`markdown` **bold** | pipe ; semicolon {braces} style:#59;",
        "é 😀 \ud800 \u2028",
    ],
)
def test_mermaid_text_keeps_any_value_inside_its_label(text: str) -> None:
    escaped = mermaid_text(text)
    assert re.fullmatch(r"([\w ,.()\[\]+\-=/'*!?@$^~]|#\d+;)*", escaped)
    assert '"' not in escaped
    assert "<" not in escaped
    assert ">" not in escaped
    assert _unescaped(escaped) == text


def test_mermaid_labels_hold_hostile_values_as_written(hostile_scenario: Path, tmp_path: Path) -> None:
    log = tmp_path / "hostile.jsonl"
    simulate_sync(load_scenario(hostile_scenario), log=log)
    view = open_view(log, 3)
    text = mermaid_graph(view, explain(view))
    nodes, _, _ = _mermaid_parts(text)
    assert nodes["p0"] == "[0]\n\\x1b[5mblink\nvotes \\x9b2Jretreat x2, \\x1b[5mblink x1\n-> \\x9b2Jretreat"
    assert "\x1b" not in text


def test_mermaid_draws_sm_phase_king_and_pathless_algorithms(
    signed_log: Path, tmp_path: Path, echo: object
) -> None:
    king = tmp_path / "king.jsonl"
    simulate_sync(load_scenario(SEVEN.parent / "nine-generals-king.yaml"), log=king)
    pathless = tmp_path / "echo.jsonl"
    simulate_sync(
        Scenario(algorithm="echo", generals=4, m=1, order="attack", traitors={3: "split"}), log=pathless
    )
    refused, _ = _refused_log(tmp_path)
    for log, general, count in [(signed_log, 1, 5), (king, 2, 7), (pathless, 1, 1), (refused, 1, None)]:
        view = open_view(log, general)
        step = explain(view)
        nodes, edges, _ = _mermaid_parts(mermaid_graph(view, step))
        assert len(edges) == len(nodes) - 1  # a tree
        if count is not None:
            assert len(nodes) == count
    refusal = [
        label
        for label in _mermaid_parts(mermaid_graph(open_view(refused, 1), explain(open_view(refused, 1))))[
            0
        ].values()
        if label.startswith("refused")
    ]
    assert len(refusal) == 1


def test_mermaid_problem_names_mermaids_default_limits() -> None:
    assert mermaid_problem("flowchart LR\n  a --> b\n") is None
    edges = "".join(f"  a --> b{i}\n" for i in range(501))
    assert mermaid_problem("flowchart LR\n" + edges) == "501 edges, more than Mermaid's default limit of 500"
    long = "flowchart LR\n" + '  a["' + "x" * 50_000 + '"]\n'
    assert mermaid_problem(long) == f"{len(long):,} characters, more than Mermaid's default limit of 50,000"


@pytest.fixture(scope="module")
def deep_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OM(3) on six generals: four levels below the commander's path, so two levels cut some."""
    log = tmp_path_factory.mktemp("deep") / "om3.jsonl"
    simulate_sync(Scenario(generals=6, m=3, order="attack", traitors={2: "flip"}), log=log)
    return log


def _explain(*args: str) -> tuple[int, list[str], list[str]]:
    result = CliRunner().invoke(main, ["explain", *args])
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def test_explain_shows_two_levels_by_default_and_says_what_it_cut(deep_log: Path) -> None:
    code, lines, errors = _explain(str(deep_log), "-g", "1")
    assert (code, errors) == (0, [])
    everything = _explain(str(deep_log), "-g", "1", "--depth", "all")[1]
    assert len(lines) - 1 == 1 + 1 + 4 + 4 * 3  # heading, [0], then two levels, then the note
    cut = len(everything) - (len(lines) - 1)
    assert lines[-1] == (
        f"{cut} steps deeper than 2 levels not shown: --depth 3 shows one more level, --depth all every one, "
        "or start at a subtree with --path 0,2"
    )
    assert cut == 4 * 3 * 2  # the third level below [0]


def test_an_explicit_depth_prints_what_it_printed_before(deep_log: Path) -> None:
    """No note for a depth asked for: each cut node already says what it hides."""
    code, lines, _ = _explain(str(deep_log), "-g", "1", "--depth", "2")
    assert code == 0
    assert lines == _explain(str(deep_log), "-g", "1")[1][:-1]
    assert (
        _explain(str(deep_log), "-g", "1", "--depth", "all")[1]
        == _explain(str(deep_log), "-g", "1", "--depth", "9")[1]
    )


def test_the_default_depth_notes_a_cut_graph_on_stderr(deep_log: Path) -> None:
    for form in ("dot", "mermaid"):
        code, lines, errors = _explain(str(deep_log), "-g", "1", "--format", form)
        assert code == 0
        assert lines[0] in ("digraph om {", "---")
        assert len(errors) == 1
        assert errors[0].startswith("24 steps deeper than 2 levels not shown")


def test_the_default_depth_cuts_nothing_of_sm_or_phase_king(signed_log: Path, tmp_path: Path) -> None:
    king = tmp_path / "king.jsonl"
    simulate_sync(load_scenario(SEVEN.parent / "nine-generals-king.yaml"), log=king)
    for log, general in [(signed_log, 1), (king, 2), (GOLDEN, 1)]:
        default = _explain(str(log), "-g", str(general))
        assert default == _explain(str(log), "-g", str(general), "--depth", "all")
        assert "not shown" not in "\n".join(default[1])


@pytest.mark.parametrize(
    ("depth", "error"),
    [("x", "'x' is neither a number of levels nor all"), ("-1", "-1 is not in the range x>=0")],
)
def test_a_depth_is_a_number_or_all(depth: str, error: str) -> None:
    code, lines, errors = _explain(str(GOLDEN), "-g", "1", "--depth", depth)
    assert (code, lines) == (2, [])
    assert error in errors[-1]
