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
    "Constant",
    "Decided",
    "Divergence",
    "Event",
    "Expect",
    "Flip",
    "Forgery",
    "General",
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
    "Silent",
    "Split",
    "Strategy",
    "StrategyFailed",
    "TraitorSpec",
    "Verdict",
    "VerdictReached",
    "load_scenario",
    "majority",
    "messages_received",
    "messages_sent",
    "read_log",
    "replay_log",
    "rerun_log",
    "simulate",
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
    for name in PUBLIC - {"SCHEMA", "Event"}:
        assert getattr(om_actors, name).__doc__, name
