"""One general as its own HTTP server: the protocol core behind a plain ASGI app.

A node keeps one :class:`~om_actors.protocol.General` per consensus instance,
exactly as the in-memory actor does, and speaks JSON over HTTP:

- ``POST /start``: begin an instance (scenario, instance id, round timeout);
- ``POST /round``: send this round's messages to every peer, then answer;
- ``POST /order``: a peer's signed messages for one round;
- ``GET /decide?instance=I``: the decision, or 409 while rounds are running;
- ``GET /status``: liveness and progress.

Every ``/order`` body is signed with its sender's Ed25519 key, and the node
checks the signature against the cluster file before reading a single
path: a traitor node can lie about values but cannot speak for anyone else
(the paper's assumption A2).  A path whose last hop is not the signer is a
forgery, refused by the same path rules as in memory.  Anything malformed
gets a 4xx with a JSON error, and the node keeps serving.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx
import structlog
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import OmActorsError
from .log import event_first, json_fallback
from .protocol import General
from .scenario import Scenario, scenario_from_dict
from .strategies import Strategy, StrategyRaised, consult, message_rng

MAX_BODY = 4 * 2**20
"""Largest request body a node reads, in bytes; anything bigger gets 413."""
DRAIN_LIMIT = 4 * MAX_BODY

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


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
    """The bytes a signature covers: the order's fields, in one fixed JSON form."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(key: Ed25519PrivateKey, fields: Mapping[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical(fields))).decode()


@attrs.define
class _Instance:
    """One consensus instance as this node runs it."""

    scenario: Scenario
    index: int
    state: General
    strategy: Strategy | None
    round_timeout: float
    sent: list[dict[str, Any]] = attrs.Factory(list)
    rejected: list[dict[str, Any]] = attrs.Factory(list)
    failed: list[dict[str, Any]] = attrs.Factory(list)
    received: int = 0
    seen: set[tuple[int, int]] = attrs.Factory(set)
    finished: bool = False


class Node:
    """The state and the handlers of one networked general."""

    def __init__(self, me: int, key: Ed25519PrivateKey, peers: Mapping[int, Peer]) -> None:
        self.me = me
        self.key = key
        self.peers = peers
        self.instances: dict[int, _Instance] = {}
        self.client = httpx.AsyncClient()
        self.log = structlog.wrap_logger(
            structlog.PrintLogger(sys.stderr),
            processors=[event_first, structlog.processors.JSONRenderer(default=json_fallback)],
            wrapper_class=structlog.BoundLogger,
        ).bind(general=me)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: route, run, and turn refusals into JSON errors."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            await self.client.aclose()
            return
        if scope["type"] != "http":
            return
        try:
            route = _ROUTES.get((scope["method"], scope["path"]))
            if route is None:
                raise RequestError(404, f"no {scope['method']} {scope['path']} here")
            body = await _body(receive) if scope["method"] == "POST" else b""
            status, answer = await route(self, scope, body)
        except RequestError as refusal:
            # A refused order is a message treated as missing: the node's own log says why.
            self.log.msg("request.refused", method=scope["method"], path=scope["path"], status=refusal.status,
                         error=refusal.message)  # fmt: skip
            status, answer = refusal.status, {"error": refusal.message}
        await _respond(send, status, answer)

    # /start

    async def start(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        fields = _json_object(body)
        index = _field(fields, "instance", int)
        timeout = _field(fields, "round_timeout", float)
        if index in self.instances:
            raise RequestError(409, f"instance {index} has already started")
        try:
            scenario = scenario_from_dict(_field(fields, "scenario", dict), source="/start")
        except OmActorsError as exc:
            raise RequestError(422, f"the scenario does not load: {exc}") from None
        if not 0 <= index < len(scenario.effective_instances) or self.me >= scenario.generals:
            raise RequestError(422, f"instance {index} or general {self.me} is not in this scenario")
        command = scenario.effective_instances[index]
        state = General(scenario.setup_for(command), self.me, command.order)
        strategy = scenario.strategies().get(self.me)
        self.instances[index] = _Instance(scenario, index, state, strategy, timeout)
        return 200, {"started": index}

    # /round

    async def run_round(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        fields = _json_object(body)
        instance = self._instance(_field(fields, "instance", int))
        round = _field(fields, "round", int)
        if not 1 <= round <= instance.state.setup.rounds:
            raise RequestError(422, f"round {round} is not a round of this instance")
        orders: dict[int, list[dict[str, Any]]] = {}
        unreachable: list[int] = []
        # One deadline for choosing and for sending: a strategy that hangs is cut off like a slow peer.
        with trio.move_on_after(instance.round_timeout) as deadline:
            await self._outgoing(instance, round, orders)
            async with trio.open_nursery() as nursery:
                for receiver, messages in orders.items():
                    nursery.start_soon(self._deliver, instance, round, receiver, messages, unreachable)
        if round == instance.state.setup.rounds:
            instance.finished = True
        sent = sum(len(m) for m in orders.values())
        return 200, {"sent": sent, "unreachable": sorted(unreachable), "timed_out": deadline.cancelled_caught}

    async def _outgoing(
        self, instance: _Instance, round: int, orders: dict[int, list[dict[str, Any]]]
    ) -> None:
        """This round's messages by receiver, each a traitor's choice where it is one."""
        for outgoing in instance.state.outbox(round):
            path, value = outgoing.path, outgoing.value
            if instance.strategy is not None:
                tag = instance.index if len(instance.scenario.effective_instances) > 1 else None
                rng = message_rng(instance.scenario.seed, self.me, path, outgoing.receiver, tag)
                try:
                    told = await consult(instance.strategy, round, path, outgoing.receiver, value, rng)
                except StrategyRaised as raised:
                    failure = {
                        "round": round,
                        "path": list(path),
                        "receiver": outgoing.receiver,
                        "error": str(raised),
                    }
                    instance.failed.append(failure)
                    continue
                if told is None:
                    continue
                message = {"path": _plain(list(told[0])), "value": _plain(told[1])}
            else:
                message = {"path": list(path), "value": value}
            orders.setdefault(outgoing.receiver, []).append(message)
            instance.sent.append({"round": round, "receiver": outgoing.receiver, **message})

    async def _deliver(
        self, instance: _Instance, round: int, receiver: int, messages: list[dict[str, Any]], lost: list[int]
    ) -> None:
        fields = {"instance": instance.index, "round": round, "sender": self.me, "messages": messages}
        body = json.dumps({**fields, "signature": sign(self.key, fields)}).encode()
        headers = {"content-type": "application/json"}
        try:
            url = f"http://{self.peers[receiver].address}/order"
            response = await self.client.post(url, content=body, headers=headers)
            response.raise_for_status()
        except (httpx.HTTPError, KeyError):
            lost.append(receiver)

    # /order

    async def order(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        fields = _json_object(body)
        signature = _field(fields, "signature", str)
        signed = {key: fields.get(key) for key in ("instance", "round", "sender", "messages")}
        sender = _field(fields, "sender", int)
        peer = self.peers.get(sender)
        if peer is None:
            raise RequestError(403, f"unknown sender {sender}")
        try:
            peer.public_key.verify(base64.b64decode(signature, validate=True), canonical(signed))
        except (InvalidSignature, ValueError):
            raise RequestError(403, f"bad signature for sender {sender}") from None
        instance = self._instance(_field(fields, "instance", int))
        round = _field(fields, "round", int)
        messages = _field(fields, "messages", list)
        if (round, sender) in instance.seen:
            raise RequestError(409, f"replayed message: round {round} from {sender} was already delivered")
        instance.seen.add((round, sender))
        accepted = 0
        for message in messages:
            path = message.get("path") if isinstance(message, dict) else None
            value = message.get("value") if isinstance(message, dict) else None
            path = tuple(path) if isinstance(path, list) else path
            instance.received += 1
            rejection = instance.state.receive(sender=sender, round=round, path=path, value=value)
            if rejection is None:
                accepted += 1
            else:
                instance.rejected.append(
                    {
                        "round": round,
                        "sender": sender,
                        "path": path,
                        "value": value,
                        "reason": rejection.reason,
                    }
                )
        return 200, {"accepted": accepted, "rejected": len(messages) - accepted}

    # /decide and /status

    async def decide(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
        try:
            index = int(query.get("instance", "0"))
        except ValueError:
            raise RequestError(400, "instance must be a number") from None
        instance = self._instance(index)
        if not instance.finished:
            raise RequestError(409, "no decision yet: the rounds are still running")
        return 200, {
            "general": self.me,
            "decision": instance.state.decide(),
            "sent": instance.sent,
            "rejected": instance.rejected,
            "failed": instance.failed,
            "received": instance.received,
        }

    async def status(self, scope: Scope, body: bytes) -> tuple[int, dict[str, Any]]:
        return 200, {
            "general": self.me,
            "instances": {str(i): {"finished": x.finished} for i, x in self.instances.items()},
        }

    def _instance(self, index: int) -> _Instance:
        instance = self.instances.get(index)
        if instance is None:
            raise RequestError(404, f"unknown instance {index}")
        return instance


_ROUTES: dict[tuple[str, str], Callable[[Node, Scope, bytes], Awaitable[tuple[int, dict[str, Any]]]]] = {
    ("POST", "/start"): Node.start,
    ("POST", "/round"): Node.run_round,
    ("POST", "/order"): Node.order,
    ("GET", "/decide"): Node.decide,
    ("GET", "/status"): Node.status,
}


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


def _plain(value: object) -> object:
    """A traitor's value as JSON can carry it: garbage becomes its repr, as in the log."""
    return json.loads(json.dumps(value, default=json_fallback))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body)
    except ValueError:
        raise RequestError(400, "the body is not JSON") from None
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


async def _respond(send: Send, status: int, answer: dict[str, Any]) -> None:
    body = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
