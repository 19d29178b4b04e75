"""The algorithms a scenario may name, by name: the built-in ones and any a program adds.

Nothing is ever looked up by importing a name.  Only algorithms this module
registers, or that the program itself registers with :func:`register`, are
here, so a log or a network request naming an algorithm chooses among those
and nothing else.

The built-in algorithms are registered by name, and each one's module is
imported the first time it is looked up: listing the names (for
``--algorithm``'s choices, say) costs nothing, and a run of OM(m) never
imports SM(m)'s module.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .algorithm import Algorithm

DEFAULT_ALGORITHM = "om"

BUILT_IN = {
    "om": "om_actors.oral:ORAL_MESSAGES",
    "sm": "om_actors.signed:SIGNED_MESSAGES",
    "phase-king": "om_actors.phase_king:PHASE_KING",
    "phase-king-3t": "om_actors.phase_king:GRADED_PHASE_KING",
}
"""The built-in algorithms' names, each with the ``module:attribute`` that holds it."""


class Registry(MutableMapping[str, "Algorithm"]):
    """Algorithms by name, in the order they were registered; a built-in one is imported when first looked up.

    A mapping like any other to its callers -- ``in``, ``sorted(REGISTRY)``
    and ``len`` never import anything, ``[]``, ``get`` and ``values`` give
    the algorithm itself -- so only what an algorithm's module costs is
    deferred, not what the registry says.
    """

    def __init__(self, built_in: dict[str, str]) -> None:
        self._entries: dict[str, Algorithm | str] = dict(built_in)

    def __getitem__(self, name: str) -> Algorithm:
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._entries[name] = _imported(entry)
        return entry

    def __setitem__(self, name: str, algorithm: Algorithm) -> None:
        self._entries[name] = algorithm

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({', '.join(self._entries)})"


def _imported(where: str) -> Algorithm:
    """The built-in algorithm ``where`` names, as ``module:attribute``."""
    module, _, attribute = where.partition(":")
    algorithm: Algorithm = getattr(importlib.import_module(module), attribute)
    return algorithm


REGISTRY: MutableMapping[str, Algorithm] = Registry(BUILT_IN)
"""Every algorithm a scenario may name, by name."""


def register(algorithm: Algorithm) -> Algorithm:
    """Make ``algorithm`` available to scenarios under its name.

    Registering a second algorithm under a taken name is refused: a
    scenario's ``algorithm: om`` must mean one thing for the whole program.
    So is a payload that the log could not write: one that is no attrs
    class, or whose fields take a name the message's own line already has
    (:data:`WRITTEN_BESIDE_PAYLOAD`).
    """
    from .algorithm import Algorithm
    from .errors import OmActorsError

    if not isinstance(algorithm, Algorithm):
        raise OmActorsError(f"{algorithm!r} is not an Algorithm")
    problem = _payload_problem(algorithm)
    if problem is not None:
        raise OmActorsError(f"algorithm {algorithm.name!r} cannot be registered: {problem}")
    taken = REGISTRY.get(algorithm.name)
    if taken is not None and taken is not algorithm:
        raise OmActorsError(f"an algorithm named {algorithm.name!r} is already registered: {taken!r}")
    REGISTRY[algorithm.name] = algorithm
    return algorithm


if TYPE_CHECKING:
    WRITTEN_BESIDE_PAYLOAD: frozenset[str]


def __getattr__(name: str) -> Any:
    """:data:`WRITTEN_BESIDE_PAYLOAD`, worked out from the events' fields when first asked for."""
    if name == "WRITTEN_BESIDE_PAYLOAD":
        return _written_beside_payload()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _written_beside_payload() -> frozenset[str]:
    """The keys a message's log line holds besides its payload's fields: ``round``, ``sender``, ``reason``...

    A message line is one flat mapping, the payload's fields written in place
    of ``payload`` (:func:`om_actors.log.event_fields`), so a payload field of
    one of these names would overwrite the event's own, or be overwritten, and
    the log would say something else than what was sent.
    """
    import attrs

    from .events import MessageRejected, MessageSent

    return frozenset(
        {"event"}  # the log names every line's event under this key
        | {
            field.name
            for event in (MessageSent, MessageRejected)
            for field in attrs.fields(event)
            if field.name != attrs.fields(MessageSent).payload.name
        }
    )


def _payload_problem(algorithm: Algorithm) -> str | None:
    """Why ``algorithm``'s payload cannot be logged as its messages' fields, or ``None`` if it can."""
    import attrs

    payload = getattr(algorithm, "payload", None)
    if not (isinstance(payload, type) and attrs.has(payload)):
        return f"its payload {payload!r} is not an attrs class: a message's fields are its attrs fields"
    written_beside = _written_beside_payload()
    clashing = sorted({field.name for field in attrs.fields(payload)} & written_beside)
    if clashing:
        taken = ", ".join(sorted(written_beside))
        return (
            f"its payload {payload.__qualname__} has a field named {clashing[0]!r}, which a message's "
            f"log line already holds (it holds {taken}): rename the field"
        )
    return None


def algorithm_named(name: str) -> Algorithm:
    """The registered algorithm called ``name``; :class:`OmActorsError` listing the known ones if none is.

    The error offers the closest known name, case aside (``SM`` is ``sm``),
    as an unknown strategy's does.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    from .errors import OmActorsError
    from .strategies import closest

    known = ", ".join(sorted(REGISTRY))
    close = closest(name, REGISTRY)
    hint = f"did you mean {close!r}? " if close is not None else ""
    raise OmActorsError(f"unknown algorithm {name!r}: {hint}use one of {known}")
