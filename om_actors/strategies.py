"""How traitors lie.

A strategy is a small object with one method, :meth:`Strategy.choose`.  The
runtime calls it for every message a traitor owes, passing the value a loyal
general would send, and sends whatever comes back.  Returning ``None`` keeps
silent; returning a :class:`Forgery` sends a made-up path.  Anything else is
sent as the value, however absurd: refusing garbage is the receiver's job, and
a strategy is how researchers check that it does.

``choose`` may also be ``async``: a strategy that awaits forever is how a
general that hangs is modelled, and the round timeout is what stops it.

The round timeout cannot stop a *synchronous* ``choose``: every general
shares one thread, and trio can only cut a task off where it awaits.  A
``choose`` that computes for a long time, sleeps with ``time.sleep`` or
blocks on I/O holds up the whole run, every message it returns is still
sent, and one that never returns hangs the run for good.  Work that must be
cut off belongs in an ``async`` ``choose``, for instance behind
``await trio.to_thread.run_sync(work, abandon_on_cancel=True)``.
"""

from __future__ import annotations

import enum
import functools
import importlib
import inspect
import os
import random
import re
import sys
from collections.abc import Awaitable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import attrs

from .algorithm import Algorithm, DecisionPoint, Path, Setup
from .errors import OmActorsError, printed
from .limits import MAX_SCRIPT

if TYPE_CHECKING:  # numpy is imported by batched runs only, where a ValueRow is made
    import numpy as np
    import numpy.typing as npt

    ValueRow: TypeAlias = npt.NDArray[np.uint8]
    """Value indices, one per path: what a general holds, or what a traitor sends one receiver (batched)."""


def _as_path(path: Iterable[object]) -> tuple[object, ...]:
    return tuple(path)


@attrs.frozen
class Forgery:
    """A message along a path the traitor made up, instead of the true one.

    The runtime still stamps the traitor as the sender, so receivers catch
    the forgery by the path rules and count the message as missing.  The
    path may hold anything, but it is a sequence, so every path ever sent is
    a tuple and every logged path a JSON list; something that is not a
    sequence at all fails here, inside the strategy, and costs the traitor
    that message.
    """

    path: tuple[object, ...] = attrs.field(converter=_as_path)
    value: object


@runtime_checkable
class BatchStrategy(Protocol):
    """A strategy that can also lie to one receiver about a whole round at once.

    ``held`` holds value indices, one per path of the previous round (what a
    loyal general would relay); the result is what to send instead, or
    ``None`` for silence.  It must give what :meth:`Strategy.choose` would,
    path by path: batched runs use it, per-message runs do not, and the two
    modes must agree.  Strategies without it run at per-path speed in
    batched mode.  A subclass of a built-in that overrides ``choose`` must
    override this too, or batched mode keeps lying the parent's way.
    """

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None: ...


@runtime_checkable
class Strategy(Protocol):
    """A traitor's behaviour, one message at a time.

    ``rng`` is seeded from the scenario seed, the round, the traitor, the
    path and the receiver only, so a strategy that draws from it lies the
    same way on every run, whatever order trio schedules the generals in.

    ``choose`` may return an awaitable; the scenario's ``round_timeout`` can
    then cut it off.  A synchronous ``choose`` cannot be cut off: it runs
    to the end on the thread every general shares, so one that spins or
    blocks stalls the run, and one that never returns hangs it.  Keep it
    quick, or make it ``async`` and await whatever may take long.
    """

    def choose(
        self, round: int, path: Path, receiver: int, value: str, rng: random.Random
    ) -> object | Awaitable[object]: ...


class StrategyRaised(Exception):
    """A strategy raised while choosing one message; that message is not sent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(printed(error))
        self.error = error


def stopped_by(general: int, error: BaseException, choosing: str, why: str) -> StrategyError:
    """The error for a strategy that raised what its runtime cannot take as a lost message."""
    return StrategyError(
        f"general {general}'s strategy raised {raised_in_a_line(error)} choosing {choosing}: {why}"
    )


def _printable(character: str) -> str:
    return character if character.isprintable() else character.encode("unicode_escape").decode("ascii")


def raised_in_a_line(error: BaseException, most: int = 300) -> str:
    """What a strategy raised (:func:`~om_actors.errors.printed`) as one line: escaped, at most ``most`` long.

    A ``__repr__`` of a strategy's own may hold line breaks, terminal
    escapes or a megabyte: each unprintable character is written as its
    escape, as ``repr`` writes them.
    """
    text = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in printed(error)
    )
    return text if len(text) <= most else text[: most - 1] + "…"


def interpret(choice: object, path: Path) -> tuple[tuple[object, ...], object] | None:
    """A strategy's answer as ``(path, value)``: ``None`` is silence, a :class:`Forgery` a made-up path."""
    if choice is None:
        return None
    if isinstance(choice, Forgery):
        return choice.path, choice.value
    return path, choice


def message_rng(
    seed: int, round: int, general: int, path: Path, receiver: int, instance: int | None = None
) -> random.Random:
    """The rng a traitor gets for one message: seeded by what identifies the message.

    That is its round, sender, path and receiver (and instance): an
    algorithm whose messages carry no path sends along ``(sender,)`` in
    every round, and only the round tells those apart.  Scheduling never
    enters into it, so a random strategy lies the same way on every run --
    and in verify's lockstep runs, which share this.  Seeding is put off
    until a strategy draws, since most never do.
    """
    return _LazyRandom((seed, round, general, path, receiver, instance))


class _LazyRandom(random.Random):
    """A ``random.Random`` seeded on its first draw, exactly as if seeded at once.

    Even the seed's text waits: a traitor of thirteen generals is asked
    thousands of times a round, and most strategies never draw.
    """

    def __init__(self, identity: tuple[int, int, int, Path, int, int | None]) -> None:
        # deliberately not calling super(): that seeds
        self._pending: tuple[int, int, int, Path, int, int | None] | None = identity
        self.gauss_next = None

    def _ready(self) -> None:
        if self._pending is not None:
            (seed, round, general, path, receiver, instance), self._pending = self._pending, None
            where = f"{round}/{general}/{path}/{receiver}"
            if instance is not None:
                where = f"{instance}/{where}"
            super().seed(f"{seed}/{where}")

    def random(self) -> float:
        self._ready()
        return super().random()

    def getrandbits(self, k: int, /) -> int:
        self._ready()
        return super().getrandbits(k)

    def getstate(self) -> tuple[Any, ...]:
        self._ready()
        return super().getstate()

    def seed(self, a: Any = None, version: int = 2) -> None:
        """A strategy that seeds its rng itself gets that seed, not the message's one on the next draw."""
        self._pending = None
        super().seed(a, version)

    def setstate(self, state: tuple[Any, ...]) -> None:
        self._pending = None
        super().setstate(state)

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied or pickled, a plain ``random.Random`` in this one's state: it draws what this one would."""
        return random.Random, (), self.getstate()


def following(values: Sequence[str], value: str) -> str:
    """The value after ``value`` in ``values``, wrapping around."""
    return values[(values.index(value) + 1) % len(values)]


def _next_index(held: ValueRow, count: int) -> ValueRow:
    return _successors(count)[held]


@functools.cache
def _successors(count: int) -> ValueRow:
    """The value after each byte a row can hold, of ``count`` values: one lookup per entry, not 3 passes."""
    import numpy as np

    return ((np.arange(256, dtype=np.int16) + 1) % count).astype(np.uint8)


@attrs.frozen
class Loyal:
    """Sends the truth: a traitor in name only, useful as a control."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return value

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None:
        return held


@attrs.frozen
class Flip:
    """Sends the next value to everyone: a consistent liar."""

    values: tuple[str, ...]

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return following(self.values, value)

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None:
        return _next_index(held, len(values))


class Parity(str, enum.Enum):
    """Which receivers a :class:`Split` traitor lies to: the odd-numbered or the even-numbered ones."""

    ODD = "odd"
    EVEN = "even"

    def __str__(self) -> str:
        return self.value

    def includes(self, general: int) -> bool:
        return general % 2 == (1 if self is Parity.ODD else 0)


@attrs.frozen
class Split:
    """Two-faced: the next value to receivers of one parity, the truth to the others.

    By default it lies to odd-numbered receivers.  ``lie_to="even"`` lies to
    the even-numbered ones instead, as the traitor commander of the Flask
    system in mtrencseni/dca (the code of Bytepawn's "Lamport's Byzantine
    Generals algorithm in Python") does.
    """

    values: tuple[str, ...]
    lie_to: Parity = attrs.field(default=Parity.ODD, converter=Parity)

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return following(self.values, value) if self.lie_to.includes(receiver) else value

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None:
        return _next_index(held, len(values)) if self.lie_to.includes(receiver) else held


@attrs.frozen
class Constant:
    """Sends ``value`` whatever it was told."""

    value: str

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return self.value

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None:
        if self.value not in values:
            raise ValueError(f"constant {self.value!r} is not one of the values")
        import numpy as np

        return np.full_like(held, values.index(self.value))


@attrs.frozen
class Silent:
    """Sends nothing at all; receivers fall back on the default."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return None

    def choose_batch(
        self, round: int, receiver: int, held: ValueRow, values: Sequence[str]
    ) -> ValueRow | None:
        return None


@attrs.frozen
class RandomChoice:
    """A value drawn at random for every message.

    With ``seed`` set, draws come from that seed instead of the scenario's
    (with the round, path and receiver, as the scenario's are), so one
    traitor's randomness can be varied while everything else stays.
    """

    values: tuple[str, ...]
    seed: int | None = None

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if self.seed is not None:
            rng = random.Random(f"{self.seed}/{round}/{path}/{receiver}")
        return rng.choice(self.values)


@attrs.frozen
class ScriptedMessage:
    """One message a :class:`Scripted` traitor gets wrong: ``value``, or silence when ``None``.

    ``round`` is the round it is sent in; ``None`` stands for every round
    in which the traitor sends along ``path`` to ``receiver``.  In OM(m)
    and SM(m) a path is sent in one round only, the one its length says,
    so their scripts need no round; an algorithm whose messages carry no
    path (``(sender,)`` in every round) tells its rounds apart with it.
    """

    path: tuple[int, ...]
    receiver: int
    value: str | None
    round: int | None = None

    @property
    def key(self) -> tuple[int | None, tuple[int, ...], int]:
        """What makes two entries the same message: round, path and receiver."""
        return (self.round, self.path, self.receiver)


def _script(entries: Iterable[object]) -> tuple[ScriptedMessage, ...]:
    if isinstance(entries, (str, bytes, Mapping)) or not isinstance(entries, Iterable):
        raise ValueError("messages: expected a list of messages, each with path, receiver and value")
    script = []
    for index, entry in enumerate(entries):
        try:
            script.append(_scripted_message(entry))
        except ValueError as exc:
            raise ValueError(f"messages[{index}]: {exc}") from None
    return tuple(script)


def _scripted_message(entry: object) -> ScriptedMessage:
    if isinstance(entry, ScriptedMessage):
        return entry
    if not isinstance(entry, Mapping):
        raise ValueError("expected a mapping with path, receiver and value (or silent: true)")
    path, receiver = entry.get("path"), entry.get("receiver")
    if not isinstance(path, (list, tuple)) or not all(type(g) is int for g in path):
        raise ValueError("path must be a list of general ids")
    if type(receiver) is not int:
        raise ValueError("receiver must be a general id")
    unknown = set(entry) - {"round", "path", "receiver", "value", "silent"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown, key=str)[0]!r}")
    round = entry.get("round")
    if "round" in entry and (type(round) is not int or round < 1):
        raise ValueError(f"round must be a round number, 1 or more, not {short_repr(round)}")
    if entry.get("silent") is True and "value" not in entry:
        return ScriptedMessage(tuple(path), receiver, None, round)
    value = entry.get("value")
    if not isinstance(value, str) or "silent" in entry:
        raise ValueError("give a value, or silent: true")
    return ScriptedMessage(tuple(path), receiver, value, round)


@attrs.frozen
class ScriptContext:
    """What a script's entries are checked against: the algorithm, each instance's setup, and the traitor.

    The algorithm's :meth:`~om_actors.algorithm.Algorithm.script_problem`
    says which messages the traitor may send; the setups all share one army.
    """

    rules: Algorithm
    setups: tuple[Setup, ...]
    traitor: int

    @property
    def generals(self) -> int:
        return self.setups[0].generals

    @property
    def m(self) -> int:
        return self.setups[0].m

    @property
    def rounds(self) -> int:
        return self.rules.rounds(self.generals, self.m)

    def problem(self, message: ScriptedMessage) -> str | None:
        """Why the traitor never sends ``message`` in any instance, or ``None`` when it may.

        A message without a round may be sent in any round, and is allowed
        when one of them allows it.  When every instance refuses it for the
        same reason, that is the reason; otherwise each instance's is given.
        """
        rules, rounds = self.rules, self.rounds
        if message.round is not None and message.round > rounds:
            return f"round {message.round}, but {rules.titled(self.m)} runs {rounds} rounds"
        tried = range(1, rounds + 1) if message.round is None else (message.round,)
        reasons = []
        for setup in self.setups:
            said = []
            for round in tried:
                point = DecisionPoint(round, message.path, message.receiver)
                reason = rules.script_problem(setup, self.traitor, point)
                if reason is None:
                    return None
                said.append(reason)
            reasons.append(
                said[0]
                if len(set(said)) == 1
                else (
                    f"general {self.traitor} sends nothing along path {list(message.path)} "
                    f"to general {message.receiver} in any round of {rules.titled(self.m)}"
                )
            )
        if len(set(reasons)) == 1:
            return reasons[0]
        return "; ".join(f"instance {index}: {reason}" for index, reason in enumerate(reasons))


def script_problems(
    messages: object, context: ScriptContext | None, values: Collection[str] | None = None
) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with a ``scripted`` strategy's ``messages``, entry by entry; nothing is built.

    Each entry must name a message the traitor really sends -- what
    :meth:`Scripted.choose` is asked about, as the algorithm's
    :meth:`~om_actors.algorithm.Algorithm.script_problem` judges it.  An
    entry that names anything else would be silently ignored by the run, so
    it is refused here, saying why.  Two entries may not name the same
    round, path and receiver.  ``context`` is ``None`` when the scenario's
    army is itself unusable; then only each entry's shape is checked.

    Each entry's value must be one of the scenario's ``values`` (when they
    are known), as ``constant``'s must: a script is written by hand or by
    ``verify``, so a value outside them is a typo, which receivers would
    quietly count as rejected.  A traitor that sends garbage on purpose is
    a ``module:Class`` strategy's job.
    """
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
        return [(("messages",), "expected a list of messages, each with path, receiver and value")]
    if len(messages) > MAX_SCRIPT:
        return [
            (("messages",), f"has {len(messages):,} entries, more than the {MAX_SCRIPT:,} a script may have")
        ]
    problems: list[tuple[tuple[str | int, ...], str]] = []
    seen: dict[tuple[int | None, tuple[int, ...], int], int] = {}
    for index, entry in enumerate(messages):
        try:
            message = _scripted_message(entry)
        except ValueError as exc:
            problems.append((("messages", index), str(exc)))
            continue
        reason = None if context is None else context.problem(message)
        if reason is None and message.key in seen:
            reason = f"the same message as messages.{seen[message.key]}: script each message once"
        seen.setdefault(message.key, index)
        if reason is not None:
            problems.append((("messages", index), reason))
        if values is not None and message.value is not None and message.value not in values:
            text = f"{short_repr(message.value)} is not one of values {list(values)}"
            problems.append((("messages", index, "value"), text))
    return problems


def short_repr(value: object) -> str:
    """``repr(value)``, cut short: a problem is one line, whatever the input holds."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text):,} characters)"


@attrs.frozen
class Scripted:
    """Lies exactly where its script says, and tells the truth everywhere else.

    ``om-actors verify`` writes its counterexamples with this strategy: each
    entry names a message by path and receiver (and round, where the path
    alone does not fix it) and says what the traitor sends on it, so a file
    reproduces one adversary message for message.  An entry with a round
    wins, in its round, over one without.
    """

    messages: tuple[ScriptedMessage, ...] = attrs.field(converter=_script)
    _any_round: dict[tuple[Path, int], str | None] = attrs.field(init=False, eq=False, repr=False)
    _by_round: dict[tuple[int, Path, int], str | None] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        any_round = {(m.path, m.receiver): m.value for m in self.messages if m.round is None}
        by_round = {(m.round, m.path, m.receiver): m.value for m in self.messages if m.round is not None}
        object.__setattr__(self, "_any_round", any_round)
        object.__setattr__(self, "_by_round", by_round)

    def scripted(self, round: int, path: Path, receiver: int, value: str) -> str | None:
        """What it sends on one message: that round's entry, else the round-less one, else ``value``."""
        if self._by_round:
            key = (round, path, receiver)
            if key in self._by_round:
                return self._by_round[key]
        return self._any_round.get((path, receiver), value)

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return self.scripted(round, path, receiver, value)

    def to_args(self) -> dict[str, object]:
        """The script as a scenario file writes it."""
        return {
            "messages": [
                {
                    **({"round": m.round} if m.round is not None else {}),
                    "path": list(m.path),
                    "receiver": m.receiver,
                    **({"value": m.value} if m.value else {"silent": True}),
                }
                for m in self.messages
            ]
        }


BUILT_IN: Mapping[str, type] = {
    "loyal": Loyal,
    "flip": Flip,
    "split": Split,
    "constant": Constant,
    "silent": Silent,
    "random": RandomChoice,
    "scripted": Scripted,
}
"""OM(m)'s strategy names, which a scenario file may use besides ``module:Class``.

Every algorithm has its own (:meth:`~om_actors.algorithm.Algorithm.strategies`);
the functions below take the algorithm's mapping and default to this one.
"""

FILLED_IN = frozenset({"values", "m"})
"""Constructor arguments the scenario supplies, which a file must not set: its values and its ``m``."""


class StrategyError(OmActorsError):
    """A strategy name or its arguments cannot be turned into a strategy.

    Scenario validation turns this into a :class:`ScenarioError` with the
    file's line and column; it reaches a caller directly from
    :func:`build_strategy` and from building a scenario's strategies.
    """


# Patterns, compiled (and cached by re) when a module:Class name is first checked: a run names none.
_IDENTIFIER_PATH = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
_QUALNAME = r"[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|<locals>))*"
"""A class's ``__qualname__``: what :meth:`TraitorSpec.of` writes for a class defined in code."""


def is_custom(name: str) -> bool:
    """Whether ``name`` names a user's ``module:Class`` rather than a built-in strategy.

    No built-in name of any algorithm has a colon, so the text alone tells.
    """
    return ":" in name


def closest(name: str, known: Iterable[str]) -> str | None:
    """The name in ``known`` that ``name`` most likely means, or ``None``: what a "did you mean" offers.

    Case is ignored, so ``SM`` finds ``sm`` -- too short for a spelling
    match (:func:`difflib.get_close_matches`), and the likeliest slip.
    """
    import difflib  # only a name that is not known needs it, and a run names none

    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    close = difflib.get_close_matches(name.casefold(), by_folded, n=1)
    return by_folded[close[0]] if close else None


def check_strategy_name(name: str, *, built_in: Mapping[str, type] = BUILT_IN) -> None:
    """Raise :class:`StrategyError` unless ``name`` is in ``built_in`` or has the form ``module.path:Class``.

    ``built_in`` is the algorithm's own strategies.  Looks at the text alone
    and imports nothing, so it is safe on names that come from a log or a
    network request.
    """
    if name in built_in:
        return
    module_name, colon, class_name = name.partition(":")
    if not colon:
        known = ", ".join(sorted(built_in))
        close = closest(name, built_in)
        hint = f"did you mean {close!r}? " if close is not None else ""
        raise StrategyError(f"unknown strategy {name!r}: {hint}use one of {known}, or module:Class")
    if not re.fullmatch(_IDENTIFIER_PATH, module_name) or not re.fullmatch(_QUALNAME, class_name):
        raise StrategyError(
            f"strategy {name!r} is not of the form module:Class (a dotted module path, a colon, a class name)"
        )


def strategy_class(name: str, *, built_in: Mapping[str, type] = BUILT_IN) -> type:
    """The class behind a strategy name: one of the algorithm's ``built_in``, or ``module:Class``.

    A ``module:Class`` name imports its module -- which runs that module's
    code, so call this only for names the user chose -- and then only looks:
    the class is found and its ``choose`` checked with
    :func:`inspect.getattr_static`, and nothing is constructed or called.
    Whatever the module raises while it is imported becomes a
    :class:`StrategyError` naming the module and the exception.
    """
    check_strategy_name(name, built_in=built_in)
    if name in built_in:
        return built_in[name]
    module_name, _, class_name = name.partition(":")
    module = _import(name, module_name)
    found: object = module
    for part in class_name.split("."):
        found = inspect.getattr_static(found, part, None)
    if not isinstance(found, type):
        raise StrategyError(f"module {module_name!r} has no class {class_name!r}")
    if not callable(inspect.getattr_static(found, "choose", None)):
        raise StrategyError(f"strategy {name!r} has no choose() method")
    return found


def _import(name: str, module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"cannot import module {module_name!r}: {exc}") from None
    except (Exception, SystemExit) as exc:  # a user's module may raise anything while it loads, even exit
        raise StrategyError(
            f"importing module {module_name!r} for strategy {name!r} raised {_described(exc)}"
        ) from None


def _described(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def importable_from(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Let ``module:Class`` strategies live in ``folder``: the folder of the scenario file naming them.

    The folder goes last on ``sys.path``, so installed modules win, and only
    for as long as the block runs; Python keeps a module imported once, so
    the run that follows uses the same one.
    """
    entry = None if folder is None else os.fspath(folder)
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.append(entry)
    try:
        yield
    finally:
        with suppress(ValueError):
            sys.path.remove(entry)


def strategy_parameters(cls: type) -> frozenset[str] | None:
    """The arguments a file may give ``cls``, or ``None`` when any may do.

    Read from the attrs fields, else from the constructor's signature --
    looked at, never called.
    """
    parameters = _parameters(cls)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters if p.kind in _NAMED) - FILLED_IN


def required_parameters(cls: type) -> frozenset[str]:
    """The arguments a file must give ``cls``, as far as they can be known."""
    parameters = _parameters(cls) or []
    required = {p.name for p in parameters if p.kind in _NAMED and p.default is p.empty}
    return frozenset(required) - FILLED_IN


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _parameters(cls: type) -> list[inspect.Parameter] | None:
    if attrs.has(cls):
        return [
            inspect.Parameter(
                f.alias or f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=inspect.Parameter.empty if f.default is attrs.NOTHING else f.default,
            )
            for f in attrs.fields(cls)
            if f.init
        ]
    try:
        return list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):  # a class implemented in C, say: its arguments cannot be known
        return None


def build_strategy(
    name: str,
    args: Mapping[str, object],
    *,
    values: tuple[str, ...],
    m: int | None = None,
    built_in: Mapping[str, type] = BUILT_IN,
    folder: str | os.PathLike[str] | None = None,
) -> Strategy:
    """Instantiate strategy ``name`` with ``args``, filling in the scenario's ``values`` and ``m``.

    ``built_in`` is the algorithm's strategies (OM(m)'s by default); a
    class that takes ``values`` or ``m`` gets the scenario's, so that SM(m)'s
    ``late`` knows its last round.  This is the one place a strategy is constructed, and so the one place a
    user's class runs: call it only for names the user chose, never for a
    name read from a log or a request.  ``folder`` is searched last for a
    ``module:Class`` module.  Whatever the class raises becomes a
    :class:`StrategyError` naming the strategy (and its file, for a user's
    class).
    """
    with importable_from(folder):
        cls = strategy_class(name, built_in=built_in)
    kwargs = dict(args)
    takes = {p.name for p in _parameters(cls) or []}
    if "values" in takes:
        kwargs["values"] = values
    if "m" in takes and m is not None:
        kwargs["m"] = m
    try:
        strategy = cls(**kwargs)
    except (Exception, SystemExit) as exc:  # a user's class may raise anything, even exit
        if name in built_in:
            raise StrategyError(f"strategy {name!r}: {exc}") from None
        raise StrategyError(
            f"strategy {name!r}{_source_file(cls)} raised when built: {_described(exc)}"
        ) from None
    if not isinstance(strategy, Strategy):
        raise StrategyError(f"strategy {name!r} has no choose() method")
    return strategy


def _source_file(cls: type) -> str:
    try:
        found = inspect.getsourcefile(cls)
    except TypeError:
        return ""
    return f" (from {found})" if found else ""
