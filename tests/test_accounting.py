"""The books of a run: counts, log order and the ending, shared by the in-memory run and the cluster.

Rules for this file:
- feed Accounting events and counts as a runtime would, and check what the
  log and the result would say against numbers worked out by hand;
- order must not depend on the order events are handed over.
"""

from __future__ import annotations

from conftest import Echo, Vote
from hypothesis import given, settings
from hypothesis import strategies as st

from om_actors import SCHEMA, Instance, Scenario
from om_actors.accounting import Accounting, event_order, in_log_order
from om_actors.algorithm import Verdict
from om_actors.events import (
    Decided,
    Event,
    GeneralCrashed,
    MessageRejected,
    MessageSent,
    RoundEnded,
    StrategyFailed,
    VerdictReached,
)
from om_actors.oral import ORAL_MESSAGES, OralReason, Relay

FOUR = Scenario(generals=4, m=1, traitors={3: "flip"})


def sent(round: int, sender: int, receiver: int, path: object, value: object, **kw: object) -> MessageSent:
    return MessageSent(round, sender, receiver, Relay(path, value), **kw)  # type: ignore[arg-type]


ROUND_TWO: list[Event] = [
    sent(2, 1, 2, (0, 1), "attack"),
    sent(2, 1, 3, (0, 1), "attack"),
    sent(2, 2, 1, (0, 2), "attack"),
    sent(2, 3, 1, (0, 3), "retreat"),
    sent(2, 3, 2, "garbage", "retreat"),
    MessageRejected(2, 3, 2, Relay("garbage", "retreat"), OralReason.MALFORMED_PATH),
    StrategyFailed(2, 3, (0, 3), 2, "ValueError()"),
    sent(2, 3, 1, (0, 3), "attack"),
]


def test_a_round_is_ordered_by_path_then_receiver_then_sender_with_garbage_last() -> None:
    ordered = in_log_order(ROUND_TWO, event_order(ORAL_MESSAGES))
    assert ordered == [
        sent(2, 1, 2, (0, 1), "attack"),
        sent(2, 1, 3, (0, 1), "attack"),
        sent(2, 2, 1, (0, 2), "attack"),
        sent(2, 3, 1, (0, 3), "attack"),  # the same path and receiver twice: by what it says
        sent(2, 3, 1, (0, 3), "retreat"),
        StrategyFailed(2, 3, (0, 3), 2, "ValueError()"),
        sent(2, 3, 2, "garbage", "retreat"),
        MessageRejected(2, 3, 2, Relay("garbage", "retreat"), OralReason.MALFORMED_PATH),
    ]


@settings(max_examples=50, deadline=None)
@given(st.permutations(ROUND_TWO))
def test_the_order_never_depends_on_the_order_events_arrive_in(events: list[Event]) -> None:
    key = event_order(ORAL_MESSAGES)
    assert in_log_order(events, key) == in_log_order(ROUND_TWO, key)


_PLAIN_MESSAGES = st.lists(
    st.tuples(
        st.integers(0, 6),
        st.integers(0, 6),
        st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple),
        st.sampled_from(["attack", "retreat"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(messages=_PLAIN_MESSAGES, shared=st.booleans())
def test_a_plain_round_is_put_in_the_order_the_general_key_gives_or_sent_the_general_way(
    messages: list[tuple[int, int, tuple[int, ...], str]], shared: bool
) -> None:
    """The shortcut for a round of well-formed messages, against the key every other round is sorted by.

    Equal paths come as one object or as equal ones; a tie (one path and
    receiver said twice) must send the round the general way.
    """
    paths: dict[tuple[int, ...], tuple[int, ...]] = {}
    events: list[Event] = [
        sent(2, sender, receiver, paths.setdefault(path, path) if shared else (*path,), value)
        for sender, receiver, path, value in messages
    ]
    key = event_order(ORAL_MESSAGES)
    order = key.plain(events)
    general = sorted(range(len(events)), key=lambda i: key(events[i]))
    keys = [key(event)[:4] for event in events]
    if len(set(keys)) < len(keys):
        assert order is None
    else:
        assert order == general


@settings(max_examples=200, deadline=None)
@given(messages=_PLAIN_MESSAGES, shared=st.booleans(), data=st.data())
def test_a_plain_round_in_batches_comes_out_in_the_order_the_general_key_gives_or_goes_the_general_way(
    messages: list[tuple[int, int, tuple[int, ...], str]], shared: bool, data: st.DataObject
) -> None:
    """The actors' shortcut: one batch per sender and receiver, in any order, against the general key."""
    paths: dict[tuple[int, ...], tuple[int, ...]] = {}
    batches: dict[tuple[int, int], list[object]] = {}
    events: list[MessageSent] = []
    for sender, receiver, path, value in messages:
        relay = Relay(paths.setdefault(path, path) if shared else (*path,), value)
        batches.setdefault((receiver, sender), []).append(relay)
        events.append(MessageSent(2, sender, receiver, relay))
    listed = data.draw(st.permutations([(r, s, tuple(p)) for (r, s), p in batches.items()]), label="batches")
    key = event_order(ORAL_MESSAGES)
    columns = key.plain_batches(listed)
    keys = [key(event)[:4] for event in events]
    if len(set(keys)) < len(keys):
        assert columns is None
        return
    ordered = sorted(events, key=key)
    assert columns == (
        [e.sender for e in ordered],
        [e.receiver for e in ordered],
        [e.payload for e in ordered],
    )


def test_batches_that_name_one_sender_and_receiver_twice_go_the_general_way() -> None:
    """Two messages on one path could then tie across batches, where the shortcut does not look."""
    key = event_order(ORAL_MESSAGES)
    one, two = Relay((0, 1), "attack"), Relay((0, 1), "retreat")
    assert key.plain_batches([(2, 1, (one,)), (3, 1, (two,))]) == ([1, 1], [2, 3], [one, two])
    assert key.plain_batches([(2, 1, (one,)), (2, 1, (two,))]) is None


def test_a_round_with_a_negative_general_or_a_garbage_path_is_sent_the_general_way() -> None:
    key = event_order(ORAL_MESSAGES)
    assert key.plain([sent(2, 1, 2, (0, 1), "attack")]) == [0]
    assert key.plain([sent(2, -1, 2, (0, 1), "attack")]) is None
    assert key.plain([sent(2, 1, 2, (0, True), "attack")]) is None
    assert key.plain([sent(2, 1, 2, [0, 1], "attack")]) is None


def test_messages_without_a_path_are_ordered_by_receiver_then_sender(echo: Echo) -> None:
    events: list[MessageSent | MessageRejected] = [
        MessageSent(2, 3, 1, Vote("attack")),
        MessageSent(2, 1, 2, Vote("attack")),
        MessageSent(2, 2, 1, Vote("retreat")),
        MessageRejected(2, 2, 1, Vote("retreat"), OralReason.DUPLICATE),
    ]
    ordered = sorted(events, key=event_order(echo))
    assert [(e.receiver, e.sender, type(e).__name__) for e in ordered] == [
        (1, 2, "MessageSent"),
        (1, 2, "MessageRejected"),
        (1, 3, "MessageSent"),
        (2, 1, "MessageSent"),
    ]


def test_closing_a_round_counts_its_refusals_and_the_loyal_messages_that_never_arrived() -> None:
    books = Accounting(FOUR)
    books.sent(1, 0, 0, 3)
    events: list[Event] = [
        sent(1, 0, 2, (0,), "attack", delivered=False),
        sent(1, 0, 1, (0,), "attack"),
        MessageRejected(1, 0, 1, Relay((0,), "attack"), OralReason.DUPLICATE),
    ]
    crash = GeneralCrashed(1, 2)
    closed = books.close_round(1, events, late=(3,), crashes=[crash])
    assert closed[-2:] == [crash, RoundEnded(1, 3, 1, (3,), undelivered=1)]
    assert closed[0] == sent(1, 0, 1, (0,), "attack")
    assert (books.rejected, books.undelivered, books.timed_out, books.crashed) == (1, 1, {1: (3,)}, {2})


_ROUND_ONE = st.lists(
    st.one_of(
        st.builds(
            lambda receiver, lost: sent(1, 0, receiver, (0,), "attack", delivered=False if lost else None),
            st.integers(1, 3),
            st.booleans(),
        ),
        st.builds(
            lambda receiver, lost: sent(1, 3, receiver, (0, 3), "retreat", delivered=False if lost else None),
            st.integers(0, 2),
            st.booleans(),
        ),
        st.builds(
            lambda receiver: MessageRejected(1, 0, receiver, Relay((0,), "attack"), OralReason.DUPLICATE),
            st.integers(1, 3),
        ),
        st.builds(lambda receiver: StrategyFailed(1, 3, (0,), receiver, "ValueError()"), st.integers(0, 2)),
    ),
    max_size=12,
)


@given(events=_ROUND_ONE, late=st.sampled_from([(), (3,)]))
def test_a_round_nobody_listens_to_is_counted_as_closing_it_would_count_it(
    events: list[Event], late: tuple[int, ...]
) -> None:
    """A run with no log and no handler tallies its rounds without ordering them: the same books."""
    closing, tallying = Accounting(FOUR), Accounting(FOUR)
    for books in (closing, tallying):
        books.count(events)
    crashes = [GeneralCrashed(1, 2)]
    end = closing.close_round(1, events, late=late, crashes=crashes)[-1]
    assert tallying.tally_round(1, events, late=late, crashes=crashes) == end
    assert (tallying.rejected, tallying.undelivered, tallying.timed_out, tallying.crashed) == (
        closing.rejected,
        closing.undelivered,
        closing.timed_out,
        closing.crashed,
    )


def test_a_traitors_lost_message_is_no_broken_assumption() -> None:
    books = Accounting(FOUR)
    books.count([sent(2, 3, 1, (0, 3), "retreat", delivered=False)])
    assert books.close_round(2, [sent(2, 3, 1, (0, 3), "retreat", delivered=False)])[-1] == RoundEnded(
        2, 1, 0, ()
    )
    assert books.undelivered == 0
    assert (books.per_round, books.sent_by[3]) == ([0, 1], 1)


def test_counting_events_and_counting_at_post_time_agree() -> None:
    by_events, by_posts = Accounting(FOUR), Accounting(FOUR)
    by_events.count(ROUND_TWO)
    for event in ROUND_TWO:
        if isinstance(event, MessageSent):
            by_posts.sent(event.round, event.instance or 0, event.sender)
    assert by_events.per_round == by_posts.per_round == [0, 6]
    assert by_events.sent_by == by_posts.sent_by == {0: 0, 1: 2, 2: 1, 3: 3}


def test_the_ending_lists_every_decision_then_the_verdict_with_the_algorithms_rounds(echo: Echo) -> None:
    scenario = Scenario(algorithm="echo", generals=4, m=0, traitors={3: "split"})
    books = Accounting(scenario)
    books.sent(1, 0, 0, 3)
    books.sent(2, 0, 1, 2)
    books.add_stats({"votes_counted": 2})
    books.add_stats({"votes_counted": 3})
    books.took(1, 5)
    events, result = books.conclude({0: ("attack",), 1: ("attack",), 2: ("retreat",), 3: ("attack",)})
    assert events == [
        Decided(0, "attack", False),
        Decided(1, "attack", False),
        Decided(2, "retreat", False),
        Decided(3, "attack", True),
        VerdictReached(False, False, False, 5, 2),
    ]
    assert result.rounds == 2  # the algorithm's, not m + 1
    assert result.messages_per_round == (3, 2)
    assert result.stats == {"votes_counted": 5}
    assert result.to_dict()["votes_counted"] == 5
    assert result.received == {0: 0, 1: 5, 2: 0, 3: 0}
    assert result.decisions == {0: "attack", 1: "attack", 2: "retreat"}


def test_several_instances_get_a_verdict_each_and_one_for_the_run() -> None:
    scenario = Scenario(generals=4, m=1, instances=[Instance(0, "attack"), Instance(3, "retreat")])
    books = Accounting(scenario)
    books.sent(1, 0, 0, 3)
    books.sent(1, 1, 3, 3)
    events, result = books.conclude(dict.fromkeys(range(4), ("attack", "retreat")))
    verdicts = [e for e in events if isinstance(e, VerdictReached)]
    assert verdicts == [
        VerdictReached(True, True, True, 3, 2, instance=0),
        VerdictReached(True, True, True, 3, 2, instance=1),
        VerdictReached(True, True, True, 6, 2),
    ]
    assert [e.instance for e in events if isinstance(e, Decided)] == [0] * 4 + [1] * 4
    assert len(result.instances) == 2


def test_a_crashed_general_is_logged_once_and_judged_neither_loyal_nor_traitor() -> None:
    books = Accounting(Scenario(generals=4, m=1))
    books.close_round(1, [], crashes=[GeneralCrashed(1, 1)])
    events, result = books.conclude({0: ("attack",), 3: ("attack",)}, crashed={1: 1, 2: 2})
    assert events[:1] == [GeneralCrashed(2, 2)]  # 1's crash is in round 1's lines already
    assert result.crashed == (1, 2)
    assert result.decisions == {0: "attack", 3: "attack"}
    assert result.success


def test_an_instance_whose_loyal_lieutenants_all_crashed_has_no_verdict_in_the_log_or_the_result() -> None:
    """Agreement and validity of nobody: the log's verdict line says no success, as the result does."""
    books = Accounting(Scenario(generals=4, m=1, traitors={3: "flip"}))
    events, result = books.conclude({0: ("attack",)}, crashed={1: 2, 2: 2, 3: 2})
    assert events[-1] == VerdictReached(True, True, False, 0, 2)
    assert result.verdict == Verdict(True, True, decided=False)
    assert (result.success, result.undecided()) == (False, [0])
    assert result.unmet_expectations() == [
        "no loyal lieutenant decided: generals 1, 2 crashed"
    ]  # 3 is a traitor
    one_left = Accounting(Scenario(generals=4, m=1, traitors={3: "flip"}))
    _, alive = one_left.conclude({0: ("attack",), 2: ("attack",), 3: ("attack",)}, crashed={1: 2})
    assert (alive.success, alive.undecided()) == (True, [])


def test_the_first_line_carries_the_scenario_and_what_its_algorithm_publishes() -> None:
    oral = Accounting(FOUR).started()
    assert (oral.schema, oral.seed, oral.public, oral.mode) == (SCHEMA, 0, None, None)
    assert oral.scenario == FOUR.to_dict()
    signed = Scenario(algorithm="sm", generals=4, m=1, seed=3)
    start = Accounting(signed).started(mode="batched", messages_logged=False)
    assert start.public == signed.rules.record(signed.setup)
    assert start.public is not None
    assert sorted(start.public["keys"]) == ["0", "1", "2", "3"]
    assert (start.mode, start.messages_logged) == ("batched", False)
