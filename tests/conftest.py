"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

HOSTILE = r"""name: "\e[31mRED\e]0;title\a"
generals: 4
m: 1
values: ["\e[5mblink", "\u009b2Jretreat"]
default: "\u009b2Jretreat"
order: "\e[5mblink"
traitors:
  1: {strategy: constant, value: "\u009b2Jretreat"}
  2: flip
"""
"""A scenario whose name, values and strategy argument hold escape sequences and a C1 control (CSI)."""


@pytest.fixture
def hostile_scenario(tmp_path: Path) -> Path:
    """:data:`HOSTILE` as a file, for the tests that check nothing of it reaches a terminal raw."""
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    return path
