"""An asyncio application that simulates while doing other work, and cancels a run.

The first simulation runs as trio's guest on this loop while a heartbeat
task keeps ticking; the second is cancelled partway, and its log keeps every
line written before the cancel.  Run it with ``python examples/asyncio_app.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import om_actors

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


async def heartbeat(beats: list[int]) -> None:
    while True:
        beats.append(len(beats))
        await asyncio.sleep(0)


async def main() -> None:
    beats: list[int] = []
    ticking = asyncio.create_task(heartbeat(beats))
    seven = om_actors.load_scenario(SCENARIOS / "seven-generals.yaml")
    result = await om_actors.simulate_asyncio(seven)
    print(f"seven generals: success={result.success}, decisions={dict(result.decisions)}")
    print(f"the loop kept working meanwhile: {len(beats) > 0}")

    thirteen = om_actors.load_scenario(SCENARIOS / "thirteen-generals.yaml")
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "cancelled.jsonl"
        rounds_done: list[int] = []

        def stop_after_round_two(event: om_actors.Event) -> None:
            if isinstance(event, om_actors.RoundEnded):
                rounds_done.append(event.round)
                if event.round == 2:
                    run.cancel()

        run = asyncio.create_task(
            om_actors.simulate_asyncio(thirteen, log=log, on_event=stop_after_round_two)
        )
        try:
            await run
        except asyncio.CancelledError:
            lines = log.read_text().splitlines()
            print(f"thirteen generals: cancelled after round {rounds_done[-1]}, log kept {len(lines)} lines")
    ticking.cancel()
    await asyncio.gather(ticking, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
