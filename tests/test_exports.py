"""The public API changes only on purpose.

Rules for this file:
- when this test fails, either restore the name or update the list here and
  say so in CHANGELOG.md.
"""

from __future__ import annotations

import types

import om_actors

PUBLIC = {
    "SCHEMA",
    "Algorithm",
    "Core",
    "DecisionPoint",
    "OralGeneral",
    "OralMessages",
    "OralReason",
    "Outgoing",
    "ProtocolMisuse",
    "Relay",
    "Signed",
    "SignedGeneral",
    "SignedMessages",
    "SignedReason",
    "Step",
    "algorithm_named",
    "register",
    "Constant",
    "EVENT_BUFFER",
    "Decided",
    "Divergence",
    "Event",
    "Expect",
    "Instance",
    "InstanceOutcome",
    "Flip",
    "Forgery",
    "Inconsistency",
    "LogError",
    "LogLine",
    "Loyal",
    "MessageRejected",
    "MessageSent",
    "OmActorsError",
    "Problem",
    "ReplayReport",
    "RandomChoice",
    "Result",
    "RoundEnded",
    "RunStarted",
    "Scenario",
    "ScenarioError",
    "Setup",
    "Simulation",
    "Silent",
    "Split",
    "Strategy",
    "StrategyError",
    "StrategyFailed",
    "TraitorSpec",
    "Verdict",
    "VerdictReached",
    "build_strategy",
    "load_scenario",
    "majority",
    "messages_received",
    "messages_sent",
    "open_simulation",
    "read_log",
    "replay_log",
    "rerun_log",
    "simulate",
    "simulate_asyncio",
    "simulate_sync",
}


def test_public_names_stay_put() -> None:
    exported = {
        name
        for name, value in vars(om_actors).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exported == PUBLIC


def test_every_public_name_is_documented() -> None:
    for name in PUBLIC - {"SCHEMA", "EVENT_BUFFER", "Event"}:
        assert getattr(om_actors, name).__doc__, name
