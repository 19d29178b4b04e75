"""The books of one run: what was sent, refused, cut off, lost; and how the run ended.

The in-memory orchestrator and the cluster driver run rounds in very
different ways -- trio tasks and memory channels, or processes and HTTP --
but they must write the same log and return the same :class:`Result` for
the same run, byte for byte.  So neither counts for itself: both feed one
:class:`Accounting` and let it build what the log and the result say.

- Before the first round :meth:`Accounting.started` gives the ``run.start``
  line.
- During a round the runtime says what left (:meth:`Accounting.sent`, or
  :meth:`Accounting.count` from events) and what arrived
  (:meth:`Accounting.took`).
- At the round's barrier it hands over the round's events;
  :meth:`Accounting.close_round` puts them in log order, counts the refused
  and the undelivered ones, and adds the ``round.end`` line.
- After the last round :meth:`Accounting.conclude` turns the decisions into
  the decision and verdict events and the :class:`Result`.

Nothing here knows an algorithm's rules: the number of rounds is the
scenario's (:attr:`Scenario.rounds`, from its algorithm), and events are
ordered by the path the algorithm says a payload travelled
(:meth:`~om_actors.algorithm.Algorithm.path_of`), so an algorithm whose
messages carry no path sorts by receiver and sender alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from itertools import chain, compress, islice, repeat
from operator import add, attrgetter, eq, is_, mul
from typing import Any, Literal, TypeVar, cast

from ._version import __version__
from .algorithm import Algorithm, Verdict, combine, judge
from .events import (
    SCHEMA,
    Decided,
    Event,
    GeneralCrashed,
    MessageRejected,
    MessageSent,
    RoundEnded,
    RunStarted,
    StrategyFailed,
    VerdictReached,
)
from .log import json_fallback
from .result import InstanceOutcome, Result
from .scenario import Scenario

EventKey = Callable[[Event], tuple[Any, ...]]
T = TypeVar("T")


def event_order(rules: Algorithm) -> EventOrder:
    """The sort key that puts one round's message events in log order, for ``rules``' payloads."""
    keeps_default = getattr(rules.path_of, "__func__", None) is Algorithm.path_of
    return EventOrder(rules.path_of, paths_by_attribute=keeps_default)


class EventOrder:
    """The sort key of one round's message events, and a shortcut for the common round.

    By instance, then the path the payload travelled (well-formed paths by
    value, a traitor's garbage after them), then receiver, then sender;
    a message comes before its refusal, and a strategy's failure after
    both.  Two events can tie on all of that -- a traitor saying two
    things along one path to one receiver -- and :func:`in_log_order`
    breaks such ties.
    """

    def __init__(self, path_of: Callable[[object], object], *, paths_by_attribute: bool = False) -> None:
        self.path_of = path_of
        self.paths_by_attribute = paths_by_attribute

    def __call__(self, event: Event) -> tuple[Any, ...]:
        kind = type(event)
        if kind is MessageSent or kind is MessageRejected:
            message = cast("MessageSent | MessageRejected", event)
            rank = 0 if kind is MessageSent else 1
            return (
                message.instance or 0,
                _path_key(self.path_of(message.payload)),
                message.receiver,
                message.sender,
                rank,
            )
        assert isinstance(event, StrategyFailed)
        return (event.instance or 0, _path_key(event.path), event.receiver, event.general, 2)

    def plain(self, events: Sequence[Event]) -> list[int] | None:
        """The log order of a round of messages alone, in one instance, on well-formed paths; else ``None``.

        That is nearly every round, and for it the key is just path,
        receiver and sender (:meth:`plain_columns`).  Any refusal, failure,
        instance tag, garbage path or tie sends the round the general way.
        """
        if set(map(type, events)) != _MESSAGES_ONLY or set(map(_instance, events)) != _UNTAGGED:
            return None
        return self.plain_columns(list(map(_payload, events)), map(_receiver, events), map(_sender, events))

    def plain_columns(
        self, payloads: Sequence[object], receivers: Iterable[int], senders: Iterable[int]
    ) -> list[int] | None:
        """:meth:`plain` for one instance's messages given as columns: the indices in log order, or ``None``.

        Gathered and sorted without a Python call per message but
        ``path_of``'s: a per-message run sorts 100,000 of them a round.  A
        garbage path or a tie gives ``None``, and the round goes the general
        way.  Each path is ranked once (:meth:`_ranks`), and the messages
        are sorted by one integer apiece: its path's rank, then receiver,
        then sender.
        """
        ranks = self._ranks(list(payloads))
        if ranks is None:
            return None
        receivers, senders = list(receivers), list(senders)
        if min(chain(receivers, senders), default=0) < 0:
            return None
        width = max(chain(receivers, senders), default=0) + 1
        keys = list(
            map(
                add,
                map(mul, ranks, repeat(width * width)),
                map(add, map(mul, receivers, repeat(width)), senders),
            )
        )
        order = sorted(range(len(keys)), key=keys.__getitem__)
        ordered = list(map(keys.__getitem__, order))
        if any(map(eq, ordered, islice(ordered, 1, None))):  # a tie: equal keys sort next to each other
            return None
        return order

    def plain_batches(self, batches: Sequence[Batch]) -> tuple[list[int], list[int], list[object]] | None:
        """:meth:`plain` for one instance's messages as batches: senders, receivers and payloads in log order.

        A batch is one sender's messages to one receiver, as
        ``(receiver, sender, payloads)``, each pair at most once.  Once the
        few hundred batches are in receiver and sender order, a stable sort
        of their messages by path alone is the log order, and two messages
        can tie only within a batch.  ``None`` for a garbage path or a tie:
        the round then goes the general way.
        """
        batches = sorted(batches, key=_batch_key)
        if len(set(map(_batch_key, batches))) < len(batches):
            return None
        payloads = list(chain.from_iterable(map(_batch_payloads, batches)))
        ranks = self._ranks(payloads)
        if ranks is None:
            return None
        start = 0
        for _, _, batch in batches:
            end = start + len(batch)
            if len(set(ranks[start:end])) < end - start:  # a tie: one path twice in a batch
                return None
            start = end
        order = sorted(range(len(ranks)), key=ranks.__getitem__)
        sizes = list(map(len, map(_batch_payloads, batches)))
        receivers = list(chain.from_iterable(map(repeat, (b[0] for b in batches), sizes)))
        senders = list(chain.from_iterable(map(repeat, (b[1] for b in batches), sizes)))
        return _picked(order, senders), _picked(order, receivers), _picked(order, payloads)

    def _ranks(self, payloads: list[object]) -> list[int] | None:
        """Each payload's path's rank among the distinct paths, by value; ``None`` if any is no tuple of ints.

        Most paths are shared by several messages -- a relay goes to every
        general not yet on it -- so each path object is checked once.
        """
        paths: list[Any] = list(self._paths(payloads))
        by_id = dict(zip(map(id, paths), paths))
        distinct = by_id.values()
        if set(map(type, distinct)) != _TUPLES or not _INT.issuperset(
            map(type, chain.from_iterable(distinct))
        ):
            return None
        ranked = sorted(set(distinct))
        rank = dict(zip(ranked, range(len(ranked))))
        rank_of = dict(zip(by_id, map(rank.__getitem__, distinct)))
        return list(map(rank_of.__getitem__, map(id, paths)))

    def _paths(self, payloads: Iterable[object]) -> Iterable[object]:
        """:attr:`path_of` of each payload: the default by ``getattr`` alone, with no Python call each."""
        if self.paths_by_attribute:
            return map(getattr, payloads, repeat("path"), repeat(()))
        return map(self.path_of, payloads)


Batch = tuple[int, int, Sequence[object]]
"""One sender's messages to one receiver in a round: ``(receiver, sender, payloads)``."""


def _batch_key(batch: Batch) -> tuple[int, int]:
    return batch[0], batch[1]


def _batch_payloads(batch: Batch) -> Sequence[object]:
    return batch[2]


def _picked(order: list[int], column: list[T]) -> list[T]:
    """``column``'s items at the indices ``order`` lists, in that order."""
    return list(map(column.__getitem__, order))


_MESSAGES_ONLY = {MessageSent}
_UNTAGGED = {None}
_TUPLES = {tuple}
_instance, _payload, _receiver, _sender, _delivered = map(
    attrgetter, ("instance", "payload", "receiver", "sender", "delivered")
)


def in_log_order(events: Iterable[Event], key: EventKey) -> list[Event]:
    """``events`` sorted by ``key``, ties broken by what each event says, as the log writes it.

    So two events never keep the order they came in, which could depend on
    how trio scheduled the generals.  Ties are rare -- a traitor saying two
    things along one path to one receiver -- so they are looked for only
    when the keys are not all different, rather than paid for in every key.
    """
    listed = list(events)
    order = key.plain(listed) if isinstance(key, EventOrder) else None
    if order is None:
        keys = [key(event) for event in listed]
        order = sorted(range(len(listed)), key=keys.__getitem__)
        if len(set(keys)) < len(keys):
            _break_ties(order, keys, listed)
    return [listed[i] for i in order]


def _break_ties(order: list[int], keys: list[tuple[Any, ...]], listed: list[Event]) -> None:
    """Order each run of equal keys in ``order`` by what its events say."""
    start = 0
    for end in range(1, len(order) + 1):
        if end == len(order) or keys[order[end]] != keys[order[start]]:
            if end - start > 1:
                order[start:end] = sorted(order[start:end], key=lambda i: _said(listed[i]))
            start = end


def _said(event: Event) -> str:
    said = event.error if isinstance(event, StrategyFailed) else getattr(event, "payload", None)
    return json_fallback(said)


_INT = frozenset({int})


def _path_key(path: object) -> tuple[int, Any]:
    """Sorts well-formed paths by value and a traitor's garbage after them."""
    if type(path) is tuple and _INT.issuperset(map(type, path)):
        return (0, path)
    return (1, json_fallback(path))


class Accounting:
    """Every count a run's log and result hold, kept as the run goes.

    ``per_round`` and ``per_instance`` count messages that left their
    sender, refused ones included; ``sent_by`` and ``received`` count them
    per general.  ``undelivered`` counts loyal generals' messages that never
    arrived, ``timed_out`` the generals each round's timeout cut off, and
    ``crashed`` the generals whose ``general.crashed`` line is written.
    ``stats`` sums what the algorithm's cores counted, such as
    ``signatures_verified``.
    """

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rules = scenario.rules
        self.instances = len(scenario.setups)
        self.tagged = self.instances > 1
        self.order = event_order(self.rules)
        self.per_round = [0] * scenario.rounds
        self.per_instance = [0] * self.instances
        self.sent_by = dict.fromkeys(range(scenario.generals), 0)
        self.received = dict.fromkeys(range(scenario.generals), 0)
        self.rejected = 0
        self.undelivered = 0
        self.timed_out: dict[int, tuple[int, ...]] = {}
        self.crashed: set[int] = set()
        self.stats: Counter[str] = Counter()

    @property
    def messages(self) -> int:
        """Messages sent so far."""
        return sum(self.per_round)

    def tag(self, instance: int) -> int | None:
        """The instance as events carry it: only when a run has several."""
        return instance if self.tagged else None

    def started(
        self, *, mode: Literal["batched"] | None = None, messages_logged: bool | None = None
    ) -> RunStarted:
        """The run's first line: the scenario, and what its algorithm publishes (SM's public keys).

        ``mode`` and ``messages_logged`` are for a batched run, whose log may
        hold no messages; every other run leaves them out.
        """
        scenario = self.scenario
        public = self.rules.record(scenario.setup) or None
        return RunStarted(
            SCHEMA,
            __version__,
            scenario.seed,
            scenario.to_dict(),
            public=public,
            mode=mode,
            messages_logged=messages_logged,
        )

    # --- during a round -----------------------------------------------------------

    def sent(self, round: int, instance: int, sender: int, count: int = 1) -> None:
        """``count`` messages left ``sender`` in ``round`` of ``instance``."""
        self.per_round[round - 1] += count
        self.per_instance[instance] += count
        self.sent_by[sender] += count

    def count(self, events: Iterable[Event]) -> None:
        """Count the messages among ``events``: for a runtime that learns what was sent as events."""
        for event in events:
            if isinstance(event, MessageSent):
                self.sent(event.round, event.instance or 0, event.sender)

    def took(self, receiver: int, count: int) -> None:
        """``count`` more messages reached ``receiver``, refused ones included."""
        self.received[receiver] += count

    def add_stats(self, stats: Mapping[str, int]) -> None:
        """Add what one general's cores counted to the run's totals."""
        self.stats.update(stats)

    # --- at a round's barrier ---------------------------------------------------------

    def close_round(
        self,
        round: int,
        events: Iterable[Event],
        *,
        late: tuple[int, ...] = (),
        crashes: Sequence[GeneralCrashed] = (),
    ) -> list[Event]:
        """The round's events in log order, counted, followed by its crashes and its ``round.end``.

        ``events`` are the round's messages, refusals and strategy failures,
        in any order; ``late`` lists the generals the round's timeout cut
        off, ``crashes`` the generals that died in it.  Only messages that
        already went through :meth:`sent` or :meth:`count` are in
        ``round.end``'s count.
        """
        found = in_log_order(events, self.order)
        return [*found, *crashes, self.tally_round(round, found, late=late, crashes=crashes)]

    def tally_round(
        self,
        round: int,
        events: Sequence[Event],
        *,
        late: tuple[int, ...] = (),
        crashes: Sequence[GeneralCrashed] = (),
    ) -> RoundEnded:
        """:meth:`close_round`'s counting without its ordering: the round's ``round.end`` alone.

        For a run nobody is listening to -- no log, no handler -- which need
        not sort a round of 100,000 events only to drop them.  The counts,
        and so the :class:`Result`, are the same.
        """
        kinds = list(map(type, events))
        rejected = kinds.count(MessageRejected)
        sent = cast(list[MessageSent], list(compress(events, map(is_, kinds, repeat(MessageSent)))))
        undelivered = 0
        if False in map(_delivered, sent):  # only a cluster loses messages
            traitors = self.scenario.traitors
            undelivered = sum(1 for m in sent if m.delivered is False and m.sender not in traitors)
        self.rejected += rejected
        self.undelivered += undelivered
        if late:
            self.timed_out[round] = late
        self.crashed.update(crash.general for crash in crashes)
        return RoundEnded(round, self.per_round[round - 1], rejected, late, undelivered=undelivered or None)

    # --- after the last round ---------------------------------------------------------

    def conclude(
        self, decisions: Mapping[int, Sequence[str]], *, crashed: Mapping[int, int] | None = None
    ) -> tuple[list[Event], Result]:
        """The events after the last round, in log order, and the run's result.

        ``decisions`` maps each general that decided to its decision in
        every instance.  ``crashed`` maps each general whose process died to
        the round it died in: one whose crash no round logged yet is logged
        first; all of them count as neither loyal nor traitor, and their
        decisions are lost.
        """
        crashed = crashed or {}
        events: list[Event] = [
            GeneralCrashed(r, g) for g, r in sorted(crashed.items()) if g not in self.crashed
        ]
        outcomes, ending = self._ending(decisions, faulty=crashed)
        result = Result(
            scenario=self.scenario,
            instances=tuple(outcomes),
            messages_per_round=tuple(self.per_round),
            sent=dict(self.sent_by),
            received=dict(self.received),
            rejected=self.rejected,
            timed_out={r: gs for r, gs in self.timed_out.items() if gs},
            undelivered=self.undelivered,
            crashed=tuple(sorted(crashed)),
            stats=dict(sorted(self.stats.items())),
        )
        return events + ending, result

    def _ending(
        self, decisions: Mapping[int, Sequence[str]], *, faulty: Collection[int]
    ) -> tuple[list[InstanceOutcome], list[Event]]:
        """Each instance's outcome, and the decision and verdict events, in log order."""
        scenario = self.scenario
        outcomes: list[InstanceOutcome] = []
        events: list[Event] = []
        for index, setup in enumerate(scenario.setups):
            instance = scenario.effective_instances[index]
            tag = self.tag(index)
            for general in sorted(decisions):
                value = decisions[general][index]
                events.append(Decided(general, value, general in scenario.traitors, instance=tag))
            loyal = {g: decisions[g][index] for g in scenario.loyal if g in decisions and g not in faulty}
            verdict = judge(setup, loyal, loyal=scenario.loyal, order=instance.order, crashed=faulty)
            outcomes.append(InstanceOutcome(index, instance.commander, instance.order, loyal, verdict))
            if self.tagged:
                events.append(self._verdict(verdict, self.per_instance[index], tag))
        events.append(self._verdict(combine(o.verdict for o in outcomes), self.messages, None))
        return outcomes, events

    def _verdict(self, verdict: Verdict, messages: int, instance: int | None) -> VerdictReached:
        return VerdictReached(
            verdict.agreement,
            verdict.validity,
            verdict.success,
            messages,
            self.scenario.rounds,
            instance=instance,
        )
