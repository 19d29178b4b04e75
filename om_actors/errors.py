"""The exceptions om_actors raises on purpose, all under :class:`OmActorsError`.

An application can catch ``OmActorsError`` to tell "the input was wrong" from
a bug; the CLI turns every one of them into a message and exit status 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs


class OmActorsError(Exception):
    """Base class of every error om_actors raises on purpose."""


def printed(thing: object) -> str:
    """``repr(thing)``, or what it is when its ``__repr__`` raises: a traitor's value or error is its code.

    Ctrl-C passes; anything else a broken ``__repr__`` raises -- even
    ``SystemExit`` -- only makes the text plainer, and never stops a run.
    """
    try:
        return repr(thing)
    except KeyboardInterrupt:
        raise
    except BaseException:
        return f"<{type(thing).__name__} whose repr raised>"


@attrs.frozen
class Problem:
    """One mistake in a scenario, with where it is when that is known.

    ``line`` and ``column`` count from 1, as editors do; both are ``None`` for
    a scenario built in code or read from a log.
    """

    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str) -> str:
        if self.line is None:
            return f"{source}: {self.message}"
        return f"{source}:{self.line}:{self.column}: {self.message}"


class ScenarioError(OmActorsError):
    """A scenario with one or more mistakes, every one of them listed.

    Reporting all problems at once spares the edit-run-edit loop of fixing
    them one per attempt.
    """

    def __init__(self, problems: Sequence[Problem], source: str = "<scenario>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(p.render(source) for p in self.problems))


class ProtocolMisuse(OmActorsError):
    """A driver called an algorithm's core out of turn: a round skipped, a decision asked too early.

    Never the fault of a traitor -- what a traitor sends is refused, not
    raised -- but of the code driving the core, which should fail loudly
    rather than decide on half the messages.
    """


class LimitError(OmActorsError):
    """The message limit itself (:data:`~om_actors.limits.LIMIT_VARIABLE`) is not a positive whole number."""


class CannotWrite(OmActorsError):
    """A file a command writes that the system refused: the message names the file and the reason.

    Python's own ``[Errno 28] No space left on device`` says neither which
    file nor what the command was doing with it.
    """

    def __init__(self, what: str, failure: OSError) -> None:
        super().__init__(f"cannot write {what}: {failure.strerror or failure}")


class LogError(OmActorsError):
    """A log that cannot be read: cut off, malformed, or of an unknown schema.

    ``line`` is the 1-based line the problem was found on, so a user can
    open the file there.
    """

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {message}")
