"""The README's promises: its first two commands, and that CI runs the second.

Rules for this file:
- read the files as text; running the commands is CI's job.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_the_readme_opens_with_install_and_run_then_install_and_test() -> None:
    run, test = _commands()[:2]
    assert run.endswith("om-actors run")
    assert test.endswith("python -m pytest")
    assert all(command.startswith("python3 -m venv .venv && ") for command in (run, test))


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test = _commands()[1]
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
