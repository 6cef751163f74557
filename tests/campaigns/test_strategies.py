"""Each strategy's ranking on hand-built agent sets."""

import datetime
import random
from collections import Counter

import pytest

from campaigns.strategies import Candidate, LastServed, rank

T = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def ids(ranked):
    return [c.agent_id for c in ranked]


def agent(agent_id, *, member_id=None, **kwargs):
    return Candidate(agent_id=agent_id, member_id=member_id or agent_id, **kwargs)


def test_leastrecent_prefers_never_then_longest_ago():
    agents = [
        agent(1, last_finished_at=T),
        agent(2, last_finished_at=T - datetime.timedelta(hours=2)),
        agent(3, last_finished_at=None),
        agent(4, last_finished_at=T - datetime.timedelta(minutes=5)),
    ]
    assert ids(rank("leastrecent", agents)) == [3, 2, 4, 1]


def test_leastrecent_ties_go_by_member_position():
    agents = [
        agent(1, position=3, last_finished_at=None),
        agent(2, position=1, last_finished_at=None),
    ]
    assert ids(rank("leastrecent", agents)) == [2, 1]


def test_fewestcalls_prefers_fewest_finished_today_ties_by_position():
    agents = [
        agent(1, finished_today=4),
        agent(2, finished_today=1, position=2),
        agent(3, finished_today=1, position=1),
        agent(4, finished_today=0),
    ]
    assert ids(rank("fewestcalls", agents)) == [4, 3, 2, 1]


def test_penalty_is_a_strict_tier():
    agents = [
        agent(1, penalty=5, finished_today=0),
        agent(2, penalty=0, finished_today=9),
        agent(3, penalty=1, finished_today=0),
        agent(4, penalty=0, finished_today=3),
    ]
    assert ids(rank("fewestcalls", agents)) == [4, 2, 3, 1]


def test_linear_always_starts_from_the_first_position():
    agents = [agent(1, position=2), agent(2, position=0), agent(3, position=1)]
    first = rank("linear", agents, last_served=LastServed(member_id=2, position=0))
    assert ids(first) == [2, 3, 1]
    assert ids(rank("linear", agents)) == [2, 3, 1]


def test_rrordered_starts_after_the_last_served_in_position_order():
    agents = [agent(1, position=2), agent(2, position=0), agent(3, position=1)]
    assert ids(rank("rrordered", agents)) == [2, 3, 1]
    assert ids(rank("rrordered", agents, last_served=LastServed(member_id=2, position=0))) == [
        3,
        1,
        2,
    ]
    # Wraps around after the last position.
    assert ids(rank("rrordered", agents, last_served=LastServed(member_id=1, position=2))) == [
        2,
        3,
        1,
    ]


def test_rrmemory_rotates_in_join_order_and_remembers_across_calls():
    agents = [agent(10, member_id=3), agent(11, member_id=1), agent(12, member_id=2)]
    served = []
    last = None
    for _ in range(5):
        best = rank("rrmemory", agents, last_served=last)[0]
        served.append(best.agent_id)
        last = LastServed(member_id=best.member_id, position=best.position)
    assert served == [11, 12, 10, 11, 12]


def test_round_robin_continues_when_the_last_served_is_busy_now():
    # Member 2 was served last and is not eligible now: start after it anyway.
    agents = [agent(1, member_id=1), agent(3, member_id=3), agent(4, member_id=4)]
    ranked = rank("rrmemory", agents, last_served=LastServed(member_id=2, position=0))
    assert ids(ranked) == [3, 4, 1]


def test_random_is_uniform_within_a_tier_and_keeps_tiers():
    agents = [agent(1), agent(2), agent(3), agent(9, penalty=1)]
    rng = random.Random(7)
    firsts = Counter(rank("random", agents, rng=rng)[0].agent_id for _ in range(3000))
    assert set(firsts) == {1, 2, 3}
    assert all(900 <= n <= 1100 for n in firsts.values())
    assert all(rank("random", agents, rng=rng)[-1].agent_id == 9 for _ in range(50))


def test_wrandom_higher_penalty_lowers_the_odds_but_does_not_exclude():
    agents = [agent(1, penalty=0), agent(2, penalty=3)]
    rng = random.Random(11)
    firsts = Counter(rank("wrandom", agents, rng=rng)[0].agent_id for _ in range(4000))
    assert firsts[1] > firsts[2] * 3
    assert firsts[2] > 0


def test_ringall_lists_every_agent_in_member_order():
    agents = [agent(1, position=1), agent(2, position=0, penalty=1), agent(3, position=0)]
    assert ids(rank("ringall", agents)) == [3, 1, 2]


def test_empty_and_single_sets():
    assert rank("leastrecent", []) == []
    assert ids(rank("wrandom", [agent(5)])) == [5]


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="Unknown routing strategy"):
        rank("roundabout", [agent(1)])
