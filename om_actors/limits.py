"""How big a run may be, checked before anything is allocated.

OM(m) sends ``sum(P(n - 1, k) for k in 1..m + 1)`` messages, which passes
any machine's memory long before the numbers look large: forty generals
with m = 12 would send about 5 * 10**19.  Every entry point -- a scenario
file, a log, a network request, a library call -- goes through
:func:`size_problem` first, so an impossible run is refused in
microseconds with its count, instead of dying in an allocation.

The limit is the user's, never the input's: it comes from the environment
variable :data:`LIMIT_VARIABLE` (or the CLI's ``--max-messages``, which
sets it), so a scenario, a log or a request cannot raise it for itself.
"""

from __future__ import annotations

import os

from .errors import OmActorsError

DEFAULT_MAX_MESSAGES = 200_000_000
"""Messages a run may send by default: room for nineteen generals with m = 6 (about 175 million)."""

LIMIT_VARIABLE = "OM_ACTORS_MAX_MESSAGES"


class LimitError(OmActorsError):
    """The limit itself is set to something that is not a positive whole number."""


def max_messages() -> int:
    """The limit in force: :data:`LIMIT_VARIABLE` if set, else :data:`DEFAULT_MAX_MESSAGES`."""
    given = os.environ.get(LIMIT_VARIABLE)
    if given is None or not given.strip():
        return DEFAULT_MAX_MESSAGES
    text = given.strip().replace("_", "").replace(",", "")
    if not text.isdigit() or int(text) < 1 or len(text) > 30:
        raise LimitError(f"{LIMIT_VARIABLE}={given!r}: expected a positive whole number of messages")
    return int(text)


def bounded_count(generals: int, m: int, instances: int, limit: int) -> int:
    """Messages the run sends, or the first partial sum past ``limit`` -- whichever comes first.

    The cost is at most ``m + 1`` multiplications of numbers no bigger than
    ``limit * generals``, whatever ``generals`` and ``m`` are, so even
    ``10**35`` is answered at once.
    """
    if generals < 2 or m < 0 or instances < 1:
        return 0
    total, level = 0, 1
    for k in range(1, m + 2):
        level *= generals - k  # P(n - 1, k) from P(n - 1, k - 1)
        if level <= 0:
            break
        total += level * instances
        if total > limit:
            break
    return total


def size_problem(generals: int, m: int, instances: int = 1, *, limit: int | None = None) -> str | None:
    """Why a run of this size is refused, with its count and how to raise the limit; ``None`` if it fits."""
    limit = max_messages() if limit is None else limit
    count = bounded_count(generals, m, instances, limit)
    if count <= limit:
        return None
    if count == _exact_if_small(generals, m, instances, limit):
        amount = f"{count:,} messages"
    else:
        amount = f"more than {limit:,} messages"
    return (
        f"{generals:,} generals with m = {m:,} send {amount}, over the limit of {limit:,}: "
        f"set {LIMIT_VARIABLE} (or --max-messages) to raise it, if this machine has the memory"
    )


def _exact_if_small(generals: int, m: int, instances: int, limit: int) -> int | None:
    """The exact count when computing it stays cheap (a few hundred digits at most)."""
    if m > 1000 or generals.bit_length() * (m + 1) > 2048:
        return None
    return bounded_count(generals, m, instances, 10**700)
