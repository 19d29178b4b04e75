"""Each command imports what it runs and nothing else, so none pays for another's dependencies.

A command runs in a fresh interpreter, through the CLI's entry point as
``om-actors`` would, and the modules loaded by the time it ends are what
it cost.  Speed itself is measured by ``bench/run.py``, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

GOLDEN = Path(__file__).parent / "golden" / "seven-generals.jsonl"

NOT_FOR_SEVEN_GENERALS = frozenset(
    {"numpy", "httpx", "cryptography", "hypercorn", "asyncio", "trio_parallel"}
)
"""What a seven-generals run without a log must not import: batched mode, the network, asyncio, workers."""
NETWORK = frozenset({"httpx", "cryptography", "hypercorn"})
DASK = frozenset({"dask", "distributed"})
"""What only ``verify --scheduler`` may import: a run without it never pays for Dask."""
HEAVY = NOT_FOR_SEVEN_GENERALS | {"trio", "rich", "attrs", "cattrs", "ruamel", "structlog", "outcome"}
"""What help, the version and completion never need: any of these would cost more than click itself."""
STARTUP_MODULES = frozenset(
    {
        "om_actors",
        "om_actors._version",
        "om_actors.cli",
        "om_actors.guarded_stdout",
        "om_actors.limits",
        "om_actors.registry",
        "om_actors.terminal",
    }
)
"""Our modules help, the version and completion import: the CLI and the constants its options show."""
ALGORITHM_MODULES = frozenset({"om_actors.oral", "om_actors.signed", "om_actors.phase_king", "om_actors.eig"})

_COMMAND = """
import json, os, sys
for missing in os.environ.get("MISSING", "").split():
    sys.modules[missing] = None  # imports it as if it were not installed
from om_actors.cli import main
try:
    main(sys.argv[2:], prog_name="om-actors")
except SystemExit as exit:
    status = exit.code
with open(sys.argv[1], "w") as file:
    json.dump({"status": status, "modules": sorted(sys.modules)}, file)
"""


@attrs.frozen
class Ran:
    status: int
    stdout: str
    stderr: str
    modules: frozenset[str]

    @property
    def packages(self) -> frozenset[str]:
        """The top-level packages among the modules: ``numpy`` for ``numpy.core``."""
        return frozenset(name.partition(".")[0] for name in self.modules)

    def algorithms(self) -> set[str]:
        return {name for name in self.modules if name in ALGORITHM_MODULES}


def om_actors(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Ran:
    """Run ``om-actors ARGS`` in a fresh interpreter, in ``tmp_path``; what it printed and imported."""
    found = tmp_path / "modules.json"
    done = subprocess.run(
        [sys.executable, "-c", _COMMAND, str(found), *args],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert found.exists(), done.stderr
    data = json.loads(found.read_text())
    return Ran(data["status"], done.stdout, done.stderr, frozenset(data["modules"]))


def python(tmp_path: Path, code: str) -> frozenset[str]:
    """The modules loaded after ``code`` runs in a fresh interpreter."""
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60
    )
    return frozenset(json.loads(done.stdout.splitlines()[-1]))


def test_seven_generals_without_a_log_imports_no_batching_network_asyncio_or_workers(tmp_path: Path) -> None:
    ran = om_actors(tmp_path, "run", "seven-generals")
    assert ran.status == 0
    assert ran.stdout.splitlines()[0].startswith("seven-generals: OM(2) on 7 generals (3 rounds)")
    assert 'SUCCESS: all loyal generals agreed on "attack"' in ran.stdout
    assert sorted(ran.packages & NOT_FOR_SEVEN_GENERALS) == []
    assert ran.algorithms() == {"om_actors.oral"}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["run", "--help"],
        ["verify", "--help"],
    ],
    ids=" ".join,
)
def test_help_and_the_version_import_only_click_and_the_cli(tmp_path: Path, args: list[str]) -> None:
    ran = om_actors(tmp_path, *args)
    assert ran.status == 0
    assert "om-actors" in ran.stdout
    assert sorted(ran.packages & HEAVY) == []
    assert sorted({name for name in ran.modules if name.startswith("om_actors")} - STARTUP_MODULES) == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("om-actors ru", ["run"]),
        ("om-actors run --l", ["--log", "--log-messages"]),
        ("om-actors verify --algorithm ", ["om", "phase-king", "phase-king-3t", "sm"]),
        ("om-actors verify --adversary ", ["canonical", "exhaustive", "search"]),
        ("om-actors run --mode ", ["per-message", "batched", "auto"]),
    ],
)
def test_completion_offers_the_real_choices_and_imports_only_click_and_the_cli(
    tmp_path: Path, words: str, expected: list[str]
) -> None:
    completing = {"_OM_ACTORS_COMPLETE": "bash_complete", "COMP_WORDS": words}
    completing["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    ran = om_actors(tmp_path, env=completing)
    assert ran.status == 0
    assert ran.stdout.splitlines() == [f"plain,{choice}" for choice in expected]
    assert sorted(ran.packages & HEAVY) == []
    assert sorted({name for name in ran.modules if name.startswith("om_actors")} - STARTUP_MODULES) == []


def test_the_completed_choices_are_those_the_commands_take() -> None:
    """The names completion offers without importing verify or an algorithm are the ones they have."""
    from om_actors import verify
    from om_actors.limits import ADVERSARIES, VERIFY_BUDGET
    from om_actors.registry import BUILT_IN, REGISTRY

    assert set(ADVERSARIES) == set(VERIFY_BUDGET) == set(verify._FAMILIES)
    assert [REGISTRY[name].name for name in BUILT_IN] == list(BUILT_IN)


def test_a_scenario_built_in_code_runs_without_yaml(tmp_path: Path) -> None:
    """An app that builds its Scenario in code never reads YAML, so it never pays for ruamel.yaml."""
    loaded = python(
        tmp_path,
        "import om_actors\n"
        "result = om_actors.simulate_sync(om_actors.Scenario(generals=4, m=1, traitors={1: 'flip'}))\n"
        "assert result.verdict.success",
    )
    assert {"om_actors.orchestrator", "trio"} <= loaded
    assert not {name for name in loaded if name.startswith("ruamel")}


def test_a_scenario_built_in_code_is_checked_and_run_without_cattrs_or_difflib(tmp_path: Path) -> None:
    """cattrs structures files and data, difflib says "did you mean": a scenario made in code needs neither.

    Its fields are checked with the hooks a file's keys go through, so an
    app pays for neither on every start, and a mistake in code is still
    worded as in a file.
    """
    loaded = python(
        tmp_path,
        "import om_actors\n"
        "try:\n"
        "    om_actors.Scenario(generals=4.0, m=1, expect=om_actors.Expect(agreement='yes'))\n"
        "except om_actors.ScenarioError as exc:\n"
        "    assert str(exc).splitlines() == ['scenario: generals: expected an integer, got 4.0',\n"
        "        'scenario: expect.agreement: expected true or false, got \\'yes\\''], str(exc)\n"
        "scenario = om_actors.Scenario(\n"
        "    generals=7, m=2, traitors={1: 'flip', 2: 'split'}, expect=om_actors.Expect(agreement=True),\n"
        "    instances=[om_actors.Instance(0, 'attack'), om_actors.Instance(3, 'retreat')])\n"
        "result = om_actors.simulate_sync(scenario, mode='per-message')\n"
        "assert result.verdict.success and result.unmet_expectations() == []\n"
        "assert result.to_dict()['expected']",
    )
    assert "om_actors.orchestrator" in loaded
    assert sorted(name for name in loaded if name.partition(".")[0] in {"cattrs", "difflib"}) == []


def test_run_without_a_scenario_reads_no_yaml_and_structures_nothing(tmp_path: Path) -> None:
    """``om-actors run`` alone runs the seven generals built in code: no YAML, cattrs or "did you mean"."""
    ran = om_actors(tmp_path, "run")
    assert ran.status == 0
    assert ran.stdout.splitlines()[0].startswith("seven-generals: OM(2) on 7 generals (3 rounds)")
    assert sorted(ran.packages & {"ruamel", "cattrs", "difflib"}) == []


def test_batched_mode_imports_numpy_and_per_message_mode_does_not(tmp_path: Path) -> None:
    batched = om_actors(tmp_path, "run", "seven-generals", "--mode", "batched", "--json")
    per_message = om_actors(tmp_path, "run", "seven-generals", "--mode", "per-message", "--json")
    assert json.loads(batched.stdout)["decisions"] == json.loads(per_message.stdout)["decisions"]
    assert ("numpy" in batched.packages, "numpy" in per_message.packages) == (True, False)


def _command(
    *args: str, status: int = 0, needed: frozenset[str] = frozenset(), allowed: frozenset[str] = frozenset()
) -> Any:
    shown = " ".join(args).replace(str(GOLDEN), GOLDEN.name)
    return pytest.param(list(args), status, needed, allowed | needed, id=shown)


@pytest.mark.parametrize(
    ("args", "status", "needed", "allowed"),
    [
        _command("run", "seven-generals", "--log", "run.jsonl"),
        _command("run", "seven-generals", "--json"),
        _command("scenarios"),
        _command("replay", str(GOLDEN), "--rerun"),
        _command("explain", str(GOLDEN), "--general", "1"),
        _command("show", str(GOLDEN), "--round", "1"),
        _command("compare", "seven-generals", "--algorithms", "om,phase-king"),
        _command("compare", "seven-generals", "--algorithms", "sm", needed=frozenset({"cryptography"})),
        _command("verify", "--generals", "4", "--m", "1", "--jobs", "1", needed=frozenset({"trio_parallel"})),
        _command(
            "verify",
            "--generals",
            "4",
            "--m",
            "1",
            "--scheduler",
            "local:1",
            needed=DASK | {"trio_parallel"},
        ),
        _command(
            "keys",
            "keys",
            "--addresses",
            "127.0.0.1:1,127.0.0.1:2",
            needed=frozenset({"cryptography"}),
            allowed=NETWORK,
        ),
        _command("cluster", "no-such-scenario.yaml", status=2, allowed=NETWORK),
    ],
)
def test_only_the_network_commands_and_sm_import_the_network_and_only_verify_worker_processes(
    tmp_path: Path, args: list[str], status: int, needed: frozenset[str], allowed: frozenset[str]
) -> None:
    """SM signs, so an SM run needs cryptography; ``keys`` writes keys; verify's jobs are processes.

    Dask is imported by ``verify --scheduler`` alone.
    """
    ran = om_actors(tmp_path, *args)
    assert ran.status == status
    found = ran.packages & (NETWORK | DASK | {"trio_parallel"})
    assert sorted(needed - found) == []
    assert sorted(found - allowed) == []


@pytest.mark.parametrize(
    ("missing", "args", "install"),
    [
        ("numpy", ["run", "seven-generals", "--mode", "batched"], "'om_actors[fast]'"),
        ("trio_parallel", ["verify", "--generals", "4", "--m", "1"], "trio-parallel"),
        (
            "distributed",
            ["verify", "--generals", "4", "--m", "1", "--scheduler", "local:2"],
            "'om_actors[dask]'",
        ),
        ("dask", ["verify", "--generals", "4", "--m", "1", "--scheduler", "local:2"], "'om_actors[dask]'"),
        ("httpx", ["keys", "keys", "--addresses", "127.0.0.1:1"], "'om_actors[net]'"),
        ("hypercorn", ["node", "--help"], None),
    ],
    ids=lambda value: value if isinstance(value, str) else " ".join(value or ()),
)
def test_a_dependency_not_installed_is_one_line_naming_it(
    tmp_path: Path, missing: str, args: list[str], install: str | None
) -> None:
    """numpy and the network's packages are extras; what is missing is named by the extra to install."""
    ran = om_actors(tmp_path, *args, env={"MISSING": missing})
    if install is None:  # help needs nothing the command runs with
        assert (ran.status, ran.stderr) == (0, "")
        return
    assert (ran.status, ran.stdout) == (2, "")
    assert ran.stderr.splitlines() == [
        f"error: om-actors {args[0]} needs {missing}, which is not installed: pip install {install}"
    ]


def test_a_scheduler_without_the_dask_extra_is_the_json_error_under_json(tmp_path: Path) -> None:
    args = ["verify", "--generals", "4", "--m", "1", "--scheduler", "local:2", "--json"]
    ran = om_actors(tmp_path, *args, env={"MISSING": "distributed"})
    assert (ran.status, ran.stderr) == (2, "")
    assert (
        json.loads(ran.stdout)["error"]
        == "om-actors verify needs distributed, which is not installed: pip install 'om_actors[dask]'"
    )


def test_a_dependency_not_installed_is_the_json_error_under_json(tmp_path: Path) -> None:
    ran = om_actors(
        tmp_path, "run", "seven-generals", "--mode", "batched", "--json", env={"MISSING": "numpy"}
    )
    assert (ran.status, ran.stderr) == (2, "")
    assert (
        json.loads(ran.stdout)["error"]
        == "om-actors run needs numpy, which is not installed: pip install 'om_actors[fast]'"
    )


def test_importing_the_package_imports_none_of_its_dependencies(tmp_path: Path) -> None:
    loaded = python(tmp_path, "import om_actors")
    assert sorted({name.partition(".")[0] for name in loaded} & HEAVY) == []
    assert sorted(name for name in loaded if name.startswith("om_actors.")) == ["om_actors._version"]


def test_naming_a_public_name_imports_its_module(tmp_path: Path) -> None:
    loaded = python(tmp_path, "from om_actors import Scenario")
    assert "om_actors.scenario" in loaded
    assert "om_actors.orchestrator" not in loaded


def test_listing_the_registered_algorithms_imports_none_of_them(tmp_path: Path) -> None:
    listing = "assert sorted(REGISTRY) and 'sm' in REGISTRY and len(REGISTRY) == 4"
    loaded = python(tmp_path, f"from om_actors.registry import REGISTRY\n{listing}")
    assert sorted(loaded & ALGORITHM_MODULES) == []
    looked_up = python(tmp_path, "from om_actors.registry import REGISTRY\nREGISTRY['om']")
    assert sorted(looked_up & ALGORITHM_MODULES) == ["om_actors.oral"]
