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

import json
import os
import re
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import IO, Any, Union, cast, get_args

import attrs
import structlog

from .errors import LogError
from .events import SCHEMA, Event, RoundEnded

LogTarget = Union[str, "os.PathLike[str]", IO[bytes], "structlog.typing.BindableLogger"]
"""Where a log goes: a file name, a binary file the caller opened, or a structlog logger."""


_FIELD_NAMES = {cls: tuple(field.name for field in attrs.fields(cls)) for cls in get_args(Event)}


_OMITTED_WHEN_UNSET = frozenset({"instance", "mode", "messages_logged", "delivered", "undelivered"})


def event_fields(event: Event) -> dict[str, Any]:
    """An event as the plain fields a log line holds.

    ``instance`` and ``mode`` are left out when they are ``None``: a
    single-instance, per-message run's log looks as if neither existed.
    """
    fields = {"event": event.name}
    for name in _FIELD_NAMES[type(event)]:
        value = getattr(event, name)
        if value is not None or name not in _OMITTED_WHEN_UNSET:
            fields[name] = value
    return fields


def event_first(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put ``event`` first, where a person scanning the file looks for it."""
    return {"event": event_dict.pop("event"), **event_dict}


def json_fallback(value: object) -> str:
    """A traitor's garbage that JSON cannot hold, as its ``repr``, less any memory address.

    An address differs from run to run, and one scenario and seed must
    always write the same log.
    """
    return _ADDRESS.sub("", repr(value))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_renderer = structlog.wrap_logger(
    structlog.ReturnLogger(),
    processors=[event_first, structlog.processors.JSONRenderer(default=json_fallback)],
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


class StructlogSink:
    """Hands events to an application's own structlog logger, at info level.

    The application's processors decide how they look and where they go;
    om_actors only supplies the event name and fields.
    """

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def __call__(self, event: Event) -> None:
        fields = event_fields(event)
        self._logger.info(fields.pop("event"), **fields)


def _is_structlog_logger(target: object) -> bool:
    return not hasattr(target, "write") and callable(getattr(target, "bind", None))


@contextmanager
def open_log(target: LogTarget | None) -> Iterator[Callable[[Event], None] | None]:
    """A writer for ``target``; a file we opened is closed again, one we were given is not."""
    if target is None:
        yield None
    elif _is_structlog_logger(target):
        yield StructlogSink(target)
    elif isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as file:
            writer = LogWriter(file)
            yield writer
    else:
        writer = LogWriter(cast(IO[bytes], target))  # what is left: a binary file
        try:
            yield writer
        finally:
            writer.flush()


# --- reading -----------------------------------------------------------------


@attrs.frozen
class LogLine:
    """One event read back from a log, with the line it stood on."""

    number: int
    fields: dict[str, Any]
    raw: bytes

    @property
    def event(self) -> str:
        name: str = self.fields["event"]
        return name


def _is_id(value: object) -> bool:
    return type(value) is int


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _is_list(value: object) -> bool:
    return isinstance(value, list)


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_flag(value: object) -> bool:
    return isinstance(value, bool)


def _is_flag_or_null(value: object) -> bool:
    return value is None or isinstance(value, bool)


def _is_ids(value: object) -> bool:
    return isinstance(value, list) and all(type(item) is int for item in value)


def _is_false(value: object) -> bool:
    return value is False


def _is_anything(value: object) -> bool:
    return True


_Check = Callable[[object], bool]
_MESSAGE: dict[str, tuple[_Check, str]] = {
    "round": (_is_count, "a round number"),
    "sender": (_is_id, "a general id"),
    "receiver": (_is_id, "a general id"),
    "path": (_is_list, "a list of general ids"),
    "value": (_is_anything, "a value"),
}
FIELDS: dict[str, dict[str, tuple[_Check, str]]] = {
    "run.start": {
        "schema": (_is_count, "a schema number"),
        "version": (_is_text, "a version string"),
        "seed": (_is_id, "an integer"),
        "scenario": (lambda v: isinstance(v, dict), "a scenario mapping"),
    },
    "message": _MESSAGE,
    "message.rejected": {**_MESSAGE, "reason": (_is_text, "a reason")},
    "strategy.failed": {
        "round": (_is_count, "a round number"),
        "general": (_is_id, "a general id"),
        "path": (_is_list, "a list of general ids"),
        "receiver": (_is_id, "a general id"),
        "error": (_is_text, "an error text"),
    },
    "general.crashed": {
        "round": (_is_count, "a round number"),
        "general": (_is_id, "a general id"),
    },
    "round.end": {
        "round": (_is_count, "a round number"),
        "messages": (_is_count, "a message count"),
        "rejected": (_is_count, "a message count"),
        "timed_out": (_is_ids, "a list of general ids"),
    },
    "decision": {
        "general": (_is_id, "a general id"),
        "value": (_is_anything, "a value"),
        "traitor": (_is_flag, "true or false"),
    },
    "verdict": {
        "agreement": (_is_flag, "true or false"),
        "validity": (_is_flag_or_null, "true, false or null"),
        "success": (_is_flag, "true or false"),
        "messages": (_is_count, "a message count"),
        "rounds": (_is_count, "a round count"),
    },
}
"""Every event a schema-1 log may hold, and what each of its fields must be."""

OPTIONAL_FIELDS: dict[str, dict[str, tuple[_Check, str]]] = {
    "run.start": {
        "mode": (lambda v: v == "batched", '"batched"'),
        "messages_logged": (_is_flag, "true or false"),
    },
    "message": {"delivered": (_is_false, "false (a message that arrived has no 'delivered')")},
    "round.end": {"undelivered": (_is_count, "a message count")},
}
"""Fields an event may leave out, and what each must be when it is there.

``instance`` is not here: whether a line may carry one depends on the
scenario, which replay checks.
"""

MAX_LINE_BYTES = 16 * 2**20
"""The longest line a reader accepts.  om_actors writes lines of a few hundred
bytes; only ``run.start`` grows, with a scenario's ``scripted`` messages, and
16 MiB holds a script for every message of thirteen generals with m = 4.  A
longer line is refused before it is read whole, so a hostile log cannot make
a reader hold a gigabyte."""

MAX_NESTING = 100
"""Lists and objects nested deeper than this are refused: om_actors writes
fewer than ten levels, and a reader must never recurse without bound."""


def read_log(path: str | os.PathLike[str]) -> Iterator[LogLine]:
    """The events of a log, one line at a time, checked as they are read.

    The file is streamed, never read whole, so a log of hundreds of
    megabytes costs memory only for what the caller keeps.  Raises
    :class:`LogError`, naming the line, for anything that is not a whole,
    well-formed log of a known schema -- including one that stops before its
    ``verdict``.
    """
    source = os.fspath(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 -- closed below, after the generator's last line
    except OSError as exc:
        raise LogError(source, None, f"cannot read the log: {exc.strerror or exc}") from None
    last: LogLine | None = None
    with file:
        for number, raw in enumerate(iter(partial(file.readline, MAX_LINE_BYTES + 1), b""), start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise LogError(source, number, f"a line longer than {MAX_LINE_BYTES:,} bytes: not a log line")
            last = _parse(source, number, raw, first=last is None)
            yield last
    if last is None:
        raise LogError(source, None, "the log is empty: it has no run.start line")
    if last.event != "verdict":
        raise LogError(source, last.number, "the log ends without a verdict: the run did not finish")


def _parse(source: str, number: int, raw: bytes, *, first: bool) -> LogLine:
    fields = _json(source, number, raw)
    if not isinstance(fields, dict) or not isinstance(fields.get("event"), str):
        raise LogError(source, number, f"not a log event (no 'event' name): {_excerpt(raw)}")
    event = fields["event"]
    if first and event != "run.start":
        raise LogError(source, number, f"a log starts with run.start, not {event!r}")
    if event not in FIELDS:
        raise LogError(source, number, f"unknown event {event!r}")
    if event == "run.start" and fields.get("schema") != SCHEMA:
        raise LogError(source, number, _schema_problem(fields.get("schema")))
    for name, (check, kind) in FIELDS[event].items():
        if name not in fields:
            raise LogError(source, number, f"{event} event without {name!r}")
        _check_field(source, number, event, name, fields[name], check, kind)
    for name, (check, kind) in OPTIONAL_FIELDS.get(event, {}).items():
        if name in fields:
            _check_field(source, number, event, name, fields[name], check, kind)
    return LogLine(number, fields, raw)


def _json(source: str, number: int, raw: bytes) -> Any:
    """The line's JSON, or a :class:`LogError` saying why there is none -- never a RecursionError."""
    try:
        fields = json.loads(raw)
    except RecursionError:
        fields = None  # nested past Python's own limit: refused below, by the same rule as any deep line
    except ValueError as exc:
        if not raw.endswith(b"\n"):
            raise LogError(source, number, "the last line is cut off: the run did not finish") from None
        if "integer string conversion" in str(exc):
            raise LogError(source, number, "a number with thousands of digits: not a log line") from None
        raise LogError(source, number, f"not a JSON line: {_excerpt(raw)}") from None
    if fields is None or _nesting(fields, raw) > MAX_NESTING:
        too_deep = f"lists or objects nested more than {MAX_NESTING} deep: not a log line"
        raise LogError(source, number, too_deep)
    return fields


def _nesting(value: object, raw: bytes) -> int:
    """How deep lists and objects nest in ``value``: walked only when ``raw`` has the brackets for it.

    The walk uses a stack of its own, not recursion, so any depth that
    parsed can be measured.
    """
    if raw.count(b"[") + raw.count(b"{") <= MAX_NESTING:
        return 0
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _check_field(
    source: str, number: int, event: str, name: str, value: object, check: _Check, kind: str
) -> None:
    if not check(value):
        what = "malformed path" if name == "path" else f"malformed {name!r}"
        raise LogError(source, number, f"{event} event with a {what}: expected {kind}, got {_excerpt(value)}")


def _schema_problem(schema: object) -> str:
    if type(schema) is int and schema > SCHEMA:
        return f"log schema {schema} is newer than this om_actors reads ({SCHEMA}): upgrade om_actors"
    return f"unknown log schema {schema!r}: this om_actors reads schema {SCHEMA}"


def _excerpt(value: object) -> str:
    text = value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def path_of(line: LogLine) -> tuple[Any, ...]:
    """A logged path as the tuple the runtime sent, usable as a key whatever a traitor put in it.

    A forged path may hold lists or objects; they become tuples here, which
    the protocol refuses as a malformed path just as it refused the original.
    """
    path: Sequence[Any] = line.fields["path"]
    return tuple(_hashable(step) for step in path)


def _hashable(value: object) -> object:
    if isinstance(value, list):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple((key, _hashable(item)) for key, item in value.items())
    return value


@attrs.frozen
class Selection:
    """Filters over log events; an unset filter lets everything through.

    An event without the field a filter tests (a ``decision`` has no
    ``sender``) does not match that filter.
    """

    round: int | None = None
    sender: int | None = None
    receiver: int | None = None
    path_prefix: tuple[int, ...] | None = None
    instance: int | None = None
    events: frozenset[str] = frozenset()

    def matches(self, line: LogLine) -> bool:
        fields = line.fields
        for key in ("round", "sender", "receiver", "instance"):
            wanted = getattr(self, key)
            if wanted is not None and fields.get(key) != wanted:
                return False
        if self.path_prefix is not None:
            path = fields.get("path")
            if not isinstance(path, list) or tuple(path[: len(self.path_prefix)]) != self.path_prefix:
                return False
        return not self.events or line.event in self.events
