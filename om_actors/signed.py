"""Lamport, Shostak and Pease's signed-messages algorithm SM(m), as pure state.

No trio, no logging, no clock: everything that runs SM(m) drives
:class:`SignedGeneral` through the :class:`~om_actors.algorithm.Core`
interface, as it drives OM(m) (:mod:`om_actors.oral`).  This is the one copy
of SM's rules: what a chain must look like, when a value joins a general's
set ``V``, what is forwarded, and the choice at the end.

A message is a value and a *chain* ``(c, j1, ..., jk)`` of the generals that
signed it, commander first, with one real Ed25519 signature per link.  Link
``i`` is ``chain[i]``'s signature over the run (seed and instance), the value
and the links before it (:func:`signed_bytes`), so changing the value, or any
earlier signer, breaks every signature made after it.  A general holds only
its own private key, so a traitor signs as itself and nobody else: forging is
impossible by construction, and a traitor's strategy, which never sees a
key, can only choose what this general's core signs.

Rounds stand for the paper's timing assumption as Dolev and Strong state it:
in round ``r`` a general accepts only chains of exactly ``r`` signatures.  A
value a general holds is forwarded once, in the round after it arrived, so
SM(m) sends ``(n-1) + (n-1)(n-2)`` messages with no traitor: polynomial,
unlike OM(m).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import itertools
import json
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .algorithm import Algorithm, Core, DecisionPoint, Outgoing, Path, Setup, Step
from .oral import relay_problem
from .strategies import Scripted, Silent, following


class SignedReason(str, enum.Enum):
    """Why a general refuses a signed message; the value then counts as missing.

    The cheap rules come first and the signatures last, so a message that
    fails on its shape costs no cryptography.
    """

    MALFORMED_MESSAGE = "malformed message"
    OUT_OF_RANGE = "chain names a general out of range"
    NOT_FROM_COMMANDER = "chain does not start with the commander"
    NOT_FROM_SENDER = "chain does not end with the sender"
    REPEATS = "chain repeats a general"
    THROUGH_RECEIVER = "chain contains the receiver"
    WRONG_ROUND = "chain has the wrong number of signatures for the round"
    OUTSIDE_DOMAIN = "value outside the domain"
    BAD_SIGNATURE = "signature does not verify"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Signed:
    """A signed message: ``value``, with the ``chain`` of generals that signed it and their ``signatures``.

    ``signatures`` are lowercase hex, one per link of ``chain``.  As with an
    oral message, a traitor may put anything in any field; the receiver
    judges them, and the signatures are what it cannot fake.
    """

    value: object
    chain: object
    signatures: object


# --- keys and what is signed ---------------------------------------------------


@attrs.frozen
class Keyring:
    """Every general's Ed25519 key pair for one seed: what :func:`keyring` derives."""

    private: tuple[Ed25519PrivateKey, ...]
    public: tuple[Ed25519PublicKey, ...]
    public_hex: tuple[str, ...]


@functools.cache
def _invalid_signature() -> type[Exception]:
    """What ``cryptography`` raises for a signature that does not verify, imported when first needed."""
    from cryptography.exceptions import InvalidSignature

    return InvalidSignature


@functools.lru_cache(maxsize=16)
def keyring(seed: int, generals: int) -> Keyring:
    """The simulation's keys for ``seed``: each general's private key is a hash of the seed and its id.

    Deriving the keys, rather than drawing them, is what makes one scenario
    and seed give the same log, signatures and all, on every run, and lets
    ``replay`` check every loyal message byte for byte.  They are simulation
    keys, never secrets: anyone who knows the seed can rebuild them.  What
    keeps a traitor from forging is the interface -- each core holds only
    its own private key, and a strategy is never handed any key.

    Cached per seed and army size, so the cores of one run derive them once.
    """
    # Imported here, not at the top: every program that imports om_actors would pay for it otherwise.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = tuple(
        Ed25519PrivateKey.from_private_bytes(_hash(f"om-actors/sm/{seed}/{general}"))
        for general in range(generals)
    )
    public = tuple(key.public_key() for key in private)
    return Keyring(private, public, tuple(key.public_bytes_raw().hex() for key in public))


def _hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def signed_bytes(
    setup: Setup, value: object, signers: tuple[object, ...], signatures: tuple[object, ...]
) -> bytes:
    """What one link signs: the run, the instance, the value and the links before it, as canonical JSON.

    The signer itself is bound by its key, so it is not repeated here.  A
    traitor may sign garbage, so this never raises: whatever JSON cannot
    encode is written by its ``repr``, and whatever even that cannot show
    by its type.  Receivers check the value and the chain before any
    signature, so only well-formed content is ever verified.
    """
    content = [f"om-actors/{SignedMessages.name}", setup.seed, setup.instance, value, signers, signatures]
    try:
        return json.dumps(content, separators=(",", ":"), default=_unencodable).encode()
    except (TypeError, ValueError, RecursionError):
        return json.dumps(["unencodable", _safe_repr(content)], separators=(",", ":")).encode()


def _unencodable(thing: object) -> object:
    return {"unencodable": _safe_repr(thing)}


def _safe_repr(thing: object) -> str:
    try:
        return repr(thing)
    except Exception:  # a traitor's object may refuse even that
        return f"<{type(thing).__qualname__}>"


_SIGNATURE = re.compile(r"[0-9a-f]{128}")
"""An Ed25519 signature as messages carry it: 64 bytes, lowercase hex, nothing else."""


# --- one general --------------------------------------------------------------


@attrs.frozen
class Acceptance:
    """A message a general accepted: ``value`` via ``chain``, in ``round``."""

    round: int
    value: str
    chain: Path
    signatures: tuple[str, ...]

    @property
    def rank(self) -> tuple[int, Path, tuple[str, ...]]:
        """The order acceptances are kept in: by round, then chain, whatever order they arrived in."""
        return (self.round, self.chain, self.signatures)


class SignedGeneral(Core):
    """One general's view of one SM(m) instance: its set ``V``, round by round.

    ``V`` keeps, for each value, one chain it arrived with: the chain the
    general extends when it forwards the value.  Of the chains that brought
    the value in the round it first arrived, that is the smallest, not the
    first to arrive: messages of one round may arrive in any order (the trio
    runtime's scheduling decides it), and what a general forwards, logs and
    explains must not depend on that.  A commander is on every chain, so it
    accepts nothing and decides its own order.
    """

    def __init__(self, algorithm: Algorithm, setup: Setup, me: int, order: str | None = None) -> None:
        super().__init__(algorithm, setup, me, order)
        keys = keyring(setup.seed, setup.generals)
        self._key = keys.private[me]
        self._public = keys.public
        self._held: dict[str, Acceptance] = {}
        self._accepted: list[Acceptance] = []
        self._verified: set[tuple[str, tuple[int, ...], tuple[str, ...]]] = set()
        self._signatures: dict[tuple[str, tuple[object, ...], tuple[str, ...]], str] = {}

    @property
    def held(self) -> Mapping[str, Acceptance]:
        """``V``: each value this general accepted, with the chain it keeps for it, by round and chain."""
        return dict(sorted(self._held.items(), key=lambda item: item[1].rank))

    def accepted(self, round: int) -> list[Acceptance]:
        """Everything accepted in ``round``, new values and repeats alike, by chain."""
        return sorted((a for a in self._accepted if a.round == round), key=lambda a: a.rank)

    def joined(self, acceptance: Acceptance) -> bool:
        """Whether ``acceptance`` is how its value joined ``V``: the one chain kept, and forwarded, for it."""
        return self._held.get(acceptance.value) == acceptance

    # --- sending ---------------------------------------------------------------

    def _outbox(self, round: int) -> list[Outgoing]:
        """What a loyal general sends in ``round``, value by value (by chain), then by receiver.

        In round 1 the commander sends its order to every lieutenant.  In
        round ``r`` a lieutenant forwards each value that joined ``V`` in
        round ``r - 1`` -- at most ``m`` then, since the last round is
        ``m + 1`` -- to every general not yet on its chain.
        """
        if round == 1:
            if self.me != self.setup.commander:
                return []
            return [Outgoing((self.me,), receiver, self.order) for receiver in self.setup.lieutenants]
        return [
            out
            for acceptance in self.held.values()
            if acceptance.round == round - 1
            for out in self._forward(acceptance)
        ]

    def _offers(self, round: int) -> list[Outgoing]:
        """What a traitor may send: what is due, then everything it holds again, to release it late.

        A commander may sign its order again in any later round; a
        lieutenant may forward any value it holds in any round after the one
        it was due.  Receivers reject a chain too short for its round, so a
        late release only ever counts where the rules let it.
        """
        due = self._outbox(round)
        if round == 1:
            return due
        if self.me == self.setup.commander:
            late = [Outgoing((self.me,), receiver, self.order) for receiver in self.setup.lieutenants]
        else:
            late = [
                out
                for acceptance in self.held.values()
                if acceptance.round < round - 1
                for out in self._forward(acceptance)
            ]
        return due + late

    def _forward(self, acceptance: Acceptance) -> list[Outgoing]:
        path = (*acceptance.chain, self.me)
        return [Outgoing(path, g, acceptance.value) for g in range(self.setup.generals) if g not in path]

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Signed:
        """``value`` along ``path``, signed with this general's key -- the only key it has.

        The signatures before this general's own are those it holds for
        ``outgoing.value`` (none for the commander's order), whatever the
        strategy chose: a changed value or a made-up chain keeps them, so
        the receiver finds they do not verify.  The commander signing along
        ``(commander,)`` starts a fresh chain, so it may sign any value.
        """
        held = self._held.get(outgoing.value)
        before = held.signatures if held is not None else ()
        prefix = path[:-1] if isinstance(path, tuple) else ()
        return Signed(value, path, (*before, self._sign(value, prefix, before)))

    def _sign(self, value: object, prefix: tuple[object, ...], before: tuple[str, ...]) -> str:
        """One link, signed once: Ed25519 is deterministic, so a cached signature is the same bytes.

        Only a plain value along a plain chain is cached: a traitor's garbage
        is signed afresh, so its hashing can never get in the way.
        """
        if type(value) is not str or set(map(type, prefix)) - _INT:
            return self._key.sign(signed_bytes(self.setup, value, prefix, before)).hex()
        key = (value, prefix, before)
        signature = self._signatures.get(key)
        if signature is None:
            signature = self._key.sign(signed_bytes(self.setup, value, prefix, before)).hex()
            self._signatures[key] = signature
        return signature

    # --- receiving -------------------------------------------------------------

    def _receive(self, sender: int, round: int, payload: object) -> SignedReason | None:
        reason = self._rejection(sender, round, payload)
        if reason is not None:
            return reason
        assert isinstance(payload, Signed)
        value, chain, signatures = payload.value, payload.chain, payload.signatures
        assert isinstance(value, str)
        assert isinstance(chain, tuple)
        assert isinstance(signatures, tuple)
        acceptance = Acceptance(round, value, chain, signatures)
        self._accepted.append(acceptance)
        kept = self._held.get(value)
        if kept is None or (kept.round == round and acceptance.rank < kept.rank):
            self._held[value] = acceptance
        return None

    def _rejection(self, sender: int, round: int, payload: object) -> SignedReason | None:
        """Why this general must refuse ``payload``, or ``None`` to accept it.

        ``sender`` and ``round`` come from the runtime, never from the
        message, so a chain whose last signer is not the sender is a
        forgery however well it is signed.
        """
        if type(payload) is not Signed:
            return SignedReason.MALFORMED_MESSAGE
        chain, signatures, value = payload.chain, payload.signatures, payload.value
        if type(chain) is not tuple or not chain or set(map(type, chain)) != _INT:
            return SignedReason.MALFORMED_MESSAGE
        if type(signatures) is not tuple or len(signatures) != len(chain):
            return SignedReason.MALFORMED_MESSAGE
        if any(type(signature) is not str for signature in signatures):
            return SignedReason.MALFORMED_MESSAGE
        if min(chain) < 0 or max(chain) >= self.setup.generals:
            return SignedReason.OUT_OF_RANGE
        if chain[0] != self.setup.commander:
            return SignedReason.NOT_FROM_COMMANDER
        if chain[-1] != sender:
            return SignedReason.NOT_FROM_SENDER
        if len(set(chain)) != len(chain):
            return SignedReason.REPEATS
        if self.me in chain:
            return SignedReason.THROUGH_RECEIVER
        if len(chain) != round:
            return SignedReason.WRONG_ROUND
        if type(value) is not str or value not in self.setup.values:
            return SignedReason.OUTSIDE_DOMAIN
        if not self._verifies(value, chain, signatures):
            return SignedReason.BAD_SIGNATURE
        return None

    def _verifies(self, value: str, chain: tuple[int, ...], signatures: tuple[str, ...]) -> bool:
        """Whether every link verifies, each checked once per general.

        A link already verified -- the commander's, say, on every forwarded
        copy of its order -- is not checked again: its signature covers the
        value and everything before it, so the same link is the same
        answer.  ``stats["signatures_verified"]`` counts the checks made.
        """
        for link in range(len(chain)):
            known = (value, chain[: link + 1], signatures[: link + 1])
            if known in self._verified:
                continue
            signature = signatures[link]
            if not _SIGNATURE.fullmatch(signature):
                return False
            self.stats["signatures_verified"] += 1
            content = signed_bytes(self.setup, value, chain[:link], signatures[:link])
            try:
                self._public[chain[link]].verify(bytes.fromhex(signature), content)
            except _invalid_signature():
                return False
            self._verified.add(known)
        return True

    # --- deciding ----------------------------------------------------------------

    def _decide(self) -> str:
        """The paper's ``choice(V)``: the one value in ``V``, else the default; a commander obeys itself."""
        if self.me == self.setup.commander:
            return self.order
        if len(self._held) == 1:
            return next(iter(self._held))
        return self.setup.default


_INT = {int}
"""The only element type of a well-formed chain: ``bool`` is an int, but not a general."""


# --- traitors -----------------------------------------------------------------
#
# An SM offer's ``path`` is the chain with the traitor appended.  An offer is
# *due* when the path has as many generals as the round number: that is when
# a loyal general sends it.  Every other offer is a late release.


def _due(round: int, path: Path) -> bool:
    return len(path) == round


@attrs.frozen
class SignedLoyal:
    """Sends what a loyal general sends, when it is due, and releases nothing late."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return value if _due(round, path) else None


@attrs.frozen
class SignedSplit:
    """Two-faced where signatures allow it.

    As commander it signs its order for even-numbered lieutenants and the
    next value for odd-numbered ones -- the paper's figure 5.  As a
    lieutenant it cannot change what it forwards without breaking the
    chain, so it forwards, when due, to even-numbered generals only.
    """

    values: tuple[str, ...]

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if not _due(round, path):
            return None
        if len(path) == 1:
            return following(self.values, value) if receiver % 2 else value
        return None if receiver % 2 else value


@attrs.frozen
class Late:
    """Holds every value back, and releases each in round ``m + 1`` to one receiver only.

    ``receiver`` is that general; by default it is the lowest-numbered one
    not on the chain -- a strategy is not told how many generals there are,
    so the lowest is the one it can always name.  The release is accepted
    only when its chain has ``m + 1`` signatures, that is when the value
    itself arrived in round ``m``: a Dolev-Strong receiver rejects an older
    value released late.  ``m`` is the scenario's, filled in like ``values``.
    """

    m: int
    receiver: int | None = None

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if round != self.m + 1:
            return None
        target = (
            self.receiver
            if self.receiver is not None
            else next(g for g in itertools.count() if g not in path)
        )
        return value if receiver == target else None


@attrs.frozen
class SignedRandom:
    """On each due offer, a value or silence drawn from the rng; nothing late.

    With ``seed`` set, draws come from that seed instead of the scenario's,
    as for OM's ``random``.
    """

    values: tuple[str, ...]
    seed: int | None = None

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if not _due(round, path):
            return None
        if self.seed is not None:
            rng = random.Random(f"{self.seed}/{round}/{path}/{receiver}")
        return rng.choice((*self.values, None))


@attrs.frozen
class SignedScripted(Scripted):
    """OM's ``scripted`` on SM's offers: the script where it speaks, loyal elsewhere, nothing late.

    ``verify`` writes SM counterexamples with it, one entry per decision
    point it deviated on.
    """

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if not _due(round, path):
            return None
        return self.scripted(round, path, receiver, value)


STRATEGIES: Mapping[str, type] = {
    "loyal": SignedLoyal,
    "silent": Silent,
    "split": SignedSplit,
    "late": Late,
    "random": SignedRandom,
    "scripted": SignedScripted,
}
"""SM's built-in strategies, by the name a scenario file uses."""


# --- the algorithm --------------------------------------------------------------


class SignedMessages(Algorithm):
    """SM(m): m + 1 rounds of forwarding each signed value once, then ``choice(V)``.

    The theorem (Lamport, Shostak and Pease 1982, theorem 2) promises IC1
    and IC2 with at most ``m`` traitors, for any number of generals.
    """

    name = "sm"
    title = "SM(m)"
    payload = Signed
    reasons = SignedReason
    batchable = False

    def rounds(self, generals: int, m: int) -> int:
        return m + 1

    def problems(self, generals: int, m: int) -> list[str]:
        """Reported at the scenario's ``m``: with ``n <= m + 1`` the problem is trivial, so it is refused."""
        if m > generals - 2:
            return [
                f"must be at most generals - 2 = {generals - 2}: with n <= m + 1 generals and up to m "
                "traitors at most one general is loyal, so there is nothing to agree on"
            ]
        return []

    def warnings(self, generals: int, m: int, traitors: int) -> list[str]:
        if traitors > m:
            return [f"{traitors} traitors are more than m = {m}: SM({m}) is only built to survive {m}"]
        return []

    def messages_sent(self, generals: int, m: int, *, limit: int | None = None) -> int:
        """The commander's ``n - 1``, then each lieutenant forwards the order once to the ``n - 2`` others.

        A closed form, so ``limit`` is never needed: any size is answered at once.
        """
        if generals < 2 or m < 0:
            return 0
        if m == 0:
            return generals - 1
        return (generals - 1) + (generals - 1) * (generals - 2)

    def record(self, setup: Setup) -> dict[str, Any]:
        """Every general's public key, hex, by id: what a log reader needs to check each signature."""
        keys = keyring(setup.seed, setup.generals).public_hex
        return {"keys": {str(general): key for general, key in enumerate(keys)}}

    def path_of(self, payload: object) -> object:
        """The chain: the generals that signed, commander first."""
        return getattr(payload, "chain", ())

    def general(self, setup: Setup, me: int, order: str | None = None) -> SignedGeneral:
        return SignedGeneral(self, setup, me, order)

    def strategies(self) -> Mapping[str, type]:
        return STRATEGIES

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        return [("split", {}), ("late", {}), ("silent", {})]

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        """What ``sender`` can send ``receiver`` in ``round``: one message per value it may hold.

        The commander offers its order to each lieutenant in every round
        (late from round 2 on).  A lieutenant holds at most one chain per
        value of the domain and offers each value at most once a round, due
        or late, to each general off its chain -- never the commander, who
        is on every chain.
        """
        if sender == receiver or not 1 <= round <= self.rounds(setup.generals, setup.m):
            return 0
        if not (0 <= sender < setup.generals and 0 <= receiver < setup.generals):
            return 0
        if sender == setup.commander:
            return 1
        if round == 1 or receiver == setup.commander:
            return 0
        return len(setup.values)

    def decision_points(self, setup: Setup, traitor: int) -> Iterator[DecisionPoint]:
        """Every due message ``traitor`` could send: each chain it could hold, extended by itself.

        The commander has one per lieutenant in round 1.  A lieutenant has
        one per chain ``(c, j1, ..., jk, traitor)`` of distinct generals with
        at most ``m + 1`` links, in round ``k + 2``, per receiver not on it.
        That is ``P(n - 2, k)`` chains for each ``k``, far too many to list
        for a large army, so they come one at a time, shortest first.
        """
        commander = setup.commander
        if traitor == commander:
            yield from (DecisionPoint(1, (commander,), receiver) for receiver in setup.lieutenants)
            return
        others = [g for g in setup.lieutenants if g != traitor]
        for relayed in range(setup.m):
            for relayers in itertools.permutations(others, relayed):
                path = (commander, *relayers, traitor)
                for receiver in range(setup.generals):
                    if receiver not in path:
                        yield DecisionPoint(len(path), path, receiver)

    def script_problem(self, setup: Setup, traitor: int, point: DecisionPoint) -> str | None:
        """A chain's rules, checked without listing the chains: OM(m)'s path rules say exactly these.

        A due message's path is a chain from the commander ending with the
        traitor, of distinct generals, at most ``m + 1`` of them, sent in the
        round its length says to a general not on it -- :meth:`decision_points`
        to the letter, which at 31 generals and m = 10 are billions.
        """
        return relay_problem(self, setup, traitor, point)

    def explain(self, core: Core, *, path: Path | None = None, depth: int | None = None) -> Step:
        """The general's ``V`` round by round: what it accepted, via which chain, and the choice it made."""
        assert isinstance(core, SignedGeneral)
        decision = core.decide()  # raises ProtocolMisuse before the last round, as deciding would
        if path is not None:
            raise ValueError(
                f"{self.titled(core.setup.m)} keeps a set of values, not a tree of paths: "
                "its explanation has no path to start from"
            )
        label = f"general {core.me}"
        if core.me == core.setup.commander:
            raise ValueError(
                f"general {core.me} is the commander: it decides its own order and keeps no set of values"
            )
        rounds = tuple(_round_step(core, r) for r in range(1, core.rounds + 1))
        detail = f"V = {_shown(core, core.held)}: {_choice(core)}"
        return _limited(Step(label, decision, detail, rounds), depth)


def _round_step(core: SignedGeneral, round: int) -> Step:
    accepted = core.accepted(round)
    held = [value for value, acceptance in core.held.items() if acceptance.round <= round]
    detail = (
        f"accepted {len(accepted)} message{'s' if len(accepted) != 1 else ''}"
        if accepted
        else "accepted nothing"
    )
    return Step(
        f"round {round}", _shown(core, held), detail, tuple(_acceptance_step(core, a) for a in accepted)
    )


def _acceptance_step(core: SignedGeneral, acceptance: Acceptance) -> Step:
    chain = ", ".join(map(str, acceptance.chain))
    if not core.joined(acceptance):
        detail = "already in V: not forwarded again"
    elif acceptance.round < core.rounds:
        detail = f"new: joins V, forwarded in round {acceptance.round + 1}"
    else:
        detail = "new: joins V; the last round, so not forwarded"
    return Step(f"{acceptance.value} via [{chain}]", acceptance.value, detail, path=acceptance.chain)


def _shown(core: SignedGeneral, held: Iterable[str]) -> str:
    values = set(held)
    return "{" + ", ".join(value for value in core.setup.values if value in values) + "}"


def _choice(core: SignedGeneral) -> str:
    count = len(core.held)
    if count == 1:
        return "its one value"
    if count == 0:
        return f"nothing accepted, so the default {core.setup.default}"
    return f"{count} values, so the default {core.setup.default}"


def _limited(step: Step, depth: int | None) -> Step:
    """``step`` with at most ``depth`` levels below it; what is cut is counted in ``hidden``."""
    if depth is None:
        return step
    if depth <= 0:
        return attrs.evolve(step, children=(), hidden=step.hidden + _size(step) - 1)
    return attrs.evolve(step, children=tuple(_limited(child, depth - 1) for child in step.children))


def _size(step: Step) -> int:
    return 1 + sum(_size(child) for child in step.children)


SIGNED_MESSAGES = SignedMessages()
"""SM(m), as the registry holds it."""
