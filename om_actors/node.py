"""One general as its own HTTP server: the algorithm's core behind a plain ASGI app.

A node runs its general exactly as the in-memory actor does -- one
:class:`~om_actors.driver.GeneralDriver` over one core per consensus
instance, built by the scenario's algorithm -- and speaks JSON over HTTP.
It knows no algorithm's rules: what to send, what to refuse and what to
decide are the core's; how many rounds there are is the scenario's.  The
driver (``om-actors cluster``) steps it through a run with *control*
requests:

- ``POST /start``: begin a run (its scenario, the peers' addresses), and
  answer with this general's identity in every instance, signed
  (:func:`identity_fields`);
- ``POST /round``: open the next round in every instance: send its messages
  to every peer, wait for each to acknowledge, then answer with what was sent.
  Round 1 carries every general's signed ``/start`` answer, and builds the
  general, its cores knowing every identity;
- ``POST /close``: close the round: hand the round's batches to the general,
  sender by sender, answer with what arrived and what was refused, and
  accept nothing more for it;
- ``POST /decide``: the decisions, once every round is closed, and what the
  cores counted (``signatures_verified``, say);
- ``GET /status?nonce=N``: who this node is, signed with its own key.

Peers send each other ``POST /order``: one signed batch per round, holding
a list of messages per instance, each message its payload's fields
(:meth:`~om_actors.algorithm.Algorithm.payload_fields`; an SM message's
chain signatures travel in it).  An unsigned ``GET /status`` answers only
the node's id and session, for liveness checks.

A batch is handed to the general when the round closes, not when it
arrives: a peer's batch can come before this node's own ``/round`` has
opened the round, and the core takes a round's messages only once the
round is open.  Handing them over sorted by sender also means the core
never depends on the order the network brought them in.

Two signatures guard a node, and both are checked before anything else is
parsed or allocated:

- a control request carries the driver's Ed25519 signature in its headers,
  over the node it is for, the node's session (a random id drawn when the
  node starts), a counter that must grow with every request, the method,
  path, query and a hash of the body.  Without it: 401, before the body is
  read.  A bad, foreign, stale or replayed one: 403.  So nobody without the
  driver's key can start runs, open rounds out of turn, or make a node
  allocate; and nothing the driver sent can be played again.
- an ``/order`` body carries its sender's signature, checked against the
  cluster file: a traitor node can lie about values but cannot speak for
  anyone else (the paper's assumption A2).  The signer is the sender the
  core is told of, so a message claiming to come from elsewhere -- an OM
  path, or an SM chain, whose last hop is not the signer -- is a forgery the
  algorithm's own rules refuse, as in memory.

An algorithm that signs (SM) needs a third: keys no other process can make.
Every node knows the scenario and its seed, so keys derived from the seed
would let a traitor node sign for anyone.  Instead each node derives a
secret of its own for each run (:func:`run_secret`, from its private key),
gives it to its cores, and publishes only what the algorithm makes public
of it (:meth:`~om_actors.algorithm.Algorithm.identity`: SM's public key).
Every node checks each general's published identities against that
general's key in the cluster file before its cores use them, so neither the
driver nor a peer can swap one in.

A peer with a valid key still cannot grow a node's memory: a node accepts
one batch per peer for the round that is open, holding in each instance no
more messages than the algorithm says that peer can send it in that round
(:meth:`~om_actors.algorithm.Algorithm.most_messages`), each shaped as the
algorithm's payload and nested at most :data:`MAX_NESTING` deep, and
forgets the batches when the round closes.

The traitor strategies a node may run are fixed when it starts (the
built-in ones, and the ``module:Class`` names its operator allowed): a
``/start`` naming any other is refused, and nothing is imported.
"""

from __future__ import annotations

import argparse
import base64
import enum
import functools
import hashlib
import hmac
import json
import secrets
import ssl
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .algorithm import Core, Setup
from .driver import Ask, GeneralDriver, Send
from .errors import OmActorsError
from .events import StrategyFailed
from .log import event_first, json_fallback
from .scenario import Scenario, scenario_from_dict
from .strategies import Strategy, StrategyError

if TYPE_CHECKING:
    import httpx

MAX_BODY = 4 * 2**20
"""Largest request body a node reads, in bytes; anything bigger gets 413."""
DRAIN_LIMIT = 4 * MAX_BODY

DELIVERY_TIMEOUT = 30.0
"""Seconds a sender waits for a receiver to acknowledge one round's batch.

Far longer than an unloaded network ever needs, so a run that loses a
message has really lost it (a receiver that died, a network cut), and says
so: the message is logged as not delivered.  The scenario's
``round_timeout`` is a different bound: how long a traitor's strategy may
take to choose a round's messages.
"""

SESSION_HEADER = "om-session"
COUNTER_HEADER = "om-counter"
SIGNATURE_HEADER = "om-signature"
MAX_COUNTER_DIGITS = 30
MAX_NONCE = 128
MAX_RUN_ID = 64
MAX_ADDRESS = 255
MAX_LOGGED = 200
"""Characters of a refused request's method, path or error that the node logs, and of a path it echoes.

Refusals come before any signature is checked, so anyone who reaches the
port can cause them: what they log from the request must be bounded, or a
60,000-character path would be written whole, as often as it is sent.
"""

MAX_IDENTITY = 1024
"""Characters a published identity may have: an SM public key has 64."""

MAX_NESTING = 64
"""How deeply lists and objects may nest in one message of a batch; a deeper one is refused.

Far past anything a strategy's garbage needs, and far short of what would
make turning the fields back into a payload recurse too deep.
"""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Respond = Callable[[dict[str, Any]], Awaitable[None]]
"""ASGI's ``send``: named apart from :class:`~om_actors.driver.Send`, a message the general sends."""
Answer = tuple[int, dict[str, Any]]


def plain_http_client(timeout: float) -> httpx.AsyncClient:
    """An HTTP client for nodes and their driver, which speak plain HTTP: it loads no CA certificates.

    httpx's default client reads the whole system bundle, a tenth of a
    second of each node's start; nodes never use TLS.  Its context trusts no
    certificate, so an ``https://`` address fails rather than goes unchecked.
    """
    import httpx  # here, not above: see main

    return httpx.AsyncClient(timeout=timeout, verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


class RequestError(Exception):
    """A request the node refuses, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen
class Peer:
    """Another general of the cluster: where it listens, and the key it signs with."""

    id: int
    address: str
    public_key: Ed25519PublicKey


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the fields, in one fixed JSON form."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(key: Ed25519PrivateKey, fields: Mapping[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical(fields))).decode()


def verify(key: Ed25519PublicKey, signature: str, fields: Mapping[str, Any]) -> bool:
    """Whether ``signature`` is ``key``'s over ``fields``; a malformed signature is simply not."""
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical(fields))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_text(key: Ed25519PublicKey) -> str:
    """A public key as the cluster file and the signed ``/status`` write it: raw bytes, base64."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def run_secret(key: Ed25519PrivateKey, session: str, run: str) -> bytes:
    """This node's own secret for one run: an HMAC of the run and session, keyed by its private key.

    Keyed by a key that never leaves the node, and domain-separated, so
    nothing anyone else holds or sends -- the scenario, its seed, the run
    id -- lets them derive it.  One per run id and node session, so a run
    signs with keys no earlier run, of this node process or another, used.
    """
    fields = {"purpose": "om-actors/run-secret", "session": session, "run": run}
    return hmac.new(key.private_bytes_raw(), canonical(fields), hashlib.sha256).digest()


def identity_fields(run: str, general: int, identities: Sequence[str | None]) -> dict[str, Any]:
    """What a node signs when it publishes its identities: one per instance, for one run.

    Signed with its key from the cluster file, so every node can check a
    general's identities came from that general, for this run and no other.
    """
    return {"run": run, "general": general, "identities": list(identities)}


def identified(setups: Sequence[Setup], heard: Mapping[int, Sequence[str | None]]) -> tuple[Setup, ...]:
    """Each instance's setup with every general's published identity: what the driver and every node use.

    A general not heard from (its node died before it answered) is ``""``,
    whose signatures never verify.  When nobody published one (an
    algorithm without identities) the setups stay as they are.
    """
    found = []
    for index, setup in enumerate(setups):
        identities = [heard[g][index] if g in heard else None for g in range(setup.generals)]
        if all(identity is None for identity in identities):
            found.append(setup)
        else:
            found.append(attrs.evolve(setup, identities=tuple(i or "" for i in identities)))
    return tuple(found)


def control_fields(
    *, general: int, session: str, counter: int, method: str, path: str, query: str, body: bytes
) -> dict[str, Any]:
    """What the driver signs for one control request.

    The target general and the node's session bind it to one node process,
    the counter to one moment, and the rest to this request alone, so a
    signed request cannot be sent to another node, to the same node after a
    restart, again, or with another body.
    """
    return {
        "general": general,
        "session": session,
        "counter": counter,
        "method": method,
        "path": path,
        "query": query,
        "body": hashlib.sha256(body).hexdigest(),
    }


def control_headers(
    key: Ed25519PrivateKey,
    *,
    general: int,
    session: str,
    counter: int,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
) -> dict[str, str]:
    """The headers that sign one control request with the driver's ``key``."""
    fields = control_fields(
        general=general, session=session, counter=counter, method=method, path=path, query=query, body=body
    )
    return {SESSION_HEADER: session, COUNTER_HEADER: str(counter), SIGNATURE_HEADER: sign(key, fields)}


class Guard(enum.Enum):
    """Whose signature an endpoint needs."""

    DRIVER = "driver"
    """Every control request: refused with 401 unsigned, 403 badly signed."""
    PEER = "peer"
    """``/order``: the sender's signature is in the body."""
    LIVENESS = "liveness"
    """``/status``: unsigned for a liveness check, or signed by the driver for the node's identity."""


@attrs.define
class _Run:
    """One run as this node plays it: its general in every instance, driven a round at a time.

    ``opened`` and ``closed`` are the last round the driver opened and
    closed here.  Peers' batches are taken only for round ``closed + 1``,
    one per peer, and kept only until that round closes, when they are
    handed to the general.
    """

    id: str
    scenario: Scenario
    secret: bytes
    identities: tuple[str | None, ...]
    """This general's own, one per instance, as ``/start`` published them."""
    strategy: Strategy | None
    built: GeneralDriver | None = None
    """The general, once round 1 brought every identity; :attr:`general` before that is a refusal."""
    opened: int = 0
    closed: int = 0
    batches: dict[int, list[list[dict[str, Any]]]] = attrs.Factory(dict)

    @property
    def rounds(self) -> int:
        return self.scenario.rounds

    @property
    def general(self) -> GeneralDriver:
        if self.built is None:
            raise RequestError(409, "round 1 has not opened: the general is not built yet")
        return self.built


class Node:
    """The state and the handlers of one networked general.

    ``allowed`` names the ``module:Class`` strategies this node may run,
    besides the built-in ones; the caller imports them before the node
    serves (see :func:`om_actors.cluster.serve_node`), so no request ever
    makes it import anything.
    """

    def __init__(
        self,
        me: int,
        key: Ed25519PrivateKey,
        peers: Mapping[int, Peer],
        driver: Ed25519PublicKey,
        *,
        allowed: Collection[str] = (),
    ) -> None:
        self.me = me
        self.key = key
        self.peers = peers
        self.driver = driver
        self.allowed = frozenset(allowed)
        self.session = secrets.token_hex(16)
        self.counter = 0
        self.run: _Run | None = None
        self.addresses = {g: peer.address for g, peer in peers.items()}
        self.client = plain_http_client(DELIVERY_TIMEOUT)

    @functools.cached_property
    def log(self) -> Any:
        """The node's own log, a JSON line on stderr per refusal: made at the first, as most refuse none."""
        import structlog

        return structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            processors=[event_first, structlog.processors.JSONRenderer(default=json_fallback)],
            wrapper_class=structlog.BoundLogger,
        ).bind(general=self.me)

    async def __call__(self, scope: Scope, receive: Receive, send: Respond) -> None:
        """The ASGI entry point: route, check signatures, run, and turn refusals into JSON errors."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            await self.client.aclose()
            return
        if scope["type"] != "http":
            return
        try:
            route = _ROUTES.get((scope["method"], scope["path"]))
            if route is None:
                raise RequestError(404, f"no {excerpt(scope['method'])} {excerpt(scope['path'])} here")
            handler, guard = route
            signature = _signature_headers(scope, required=guard is Guard.DRIVER)
            body = await _body(receive) if scope["method"] == "POST" else b""
            if signature is not None:
                self._authenticate(scope, body, *signature)
            status, answer = await handler(self, scope, body, signature is not None)
        except RequestError as refusal:
            # A refused order is a message treated as missing: the node's own log says why.
            self.log.msg("request.refused", method=excerpt(scope["method"]), path=excerpt(scope["path"]),
                         status=refusal.status, error=excerpt(refusal.message))  # fmt: skip
            status, answer = refusal.status, {"error": refusal.message}
        await _respond(send, status, answer)

    def _authenticate(
        self, scope: Scope, body: bytes, session: str, counter_text: str, signature: str
    ) -> None:
        """Refuse (403) a control request that is not the driver's, not for us, or not new."""
        if not counter_text.isdigit() or len(counter_text) > MAX_COUNTER_DIGITS:
            raise RequestError(403, "the counter must be a whole number")
        counter = int(counter_text)
        fields = control_fields(
            general=self.me,
            session=session,
            counter=counter,
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            body=body,
        )
        if not verify(self.driver, signature, fields):
            raise RequestError(403, "bad signature: not signed by this cluster's driver for this general")
        if session != self.session:
            raise RequestError(403, "signed for another session of this node: a replayed request")
        if counter <= self.counter:
            raise RequestError(403, f"replayed request: counter {counter} is not above {self.counter}")
        self.counter = counter

    # /start

    async def start(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        fields = _json_object(body)
        run = _field(fields, "run", str)
        data = _field(fields, "scenario", dict)
        if not 0 < len(run) <= MAX_RUN_ID:
            raise RequestError(422, f"'run' must be 1 to {MAX_RUN_ID} characters")
        self._refuse_strategies_not_allowed(data)
        addresses = self._addresses(fields.get("addresses"))
        if self.run is not None and run == self.run.id:
            raise RequestError(409, "this run has already started")
        try:
            scenario = scenario_from_dict(data, source="/start")
        except OmActorsError as exc:
            raise RequestError(422, f"the scenario does not load: {exc}") from None
        if self.me >= scenario.generals:
            raise RequestError(422, f"general {self.me} is not in this scenario")
        strategy = self._strategy(scenario)
        secret = run_secret(self.key, self.session, run)
        own = tuple(scenario.rules.identity(setup, self.me, secret) for setup in scenario.setups)
        self.run = _Run(run, scenario, secret, own, strategy)  # the last run, if any, goes
        self.addresses = addresses
        signature = sign(self.key, identity_fields(run, self.me, own))
        return 200, {
            "started": run,
            "instances": len(scenario.setups),
            "identities": list(own),
            "signature": signature,
        }

    def _build(self, run: _Run, given: object) -> GeneralDriver:
        """This general in every instance, its cores knowing the identity every general published.

        ``given`` is every general's signed ``/start`` answer, by id, as the
        driver collected them; each is checked against that general's key
        in the cluster file, so nobody can publish an identity for another.
        """
        if not isinstance(given, Mapping):
            raise RequestError(422, "round 1 needs 'identities': each general's signed /start answer, by id")
        heard: dict[int, Sequence[str | None]] = {}
        for name, statement in given.items():
            general = int(name) if isinstance(name, str) and name.isdigit() and len(name) < 10 else None
            if general is None or general not in self.peers:
                named = str(name)[:20]
                raise RequestError(422, f"'identities' names {named!r}, not a general of the cluster")
            heard[general] = self._published(run, general, statement)
        if list(heard.get(self.me, run.identities)) != list(run.identities):
            raise RequestError(422, f"'identities' names another identity for general {self.me}, this one")
        heard[self.me] = run.identities
        setups = identified(run.scenario.setups, heard)
        orders = [instance.order for instance in run.scenario.effective_instances]
        cores: list[Core] = []
        for setup, order, mine in zip(setups, orders, run.identities):
            secret = {} if mine is None else {"secret": run.secret}  # an algorithm without identities
            cores.append(run.scenario.rules.general(setup, self.me, order, **secret))
        driver = GeneralDriver(cores, strategy=run.strategy, seed=run.scenario.seed, tagged=len(setups) > 1)
        driver.cancellation = (trio.Cancelled,)  # a round timeout's, passed on
        return driver

    def _published(self, run: _Run, general: int, statement: object) -> list[str | None]:
        """One general's identities, if its own signature says it published them for this run."""
        listed = statement.get("identities") if isinstance(statement, Mapping) else None
        signature = statement.get("signature") if isinstance(statement, Mapping) else None
        if (
            not isinstance(listed, list)
            or len(listed) != len(run.scenario.setups)
            or not all(i is None or (type(i) is str and len(i) <= MAX_IDENTITY) for i in listed)
        ):
            raise RequestError(
                422,
                f"'identities' for general {general} must hold one identity per instance "
                f"({len(run.scenario.setups)}), each null or at most {MAX_IDENTITY} characters",
            )
        fields = identity_fields(run.id, general, listed)
        if not isinstance(signature, str) or not verify(self.peers[general].public_key, signature, fields):
            raise RequestError(
                403, f"general {general}'s identities are not signed with its key for this run"
            )
        return listed

    def _refuse_strategies_not_allowed(self, data: Mapping[str, Any]) -> None:
        """403 for a ``module:Class`` this node was not started with, before anything is loaded."""
        traitors = data.get("traitors")
        if not isinstance(traitors, Mapping):
            return
        for general, spec in traitors.items():
            name = spec.get("strategy") if isinstance(spec, Mapping) else spec
            if isinstance(name, str) and ":" in name and name not in self.allowed:
                raise RequestError(
                    403,
                    f"traitor {general}: strategy {name[:200]!r} is not allowed on this node: "
                    f"start the node with --allow-strategy {name[:200]} to allow it",
                )

    def _addresses(self, given: object) -> dict[int, str]:
        """Where each peer listens in this run: the driver's word, else the cluster file's."""
        if given is None:
            return {g: peer.address for g, peer in self.peers.items()}
        if not isinstance(given, Mapping) or len(given) != len(self.peers):
            raise RequestError(422, "'addresses' must map every general of the cluster file to host:port")
        addresses = {}
        for general, address in given.items():
            if not (isinstance(general, str) and general.isdigit() and int(general) in self.peers):
                raise RequestError(
                    422, f"'addresses' names {str(general)[:20]!r}, not a general of the cluster"
                )
            if not isinstance(address, str) or ":" not in address or len(address) > MAX_ADDRESS:
                raise RequestError(422, f"'addresses' for general {general} must be host:port")
            addresses[int(general)] = address
        return addresses

    def _strategy(self, scenario: Scenario) -> Strategy | None:
        """This general's own strategy, if it is a traitor; only built-in or allowed names reach here."""
        try:
            return scenario.strategy_for(self.me)
        except OmActorsError as exc:  # arguments the class does not take, or a constructor that raised
            raise RequestError(422, str(exc)) from None

    # /round

    async def run_round(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        fields = _json_object(body)
        run = self._current(fields)
        round = _field(fields, "round", int)
        _check_round(run, round)
        if run.opened != run.closed or round != run.closed + 1:
            raise RequestError(409, f"round {round} is out of turn: {_progress(run)}")
        if round == 1:
            run.built = self._build(run, fields.get("identities"))
        run.opened = round
        sends: list[Send] = []
        failed: list[StrategyFailed] = []
        items = run.general.round(round)
        # The round timeout cuts off a strategy that hangs; delivery has its own, generous bound.
        with trio.move_on_after(run.scenario.round_timeout) as choosing:
            for item in items:
                try:
                    outcome = await run.general.ask(item) if isinstance(item, Ask) else item
                except StrategyError as exc:  # one that would stop the run: the driver says why
                    raise RequestError(500, str(exc)) from None
                if isinstance(outcome, Send):
                    sends.append(outcome)
                elif isinstance(outcome, StrategyFailed):
                    failed.append(outcome)
        batches = self._batches(run, sends)
        acknowledged: set[int] = set()
        with trio.move_on_after(DELIVERY_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for receiver, messages in batches.items():
                    nursery.start_soon(self._post, run, round, receiver, messages, acknowledged)
        sent = [
            {"receiver": receiver, "delivered": receiver in acknowledged, "messages": messages}
            for receiver, messages in sorted(batches.items())
        ]
        failures = [_failure(failure) for failure in failed]
        return 200, {"sent": sent, "failed": failures, "timed_out": choosing.cancelled_caught}

    @staticmethod
    def _batches(run: _Run, sends: list[Send]) -> dict[int, list[list[dict[str, Any]]]]:
        """This round's messages by receiver, as the wire carries them: each instance's payloads' fields.

        A traitor's garbage becomes what JSON can hold, as the log writes it.
        """
        rules, count = run.scenario.rules, len(run.scenario.setups)
        batches: dict[int, list[list[dict[str, Any]]]] = {}
        for send in sends:
            batch = batches.setdefault(send.receiver, [[] for _ in range(count)])
            batch[send.instance].append(rules.payload_fields(send.payload))
        return {receiver: _plain(batch) for receiver, batch in batches.items()}

    async def _post(
        self, run: _Run, round: int, receiver: int, messages: list[list[dict[str, Any]]], done: set[int]
    ) -> None:
        """Send one batch and wait for the receiver to acknowledge it; ``done`` gets it if so."""
        import httpx  # imported with the client already; see main

        fields = {
            "run": run.id,
            "round": round,
            "sender": self.me,
            "receiver": receiver,
            "messages": messages,
        }
        body = json.dumps({**fields, "signature": sign(self.key, fields)}).encode()
        headers = {"content-type": "application/json"}
        try:
            url = f"http://{self.addresses[receiver]}/order"
            response = await self.client.post(url, content=body, headers=headers)
        except (httpx.HTTPError, KeyError):
            return
        if response.status_code == 200:
            done.add(receiver)

    # /order

    async def order(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        fields = _json_object(body)
        signature = _field(fields, "signature", str)
        sender = _field(fields, "sender", int)
        peer = self.peers.get(sender)
        if peer is None:
            raise RequestError(403, f"unknown sender {sender}")
        signed_fields = {key: fields.get(key) for key in ("run", "round", "sender", "receiver", "messages")}
        if not verify(peer.public_key, signature, signed_fields):
            raise RequestError(403, f"bad signature for sender {sender}")
        if fields.get("receiver") != self.me:
            raise RequestError(403, f"a batch for general {fields.get('receiver')!r}, not for {self.me}")
        run = self.run
        if run is None or fields.get("run") != run.id:
            raise RequestError(409, "a batch for another run")
        round = _field(fields, "round", int)
        messages = _field(fields, "messages", list)
        if round != run.closed + 1:
            raise RequestError(409, f"round {round} is not open here: {_progress(run)}")
        if sender in run.batches:
            raise RequestError(409, f"replayed message: round {round} from {sender} was already delivered")
        self._check_batch(run, sender, round, messages)
        run.batches[sender] = messages
        return 200, {"taken": sum(len(listed) for listed in messages)}

    def _check_batch(self, run: _Run, sender: int, round: int, messages: list[Any]) -> None:
        """Refuse (422) a batch not shaped as one list of payloads per instance, or bigger than it can be.

        Checked before the batch is kept, so what a peer cannot send costs
        this node nothing past reading it.
        """
        rules, setups = run.scenario.rules, run.scenario.setups
        if len(messages) != len(setups) or not all(type(listed) is list for listed in messages):
            raise RequestError(422, f"'messages' must hold one list of messages per instance ({len(setups)})")
        for index, (setup, listed) in enumerate(zip(setups, messages)):
            most = rules.most_messages(setup, sender, self.me, round)
            if len(listed) > most:
                where = f" of instance {index}" if len(setups) > 1 else ""
                many = f"{len(listed)} message{'' if len(listed) == 1 else 's'}"
                said = f"{many} from {sender} in round {round}{where}"
                raise RequestError(422, f"{said}, more than the {most} it can send")
        names = [field.name for field in attrs.fields(rules.payload)]
        wanted = set(names)
        for listed in messages:
            if not all(type(message) is dict and message.keys() == wanted for message in listed):
                raise RequestError(422, f"a message must be an object with the fields {', '.join(names)}")
        if _nests_deeper(messages, MAX_NESTING + 2):  # + the batch's two lists
            raise RequestError(422, f"a message nests deeper than {MAX_NESTING} levels")

    # /close

    async def close(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        """Close the open round: hand its batches to the general; what arrived, what was refused, and more.

        The driver asks for the batches of senders that died mid-round: what
        they sent before dying is known only to their receivers.
        """
        fields = _json_object(body)
        run = self._current(fields)
        round = _field(fields, "round", int)
        _check_round(run, round)
        if run.opened != round or run.closed != round - 1:
            raise RequestError(409, f"round {round} is not open here: {_progress(run)}")
        wanted = _field(fields, "batches_from", list)
        received, rejected = _hand_over(run, round)
        answer = {
            "received": received,
            "senders": sorted(run.batches),
            "rejected": rejected,
            "batches": {str(s): run.batches[s] for s in wanted if type(s) is int and s in run.batches},
        }
        run.closed, run.batches = round, {}
        return 200, answer

    # /decide and /status

    async def decide(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        run = self._current(_json_object(body))
        if run.closed < run.rounds:
            raise RequestError(409, "no decision yet: the rounds are still running")
        stats: Counter[str] = Counter()
        for core in run.general.cores:
            stats.update(core.stats)
        decisions = list(run.general.decide())
        return 200, {"general": self.me, "decisions": decisions, "stats": dict(sorted(stats.items()))}

    async def status(self, scope: Scope, body: bytes, signed: bool) -> Answer:
        """Unsigned: liveness, and the session and last counter to sign above.  Signed: who this node is."""
        if not signed:
            return 200, {"general": self.me, "session": self.session, "counter": self.counter}
        query = scope["query_string"].decode("latin-1")
        nonce = query.removeprefix("nonce=")
        if not query.startswith("nonce=") or not 0 < len(nonce) <= MAX_NONCE:
            raise RequestError(422, f"a signed /status needs ?nonce= with 1 to {MAX_NONCE} characters")
        run = self.run
        answer = {
            "general": self.me,
            "public_key": public_text(self.key.public_key()),
            "session": self.session,
            "nonce": nonce,
            "run": None if run is None else {"id": run.id, "opened": run.opened, "closed": run.closed},
        }
        return 200, {**answer, "signature": sign(self.key, answer)}

    def _current(self, fields: Mapping[str, Any]) -> _Run:
        """The run a control request is about: the one started last, which it must name."""
        run = _field(fields, "run", str)
        if self.run is None or run != self.run.id:
            raise RequestError(404, "no such run here: /start it first")
        return self.run


def _hand_over(run: _Run, round: int) -> tuple[int, list[dict[str, Any]]]:
    """Give the round's batches to the general, sender by sender: how many arrived, and the refusals.

    Sorted by sender, so what the cores end up holding never depends on the
    order the network brought the batches in.
    """
    rules, general = run.scenario.rules, run.general
    before = general.received
    rejected = []
    for sender in sorted(run.batches):
        for instance, messages in enumerate(run.batches[sender]):
            for message in messages:
                refused = general.deliver(instance, sender, round, rules.payload_from_fields(message))
                if refused is not None:
                    reason = refused.reason.value
                    rejected.append(
                        {"instance": instance, "sender": sender, "message": message, "reason": reason}
                    )
    return general.received - before, rejected


def _failure(failed: StrategyFailed) -> dict[str, Any]:
    """A strategy's failure as the ``/round`` answer carries it."""
    path = list(failed.path)
    return {"instance": failed.instance, "path": path, "receiver": failed.receiver, "error": failed.error}


def _nests_deeper(value: object, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` deep in parsed JSON, found without recursion.

    A level at a time, keeping only the next level's lists and objects: a
    batch's thousands of numbers and strings cost a type check each.
    """
    level: list[Any] = [value] if type(value) is list or type(value) is dict else []
    for _ in range(limit):
        below = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                if type(child) is list or type(child) is dict:
                    below.append(child)
        if not below:
            return False
        level = below
    return bool(level)


Handler = Callable[[Node, Scope, bytes, bool], Awaitable[Answer]]

_ROUTES: dict[tuple[str, str], tuple[Handler, Guard]] = {
    ("POST", "/start"): (Node.start, Guard.DRIVER),
    ("POST", "/round"): (Node.run_round, Guard.DRIVER),
    ("POST", "/close"): (Node.close, Guard.DRIVER),
    ("POST", "/decide"): (Node.decide, Guard.DRIVER),
    ("POST", "/order"): (Node.order, Guard.PEER),
    ("GET", "/status"): (Node.status, Guard.LIVENESS),
}


def excerpt(text: str, limit: int = MAX_LOGGED) -> str:
    """``text`` cut to its first ``limit`` characters, saying how long it was: for what outsiders send."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def _signature_headers(scope: Scope, *, required: bool) -> tuple[str, str, str] | None:
    """The driver's session, counter and signature headers; 401 if ``required`` and missing.

    Checked before the body is read, so an unsigned request costs the node
    nothing whatever it carries.
    """
    wanted = (SESSION_HEADER.encode(), COUNTER_HEADER.encode(), SIGNATURE_HEADER.encode())
    found = {name: value for name, value in scope["headers"] if name in wanted}
    if not found and not required:
        return None
    if len(found) < len(wanted):
        raise RequestError(
            401,
            "unsigned request: control requests need the driver's signature "
            f"(headers {', '.join(h.decode() for h in wanted)})",
        )
    session, counter, signature = (found[name].decode("latin-1") for name in wanted)
    return session, counter, signature


def _check_round(run: _Run, round: int) -> None:
    if not 1 <= round <= run.rounds:
        raise RequestError(422, f"round {round} is not a round of this run")


def _progress(run: _Run) -> str:
    if run.opened > run.closed:
        return f"round {run.opened} is open"
    if run.closed == run.rounds:
        return "every round is closed"
    return f"the next round is {run.closed + 1}"


async def _body(receive: Receive) -> bytes:
    """The request body, refused with 413 past :data:`MAX_BODY`.

    Past the limit nothing more is kept, but the rest is still read, up to
    a few times the limit, so the client sees a clean answer rather than a
    connection torn down mid-request.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body") or size > DRAIN_LIMIT:
            break
    if size > MAX_BODY:
        raise RequestError(413, f"body over the limit of {MAX_BODY} bytes")
    return b"".join(chunks)


def _plain(value: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """Payloads' fields as JSON carries them: a traitor's garbage becomes its repr, as in the log."""
    plain: list[list[dict[str, Any]]] = json.loads(json.dumps(value, default=json_fallback))
    return plain


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body)
    except (ValueError, RecursionError):
        raise RequestError(400, "the body is not JSON, or nests too deep") from None
    if not isinstance(fields, dict):
        raise RequestError(422, "the body must be a JSON object")
    return fields


def _field(fields: Mapping[str, Any], name: str, kind: type) -> Any:
    value = fields.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RequestError(
            422, f"{name!r} must be {'a number' if kind in (int, float) else 'a ' + kind.__name__}"
        )
    return value


async def _respond(send: Respond, status: int, answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Respond) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


FORK_NODES = "--fork-nodes"
"""``python -m om_actors.node --fork-nodes 0,1,...``: what a driver starts, which forks its nodes.

Not an option of ``om-actors node``: the driver's own way to start its
nodes (:func:`om_actors.cluster.fork_nodes`), its first argument.
"""


NODE_SUMMARY = "Serve one general over HTTP at its address in the cluster file, until stopped."
"""The first line of ``om-actors node --help``, which this module's own ``--help`` repeats."""


class _Arguments(argparse.ArgumentParser):
    """``om-actors node``'s options, its usage errors one line and exit status 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"error: {message}\n")


def node_arguments() -> argparse.ArgumentParser:
    """``om-actors node``'s options, as argparse reads them: the CLI's click options, held equal by a test.

    Repeated rather than shared: the table would have to live where both
    can import it cheaply, and a node must not import the CLI, nor the CLI
    this module, to start fast.
    """
    parser = _Arguments(prog="python -m om_actors.node", description=NODE_SUMMARY)
    parser.add_argument("--id", dest="me", type=int, required=True, metavar="ID", help="This general's id.")
    parser.add_argument(
        "--cluster",
        type=Path,
        required=True,
        metavar="FILE",
        help="The cluster file: every general's address and public key.",
    )
    parser.add_argument(
        "--key",
        type=Path,
        required=True,
        metavar="FILE",
        help="This general's Ed25519 private key, PEM; - reads it from standard input.",
    )
    parser.add_argument(
        "--listen",
        dest="listen_on",
        metavar="HOST:PORT",
        help="Listen here, not at the cluster file's address; port 0 picks a free one.",
    )
    parser.add_argument(
        "--allow-strategy",
        dest="allowed",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="A traitor strategy of your own this node may run; may be repeated.",
    )
    parser.add_argument(
        "--strategy-folder",
        type=Path,
        metavar="DIRECTORY",
        help="Also look for the allowed strategies' modules in this folder.",
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="Stop when standard input closes: no node outlives om-actors cluster.",
    )
    return parser


def _fork_arguments() -> argparse.ArgumentParser:
    """``--fork-nodes``' options: the generals, and what every node is started with."""
    parser = _Arguments(prog=f"python -m om_actors.node {FORK_NODES}", description="A driver's nodes.")
    parser.add_argument("generals", type=_generals)
    parser.add_argument("--cluster", type=Path, required=True)
    parser.add_argument("--logs", type=Path, required=True)
    parser.add_argument("--allow-strategy", dest="allowed", action="append", default=[])
    parser.add_argument("--strategy-folder", type=Path)
    return parser


def _generals(text: str) -> list[int]:
    try:
        return [int(general) for general in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected general ids separated by commas") from None


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m om_actors.node``: ``om-actors node`` without the CLI around it.

    The same options, the same serving (:func:`om_actors.cluster.serve_node`)
    and the same one-line errors with exit status 2: it imports what serving
    needs and nothing else.  With :data:`FORK_NODES` first, it is what
    ``om-actors cluster`` starts, which forks its nodes.  httpx's package
    imports its own command line, and with it click, rich and pygments,
    when it can; a node never uses it, so it is marked missing here, before
    anything imports httpx.
    """
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == [FORK_NODES]:
        forking = _fork_arguments().parse_args(arguments[1:])
        status = served(functools.partial(_fork, forking))
    else:
        options = node_arguments().parse_args(arguments)
        status = served(lambda: trio.run(functools.partial(_serve, options)))
    if status:
        sys.exit(status)


def served(serve: Callable[[], int | None]) -> int:
    """``serve()``'s exit status (0 for none), or 2 with its error on standard error, one line.

    What a node does and what stops it, as ``om-actors node`` reports it,
    without the CLI: Ctrl-C is no error, a package that is not installed is
    named with what to install.
    """
    try:
        return serve() or 0
    except KeyboardInterrupt:
        return 0
    except ModuleNotFoundError as exc:
        from .cli import INSTALL  # only to say what to install

        missing = (exc.name or "").partition(".")[0]
        if missing not in INSTALL:
            raise
        needs = f"om-actors node needs {missing}, which is not installed"
        print(f"error: {needs}: pip install {INSTALL[missing]}", file=sys.stderr)
        return 2
    except (OmActorsError, OSError) as exc:
        from .terminal import printable

        text = f"error: {exc}" if isinstance(exc, OSError) else str(exc)
        print("\n".join(map(printable, text.split("\n"))), file=sys.stderr)
        return 2


def _fork(options: argparse.Namespace) -> int:
    from .cluster import fork_nodes

    return fork_nodes(
        options.generals,
        options.cluster,
        options.logs,
        allowed=options.allowed,
        strategy_folder=options.strategy_folder,
    )


async def _serve(options: argparse.Namespace) -> None:
    from .cluster import serve_node

    await serve_node(
        options.me,
        options.cluster,
        options.key,
        listen_on=options.listen_on,
        allowed=options.allowed,
        strategy_folder=options.strategy_folder,
        exit_with_stdin=options.exit_with_stdin,
    )


if __name__ == "__main__":
    main()
