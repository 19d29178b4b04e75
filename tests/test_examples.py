"""The examples in ``examples/`` run, and print what their docstrings promise.

Rules for this file:
- run each example as a user would, in a fresh interpreter from the project
  folder, bounded by a timeout.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run_example(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_trio_app_runs_two_simulations_in_one_nursery() -> None:
    lines = run_example("examples/trio_app.py")
    assert "[seven-generals] success=True rejected=0" in lines
    assert "[three-generals] agreement=True validity=False" in lines
    assert [line for line in lines if "round" in line] == [
        "[seven-generals] round 1: 6 messages",
        "[seven-generals] round 2: 30 messages",
        "[seven-generals] round 3: 120 messages",
    ]


def test_asyncio_app_works_alongside_and_cancels_cleanly() -> None:
    lines = run_example("examples/asyncio_app.py")
    assert lines[0].startswith("seven generals: success=True, decisions={1: 'attack'")
    assert lines[1] == "the loop kept working meanwhile: True"
    assert lines[2].startswith("thirteen generals: cancelled after round 2, log kept ")


def test_custom_traitor_from_code_and_from_yaml() -> None:
    assert run_example("examples/custom_traitor.py") == [
        "grudge-in-code: decisions={0: 'attack', 1: 'attack', 2: 'attack'} success=True",
        "grudge-from-yaml: decisions={0: 'retreat', 1: 'retreat', 3: 'retreat', 4: 'retreat', 5: 'retreat', "
        "6: 'retreat'} success=True",
    ]
    cli = subprocess.run(
        [sys.executable, "-m", "om_actors", "run", "examples/custom_traitor.yaml", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert '"success": true' in cli.stdout


def test_an_algorithm_of_ones_own_runs_logs_and_replays() -> None:
    assert run_example("examples/custom_algorithm.py") == [
        "loyal commander: decisions={0: 'attack', 1: 'attack', 2: 'attack', 3: 'attack'} agreement=True "
        "messages=3",
        "split commander: decisions={1: 'retreat', 2: 'attack', 3: 'retreat'} agreement=False messages=3",
        "replay: ok=True messages=3",
    ]
