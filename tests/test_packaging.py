"""What a user gets from the wheel and the sdist, built here as a release would be.

Rules for this file:
- build with the build backend in this environment, offline: ``pip wheel
  --no-build-isolation`` for the wheel, ``hatchling build`` for the sdist
  (hatchling comes with the ``test`` extra);
- run the installed wheel from a folder with no ``scenarios/`` in it, and
  check that ``om_actors`` was imported from the wheel's files, so a test
  cannot pass on the source checkout by accident;
- each build happens once per test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
READ_BY_THE_TESTS = ["tests", "scenarios", "examples", "docs", "bench"]
"""Folders the test suite (or its type check) reads from the project, besides the package."""
FILES_READ_BY_THE_TESTS = ["README.md", ".ci/run", "pyproject.toml"]


def _quiet(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, installed (not editable) into a folder of its own; that folder."""
    wheels = tmp_path_factory.mktemp("wheels")
    pip = ["-m", "pip", "--disable-pip-version-check"]
    _quiet(*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels))
    (wheel,) = wheels.glob("om_actors-*.whl")
    target = tmp_path_factory.mktemp("site")
    _quiet(*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    return target


def _from_the_wheel(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(target)}  # before the editable install on sys.path
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_installed_wheel_lists_and_runs_its_scenarios_by_name(
    installed_wheel: Path, tmp_path: Path
) -> None:
    imported = _from_the_wheel(installed_wheel, tmp_path, "-c", "import om_actors; print(om_actors.__file__)")
    assert Path(imported.stdout.strip()).is_relative_to(installed_wheel)
    shipped = sorted(path.stem for path in (ROOT / "scenarios").glob("*.yaml"))

    listed = _from_the_wheel(installed_wheel, tmp_path, "-m", "om_actors", "scenarios")
    assert (listed.returncode, listed.stderr) == (0, "")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == shipped

    ran = _from_the_wheel(installed_wheel, tmp_path, "-m", "om_actors", "run", "seven-generals")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("seven-generals: OM(2) on 7 generals (3 rounds)")
    assert "As this scenario expects." in ran.stdout
    assert not (tmp_path / "scenarios").exists()


def test_the_wheel_carries_the_scenarios_folder_unchanged(installed_wheel: Path) -> None:
    packaged = installed_wheel / "om_actors" / "scenarios"
    source = ROOT / "scenarios"
    assert sorted(path.name for path in packaged.iterdir()) == sorted(path.name for path in source.iterdir())
    for path in source.iterdir():
        assert (packaged / path.name).read_bytes() == path.read_bytes()


def test_the_installed_wheel_writes_the_html_report_from_its_template(
    installed_wheel: Path, tmp_path: Path
) -> None:
    assert (installed_wheel / "om_actors" / "templates" / "report.html.j2").is_file()
    ran = _from_the_wheel(
        installed_wheel, tmp_path, "-m", "om_actors", "run", "seven-generals", "--html", "7.html"
    )
    assert ran.returncode == 0, ran.stderr
    assert "SUCCESS: all loyal generals agreed on &#34;attack&#34;" in (tmp_path / "7.html").read_text(
        encoding="utf-8"
    )


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sdist")
    _quiet("-m", "hatchling", "build", "--target", "sdist", "--directory", str(out))
    (archive,) = out.glob("om_actors-*.tar.gz")
    return archive


def test_the_sdist_holds_every_file_the_tests_read(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = set(FILES_READ_BY_THE_TESTS)
    for folder in READ_BY_THE_TESTS:
        wanted |= {
            str(path.relative_to(ROOT))
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
    assert wanted - members == set()


def test_tests_run_from_the_unpacked_sdist(sdist: Path, tmp_path: Path) -> None:
    with tarfile.open(sdist) as archive:
        if sys.version_info >= (3, 12):
            archive.extractall(tmp_path, filter="data")
        else:
            archive.extractall(tmp_path)
    (unpacked,) = tmp_path.iterdir()
    imported = _quiet("-c", "import om_actors; print(om_actors.__file__)", cwd=unpacked)
    assert Path(imported.strip()).is_relative_to(unpacked)
    quick = [
        "tests/test_readme.py",
        "tests/test_examples.py::test_custom_traitor_from_code_and_from_yaml",
        "tests/test_cli.py::test_explain_prints_the_tree_and_dot",
        "tests/test_cli.py::test_scenarios_lists_every_shipped_scenario_with_its_opening_line",
    ]
    _quiet("-m", "pytest", "-q", "-p", "no:cacheprovider", *quick, cwd=unpacked)
