"""Text from scenarios, logs and requests made safe to print on a terminal.

A scenario's name, a logged value or a strategy's argument is text someone
else may have written, and a terminal obeys the control characters in what
it prints: ``ESC [ 2 J`` clears the screen, ``ESC ] 0 ;`` sets the window's
title, a carriage return overwrites the line already printed, and a line
break forges a line of the report.  Rich strips only a few of them.  Every
such text passes through :func:`printable` before it reaches a terminal, so
a person reads what was written instead of having it done to their screen.

JSON output needs none of this: ``json.dumps`` escapes control characters
itself, and its text must stay exact.
"""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""The control characters: C0 (line breaks and tabs included), DEL and C1; and the bidirectional
controls, which reorder what follows them on screen (a name that reads ``txt.exe`` but is ``exe.txt``)."""


def printable(text: str) -> str:
    """``text`` with every control character shown escaped, as ``\\x1b`` or ``\\u202e``; the rest as it is."""
    return _CONTROL.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def markup(text: str) -> str:
    """``text`` for a rich markup string: printable, and its square brackets read literally.

    Rich is imported here, not with the module, so that :func:`printable`
    costs the CLI's start-up nothing.
    """
    from rich.markup import escape

    return escape(printable(text))
