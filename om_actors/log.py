"""The JSON-lines run log, rendered by structlog.

The log is built with its own processor chain on a private logger, never by
``structlog.configure``: an application embedding om_actors keeps whatever
structlog set-up it has.  Events carry no timestamps and arrive in the
orchestrator's fixed order, so one scenario and seed give a byte-identical
file -- which is what makes a log something to diff and replay.

Every line is written whole and the file is flushed at the end of each
round, so a run that dies midway leaves a readable prefix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import IO, Any, Union, get_args

import attrs
import structlog

from .events import Event, RoundEnded

LogTarget = Union[str, "os.PathLike[str]", IO[bytes]]
"""Where a log goes: a file name, or a binary file the caller opened."""


_FIELD_NAMES = {cls: tuple(field.name for field in attrs.fields(cls)) for cls in get_args(Event)}


def event_fields(event: Event) -> dict[str, Any]:
    """An event as the plain fields a log line holds."""
    return {"event": event.name, **{name: getattr(event, name) for name in _FIELD_NAMES[type(event)]}}


def event_first(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put ``event`` first, where a person scanning the file looks for it."""
    return {"event": event_dict.pop("event"), **event_dict}


def _fallback(value: object) -> str:
    """A traitor's garbage that JSON cannot hold, as its ``repr``."""
    return repr(value)


_renderer = structlog.wrap_logger(
    structlog.ReturnLogger(),
    processors=[event_first, structlog.processors.JSONRenderer(default=_fallback)],
    wrapper_class=structlog.BoundLogger,
).bind()


def render(event: Event) -> str:
    """One log line for ``event``, without its line break."""
    fields = event_fields(event)
    line: str = _renderer.msg(fields.pop("event"), **fields)
    return line


class LogWriter:
    """Writes events to a binary file as JSON lines."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def __call__(self, event: Event) -> None:
        self._file.write(render(event).encode("utf-8") + b"\n")
        if isinstance(event, RoundEnded):
            self._file.flush()

    def flush(self) -> None:
        self._file.flush()


@contextmanager
def open_log(target: LogTarget | None) -> Iterator[LogWriter | None]:
    """A writer for ``target``; a file we opened is closed again, one we were given is not."""
    if target is None:
        yield None
    elif isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            writer = LogWriter(file)
            yield writer
    else:
        writer = LogWriter(target)
        try:
            yield writer
        finally:
            writer.flush()
