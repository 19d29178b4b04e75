"""A trio application that runs two simulations side by side in one nursery.

One watches its run live through ``open_simulation``; the other just
awaits ``simulate``.  Run it with ``python examples/trio_app.py``.
"""

from __future__ import annotations

from pathlib import Path

import trio

import om_actors

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


async def watch(scenario: om_actors.Scenario) -> None:
    rejected = 0
    async with om_actors.open_simulation(scenario) as simulation:
        async for event in simulation.events():
            if isinstance(event, om_actors.RoundEnded):
                print(f"[{scenario.name}] round {event.round}: {event.messages} messages")
            rejected += isinstance(event, om_actors.MessageRejected)
        result = await simulation.result()
    print(f"[{scenario.name}] success={result.success} rejected={rejected}")


async def run_quietly(scenario: om_actors.Scenario) -> None:
    result = await om_actors.simulate(scenario)
    print(f"[{scenario.name}] agreement={result.agreement} validity={result.validity}")


async def main() -> None:
    seven = om_actors.load_scenario(SCENARIOS / "seven-generals.yaml")
    three = om_actors.load_scenario(SCENARIOS / "three-generals.yaml")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, seven)
        nursery.start_soon(run_quietly, three)


if __name__ == "__main__":
    trio.run(main)
