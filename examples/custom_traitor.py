"""A traitor of your own, used from code and from a scenario file.

A strategy is any object with a ``choose`` method.  This one lies only to
the general it holds a grudge against.  Run it with
``python examples/custom_traitor.py``; the same traitor runs from YAML with
``om-actors run examples/custom_traitor.yaml``.
"""

from __future__ import annotations

import random
from pathlib import Path

import attrs

import om_actors


@attrs.frozen
class Grudge:
    """Tells ``victim`` the opposite of the truth, and everyone else the truth."""

    values: tuple[str, ...]
    victim: int = 1

    def choose(
        self, round: int, path: tuple[int, ...], receiver: int, value: str, rng: random.Random
    ) -> object:
        if receiver != self.victim:
            return value
        return self.values[(self.values.index(value) + 1) % len(self.values)]


def main() -> None:
    in_code = om_actors.Scenario(
        name="grudge-in-code",
        generals=4,
        m=1,
        order="attack",
        traitors={3: Grudge(values=("attack", "retreat"), victim=2)},
    )
    from_file = om_actors.load_scenario(Path(__file__).with_name("custom_traitor.yaml"))
    for scenario in (in_code, from_file):
        result = om_actors.simulate_sync(scenario)
        print(f"{scenario.name}: decisions={dict(result.decisions)} success={result.success}")


if __name__ == "__main__":
    main()
