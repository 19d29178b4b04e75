"""Lamport, Shostak and Pease's signed-messages algorithm SM(m), as pure state.

No trio, no logging, no clock: everything that runs SM(m) drives
:class:`SignedGeneral` through the :class:`~om_actors.algorithm.Core`
interface, as it drives OM(m) (:mod:`om_actors.oral`).  This is the one copy
of SM's rules: what a chain must look like, when a value joins a general's
set ``V``, what is forwarded, and the choice at the end.

A message is a value and a *chain* ``(c, j1, ..., jk)`` of the generals that
signed it, commander first, with one real Ed25519 signature per link.  Link
``i`` is ``chain[i]``'s signature over the run (every field of its
:class:`~om_actors.algorithm.Setup`, every general's public key among them),
the value and the links before it (:func:`signed_bytes`), so changing the
value, or any earlier signer, breaks every signature made after it, and a
signature made for one run verifies in no other.

Forging is impossible by construction, in two ways.  In one process (``run``,
``verify``) every key derives from the seed, so logs are reproducible: each
core holds only its own private key, and a traitor's strategy is handed no
key and composes nothing itself -- it only chooses what its own core signs.
Across processes that is not enough, since every node knows the seed: there
each node derives a secret of its own from its private key
(:meth:`SignedMessages.identity`), publishes the public key before round 1,
and every core checks signatures against those (``Setup.identities``).  A
traitor node then holds no other general's key at all.

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
import hmac
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
    """Every general's Ed25519 key pair for one seed: what :func:`keyring` derives, for one process."""

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
    keys, never secrets: anyone who knows the seed can rebuild them.  In one
    process that is sound, because what keeps a traitor from forging is the
    interface -- each core holds only its own private key, and a strategy is
    handed no key and composes nothing.  Across processes it is not: a
    traitor node knows the seed, so a cluster's nodes never use these keys
    (see :func:`secret_key`).

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


def secret_key(secret: bytes) -> Ed25519PrivateKey:
    """The signing key a general's own ``secret`` gives it: an HMAC of the secret, for SM alone.

    A cluster node derives ``secret`` from its own private key and the run
    (:func:`om_actors.node.run_secret`), never from anything it is sent, so
    no other process can make this key, whatever it knows of the scenario.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = hmac.new(secret, f"om-actors/{SignedMessages.name}/signing-key".encode(), hashlib.sha256)
    return Ed25519PrivateKey.from_private_bytes(seed.digest())


def public_keys(setup: Setup) -> tuple[str, ...]:
    """Every general's public key, hex, by id: the setup's identities, else the seed's."""
    return setup.identities or keyring(setup.seed, setup.generals).public_hex


@functools.lru_cache(maxsize=64)
def run_context(setup: Setup) -> str:
    """The run a signature belongs to, as one hash: every field of ``setup``, with every general's public key.

    So a signature made in one run verifies in no other: not another
    instance, army or domain, and not another cluster run with the same
    seed, whose nodes publish other keys.  Cached per setup, so a run hashes
    it once, however many links it signs.
    """
    fields = {**attrs.asdict(setup), "identities": list(public_keys(setup))}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def signed_bytes(
    setup: Setup, value: object, signers: tuple[object, ...], signatures: tuple[object, ...]
) -> bytes:
    """What one link signs: the run (:func:`run_context`), the value and the links before it, as JSON.

    The signer itself is bound by its key, so it is not repeated here.  A
    traitor may sign garbage, so this never raises: whatever JSON cannot
    encode is written by its ``repr``, and whatever even that cannot show
    by its type.  Receivers check the value and the chain before any
    signature, so only well-formed content is ever verified.
    """
    content = [f"om-actors/{SignedMessages.name}", run_context(setup), value, signers, signatures]
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
_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")
"""An Ed25519 public key as ``run.start`` and ``Setup.identities`` carry it: 32 bytes, lowercase hex."""


def _public_key(text: object) -> Ed25519PublicKey | None:
    """A published identity as a key, or ``None`` for one that is not (``""``, a general never heard from)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if type(text) is not str or not _PUBLIC_KEY.fullmatch(text):
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))
    except ValueError:
        return None


@functools.lru_cache(maxsize=16)
def _verifying_keys(setup: Setup) -> tuple[Ed25519PublicKey | None, ...]:
    """Every general's key to check its links with: the seed's, or the setup's identities, parsed once."""
    if not setup.identities:
        return keyring(setup.seed, setup.generals).public
    return tuple(_public_key(identity) for identity in setup.identities)


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

    A traitor may send any value for which it holds a valid chain, so the
    core also keeps the other chains that brought a value -- one per value,
    round and sender: the smallest of that sender's, again whatever the
    order they arrived in.  A loyal sender sends a value along one chain
    only, so that is every chain a loyal general can give; only a traitor
    sending several chains of one value in one round has all but its
    smallest dropped.  That keeps a general's chains of one round at most
    ``|values|`` per sender, and what a traitor is offered polynomial
    (:meth:`SignedMessages.most_messages`), where every chain of every
    colluding traitor would grow as OM(m)'s paths do.
    """

    def __init__(
        self,
        algorithm: Algorithm,
        setup: Setup,
        me: int,
        order: str | None = None,
        *,
        secret: bytes | None = None,
    ) -> None:
        super().__init__(algorithm, setup, me, order)
        self._key = self._signing_key(secret)
        self._public = _verifying_keys(setup)
        self._held: dict[str, Acceptance] = {}
        self._kept: dict[tuple[int, str, int], Acceptance] = {}
        """Every chain a traitor may extend: the smallest per round, value and sender."""
        self._accepted: list[Acceptance] = []
        self._verified: set[tuple[str, tuple[int, ...], tuple[str, ...]]] = set()
        self._signatures: dict[tuple[str, tuple[object, ...], tuple[str, ...]], str] = {}

    def _signing_key(self, secret: bytes | None) -> Ed25519PrivateKey | None:
        """This general's key: its secret's, the seed's, or none for a log of another process's run.

        A core given a secret must find its own public key among the
        setup's identities, or what it signs would verify nowhere.  Without
        a secret, identities that are not empty are another process's
        (replay of a cluster log): nobody here holds their keys, so the core
        signs nothing and :meth:`matches` checks what it can.
        """
        setup, me = self.setup, self.me
        if setup.identities and len(setup.identities) != setup.generals:
            raise ValueError(
                f"the setup names {len(setup.identities)} identities for {setup.generals} generals"
            )
        if secret is not None:
            key = secret_key(secret)
            if not setup.identities or setup.identities[me] != key.public_key().public_bytes_raw().hex():
                raise ValueError(f"general {me}'s secret does not give the identity the setup names for it")
            return key
        if setup.identities:
            return None
        return keyring(setup.seed, setup.generals).private[me]

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
        """What a traitor may send: what is due, every other chain it may extend, then late releases.

        A lieutenant may extend, in round ``r``, any chain it kept from round
        ``r - 1``, not only the one a loyal general forwards.  Each chain
        along which nothing is due comes once per general off it, with the
        value :data:`NOTHING_OWED`, since a loyal general sends nothing
        there: the strategy names the value, and the message verifies when
        that chain brought that value (:meth:`_compose`).  By chain, so the
        offers never depend on the order messages arrived in.

        A commander may sign its order again in any later round; a
        lieutenant may forward any value it holds in any round after the one
        it was due, along the chain it keeps for it.  Receivers reject a
        chain too short for its round, so a late release only ever counts
        where the rules let it.
        """
        due = self._outbox(round)
        if round == 1:
            return due
        if self.me == self.setup.commander:
            late = [Outgoing((self.me,), receiver, self.order) for receiver in self.setup.lieutenants]
            return due + late
        owed = {acceptance.chain for acceptance in self._held.values() if acceptance.round == round - 1}
        others = sorted({a.chain for a in self._kept.values() if a.round == round - 1} - owed)
        extended = [out for chain in others for out in self._extend(chain, NOTHING_OWED)]
        late = [
            out
            for acceptance in self.held.values()
            if acceptance.round < round - 1
            for out in self._forward(acceptance)
        ]
        return due + extended + late

    def _forward(self, acceptance: Acceptance) -> list[Outgoing]:
        return self._extend(acceptance.chain, acceptance.value)

    def _extend(self, chain: Path, value: str) -> list[Outgoing]:
        path = (*chain, self.me)
        return [Outgoing(path, g, value) for g in range(self.setup.generals) if g not in path]

    def _compose(self, outgoing: Outgoing, path: object, value: object) -> Signed:
        """``value`` along ``path``, signed with this general's key -- the only key it has.

        The signatures before this general's own are those of the chain
        ``path`` extends, if that chain brought ``value`` here: a traitor
        may send any value for which it holds a valid chain.  Otherwise --
        a value the chain did not bring, a made-up chain -- they are those
        of the offer's own chain, so the receiver finds they do not verify.
        The commander signing along ``(commander,)`` starts a fresh chain,
        so it may sign any value.
        """
        prefix = path[:-1] if isinstance(path, tuple) else ()
        before = self._brought(value, prefix)
        if before is None:
            own = outgoing.path[:-1]
            before = self._brought(outgoing.value, own)
            if before is None:
                along = sorted((a for a in self._kept.values() if a.chain == own), key=lambda a: a.rank)
                before = along[0].signatures if along else ()
        return Signed(value, path, (*before, self._sign(value, prefix, before)))

    def _brought(self, value: object, chain: object) -> tuple[str, ...] | None:
        """The signatures of ``chain`` if it brought ``value`` here and was kept; else ``None``."""
        if type(value) is not str or type(chain) is not tuple or not chain:
            return None
        if any(type(general) is not int for general in chain):
            return None
        kept = self._kept.get((len(chain), value, chain[-1]))
        return kept.signatures if kept is not None and kept.chain == chain else None

    def _sign(self, value: object, prefix: tuple[object, ...], before: tuple[str, ...]) -> str:
        """One link, signed once: Ed25519 is deterministic, so a cached signature is the same bytes.

        Only a plain value along a plain chain is cached: a traitor's garbage
        is signed afresh, so its hashing can never get in the way.  A core
        without its key (replay of a cluster log) cannot sign: it writes what
        :meth:`matches` will check instead, in words, for replay to show.
        """
        if self._key is None:
            return f"(one general {self.me}'s published key verifies)"
        if type(value) is not str or set(map(type, prefix)) - _INT:
            return self._key.sign(signed_bytes(self.setup, value, prefix, before)).hex()
        key = (value, prefix, before)
        signature = self._signatures.get(key)
        if signature is None:
            signature = self._key.sign(signed_bytes(self.setup, value, prefix, before)).hex()
            self._signatures[key] = signature
        return signature

    def matches(self, owed: object, logged: object) -> bool:
        """Whether ``logged`` is the message this general owed; without its key, all it can check.

        With its key, the two are equal, signatures and all.  Without it
        (replay of a cluster log), the value, the chain and the links before
        its own must be what it owed, and its own link must verify against
        its published key: everything but the bytes of its signature, which
        Ed25519 makes deterministic only for the key's holder.
        """
        if self._key is not None or owed == logged:
            return owed == logged
        if type(owed) is not Signed or type(logged) is not Signed:
            return False
        chain, signatures = logged.chain, logged.signatures
        if (logged.value, chain) != (owed.value, owed.chain) or type(signatures) is not tuple:
            return False
        assert isinstance(owed.signatures, tuple)
        assert isinstance(chain, tuple)
        if len(signatures) != len(owed.signatures) or signatures[:-1] != owed.signatures[:-1]:
            return False
        return self._link_verifies(owed.value, chain, signatures, len(chain) - 1)

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
        held = self._held.get(value)
        if held is None or (held.round == round and acceptance.rank < held.rank):
            self._held[value] = acceptance
        key = (round, value, sender)
        kept = self._kept.get(key)
        if kept is None or acceptance.rank < kept.rank:
            self._kept[key] = acceptance
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
            if not _SIGNATURE.fullmatch(signatures[link]):
                return False
            self.stats["signatures_verified"] += 1
            if not self._link_verifies(value, chain, signatures, link):
                return False
            self._verified.add(known)
        return True

    def _link_verifies(
        self, value: object, chain: tuple[int, ...], signatures: tuple[object, ...], link: int
    ) -> bool:
        """Whether link ``link`` is its signer's signature, by the key published for it in this run."""
        signature, public = signatures[link], self._public[chain[link]]
        if public is None or type(signature) is not str or not _SIGNATURE.fullmatch(signature):
            return False
        content = signed_bytes(self.setup, value, chain[:link], signatures[:link])
        try:
            public.verify(bytes.fromhex(signature), content)
        except _invalid_signature():
            return False
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
# *due* when the path has as many generals as the round number and its value
# is not NOTHING_OWED: that is when a loyal general sends it.  One as long as
# its round with NOTHING_OWED extends a chain a loyal general does not forward;
# every other offer is a late release.

NOTHING_OWED = ""
"""The value of an offer along which a loyal general sends nothing: another chain a traitor may extend.

No scenario value may be empty, so it is never a value; a strategy that
sends on such an offer names the value it sends.
"""


def _due(round: int, path: Path, value: str) -> bool:
    return len(path) == round and value != NOTHING_OWED


@attrs.frozen
class SignedLoyal:
    """Sends what a loyal general sends, when it is due, and releases nothing late."""

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        return value if _due(round, path, value) else None


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
        if not _due(round, path, value):
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
    A chain along which nothing is owed (:data:`NOTHING_OWED`) it leaves
    alone: it holds no value of its own to release there.  A scenario
    names a ``receiver`` that can get a release, or is refused (see
    :mod:`om_actors.scenario`): off the chain, so neither this traitor nor
    the commander.
    """

    m: int
    receiver: int | None = None

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if round != self.m + 1 or value == NOTHING_OWED:
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
        if not _due(round, path, value):
            return None
        if self.seed is not None:
            rng = random.Random(f"{self.seed}/{round}/{path}/{receiver}")
        return rng.choice((*self.values, None))


@attrs.frozen
class SignedScripted(Scripted):
    """OM's ``scripted`` on SM's offers: the script where it speaks, loyal elsewhere, nothing late.

    It speaks on every chain the traitor may extend in the round its length
    says, the ones a loyal general would not forward too: an entry naming
    one sends its value along it.  ``verify`` writes SM counterexamples with
    it, one entry per decision point it deviated on.
    """

    def choose(self, round: int, path: Path, receiver: int, value: str, rng: random.Random) -> object:
        if len(path) != round:
            return None
        sent = self.scripted(round, path, receiver, value)
        return None if sent == NOTHING_OWED else sent


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
    keyed = ("signatures",)

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

    def message_bound(self, setup: Setup, traitors: int, *, limit: int | None = None) -> int:
        """:meth:`most_messages` summed over every sender, receiver and round, lying lieutenants first.

        The commander can send each lieutenant :meth:`most_messages` in
        every round, whichever it is.  A lieutenant that lies can send each
        general but the commander its :meth:`most_messages` in every round
        from 2 on: the chains of the round before, and late releases.  A
        loyal lieutenant forwards each value it holds once, to at most
        ``n - 2`` generals -- with m = 1, only the order of round 1.  The
        traitors are counted among the lieutenants, where they can send the
        most; with none, the run sends what :meth:`messages_sent` counts.
        With more values than two the loyal count
        (:meth:`messages_sent`) is far below this: 50 values on 60 generals
        with m = 2 and a traitor commander send 124,547 messages where the
        loyal count is 3,481.  A closed form, so ``limit`` is never needed.
        """
        generals, m, values = setup.generals, setup.m, len(setup.values)
        if generals < 2 or m < 0 or traitors < 1:
            return self.messages_sent(generals, m)  # a loyal commander signs one value, and nobody lies
        commander = setup.commander
        lieutenant = commander + 1 if commander + 1 < generals else 0
        sent = (generals - 1) * self._over_rounds(setup, commander, lieutenant)
        if m == 0 or generals < 3:
            return sent
        other = next(g for g in range(generals) if g not in (commander, lieutenant))
        lying = self._over_rounds(setup, lieutenant, other)
        forwarded = values if m >= 2 else 1  # what joined V before the last round: round 1's order alone
        liars = min(traitors, generals - 1)
        return sent + (generals - 2) * (liars * lying + (generals - 1 - liars) * forwarded)

    def _over_rounds(self, setup: Setup, sender: int, receiver: int) -> int:
        """:meth:`most_messages` from ``sender`` to ``receiver`` over every round, at once for any ``m``.

        Rounds 1 and 2 are counted one by one; from round 3 on the bound is
        the same every round, so the rest is round 3's times their number.
        """
        rounds = self.rounds(setup.generals, setup.m)
        sent = sum(self.most_messages(setup, sender, receiver, r) for r in range(1, min(rounds, 2) + 1))
        if rounds >= 3:
            sent += (rounds - 2) * self.most_messages(setup, sender, receiver, 3)
        return sent

    def record(self, setup: Setup) -> dict[str, Any]:
        """Every general's public key, hex, by id: what a log reader needs to check each signature.

        The seed's for a run in one process; on a cluster, the keys its
        nodes published (``""`` for a node never heard from).
        """
        return {"keys": {str(general): key for general, key in enumerate(public_keys(setup))}}

    def identity(self, setup: Setup, me: int, secret: bytes) -> str:
        """The public key, hex, that ``secret`` gives a general: the same in every instance of a run."""
        return secret_key(secret).public_key().public_bytes_raw().hex()

    def identities_in(self, public: object, generals: int) -> tuple[str, ...]:
        """The keys a ``run.start`` publishes, by id, if :meth:`record` could have written them; else none.

        Each must be a public key, or ``""`` for a general a cluster never
        heard from; anything else is no record of ours.
        """
        keys = public.get("keys") if isinstance(public, Mapping) else None
        names = [str(general) for general in range(generals)]
        if not isinstance(keys, Mapping) or set(keys) != set(names):
            return ()
        found = tuple(keys[name] for name in names)
        if not all(key == "" or _public_key(key) is not None for key in found):
            return ()
        return found

    def path_of(self, payload: object) -> object:
        """The chain: the generals that signed, commander first."""
        return getattr(payload, "chain", ())

    def general(
        self, setup: Setup, me: int, order: str | None = None, *, secret: bytes | None = None
    ) -> SignedGeneral:
        return SignedGeneral(self, setup, me, order, secret=secret)

    def strategies(self) -> Mapping[str, type]:
        return STRATEGIES

    def canonical(self, values: tuple[str, ...]) -> Sequence[tuple[str, dict[str, object]]]:
        return [("split", {}), ("late", {}), ("silent", {})]

    def most_messages(self, setup: Setup, sender: int, receiver: int, round: int) -> int:
        """What ``sender`` can send ``receiver`` in ``round``: one message per offer it can get.

        The commander offers its order to each lieutenant in every round
        (late from round 2 on).  A lieutenant never sends to the commander,
        who is on every chain, and sends nothing in round 1.  In round 2 it
        extends the commander's chain, once per value.  From round 3 it
        extends the chains of round ``r - 1`` -- at most one per value from
        each of the ``n - 3`` senders other than itself and the receiver --
        and releases each value it held before late: ``|values| * (n - 2)``
        at most.
        """
        if sender == receiver or not 1 <= round <= self.rounds(setup.generals, setup.m):
            return 0
        if not (0 <= sender < setup.generals and 0 <= receiver < setup.generals):
            return 0
        if sender == setup.commander:
            return 1
        if round == 1 or receiver == setup.commander:
            return 0
        if round == 2:
            return len(setup.values)
        return len(setup.values) * (setup.generals - 2)

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
    """What ``V`` held after ``round``, and what came in it.

    The step names its round (and no sender), so ``explain`` adds below it
    what the general refused in that round, which the core never kept.
    """
    accepted = core.accepted(round)
    held = [value for value, acceptance in core.held.items() if acceptance.round <= round]
    detail = (
        f"accepted {len(accepted)} message{'s' if len(accepted) != 1 else ''}"
        if accepted
        else "accepted nothing"
    )
    children = tuple(_acceptance_step(core, a) for a in accepted)
    return Step(f"round {round}", _shown(core, held), detail, children, round=round)


def _acceptance_step(core: SignedGeneral, acceptance: Acceptance) -> Step:
    chain = ", ".join(map(str, acceptance.chain))
    if not core.joined(acceptance):
        detail = "already in V: not forwarded again"
    elif acceptance.round < core.rounds:
        detail = f"new: joins V, forwarded in round {acceptance.round + 1}"
    else:
        detail = "new: joins V; the last round, so not forwarded"
    label, sender = f"{acceptance.value} via [{chain}]", acceptance.chain[-1]
    return Step(label, acceptance.value, detail, path=acceptance.chain, round=acceptance.round, sender=sender)


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
