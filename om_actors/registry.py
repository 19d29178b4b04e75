"""The algorithms a scenario may name, by name: the built-in ones and any a program adds.

Nothing is ever looked up by importing a name.  Only algorithms this module
registers, or that the program itself registers with :func:`register`, are
here, so a log or a network request naming an algorithm chooses among those
and nothing else.
"""

from __future__ import annotations

from .algorithm import Algorithm
from .errors import OmActorsError
from .oral import ORAL_MESSAGES
from .phase_king import GRADED_PHASE_KING, PHASE_KING
from .signed import SIGNED_MESSAGES

REGISTRY: dict[str, Algorithm] = {}
"""Every algorithm a scenario may name, by name."""

DEFAULT_ALGORITHM = "om"


def register(algorithm: Algorithm) -> Algorithm:
    """Make ``algorithm`` available to scenarios under its name.

    Registering a second algorithm under a taken name is refused: a
    scenario's ``algorithm: om`` must mean one thing for the whole program.
    """
    if not isinstance(algorithm, Algorithm):
        raise OmActorsError(f"{algorithm!r} is not an Algorithm")
    taken = REGISTRY.get(algorithm.name)
    if taken is not None and taken is not algorithm:
        raise OmActorsError(f"an algorithm named {algorithm.name!r} is already registered: {taken!r}")
    REGISTRY[algorithm.name] = algorithm
    return algorithm


def algorithm_named(name: str) -> Algorithm:
    """The registered algorithm called ``name``; :class:`OmActorsError` listing the known ones if none is."""
    found = REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted(REGISTRY))
        raise OmActorsError(f"unknown algorithm {name!r}: use one of {known}")
    return found


register(ORAL_MESSAGES)
register(SIGNED_MESSAGES)
register(PHASE_KING)
register(GRADED_PHASE_KING)
