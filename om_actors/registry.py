"""The algorithms a scenario may name, by name: the built-in ones and any a program adds.

Nothing is ever looked up by importing a name.  Only algorithms this module
registers, or that the program itself registers with :func:`register`, are
here, so a log or a network request naming an algorithm chooses among those
and nothing else.
"""

from __future__ import annotations

import attrs

from .algorithm import Algorithm
from .errors import OmActorsError
from .events import MessageRejected, MessageSent
from .oral import ORAL_MESSAGES
from .phase_king import GRADED_PHASE_KING, PHASE_KING
from .signed import SIGNED_MESSAGES
from .strategies import closest

REGISTRY: dict[str, Algorithm] = {}
"""Every algorithm a scenario may name, by name."""

DEFAULT_ALGORITHM = "om"


def register(algorithm: Algorithm) -> Algorithm:
    """Make ``algorithm`` available to scenarios under its name.

    Registering a second algorithm under a taken name is refused: a
    scenario's ``algorithm: om`` must mean one thing for the whole program.
    So is a payload that the log could not write: one that is no attrs
    class, or whose fields take a name the message's own line already has
    (:data:`WRITTEN_BESIDE_PAYLOAD`).
    """
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


WRITTEN_BESIDE_PAYLOAD = frozenset(
    {"event"}  # the log names every line's event under this key
    | {
        field.name
        for event in (MessageSent, MessageRejected)
        for field in attrs.fields(event)
        if field.name != attrs.fields(MessageSent).payload.name
    }
)
"""The keys a message's log line holds besides its payload's fields: ``round``, ``sender``, ``reason``...

A message line is one flat mapping, the payload's fields written in place
of ``payload`` (:func:`om_actors.log.event_fields`), so a payload field of
one of these names would overwrite the event's own, or be overwritten, and
the log would say something else than what was sent.
"""


def _payload_problem(algorithm: Algorithm) -> str | None:
    """Why ``algorithm``'s payload cannot be logged as its messages' fields, or ``None`` if it can."""
    payload = getattr(algorithm, "payload", None)
    if not (isinstance(payload, type) and attrs.has(payload)):
        return f"its payload {payload!r} is not an attrs class: a message's fields are its attrs fields"
    clashing = sorted({field.name for field in attrs.fields(payload)} & WRITTEN_BESIDE_PAYLOAD)
    if clashing:
        taken = ", ".join(sorted(WRITTEN_BESIDE_PAYLOAD))
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
    found = REGISTRY.get(name)
    if found is None:
        known = ", ".join(sorted(REGISTRY))
        close = closest(name, REGISTRY)
        hint = f"did you mean {close!r}? " if close is not None else ""
        raise OmActorsError(f"unknown algorithm {name!r}: {hint}use one of {known}")
    return found


register(ORAL_MESSAGES)
register(SIGNED_MESSAGES)
register(PHASE_KING)
register(GRADED_PHASE_KING)
