"""Scenario files and the scenario class.

Rules for this file:
- error texts are asserted whole, line and column included, because users
  (and their editors) read them;
- bad files are written to ``tmp_path``; the shipped scenarios are read from
  ``scenarios/`` as a user would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tracemalloc
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from om_actors import Expect, Instance, Scenario, ScenarioError, StrategyError, TraitorSpec, load_scenario
from om_actors.algorithm import Algorithm, Setup
from om_actors.limits import MAX_SCENARIO_BYTES
from om_actors.oral import ORAL_MESSAGES
from om_actors.registry import DEFAULT_ALGORITHM, REGISTRY, algorithm_named
from om_actors.scenario import DEFAULT_VALUES, SEVEN_GENERALS, scenario_from_dict
from om_actors.signed import SIGNED_MESSAGES, Late, SignedScripted, SignedSplit
from om_actors.strategies import Silent, required_parameters

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    prefix = f"{path}:"
    lines = str(caught.value).splitlines()
    assert all(line.startswith(prefix) for line in lines)
    return [line.removeprefix(prefix) for line in lines]


def test_a_full_scenario_file_loads_into_frozen_values(tmp_path: Path) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(
        "name: full\ngenerals: 7\nm: 2\ncommander: 3\norder: hold\n"
        "values: [attack, retreat, hold]\ndefault: hold\n"
        "traitors:\n  0: split\n  5: {strategy: random, seed: 7}\n"
        "seed: 42\nround_timeout: 0.5\nexpect:\n  agreement: true\n  decision: hold\n"
    )
    scenario = load_scenario(path)
    assert scenario == Scenario(
        name="full",
        generals=7,
        m=2,
        commander=3,
        order="hold",
        values=("attack", "retreat", "hold"),
        default="hold",
        traitors={0: TraitorSpec("split"), 5: TraitorSpec("random", {"seed": 7})},
        seed=42,
        round_timeout=0.5,
        expect=Expect(agreement=True, decision="hold"),
    )


def test_defaults_and_the_name_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text("generals: 4\nm: 1\n")
    scenario = load_scenario(path)
    assert (scenario.name, scenario.commander, scenario.order, scenario.default) == (
        "tiny",
        0,
        "attack",
        "retreat",
    )
    assert (scenario.values, scenario.traitors, scenario.seed, scenario.round_timeout) == (
        ("attack", "retreat"),
        {},
        0,
        1.0,
    )


def test_yaml_text_loads_too() -> None:
    assert load_scenario("generals: 4\nm: 1\n").generals == 4


def test_every_mistake_is_reported_at_once_with_line_and_column(tmp_path: Path) -> None:
    text = """\
generals: 4
m: 3
commanderr: 0
values: [go, stay, go]
order: 5
traitors:
  9: flip
  2: {strategy: flipp}
  3: {strategy: constant, value: sing}
  1: {strategy: split, extra: 1}
  x: silent
round_timeout: 0
expect: {decision: stay, agreement: yes}
"""
    assert _errors(tmp_path, text) == [
        "2:4: m: must be at most generals - 2 = 2: no relay path can be longer than that",
        "3:1: commanderr: unknown key 'commanderr': did you mean 'commander'?",
        "4:9: values: default is 'retreat' unless set, and 'retreat' is not one of values "
        "['go', 'stay', 'go']: set default",
        "4:20: values.2: 'go' is listed twice",
        "5:8: order: expected a string, got 5",
        "7:3: traitors.9: no general 9: ids run from 0 to 3",
        "8:17: traitors.2.strategy: unknown strategy 'flipp': did you mean 'flip'? use one of "
        "constant, flip, loyal, random, scripted, silent, split, or module:Class",
        "9:34: traitors.3.value: 'sing' is not one of values ['go', 'stay', 'go']",
        "10:24: traitors.1.extra: strategy 'split' takes no argument 'extra'",
        "11:3: traitors.x: expected a general id, got 'x'",
        "12:16: round_timeout: must be a number of seconds above 0",
        "13:37: expect.agreement: expected true or false, got 'yes'",
    ]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("generals: 7.5\nm: 1\n", "1:11: generals: expected an integer, got 7.5"),
        ("generals: true\nm: 1\n", "1:11: generals: expected an integer, got True"),
        ("generals: 4\n", "1:1: missing required key 'm'"),
        ("generals: 1\nm: 0\n", "1:11: generals: needs at least 2 generals: a commander and a lieutenant"),
        ("generals: 4\nm: 1\ncommander: 4\n", "3:12: commander: must be a general id from 0 to 3"),
        ("generals: 4\nm: 1\nvalues: go\n", "3:9: values: expected a list of strings, got 'go'"),
        (
            'generals: 4\nm: 1\nvalues: [b, "\\ud83d\\ude00"]\ndefault: b\n',
            "3:13: values.1: holds the surrogate \\ud83d, which is half of a UTF-16 pair, not a character: "
            "write the character itself, or its \\U0001f600-style escape",
        ),
        ("generals: 4\nm: 1\ntraitors: [1]\n",
         "3:11: traitors: expected a mapping from general id to strategy, got a list"),
        ("generals: 4\nm: 1\ntraitors: {1: constant}\n",
         "3:15: traitors.1: strategy 'constant' needs argument 'value'"),
        ("generals: 4\nm: 1\ntraitors: {1: {seed: 2}}\n", "3:15: traitors.1: missing key 'strategy'"),
        ("generals: 4\nm: 1\ntraitors: {1: {strategy: nope:Thing}}\n",
         "3:26: traitors.1.strategy: cannot import module 'nope': No module named 'nope'"),
        ("generals: 4\nm: 1\ntraitors: {1: {strategy: 'random:Nope'}}\n",
         "3:26: traitors.1.strategy: module 'random' has no class 'Nope'"),
        ("- 1\n- 2\n", "1:1: a scenario is a mapping with keys such as generals and m, not a list"),
        ("generals: 4\ngenerals: 5\nm: 1\n",
         '2:1: not valid YAML: while constructing a mapping found duplicate key "generals" with value "5" '
         '(original value: "4")'),
        ("generals: [4\nm: 1\n",
         "2:2: not valid YAML: while parsing a flow sequence expected ',' or ']', but got ':'"),
    ],
)  # fmt: skip
def test_one_mistake(tmp_path: Path, text: str, error: str) -> None:
    assert _errors(tmp_path, text) == [error]


def test_an_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file: No such file or directory"):
        load_scenario(tmp_path / "missing.yaml")


def test_a_bare_name_that_is_no_file_is_a_shipped_scenario_as_the_command_line_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_scenario("three-generals") == load_scenario(SCENARIOS / "three-generals.yaml")
    assert load_scenario("three-generals.yaml").name == "three-generals"
    with pytest.raises(
        ScenarioError, match=r"^three-general: no such file, nor a shipped scenario .* did you mean"
    ):
        load_scenario("three-general")
    with pytest.raises(ScenarioError, match=r": cannot read the file: File name too long$"):
        load_scenario("x" * 300)  # the system will not even look it up: it is no shipped scenario either
    (tmp_path / "three-generals").write_text("generals: 4\nm: 1\n")
    assert load_scenario("three-generals").generals == 4  # a file of that name wins, as in om-actors run


TOO_LONG = "longer than 16,777,216 bytes, the most a scenario may have: not a scenario"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_an_endless_device_is_refused_after_the_limit() -> None:
    """``/dev/zero`` used to be read until memory ran out; the child's 1 GB cap turns that into a failure."""
    code = (
        "import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30))\n"
        "from om_actors import ScenarioError, load_scenario\n"
        "try:\n    load_scenario('/dev/zero')\nexcept ScenarioError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (0, "", f"/dev/zero: {TOO_LONG}\n")


def test_a_huge_file_is_refused_without_being_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "sparse.yaml"
    with path.open("wb") as file:
        file.truncate(200 * 1024 * 1024)  # sparse: 200 MB of zeros that take no disk
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError) as caught:
            load_scenario(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == f"{path}: {TOO_LONG}"
    assert peak < 3 * MAX_SCENARIO_BYTES  # reading it whole took 200 MB, and as much again to decode


def test_a_file_that_is_not_utf8_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("generals: 4\nm: 1\nname: général\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == f"{path}: not UTF-8 text: invalid continuation byte at byte 24"


def test_scenarios_built_in_code_are_validated_the_same_way() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(generals=4, m=1, commander=7, traitors={5: "flipp"})
    assert caught.value.problems[0].line is None
    assert str(caught.value).splitlines() == [
        "scenario: commander: must be a general id from 0 to 3",
        "scenario: traitors.5: no general 5: ids run from 0 to 3",
        "scenario: traitors.5.strategy: unknown strategy 'flipp': did you mean 'flip'? use one of "
        "constant, flip, loyal, random, scripted, silent, split, or module:Class",
    ]


def test_beyond_the_bound_is_allowed_but_warned() -> None:
    scenario = Scenario(generals=6, m=2, traitors={1: "flip", 2: "flip", 3: "flip"})
    assert scenario.warnings == [
        "6 generals are fewer than 3m + 1 = 7: OM(2) cannot guarantee agreement, "
        "and traitors can make loyal generals disagree",
        "3 traitors are more than m = 2: OM(2) is only built to survive 2",
    ]
    assert Scenario(generals=7, m=2, traitors={1: "flip"}).warnings == []


def test_to_dict_round_trips_through_json_shaped_data() -> None:
    for path in SCENARIOS.glob("*.yaml"):
        scenario = load_scenario(path)
        assert scenario_from_dict(scenario.to_dict()) == scenario


def test_the_built_in_default_is_the_seven_generals_file() -> None:
    assert load_scenario(SCENARIOS / "seven-generals.yaml") == SEVEN_GENERALS


def test_every_shipped_scenario_says_what_it_shows() -> None:
    files = sorted(SCENARIOS.glob("*.yaml"))
    assert len(files) >= 7
    for path in files:
        assert path.read_text().startswith("# "), path


# --- strategies are looked at, never run, while a scenario is checked ---------

POPEN = "generals: 4\nm: 1\ntraitors:\n  1: {{strategy: 'subprocess:Popen', args: [touch, '{marker}']}}\n"


@pytest.fixture
def strategy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Writes a strategy module to ``tmp_path`` under a fresh name, and returns that name.

    Fresh names keep Python's module cache from hiding an import a test
    expects; the modules are forgotten again after the test.
    """

    def write(source: str) -> str:
        name = f"user_traitor_{uuid.uuid4().hex[:12]}"
        (tmp_path / f"{name}.py").write_text(source)
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    yield write
    for name in [n for n in sys.modules if n.startswith("user_traitor_")]:
        del sys.modules[name]


MARKS_IMPORT = """\
import pathlib
pathlib.Path(__file__).with_suffix(".imported").touch()

class Liar:
    def choose(self, round, path, receiver, value, rng):
        return value
"""


def test_a_popen_strategy_in_a_file_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "popen.yaml"
    path.write_text(POPEN.format(marker=marker))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(caught.value) == (
        f"{path}:4:17: traitors.1.strategy: strategy 'subprocess:Popen' has no choose() method"
    )
    assert not marker.exists()


def test_a_popen_strategy_in_yaml_text_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ScenarioError, match=r"'subprocess:Popen' has no choose\(\) method"):
        load_scenario(POPEN.format(marker=marker))
    assert not marker.exists()


def test_a_popen_strategy_in_code_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ScenarioError, match=r"'subprocess:Popen' has no choose\(\) method"):
        Scenario(
            generals=4, m=1, traitors={1: TraitorSpec("subprocess:Popen", {"args": ["touch", str(marker)]})}
        )
    assert not marker.exists()


def test_a_popen_strategy_in_data_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = {
        "generals": 4,
        "m": 1,
        "traitors": {"1": {"strategy": "subprocess:Popen", "args": ["touch", str(marker)]}},
    }
    with pytest.raises(ScenarioError, match=r"'subprocess:Popen' has no choose\(\) method"):
        scenario_from_dict(data, import_strategies=True)
    scenario = scenario_from_dict(data)  # from a log or a request: the name is not even imported
    assert scenario.custom_strategies == ("subprocess:Popen",)
    with pytest.raises(
        StrategyError, match=r"traitor 1: strategy 'subprocess:Popen' has no choose\(\) method"
    ):
        scenario.strategies()
    assert not marker.exists()


def test_data_names_strategies_without_importing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy_module: Callable[[str], str]
) -> None:
    name = strategy_module(MARKS_IMPORT)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = {"generals": 4, "m": 1, "traitors": {"1": f"{name}:Liar", "2": "flip"}}
    scenario = scenario_from_dict(data)
    assert not (tmp_path / f"{name}.imported").exists()
    assert scenario.custom_strategies == (f"{name}:Liar",)
    assert [spec.custom for spec in scenario.traitors.values()] == [True, False]
    assert scenario.strategy_for(0) is None
    assert type(scenario.strategy_for(1)).__name__ == "Liar"
    assert (tmp_path / f"{name}.imported").exists()


@pytest.mark.parametrize(
    ("strategy", "error"),
    [
        ("os path:X", "strategy 'os path:X' is not of the form module:Class"),
        ("os:", "strategy 'os:' is not of the form module:Class"),
        ("flipp", "unknown strategy 'flipp': did you mean 'flip'?"),
    ],
)
def test_data_names_are_checked_for_their_form(strategy: str, error: str) -> None:
    with pytest.raises(ScenarioError, match=f"<data>: traitors.1.strategy: {re.escape(error)}"):
        scenario_from_dict({"generals": 4, "m": 1, "traitors": {"1": strategy}})


def test_a_strategy_next_to_the_file_is_found_by_every_later_build(
    tmp_path: Path, strategy_module: Callable[[str], str]
) -> None:
    name = strategy_module(MARKS_IMPORT)
    path = tmp_path / "mine.yaml"
    path.write_text(f"generals: 4\nm: 1\ntraitors:\n  3: '{name}:Liar'\n")
    scenario = load_scenario(path)
    assert scenario.strategy_folder == str(tmp_path.resolve())
    assert str(tmp_path) not in sys.path
    data = scenario.to_dict()
    assert data["strategy_folder"] == str(tmp_path.resolve())
    del sys.modules[name]  # as in another process: a replay, or a cluster's node
    rebuilt = scenario_from_dict(data)
    assert rebuilt == scenario
    assert type(rebuilt.strategies()[3]).__name__ == "Liar"
    assert str(tmp_path) not in sys.path


def test_only_files_with_user_strategies_record_their_folder(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("generals: 4\nm: 1\ntraitors: {3: flip}\n")
    assert load_scenario(path).strategy_folder is None
    assert "strategy_folder" not in load_scenario(path).to_dict()


def test_a_file_cannot_name_its_own_strategy_folder(tmp_path: Path) -> None:
    assert _errors(tmp_path, "generals: 4\nm: 1\nstrategy_folder: /tmp\n") == [
        "3:1: strategy_folder: unknown key 'strategy_folder'"
    ]


def test_a_strategy_missing_from_its_folder_is_a_strategy_error(tmp_path: Path) -> None:
    data = {"name": "gone", "generals": 4, "m": 1, "traitors": {"1": "no_such_traitor_module:Liar"}}
    scenario = scenario_from_dict({**data, "strategy_folder": str(tmp_path)})
    with pytest.raises(
        StrategyError,
        match=r"^scenario 'gone', traitor 1: cannot import module 'no_such_traitor_module': No module named",
    ):
        scenario.strategies()


@pytest.mark.parametrize(
    ("source", "raised"),
    [
        ("raise RuntimeError('no config here')\n", "RuntimeError: no config here"),
        ("def broken(:\n", "SyntaxError: invalid syntax"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ],
)
def test_a_strategy_module_that_raises_on_import_is_a_located_scenario_error(
    tmp_path: Path, strategy_module: Callable[[str], str], source: str, raised: str
) -> None:
    name = strategy_module(source)
    errors = _errors(tmp_path, f"generals: 4\nm: 1\ntraitors:\n  1: {{strategy: '{name}:Liar'}}\n")
    assert len(errors) == 1
    assert errors[0].startswith(
        f"4:17: traitors.1.strategy: importing module '{name}' for strategy '{name}:Liar' raised {raised}"
    )


# --- the library checks what a file gets checked for ---------------------------


def test_scenarios_built_in_code_get_the_type_checks_files_get() -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(generals=4.0, m="2", seed="x", round_timeout="1", commander="0", traitors={1: 42})  # type: ignore[arg-type, dict-item]
    assert str(caught.value).splitlines() == [
        "scenario: generals: expected an integer, got 4.0",
        "scenario: m: expected an integer, got '2'",
        "scenario: commander: expected an integer, got '0'",
        "scenario: traitors.1: expected a strategy name, a TraitorSpec or an object with a choose() method, "
        "got 42",
        "scenario: seed: expected an integer, got 'x'",
        "scenario: round_timeout: expected a number, got '1'",
    ]


class NoChoose:
    def decide(self) -> str:
        return "attack"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"traitors": {1: NoChoose()}},
         "traitors.1: expected a strategy name, a TraitorSpec or an object with a choose() method, got <"),
        ({"traitors": [1]}, "traitors: expected a mapping from general id to strategy, got a list"),
        ({"traitors": {True: "flip"}}, "traitors.True: expected a general id, got True"),
        ({"traitors": {1: TraitorSpec("loyal"), 2: TraitorSpec(7)}},  # type: ignore[arg-type]
         "traitors.2.strategy: expected a strategy name, got 7"),
        ({"values": "ab"}, "values: expected a list of strings, got 'ab'"),
        ({"values": ("a", 2)}, "values.1: expected a string, got 2"),
        ({"expect": {"agreement": True}}, "expect: expected Expect(...), got a mapping"),
        ({"expect": Expect(agreement="yes")},  # type: ignore[arg-type]
         "expect.agreement: expected true or false, got 'yes'"),
        ({"instances": [Instance(0, "attack"), (1, "attack")]},
         "instances.1: expected Instance(...), got (1, 'attack')"),
        ({"instances": [Instance("1", "attack")]},  # type: ignore[arg-type]
         "instances.0.commander: expected an integer, got '1'"),
        ({"name": None}, "name: expected a string, got nothing"),
        ({"generals": 10**101},
         "generals: expected an integer of at most 100 digits, got an integer of about 102 digits"),
        ({"strategy_folder": "relative/folder"},
         "strategy_folder: expected an absolute folder path, got 'relative/folder'"),
    ],
)  # fmt: skip
def test_one_mistake_in_code(fields: dict[str, object], error: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario(**{"generals": 4, "m": 1, **fields})  # type: ignore[arg-type]
    assert len(caught.value.problems) == 1
    assert str(caught.value).startswith(f"scenario: {error}")


@pytest.mark.parametrize(
    ("key", "in_code", "in_yaml"),
    [
        ("generals", 4.5, "4.5"),
        ("m", True, "true"),
        ("seed", "7", "'7'"),
        ("seed", 10**101, "1" + "0" * 101),
        ("round_timeout", "1", "'1'"),
        ("round_timeout", False, "false"),
        ("name", 7, "7"),
        ("default", None, "null"),
        ("values", ("attack", 2), "[attack, 2]"),
        ("values", ("attack", None), "[attack, null]"),
        ("expect", Expect(agreement="yes", decision=3), "{agreement: 'yes', decision: 3}"),  # type: ignore[arg-type]
        ("expect", Expect(success=1), "{success: 1}"),  # type: ignore[arg-type]
        ("instances", (Instance(1.0, "attack"), Instance(2, 9)),  # type: ignore[arg-type]
         "[{commander: 1.0, order: attack}, {commander: 2, order: 9}]"),
    ],
)  # fmt: skip
def test_a_wrong_type_in_code_is_worded_as_in_a_file(key: str, in_code: object, in_yaml: str) -> None:
    """Code and files are checked by the same hooks, so a mistake reads the same whichever made it."""
    with pytest.raises(ScenarioError) as from_code:
        Scenario(**{"generals": 4, "m": 1, key: in_code})  # type: ignore[arg-type]
    with pytest.raises(ScenarioError) as from_file:
        load_scenario("".join(f"{k}: {v}\n" for k, v in {"generals": "4", "m": "1", key: in_yaml}.items()))
    messages = [problem.message for problem in from_code.value.problems]
    assert messages == [problem.message for problem in from_file.value.problems]
    assert messages
    assert all(message.startswith(f"{key}") for message in messages)


def test_to_dict_is_the_scenario_as_a_file_writes_it() -> None:
    scenario = Scenario(
        name="full",
        generals=7,
        m=2,
        values=["attack", "retreat", "wait"],
        default="wait",
        traitors={5: "flip", 2: TraitorSpec("constant", {"value": "wait"}), 1: Silent()},
        seed=3,
        round_timeout=2,
        expect=Expect(agreement=True, decision="attack"),
        instances=[Instance(0, "attack"), Instance(3, "retreat")],
        strategy_folder="/strategies",
    )
    assert scenario.to_dict() == {
        "generals": 7,
        "m": 2,
        "algorithm": "om",
        "name": "full",
        "values": ["attack", "retreat", "wait"],
        "default": "wait",
        "traitors": {"1": "silent", "2": {"strategy": "constant", "value": "wait"}, "5": "flip"},
        "seed": 3,
        "round_timeout": 2,
        "expect": {"agreement": True, "decision": "attack"},
        "instances": [{"commander": 0, "order": "attack"}, {"commander": 3, "order": "retreat"}],
        "strategy_folder": "/strategies",
    }
    assert list(scenario.to_dict()) == [
        "generals", "m", "algorithm", "name", "values", "default", "traitors", "seed", "round_timeout",
        "expect", "instances", "strategy_folder",
    ]  # fmt: skip
    assert scenario_from_dict(scenario.to_dict()) == scenario
    single = Scenario(generals=4, m=1).to_dict()
    assert (single["commander"], single["order"]) == (0, "attack")
    assert not {"expect", "instances", "strategy_folder"} & set(single)


# --- sizes are refused before anything is allocated -------------------------------

LIMIT = "over the limit of 200,000,000"
TOO_BIG = [
    (40, 12, f"40 generals with m = 12 send 52,521,079,662,488,028,579 messages, {LIMIT}"),
    (10**35, 1, "100,000,000,000,000,000,000,000,000,000,000,000 generals with m = 1 send "
     "9,999,999,999,999,999,999,999,999,999,999,999,800,000,000,000,000,000,000,000,000,000,000,001 "
     f"messages, {LIMIT}"),
    (1_000_000, 1, f"1,000,000 generals with m = 1 send 999,998,000,001 messages, {LIMIT}"),
    (1_000_000, 0, "1,000,000 generals are over the limit of 100,000 general states"),
]  # fmt: skip
RAISE_IT = "set OM_ACTORS_MAX_MESSAGES (or --max-messages) to raise it, if this machine has the memory"


@pytest.mark.parametrize(("generals", "m", "error"), TOO_BIG)
def test_runs_too_big_are_refused_in_files(tmp_path: Path, generals: int, m: int, error: str) -> None:
    [line] = _errors(tmp_path, f"generals: {generals}\nm: {m}\n")
    assert line.startswith(f"1:11: generals: {error}")
    assert line.endswith(RAISE_IT)


@pytest.mark.parametrize(("generals", "m", "error"), TOO_BIG)
def test_runs_too_big_are_refused_in_data_and_code(generals: int, m: int, error: str) -> None:
    with pytest.raises(ScenarioError, match=f"^<data>: generals: {re.escape(error)}.*{re.escape(RAISE_IT)}$"):
        scenario_from_dict({"generals": generals, "m": m})
    with pytest.raises(
        ScenarioError, match=f"^scenario: generals: {re.escape(error)}.*{re.escape(RAISE_IT)}$"
    ):
        Scenario(generals=generals, m=m)


def test_the_limit_is_the_users_to_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OM_ACTORS_MAX_MESSAGES", "1_000")
    with pytest.raises(
        ScenarioError, match="13 generals with m = 2 send 1,464 messages, over the limit of 1,000"
    ):
        Scenario(generals=13, m=2)
    monkeypatch.setenv("OM_ACTORS_MAX_MESSAGES", "2_000")
    assert Scenario(generals=13, m=2).generals == 13


def test_signed_runs_are_sized_by_their_values_and_traitors(monkeypatch: pytest.MonkeyPatch) -> None:
    """SM(m)'s lieutenants forward every value they hold: 50 values on 60 generals sent 124,547 messages."""
    values = [f"v{i}" for i in range(50)]
    fifty = {
        "algorithm": "sm",
        "generals": 60,
        "m": 2,
        "values": values,
        "default": "v0",
        "traitors": {0: "random"},
    }
    monkeypatch.setenv("OM_ACTORS_MAX_MESSAGES", "150_000")  # the loyal count, 3,481, is far below it
    bound = SIGNED_MESSAGES.message_bound(Setup(60, 2, 0, tuple(values), "v0"), 1)
    with pytest.raises(
        ScenarioError,
        match=f"^<data>: generals: 60 generals with m = 2, 50 values and 1 traitor send up to {bound:,} "
        "messages, over the limit of 150,000: set OM_ACTORS_MAX_MESSAGES",
    ):
        scenario_from_dict(fifty)
    assert scenario_from_dict({**fifty, "values": values[:2]}).generals == 60
    monkeypatch.delenv("OM_ACTORS_MAX_MESSAGES")
    with pytest.raises(
        ScenarioError, match=r"^<data>: generals: 100,000,000,000,000,000,000,000,000,000,000,000 "
    ):
        scenario_from_dict({"algorithm": "sm", "generals": 10**35, "m": 10**30, "values": values})
    assert Scenario(algorithm="sm", generals=2000, m=1, traitors={0: "random"}).generals == 2000


def test_many_instances_count_against_the_limit() -> None:
    instances = [Instance(0, "attack")] * 30_000
    with pytest.raises(
        ScenarioError,
        match=r"^scenario: generals: 4 generals in 30,000 instances are over the limit of 100,000 general",
    ):
        Scenario(generals=4, m=1, instances=instances)


def test_values_names_and_scripts_are_bounded(tmp_path: Path) -> None:
    many = ", ".join(f"v{i}" for i in range(255))
    assert _errors(tmp_path, f"generals: 4\nm: 1\nvalues: [{many}]\n") == [
        "3:9: values: has 255 values, more than the 254 a run can hold"
    ]
    long = "x" * 1001
    with pytest.raises(
        ScenarioError,
        match=r"^<data>: values.1: is 1,001 characters long, more than the 1,000 a scenario allows$",
    ):
        scenario_from_dict({"generals": 4, "m": 1, "values": ["attack", long], "default": "attack"})
    with pytest.raises(ScenarioError, match=r"^scenario: name: is 1,001 characters long"):
        Scenario(generals=4, m=1, name=long)
    script = [{"path": [0, 1], "receiver": 2, "value": "attack"}] * 100_001
    with pytest.raises(
        ScenarioError,
        match=r"^<data>: traitors.1.messages: has 100,001 entries, more than the 100,000 a script may have$",
    ):
        scenario_from_dict(
            {"generals": 4, "m": 1, "traitors": {"1": {"strategy": "scripted", "messages": script}}}
        )


def test_a_long_value_in_a_file_is_refused_before_it_is_built(tmp_path: Path) -> None:
    assert _errors(tmp_path, "generals: " + "9" * 5000 + "\nm: 1\n") == [
        "1:11: a value is 5,000 characters long, more than the 1,000 a scenario allows"
    ]


# --- YAML built to exhaust the loader -----------------------------------------


def _laughs(levels: int) -> str:
    """A "billion laughs" alias bomb, inside a strategy's arguments: 9**levels values once expanded."""
    rows = ["      l0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"      l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "generals: 4\nm: 1\ntraitors:\n  1:\n    strategy: random\n    junk:\n" + "\n".join(rows) + "\n"


def _load_bounded(tmp_path: Path, text: str) -> list[str]:
    """Load ``text`` in a child process, killed after a minute: inputs like these used to never finish."""
    path = tmp_path / "attack.yaml"
    path.write_text(text)
    code = (
        "import sys\nfrom om_actors import ScenarioError, load_scenario\n"
        "try:\n    load_scenario(sys.argv[1])\nexcept ScenarioError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stderr == ""
    return [line.removeprefix(f"{path}:") for line in done.stdout.splitlines()]


def test_an_alias_bomb_in_strategy_arguments_is_refused(tmp_path: Path) -> None:
    assert _load_bounded(tmp_path, _laughs(9)) == [
        "13:21: holds more than 1,000,000 values, each alias counted in full: too many to load"
    ]


def test_a_few_aliases_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "generals: 4\nm: 1\nvalues: &v [go, stay]\nexpect: {decision: go}\norder: go\ndefault: stay\n"
    )
    assert load_scenario(path).values == ("go", "stay")


@pytest.mark.parametrize("opening", ["[" * 100_000, "[a, " * 100_000, "{a: " * 100_000])
def test_deep_nesting_is_refused(tmp_path: Path, opening: str) -> None:
    text = f"generals: 4\nm: 1\ntraitors:\n  1: {{strategy: random, junk: {opening}}}\n"
    [line] = _load_bounded(tmp_path, text)
    assert line.endswith(": lists and mappings nest deeper than 64 levels")
    assert line.startswith("4:")


def test_deep_arguments_in_data_are_refused() -> None:
    junk: object = "bottom"
    for _ in range(100):
        junk = [junk]
    with pytest.raises(
        ScenarioError, match=r"^<data>: traitors.1.junk: arguments nest deeper than 64 levels$"
    ):
        scenario_from_dict({"generals": 4, "m": 1, "traitors": {"1": {"strategy": "random", "junk": junk}}})


# --- scripted messages name messages the traitor really sends -------------------


def test_impossible_scripted_messages_are_located(tmp_path: Path) -> None:
    text = """\
generals: 5
m: 2
traitors:
  2:
    strategy: scripted
    messages:
      - {path: [0, 2], receiver: 1, value: retreat}
      - {path: [1, 2], receiver: 3, value: retreat}
      - {path: [0, 2, 2], receiver: 3, value: retreat}
      - {path: [0, 9, 2], receiver: 3, value: retreat}
      - {path: [0, 1, 3, 2], receiver: 4, value: retreat}
      - {path: [0, 1], receiver: 3, value: retreat}
      - {path: [0, 2], receiver: 7, value: retreat}
      - {path: [0, 1, 2], receiver: 1, silent: true}
      - {path: [0, 2], receiver: 1, silent: true}
      - {path: [], receiver: 1, silent: true}
      - {path: [0, 2], receiver: 2, value: retreat}
      - {path: 3, receiver: 1, value: retreat}
"""
    assert _errors(tmp_path, text) == [
        "8:9: traitors.2.messages.1: path must start with the commander (0), not 1",
        "9:9: traitors.2.messages.2: path repeats general 2",
        "10:9: traitors.2.messages.3: path names general 9, but ids run from 0 to 4",
        "11:9: traitors.2.messages.4: path has 4 generals, but OM(2) paths have at most 3",
        "12:9: traitors.2.messages.5: path must end with general 2, the traitor itself, "
        "as all its messages do",
        "13:9: traitors.2.messages.6: receiver 7: ids run from 0 to 4",
        "14:9: traitors.2.messages.7: receiver 1 is on the path, "
        "and nobody sends a general its own path back",
        "15:9: traitors.2.messages.8: the same message as messages.0: script each message once",
        "16:9: traitors.2.messages.9: path is empty",
        "17:9: traitors.2.messages.10: receiver 2 is on the path, "
        "and nobody sends a general its own path back",
        "18:9: traitors.2.messages.11: path must be a list of general ids",
    ]


def test_scripted_values_must_be_among_the_values_as_constant_ones_are(tmp_path: Path) -> None:
    text = """\
generals: 4
m: 1
traitors:
  1: {strategy: constant, value: atack}
  2:
    strategy: scripted
    messages:
      - {path: [0, 2], receiver: 1, value: atack}
      - {path: [0, 2], receiver: 3, value: retreat}
      - path: [0, 2]
        receiver: 1
        value: Attack
"""
    assert _errors(tmp_path, text) == [
        "4:34: traitors.1.value: 'atack' is not one of values ['attack', 'retreat']",
        "8:44: traitors.2.messages.0.value: 'atack' is not one of values ['attack', 'retreat']",
        "10:9: traitors.2.messages.2: the same message as messages.0: script each message once",
        "12:16: traitors.2.messages.2.value: 'Attack' is not one of values ['attack', 'retreat']",
    ]


def test_scripted_values_in_code_are_checked_against_the_values_given() -> None:
    script = {"messages": [{"path": [0, 2], "receiver": 1, "value": "attack"}]}
    with pytest.raises(ScenarioError) as caught:
        Scenario(
            generals=4,
            m=1,
            values=("go", "stay"),
            default="stay",
            traitors={2: TraitorSpec("scripted", script)},
        )
    assert (
        str(caught.value)
        == "scenario: traitors.2.messages.0.value: 'attack' is not one of values ['go', 'stay']"
    )
    script["messages"] = [
        {"path": [0, 2], "receiver": 1, "value": "stay"},
        {"path": [0, 2], "receiver": 3, "silent": True},
    ]
    valid = Scenario(
        generals=4, m=1, values=("go", "stay"), default="stay", traitors={2: TraitorSpec("scripted", script)}
    )
    assert valid.traitors[2].args == script


def test_a_scripted_commander_and_several_instances(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "generals: 4\nm: 1\ninstances: [{commander: 0, order: attack}, {commander: 1, order: attack}]\n"
        "traitors:\n  1:\n    strategy: scripted\n    messages:\n"
        "      - {path: [1], receiver: 2, value: retreat}\n"
        "      - {path: [0, 1], receiver: 3, silent: true}\n"
    )
    assert load_scenario(path).traitors[1].strategy == "scripted"


def test_a_script_entry_may_name_its_round_and_om_checks_it_against_the_path(tmp_path: Path) -> None:
    text = """\
generals: 5
m: 2
traitors:
  2:
    strategy: scripted
    messages:
      - {round: 2, path: [0, 2], receiver: 1, value: retreat}
      - {round: 3, path: [0, 2], receiver: 3, value: retreat}
      - {round: 0, path: [0, 2], receiver: 4, value: retreat}
      - {round: 4, path: [0, 1, 2], receiver: 4, value: retreat}
      - {path: [0, 2], receiver: 1, silent: true}
"""
    assert _errors(tmp_path, text) == [
        "8:9: traitors.2.messages.1: a path of 2 generals is sent in round 2, not round 3",
        "9:9: traitors.2.messages.2: round must be a round number, 1 or more, not 0",
        "10:9: traitors.2.messages.3: round 4, but OM(2) runs 3 rounds",
    ]  # an entry with a round and one without are two entries: the round's wins in its round


def test_a_pathless_algorithms_script_is_checked_round_by_round(tmp_path: Path, gossip: Algorithm) -> None:
    text = """\
algorithm: gossip
generals: 4
m: 1
traitors:
  2:
    strategy: scripted
    messages:
      - {round: 2, path: [2], receiver: 1, value: retreat}
      - {round: 3, path: [2], receiver: 1, value: attack}
      - {path: [2], receiver: 3, value: attack}
      - {round: 1, path: [2], receiver: 1, value: attack}
      - {path: [2], receiver: 2, value: attack}
      - {path: [0, 2], receiver: 1, value: attack}
      - {round: 3, path: [2], receiver: 1, silent: true}
"""
    assert _errors(tmp_path, text) == [
        "11:9: traitors.2.messages.3: general 2 sends nothing along path [2] to general 1 "
        "in round 1 of GOSSIP(1)",
        "12:9: traitors.2.messages.4: general 2 sends nothing along path [2] to general 2 "
        "in any round of GOSSIP(1)",
        "13:9: traitors.2.messages.5: general 2 sends nothing along path [0, 2] to general 1 "
        "in any round of GOSSIP(1)",
        "14:9: traitors.2.messages.6: the same message as messages.1: script each message once",
    ]
    valid = load_scenario("\n".join(text.splitlines()[:-4]) + "\n")
    assert scenario_from_dict(valid.to_dict()) == valid


def test_a_script_built_in_code_is_written_as_a_file_writes_it(tmp_path: Path) -> None:
    entries = [
        {"path": [0, 2], "receiver": 1, "value": "attack"},
        {"round": 2, "path": [0, 2], "receiver": 3, "silent": True},
    ]
    scenario = Scenario(generals=4, m=1, traitors={2: SignedScripted(messages=entries)}, algorithm="sm")
    assert scenario.to_dict()["traitors"] == {"2": {"strategy": "scripted", "messages": entries}}
    assert scenario_from_dict(scenario.to_dict()).traitors[2] == TraitorSpec(
        "scripted", {"messages": entries}
    )


def test_any_object_with_a_choose_method_is_a_traitor_in_code() -> None:
    liar = types.SimpleNamespace(choose=lambda round, path, receiver, value, rng: value)
    assert Scenario(generals=4, m=1, traitors={1: liar}).strategies() == {1: liar}


# --- the algorithm key ------------------------------------------------------------

SM_STRATEGIES = "late, loyal, random, scripted, silent, split, or module:Class"


def test_the_algorithm_is_om_unless_named_and_is_always_written() -> None:
    scenario = load_scenario("generals: 4\nm: 1\n")
    assert (scenario.algorithm, scenario.rules, scenario.title, scenario.rounds) == (
        "om",
        ORAL_MESSAGES,
        "OM(1)",
        2,
    )
    assert scenario.to_dict()["algorithm"] == "om"
    signed = load_scenario("generals: 4\nm: 1\nalgorithm: sm\n")
    assert (signed.rules, signed.title, signed.to_dict()["algorithm"]) == (SIGNED_MESSAGES, "SM(1)", "sm")
    assert scenario_from_dict(signed.to_dict()) == signed


def test_every_shipped_scenario_names_a_registered_algorithm() -> None:
    for path in SCENARIOS.glob("*.yaml"):
        algorithm = load_scenario(path).algorithm
        assert algorithm in REGISTRY, path.name
        if not re.search(r"^algorithm:", path.read_text(), flags=re.MULTILINE):
            assert algorithm == DEFAULT_ALGORITHM == "om", path.name  # every file written before the key
    assert load_scenario(SCENARIOS / "three-generals-signed.yaml").algorithm == "sm"


def test_an_unknown_algorithm_is_located_and_names_the_known_ones(tmp_path: Path) -> None:
    known = ", ".join(sorted(REGISTRY))  # om, sm, and any algorithm built in later
    assert _errors(tmp_path, "generals: seven\nm: 1\nalgorithm: pbft\ntraitors: {1: flip}\n") == [
        "1:11: generals: expected an integer, got 'seven'",
        f"3:12: algorithm: unknown algorithm 'pbft': use one of {known}",
    ]
    assert _errors(tmp_path, "generals: 4\nm: 1\nalgorithm: [sm]\n") == [
        "3:12: algorithm: expected a string, got a list"
    ]
    with pytest.raises(ScenarioError) as caught:
        Scenario(generals=4, m=1, algorithm="SM")
    assert (
        str(caught.value)
        == f"scenario: algorithm: unknown algorithm 'SM': did you mean 'sm'? use one of {known}"
    )
    assert _errors(tmp_path, "generals: 4\nm: 1\nalgorithm: Om\n") == [
        f"3:12: algorithm: unknown algorithm 'Om': did you mean 'om'? use one of {known}"
    ]


def test_sm_refuses_an_army_with_nothing_to_agree_on(tmp_path: Path) -> None:
    assert _errors(tmp_path, "algorithm: sm\ngenerals: 3\nm: 2\n") == [
        "3:4: m: must be at most generals - 2 = 1: with n <= m + 1 generals and up to m traitors "
        "at most one general is loyal, so there is nothing to agree on"
    ]
    assert load_scenario("algorithm: sm\ngenerals: 3\nm: 1\n").rounds == 2


def test_sm_builds_its_own_strategies_by_name_with_m_filled_in() -> None:
    scenario = Scenario(
        algorithm="sm",
        generals=5,
        m=2,
        traitors={0: "split", 1: "late", 2: TraitorSpec("late", {"receiver": 4}), 3: "silent"},
    )
    assert scenario.strategies() == {
        0: SignedSplit(DEFAULT_VALUES),
        1: Late(m=2),
        2: Late(m=2, receiver=4),
        3: Silent(),
    }


def test_a_strategy_of_another_algorithm_is_refused_with_this_ones_names(tmp_path: Path) -> None:
    assert _errors(tmp_path, "algorithm: sm\ngenerals: 4\nm: 1\ntraitors: {1: flip, 2: lat}\n") == [
        f"4:15: traitors.1.strategy: strategy 'flip' is OM(m)'s, not SM(m)'s: use one of {SM_STRATEGIES}",
        f"4:24: traitors.2.strategy: unknown strategy 'lat': did you mean 'late'? use one of {SM_STRATEGIES}",
    ]
    assert _errors(tmp_path, "generals: 4\nm: 1\ntraitors: {1: late}\n") == [
        "3:15: traitors.1.strategy: strategy 'late' is SM(m)'s, not OM(m)'s: use one of "
        "constant, flip, loyal, random, scripted, silent, split, or module:Class"
    ]


@pytest.mark.parametrize(
    ("receiver", "error"),
    [
        ("99", "no general 99: ids run from 0 to 3"),
        ("-1", "no general -1: ids run from 0 to 3"),
        ("two", "expected a general id, got 'two'"),
        ("true", "expected a general id, got True"),
        ("1.0", "expected a general id, got 1.0"),
        ("1", "general 1 is this traitor: a late release goes to another general"),
        ("0", "general 0 is the commander, on every chain: a late release never goes to it"),
    ],
)
def test_a_late_receiver_that_never_gets_a_release_is_refused_where_it_is_written(
    tmp_path: Path, receiver: str, error: str
) -> None:
    text = f"algorithm: sm\ngenerals: 4\nm: 1\ntraitors:\n  1: {{strategy: late, receiver: {receiver}}}\n"
    assert _errors(tmp_path, text) == [f"5:33: traitors.1.receiver: {error}"]


def test_a_late_receiver_is_checked_in_code_and_against_every_instance() -> None:
    with pytest.raises(
        ScenarioError, match=r"^scenario: traitors\.2\.receiver: no general 4: ids run from 0 to 3$"
    ):
        Scenario(algorithm="sm", generals=4, m=1, traitors={2: TraitorSpec("late", {"receiver": 4})})
    # general 0 commands one instance, general 1 the other: 0 can get a release in the second
    instances = [Instance(0, "attack"), Instance(1, "retreat")]
    late = {2: TraitorSpec("late", {"receiver": 0})}
    assert Scenario(algorithm="sm", generals=4, m=1, instances=instances, traitors=late).strategies() == {
        2: Late(m=1, receiver=0)
    }
    with pytest.raises(
        ScenarioError, match=r"traitors\.2\.receiver: general 0 is the commander, on every chain"
    ):
        Scenario(algorithm="sm", generals=4, m=1, instances=instances[:1] * 2, traitors=late)
    assert Scenario(algorithm="sm", generals=4, m=1, traitors={2: TraitorSpec("late", {"receiver": None})})


def test_filled_in_arguments_cannot_be_set_by_a_file(tmp_path: Path) -> None:
    assert _errors(tmp_path, "algorithm: sm\ngenerals: 4\nm: 1\ntraitors: {1: {strategy: late, m: 3}}\n") == [
        "4:32: traitors.1.m: strategy 'late' takes no argument 'm'"
    ]


def test_warnings_are_the_algorithms_own() -> None:
    traitor_commander = {0: TraitorSpec("split")}
    assert Scenario(generals=3, m=1, traitors=traitor_commander).warnings == [
        "3 generals are fewer than 3m + 1 = 4: OM(1) cannot guarantee agreement, "
        "and traitors can make loyal generals disagree"
    ]
    assert Scenario(algorithm="sm", generals=3, m=1, traitors=traitor_commander).warnings == []
    assert Scenario(algorithm="sm", generals=4, m=1, traitors={0: "split", 1: "silent"}).warnings == [
        "2 traitors are more than m = 1: SM(1) is only built to survive 1"
    ]


def test_each_instance_has_its_setup_with_the_seed_and_its_index() -> None:
    scenario = Scenario(
        generals=4, m=1, seed=7, instances=[Instance(0, "attack"), Instance(2, "retreat")], algorithm="sm"
    )
    assert scenario.setups == (
        Setup(4, 1, 0, DEFAULT_VALUES, "retreat", seed=7, instance=0),
        Setup(4, 1, 2, DEFAULT_VALUES, "retreat", seed=7, instance=1),
    )
    assert (scenario.setup, scenario.setup_for(1)) == scenario.setups


def test_sm_scripts_name_the_messages_sm_sends(tmp_path: Path) -> None:
    text = """\
algorithm: sm
generals: 4
m: 1
traitors:
  2:
    strategy: scripted
    messages:
      - {path: [0, 2], receiver: 1, value: retreat}
      - {path: [0, 3, 2], receiver: 1, value: retreat}
      - {path: [2], receiver: 1, value: retreat}
"""
    assert _errors(tmp_path, text) == [
        "9:9: traitors.2.messages.1: path has 3 generals, but SM(1) paths have at most 2",
        "10:9: traitors.2.messages.2: path must start with the commander (0), not 2",
    ]
    valid = load_scenario("\n".join(text.splitlines()[:-2]) + "\n")
    assert isinstance(valid.strategy_for(2), SignedScripted)


def test_an_algorithm_without_paths_has_its_own_bounds_and_strategies(echo: Algorithm) -> None:
    scenario = Scenario(algorithm="echo", generals=3, m=4, traitors={2: "split"})  # OM's bound on m is OM's
    assert (scenario.title, scenario.rounds, scenario.warnings) == (
        "ECHO(4)",
        2,
        ["echo promises nothing with a traitor"],
    )
    with pytest.raises(ScenarioError) as caught:
        Scenario(algorithm="echo", generals=3, m=1, traitors={2: "flip"})
    assert str(caught.value) == (
        "scenario: traitors.2.strategy: strategy 'flip' is OM(m)'s, not ECHO(m)'s: "
        "use one of loyal, silent, split, or module:Class"
    )


@pytest.mark.parametrize(
    ("algorithm", "name"),
    [(rules.name, name) for rules in (ORAL_MESSAGES, SIGNED_MESSAGES) for name in sorted(rules.strategies())],
)
def test_every_built_in_strategy_builds_from_its_name_alone_or_says_what_it_needs(
    algorithm: str, name: str
) -> None:
    cls = algorithm_named(algorithm).strategies()[name]
    needed = required_parameters(cls)
    if needed:
        with pytest.raises(ScenarioError, match=f"traitors.1: strategy '{name}' needs argument"):
            Scenario(algorithm=algorithm, generals=5, m=2, traitors={1: name})
        return
    scenario = Scenario(algorithm=algorithm, generals=5, m=2, traitors={1: name})
    assert type(scenario.strategy_for(1)) is cls
    assert scenario_from_dict(scenario.to_dict()) == scenario
