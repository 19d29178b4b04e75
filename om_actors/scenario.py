"""Scenarios: what to simulate, built in code or read from YAML.

Loading happens in two passes so that a file with several mistakes reports all
of them at once.  The first pass structures each top-level key on its own with
cattrs and strict hooks (YAML's ``7.5`` is not an integer, ``"yes"`` is not a
boolean); the second checks the rules that tie keys together, such as ids
being in range.  Every problem carries the line and column ruamel.yaml saw it
at, so an editor can jump straight to it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, BinaryIO

import attrs

from .algorithm import Algorithm, Setup
from .errors import OmActorsError, Problem, ScenarioError
from .limits import (
    MAX_NESTING,
    MAX_NODES,
    MAX_SCENARIO_BYTES,
    MAX_STRING,
    MAX_TEXT,
    MAX_VALUES,
    read_at_most,
    size_problem,
    utf8_problem,
)
from .registry import DEFAULT_ALGORITHM, REGISTRY, algorithm_named
from .strategies import (
    FILLED_IN,
    Constant,
    Parity,
    ScriptContext,
    Scripted,
    Split,
    Strategy,
    StrategyError,
    build_strategy,
    check_strategy_name,
    closest,
    importable_from,
    is_custom,
    required_parameters,
    script_problems,
    short_repr,
    strategy_class,
    strategy_parameters,
)

DEFAULT_VALUES = ("attack", "retreat")

Where = tuple[str | int, ...]
Found = tuple[Where, str, bool]
"""A problem found: where it is, what it is, and whether it is about a mapping's key."""


# The converters below never raise: what they cannot convert they pass on
# as it is, for validation to report with every other problem at once.


def _traitor_specs(traitors: Mapping[int, TraitorSpec | str | Strategy]) -> Mapping[int, TraitorSpec]:
    if not isinstance(traitors, Mapping):
        return traitors
    items = list(traitors.items())
    if all(_is_int(general) for general, _ in items):
        items.sort(key=lambda item: item[0])
    return {general: _traitor_spec_of(spec) for general, spec in items}


def _traitor_spec_of(spec: TraitorSpec | str | Strategy) -> TraitorSpec:
    if isinstance(spec, TraitorSpec):
        return spec
    if isinstance(spec, str):
        return TraitorSpec(spec)
    return TraitorSpec.of(spec)


def _as_tuple(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        return values  # type: ignore[return-value]  # reported by validation
    return tuple(values)


def _is_int(value: object) -> bool:
    """An integer as a scenario means one: ``True`` is not general 1."""
    return isinstance(value, int) and not isinstance(value, bool)


@attrs.frozen
class TraitorSpec:
    """A strategy by name, with the arguments to build it.

    ``built`` holds a strategy object handed over in code, which is then
    used as it is; its name and, for an attrs class, its fields still go
    into the log, so a reader knows what lied.
    """

    strategy: str
    args: Mapping[str, object] = attrs.field(factory=dict)
    built: Strategy | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def custom(self) -> bool:
        """Whether this is a user's ``module:Class`` rather than a built-in strategy."""
        return is_custom(self.strategy)

    @classmethod
    def of(cls, strategy: Strategy) -> TraitorSpec:
        """The spec of a strategy object: its built-in name or ``module:Class``, and its attrs fields.

        A built-in of any registered algorithm keeps its short name; the
        fields the scenario fills in (``values``, ``m``) are left out.
        """
        kind = type(strategy)
        args = {}
        if attrs.has(kind):
            args = {
                f.name: getattr(strategy, f.name)
                for f in attrs.fields(kind)
                if f.init and f.name not in FILLED_IN
            }
        if isinstance(strategy, Scripted):  # its entries as a file writes them, not as objects
            args["messages"] = strategy.to_args()["messages"]
        built_in = {built: name for rules in REGISTRY.values() for name, built in rules.strategies().items()}
        return cls(built_in.get(kind, f"{kind.__module__}:{kind.__qualname__}"), args, strategy)


@attrs.frozen
class Instance:
    """One consensus instance: who commands it, and what a loyal one would order."""

    commander: int
    order: str


def _as_instances(instances: Iterable[Instance]) -> tuple[Instance, ...]:
    if isinstance(instances, (str, bytes, Mapping)) or not isinstance(instances, Iterable):
        return instances  # type: ignore[return-value]  # reported by validation
    return tuple(instances)


@attrs.frozen
class Expect:
    """What a scenario is meant to show; unset fields are not checked."""

    agreement: bool | None = None
    validity: bool | None = None
    success: bool | None = None
    decision: str | None = None


@attrs.frozen(kw_only=True)
class Scenario:
    """One run of an agreement algorithm: which one, the generals, the traitors and how they lie.

    ``algorithm`` names a registered algorithm (:mod:`om_actors.registry`):
    ``"om"`` for OM(m), the default, or ``"sm"`` for SM(m).  Building a
    scenario validates it: an impossible scenario raises
    :class:`ScenarioError` listing every problem.  A scenario the algorithm's
    theorem makes no promise for (OM(m) with ``generals < 3m + 1``, or more
    than ``m`` traitors) is allowed, since showing the failure is the point
    of it; see :attr:`warnings`.
    """

    generals: int
    m: int
    algorithm: str = DEFAULT_ALGORITHM
    """The registered algorithm's name; :attr:`rules` is the algorithm itself."""
    name: str = "scenario"
    commander: int = 0
    values: tuple[str, ...] = attrs.field(default=DEFAULT_VALUES, converter=_as_tuple)
    order: str = attrs.field(
        default=attrs.Factory(lambda self: self.values[0] if self.values else "", takes_self=True)
    )
    default: str = "retreat"
    traitors: Mapping[int, TraitorSpec] = attrs.field(factory=dict, converter=_traitor_specs)
    """Traitor ids, each with a strategy: a built-in name, a :class:`TraitorSpec`, or a strategy object."""
    seed: int = 0
    round_timeout: float = 1.0
    """Seconds each round may take before traitors still sending are cut off.

    Only a strategy that awaits can be cut off: a synchronous ``choose``
    runs to its end on the thread every general shares, whatever the
    timeout, so one that spins or blocks stalls the whole run (see
    :class:`~om_actors.Strategy`).  Loyal generals send without waiting
    and never come near it.
    """
    expect: Expect | None = None
    instances: tuple[Instance, ...] = attrs.field(default=(), converter=_as_instances)
    strategy_folder: str | None = None
    """The folder of the scenario file, where its ``module:Class`` strategies may live.

    Set by :func:`load_scenario` for a file that uses such a strategy, and
    carried in :meth:`to_dict`, so that whatever builds the strategies later
    -- ``run``, ``replay --rerun``, a cluster's nodes -- imports the same
    module.  A scenario file cannot set it.
    """

    def __attrs_post_init__(self) -> None:
        """Check the scenario as a scenario file is checked, with the same messages, all at once.

        A scenario built in code gets no line numbers, but no less checking:
        a wrong type (``generals=4.0``, ``m="2"``, a traitor without
        ``choose``) is reported here rather than failing later, deep in a
        run, and so are sizes no machine can run.
        """
        fields, problems = _typed_fields(self)
        folder = fields.get("strategy_folder") if _IMPORT_STRATEGIES.get() else None
        with importable_from(folder):
            problems += semantic_problems(fields, unusable=_unusable(fields))
        if problems:
            name = self.name if isinstance(self.name, str) and len(self.name) <= MAX_STRING else "scenario"
            raise ScenarioError([Problem(_message(where, text)) for where, text, _ in problems], name)

    @property
    def rules(self) -> Algorithm:
        """The algorithm this scenario runs, as registered under :attr:`algorithm`."""
        return algorithm_named(self.algorithm)

    @property
    def title(self) -> str:
        """The algorithm as people write it, with this scenario's ``m``: ``"OM(2)"``, ``"SM(1)"``."""
        return self.rules.titled(self.m)

    @property
    def rounds(self) -> int:
        """How many rounds each instance takes, as the algorithm counts them."""
        return self.rules.rounds(self.generals, self.m)

    @property
    def setups(self) -> tuple[Setup, ...]:
        """What every general of each instance shares, one per instance, in order."""
        return tuple(
            Setup(
                self.generals,
                self.m,
                instance.commander,
                self.values,
                self.default,
                seed=self.seed,
                instance=index,
            )
            for index, instance in enumerate(self.effective_instances)
        )

    @property
    def setup(self) -> Setup:
        """The first (usually the only) instance's parameters."""
        return self.setup_for(0)

    def setup_for(self, index: int) -> Setup:
        """The parameters of instance ``index`` (0 when the scenario has one)."""
        return self.setups[index]

    @property
    def effective_instances(self) -> tuple[Instance, ...]:
        """What runs: ``instances`` when given, else one from ``commander`` and ``order``."""
        return self.instances or (Instance(self.commander, self.order),)

    @property
    def loyal(self) -> tuple[int, ...]:
        return tuple(g for g in range(self.generals) if g not in self.traitors)

    @property
    def warnings(self) -> list[str]:
        """Why the algorithm's theorem promises nothing here: legal, but worth saying out loud."""
        return self.rules.warnings(self.generals, self.m, len(self.traitors))

    @property
    def custom_strategies(self) -> tuple[str, ...]:
        """The ``module:Class`` names this scenario's traitors use, each once, sorted.

        A caller that got the scenario from a log or a network request
        checks these against what its user allows before it calls
        :meth:`strategies` or :meth:`strategy_for`, which import them.
        """
        return tuple(sorted({spec.strategy for spec in self.traitors.values() if spec.custom}))

    def strategy_for(self, general: int) -> Strategy | None:
        """The strategy of ``general``, built fresh; ``None`` for a loyal general.

        This is where a ``module:Class`` strategy is imported (from
        :attr:`strategy_folder` too, last) and constructed, so its code runs
        here and nowhere else: validating a scenario only looks.  Call it
        only for a scenario whose strategies the user chose or trusts; see
        :attr:`custom_strategies`.  Raises :class:`StrategyError` naming the
        strategy, the traitor and the scenario when that fails.
        """
        spec = self.traitors.get(general)
        if spec is None:
            return None
        if spec.built is not None:
            return spec.built
        try:
            return build_strategy(
                spec.strategy,
                spec.args,
                values=self.values,
                m=self.m,
                built_in=self.rules.strategies(),
                folder=self.strategy_folder,
            )
        except StrategyError as exc:
            raise StrategyError(f"scenario {self.name!r}, traitor {general}: {exc}") from None

    def strategies(self) -> dict[int, Strategy]:
        """The strategy of every traitor: built fresh from its name, or the object given in code.

        Imports and constructs every ``module:Class`` strategy, as
        :meth:`strategy_for` does; a run calls this before its first round.
        """
        built = {general: self.strategy_for(general) for general in self.traitors}
        return {general: strategy for general, strategy in built.items() if strategy is not None}

    def to_dict(self) -> dict[str, Any]:
        """The scenario as plain JSON data, the shape a scenario file has."""
        data: dict[str, Any] = attrs.asdict(self, recurse=False)
        data["values"] = list(self.values)
        data["traitors"] = {
            str(general): spec.strategy if not spec.args else {"strategy": spec.strategy, **spec.args}
            for general, spec in self.traitors.items()
        }
        if self.instances:
            del data["commander"], data["order"]
            data["instances"] = [attrs.asdict(instance) for instance in self.instances]
        else:
            del data["instances"]
        if self.expect is None:
            del data["expect"]
        else:
            data["expect"] = {k: v for k, v in attrs.asdict(self.expect).items() if v is not None}
        if self.strategy_folder is None:
            del data["strategy_folder"]
        return data


_IMPORT_STRATEGIES: ContextVar[bool] = ContextVar("_IMPORT_STRATEGIES", default=True)
"""Whether validation may import ``module:Class`` strategies to look at them.

True for scenarios built in code and read from the user's own files; false
while :func:`scenario_from_dict` rebuilds one from a log or a request,
unless its caller says otherwise.  Validation never constructs a strategy
either way.
"""


def _typed_fields(scenario: Scenario) -> tuple[dict[str, Any], list[Found]]:
    """The fields of a scenario built in code that have the right types, and what is wrong with the rest.

    Each field goes through the same structuring hooks a scenario file's
    keys do, so ``generals=4.0`` is "expected an integer, got 4.0" either
    way.  A traitors mapping keeps its well-formed entries, so one bad
    traitor does not hide problems with the others.
    """
    fields: dict[str, Any] = {}
    problems: list[Found] = []
    for field in attrs.fields(Scenario):
        value = getattr(scenario, field.name)
        if field.name == "traitors":
            found, value = _traitor_problems(value)
        else:
            found = _under((field.name,), _field_problems(field, value))
        problems += found
        if not found or field.name == "traitors":
            fields[field.name] = value
    return fields, problems


def _unusable(fields: Mapping[str, Any]) -> set[str]:
    """The fields left out of ``fields`` for having the wrong type."""
    return {f.name for f in attrs.fields(Scenario) if f.name not in fields}


def _field_problems(field: attrs.Attribute[Any], value: object) -> list[Found]:
    if field.name == "strategy_folder":
        if value is None or (isinstance(value, str) and os.path.isabs(value)):
            return []
        return [((), f"expected an absolute folder path, got {_describe(value)}", False)]
    if field.name == "expect" and value is not None:
        return _instance_problems(value, Expect)
    if field.name == "instances" and isinstance(value, tuple):
        return [
            ((index, *where), text, on_key)
            for index, item in enumerate(value)
            for where, text, on_key in _instance_problems(item, Instance)
        ]
    return _typed_problems(list(value) if isinstance(value, tuple) else value, field.type)


def _instance_problems(value: object, kind: type[Expect] | type[Instance]) -> list[Found]:
    """An :class:`Expect` or :class:`Instance` given in code, its fields checked as a file's would be."""
    if not isinstance(value, kind):
        return [((), f"expected {kind.__name__}(...), got {_describe(value)}", False)]
    return [
        found
        for field in attrs.fields(kind)
        for found in _under((field.name,), _typed_problems(getattr(value, field.name), field.type))
    ]


def _typed_problems(value: object, kind: Any) -> list[Found]:
    """What is wrong with ``value`` as a ``kind``, found by the hook a file's value of that type goes through.

    A scenario built in code takes this path instead of the converter, so
    that an application which never reads a file never imports cattrs;
    since the hooks are the converter's own, the messages are a file's.
    ``X | None`` is handled as cattrs handles it; a type without a hook
    here goes through the converter.
    """
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind):
        if value is None:
            return []
        others = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        kind = others[0] if len(others) == 1 else kind
    hook = _HOOKS.get(kind)
    try:
        if hook is None:
            _structure(value, kind)
        else:
            hook(value, kind)
    except _Invalid as exc:
        return exc.problems
    return []


def _traitor_problems(traitors: object) -> tuple[list[Found], Mapping[int, TraitorSpec]]:
    """What is wrong with a traitors mapping given in code, and its well-formed entries."""
    if not isinstance(traitors, Mapping):
        return [
            (
                ("traitors",),
                f"expected a mapping from general id to strategy, got {_describe(traitors)}",
                False,
            )
        ], {}
    problems: list[Found] = []
    good: dict[int, TraitorSpec] = {}
    for general, spec in traitors.items():
        where: Where = ("traitors", general)
        if not _is_int(general):
            problems.append((where, f"expected a general id, got {_describe(general)}", True))
        elif not isinstance(spec.strategy, str):
            problems.append(
                ((*where, "strategy"), f"expected a strategy name, got {_describe(spec.strategy)}", False)
            )
        elif not isinstance(spec.args, Mapping) or not all(isinstance(k, str) for k in spec.args):
            problems.append((where, f"expected arguments by name, got {_describe(spec.args)}", False))
        elif spec.built is not None and not callable(getattr(spec.built, "choose", None)):
            text = (
                "expected a strategy name, a TraitorSpec or an object with a choose() method, "
                f"got {_describe(spec.built)}"
            )
            problems.append((where, text, False))
        else:
            good[general] = spec
    return problems, good


def semantic_problems(fields: Mapping[str, Any], *, unusable: Collection[str] = ()) -> list[Found]:
    """The rules between keys, over whatever keys are present and well typed.

    Keys in ``unusable`` were given but could not be read; rules that need
    them are skipped rather than checked against a default the file did not
    ask for.  Each problem is ``(where, message, on_key)``; ``on_key`` points
    at a mapping key rather than its value, for ids that are themselves wrong.
    """
    problems = _length_problems(fields)
    rules, found = _rules(fields, unusable)
    problems += found
    values = None if "values" in unusable else tuple(fields.get("values", DEFAULT_VALUES))
    army = _army_problems(fields, rules, values or DEFAULT_VALUES)
    problems += army
    if values is not None:
        problems += _value_problems(fields, values, unusable)
    if rules is None:
        return problems
    usable = not army and {"generals", "m"} <= set(fields) and not {"commander", "instances"} & set(unusable)
    for general, spec in fields.get("traitors", {}).items():
        context = _script_context(fields, rules, general) if usable else None
        problems += _strategy_problems(general, spec, values, rules, context)
    return problems


def _rules(fields: Mapping[str, Any], unusable: Collection[str]) -> tuple[Algorithm | None, list[Found]]:
    """The algorithm the scenario names, or ``None`` with why not; its strategies are checked only with it."""
    if "algorithm" in unusable:
        return None, []
    name = fields.get("algorithm", DEFAULT_ALGORITHM)
    if len(name) > MAX_STRING:
        return None, []  # reported by _length_problems
    try:
        return algorithm_named(name), []
    except OmActorsError as exc:
        return None, [(("algorithm",), str(exc), False)]


def _script_context(fields: Mapping[str, Any], rules: Algorithm, traitor: int) -> ScriptContext:
    """What a ``scripted`` traitor's entries are checked against: every instance the army runs."""
    instances = fields.get("instances") or (Instance(fields.get("commander", 0), ""),)
    values = tuple(fields.get("values", DEFAULT_VALUES))
    default, seed = fields.get("default", "retreat"), fields.get("seed", 0)
    setups = tuple(
        Setup(fields["generals"], fields["m"], instance.commander, values, default, seed=seed, instance=index)
        for index, instance in enumerate(instances)
    )
    return ScriptContext(rules, setups, traitor)


def _army_problems(
    fields: Mapping[str, Any], rules: Algorithm | None, values: tuple[str, ...]
) -> list[Found]:
    """The sizes and ids; the algorithm's own bounds when the algorithm is known.

    The size is the most the algorithm's run can send with these
    ``values`` (SM(m)'s lieutenants forward each value they hold) and this
    many traitors, so a file whose values cannot be read is sized with the
    default ones, and refused for its values anyway.
    """
    problems: list[Found] = []
    n, m = fields.get("generals"), fields.get("m")
    if n is not None and n < 2:
        problems.append((("generals",), "needs at least 2 generals: a commander and a lieutenant", False))
        n = None
    if m is not None and m < 0:
        problems.append((("m",), "must be 0 or more", False))
    elif m is not None and n is not None and rules is not None:
        refused = rules.problems(n, m)
        problems.extend((("m",), text, False) for text in refused)
        setup = Setup(n, m, 0, values, fields.get("default", "retreat"))
        traitors, instances = len(fields.get("traitors", {})), len(fields.get("instances") or ()) or 1
        size = None if refused else size_problem(rules, setup, traitors, instances)
        if size is not None:
            problems.append((("generals",), size, False))
    if n is not None and not 0 <= fields.get("commander", 0) < n:
        problems.append((("commander",), f"must be a general id from 0 to {n - 1}", False))
    for index, instance in enumerate(fields.get("instances", ())):
        if n is not None and not 0 <= instance.commander < n:
            where: Where = ("instances", index, "commander")
            problems.append((where, f"must be a general id from 0 to {n - 1}", False))
    for general in fields.get("traitors", {}):
        if n is not None and not 0 <= general < n:
            problems.append((("traitors", general), f"no general {general}: ids run from 0 to {n - 1}", True))
    timeout = fields.get("round_timeout")
    if timeout is not None and not (timeout > 0 and math.isfinite(timeout)):
        problems.append((("round_timeout",), "must be a number of seconds above 0", False))
    return problems


def _length_problems(fields: Mapping[str, Any]) -> list[Found]:
    """Strings longer than any scenario needs; values and strategy names are checked where they are read."""
    problems: list[Found] = []
    for key in ("name", "algorithm", "order", "default"):
        given = fields.get(key)
        if isinstance(given, str) and len(given) > MAX_STRING:
            problems.append(((key,), _too_long(given), False))
    return problems


def _value_problems(
    fields: Mapping[str, Any], values: tuple[str, ...], unusable: Collection[str]
) -> list[Found]:
    problems: list[Found] = []
    if len(values) < 2:
        problems.append((("values",), "needs at least 2 values", False))
    if len(values) > MAX_VALUES:
        return [
            (("values",), f"has {len(values):,} values, more than the {MAX_VALUES} a run can hold", False)
        ]
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if first.setdefault(value, index) != index:
            problems.append((("values", index), f"{_shown(value)} is listed twice", False))
        if not value:
            problems.append((("values", index), "must not be empty", False))
        elif len(value) > MAX_STRING:
            problems.append((("values", index), _too_long(value), False))
        elif (surrogate := _lone_surrogate(value)) is not None:
            problems.append((("values", index), surrogate, False))
    expect = fields.get("expect")
    named: dict[Where, str | None] = {
        ("order",): fields.get("order"),
        ("default",): fields.get("default", "retreat"),
        ("expect", "decision"): expect.decision if expect is not None else None,
        **{("instances", i, "order"): x.order for i, x in enumerate(fields.get("instances", ()))},
    }
    for where, given in named.items():
        if where[0] in unusable:
            continue
        if given is not None and given not in values:
            text = f"{_shown(given)} is not one of values {list(values)}"
            if where == ("default",) and "default" not in fields:
                where, text = ("values",), f"default is 'retreat' unless set, and {text}: set default"
            problems.append((where, text, False))
    return problems


def _strategy_problems(
    general: int,
    spec: TraitorSpec,
    values: tuple[str, ...] | None,
    rules: Algorithm,
    context: ScriptContext | None,
) -> list[Found]:
    """What is wrong with one traitor's strategy, found by looking and never by constructing it.

    Built-in names are the algorithm's own.  A ``module:Class`` name is
    imported only when validation may import (see
    :data:`_IMPORT_STRATEGIES`); otherwise only its form is checked.
    """
    where: Where = ("traitors", general)
    if spec.built is not None:
        return []
    if len(spec.strategy) > MAX_STRING:
        return [((*where, "strategy"), _too_long(spec.strategy), False)]
    built_in = rules.strategies()
    try:
        if spec.custom and not _IMPORT_STRATEGIES.get():
            check_strategy_name(spec.strategy, built_in=built_in)
            return []
        cls = strategy_class(spec.strategy, built_in=built_in)
    except StrategyError as exc:
        return [((*where, "strategy"), _elsewhere(spec.strategy, rules) or str(exc), False)]
    problems: list[Found] = []
    allowed = strategy_parameters(cls)
    if allowed is not None:
        for arg in sorted(set(spec.args) - allowed):
            problems.append(((*where, arg), f"strategy {spec.strategy!r} takes no argument {arg!r}", True))
    for arg in sorted(required_parameters(cls) - set(spec.args)):
        problems.append((where, f"strategy {spec.strategy!r} needs argument {arg!r}", False))
    if problems or values is None:
        return problems
    parities = tuple(parity.value for parity in Parity)
    if cls is Split and spec.args.get("lie_to", Parity.ODD) not in parities:
        text = f"expected {' or '.join(map(repr, parities))}, got {_describe(spec.args['lie_to'])}"
        return [((*where, "lie_to"), text, False)]
    if cls is Constant and spec.args["value"] not in values:
        return [
            ((*where, "value"), f"{_shown(spec.args['value'])} is not one of values {list(values)}", False)
        ]
    if spec.args.get("receiver") is not None:
        from .signed import Late  # SM's module: only a strategy given a receiver can be its late

        if cls is Late:
            problem = _late_receiver_problem(spec.args["receiver"], general, context)
            return [] if problem is None else [((*where, "receiver"), problem, False)]
    if issubclass(cls, Scripted):  # OM's, SM's, or any algorithm's that replays a script the same way
        found = script_problems(spec.args.get("messages"), context, values)
        return [((*where, *inner), text, False) for inner, text in found]
    return []


def _late_receiver_problem(receiver: object, traitor: int, context: ScriptContext | None) -> str | None:
    """Why SM's ``late`` traitor would never release anything to ``receiver``; ``None`` if it may.

    A release goes to a general off the chain, and the chain holds the
    traitor and the commander, so either as the receiver -- like an id out
    of range -- would make the strategy silent without a word.  The range
    and the commanders need a usable army (``context``); a commander is
    refused only when it commands every instance.
    """
    if not _is_int(receiver):
        return f"expected a general id, got {_describe(receiver)}"
    assert isinstance(receiver, int)
    if context is None:
        return None
    last = context.generals - 1
    if not 0 <= receiver <= last:
        return f"no general {_shown(receiver)}: ids run from 0 to {last}"
    if receiver == traitor:
        return f"general {receiver} is this traitor: a late release goes to another general"
    if all(setup.commander == receiver for setup in context.setups):
        return f"general {receiver} is the commander, on every chain: a late release never goes to it"
    return None


def _elsewhere(name: str, rules: Algorithm) -> str | None:
    """Why ``name`` is refused when it is another algorithm's built-in strategy, not this one's."""
    owners = [other for other in REGISTRY.values() if other is not rules and name in other.strategies()]
    if not owners:
        return None
    known = ", ".join(sorted(rules.strategies()))
    return (
        f"strategy {name!r} is {owners[0].title}'s, not {rules.title}'s: use one of {known}, or module:Class"
    )


def _message(where: Where, text: str) -> str:
    return f"{'.'.join(map(str, where))}: {text}"


# --- loading -----------------------------------------------------------------


class _Invalid(Exception):
    """Structuring problems found below one value, relative to it.

    ``partial`` is what could be structured around the problems, when that
    is worth checking further: one bad traitor should not hide the others.
    """

    def __init__(self, problems: list[Found], partial: object = None) -> None:
        super().__init__(problems)
        self.problems = problems
        self.partial = partial


def _under(prefix: Where, found: Iterable[Found]) -> list[Found]:
    """Problems found inside a value, re-rooted at where that value sits."""
    return [((*prefix, *where), text, on_key) for where, text, on_key in found]


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return _shown(value)


def _shown(value: object) -> str:
    """``repr(value)``, cut short: a problem is one line, whatever the input holds."""
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        return f"an integer of about {_digits(value):,} digits"
    return short_repr(value)


def _lone_surrogate(text: str) -> str | None:
    """Why ``text`` is not text: a surrogate, as YAML's ``\\ud83d`` makes, which nothing can print."""
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return (
                f"holds the surrogate \\u{ord(char):04x}, which is half of a UTF-16 pair, not a character: "
                "write the character itself, or its \\U0001f600-style escape"
            )
    return None


def _too_long(text: str) -> str:
    return f"is {len(text):,} characters long, more than the {MAX_STRING:,} a scenario allows"


def _mismatch(expected: str, value: object) -> _Invalid:
    return _Invalid([((), f"expected {expected}, got {_describe(value)}", False)])


_MAX_INT_BITS = 332
"""Integers a scenario may hold: up to 100 digits, which sizes like ``10**35`` stay well within.

Python refuses to print integers beyond 4,300 digits, so an unbounded one
would break every message and seed that mentions it.
"""


def _digits(value: int) -> int:
    return int(value.bit_length() * math.log10(2)) + 1


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > _MAX_INT_BITS:
            raise _mismatch("an integer of at most 100 digits", value)
        return int(value)
    raise _mismatch("an integer", value)


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _mismatch("a number", value)


def _strict_str(value: object, _: type) -> str:
    if isinstance(value, str):
        return str(value)
    raise _mismatch("a string", value)


def _strict_bool(value: object, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise _mismatch("true or false", value)


def _strings(value: object, _: type) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _mismatch("a list of strings", value)
    problems: list[Found] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            problems.append(((index,), f"expected a string, got {_describe(item)}", False))
    if problems:
        raise _Invalid(problems)
    return tuple(str(item) for item in value)


def _traitor_spec(value: object, _: type) -> TraitorSpec:
    if isinstance(value, str):
        return TraitorSpec(str(value))
    if not isinstance(value, Mapping):
        raise _mismatch("a strategy name, or a mapping with strategy and its arguments", value)
    args: dict[str, object] = {}
    problems: list[Found] = []
    for key, item in value.items():
        if key == "strategy":
            continue
        too_big = _bulk_problem(item)
        if too_big is not None:
            problems.append(((key,), too_big, False))
        else:
            args[str(key)] = _plain(item)
    if problems:
        raise _Invalid(problems)
    strategy = value.get("strategy")
    if strategy is None:
        raise _Invalid([((), "missing key 'strategy'", False)])
    if not isinstance(strategy, str):
        raise _Invalid([(("strategy",), f"expected a strategy name, got {_describe(strategy)}", False)])
    return TraitorSpec(str(strategy), args)


def _bulk_problem(value: object) -> str | None:
    """Why an argument is too deep or too big to copy, found without recursion.

    Arguments from a log or a request never went through the YAML checks,
    so their nesting and size are bounded here, before :func:`_plain`
    recurses into them.
    """
    pending: list[tuple[object, int]] = [(value, 1)]
    count = 0
    while pending:
        item, depth = pending.pop()
        count += 1
        if count > MAX_NODES:
            return f"holds more than {MAX_NODES:,} values"
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        if children and depth > MAX_NESTING:
            return f"arguments nest deeper than {MAX_NESTING} levels"
        pending.extend((child, depth + 1) for child in children)
    return None


def _plain(value: object) -> object:
    """ruamel.yaml's scalar and container subclasses, as plain Python data."""
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _traitors(value: object, _: type) -> Mapping[int, TraitorSpec]:
    if not isinstance(value, Mapping):
        raise _mismatch("a mapping from general id to strategy", value)
    specs: dict[int, TraitorSpec] = {}
    problems: list[Found] = []
    for key, item in value.items():
        general = _general_id(key)
        if general is None:
            problems.append(((key,), f"expected a general id, got {_describe(key)}", True))
            continue
        try:
            specs[general] = _traitor_spec(item, TraitorSpec)
        except _Invalid as exc:
            problems.extend(_under((key,), exc.problems))
    if problems:
        raise _Invalid(problems, partial=specs)
    return specs


def _general_id(key: object) -> int | None:
    """An id as YAML writes it (``5``) or as JSON must (``"5"``)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    return None


def _is(wanted: object) -> Callable[[object], bool]:
    # Equality, not subclassing, because two of these are generic aliases.
    return lambda candidate: candidate == wanted


attrs.resolve_types(Scenario, globals())
attrs.resolve_types(Expect, globals())
attrs.resolve_types(Instance, globals())


def _instances(value: object, _: type) -> tuple[Instance, ...]:
    if not isinstance(value, list):
        raise _mismatch("a list of instances, each with a commander and an order", value)
    if not value:
        raise _Invalid([((), "needs at least one instance", False)])
    import cattrs

    instances: list[Instance] = []
    problems: list[Found] = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            text = f"expected a mapping with commander and order, got {_describe(item)}"
            problems.append(((index,), text, False))
            continue
        try:
            instances.append(_converter().structure(item, Instance))
        except (cattrs.BaseValidationError, _Invalid) as exc:
            problems.extend(_under((index,), _flatten(exc)))
    if problems:
        raise _Invalid(problems, partial=tuple(instances) if instances else None)
    return tuple(instances)


_HOOKS: dict[object, Callable[[object, type], object]] = {
    int: _strict_int,
    float: _strict_float,
    str: _strict_str,
    bool: _strict_bool,
    tuple[str, ...]: _strings,
    Mapping[int, TraitorSpec]: _traitors,
    tuple[Instance, ...]: _instances,
}
"""The structuring hook of each type a scenario's fields have, besides attrs classes and ``None``."""


@functools.cache
def _converter() -> cattrs.Converter:
    """The converter files and data are structured with, built the first time one is read.

    cattrs is imported here and nowhere else, so a program that builds
    its scenarios in code never loads it.
    """
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind, hook in _HOOKS.items():
        if type(kind) is type:  # a class: its subclasses too, as ruamel.yaml's integers subclass int
            converter.register_structure_hook(kind, hook)
        else:  # a generic alias, matched by equality
            converter.register_structure_hook_func(_is(kind), hook)
    return converter


_FIELDS = {f.name: f for f in attrs.fields(Scenario)}
_REQUIRED = [name for name, f in _FIELDS.items() if f.default is attrs.NOTHING]
_FILE_KEYS = frozenset(_FIELDS) - {"strategy_folder"}
"""What a scenario file may set: ``strategy_folder`` is where the file itself is, never its own say."""


def _structure(value: object, kind: Any) -> Any:
    import cattrs

    try:
        return _converter().structure(value, kind)
    except _Invalid:
        raise
    except cattrs.BaseValidationError as exc:
        raise _Invalid(list(_flatten(exc))) from None


def _flatten(exc: BaseException, where: Where = ()) -> Any:
    """cattrs' nested exception groups as flat ``(where, message, on_key)`` rows."""
    import cattrs

    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield (*where, key), f"unknown key {key!r}", True
    elif isinstance(exc, cattrs.BaseValidationError):
        for sub in exc.exceptions:
            step = [
                n.name for n in getattr(sub, "__notes__", []) if isinstance(n, cattrs.AttributeValidationNote)
            ]
            yield from _flatten(sub, (*where, *step))
    elif isinstance(exc, _Invalid):
        yield from _under(where, exc.problems)
    elif isinstance(exc, KeyError):
        yield where, "missing required key", False
    else:
        yield where, str(exc), False


def _structure_document(
    doc: object, *, name: str, keys: Collection[str]
) -> tuple[dict[str, Any], list[Found]]:
    if not isinstance(doc, Mapping):
        return {}, [
            ((), f"a scenario is a mapping with keys such as generals and m, not {_describe(doc)}", False)
        ]
    fields: dict[str, Any] = {}
    problems: list[Found] = []
    for key, value in doc.items():
        field = _FIELDS.get(key) if isinstance(key, str) and key in keys else None
        if field is None:
            problems.append(((key,), f"unknown key {key!r}{_suggestion(key, keys)}", True))
            continue
        try:
            fields[key] = _structure(value, field.type)
        except _Invalid as exc:
            problems.extend(_under((key,), exc.problems))
            if exc.partial is not None:
                fields[key] = exc.partial
    problems.extend(((), f"missing required key {key!r}", False) for key in _REQUIRED if key not in doc)
    if "instances" in doc and ({"commander", "order"} & set(doc)):
        text = "replaces commander and order: give one or the other"
        problems.append((("instances",), text, True))
    unusable = {key for key in doc if key in _FIELDS and key not in fields}
    problems.extend(semantic_problems(fields, unusable=unusable))
    fields.setdefault("name", name)
    return fields, problems


def _suggestion(key: object, keys: Collection[str]) -> str:
    close = closest(str(key), keys)
    return f": did you mean {close!r}?" if close is not None else ""


def _locate(doc: object, where: Where, on_key: bool) -> tuple[int, int] | None:
    """1-based line and column of ``where`` in a ruamel.yaml document.

    Walks as deep as the document goes, so a problem below a value that is
    not there points at its nearest existing parent.
    """
    if not hasattr(doc, "lc"):
        return None
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    line, column = 0, 0
    node: Any = doc
    for depth, step in enumerate(where):
        last = depth == len(where) - 1
        if isinstance(node, CommentedMap) and step in node:
            line, column = node.lc.key(step) if last and on_key else node.lc.value(step)
            node = node[step]
        elif isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
            line, column = node.lc.item(step)
            node = node[step]
        else:
            break
    return line + 1, column + 1


def _located(doc: object, problems: Sequence[Found]) -> list[Problem]:
    located = []
    for where, text, on_key in problems:
        position = _locate(doc, where, on_key)
        message = _message(where, text) if where else text
        if position is None:
            located.append(Problem(message))
        else:
            located.append(Problem(message, *position))
    return sorted(located, key=lambda p: (p.line or 0, p.column or 0))


def _from_document(
    doc: object, *, name: str, source: str, keys: Collection[str] = _FILE_KEYS, folder: FilePath | None = None
) -> Scenario:
    fields, problems = _structure_document(doc, name=name, keys=keys)
    if problems:
        raise ScenarioError(_located(doc, problems), source)
    if folder is not None and any(spec.custom for spec in fields.get("traitors", {}).values()):
        fields["strategy_folder"] = str(folder.resolve())
    return Scenario(**fields)


def load_scenario(source: str | os.PathLike[str]) -> Scenario:
    """Read a scenario from a YAML file, or from YAML text, or a shipped scenario by name.

    A ``str`` with a line break is taken as the YAML itself, any other
    ``str`` or path-like as a file name.  A bare name that is no file --
    ``"three-generals"`` -- is the shipped scenario of that name, as
    ``om-actors run`` takes it.  Raises :class:`ScenarioError` with every
    problem and its line and column.
    """
    if isinstance(source, str) and "\n" in source:
        return parse_scenario(source, source="<string>")
    path = FilePath(source)
    if isinstance(source, str) and len(path.parts) == 1 and not _names_something(path):
        from .catalog import find_scenario  # a bare name that is no file: a shipped scenario's

        path = find_scenario(source)
    try:
        with path.open("rb") as file:
            text = read_scenario_text(file, source=str(path))
    except OSError as exc:
        raise ScenarioError([Problem(f"cannot read the file: {_reason(exc)}")], str(path)) from None
    return parse_scenario(text, source=str(path), folder=path.resolve().parent, name=path.stem)


def refuse_over_the_limit(scenario: Scenario) -> None:
    """Raise :class:`ScenarioError` if ``scenario`` sends more than the message limit allows now.

    Validation checked it against the limit of its day; a run checks again
    as it starts, for a scenario made before the limit was lowered.
    """
    problem = size_problem(scenario.rules, scenario.setup, len(scenario.traitors), len(scenario.setups))
    if problem is not None:
        raise ScenarioError([Problem(problem)], scenario.name)


def _names_something(path: FilePath) -> bool:
    """Whether ``path`` exists, or names what the system will not look up (too long): opening it says why."""
    try:
        return path.exists()
    except OSError:
        return True


def read_scenario_text(file: BinaryIO, *, source: str) -> str:
    """A scenario's text from a binary ``file``, reading no more than the limit allows.

    At most :data:`~om_actors.limits.MAX_SCENARIO_BYTES` plus one byte is
    read, so ``/dev/zero``, an endless FIFO or a sparse file of terabytes
    costs no more memory than the largest scenario allowed, and is refused
    as soon as that byte arrives.  Text that is not UTF-8 is refused too,
    with the offset of its first bad byte.  Both are :class:`ScenarioError`
    naming ``source``; errors reading the file itself are left to the caller.
    """
    data = read_at_most(file, MAX_SCENARIO_BYTES)
    if data is None:
        text = f"longer than {MAX_SCENARIO_BYTES:,} bytes, the most a scenario may have: not a scenario"
        raise ScenarioError([Problem(text)], source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError([Problem(utf8_problem(exc))], source) from None


def parse_scenario(
    text: str, *, source: str, folder: FilePath | None = None, name: str = "scenario"
) -> Scenario:
    """A scenario from YAML ``text``; ``source`` names it in every problem (``<stdin>``, say).

    ``folder`` is where ``module:Class`` strategies may live besides the
    installed modules: the scenario file's own folder.  A scenario that
    uses such a strategy records it as :attr:`Scenario.strategy_folder`.
    The text is the user's own, so its ``module:Class`` strategies are
    imported to check them -- but never constructed.
    """
    from ruamel.yaml import YAML  # only a scenario from text needs YAML: one built in code does not
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        shape = _shape_problem(text)
        if shape is not None:
            raise ScenarioError([shape], source)
        doc = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        raise ScenarioError([_yaml_problem(exc)], source) from None
    except (YAMLError, ValueError, OverflowError) as exc:
        raise ScenarioError([Problem(f"not valid YAML: {exc}")], source) from None
    with importable_from(folder), _imports(allowed=True):
        return _from_document(doc, name=name, source=source, folder=folder)


@contextmanager
def _imports(*, allowed: bool) -> Iterator[None]:
    """Validation within the block may (or may not) import ``module:Class`` strategies."""
    token = _IMPORT_STRATEGIES.set(allowed)
    try:
        yield
    finally:
        _IMPORT_STRATEGIES.reset(token)


def _shape_problem(text: str) -> Problem | None:
    """What makes ``text`` too costly to load, found from YAML's event stream before anything is built.

    Loading builds every alias in full further on, so nine nested aliases
    of nine items each ("billion laughs") would never finish, and a
    hundred thousand nested brackets would exhaust Python's recursion.
    The event stream is read without recursion and without building
    anything, so this pass costs time in proportion to the text: it
    refuses deep nesting (:data:`~om_actors.limits.MAX_NESTING`), long
    scalars (:data:`~om_actors.limits.MAX_STRING`) and documents that
    expand to more than :data:`~om_actors.limits.MAX_NODES` values,
    counting each alias as what it stands for.
    """
    if len(text) > MAX_TEXT:
        return Problem(
            f"the text is {len(text):,} characters long, more than the {MAX_TEXT:,} a scenario may have"
        )
    brackets = re.search(_BRACKETS, text)
    if brackets is not None:  # refused at once: ruamel.yaml's scanner looks far ahead in these
        line = text.count("\n", 0, brackets.start()) + 1
        column = brackets.start() - (text.rfind("\n", 0, brackets.start()) + 1) + 1
        return Problem(_TOO_DEEP, line, column)
    from ruamel.yaml import YAML
    from ruamel.yaml.events import (
        AliasEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
    )

    expanded: dict[str, int] = {}
    open_nodes: list[tuple[int, str | None]] = [(0, None)]  # values within each open node, its anchor
    for event in YAML(typ="rt", pure=True).parse(text):
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if len(open_nodes) > MAX_NESTING:
                return _at(event, _TOO_DEEP)
            open_nodes.append((1, event.anchor))
            continue
        if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            size, anchor = open_nodes.pop()
        elif isinstance(event, ScalarEvent):
            if len(event.value) > MAX_STRING:
                return _at(event, f"a value {_too_long(event.value)}")
            size, anchor = 1, event.anchor
        elif isinstance(event, AliasEvent):
            size, anchor = expanded.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            expanded[anchor] = size
        total, own = open_nodes[-1]
        open_nodes[-1] = (total + size, own)
        if total + size > MAX_NODES:
            return _at(
                event, f"holds more than {MAX_NODES:,} values, each alias counted in full: too many to load"
            )
    return None


_TOO_DEEP = f"lists and mappings nest deeper than {MAX_NESTING} levels"
_BRACKETS = rf"(?:[\[{{]\s*){{{MAX_NESTING + 1}}}"
"""More opening brackets in a row than nesting allows: a pattern re compiles when YAML is first read."""


def _at(event: Event, text: str) -> Problem:
    mark = event.start_mark
    return Problem(text, mark.line + 1, mark.column + 1)


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _yaml_problem(exc: MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    text = " ".join(part for part in (exc.context, exc.problem) if part)
    if mark is None:
        return Problem(f"not valid YAML: {text}")
    return Problem(f"not valid YAML: {text}", mark.line + 1, mark.column + 1)


def scenario_from_dict(data: object, *, source: str = "<data>", import_strategies: bool = False) -> Scenario:
    """Rebuild a scenario from :meth:`Scenario.to_dict` data, as logs and requests carry it.

    Such data is untrusted, so by default a ``module:Class`` strategy is
    checked for its form only and not imported: nothing the data names runs
    here.  The caller decides whether to build the strategies later (see
    :attr:`Scenario.custom_strategies`).  With ``import_strategies`` the
    modules are imported, from :attr:`Scenario.strategy_folder` too, and
    checked as a scenario file's are.
    """
    name = data.get("name", "scenario") if isinstance(data, Mapping) else "scenario"
    folder = data.get("strategy_folder") if isinstance(data, Mapping) and import_strategies else None
    with importable_from(folder if isinstance(folder, str) else None), _imports(allowed=import_strategies):
        return _from_document(data, name=str(name), source=source, keys=_FIELDS)


if TYPE_CHECKING:
    import cattrs
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.events import Event

    SEVEN_GENERALS: Scenario


def __getattr__(name: str) -> Any:
    """:data:`SEVEN_GENERALS`, built when first asked for."""
    if name == "SEVEN_GENERALS":
        return _seven_generals()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _seven_generals() -> Scenario:
    """The blog post's sample, and what ``om-actors run`` runs without a file.

    Its traitors lie as those of the post's Flask system (mtrencseni/dca) do: the
    commander sends the flipped order to even-numbered generals, and lieutenant
    5 flips everything it relays.  OM(2) on seven generals survives them.

    Built on first use, not on import: validating it reads the message limit
    from the environment, and a limit set wrong must be a one-line error of
    the command that reads it, not a failure to import this module.
    """
    return Scenario(
        name="seven-generals",
        generals=7,
        m=2,
        order="retreat",
        traitors={0: TraitorSpec("split", {"lie_to": "even"}), 5: TraitorSpec("flip")},
        seed=42,
        expect=Expect(agreement=True),
    )
