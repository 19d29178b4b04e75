"""Traitors the built-in strategies do not cover, for tests to name as ``adversaries:Class``."""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Iterable

import attrs
import trio

from om_actors import Forgery
from om_actors.algorithm import Path


@attrs.frozen
class Forge:
    """In ``round``, sends ``value`` along the forged ``path`` instead of every real message."""

    path: Iterable[object]
    round: int = 2
    value: object = "retreat"

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return Forgery(self.path, self.value) if round == self.round else value


@attrs.frozen
class Garbage:
    """Sends things that are not values at all."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return [object(), ["attack"], 42, b"attack", {"v": 1}][receiver % 5]


@attrs.frozen
class Hang:
    """Never finishes sending: a general that hangs."""

    async def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


@attrs.frozen
class Slow:
    """Answers truthfully after ``delay`` seconds per message."""

    delay: float

    async def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        await trio.sleep(self.delay)
        return value


@attrs.frozen
class Crash:
    """Raises for every odd-numbered receiver, lies to the others."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if receiver % 2:
            raise RuntimeError(f"boom at {path}")
        return "retreat"


class Exits:
    """Calls ``sys.exit(0)`` when asked for its first round-2 message: a strategy that would end the run."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if round == 2:
            sys.exit(0)
        return value


class Interrupts:
    """Raises ``KeyboardInterrupt`` when asked for its first round-2 message, as Ctrl-C would there."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if round == 2:
            raise KeyboardInterrupt
        return value


class BatchRaises:
    """Lies as ``flip`` message by message, but its batch form raises: a batched run cannot lose a batch."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return value

    def choose_batch(self, round: int, receiver: int, held: object, values: object) -> object:
        raise RuntimeError(f"no batch for {receiver}")


class FakesCancellation:
    """An async strategy that raises trio's Cancelled itself, which only trio may raise (private API)."""

    async def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        await trio.lowlevel.checkpoint()
        raise trio.Cancelled._create()


@attrs.frozen
class Crashes:
    """Kills its own process with SIGKILL when asked for its first round-2 message: a node that dies."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if round == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return value
