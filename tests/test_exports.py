"""The public API changes only on purpose.

Rules for this file:
- when this test fails, either restore the name or update the list here and
  say so in CHANGELOG.md.
"""

from __future__ import annotations

import om_actors

PUBLIC = {
    "SCHEMA",
    "Constant",
    "Decided",
    "Event",
    "Expect",
    "Flip",
    "Forgery",
    "General",
    "Loyal",
    "MessageRejected",
    "MessageSent",
    "OmActorsError",
    "Problem",
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
    "simulate",
    "simulate_sync",
}


def test_public_names_stay_put() -> None:
    exported = {name for name in vars(om_actors) if not name.startswith("_")}
    modules = {
        "cli",
        "errors",
        "events",
        "general",
        "log",
        "orchestrator",
        "protocol",
        "result",
        "scenario",
        "strategies",
    }
    assert exported - modules == PUBLIC


def test_every_public_name_is_documented() -> None:
    for name in PUBLIC - {"SCHEMA", "Event"}:
        assert getattr(om_actors, name).__doc__, name
