"""Routing strategies: each ranks the eligible agents for one interaction.

Pure functions over plain data, so each is tested on hand-built agent sets;
the routing service does the querying and the locking. Semantics follow
Asterisk's app_queue as uContact exposes it, for chat:

- The member penalty is a strict tier: every agent of the lowest penalty is
  ranked before any agent of the next one (all strategies but wrandom).
- ringall is not ranked here: the interaction is offered to every eligible
  agent and the first to take it wins (see routing.interaction_take).
"""

import datetime
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

RINGALL = "ringall"
LEASTRECENT = "leastrecent"
FEWESTCALLS = "fewestcalls"
RANDOM = "random"
RRMEMORY = "rrmemory"
RRORDERED = "rrordered"
LINEAR = "linear"
WRANDOM = "wrandom"

# The strategies that remember the last agent served in the campaign.
ROUND_ROBIN = frozenset({RRMEMORY, RRORDERED})


@dataclass(frozen=True)
class Candidate:
    """An eligible agent as the strategies see them."""

    agent_id: int
    member_id: int
    penalty: int = 0
    position: int = 0
    # When this agent's last interaction in the campaign ended; None = never.
    last_finished_at: datetime.datetime | None = None
    # Interactions this agent finished in the campaign today.
    finished_today: int = 0


@dataclass(frozen=True)
class LastServed:
    """Where the round robin stopped: the member served last."""

    member_id: int
    position: int


def _join_order(c: Candidate) -> tuple:
    return (c.member_id,)


def _member_order(c: Candidate) -> tuple:
    return (c.position, c.member_id)


def _rotate_after(
    tier: list[Candidate], order: Callable[[Candidate], tuple], last: LastServed | None
) -> list[Candidate]:
    """Sort `tier` by `order` and start just after the last agent served."""
    tier = sorted(tier, key=order)
    if last is None:
        return tier
    last_key = order(Candidate(agent_id=0, member_id=last.member_id, position=last.position))
    start = next((i for i, c in enumerate(tier) if order(c) > last_key), 0)
    return tier[start:] + tier[:start]


def rank(
    strategy: str,
    candidates: Sequence[Candidate],
    *,
    last_served: LastServed | None = None,
    rng: random.Random | None = None,
) -> list[Candidate]:
    """Return `candidates` best first under `strategy`."""
    rng = rng or random.Random()
    if strategy == WRANDOM:
        # As Asterisk: a random draw below (1 + penalty) * 1000, lowest wins,
        # so a higher penalty lowers the odds without excluding the agent.
        drawn = [(rng.randrange((1 + c.penalty) * 1000), c.member_id, c) for c in candidates]
        return [c for *_, c in sorted(drawn)]

    def order_tier(tier: list[Candidate]) -> list[Candidate]:
        if strategy == LEASTRECENT:
            never = datetime.datetime.min.replace(tzinfo=datetime.UTC)
            return sorted(
                tier, key=lambda c: (c.last_finished_at or never, c.position, c.member_id)
            )
        if strategy == FEWESTCALLS:
            return sorted(tier, key=lambda c: (c.finished_today, c.position, c.member_id))
        if strategy == RANDOM:
            shuffled = list(tier)
            rng.shuffle(shuffled)
            return shuffled
        if strategy == RRMEMORY:
            return _rotate_after(tier, _join_order, last_served)
        if strategy == RRORDERED:
            return _rotate_after(tier, _member_order, last_served)
        if strategy in (LINEAR, RINGALL):
            return sorted(tier, key=_member_order)
        raise ValueError(f"Unknown routing strategy {strategy!r}")

    by_penalty = sorted(candidates, key=lambda c: c.penalty)
    ranked: list[Candidate] = []
    for _, tier in groupby(by_penalty, key=lambda c: c.penalty):
        ranked.extend(order_tier(list(tier)))
    return ranked
