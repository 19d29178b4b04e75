"""One networked general, in process: its endpoints, signatures and refusals.

Rules for this file:
- the node's ASGI app is called through httpx's ASGI transport: no sockets;
- every test is bounded with ``trio.fail_after``;
- every refusal is checked for its status and its JSON error, and the node
  is checked to go on serving after it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from om_actors import load_scenario
from om_actors.node import MAX_BODY, Node, Peer, sign

KEYS = {g: Ed25519PrivateKey.generate() for g in range(4)}
PEERS = {g: Peer(g, f"127.0.0.1:{9000 + g}", key.public_key()) for g, key in KEYS.items()}
SCENARIO = load_scenario("generals: 4\nm: 1\ntraitors: {3: flip}\n").to_dict()


@contextmanager
def bounded(seconds: float = 10) -> Iterator[None]:
    with trio.fail_after(seconds):
        yield


@asynccontextmanager
async def node_client(me: int = 1) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=Node(me, KEYS[me], PEERS))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        yield client


def order(
    sender: int, messages: list[dict[str, Any]], *, round: int = 2, key: int | None = None
) -> dict[str, Any]:
    fields = {"instance": 0, "round": round, "sender": sender, "messages": messages}
    return {**fields, "signature": sign(KEYS[sender if key is None else key], fields)}


async def started(client: httpx.AsyncClient) -> None:
    response = await client.post("/start", json={"instance": 0, "scenario": SCENARIO, "round_timeout": 1})
    assert response.status_code == 200


async def test_status_and_start() -> None:
    with bounded():
        async with node_client() as client:
            assert (await client.get("/status")).json() == {"general": 1, "instances": {}}
            await started(client)
            again = await client.post(
                "/start", json={"instance": 0, "scenario": SCENARIO, "round_timeout": 1}
            )
            assert (again.status_code, again.json()) == (409, {"error": "instance 0 has already started"})
            assert (await client.get("/status")).json()["instances"] == {"0": {"finished": False}}


async def test_a_signed_order_is_delivered_and_a_forged_path_rejected() -> None:
    with bounded():
        async with node_client() as client:
            await started(client)
            honest = await client.post("/order", json=order(2, [{"path": [0, 2], "value": "attack"}]))
            assert honest.json() == {"accepted": 1, "rejected": 0}
            # Traitor 3 signs for itself but claims the path came through general 2.
            forged = await client.post("/order", json=order(3, [{"path": [0, 2], "value": "retreat"}]))
            assert forged.json() == {"accepted": 0, "rejected": 1}


async def test_refusals_are_4xx_with_a_json_error_and_the_node_keeps_serving(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bounded():
        async with node_client() as client:
            await started(client)
            cases = [
                (await client.post("/order", content=b"{not json"), 400, "the body is not JSON"),
                (await client.post("/order", json=[1, 2]), 422, "the body must be a JSON object"),
                (await client.post("/start", json={"instance": "zero"}), 422, "'instance' must be a number"),
                (await client.post("/order", content=b"x" * (MAX_BODY + 1)), 413, "body over the limit"),
                (await client.get("/nowhere"), 404, "no GET /nowhere here"),
                (await client.get("/decide", params={"instance": 7}), 404, "unknown instance 7"),
                (await client.get("/decide"), 409, "no decision yet: the rounds are still running"),
                (
                    await client.post("/order", json=order(9, [], key=2) | {"sender": 9}),
                    403,
                    "unknown sender 9",
                ),
                (await client.post("/order", json=order(2, [], key=3)), 403, "bad signature for sender 2"),
                (await client.post("/order", json={**order(2, []), "instance": 5}), 403, "bad signature"),
            ]
            for response, status, message in cases:
                assert response.status_code == status
                assert message in response.json()["error"]
            first = await client.post("/order", json=order(2, [{"path": [0, 2], "value": "attack"}], round=2))
            replayed = await client.post(
                "/order", json=order(2, [{"path": [0, 2], "value": "attack"}], round=2)
            )
            assert first.status_code == 200
            assert (replayed.status_code, replayed.json()["error"]) == (
                409,
                "replayed message: round 2 from 2 was already delivered",
            )
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
        async with node_client() as client:
            response = await client.post(
                "/start", json={"instance": 0, "scenario": {"generals": 4}, "round_timeout": 1}
            )
            assert response.status_code == 422
            assert "missing required key 'm'" in response.json()["error"]
