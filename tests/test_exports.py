"""The public API changes only on purpose.

Rules for this file:
- when this test fails, either restore the name or update the list here and
  say so in CHANGELOG.md.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path

import om_actors

PUBLIC = {
    "SCHEMA",
    "Algorithm",
    "Core",
    "DecisionPoint",
    "OralGeneral",
    "OralMessages",
    "OralReason",
    "Outgoing",
    "ProtocolMisuse",
    "Relay",
    "Signed",
    "SignedGeneral",
    "SignedMessages",
    "SignedReason",
    "Step",
    "algorithm_named",
    "register",
    "Constant",
    "EVENT_BUFFER",
    "Decided",
    "Divergence",
    "Event",
    "Expect",
    "Instance",
    "InstanceOutcome",
    "Flip",
    "Forgery",
    "Inconsistency",
    "LogError",
    "LogLine",
    "write_html_report",
    "Loyal",
    "MessageRejected",
    "MessageSent",
    "OmActorsError",
    "Problem",
    "ReplayReport",
    "RandomChoice",
    "Result",
    "RoundEnded",
    "RunStarted",
    "Scenario",
    "ScenarioError",
    "Setup",
    "Simulation",
    "Silent",
    "Split",
    "Strategy",
    "StrategyError",
    "StrategyFailed",
    "TraitorSpec",
    "Verdict",
    "VerdictReached",
    "build_strategy",
    "load_scenario",
    "majority",
    "messages_received",
    "messages_sent",
    "open_simulation",
    "read_log",
    "replay_log",
    "rerun_log",
    "simulate",
    "simulate_asyncio",
    "simulate_sync",
}


def test_public_names_stay_put() -> None:
    exported = {
        name
        for name in dir(om_actors)
        if not name.startswith("_") and not isinstance(getattr(om_actors, name), types.ModuleType)
    }
    assert exported == PUBLIC
    assert set(om_actors.__all__) == PUBLIC


def test_every_public_name_imports_from_the_package() -> None:
    """``from om_actors import X`` and ``*`` give every name, in an interpreter where none is loaded yet."""
    script = (
        f"from om_actors import {', '.join(sorted(PUBLIC))}\n"
        "from om_actors import *\n"
        "import om_actors\n"
        "print(sorted(set(om_actors.__all__) - set(globals())))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_the_type_checker_sees_every_public_name() -> None:
    """Every lazily imported name is also imported under ``TYPE_CHECKING``, where mypy reads it."""
    tree = ast.parse(Path(om_actors.__file__).read_text(encoding="utf-8"))
    checked = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "typing.TYPE_CHECKING"
    )
    seen = {alias.asname for node in checked.body if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert seen == PUBLIC


def test_every_public_name_is_documented() -> None:
    for name in PUBLIC - {"SCHEMA", "EVENT_BUFFER", "Event"}:
        assert getattr(om_actors, name).__doc__, name
