"""Standard output that fails politely: a full disk, a closed stream, or a reader that left.

A command's exit status is its answer -- for ``om-actors verify``, 1 means
"the theorem was contradicted" -- so a failed write must not change it by
accident.  Left alone, Python turns a failed write into an ``OSError``
traceback, or, when the failure surfaces in the last flush at exit, into an
"Exception ignored" notice and status 120; click turns a broken pipe into
status 1.  :class:`GuardedStdout` stands in for ``sys.stdout`` while a
command runs: it remembers the first failed write, drops every later one,
and lets the command go on to the status its outcome deserves.
:meth:`GuardedStdout.finish` then decides: a broken pipe is normal use
(``om-actors verify | head -1`` had what it wanted) and keeps that status;
any other failure is one line on stderr and status 2.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TextIO, cast

UNWRITABLE_STATUS = 2
"""The exit status when stdout could not be written, for a reason other than a reader that left."""


class GuardedStdout:
    """``sys.stdout`` that records its first failure instead of raising it.

    Everything but writing and flushing is passed through to the real
    stream, so rich and click still see its encoding and whether it is a
    terminal.  ``buffer`` is guarded the same way, for binary writers.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.failure: OSError | None = None
        self.buffer = _GuardedBuffer(self)

    @classmethod
    def install(cls) -> GuardedStdout:
        """Put a guard in place of ``sys.stdout``; :meth:`uninstall` puts the stream back."""
        guard = cls(sys.stdout)
        sys.stdout = cast(TextIO, guard)
        return guard

    def uninstall(self) -> None:
        if sys.stdout is cast(object, self):
            sys.stdout = cast(TextIO, self._stream)

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes with b"" to tell text streams from binary ones
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            self.attempt(lambda stream: stream.write(text))
        return len(text)

    def flush(self) -> None:
        if self._stream is not None:  # with no stream at all, only a write has something to lose
            self.attempt(lambda stream: stream.flush())

    def isatty(self) -> bool:
        return self._stream is not None and self.failure is None and self._stream.isatty()

    def attempt(self, action: Callable[[TextIO], object]) -> None:
        """Do ``action`` on the real stream, unless an earlier one failed; remember a failure."""
        if self.failure is not None:
            return
        if self._stream is None:  # the shell closed descriptor 1: Python starts with no stdout at all
            self._fail(OSError(errno.EBADF, "standard output is closed"))
            return
        try:
            action(self._stream)
        except OSError as exc:
            self._fail(exc)
        except ValueError:  # "I/O operation on closed file"
            self._fail(OSError(errno.EBADF, "standard output is closed"))

    def finish(self, status: int) -> int:
        """The exit status to end with: ``status``, or 2 after one line on stderr if stdout failed."""
        self.flush()
        if self.failure is None or self.failure.errno == errno.EPIPE:
            return status
        reason = self.failure.strerror or str(self.failure)
        with suppress(OSError, ValueError):
            print(f"error: cannot write to standard output: {reason}", file=sys.stderr, flush=True)
        return UNWRITABLE_STATUS

    def _fail(self, exc: OSError) -> None:
        """Remember ``exc``, and point descriptor 1 at the null device.

        The real stream still holds what it could not write; the
        interpreter flushes it once more at exit, and that flush must find
        somewhere to go, or Python reports it and exits with status 120.
        """
        self.failure = exc
        with suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
            descriptor = cast(TextIO, self._stream).fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, descriptor)
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


class _GuardedBuffer:
    """The binary side of a :class:`GuardedStdout`, sharing its record of failure."""

    def __init__(self, guard: GuardedStdout) -> None:
        self._guard = guard

    def write(self, data: bytes) -> int:
        if data:
            self._guard.attempt(lambda stream: stream.buffer.write(data))
        return len(data)

    def flush(self) -> None:
        self._guard.attempt(lambda stream: stream.buffer.flush())
