"""Majorities: the one place the core computes them (etcd's quorum/).

Every decision that needs "a majority of the voters" goes through these
three functions: how many votes make a majority (`majority`), the value
that a majority has reached, such as the committed index, the newest
confirmed heartbeat round or the oldest lease date a majority supports
(`quorum_index`), and the outcome of an election (`vote_result`).

The core uses single-server membership changes (see prez.raft.confchange),
never joint consensus, so a membership has one set of voters and a majority
is always of that one set; learners never count. The caller picks the
values to count (the voters', its own only if it is one) and the number
needed. tests/test_raft_quorum.py checks these against brute force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum


def majority(voters: int) -> int:
    """How many of `voters` voters make a majority (more than half)."""
    return voters // 2 + 1


def quorum_index(values: Iterable[int], needed: int) -> int | None:
    """The largest value that at least `needed` of `values` reach (>=): the
    `needed`-th largest. None when there are fewer than `needed` values.

    With the match index of each voter and `needed` a majority, this is the
    index a majority holds (the commit candidate); with the heartbeat round
    each voter answered, the newest round a majority confirmed. `needed`
    must be at least 1.
    """
    ordered = sorted(values, reverse=True)
    if len(ordered) < needed:
        return None
    return ordered[needed - 1]


class VoteResult(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def vote_result(votes: Mapping[str, bool], quorum: int) -> VoteResult:
    """An election's state from the answers so far (voter -> granted): won
    once `quorum` granted, lost once `quorum` refused, else pending.

    `votes` must hold voters only (the caller drops learners' and
    strangers' answers)."""
    granted = sum(votes.values())
    if granted >= quorum:
        return VoteResult.WON
    if len(votes) - granted >= quorum:
        return VoteResult.LOST
    return VoteResult.PENDING
