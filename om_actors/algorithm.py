"""The seam every agreement algorithm plugs into: one interface, one registry.

An algorithm here is a *sans-IO* core, in the manner of h11 and wsproto: pure
state, no trio, no logging, no clock.  Everything that runs generals -- the
trio actors, the network nodes, verify's lockstep loop, replay -- drives an
algorithm only through the two classes below and knows none of its rules:

- :class:`Algorithm` says what an algorithm is as a whole: its name, its
  number of rounds, when its theorem promises agreement, its message payload,
  its traitor strategies and its adversary space for ``verify``.
- :class:`Core` is one general's state in one instance.  It owns the
  schedule: it knows which round it is in, says what a loyal general sends
  (:meth:`Core.outbox`) and what a traitor may send instead
  (:meth:`Core.offers`), turns a value into a message (:meth:`Core.compose`),
  judges what arrives (:meth:`Core.receive`) and decides
  (:meth:`Core.decide`).  Calling these out of turn raises
  :class:`~om_actors.errors.ProtocolMisuse`, so a driver that skips a round
  fails loudly instead of deciding on half the messages.

Algorithms are registered by name in :mod:`om_actors.registry`, as wsproto
registers extensions; a scenario picks one with its ``algorithm`` key.
"""

from __future__ import annotations

import abc
import enum
import functools
import itertools
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from . import limits
from .errors import ProtocolMisuse

Path = tuple[int, ...]
"""The generals a message went through, starting with the commander."""


@attrs.frozen
class Setup:
    """What every general of one instance shares.

    ``m`` is the number of traitors the algorithm is asked to survive.
    ``seed`` and ``instance`` identify the run and the instance within it.

    ``identities`` are every general's published identity, by id, when each
    general holds a secret of its own (:meth:`Algorithm.identity`): SM's
    public keys on a cluster, where every node derives its own.  Empty, an
    algorithm that signs derives every key from the seed, so one scenario
    and seed always give the same messages, bytes and all -- sound in one
    process, where a traitor's strategy is handed no key, and never across
    processes, where a traitor node would know the seed too.  An entry may
    be ``""``: a general whose identity never arrived, whose signatures
    then never verify.
    """

    generals: int
    m: int
    commander: int
    values: tuple[str, ...]
    default: str
    seed: int = 0
    instance: int = 0
    identities: tuple[str, ...] = ()

    @functools.cached_property
    def lieutenants(self) -> tuple[int, ...]:
        """Every general but the commander, in order: asked for each path a general relays, so kept."""
        return tuple(g for g in range(self.generals) if g != self.commander)


@attrs.frozen
class Outgoing:
    """A message a general may send: ``value`` along ``path`` to ``receiver``.

    From :meth:`Core.outbox` it is what a loyal general owes; from
    :meth:`Core.offers` it is a chance a traitor may take, ``value`` being
    what a loyal general would say.  ``path`` already ends with the sender.
    An algorithm whose messages carry no path uses ``(sender,)``.
    """

    path: Path
    receiver: int
    value: str


@attrs.frozen
class Verdict:
    """The two interactive-consistency conditions of the paper.

    ``validity`` is ``None`` when the commander is a traitor: IC2 says nothing
    then.  With fewer than two loyal lieutenants agreement holds trivially.
    ``decided`` is false when the loyal lieutenants all crashed: both
    conditions then hold of nobody, and that is no success.
    """

    agreement: bool
    validity: bool | None
    decided: bool = True

    @property
    def success(self) -> bool:
        return self.decided and self.agreement and self.validity is not False


def judge(
    setup: Setup,
    decisions: Mapping[int, str],
    *,
    loyal: Iterable[int],
    order: str,
    crashed: Collection[int] = (),
) -> Verdict:
    """The verdict for the decisions of the loyal generals in ``loyal`` that did not crash.

    A general in ``crashed`` decided nothing: a crashed commander leaves no
    validity to check, and lieutenants that all crashed leave no verdict.
    """
    alive = set(loyal) - set(crashed)
    lieutenant_decisions = {decisions[g] for g in setup.lieutenants if g in alive}
    agreement = len(lieutenant_decisions) <= 1
    validity = None
    if setup.commander in alive:
        validity = lieutenant_decisions <= {order}
    decided = not no_loyal_decision(loyal, setup.commander, crashed)
    return Verdict(agreement=agreement, validity=validity, decided=decided)


def no_loyal_decision(loyal: Iterable[int], commander: int, crashed: Collection[int]) -> bool:
    """Whether an instance has loyal lieutenants and every one of them crashed: then it has no verdict."""
    lieutenants = set(loyal) - {commander}
    return bool(lieutenants) and lieutenants <= set(crashed)


def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for several instances run together: each condition must hold in all.

    Validity is ``None`` only when it is ``None`` in every instance, that is
    when every commander is a traitor.
    """
    verdicts = list(verdicts)
    validities = [v.validity for v in verdicts if v.validity is not None]
    return Verdict(
        agreement=all(v.agreement for v in verdicts),
        validity=all(validities) if validities else None,
        decided=all(v.decided for v in verdicts),
    )


class Core(abc.ABC):
    """One general's sans-IO state in one instance of an algorithm.

    The schedule is the core's, not the driver's.  Round ``r`` opens when the
    general is asked what it sends in it -- :meth:`outbox` for a loyal
    general, :meth:`offers` for a traitor, exactly once -- and messages of
    round ``r`` may then arrive.  :meth:`decide` comes after the last round.
    The base class keeps that bookkeeping, so an algorithm writes only its
    rules, in the ``_``-prefixed methods.
    """

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None) -> None:
        self.algorithm = algorithm
        self.setup = setup
        self.me = me
        self.order = order if order is not None else setup.default
        self.rounds = algorithm.rounds(setup.generals, setup.m)
        self.round = 0
        """The round this general is in: 0 before the first, ``rounds`` once all are open."""
        self.stats: Counter[str] = Counter()
        """What the algorithm counts as it works, such as ``signatures_verified``; summed into the result."""

    # --- the schedule ---------------------------------------------------------

    def outbox(self, round: int) -> list[Outgoing]:
        """Open ``round`` and say what a loyal general sends in it, in log order."""
        self._open(round)
        return self._outbox(round)

    def sends(self, round: int) -> Iterator[tuple[int, object]]:
        """Open ``round`` and give what a loyal general sends in it as ``(receiver, payload)``, in log order.

        :meth:`outbox` and :meth:`compose` in one step, for a runtime that
        sends a loyal general's messages as they come: the round opens now,
        the messages come one at a time.  An algorithm may give them without
        an :class:`Outgoing` apiece (OM does); the tests hold the two equal.
        """
        self._open(round)
        return self._sends(round)

    def offers(self, round: int) -> list[Outgoing]:
        """Open ``round`` and say what a traitor may send in it, with the loyal value of each.

        Always includes everything :meth:`outbox` would give; an algorithm
        whose traitors can do more (send late, say) offers more.
        """
        self._open(round)
        return self._offers(round)

    def compose(self, outgoing: Outgoing, path: object, value: object) -> object:
        """The message payload that says ``value`` along ``path``, for one of this round's offers.

        For a loyal message ``path`` and ``value`` are the outgoing's own; a
        traitor's strategy may have changed either, and the payload then says
        what it chose -- signed, where the algorithm signs, with this
        general's key alone.  Always an instance of the algorithm's
        :attr:`~Algorithm.payload` class.
        """
        if self.round < 1:
            raise ProtocolMisuse(f"general {self.me} was asked to compose a message before round 1")
        return self._compose(outgoing, path, value)

    def matches(self, owed: object, logged: object) -> bool:
        """Whether ``logged`` is the ``owed`` message :meth:`compose` gave: replay's check of a loyal general.

        Equality by default.  A core that cannot make the message again
        byte for byte -- one that signs, built without the run's secret to
        replay another process's log -- says what it can check instead.
        """
        return owed == logged

    def receive(self, *, sender: int, round: int, payload: object) -> enum.Enum | None:
        """Take a message of the current round, or say why it is refused.

        ``sender`` and ``round`` come from the runtime, never from the
        message.  A refused message leaves no trace in the state, and counts
        as missing.
        """
        self._arriving(round)
        return self._receive(sender, round, payload)

    def receive_all(
        self, *, sender: int, round: int, payloads: Sequence[object]
    ) -> Sequence[tuple[int, enum.Enum]]:
        """:meth:`receive` for each of ``payloads`` in turn, all sent by ``sender`` in ``round``.

        Each refusal comes as the payload's index and its reason.  A runtime
        that delivers a sender's round as one item -- the actors, which hand
        a lieutenant of thirteen generals 9,032 messages in the last round --
        checks the schedule once per batch rather than once per message, and
        an algorithm may judge the batch faster than one call a message
        (OM does); the tests hold the two equal.  A core that overrides
        :meth:`receive` itself gets each message through it, as every other
        runtime hands them over.
        """
        if type(self).receive is not Core.receive:
            told = (self.receive(sender=sender, round=round, payload=payload) for payload in payloads)
            return [(index, reason) for index, reason in enumerate(told) if reason is not None]
        self._arriving(round)
        return self._receive_all(sender, round, payloads)

    def decide(self) -> str:
        """The final decision, once every round is over."""
        if self.round != self.rounds:
            raise ProtocolMisuse(
                f"general {self.me} was asked to decide in round {self.round} of {self.rounds}"
            )
        return self._decide()

    def _arriving(self, round: int) -> None:
        if round != self.round or round < 1:
            raise ProtocolMisuse(
                f"general {self.me} was handed a round-{round} message while in round {self.round}"
            )

    def _open(self, round: int) -> None:
        if round != self.round + 1 or round > self.rounds:
            raise ProtocolMisuse(
                f"general {self.me} was asked for round {round}'s messages "
                f"after round {self.round} of {self.rounds}"
            )
        self.round = round

    # --- the rules, one algorithm's own -----------------------------------------

    @abc.abstractmethod
    def _outbox(self, round: int) -> list[Outgoing]: ...

    def _offers(self, round: int) -> list[Outgoing]:
        return self._outbox(round)

    def _sends(self, round: int) -> Iterator[tuple[int, object]]:
        for out in self._outbox(round):
            yield out.receiver, self._compose(out, out.path, out.value)

    @abc.abstractmethod
    def _compose(self, outgoing: Outgoing, path: object, value: object) -> object: ...

    @abc.abstractmethod
    def _receive(self, sender: int, round: int, payload: object) -> enum.Enum | None: ...

    def _receive_all(
        self, sender: int, round: int, payloads: Sequence[object]
    ) -> Sequence[tuple[int, enum.Enum]]:
        refused: list[tuple[int, enum.Enum]] = []
        for index, payload in enumerate(payloads):
            reason = self._receive(sender, round, payload)
            if reason is not None:
                refused.append((index, reason))
        return refused

    @abc.abstractmethod
    def _decide(self) -> str: ...


@attrs.frozen
class Step:
    """One step of a general's reasoning, as ``explain`` draws it: a tree of these.

    ``label`` names the step (``OM([0, 2])``, ``round 2``), ``value`` is what
    it came to, ``detail`` says how (``votes attack, attack, retreat``).
    ``path`` ties a step to the messages along that path, when it has one,
    so ``explain`` can show what arrived and who lied; an algorithm whose
    messages carry no path ties a step to one message by ``round`` and
    ``sender`` instead.  ``hidden`` counts steps below this one left out by a
    depth limit.
    """

    label: str
    value: str
    detail: str = ""
    children: tuple[Step, ...] = ()
    hidden: int = 0
    path: Path | None = None
    round: int | None = None
    sender: int | None = None


@attrs.frozen
class DecisionPoint:
    """One message a traitor may send, fixed before any run: what exhaustive search ranges over."""

    round: int
    path: Path
    receiver: int


class Algorithm(abc.ABC):
    """An agreement algorithm as a whole; one instance of it is registered by :attr:`name`.

    Subclasses set the class attributes and implement the methods; see
    :mod:`om_actors.oral` and :mod:`om_actors.signed` for the two built in.
    """

    name: ClassVar[str]
    """What a scenario's ``algorithm`` key says: ``"om"``, ``"sm"``."""
    title: ClassVar[str]
    """How people write it, with ``m`` for the parameter: ``"OM(m)"``."""
    payload: ClassVar[type[attrs.AttrsInstance]]
    """The attrs class of a message's payload.

    Its fields are the message's fields in the log and on the wire, and the
    log and the wire read every payload back as this class: :meth:`Core.compose`
    must return an instance of it, never of another class.  An algorithm with
    several kinds of message says which in a field (Phase King's ``kind``).
    """
    reasons: ClassVar[type[enum.Enum]]
    """Why a general may refuse a message: a string-valued enum."""
    batchable: ClassVar[bool] = False
    """Whether the batched runtime (:mod:`om_actors.eig`) can run it; only OM(m) needs batching."""
    keyed: ClassVar[tuple[str, ...]] = ()
    """Payload fields each general makes with its own key: SM's ``signatures``.

    With ``run.start``'s ``public``, all a cluster's log may differ in from
    ``run``'s (:meth:`identity`), so a rerun of such a log in one process,
    which signs with the seed's keys, compares everything but these.
    """

    def titled(self, m: int) -> str:
        """The title with ``m`` filled in: ``"OM(2)"``."""
        return self.title.replace("(m)", f"({m})")

    @abc.abstractmethod
    def rounds(self, generals: int, m: int) -> int:
        """How many rounds one instance takes."""

    @abc.abstractmethod
    def problems(self, generals: int, m: int) -> list[str]:
        """Why a scenario with these numbers cannot run at all (empty when it can).

        Each is a sentence about ``m``, which a scenario file reports at its
        ``m:`` key: ``"must be at most generals - 2 = 1: ..."``.
        """

    @abc.abstractmethod
    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        """Why the theorem does not promise agreement here; empty when it does.

        Such a scenario still runs -- showing the failure is the point of it.
        """

    def theorem_allows_failure(self, generals: int, m: int, traitors: int) -> bool:
        """Whether a violation here is no bug: the theorem makes no promise."""
        return bool(self.warnings(generals, m, traitors))

    @abc.abstractmethod
    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        """Messages one instance sends with every general loyal: what a report expects.

        With ``limit`` the count may stop at the first partial sum past it,
        and must then answer at once however large ``generals`` and ``m``
        are.  A run is sized by :meth:`message_bound`, which is this count
        unless the algorithm says otherwise.
        """

    def message_bound(self, setup: Setup, traitors: int, *, limit: int | None = None) -> int:
        """The most messages one instance can send with up to ``traitors`` liars, whoever they are.

        What sizes a run: every entry point checks it against the message
        limit (:func:`~om_actors.limits.size_problem`) before anything is
        allocated, so it must answer at once however large the numbers, and
        may stop counting past ``limit``.  It sees the whole ``setup``
        because a count may grow with the values, not only the army -- SM(m)'s
        lieutenants forward each value they hold -- and the number of
        traitors because a traitor may send where a loyal general does not.
        By default it is :meth:`messages_sent`, which is right when a traitor
        has no more chances to send than a loyal general has messages (OM(m):
        one per path and receiver).
        """
        return self.messages_sent(setup.generals, setup.m, limit=limit)

    @abc.abstractmethod
    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> Core:
        """A fresh core for general ``me``; ``order`` is the commander's, ignored for lieutenants.

        ``secret`` is this general's own, for an algorithm with identities
        (:meth:`identity`): a network node derives it from its private key,
        and ``setup.identities`` then name every general's.  ``None`` keeps
        the seed's keys, as every run in one process does.  An algorithm
        that signs nothing ignores it.
        """

    def identity(self, setup: Setup, me: int, secret: bytes) -> str | None:
        """The public identity ``secret`` gives general ``me`` -- SM's public key, hex -- or ``None``.

        What a node tells the others before round 1, so their cores can
        check what it signs; ``None`` (the default) for an algorithm that
        signs nothing, whose cores are then built without a secret.  It must
        not depend on the instance: ``run.start`` records the first
        instance's (:meth:`record`), and replay reads them back for all.
        """
        return None

    def identities_in(self, public: object, generals: int) -> tuple[str, ...]:
        """The identities a ``run.start`` line's ``public`` names, as :meth:`record` writes them.

        Empty (the default) when it names none, or none this algorithm
        could have written: replay then takes the seed's, and finds any
        difference.  Replay builds a log's cores with these, and without a
        secret, when they are not the seed's: a log written by a cluster.
        """
        return ()

    @abc.abstractmethod
    def strategies(self) -> Mapping[str, type]:
        """The built-in traitor strategies, by the name a scenario file uses."""

    @abc.abstractmethod
    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        """``verify``'s canonical adversaries: built-in strategy names with their arguments."""

    @abc.abstractmethod
    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        """The most messages ``sender`` can send ``receiver`` in ``round``, whatever it holds or lies.

        Every offer :meth:`Core.offers` could give it counts, late ones
        included.  A network node refuses a peer's batch bigger than this
        before reading it, so it must answer at once for any size.
        """

    @abc.abstractmethod
    def decision_points(self, setup: Setup, traitor: int) -> Iterable[DecisionPoint]:
        """Every message ``traitor`` could usefully send, whatever it receives.

        ``verify``'s exhaustive and search adversaries choose a value (or
        silence) for each; the ``scripted`` strategy replays such a choice.
        It may be a generator: the space can be far too big to list, and a
        reader that checks a script takes only as many as it can afford.
        """

    def script_problem(self, setup: Setup, traitor: int, point: DecisionPoint) -> str | None:
        """Why ``traitor`` never sends ``point`` in ``setup``'s instance, or ``None`` when it may.

        A ``scripted`` traitor's entries are checked with it, one round at
        a time (an entry without a round, every round until one allows
        it), so a script never names a message the run would silently
        ignore.  By default ``point`` must be one of :meth:`decision_points`;
        since they may be far too many to list, only the first
        :data:`~om_actors.limits.MAX_CHECKED_MESSAGES` are read, and past
        them every point is allowed.  An algorithm that can say exactly
        which messages exist, and why one does not, overrides it.
        """
        listed = _listed(self, setup, traitor, limits.MAX_CHECKED_MESSAGES)
        if listed is None or point in listed:
            return None
        return (
            f"general {traitor} sends nothing along path {list(point.path)} to general {point.receiver} "
            f"in round {point.round} of {self.titled(setup.m)}"
        )

    @abc.abstractmethod
    def explain(self, core: Core, *, path: Path | None = None, depth: int | None = None) -> Step:
        """How ``core``'s general reached its decision, as a tree, once every round is over.

        ``path`` focuses on one part of it, for algorithms whose reasoning
        follows paths; ``depth`` limits how many levels are shown.  Raises
        :class:`ValueError` with a sentence for a ``path`` that names no step.
        """

    def record(self, setup: Setup) -> dict[str, Any]:
        """What ``run.start`` records about this instance beyond the scenario: public keys, say."""
        return {}

    def payload_fields(self, payload: object) -> dict[str, object]:
        """A payload's fields, in order, as the log and the wire carry them."""
        return {field.name: getattr(payload, field.name) for field in attrs.fields(self.payload)}

    def payload_from_fields(self, fields: Mapping[str, object]) -> object:
        """The payload a log line or a request carries, from its fields; lists become tuples.

        Whatever the fields hold is kept, garbage included: judging it is
        :meth:`Core.receive`'s job.
        """
        names = [field.name for field in attrs.fields(self.payload)]
        return self.payload(**{name: as_read(fields.get(name)) for name in names})

    def path_of(self, payload: object) -> object:
        """The path a payload travelled, for sorting and filtering; ``()`` when it has none."""
        return getattr(payload, "path", ())

    def value_of(self, payload: object) -> object:
        return getattr(payload, "value", None)


@functools.lru_cache(maxsize=4)  # a listing may hold 100,000 points: keep few
def _listed(rules: Algorithm, setup: Setup, traitor: int, bound: int) -> frozenset[DecisionPoint] | None:
    """``traitor``'s decision points, read once for all of a script's entries; ``None`` past ``bound``."""
    points = list(itertools.islice(rules.decision_points(setup, traitor), bound + 1))
    return None if len(points) > bound else frozenset(points)


def as_read(value: object) -> object:
    """JSON data as a payload holds it: arrays as tuples, all the way down, so it equals what was sent."""
    if isinstance(value, dict):
        return {key: as_read(item) for key, item in value.items()}
    if not isinstance(value, list):
        return value
    if all(type(item) in _SCALARS for item in value):  # a path or a chain: the common case, one pass
        return tuple(value)
    return tuple(as_read(item) for item in value)


_SCALARS = frozenset({int, str, float, bool, type(None)})
