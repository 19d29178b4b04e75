"""Byzantine agreement -- OM(m), SM(m) and any algorithm registered beside them -- one trio task per general.

Everything importable from ``om_actors`` itself is the public API; the
modules behind it are private and may change without notice.

Errors raised on purpose share one base class::

    OmActorsError
    ├── ScenarioError   a scenario with mistakes, each with its line and column
    ├── StrategyError   a strategy name or arguments that build no strategy
    ├── ProtocolMisuse  an algorithm's core driven out of turn
    └── LogError        a log that cannot be read, with the line

The names are imported when first used, so that ``import om_actors`` --
and every ``om-actors`` command, which imports it first -- costs only what
it uses: trio, numpy, structlog and the algorithms load with the first name
that needs them.
"""

import importlib
import typing

from ._version import __version__ as __version__

if typing.TYPE_CHECKING:
    from .algorithm import Algorithm as Algorithm
    from .algorithm import Core as Core
    from .algorithm import DecisionPoint as DecisionPoint
    from .algorithm import Outgoing as Outgoing
    from .algorithm import Setup as Setup
    from .algorithm import Step as Step
    from .algorithm import Verdict as Verdict
    from .asyncio_host import simulate_asyncio as simulate_asyncio
    from .errors import LogError as LogError
    from .errors import OmActorsError as OmActorsError
    from .errors import Problem as Problem
    from .errors import ProtocolMisuse as ProtocolMisuse
    from .errors import ScenarioError as ScenarioError
    from .events import SCHEMA as SCHEMA
    from .events import Decided as Decided
    from .events import Event as Event
    from .events import MessageRejected as MessageRejected
    from .events import MessageSent as MessageSent
    from .events import RoundEnded as RoundEnded
    from .events import RunStarted as RunStarted
    from .events import StrategyFailed as StrategyFailed
    from .events import VerdictReached as VerdictReached
    from .html_report import write_html_report as write_html_report
    from .log import LogLine as LogLine
    from .log import read_log as read_log
    from .oral import OralGeneral as OralGeneral
    from .oral import OralMessages as OralMessages
    from .oral import OralReason as OralReason
    from .oral import Relay as Relay
    from .oral import majority as majority
    from .oral import messages_received as messages_received
    from .oral import messages_sent as messages_sent
    from .orchestrator import EVENT_BUFFER as EVENT_BUFFER
    from .orchestrator import Simulation as Simulation
    from .orchestrator import open_simulation as open_simulation
    from .orchestrator import simulate as simulate
    from .orchestrator import simulate_sync as simulate_sync
    from .registry import algorithm_named as algorithm_named
    from .registry import register as register
    from .replay import Divergence as Divergence
    from .replay import Inconsistency as Inconsistency
    from .replay import ReplayReport as ReplayReport
    from .replay import replay_log as replay_log
    from .replay import rerun_log as rerun_log
    from .result import InstanceOutcome as InstanceOutcome
    from .result import Result as Result
    from .scenario import Expect as Expect
    from .scenario import Instance as Instance
    from .scenario import Scenario as Scenario
    from .scenario import TraitorSpec as TraitorSpec
    from .scenario import load_scenario as load_scenario
    from .signed import Signed as Signed
    from .signed import SignedGeneral as SignedGeneral
    from .signed import SignedMessages as SignedMessages
    from .signed import SignedReason as SignedReason
    from .strategies import Constant as Constant
    from .strategies import Flip as Flip
    from .strategies import Forgery as Forgery
    from .strategies import Loyal as Loyal
    from .strategies import RandomChoice as RandomChoice
    from .strategies import Silent as Silent
    from .strategies import Split as Split
    from .strategies import Strategy as Strategy
    from .strategies import StrategyError as StrategyError
    from .strategies import build_strategy as build_strategy

_MODULE_OF = {
    "Algorithm": "algorithm",
    "Core": "algorithm",
    "DecisionPoint": "algorithm",
    "Outgoing": "algorithm",
    "Setup": "algorithm",
    "Step": "algorithm",
    "Verdict": "algorithm",
    "simulate_asyncio": "asyncio_host",
    "LogError": "errors",
    "OmActorsError": "errors",
    "Problem": "errors",
    "ProtocolMisuse": "errors",
    "ScenarioError": "errors",
    "SCHEMA": "events",
    "Decided": "events",
    "Event": "events",
    "MessageRejected": "events",
    "MessageSent": "events",
    "RoundEnded": "events",
    "RunStarted": "events",
    "StrategyFailed": "events",
    "VerdictReached": "events",
    "write_html_report": "html_report",
    "LogLine": "log",
    "read_log": "log",
    "OralGeneral": "oral",
    "OralMessages": "oral",
    "OralReason": "oral",
    "Relay": "oral",
    "majority": "oral",
    "messages_received": "oral",
    "messages_sent": "oral",
    "EVENT_BUFFER": "orchestrator",
    "Simulation": "orchestrator",
    "open_simulation": "orchestrator",
    "simulate": "orchestrator",
    "simulate_sync": "orchestrator",
    "algorithm_named": "registry",
    "register": "registry",
    "Divergence": "replay",
    "Inconsistency": "replay",
    "ReplayReport": "replay",
    "replay_log": "replay",
    "rerun_log": "replay",
    "InstanceOutcome": "result",
    "Result": "result",
    "Expect": "scenario",
    "Instance": "scenario",
    "Scenario": "scenario",
    "TraitorSpec": "scenario",
    "load_scenario": "scenario",
    "Signed": "signed",
    "SignedGeneral": "signed",
    "SignedMessages": "signed",
    "SignedReason": "signed",
    "Constant": "strategies",
    "Flip": "strategies",
    "Forgery": "strategies",
    "Loyal": "strategies",
    "RandomChoice": "strategies",
    "Silent": "strategies",
    "Split": "strategies",
    "Strategy": "strategies",
    "StrategyError": "strategies",
    "build_strategy": "strategies",
}
"""Every public name, with the module it is defined in."""

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> typing.Any:
    """A public name, imported from its module the first time it is asked for."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
