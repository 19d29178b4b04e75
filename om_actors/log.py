"""The JSON-lines run log, rendered by structlog, and read back checked.

The log is built with its own processor chain on a private logger, never by
``structlog.configure``: an application embedding om_actors keeps whatever
structlog set-up it has.  Events carry no timestamps and arrive in the
orchestrator's fixed order, so one scenario and seed give a byte-identical
file -- which is what makes a log something to diff and replay.

Every line is written whole and the file is flushed at the end of each
round, so a run that dies midway leaves a readable prefix.

Nothing here knows an algorithm.  A message's payload is written as its
attrs fields, in place of ``payload``; the reader checks each line against
the event classes of :mod:`om_actors.events` and, for a message, against
the payload class of the algorithm the logged scenario names -- one
description of every line, not a writer's and a reader's.
"""

from __future__ import annotations

import enum
import functools
import io
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from itertools import islice, repeat
from operator import add, mul
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal, Union, cast, get_args, get_origin

import attrs
import orjson

from .algorithm import Algorithm, as_read
from .errors import CannotWrite, LogError, OmActorsError, printed
from .events import SCHEMA, Event, Kind, MessageSent, RoundEnded
from .registry import DEFAULT_ALGORITHM, algorithm_named

if TYPE_CHECKING:
    import structlog

LogTarget = Union[str, "os.PathLike[str]", IO[bytes], "structlog.typing.BindableLogger"]
"""Where a log goes: a file name, a binary file the caller opened, or a structlog logger."""

PAYLOAD = "payload"
"""The event field whose value, the algorithm's message, is written as its own fields instead."""


def event_fields(event: Event) -> dict[str, Any]:
    """An event as the plain fields a log line holds.

    A field that defaults to ``None`` (``instance``, ``mode``, ``public``,
    ``delivered``...) is left out while it is ``None``: a single-instance,
    per-message run's log looks as if none of them existed.  The payload
    is written as its own fields, a reason as its text.
    """
    return _layout(type(event), type(getattr(event, PAYLOAD, None)))(event)


def _layout(cls: type, payload: type) -> Callable[[Any], dict[str, Any]]:
    """:func:`event_fields` for events of ``cls`` carrying a ``payload``, made on first use."""
    layout = _LAYOUTS.get((cls, payload))
    if layout is None:
        layout = _LAYOUTS[cls, payload] = _event_layout(cls, payload)
    return layout


def _event_layout(cls: type, payload: type) -> Callable[[Any], dict[str, Any]]:
    """:func:`event_fields` for one event class, written out as code, as attrs writes an ``__init__``.

    Every message of a run passes through here -- 250,000 for a hundred
    generals under Phase King -- and a loop over the class's fields, asking
    of each whether it is optional, the payload or a reason, cost more than
    rendering the line.  The generated function asks only what the class's
    types leave open; for an event that carries a payload, one function per
    payload class writes the payload's fields in place.
    """
    hints = typing.get_type_hints(cls)
    lines = [f"fields = {{'event': {cls.name!r}}}"]  # type: ignore[attr-defined]
    for field in attrs.fields(cls):
        name = field.name
        if name == PAYLOAD:
            lines.extend(_payload_lines(payload))
            continue
        if _written_as_is(hints[name]):
            put = f"fields[{name!r}] = event.{name}"
        else:
            put = f"fields[{name!r}] = _as_text(event.{name})"
        lines.append(f"if event.{name} is not None: {put}" if field.default is None else put)
    carries = PAYLOAD in attrs.fields_dict(cls)
    title = f"{cls.__name__} of {payload.__qualname__}" if carries else cls.__name__
    return _compiled(f"layout of {title}", "event", [*lines, "return fields"])


def _payload_lines(payload: type, source: str = f"event.{PAYLOAD}") -> list[str]:
    """The lines that write a payload's fields, in order; one that is no attrs instance is written whole.

    attrs only makes fields whose names are identifiers (it writes its own
    ``__init__`` from them), so every name can be written as an attribute.
    """
    if not attrs.has(payload):
        return [f"fields[{PAYLOAD!r}] = {source}"]
    return [f"fields[{f.name!r}] = {source}.{f.name}" for f in attrs.fields(payload)]


def _compiled(title: str, argument: str, lines: list[str]) -> Callable[[Any], dict[str, Any]]:
    """A one-argument function with ``lines`` as its body, named ``title`` in tracebacks."""
    source = "\n    ".join([f"def fields({argument}):", *lines])
    namespace: dict[str, Any] = {"_as_text": _as_text}
    exec(compile(source, f"<om_actors.log {title}>", "exec"), namespace)
    return cast(Callable[[Any], dict[str, Any]], namespace["fields"])


def _written_as_is(hint: object) -> bool:
    """Whether a field of type ``hint`` goes into the line unchanged: it can hold no enum."""
    if get_origin(hint) in (Union, types.UnionType):
        return all(_written_as_is(arg) for arg in get_args(hint))
    return hint in (int, str, bool, float, type(None)) or get_origin(hint) in (tuple, Literal)


def _as_text(value: object) -> object:
    return reason_text(value) if isinstance(value, enum.Enum) else value


def reason_text(reason: enum.Enum) -> str:
    """A rejection reason as the log writes it: the text of a string-valued enum."""
    return reason.value if isinstance(reason.value, str) else str(reason)


_LAYOUTS: dict[tuple[type, type], Callable[[Any], dict[str, Any]]] = {}
"""Each event class's layout, by the class and its payload's class (``NoneType`` for an event with
no payload), made when the first such event is written."""


def event_first(_: object, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Put ``event`` first, where a person scanning the file looks for it."""
    return {"event": event_dict.pop("event"), **event_dict}


def json_fallback(value: object) -> str:
    """A traitor's garbage that JSON cannot hold, as its ``repr``, less any memory address.

    An address differs from run to run, and one scenario and seed must
    always write the same log.  A ``repr`` that raises -- anything but
    Ctrl-C, ``SystemExit`` included -- gives the bare class name instead
    (:func:`~om_actors.errors.printed`): garbage must never stop a run.
    """
    return _ADDRESS.sub("", printed(value))


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def as_logged(value: object) -> object:
    """What ``value`` becomes in the log and on the wire, read back: plain data, sequences as tuples.

    A traitor's answer goes through this before it is sent, so what a
    receiver judges in memory is exactly what the log records and what a
    node would get over HTTP: a ``str`` or ``int`` subclass is its plain
    value, an object JSON cannot hold -- NaN and the infinities included --
    is its :func:`json_fallback` text, an integer too long to print or
    nesting deeper than :data:`MAX_PLAIN_NESTING` is a sentence saying so.
    Plain values pass through untouched, and fast.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if isinstance(value, float) and kind is float:
        return value if math.isfinite(value) else json_fallback(value)
    if isinstance(value, tuple) and kind is tuple and _plain_tuple(value):
        return value
    return as_read(_plain(value, MAX_PLAIN_NESTING))


def _plain_tuple(items: tuple[object, ...]) -> bool:
    """A path or a chain as the runtime made it: plain scalars, no integer too long to print."""
    return _SCALARS.issuperset(map(type, items)) and all(map(_as_is, items))


def _as_is(scalar: object) -> bool:
    """A scalar JSON holds as it is: no integer too long to print, no NaN or infinity."""
    if type(scalar) is int:
        return _printable(scalar)
    return type(scalar) is not float or math.isfinite(scalar)


MAX_PLAIN_NESTING = 48
"""Levels of lists and mappings a sent value keeps: a node takes 64 in a whole batch, the value's included."""

_SCALARS = frozenset({str, int, float, bool, type(None)})


def _printable(number: int) -> bool:
    return number.bit_length() < 13_000  # about 3,900 digits: within Python's 4,300-digit limit


def _plain(value: object, depth: int) -> object:
    if value is None or type(value) in (str, bool):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        number = int.__index__(value)
        return number if _printable(number) else f"<an integer of {number.bit_length():,} bits>"
    if isinstance(value, float):
        real = float.__float__(value)
        return real if math.isfinite(real) else json_fallback(real)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (list, tuple, dict)) and depth <= 0:
        return f"<nested deeper than {MAX_PLAIN_NESTING} levels>"
    if isinstance(value, (list, tuple)):
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        return [_plain(item, depth - 1) for item in items]
    if isinstance(value, dict):
        return {_key(key): _plain(item, depth - 1) for key, item in dict.items(value)}
    return json_fallback(value)


def _key(key: object) -> str:
    """A mapping key as JSON writes it."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(_plain(key, 0))
    return json_fallback(key)


def _dumps(fields: Mapping[str, Any], **options: Any) -> bytes:
    """orjson's encoding, or the standard library's in the same shape for what orjson refuses.

    orjson holds integers to 64 bits and text that is valid Unicode; a
    traitor's integer may be longer (up to :func:`_printable`), and a string
    may hold a lone surrogate.  Such a line alone is written by :mod:`json`,
    compact and in UTF-8 as orjson writes, a surrogate as its ``\\u``
    escape -- so every line still parses the same, and one run still gives
    the same bytes.  NaN and the infinities, which orjson writes as
    ``null``, are written so here too: beside such an integer, in a payload
    an algorithm's core made, they would otherwise stop the run.
    """
    try:
        return orjson.dumps(fields, **options)
    except orjson.JSONEncodeError:
        fields = _finite(fields)
        text = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False, **options)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which UTF-8 cannot hold: JSON's \u escape can
        return json.dumps(fields, separators=(",", ":"), allow_nan=False, **options).encode("ascii")


def _finite(value: Any) -> Any:
    """``value`` with every NaN and infinity in its lists and mappings as ``None``, as orjson writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


@functools.cache
def _renderer() -> Callable[[Any, str, MutableMapping[str, Any]], bytes]:
    """structlog's JSON renderer on orjson, made on first use.

    structlog imports asyncio, which a run that writes no log never needs,
    so it is imported only when the first line is rendered.
    """
    import structlog

    renderer = structlog.processors.JSONRenderer(serializer=_dumps, default=json_fallback)
    return cast(Callable[[Any, str, MutableMapping[str, Any]], bytes], renderer)


def line_of(event: Event) -> bytes:
    """One log line for ``event``, as bytes without its line break.

    The line is structlog's: its processors are plain functions, so the
    renderer is called here directly, without a bound logger's copy of the
    event for every message -- the same bytes, at a fraction of the cost,
    which counts when a run logs hundreds of thousands of messages.
    :func:`event_fields` already puts ``event`` first.
    """
    return _renderer()(None, "msg", event_fields(event))


def render(event: Event) -> str:
    """:func:`line_of` as text."""
    return line_of(event).decode("utf-8")


def _written_line(fields: Mapping[str, Any]) -> bytes:
    """:func:`line_of`'s bytes for ``fields``, with the line break, straight from orjson.

    structlog's renderer only hands the fields to ``_dumps``, but through two
    more Python calls and a keyword expansion: 0.48 microseconds a line where
    orjson alone takes 0.11, and a per-message run of thirteen generals
    writes 108,000 lines.  So the file writer calls orjson itself; the tests
    hold its bytes equal to :func:`line_of`'s, garbage included.
    """
    try:
        return orjson.dumps(fields, default=json_fallback, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        return _dumps(fields, default=json_fallback) + b"\n"


_BATCH = 4096
"""Events :meth:`LogWriter.write_all` looks at together, for one layout to serve them all."""


def _written_lines(events: Sequence[Event]) -> Iterator[bytes]:
    """:func:`_written_line` of each event, one at a time; one layout for them all when they share classes."""
    kinds = set(zip(map(type, events), map(type, map(getattr, events, repeat(PAYLOAD), repeat(None)))))
    fields = map(_layout(*kinds.pop()), events) if len(kinds) == 1 else map(event_fields, events)
    return map(_written_line, fields)


def _message_lines(
    round: int, senders: Sequence[int], receivers: Sequence[int], payloads: Sequence[object]
) -> Iterator[bytes] | None:
    """The lines of a single-instance run's ``message`` events, without a :class:`MessageSent` each.

    ``None`` unless every payload is of one attrs class and every general
    a plain ``int`` no less than 0.  A line is :func:`_written_line`'s for
    the event, in two parts, each encoded once: the head, which only the
    round and the two generals fill in, once per sender and receiver; and
    the payload's fields, once per payload object however many receivers it
    went to.  The tests hold the bytes equal to the event's.
    """
    kinds = set(map(type, payloads))
    generals = [*senders, *receivers]
    if len(kinds) != 1 or type(round) is not int or not _INT.issuperset(map(type, generals)):
        return None
    template = _message_template(kinds.pop())
    if template is None or min(generals, default=0) < 0:
        return None
    head, tail_of = template
    width = max(generals, default=0) + 1
    pairs = list(map(add, map(mul, senders, repeat(width)), receivers))
    heads = {pair: head % (round, *divmod(pair, width)) for pair in set(pairs)}
    unique = dict(zip(map(id, payloads), payloads))
    tails = dict(zip(unique, map(tail_of, unique.values())))
    return map(bytes.__add__, map(heads.__getitem__, pairs), map(tails.__getitem__, map(id, payloads)))


_INT = frozenset({int})
_SHADOWED = frozenset({"event", *attrs.fields_dict(MessageSent)})


@functools.cache
def _message_template(payload: type) -> tuple[bytes, Callable[[object], bytes]] | None:
    """A ``message`` line's head, a ``%`` format of round, sender and receiver; how to make the rest.

    Read from :class:`MessageSent`'s fields as :func:`_event_layout` writes
    them: the event's name, then each field before the payload but the
    ``instance`` a single-instance run leaves out, then the payload's own
    fields; ``None`` for a payload that is no attrs class, or an event
    whose fields are no longer laid out so.
    """
    if not attrs.has(payload) or not _SHADOWED.isdisjoint(field.name for field in attrs.fields(payload)):
        return None  # a payload field named like the line's own keys overwrites them, in the event's layout
    names = [field.name for field in attrs.fields(MessageSent)]
    optional = {field.name for field in attrs.fields(MessageSent) if field.default is None}
    before, after = names[: names.index(PAYLOAD)], names[names.index(PAYLOAD) + 1 :]
    written = [name for name in before if name not in optional]
    if written != ["round", "sender", "receiver"] or not optional.issuperset(after):
        return None
    head = orjson.dumps({"event": MessageSent.name})[:-1]
    for name in written:
        head += b"," + orjson.dumps(name) + b":%d"
    payload_fields = _compiled(
        f"fields of {payload.__qualname__}",
        "payload",
        ["fields = {}", *_payload_lines(payload, "payload"), "return fields"],
    )

    def rest(sent: object) -> bytes:
        line = _written_line(payload_fields(sent))
        return b"," + line[1:] if line != b"{}\n" else b"}\n"

    return head, rest


_BUFFERS = (io.BufferedWriter, io.BufferedRandom, io.BytesIO)
"""The files whose ``write`` of many lines at once is only a copy into memory: nobody sees the calls."""

_WHOLE_LINES = (io.BufferedWriter, io.BufferedRandom, io.FileIO, io.BytesIO)
"""The files ``open`` and ``io`` make, whose ``writelines`` writes each line as their ``write`` would."""


def _writes_lines_as_write(file: object) -> bool:
    """Whether ``file.writelines`` is known to write what ``file.write`` would, line by line.

    Not for a subclass: ``io.BytesIO.writelines`` never calls ``write``, so
    an application's subclass that counts or copies in ``write`` would be
    passed by.  A class may say it of itself with ``writes_lines_as_write``.
    """
    kind = type(file)
    return kind in _WHOLE_LINES or getattr(kind, "writes_lines_as_write", False) is True


class LogWriter:
    """Writes events to a binary file as JSON lines, flushed at the end of each round.

    Each line goes to the file's buffer as soon as it is rendered: holding
    a round's lines back would hold every message of the round in memory
    twice.  Of the file it asks ``write``, ``flush`` if it has one, and
    ``writelines`` where that is known to write as ``write`` would
    (:func:`_writes_lines_as_write`).  A file that fails raises
    :class:`~om_actors.errors.CannotWrite`, naming it and the reason.
    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._write = file.write
        self._writelines = file.writelines if _writes_lines_as_write(file) else self._written_one_by_one
        self._flush: Callable[[], object] = getattr(file, "flush", None) or _nothing

    def __call__(self, event: Event) -> None:
        try:
            self._write(_written_line(event_fields(event)))
            if type(event) is RoundEnded:
                self._flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def write_all(self, events: Sequence[Event]) -> None:
        """Write ``events`` as calling the writer with each would, a few thousand lines at a time.

        For a runtime whose log is its only listener: a round of thirteen
        generals is 95,000 lines, nearly all of one event and payload class,
        written with no Python call a line but the layout's and the
        encoding's.  Each line is written as soon as it is encoded: holding
        orjson's output costs it a reallocation a line.
        """
        try:
            for start in range(0, len(events), _BATCH):
                self._writelines(_written_lines(events[start : start + _BATCH]))
            if RoundEnded in map(type, events):
                self._flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def write_messages(
        self, round: int, senders: Sequence[int], receivers: Sequence[int], payloads: Sequence[object]
    ) -> None:
        """Write a single-instance run's ``message`` events of ``round``, given in log order as three columns.

        The same bytes as :meth:`write_all` of the :class:`MessageSent`
        events, for a runtime that never made them: a round of thirteen
        generals is 95,040 lines, and most of its messages share their
        payload with ten others.
        """
        lines = _message_lines(round, senders, receivers, payloads)
        if lines is None:
            self.write_all([MessageSent(round, *sent) for sent in zip(senders, receivers, payloads)])
            return
        try:
            if type(self._file) in _BUFFERS:  # it only buffers them: a few thousand lines in one call
                while chunk := b"".join(islice(lines, _BATCH)):
                    self._write(chunk)
            else:
                self._writelines(lines)
        except OSError as exc:
            raise self._failed(exc) from None

    def _written_one_by_one(self, lines: Iterable[bytes]) -> None:
        """``writelines`` for a file that has only ``write``: a log writer asks no more of it."""
        for line in lines:
            self._write(line)

    def flush(self) -> None:
        try:
            self._flush()
        except OSError as exc:
            raise self._failed(exc) from None

    def _failed(self, failure: OSError) -> CannotWrite:
        name = getattr(self._file, "name", None)
        return CannotWrite(f"the log {name}" if isinstance(name, str) else "the log", failure)


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
    """A bound logger of structlog's, or one shaped like it: ``bind`` and ``info``, no ``write``."""
    if hasattr(target, "write"):
        return False
    return callable(getattr(target, "bind", None)) and callable(getattr(target, "info", None))


@contextmanager
def open_log(target: LogTarget | None) -> Iterator[Callable[[Event], None] | None]:
    """A writer for ``target``; a file we opened is closed again, one we were given is not.

    Whatever ends the run, what was written is flushed, so the log keeps
    its prefix; a file that cannot take it then is no news beside what
    ended the run, and only a run that ended well reports it.
    """
    if target is None:
        yield None
    elif _is_structlog_logger(target):
        yield StructlogSink(target)
    elif isinstance(target, (str, os.PathLike)):
        path = os.fspath(target)
        if not isinstance(path, str):  # a PathLike of bytes, or a mock whose fspath is anything
            raise OmActorsError(
                f"log= takes a file name, a binary file or a structlog logger, not {type(target).__name__}"
            )
        try:
            file = open(path, "wb")  # noqa: SIM115 -- closed below, whatever happens
        except OSError as exc:
            raise CannotWrite(f"the log {path}", exc) from None
        try:
            with _flushed(LogWriter(file)) as writer:
                yield writer
        except BaseException:
            with suppress(OSError):
                file.close()
            raise
        try:
            file.close()
        except OSError as exc:
            raise CannotWrite(f"the log {path}", exc) from None
    else:
        with _flushed(LogWriter(_binary_file(target))) as writer:
            yield writer


@contextmanager
def _flushed(writer: LogWriter) -> Iterator[LogWriter]:
    """``writer``, flushed at the end: a failure is raised after a run that ended well, dropped otherwise."""
    try:
        yield writer
    except BaseException:
        with suppress(Exception):  # what ended the run is the news, not a file that failed after it
            writer.flush()
        raise
    writer.flush()


def _binary_file(target: object) -> IO[bytes]:
    """``target`` as the binary file a log is written to, or an error that says what ``log=`` takes.

    A file needs only ``write``, taking bytes; ``flush`` is called when it
    has one.  A text file would fail at the first line, deep in the run.
    """
    if not callable(getattr(target, "write", None)):
        raise OmActorsError(
            f"log= takes a file name, a binary file or a structlog logger, not {type(target).__name__}"
        )
    mode = getattr(target, "mode", None)
    if isinstance(target, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise OmActorsError(
            f"log= takes a binary file, and {_named_file(target)} is a text file: open it with mode 'wb'"
        )
    if getattr(target, "closed", False) is True:
        raise OmActorsError(f"log= takes a file open for writing, and {_named_file(target)} is closed")
    writable = getattr(target, "writable", None)
    if callable(writable) and writable() is False:
        raise OmActorsError(
            f"log= takes a file open for writing, and {_named_file(target)} is open only for reading: "
            "open it with mode 'wb'"
        )
    return cast(IO[bytes], target)


def _named_file(file: object) -> str:
    name = getattr(file, "name", None)
    return repr(name) if isinstance(name, str) else f"this {type(file).__name__}"


def _nothing() -> None:
    """What flushing a file without ``flush`` does."""


# --- reading -----------------------------------------------------------------


@attrs.frozen
class LogLine:
    """One event read back from a log, with the line it stood on.

    For a message line, ``payload`` is the algorithm's message rebuilt from
    the line's fields -- a traitor's garbage included, for the algorithm to
    judge -- and ``path`` the path the algorithm says it travelled (its
    :meth:`~om_actors.algorithm.Algorithm.path_of`), with any lists in it
    made tuples so it can be a key.  A ``strategy.failed`` line has the
    ``path`` of the message it failed to send.  Both are ``None`` otherwise.
    """

    number: int
    fields: dict[str, Any]
    raw: bytes
    payload: object = None
    path: object = None

    @property
    def event(self) -> str:
        name: str = self.fields["event"]
        return name


_Check = Callable[[object], bool]


@attrs.frozen
class _Rule:
    """What one field of a log line must be: derived from an attrs field and its type."""

    name: str
    required: bool
    check: _Check
    kind: str


def rules_of(cls: type) -> tuple[_Rule, ...]:
    """What each field of the attrs class ``cls`` must be in a log line, from its type hints.

    A field that defaults to ``None`` may be left out, and must not be
    ``null`` when it is there (the writer leaves it out instead).  An
    :class:`~om_actors.events.Kind` in a field's ``Annotated`` type gives
    the words for errors and a lower bound; without one the words come from
    the type.  A payload class whose hints cannot be resolved has its
    fields taken as anything: judging them is its algorithm's job.
    """
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an application's payload class, annotated any way it likes
        hints = {}
    found = []
    for field in attrs.fields(cls):
        optional = field.default is None
        hint = hints.get(field.name, object)
        check, kind = _checker(_without_none(hint) if optional else hint)
        found.append(_Rule(field.name, not optional, check, kind))
    return tuple(found)


def _without_none(hint: object) -> object:
    if get_origin(hint) in _UNIONS:
        rest = tuple(arg for arg in get_args(hint) if arg is not type(None))
        return rest[0] if len(rest) == 1 else Union[rest]  # noqa: UP007 -- a Union built at run time
    return hint


_UNIONS = (Union, types.UnionType)


def _checker(hint: object) -> tuple[_Check, str]:
    """A check for a JSON value and the words for what it expects, from a type hint."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        check, text = _checker(base)
        for kind in extras:
            if isinstance(kind, Kind):
                text = kind.text
                if kind.minimum is not None:
                    check = _at_least(check, kind.minimum)
        return check, text
    return _plain_checker(hint)


def _plain_checker(hint: object) -> tuple[_Check, str]:
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return _is_bool, "true or false"
    if hint is int:
        return _is_int, "an integer"
    if hint is float:
        return _is_number, "a number"
    if hint is str or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return _is_text, "a string"
    if origin is Literal:
        allowed = frozenset((type(arg), arg) for arg in args)
        return (lambda value: (type(value), value) in allowed), _either(json.dumps(arg) for arg in args)
    if origin in _UNIONS:
        return _union_checker(args)
    if hint is dict or origin in (dict, Mapping):
        return _is_object, "an object"
    if hint in (tuple, list) or origin in (tuple, list, Sequence):
        return _list_checker(args)
    return _is_anything, "anything"


def _union_checker(args: tuple[object, ...]) -> tuple[_Check, str]:
    members = [_checker(arg) for arg in args if arg is not type(None)]
    nullable = type(None) in args
    checks = [check for check, _ in members]

    def check(value: object) -> bool:
        return (nullable and value is None) or any(member(value) for member in checks)

    return check, _either([*(text for _, text in members), *(["null"] if nullable else [])])


def _list_checker(args: tuple[object, ...]) -> tuple[_Check, str]:
    """A JSON list, for ``tuple[X, ...]``, ``list[X]`` and ``Sequence[X]``: each item checked as ``X``."""
    items = args[0] if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis) else object
    if items is object or items is Any:
        return _is_list, "a list"
    check, _ = _checker(items)
    return (lambda value: isinstance(value, list) and all(map(check, value))), (
        f"a list of {_PLURALS.get(items, 'items of one kind')}"
    )


_PLURALS: dict[object, str] = {
    int: "integers",
    str: "strings",
    bool: "true or false values",
    float: "numbers",
}


def _either(texts: typing.Iterable[str]) -> str:
    """``"true or false"`` and ``"null"`` as ``"true, false or null"``."""
    words = [word for text in texts for word in text.split(" or ")]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _at_least(check: _Check, low: int) -> _Check:
    return lambda value: check(value) and cast(int, value) >= low


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_number(value: object) -> bool:
    return type(value) in (int, float)


def _is_bool(value: object) -> bool:
    return isinstance(value, bool)


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _is_list(value: object) -> bool:
    return isinstance(value, list)


def _is_anything(value: object) -> bool:
    return True


@attrs.frozen
class _Described:
    """An event class as the reader checks it: its fields' rules, and where its path is."""

    rules: tuple[_Rule, ...]
    carries: bool
    """It carries a payload, whose fields stand in the line in place of ``payload``."""
    has_path: bool
    """It has a ``path`` field of its own (``strategy.failed``)."""

    @classmethod
    def of(cls, event: type) -> _Described:
        names = {field.name for field in attrs.fields(event)}
        return cls(rules_of(event), PAYLOAD in names, "path" in names)


@functools.cache
def _events() -> dict[str, _Described]:
    """Every event a log may hold, by name, with what each of its fields must be.

    Made when the first log is read, not on import: a run that writes one
    never reads any.
    """
    return {cls.name: _Described.of(cls) for cls in get_args(Event)}


@functools.cache
def _message_rules(event: str, payload: type) -> tuple[_Rule, ...]:
    """An event's rules with ``payload`` replaced, in place, by the rules of the payload class's fields."""
    found: list[_Rule] = []
    for rule in _events()[event].rules:
        found.extend(rules_of(payload) if rule.name == PAYLOAD else (rule,))
    return tuple(found)


MAX_LINE_BYTES = 16 * 2**20
"""The longest line a reader accepts.  om_actors writes lines of a few hundred
bytes; only ``run.start`` grows, with a scenario's ``scripted`` messages, and
16 MiB holds a script for every message of thirteen generals with m = 4.  A
longer line is refused before it is read whole, so a hostile log cannot make
a reader hold a gigabyte."""

MAX_NESTING = 100
"""Lists and objects nested deeper than this are refused: om_actors writes
fewer than ten levels, and a reader must never recurse without bound."""


def read_log(path: str | os.PathLike[str], *, on_read: ReadProgress | None = None) -> Iterator[LogLine]:
    """The events of a log, one line at a time, checked as they are read.

    The file is streamed, never read whole, so a log of hundreds of
    megabytes costs memory only for what the caller keeps.
    ``on_read(bytes)`` is told how far into the file reading has got, every
    few thousand lines and at the end, for a progress bar.  Raises
    :class:`LogError`, naming the line, for anything that is not a whole,
    well-formed log of a known schema -- including one that stops before its
    ``verdict``, and one whose scenario names an algorithm this program has
    not registered, since its messages cannot be read without it.
    """
    source = os.fspath(path)
    try:
        file = open(path, "rb")  # noqa: SIM115 -- closed below, after the generator's last line
    except OSError as exc:
        raise LogError(source, None, f"cannot read the log: {exc.strerror or exc}") from None
    with file:
        yield from read_log_stream(source, file, on_read=on_read)


ReadProgress = Callable[[int], None]
"""Told how many bytes of a log have been read: :func:`read_log`'s ``on_read``."""

READ_PROGRESS_EVERY = 4096
"""Lines between two reports to ``on_read``."""


def read_log_stream(
    source: str, file: IO[bytes], *, on_read: ReadProgress | None = None
) -> Iterator[LogLine]:
    """:func:`read_log` of an open binary stream, named ``source`` in its errors: standard input, a pipe.

    ``on_read`` counts the bytes of whole lines read, so a stream that
    cannot tell its position can still report it.
    """
    reader = _Reader(source)
    last: LogLine | None = None
    read = 0
    for number, raw in enumerate(iter(partial(file.readline, MAX_LINE_BYTES + 1), b""), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise LogError(source, number, f"a line longer than {MAX_LINE_BYTES:,} bytes: not a log line")
        last = reader.parse(number, raw)
        if on_read is not None:
            read += len(raw)
            if not number % READ_PROGRESS_EVERY:
                on_read(read)
        yield last
    if on_read is not None:
        on_read(read)
    if last is None:
        raise LogError(source, None, "the log is empty: it has no run.start line")
    if last.event != "verdict":
        raise LogError(source, last.number, "the log ends without a verdict: the run did not finish")


class _Reader:
    """Checks one log's lines in order; the first, ``run.start``, says which algorithm's messages follow."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.algorithm: Algorithm | None = None
        self.events = _events()

    def parse(self, number: int, raw: bytes) -> LogLine:
        source = self.source
        fields = _json(source, number, raw)
        if not isinstance(fields, dict) or not isinstance(fields.get("event"), str):
            raise LogError(source, number, f"not a log event (no 'event' name): {_excerpt(raw)}")
        event = fields["event"]
        if self.algorithm is None and event != "run.start":
            raise LogError(source, number, f"a log starts with run.start, not {event!r}")
        if event not in self.events:
            raise LogError(source, number, f"unknown event {event!r}")
        if event == "run.start" and fields.get("schema") != SCHEMA:
            raise LogError(source, number, _schema_problem(fields.get("schema")))
        described = self.events[event]
        algorithm, rules = self.algorithm, described.rules
        if described.carries:
            assert algorithm is not None
            rules = _message_rules(event, algorithm.payload)
        for rule in rules:
            if rule.name in fields:
                _check_field(source, number, event, rule, fields[rule.name])
            elif rule.required:
                raise LogError(source, number, f"{event} event without {rule.name!r}")
        if algorithm is None:
            self.algorithm = _algorithm(source, number, fields["scenario"])
        if described.carries:
            assert algorithm is not None
            payload = _payload(source, number, algorithm, fields)
            return LogLine(number, fields, raw, payload, hashable(algorithm.path_of(payload)))
        if described.has_path:
            return LogLine(number, fields, raw, path=hashable(fields["path"]))
        return LogLine(number, fields, raw)


def _algorithm(source: str, number: int, scenario: Mapping[str, Any]) -> Algorithm:
    """The registered algorithm a logged scenario names: what its messages are."""
    name = scenario.get("algorithm", DEFAULT_ALGORITHM)
    if not isinstance(name, str):
        raise LogError(
            source, number, f"run.start holds a scenario whose algorithm is not a name: {_excerpt(name)}"
        )
    try:
        return algorithm_named(name)
    except OmActorsError as exc:
        raise LogError(source, number, f"run.start holds a scenario of {exc}") from None


def _payload(source: str, number: int, algorithm: Algorithm, fields: Mapping[str, Any]) -> object:
    try:
        return algorithm.payload_from_fields(fields)
    except (TypeError, ValueError) as exc:
        raise LogError(source, number, f"a message that is no {algorithm.title} message: {exc}") from None


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


def _check_field(source: str, number: int, event: str, rule: _Rule, value: object) -> None:
    if not rule.check(value):
        what = "malformed path" if rule.name == "path" else f"malformed {rule.name!r}"
        expected = f"expected {rule.kind}, got {_excerpt(value)}"
        raise LogError(source, number, f"{event} event with a {what}: {expected}")


def _schema_problem(schema: object) -> str:
    if type(schema) is int and schema > SCHEMA:
        return f"log schema {schema} is newer than this om_actors reads ({SCHEMA}): upgrade om_actors"
    if schema == 1:
        return (
            f"log schema 1 is older than this om_actors reads ({SCHEMA}): it was written before scenarios "
            "named their algorithm; run the scenario again with this version to get a log it can read"
        )
    return f"unknown log schema {schema!r}: this om_actors reads schema {SCHEMA}"


def _excerpt(value: object) -> str:
    text = value.decode("utf-8", "replace").strip() if isinstance(value, bytes) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def hashable(value: object) -> object:
    """A logged value usable as a key whatever a traitor put in it: lists and objects become tuples.

    A forged path may hold lists or objects; as tuples the algorithm still
    refuses it, just as it refused the original.  A tuple of plain values,
    which every path of a loyal general is, comes back as it is.
    """
    if isinstance(value, (list, tuple)):
        if type(value) is tuple and all(type(item) in _PLAIN for item in value):
            return value
        return tuple(hashable(item) for item in value)
    if isinstance(value, dict):
        return tuple((key, hashable(item)) for key, item in value.items())
    return value


_PLAIN = frozenset({int, str, float, bool, type(None)})


@attrs.frozen
class Selection:
    """Filters over log events; an unset filter lets everything through.

    An event without the field a filter tests (a ``decision`` has no
    ``sender``) does not match that filter.  ``path_prefix`` tests the path
    a message's algorithm says it travelled (:attr:`LogLine.path`), so it
    works for any algorithm whose messages have one; :func:`read_selected`
    refuses it on the log of an algorithm whose messages have none.
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
            path = line.path
            if not isinstance(path, tuple) or path[: len(self.path_prefix)] != self.path_prefix:
                return False
        return not self.events or line.event in self.events


def has_paths(rules: Algorithm) -> bool:
    """Whether ``rules``' messages can say a path they travelled.

    Only an algorithm that keeps :meth:`Algorithm.path_of`'s default and
    whose payload has no ``path`` is known to have none: every message of
    it is along ``()``, and a path prefix can select none of them.
    """
    own_path_of = getattr(rules.path_of, "__func__", None) is not Algorithm.path_of
    return own_path_of or hasattr(rules.payload, "path") or "path" in attrs.fields_dict(rules.payload)


def read_selected(path: str | os.PathLike[str], selection: Selection) -> Iterator[LogLine]:
    """The lines of the log at ``path`` that ``selection`` lets through, in log order, read as they stream.

    A ``path_prefix`` on the log of an algorithm whose messages carry no
    path (:func:`has_paths`) would silently match nothing, so it is refused
    with a :class:`LogError` on line 1, where the algorithm is named.
    """
    lines = read_log(path)
    start = next(lines)
    if selection.path_prefix is not None:
        rules = _algorithm(os.fspath(path), start.number, start.fields["scenario"])
        if not has_paths(rules):
            raise LogError(
                os.fspath(path),
                start.number,
                f"{rules.title} messages carry no path, so a path prefix selects none of them: "
                "select them by round, sender or receiver instead",
            )
    if selection.matches(start):
        yield start
    yield from (line for line in lines if selection.matches(line))
