"""How big a run may be, checked before anything is allocated.

OM(m) sends ``sum(P(n - 1, k) for k in 1..m + 1)`` messages, which passes
any machine's memory long before the numbers look large: forty generals
with m = 12 would send about 5 * 10**19.  Each algorithm bounds its own
messages, whatever the traitors do
(:meth:`~om_actors.algorithm.Algorithm.message_bound`).  Every entry point -- a scenario
file, a log, a network request, a library call -- goes through
:func:`size_problem` first, so an impossible run is refused in
microseconds with its count, instead of dying in an allocation.

The limit is the user's, never the input's: it comes from the environment
variable :data:`LIMIT_VARIABLE` (or the CLI's ``--max-messages``, which
sets it), so a scenario, a log or a request cannot raise it for itself.
One number bounds everything that grows with a run: the messages, the
generals' own state (:data:`MESSAGES_PER_GENERAL`) and per-message mode
(:data:`PER_MESSAGE_SHARE`), so raising it raises them all.

The rest of a scenario is bounded by fixed sizes, so that no string,
list or script in it can cost more than the run it describes.

The defaults the CLI's options show -- when ``auto`` batches, the budgets
of ``compare`` and ``verify`` -- are here too, so that ``om-actors --help``
and shell completion read them without importing what runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO, Literal

if TYPE_CHECKING:
    from .algorithm import Algorithm, Setup

DEFAULT_MAX_MESSAGES = 200_000_000
"""Messages a run may send by default: room for nineteen generals with m = 6 (about 175 million).

Batched mode keeps about 9 bytes per message, so the default run fits in
about 2 GB.
"""

LIMIT_VARIABLE = "OM_ACTORS_MAX_MESSAGES"

MESSAGES_PER_GENERAL = 2_000
"""What one general costs, in messages of the limit, in every instance it takes part in.

A general is a task, an inbox and a protocol state per instance: about
6 KB even when it sends nothing, so a scenario with a million generals and
``m = 0`` -- a million messages only -- would still take gigabytes.  The
default limit allows 100,000 general states.
"""

MIN_GENERAL_STATES = 10_000
"""General states allowed however low the limit is set: about 60 MB, so a small limit bounds messages only."""

PER_MESSAGE_SHARE = 20
"""Per-message mode may send one twentieth of the limit: 10 million messages by default.

It keeps every message of a round as Python objects, about 300 bytes each
(measured with thirteen generals and m = 4, and twelve with m = 5), so ten
million take about 3 GB; batched mode keeps about 9 bytes per message.
"""

MAX_VALUES = 254
"""Values a scenario may have: batched mode stores a value as one byte, and 255 marks "no vote"."""

MAX_BATCHED_GENERALS = 255
"""Generals batched mode can hold: its store names senders in one byte too."""

BATCHED_ABOVE = 200_000
"""Messages above which ``auto`` mode batches: just above thirteen generals with m = 4."""

COMPARE_BUDGET = 10_000_000
"""Messages a ``compare`` row may send and still be run; a bigger one is computed from the closed form."""

Adversary = Literal["canonical", "exhaustive", "search"]
"""A family of adversaries ``verify`` tries."""
ADVERSARIES: tuple[Adversary, ...] = ("canonical", "exhaustive", "search")
VERIFY_BUDGET: Mapping[Adversary, int] = {"canonical": 100_000, "exhaustive": 100_000, "search": 2_000}
"""Adversaries ``verify`` tries per case at most, by family, unless ``--budget`` says otherwise."""

MAX_STRING = 1_000
"""Characters in any one string of a scenario: a name, a value, a strategy name."""

MAX_SCRIPT = 100_000
"""Entries in one ``scripted`` strategy's script: far more than verify's counterexamples need."""

MAX_CHECKED_MESSAGES = 100_000
"""Decision points listed at most: what a ``scripted`` traitor's entries are checked against, and searched.

Listing them costs time and memory in proportion to their number, so
:meth:`~om_actors.algorithm.Algorithm.script_problem`'s default stops
here and accepts what it has not reached; OM(m) and SM(m) check an entry
by their path rules instead, and never list them (SM(10) on 31 generals
has billions).  ``verify --adversary search`` moves over a table of every
decision point of a case's traitors, so it skips a case with more than
this many, having counted no further than that.
"""

MAX_NESTING = 64
"""How deep lists and mappings may nest in a scenario, its strategy arguments included."""

MAX_NODES = 1_000_000
"""Scalars, lists and mappings in a scenario, counted as written out: aliases count in full."""

MAX_TEXT = 16 * 1024 * 1024
"""Characters in a scenario's text: 16 MB, far beyond any scenario a person writes."""

MAX_SCENARIO_BYTES = MAX_TEXT
"""Bytes read from a scenario file or stream: at most this many plus one, whatever the file is.

A name can be a device (``/dev/zero``), a FIFO or a sparse file of any
size, so the file's own size is never trusted: reading stops one byte past
the limit.  UTF-8 takes at least a byte per character, so text that fits
is within :data:`MAX_TEXT` too.
"""


def read_at_most(file: BinaryIO, limit: int) -> bytes | None:
    """``file``'s bytes, or ``None`` when it holds more than ``limit``: read no further than one byte past.

    A name can be a device (``/dev/zero``), a FIFO or a sparse file of any
    size, so a file's own size is never trusted.
    """
    data = file.read(limit + 1)
    return data if len(data) <= limit else None


def utf8_problem(exc: UnicodeDecodeError) -> str:
    """Why bytes that should be text are not: the reason and the offset of the first bad byte."""
    return f"not UTF-8 text: {exc.reason} at byte {exc.start:,}"


def max_messages() -> int:
    """The limit in force: :data:`LIMIT_VARIABLE` if set, else :data:`DEFAULT_MAX_MESSAGES`."""
    given = os.environ.get(LIMIT_VARIABLE)
    if given is None or not given.strip():
        return DEFAULT_MAX_MESSAGES
    text = given.strip().replace("_", "").replace(",", "")
    if not text.isdigit() or int(text) < 1 or len(text) > 30:
        from .errors import LimitError

        raise LimitError(f"{LIMIT_VARIABLE}={given!r}: expected a positive whole number of messages")
    return int(text)


def size_problem(
    rules: Algorithm, setup: Setup, traitors: int = 0, instances: int = 1, *, limit: int | None = None
) -> str | None:
    """Why a run of this size is refused, with its count and how to raise the limit; ``None`` if it fits.

    Checks the messages first -- the most ``setup``'s instance can send
    with ``traitors`` liars (:meth:`~om_actors.algorithm.Algorithm.message_bound`),
    counted by the algorithm, which stops counting past the limit, so even
    ``10**35`` generals are answered at once -- then the generals' own state.
    """
    limit = max_messages() if limit is None else limit
    count = rules.message_bound(setup, traitors, limit=limit) * instances
    if count <= limit:
        return _general_states_problem(setup.generals, instances, limit)
    one = rules.message_bound(setup, traitors, limit=_EXACT_UP_TO)
    amount = f"more than {limit:,} messages" if one > _EXACT_UP_TO else f"{one * instances:,} messages"
    army = f"{setup.generals:,} generals with m = {setup.m:,}"
    if one > rules.messages_sent(setup.generals, setup.m, limit=_EXACT_UP_TO):
        # More than a loyal run's count: the values, or what traitors may add, make the difference.
        liars = f"{traitors:,} traitor{'s' if traitors != 1 else ''}"
        army, amount = f"{army}, {len(setup.values):,} values and {liars}", f"up to {amount}"
    return f"{army} send {amount}, over the limit of {limit:,}: {_how_to_raise()}"


_EXACT_UP_TO = 10**700
"""Counts a refusal states exactly: a few hundred digits, still cheap to reach."""


def _general_states_problem(generals: int, instances: int, limit: int) -> str | None:
    allowed = max(limit // MESSAGES_PER_GENERAL, MIN_GENERAL_STATES)
    if generals * instances <= allowed:
        return None
    what = f"{generals:,} generals" if instances == 1 else f"{generals:,} generals in {instances:,} instances"
    return (
        f"{what} are over the limit of {allowed:,} general states "
        f"(one per {MESSAGES_PER_GENERAL:,} messages of the message limit of {limit:,}): {_how_to_raise()}"
    )


def per_message_problem(
    messages: int, *, generals: int = 0, batchable: bool = True, limit: int | None = None
) -> str | None:
    """Why per-message mode must not run ``messages`` messages, suggesting batched mode; ``None`` if it may.

    Batched mode is suggested only for an algorithm that has one
    (``batchable``) and when it can hold ``generals``.
    """
    allowed = (max_messages() if limit is None else limit) // PER_MESSAGE_SHARE
    if messages <= allowed:
        return None
    if not batchable:
        instead = _how_to_raise()
    elif generals > MAX_BATCHED_GENERALS:
        instead = f"batched mode holds at most {MAX_BATCHED_GENERALS} generals, so {_how_to_raise()}"
    else:
        instead = f"use batched mode, or {_how_to_raise()}"
    return (
        f"per-message mode keeps every message as Python objects (about 300 bytes each), and "
        f"{messages:,} messages are over its limit of {allowed:,}: {instead}"
    )


def _how_to_raise() -> str:
    return f"set {LIMIT_VARIABLE} (or --max-messages) to raise it, if this machine has the memory"
