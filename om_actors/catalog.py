"""The scenarios that ship with om_actors, found by name.

``scenarios/`` at the top of the source tree is the one place they are
written.  The wheel carries a copy as package data, ``om_actors/scenarios``
(pyproject.toml force-includes it), so ``om-actors run seven-generals``
works the same after a plain ``pip install``, in an editable install and in
a source checkout, where the package folder has no copy and the top-level
folder is used instead.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .errors import Problem, ScenarioError
from .scenario import load_scenario

SUFFIX = ".yaml"


@attrs.frozen
class ShippedScenario:
    """One shipped scenario: the name ``om-actors run`` takes, its file, what it runs and what it shows."""

    name: str
    path: Path
    summary: str
    """The first line of the file's opening comment."""
    algorithm: str
    """The algorithm it runs, with its ``m``: ``"OM(2)"``, ``"SM(1)"``."""


def scenario_folder() -> Path | None:
    """Where the shipped scenarios are: the wheel's package data, else the source checkout's folder.

    The checkout's folder counts only next to the project's ``pyproject.toml``,
    so an unrelated ``scenarios`` folder beside an installed package is never
    taken for ours.
    """
    package = Path(__file__).resolve().parent
    if (package / "scenarios").is_dir():
        return package / "scenarios"
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "scenarios").is_dir():
        return checkout / "scenarios"
    return None


def shipped_scenarios() -> list[ShippedScenario]:
    """Every shipped scenario, by name; each file is loaded, to say which algorithm it runs."""
    return [
        ShippedScenario(name, path, _summary(path), load_scenario(path).title)
        for name, path in _shipped_files().items()
    ]


def _shipped_files() -> dict[str, Path]:
    """Each shipped scenario's file, by name, in name order; no file is opened."""
    folder = scenario_folder()
    if folder is None:
        return {}
    return {path.stem: path for path in sorted(folder.glob(f"*{SUFFIX}"), key=lambda path: path.stem)}


def find_scenario(name: str) -> Path:
    """The file of the shipped scenario ``name`` (``seven-generals``, or with its ``.yaml``).

    Raises :class:`ScenarioError` listing the names there are, and the
    closest one, for a name that is not among them.
    """
    stem = name.removesuffix(SUFFIX)
    shipped = _shipped_files()
    if stem in shipped:
        return shipped[stem]
    import difflib  # a name that is found needs no "did you mean"

    close = difflib.get_close_matches(stem, shipped, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    names = ", ".join(shipped) or "none are installed"
    message = f"no such file, nor a shipped scenario of that name: {hint}shipped scenarios: {names}"
    raise ScenarioError([Problem(message)], name)


def _summary(path: Path) -> str:
    """The first line of the comment a scenario file opens with, or ``""`` if it has none."""
    with path.open(encoding="utf-8") as file:
        first = file.readline().strip()
    return first.removeprefix("#").strip() if first.startswith("#") else ""
