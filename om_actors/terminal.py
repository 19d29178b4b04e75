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

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""The control characters: C0 (line breaks and tabs included), DEL and C1."""


def printable(text: str) -> str:
    """``text`` with every control character shown escaped, as ``\\x1b``; anything else as it is."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def markup(text: str) -> str:
    """``text`` for a rich markup string: printable, and its square brackets read literally.

    Rich is imported here, not with the module, so that :func:`printable`
    costs the CLI's start-up nothing.
    """
    from rich.markup import escape

    return escape(printable(text))
