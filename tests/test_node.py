"""One networked general, in process: its endpoints, signatures and refusals.

Rules for this file:
- the node's ASGI app is called through httpx's ASGI transport: no sockets,
  except a node's own deliveries, which go to a closed port on 127.0.0.1;
- every test is bounded with ``trio.fail_after``;
- every refusal is checked for its status and its JSON error, and the node
  is checked to go on serving after it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import attrs
import click
import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from om_actors import Scenario, load_scenario
from om_actors.algorithm import Setup
from om_actors.cli import node_command
from om_actors.node import (
    MAX_BODY,
    NODE_SUMMARY,
    Node,
    Peer,
    control_headers,
    identified,
    identity_fields,
    node_arguments,
    public_text,
    run_secret,
    sign,
    verify,
)
from om_actors.scenario import scenario_from_dict
from om_actors.signed import Signed, keyring, secret_key, signed_bytes

KEYS = {g: Ed25519PrivateKey.generate() for g in range(4)}
DRIVER = Ed25519PrivateKey.generate()
CLOSED_PORT = "127.0.0.1:1"
"""Where every peer "listens": nothing does, so a node's deliveries fail at once."""
PEERS = {g: Peer(g, CLOSED_PORT, key.public_key()) for g, key in KEYS.items()}
SCENARIO = load_scenario("generals: 4\nm: 1\ntraitors: {3: flip}\n").to_dict()
RUN = "run-1"
SECRETS = {g: bytes([g + 1]) * 32 for g in KEYS}
"""The secrets the test's stand-ins for the other generals publish their identities from."""


def statement(scenario: Scenario, general: int, run: str = RUN) -> dict[str, Any]:
    """A stand-in general's ``/start`` answer, as the driver hands it on: its identities, signed."""
    identities = [scenario.rules.identity(setup, general, SECRETS[general]) for setup in scenario.setups]
    return {
        "identities": identities,
        "signature": sign(KEYS[general], identity_fields(run, general, identities)),
    }


def published(scenario: Scenario, me: int, answer: dict[str, Any], run: str = RUN) -> dict[str, Any]:
    """Round 1's ``identities``: the node's own ``/start`` answer, and the stand-ins' for the others."""
    found = {str(g): statement(scenario, g, run) for g in range(scenario.generals) if g != me}
    return found | {str(me): {"identities": answer["identities"], "signature": answer["signature"]}}


def setups_of(scenario: Scenario, identities: dict[str, Any]) -> tuple[Setup, ...]:
    """Each instance's setup as the node's cores get it: with every general's published identity."""
    return identified(scenario.setups, {int(g): given["identities"] for g, given in identities.items()})


@contextmanager
def bounded(seconds: float = 10) -> Iterator[None]:
    with trio.fail_after(seconds):
        yield


class Driver:
    """Signs control requests to one in-process node, as the real driver does."""

    def __init__(self, client: httpx.AsyncClient, node: Node, key: Ed25519PrivateKey = DRIVER) -> None:
        self.client = client
        self.node = node
        self.key = key
        self.counter = 0
        self.identities: dict[str, Any] = {}
        """What round 1 hands the node: every general's published identities, as the real driver does."""

    def headers(
        self, method: str, path: str, body: bytes = b"", query: str = "", **overrides: Any
    ) -> dict[str, str]:
        self.counter += 1
        fields: dict[str, Any] = {
            "general": self.node.me,
            "session": self.node.session,
            "counter": self.counter,
            "method": method,
            "path": path,
            "query": query,
            "body": body,
        } | overrides
        return control_headers(self.key, **fields)

    async def post(self, path: str, fields: dict[str, Any], **overrides: Any) -> httpx.Response:
        body = json.dumps(fields).encode()
        return await self.client.post(
            path, content=body, headers=self.headers("POST", path, body, **overrides)
        )

    async def start(self, scenario: dict[str, Any] = SCENARIO, run: str = RUN) -> httpx.Response:
        response = await self.post("/start", {"run": run, "scenario": scenario})
        if response.status_code == 200:
            loaded = scenario_from_dict(scenario)
            self.identities = published(loaded, self.node.me, response.json(), run)
        return response

    async def round(self, round: int, run: str = RUN) -> httpx.Response:
        fields: dict[str, Any] = {"run": run, "round": round}
        if round == 1:
            fields["identities"] = self.identities
        return await self.post("/round", fields)

    async def close(self, round: int, batches_from: list[int] | None = None) -> httpx.Response:
        return await self.post("/close", {"run": RUN, "round": round, "batches_from": batches_from or []})

    async def decide(self) -> httpx.Response:
        return await self.post("/decide", {"run": RUN})


@asynccontextmanager
async def driving(me: int = 1, **options: Any) -> AsyncIterator[Driver]:
    node = Node(me, KEYS[me], PEERS, DRIVER.public_key(), **options)
    transport = httpx.ASGITransport(app=node)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield Driver(client, node)


def order(
    sender: int,
    messages: list[Any],
    *,
    round: int = 2,
    key: int | None = None,
    receiver: int = 1,
    run: str = RUN,
    batch: list[Any] | None = None,
) -> dict[str, Any]:
    """A signed batch: ``messages`` for the one instance, or ``batch`` exactly as given."""
    fields = {
        "run": run,
        "round": round,
        "sender": sender,
        "receiver": receiver,
        "messages": [messages] if batch is None else batch,
    }
    return {**fields, "signature": sign(KEYS[sender if key is None else key], fields)}


async def opened(driver: Driver, rounds: int) -> None:
    """Start the run and step it until round ``rounds`` is open."""
    assert (await driver.start()).status_code == 200
    for round in range(1, rounds + 1):
        if round > 1:
            assert (await driver.close(round - 1)).status_code == 200
        assert (await driver.round(round)).status_code == 200


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


async def test_unsigned_status_is_liveness_and_a_signed_one_proves_who_answers() -> None:
    with bounded():
        async with driving() as driver:
            node = driver.node
            liveness = {"general": 1, "session": node.session, "counter": 0}
            assert (await driver.client.get("/status")).json() == liveness
            query = "nonce=abc123"
            signed = await driver.client.get(
                f"/status?{query}", headers=driver.headers("GET", "/status", query=query)
            )
            identity = signed.json()
            signature = identity.pop("signature")
            assert identity["general"] == 1
            assert identity["nonce"] == "abc123"
            assert identity["public_key"] == public_text(KEYS[1].public_key())
            assert verify(KEYS[1].public_key(), signature, identity)


async def test_an_outsider_cannot_start_a_run_first_and_the_driver_still_can() -> None:
    outsider = Ed25519PrivateKey.generate()
    with bounded():
        async with driving() as driver:
            unsigned = await driver.client.post("/start", json={"run": RUN, "scenario": SCENARIO})
            assert unsigned.status_code == 401
            assert "unsigned request" in unsigned.json()["error"]
            foreign = Driver(driver.client, driver.node, outsider)
            assert error(await foreign.start()) == (
                403,
                "bad signature: not signed by this cluster's driver for this general",
            )
            assert driver.node.run is None
            assert (await driver.start()).json()["started"] == RUN
            assert error(await driver.start()) == (409, "this run has already started")


async def test_a_replayed_stale_or_misdirected_control_request_is_403() -> None:
    with bounded():
        async with driving() as driver:
            body = json.dumps({"run": RUN, "scenario": SCENARIO}).encode()
            headers = driver.headers("POST", "/start", body)
            assert (await driver.client.post("/start", content=body, headers=headers)).status_code == 200
            replayed = await driver.client.post("/start", content=body, headers=headers)
            assert error(replayed) == (
                403,
                f"replayed request: counter {driver.counter} is not above {driver.counter}",
            )
            for overrides in ({"session": "0" * 32}, {"general": 2}):
                other = await driver.post("/round", {"run": RUN, "round": 1}, **overrides)
                assert other.status_code == 403
            stale = await driver.post("/round", {"run": RUN, "round": 1}, counter=1)
            assert error(stale)[0] == 403
            # The same body under another path or query is not what was signed.
            moved = await driver.client.post(
                "/round", content=body, headers=driver.headers("POST", "/start", body)
            )
            assert error(moved)[0] == 403
            assert driver.node.run is not None
            assert driver.node.run.opened == 0


async def test_an_unsigned_request_is_refused_before_its_body_is_read() -> None:
    with bounded():
        async with driving() as driver:
            huge = await driver.client.post("/start", content=b"x" * (MAX_BODY + 1))
            assert huge.status_code == 401


@pytest.mark.parametrize(("generals", "m"), [(40, 12), (10**35, 1), (1_000_000, 1)])
async def test_a_huge_start_is_refused_without_allocating(generals: int, m: int) -> None:
    huge = {**SCENARIO, "generals": generals, "m": m, "traitors": {}}
    with bounded(5):
        async with driving() as driver:
            status, text = error(await driver.start(huge))
            assert status == 422
            assert "over the limit of" in text
            assert "OM_ACTORS_MAX_MESSAGES" in text
            assert driver.node.run is None


async def test_rounds_open_only_in_turn_so_no_one_relays_twice() -> None:
    with bounded():
        async with driving() as driver:
            assert (await driver.start()).status_code == 200
            early = await driver.round(2)
            assert error(early) == (409, "round 2 is out of turn: the next round is 1")
            assert (await driver.round(1)).status_code == 200
            again = await driver.round(1)
            assert error(again) == (409, "round 1 is out of turn: round 1 is open")
            assert (await driver.close(1)).status_code == 200
            assert (await driver.round(2)).status_code == 200
            twice = await driver.round(2)
            assert error(twice) == (409, "round 2 is out of turn: round 2 is open")
            beyond = await driver.round(3)
            assert error(beyond) == (422, "round 3 is not a round of this run")


async def test_a_batch_no_receiver_acknowledged_is_reported_undelivered() -> None:
    with bounded():
        async with driving() as driver:
            await opened(driver, 1)
            await driver.client.post("/order", json=order(0, [{"path": [0], "value": "attack"}], round=1))
            await driver.close(1)
            answer = (await driver.round(2)).json()
    # General 1 relays the commander's order to 2 and 3, whose ports are closed.
    assert answer["sent"] == [
        {"receiver": 2, "delivered": False, "messages": [[{"path": [0, 1], "value": "attack"}]]},
        {"receiver": 3, "delivered": False, "messages": [[{"path": [0, 1], "value": "attack"}]]},
    ]
    assert answer["timed_out"] is False


async def test_close_reports_what_arrived_and_the_batches_asked_for() -> None:
    with bounded():
        async with driving() as driver:
            await opened(driver, 2)
            # Traitor 3 signs for itself but claims the path came through general 2.
            forged = await driver.client.post("/order", json=order(3, [{"path": [0, 2], "value": "retreat"}]))
            assert forged.json() == {"taken": 1}
            honest = await driver.client.post("/order", json=order(2, [{"path": [0, 2], "value": "attack"}]))
            assert honest.json() == {"taken": 1}
            closed = await driver.close(2, batches_from=[2])
            late = await driver.client.post("/order", json=order(0, [], round=2))
            decided = await driver.decide()
    forgery = {"path": [0, 2], "value": "retreat"}
    assert closed.json() == {
        "received": 2,
        "senders": [2, 3],
        "rejected": [
            {"instance": 0, "sender": 3, "message": forgery, "reason": "path does not end with the sender"}
        ],
        "batches": {"2": [[{"path": [0, 2], "value": "attack"}]]},
    }
    assert error(late) == (409, "round 2 is not open here: every round is closed")
    # The commander's order never came: retreat (the default), attack from 2, retreat for 3's forgery.
    assert decided.json() == {"general": 1, "decisions": ["retreat"], "stats": {}}


async def test_batches_for_rounds_not_open_are_refused_and_not_kept() -> None:
    # About 3.8 MB each, under the body limit: the attack of a peer whose key is valid.
    bulk = [{"path": [0, 2], "value": "x" * 60}] * 45_000
    made_up = {round: json.dumps(order(2, bulk, round=round)).encode() for round in (5, 6, 7, 8, 9)}
    too_many = json.dumps(order(2, bulk, round=2)).encode()
    assert max(len(body) for body in made_up.values()) < MAX_BODY
    with bounded(60):
        async with driving() as driver:
            await opened(driver, 2)
            run = driver.node.run
            assert run is not None
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for round, body in made_up.items():
                    refused = error(await driver.client.post("/order", content=body))
                    assert refused == (409, f"round {round} is not open here: round 2 is open")
                refused = error(await driver.client.post("/order", content=too_many))
                assert refused == (422, "45000 messages from 2 in round 2, more than the 1 it can send")
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            assert run.batches == {}
            assert run.general.received == 0
            assert grown < 2**20
            one = await driver.client.post("/order", json=order(2, [{"path": [0, 2], "value": "attack"}]))
            assert one.status_code == 200
            twice = await driver.client.post("/order", json=order(2, [{"path": [0, 2], "value": "attack"}]))
            assert error(twice) == (409, "replayed message: round 2 from 2 was already delivered")
            elsewhere = await driver.client.post("/order", json=order(2, [], receiver=3))
            assert error(elsewhere) == (403, "a batch for general 3, not for 1")
            stale = await driver.client.post("/order", json=order(2, [], run="run-0"))
            assert error(stale) == (409, "a batch for another run")


async def test_refusals_are_4xx_with_a_json_error_and_the_node_keeps_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bounded():
        async with driving() as driver:
            client = driver.client
            await opened(driver, 1)
            cases = [
                (await client.post("/order", content=b"{not json"), 400, "the body is not JSON"),
                (await client.post("/order", content=b"[" * 100_000), 400, "the body is not JSON"),
                (await client.post("/order", json=[1, 2]), 422, "the body must be a JSON object"),
                (
                    await driver.post("/start", {"run": RUN, "scenario": "four generals"}),
                    422,
                    "'scenario' must be a dict",
                ),
                (await client.post("/order", content=b"x" * (MAX_BODY + 1)), 413, "body over the limit"),
                (await client.get("/nowhere"), 404, "no GET /nowhere here"),
                (
                    await driver.post("/decide", {"run": "run-7"}),
                    404,
                    "no such run here: /start it first",
                ),
                (await driver.decide(), 409, "no decision yet: the rounds are still running"),
                (
                    await client.post("/order", json=order(9, [], key=2) | {"sender": 9}),
                    403,
                    "unknown sender 9",
                ),
                (await client.post("/order", json=order(2, [], key=3)), 403, "bad signature for sender 2"),
                (await client.post("/order", json={**order(2, []), "round": 5}), 403, "bad signature"),
            ]
            for response, status, message in cases:
                assert response.status_code == status
                assert message in response.json()["error"]
            assert (await client.get("/status")).status_code == 200
    refusals = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert {r["event"] for r in refusals} == {"request.refused"}
    assert {
        "general": 1,
        "method": "POST",
        "path": "/order",
        "status": 403,
        "error": "bad signature for sender 2",
    } | {"event": "request.refused"} in refusals


async def test_a_scenario_that_does_not_load_is_422() -> None:
    with bounded():
        async with driving() as driver:
            status, text = error(await driver.start({"generals": 4}))
            assert status == 422
            assert "missing required key 'm'" in text


async def test_a_strategy_the_node_was_not_started_with_is_refused_and_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "marked_traitor.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Evil:\n    def choose(self, *a): return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    popen = {"strategy": "subprocess:Popen", "args": ["touch", str(marker)]}
    with bounded():
        async with driving() as driver:
            for spec in ("marked_traitor:Evil", popen):
                name = spec if isinstance(spec, str) else spec["strategy"]
                refused = await driver.start({**SCENARIO, "traitors": {"3": spec}})
                assert error(refused) == (
                    403,
                    f"traitor 3: strategy {name!r} is not allowed on this node: "
                    f"start the node with --allow-strategy {name} to allow it",
                )
            assert driver.node.run is None
    assert not marker.exists()
    assert "marked_traitor" not in sys.modules


async def test_a_strategy_the_node_was_started_with_runs() -> None:
    scenario = {**SCENARIO, "traitors": {"1": {"strategy": "adversaries:Forge", "path": [0, 3]}}}
    with bounded():
        async with driving(allowed={"adversaries:Forge"}) as driver:
            assert (await driver.start(scenario)).status_code == 200
            assert driver.node.run is not None
            strategy = driver.node.run.strategy
    assert type(strategy).__name__ == "Forge"


async def test_a_refusal_logs_at_most_a_few_hundred_characters_of_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    long_path = "/" + "x" * 60_000
    huge_sender = order(2, []) | {
        "sender": int("9" * 4000)
    }  # refused as an unknown sender, before any signature
    with bounded():
        async with driving() as driver:
            nowhere = await driver.client.get(long_path)
            unknown = await driver.client.post("/order", json=huge_sender)
            assert (await driver.client.get("/status")).status_code == 200
    assert nowhere.status_code == 404
    assert unknown.status_code == 403
    assert len(nowhere.content) < 1000
    refusals = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(refusals) == 2
    for refusal in refusals:
        assert len(json.dumps(refusal)) < 1000
    assert refusals[0]["path"] == "/" + "x" * 199 + "... (60,001 characters)"
    assert refusals[0]["error"].startswith("no GET /xxx")
    assert refusals[1]["error"].startswith("unknown sender 9999")
    assert refusals[1]["error"].endswith(" characters)")


async def test_a_batch_not_shaped_as_the_algorithms_payload_is_refused_and_not_kept() -> None:
    def nested(depth: int) -> object:
        value: object = "attack"
        for _ in range(depth):
            value = [value]
        return value

    refusals = [
        (order(2, [], batch=[]), "'messages' must hold one list of messages per instance (1)"),
        (
            order(2, [], batch=[{"path": [0, 2]}]),
            "'messages' must hold one list of messages per instance (1)",
        ),
        (order(2, [["path", "value"]]), "a message must be an object with the fields path, value"),
        (order(2, [{"path": [0, 2]}]), "a message must be an object with the fields path, value"),
        (
            order(2, [{"path": [0, 2], "value": "attack", "chain": [0]}]),
            "a message must be an object with the fields path, value",
        ),
        (order(2, [{"path": [0, 2], "value": nested(64)}]), "a message nests deeper than 64 levels"),
    ]
    with bounded():
        async with driving() as driver:
            await opened(driver, 2)
            for body, said in refusals:
                assert error(await driver.client.post("/order", json=body)) == (422, said)
            # 63 lists inside the message object: 64 levels, the most a message may have.
            deep = await driver.client.post("/order", json=order(2, [{"path": [0, 2], "value": nested(63)}]))
            assert deep.json() == {"taken": 1}
            closed = (await driver.close(2)).json()
    assert closed["senders"] == [2]
    assert [(r["sender"], r["reason"]) for r in closed["rejected"]] == [(2, "value outside the domain")]


TWO_ORDERS = load_scenario(
    "generals: 4\nm: 1\ninstances:\n  - {commander: 0, order: attack}\n  - {commander: 2, order: retreat}\n"
).to_dict()


async def test_one_batch_carries_every_instance_each_bounded_by_what_its_sender_can_send() -> None:
    commands = {0: [{"path": [0], "value": "attack"}], 2: [{"path": [2], "value": "retreat"}]}
    with bounded():
        async with driving() as driver:
            started = (await driver.start(TWO_ORDERS)).json()
            assert (started["started"], started["instances"], started["identities"]) == (RUN, 2, [None, None])
            first = (await driver.round(1)).json()
            from_0 = order(0, [], round=1, batch=[commands[0], []])
            assert (await driver.client.post("/order", json=from_0)).json() == {"taken": 1}
            twice = order(2, [], round=1, batch=[[], commands[2] * 2])
            assert error(await driver.client.post("/order", json=twice)) == (
                422,
                "2 messages from 2 in round 1 of instance 1, more than the 1 it can send",
            )
            # A lieutenant in instance 0 has nothing to say in round 1 there.
            speaking = order(2, [], round=1, batch=[commands[2], commands[2]])
            assert error(await driver.client.post("/order", json=speaking)) == (
                422,
                "1 message from 2 in round 1 of instance 0, more than the 0 it can send",
            )
            from_2 = order(2, [], round=1, batch=[[], commands[2]])
            assert (await driver.client.post("/order", json=from_2)).json() == {"taken": 1}
            closed = (await driver.close(1)).json()
            second = (await driver.round(2)).json()
    assert first == {"sent": [], "failed": [], "timed_out": False}
    assert (closed["received"], closed["rejected"]) == (2, [])
    attack, retreat = {"path": [0, 1], "value": "attack"}, {"path": [2, 1], "value": "retreat"}
    assert [(batch["receiver"], batch["messages"]) for batch in second["sent"]] == [
        (0, [[], [retreat]]),
        (2, [[attack], []]),
        (3, [[attack], [retreat]]),
    ]


SIGNED = load_scenario("algorithm: sm\ngenerals: 3\nm: 1\nseed: 5\ntraitors: {2: silent}\n")


def wire(payload: object) -> dict[str, Any]:
    """A payload's fields as they travel: JSON."""
    fields: dict[str, Any] = json.loads(json.dumps(SIGNED.rules.payload_fields(payload)))
    return fields


async def test_a_signed_run_sends_chain_signatures_and_checks_them_as_a_core_in_memory_does() -> None:
    rules = SIGNED.rules
    with bounded():
        async with driving() as driver:
            assert (await driver.start(SIGNED.to_dict())).status_code == 200
            (setup,) = setups_of(SIGNED, driver.identities)
            commander, traitor = (rules.general(setup, g, "attack", secret=SECRETS[g]) for g in (0, 2))
            # The node's twin, in memory: general 1 with the node's own secret, handed what the node will be.
            twin = rules.general(setup, 1, secret=run_secret(KEYS[1], driver.node.session, RUN))
            to_1, to_2 = (commander.compose(out, out.path, out.value) for out in commander.outbox(1))
            traitor.outbox(1)
            assert traitor.receive(sender=0, round=1, payload=to_2) is None
            outboxes = traitor.outbox(2)
            (forward,) = (traitor.compose(out, out.path, out.value) for out in outboxes if out.receiver == 1)
            assert isinstance(forward, Signed)
            tampered = attrs.evolve(forward, value="retreat")  # the commander's and its own signatures kept
            twin.outbox(1)
            assert twin.receive(sender=0, round=1, payload=to_1) is None
            (relayed,) = (twin.compose(out, out.path, out.value) for out in twin.outbox(2))
            refused = twin.receive(sender=2, round=2, payload=tampered)

            assert (await driver.round(1)).json()["sent"] == []
            taken = await driver.client.post("/order", json=order(0, [wire(to_1)], round=1))
            assert taken.json() == {"taken": 1}
            assert (await driver.close(1)).json()["rejected"] == []
            second = (await driver.round(2)).json()
            await driver.client.post("/order", json=order(2, [wire(tampered)]))
            closed = (await driver.close(2)).json()
            decided = (await driver.decide()).json()
    assert second["sent"] == [{"receiver": 2, "delivered": False, "messages": [[wire(relayed)]]}]
    assert wire(relayed)["chain"] == [0, 1]
    assert len(wire(relayed)["signatures"]) == 2
    assert refused is not None
    assert closed["rejected"] == [
        {"instance": 0, "sender": 2, "message": wire(tampered), "reason": "signature does not verify"}
    ]
    assert refused.value == "signature does not verify"
    assert decided == {"general": 1, "decisions": [twin.decide()], "stats": dict(twin.stats)}
    assert decided["decisions"] == ["attack"]
    assert decided["stats"]["signatures_verified"] > 0


async def test_each_run_publishes_a_key_of_the_nodes_own_signed_with_its_cluster_key() -> None:
    rules = SIGNED.rules
    with bounded():
        async with driving() as driver:
            first = (await driver.start(SIGNED.to_dict())).json()
            second = (await driver.start(SIGNED.to_dict(), run="run-2")).json()
            session = driver.node.session
    for run, answer in ((RUN, first), ("run-2", second)):
        secret = run_secret(KEYS[1], session, run)
        assert answer["identities"] == [rules.identity(SIGNED.setup, 1, secret)]
        assert verify(
            KEYS[1].public_key(), answer["signature"], identity_fields(run, 1, answer["identities"])
        )
    # Not the seed's key, which every node could rebuild, and not the last run's.
    assert len({first["identities"][0], second["identities"][0], keyring(SIGNED.seed, 3).public_hex[1]}) == 3
    # Another node process with the same key (a restart) draws another session, so other keys again.
    assert run_secret(KEYS[1], "another session", RUN) != run_secret(KEYS[1], session, RUN)


async def test_round_1_takes_only_the_identities_each_general_signed_for_this_run() -> None:
    with bounded():
        async with driving() as driver:
            assert (await driver.start(SIGNED.to_dict())).status_code == 200
            genuine = driver.identities
            seed_key = keyring(SIGNED.seed, 3).public_hex[0]
            swapped = {
                "identities": [seed_key],
                "signature": sign(KEYS[2], identity_fields(RUN, 0, [seed_key])),
            }
            mine = {"identities": [seed_key], "signature": sign(KEYS[1], identity_fields(RUN, 1, [seed_key]))}
            cases: list[tuple[object, int, str]] = [
                (None, 422, "round 1 needs 'identities': each general's signed /start answer, by id"),
                (
                    genuine | {"0": swapped},
                    403,
                    "general 0's identities are not signed with its key for this run",
                ),
                (
                    genuine | {"0": statement(SIGNED, 0, run="run-0")},
                    403,
                    "general 0's identities are not signed with its key for this run",
                ),
                (genuine | {"1": mine}, 422, "'identities' names another identity for general 1, this one"),
                (genuine | {"7": genuine["0"]}, 422, "'identities' names '7', not a general of the cluster"),
                (
                    genuine | {"0": {"identities": [], "signature": genuine["0"]["signature"]}},
                    422,
                    "'identities' for general 0 must hold one identity per instance (1), "
                    "each null or at most 1024 characters",
                ),
            ]
            for given, status, said in cases:
                driver.identities = given  # type: ignore[assignment]
                assert error(await driver.round(1)) == (status, said)
                run = driver.node.run
                assert run is not None
                assert (run.opened, run.built) == (0, None)
            driver.identities = genuine
            assert (await driver.round(1)).status_code == 200


FORGED = load_scenario("algorithm: sm\ngenerals: 4\nm: 1\nseed: 5\ntraitors: {1: silent}\n")
"""/tmp/hostile-work/forge2.py's run: loyal commander 0 orders attack; traitor 1 knows the seed."""


async def test_a_traitor_node_that_knows_the_seed_cannot_forge_the_commanders_link() -> None:
    rules = FORGED.rules
    with bounded():
        async with driving(me=2) as driver:
            assert (await driver.start(FORGED.to_dict())).status_code == 200
            (setup,) = setups_of(FORGED, driver.identities)
            commander = rules.general(setup, 0, "attack", secret=SECRETS[0])
            to_2 = next(commander.compose(o, o.path, o.value) for o in commander.outbox(1) if o.receiver == 2)
            assert (await driver.round(1)).status_code == 200
            taken = await driver.client.post("/order", json=order(0, [wire(to_2)], round=1, receiver=2))
            assert taken.json() == {"taken": 1}
            assert (await driver.close(1)).json()["rejected"] == []
            assert (await driver.round(2)).status_code == 200
            # As forge2.py: every link signed with the keys the seed gives, over the seed's run.
            seed_keys, seed_setup = keyring(FORGED.seed, 4).private, FORGED.setup
            s0 = seed_keys[0].sign(signed_bytes(seed_setup, "retreat", (), ())).hex()
            s1 = seed_keys[1].sign(signed_bytes(seed_setup, "retreat", (0,), (s0,))).hex()
            # Better informed: the commander's seed key over this run, and traitor 1's own real link.
            t0 = seed_keys[0].sign(signed_bytes(setup, "retreat", (), ())).hex()
            t1 = secret_key(SECRETS[1]).sign(signed_bytes(setup, "retreat", (0,), (t0,))).hex()
            forgeries = [
                {"value": "retreat", "chain": [0, 1], "signatures": [s0, s1]},
                {"value": "retreat", "chain": [0, 1], "signatures": [t0, t1]},
            ]
            sent = await driver.client.post("/order", json=order(1, forgeries, receiver=2))
            assert sent.json() == {"taken": 2}
            closed = (await driver.close(2)).json()
            decided = (await driver.decide()).json()
    assert [(r["sender"], r["reason"]) for r in closed["rejected"]] == [(1, "signature does not verify")] * 2
    assert decided["decisions"] == ["attack"]


async def test_a_signature_from_another_run_with_the_same_seed_is_refused() -> None:
    earlier = load_scenario(
        "algorithm: sm\ngenerals: 4\nm: 1\nseed: 5\norder: retreat\ntraitors: {1: silent}\n"
    )
    with bounded():
        async with driving(me=0) as commander, driving(me=2) as lieutenant:
            # run-0: the loyal commander's node orders retreat; traitor 1 keeps what it got.
            assert (await commander.start(earlier.to_dict(), run="run-0")).status_code == 200
            sent = (await commander.round(1, run="run-0")).json()["sent"]
            kept = next(batch["messages"][0][0] for batch in sent if batch["receiver"] == 1)
            # The next run, same seed: attack.  The two nodes publish their own keys to each other.
            assert (await commander.start(FORGED.to_dict())).status_code == 200
            assert (await lieutenant.start(FORGED.to_dict())).status_code == 200
            identities = commander.identities | {"2": lieutenant.identities["2"]}
            commander.identities = lieutenant.identities = identities
            sent = (await commander.round(1)).json()["sent"]
            to_1, to_2 = (next(b["messages"] for b in sent if b["receiver"] == r) for r in (1, 2))
            assert (await lieutenant.round(1)).status_code == 200
            taken = await lieutenant.client.post("/order", json=order(0, [], round=1, receiver=2, batch=to_2))
            assert taken.json() == {"taken": 1}
            assert (await lieutenant.close(1)).json()["rejected"] == []
            assert (await lieutenant.round(2)).status_code == 200
            (setup,) = setups_of(FORGED, identities)
            traitor = secret_key(SECRETS[1])
            relayed = []
            for link in (kept, to_1[0][0]):  # run-0's commander link, and this run's: the same relay of each
                before = tuple(link["signatures"])
                own = traitor.sign(signed_bytes(setup, link["value"], (0,), before)).hex()
                relayed.append({"value": link["value"], "chain": [0, 1], "signatures": [*before, own]})
            sent_by_1 = await lieutenant.client.post("/order", json=order(1, relayed, receiver=2))
            assert sent_by_1.json() == {"taken": 2}
            closed = (await lieutenant.close(2)).json()
            decided = (await lieutenant.decide()).json()
    assert (kept["value"], to_1[0][0]["value"]) == ("retreat", "attack")
    # Only the stale link is refused: the traitor's own link verifies on this run's commander link.
    assert [(r["sender"], r["message"]) for r in closed["rejected"]] == [(1, relayed[0])]
    assert closed["rejected"][0]["reason"] == "signature does not verify"
    assert decided["decisions"] == ["attack"]


def test_python_m_om_actors_node_has_om_actors_nodes_options_with_the_same_help() -> None:
    clicked = {
        max(option.opts, key=len): (
            option.name,
            option.help,
            option.metavar,
            option.required,
            option.multiple,
            option.is_flag,
        )
        for option in node_command.params
        if isinstance(option, click.Option)
    }
    parsed = {
        action.option_strings[0]: (
            action.dest,
            action.help,
            action.metavar,
            action.required,
            isinstance(action, argparse._AppendAction),
            isinstance(action, argparse._StoreTrueAction),
        )
        for action in node_arguments()._actions
        if not isinstance(action, argparse._HelpAction)
    }
    assert parsed == clicked
    assert node_arguments().description == NODE_SUMMARY == (node_command.help or "").splitlines()[0]


@pytest.mark.parametrize(
    "given",
    [
        ["--id", "0", "--cluster", "FILE", "--key", "-"],
        ["--id", "3", "--cluster", "FILE", "--key", "FILE", "--listen", "127.0.0.1:0", "--exit-with-stdin",
         "--allow-strategy", "a:B", "--allow-strategy", "c:D", "--strategy-folder", "FOLDER"],
    ],
    ids=["required-only", "every-option"],
)  # fmt: skip
def test_python_m_om_actors_node_reads_a_command_line_as_om_actors_node_does(
    tmp_path: Path, given: list[str]
) -> None:
    (tmp_path / "file").write_text("")
    arguments = [
        str(tmp_path / "file") if a == "FILE" else str(tmp_path) if a == "FOLDER" else a for a in given
    ]
    as_click = node_command.make_context("node", list(arguments)).params
    as_argparse = vars(node_arguments().parse_args(arguments))
    assert {name: tuple(v) if isinstance(v, list) else v for name, v in as_argparse.items()} == as_click
