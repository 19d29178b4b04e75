"""GuardedStdout on its own, with streams that fail on purpose.

Rules for this file:
- the real failures (/dev/full, a closed descriptor, a pipe whose reader
  left) are exercised through the command line in tests/test_cli.py; here
  the decisions are checked one at a time.
"""

from __future__ import annotations

import errno
import io
import sys
from typing import TextIO, cast

import pytest

from om_actors.guarded_stdout import GuardedStdout


class Failing(io.StringIO):
    """A text stream whose writes fail with ``code``, counting the attempts."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.attempts = 0

    def write(self, text: str) -> int:
        self.attempts += 1
        raise OSError(self.code, "failed on purpose")


def test_a_full_stream_is_one_line_on_stderr_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    stream = Failing(errno.ENOSPC)
    guard = GuardedStdout(stream)
    assert guard.write("first") == len("first")
    assert guard.write("second") == len("second")
    assert stream.attempts == 1  # after the first failure, nothing more is tried
    assert guard.finish(0) == 2
    assert capsys.readouterr().err == "error: cannot write to standard output: failed on purpose\n"


def test_a_broken_pipe_keeps_the_status_and_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    guard = GuardedStdout(Failing(errno.EPIPE))
    guard.write("a table nobody reads")
    assert guard.finish(1) == 1
    assert capsys.readouterr().err == ""


def test_no_stream_at_all_fails_only_when_written_to(capsys: pytest.CaptureFixture[str]) -> None:
    silent = GuardedStdout(None)
    silent.flush()
    assert silent.finish(0) == 0
    written = GuardedStdout(None)
    written.write("")
    assert written.failure is None
    written.write("text")
    assert written.finish(0) == 2
    assert capsys.readouterr().err == "error: cannot write to standard output: standard output is closed\n"


def test_a_working_stream_gets_everything_text_and_bytes() -> None:
    written = io.BytesIO()
    stream = io.TextIOWrapper(written, encoding="utf-8")
    guard = GuardedStdout(cast(TextIO, stream))
    guard.write("text, ")
    guard.flush()
    guard.buffer.write(b"bytes")
    guard.buffer.flush()
    assert guard.finish(0) == 0
    assert written.getvalue() == b"text, bytes"
    assert guard.encoding == "utf-8"
    with pytest.raises(TypeError):
        guard.write(b"bytes are for .buffer")  # type: ignore[arg-type]


def test_install_and_uninstall_put_the_stream_back() -> None:
    before = sys.stdout
    guard = GuardedStdout.install()
    assert sys.stdout is cast(object, guard)
    guard.uninstall()
    assert sys.stdout is before
