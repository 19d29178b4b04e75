"""One general, driven through any algorithm: what every runtime shares.

The trio actor, the network node and verify's lockstep loop all run a
general the same way -- ask the algorithm what is owed, let a traitor's
strategy rewrite it, hand what arrives to the core, decide -- and this is
the one copy of that pipeline.  It is sans-IO like the cores it drives: it
never awaits, sends or logs.  A round comes out as a list of :class:`Send`
items (ready to post) and, for a traitor, :class:`Ask` items: a question for
the strategy, which may be ``async``, so the runtime asks it -- awaiting
where it can, refusing to where it cannot (:func:`answer_now`) -- and hands
the answer back to :meth:`GeneralDriver.answer`.  The actors and verify's
lockstep loop take a round the short way, as :meth:`GeneralDriver.sends`
and :meth:`GeneralDriver.lies` give it: the same answers, with no object
per message but the payload.

The runtime stamps the sender and counts what it posts; the driver gives it
the events only the general can know of: a refused message, a strategy that
raised.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import NoReturn, cast

import attrs

from .algorithm import Core, Outgoing
from .errors import OmActorsError
from .events import MessageRejected, StrategyFailed
from .log import as_logged
from .strategies import (
    Strategy,
    StrategyError,
    StrategyRaised,
    interpret,
    message_rng,
    stopped_by,
)

Told = tuple[tuple[object, ...], object] | None | StrategyRaised
"""A strategy's answer to an :class:`Ask`: ``(path, value)``, ``None`` for silence, or what it raised."""


@attrs.frozen
class Send:
    """A message ready to go: ``payload`` to ``receiver``, in ``round`` of ``instance``."""

    instance: int
    round: int
    receiver: int
    payload: object


@attrs.frozen
class Pending:
    """What an ``async`` strategy returned: its answer comes once ``answer`` is awaited."""

    answer: Awaitable[object]


@attrs.frozen
class Awaiting:
    """An ``async`` strategy's answer to ``ask``, yet to be awaited: :meth:`GeneralDriver.told_later`."""

    ask: Ask
    pending: Pending


@attrs.frozen
class Ask:
    """A chance for a traitor to lie about ``outgoing``, with the message's own ``rng`` (see message_rng)."""

    instance: int
    round: int
    outgoing: Outgoing
    rng: random.Random


class GeneralDriver:
    """One general in every instance of a run: its cores, its strategy, its tally of arrivals.

    ``cores`` holds one core per instance, all for the same general.
    ``tagged`` says whether events name their instance (only when a run has
    several).
    """

    def __init__(self, cores: Sequence[Core], *, strategy: Strategy | None, seed: int, tagged: bool) -> None:
        self.cores = cores
        self.me = cores[0].me
        self.strategy = strategy
        self.seed = seed
        self.tagged = tagged
        self.received = 0
        self.cancellation: tuple[type[BaseException], ...] = ()
        """What the runtime cancels an awaited strategy with (``trio.Cancelled``): it passes through
        :meth:`told_later`, where anything else that is no ``Exception`` stops the run with an error."""

    def tag(self, instance: int) -> int | None:
        """The instance as events carry it: only when a run has several."""
        return instance if self.tagged else None

    def round(self, round: int) -> Iterator[Send | Ask]:
        """Open ``round`` in every instance: what a loyal general sends, or what a traitor is asked.

        Every core opens its round here, at once; the items then come one
        at a time, so a lieutenant of thirteen generals never holds its
        round's 9,000-odd messages as composed sends all together.
        """
        if self.strategy is None:
            return (
                Send(instance, round, receiver, payload)
                for instance, sends in enumerate(self.sends(round))
                for receiver, payload in sends
            )
        offered = [core.offers(round) for core in self.cores]
        return (Ask(instance, round, out, rng) for instance, out, rng in self._offered(round, offered))

    def sends(self, round: int) -> list[Iterator[tuple[int, object]]]:
        """A loyal general's :meth:`round`: per instance, ``(receiver, payload)`` with no :class:`Send`.

        For the actors, which post a loyal round's messages as they come:
        thirteen generals send 72,000 of them.  Every core opens its round
        now, as :meth:`round` opens them.
        """
        return [core.sends(round) for core in self.cores]

    def _offered(
        self, round: int, offered: list[list[Outgoing]]
    ) -> Iterator[tuple[int, Outgoing, random.Random]]:
        """Each of the cores' offers with its instance and its message's own rng: what a traitor is asked."""
        for instance, outgoing in enumerate(offered):
            tag = self.tag(instance)
            for out in outgoing:
                yield instance, out, message_rng(self.seed, round, self.me, out.path, out.receiver, tag)

    def lies(self, round: int) -> Iterator[tuple[int, int, object] | StrategyFailed | Awaiting]:
        """A traitor's :meth:`round`, every answer taken as the strategy gives it, for a runtime that posts.

        ``(instance, receiver, payload)`` is a message to post and a
        :class:`StrategyFailed` an event to record; silence yields nothing.
        An ``async`` strategy's answer comes as :class:`Awaiting`, for
        :meth:`told_later` and then :meth:`answer`.  The traitors of thirteen
        generals answer 36,000 times, and this asks each without an
        :class:`Ask`, a :class:`Send` or a coroutine.
        """
        assert self.strategy is not None
        choose = self.strategy.choose
        offered = [core.offers(round) for core in self.cores]
        for instance, out, rng in self._offered(round, offered):
            told = _told(choose, self.me, round, out, rng)
            if isinstance(told, Pending):
                yield Awaiting(Ask(instance, round, out, rng), told)
                continue
            sent = self._meant(instance, round, out, told)
            if sent is not None:
                yield sent

    def answer(self, ask: Ask, told: Told) -> Send | StrategyFailed | None:
        """What the strategy's answer means: a message to send, a failure to record, or silence."""
        sent = self._meant(ask.instance, ask.round, ask.outgoing, told)
        if type(sent) is tuple:
            return Send(ask.instance, ask.round, sent[1], sent[2])
        return cast("StrategyFailed | None", sent)

    def _meant(
        self, instance: int, round: int, out: Outgoing, told: Told
    ) -> tuple[int, int, object] | StrategyFailed | None:
        if isinstance(told, StrategyRaised):
            tag = self.tag(instance)
            return StrategyFailed(round, self.me, out.path, out.receiver, str(told), instance=tag)
        if told is None:
            return None
        said, value = told
        path = said if said is out.path else as_logged(said)  # the core's own path is plain already
        if type(value) is not str:
            value = as_logged(value)  # what the log and the wire will carry
        return instance, out.receiver, self.cores[instance].compose(out, path, value)

    async def ask(self, ask: Ask) -> Send | StrategyFailed | None:
        """Consult the strategy, awaiting it if it is ``async``, and take its answer."""
        told = self.told_now(ask)
        if isinstance(told, Pending):
            told = await self.told_later(ask, told)
        return self.answer(ask, told)

    def told_now(self, ask: Ask) -> Told | Pending:
        """The strategy's answer to ``ask`` -- or, from an ``async`` strategy, what to await for it.

        A runtime that can await hands a :class:`Pending` to
        :meth:`told_later`; one that cannot refuses it (:func:`answer_now`).
        Split so that a strategy that answers at once costs no coroutine:
        a traitor of thirteen generals answers 9,000 times a round.
        """
        assert self.strategy is not None
        return _told(self.strategy.choose, self.me, ask.round, ask.outgoing, ask.rng)

    async def told_later(self, ask: Ask, pending: Pending) -> Told:
        """What an ``async`` strategy answers, once awaited; cancellation passes."""
        try:
            choice = await pending.answer
        except Exception as exc:
            return StrategyRaised(exc)
        except BaseException as exc:
            if _passes(exc, (KeyboardInterrupt, *self.cancellation)):
                raise
            raise _overstepped(self.me, ask.round, ask.outgoing, exc) from exc
        return interpret(choice, ask.outgoing.path)

    def deliver(self, instance: int, sender: int, round: int, payload: object) -> MessageRejected | None:
        """Hand a message the runtime stamped to the core; the event if it was refused."""
        self.received += 1
        reason = self.cores[instance].receive(sender=sender, round=round, payload=payload)
        if reason is None:
            return None
        return MessageRejected(round, sender, self.me, payload, reason, instance=self.tag(instance))

    def deliver_all(
        self, instance: int, sender: int, round: int, payloads: Sequence[object]
    ) -> list[MessageRejected]:
        """:meth:`deliver` for a sender's messages of one round, in order: the events of those refused."""
        self.received += len(payloads)
        refused = self.cores[instance].receive_all(sender=sender, round=round, payloads=payloads)
        if not refused:
            return []
        tag = self.tag(instance)
        return [
            MessageRejected(round, sender, self.me, payloads[i], reason, instance=tag)
            for i, reason in refused
        ]

    def decide(self) -> tuple[str, ...]:
        """The decision in every instance."""
        return tuple(core.decide() for core in self.cores)


def _told(
    choose: Callable[..., object], general: int, round: int, out: Outgoing, rng: random.Random
) -> Told | Pending:
    """The strategy's answer to one offer, or what to await for it: how every runtime asks.

    An ``Exception`` costs the message (:class:`StrategyRaised`).  Anything
    else but Ctrl-C -- ``SystemExit``, ``GeneratorExit``, a ``Cancelled``
    no cancel scope sent -- would end the run without a word, or cancel it
    as if it had timed out: it is an error that names the strategy.
    """
    try:
        choice = choose(round, out.path, out.receiver, out.value, rng)
    except Exception as exc:
        return StrategyRaised(exc)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _overstepped(general, round, out, exc) from exc
    if type(choice) is not str and inspect.isawaitable(choice):
        return Pending(choice)
    return interpret(choice, out.path)


def _passes(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is one of ``kinds``, or a group of nothing else, as a nursery's cancellation is."""
    if isinstance(exc, kinds):
        return True
    split = getattr(exc, "split", None)
    return split is not None and split(kinds)[1] is None


def _overstepped(general: int, round: int, out: Outgoing, exc: BaseException) -> StrategyError:
    choosing = f"its round-{round} message to general {out.receiver}"
    return stopped_by(
        general, exc, choosing, "a strategy may lie, stay silent or raise an Exception, never stop the run"
    )


def answer_now(driver: GeneralDriver, ask: Ask) -> Send | StrategyFailed | None:
    """:meth:`GeneralDriver.ask` for code that cannot await: an ``async`` strategy is refused."""
    told = driver.told_now(ask)
    if isinstance(told, Pending):
        refuse_to_await(driver, told)
    return driver.answer(ask, told)


def refuse_to_await(driver: GeneralDriver, pending: Pending) -> NoReturn:
    """What code that cannot await does with an ``async`` strategy's answer: closes it, and says why."""
    if inspect.iscoroutine(pending.answer):
        pending.answer.close()
    raise OmActorsError(
        f"general {driver.me}'s strategy is async, and this runtime cannot await it: "
        "use a strategy whose choose() returns its answer"
    )
