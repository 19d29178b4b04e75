"""Shipped scenarios found by name, from a source checkout and from an installed package.

Rules for this file:
- the real lookup runs against this checkout's ``scenarios/``; an installed
  package is imitated by pointing the module's ``__file__`` into a folder
  laid out like site-packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from om_actors import catalog
from om_actors.errors import ScenarioError

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def test_a_name_finds_its_file_with_or_without_the_suffix() -> None:
    assert catalog.find_scenario("seven-generals") == SCENARIOS / "seven-generals.yaml"
    assert catalog.find_scenario("seven-generals.yaml") == SCENARIOS / "seven-generals.yaml"


def test_an_unknown_name_is_a_scenario_error_naming_the_closest_and_all() -> None:
    with pytest.raises(ScenarioError) as raised:
        catalog.find_scenario("thirteen-general")
    assert raised.value.source == "thirteen-general"
    (problem,) = raised.value.problems
    assert problem.message.startswith(
        "no such file, nor a shipped scenario of that name: did you mean 'thirteen-generals'? "
        "shipped scenarios: four-generals-traitor-commander, "
    )


def test_each_shipped_scenario_has_the_first_line_of_its_opening_comment() -> None:
    shipped = catalog.shipped_scenarios()
    assert [s.name for s in shipped] == sorted(path.stem for path in SCENARIOS.glob("*.yaml"))
    for scenario in shipped:
        first = scenario.path.read_text().splitlines()[0]
        assert first.startswith("# ")
        assert scenario.summary == first[2:].strip()


def _package(site: Path) -> Path:
    package = site / "om_actors"
    package.mkdir(parents=True)
    (package / "catalog.py").touch()
    return package


def test_an_installed_package_uses_its_own_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _package(tmp_path)
    (package / "scenarios").mkdir()
    (package / "scenarios" / "mine.yaml").write_text("# Mine.\ngenerals: 4\nm: 1\n")
    monkeypatch.setattr(catalog, "__file__", str(package / "catalog.py"))
    assert catalog.scenario_folder() == package / "scenarios"
    assert catalog.shipped_scenarios() == [
        catalog.ShippedScenario("mine", package / "scenarios" / "mine.yaml", "Mine.", "OM(1)")
    ]


def test_a_scenarios_folder_beside_an_installed_package_is_not_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = _package(tmp_path)
    (tmp_path / "scenarios").mkdir()  # somebody else's, in site-packages
    (tmp_path / "scenarios" / "theirs.yaml").write_text("generals: 4\nm: 1\n")
    monkeypatch.setattr(catalog, "__file__", str(package / "catalog.py"))
    assert catalog.scenario_folder() is None
    with pytest.raises(ScenarioError, match="shipped scenarios: none are installed"):
        catalog.find_scenario("theirs")


def test_each_shipped_scenario_names_its_algorithm() -> None:
    algorithms = {s.name: s.algorithm for s in catalog.shipped_scenarios()}
    assert (algorithms["three-generals"], algorithms["three-generals-signed"]) == ("OM(1)", "SM(1)")
    assert algorithms["thirteen-generals"] == "OM(4)"
