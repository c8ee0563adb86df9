"""The quorum computations (prez.raft.quorum) against naive versions, as
etcd tests its optimized quorum against a brute-force one.

The naive versions enumerate subsets of voters: a majority is any set of
voters with more than half of them; the committed index is the largest
index that every member of some majority holds; an election is won when
some majority granted, lost when some majority refused. Then the same on a
real `RaftNode`, with learners (whose answers and matches must count for
nothing) and every number of voters from one to seven.
"""

from __future__ import annotations

import random
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from prez.raft.core import RaftConfig, RaftNode, Role
from prez.raft.quorum import VoteResult, majority, quorum_index, vote_result
from prez.raft.types import HardState, Message, MessageType


def majorities(voters: list[str]) -> list[tuple[str, ...]]:
    """Every set of voters with more than half of them."""
    return [
        subset
        for size in range(len(voters) + 1)
        for subset in combinations(voters, size)
        if 2 * len(subset) > len(voters)
    ]


def naive_committed(voters: list[str], match: dict[str, int]) -> int:
    """The largest index all members of some majority hold."""
    return max(min(match[v] for v in subset) for subset in majorities(voters))


def naive_vote(voters: list[str], votes: dict[str, bool]) -> VoteResult:
    granted = [v for v in voters if votes.get(v) is True]
    refused = [v for v in voters if votes.get(v) is False]
    won = any(set(s) <= set(granted) for s in majorities(voters))
    lost = any(set(s) <= set(refused) for s in majorities(voters))
    assert not (won and lost)  # two majorities always share a voter
    if won:
        return VoteResult.WON
    return VoteResult.LOST if lost else VoteResult.PENDING


NAMES = [f"n{i}" for i in range(10)]


@st.composite
def memberships(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """(voters, learners): one to seven voters, up to three learners."""
    names = draw(st.permutations(NAMES))
    voters = draw(st.integers(1, 7))
    learners = draw(st.integers(0, 3))
    return sorted(names[:voters]), sorted(names[voters : voters + learners])


@given(st.integers(0, 12))
def test_majority_is_the_smallest_count_that_any_two_share_a_voter(n: int) -> None:
    smallest = min(k for k in range(n + 2) if 2 * k > n)
    assert majority(n) == smallest
    # Any two sets of that size among n voters overlap; one fewer may not.
    assert 2 * majority(n) > n >= 2 * (majority(n) - 1)


@given(st.lists(st.integers(0, 20), max_size=9), st.integers(1, 10))
def test_quorum_index_is_the_largest_value_needed_values_reach(
    values: list[int], needed: int
) -> None:
    reached = [x for x in set(values) if sum(v >= x for v in values) >= needed]
    expected = max(reached) if reached else None
    assert quorum_index(values, needed) == expected
    assert quorum_index(iter(values), needed) == expected  # any iterable


@given(memberships(), st.data())
def test_committed_index_is_what_a_majority_of_voters_holds(
    membership: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    voters, learners = membership
    match = {v: data.draw(st.integers(0, 30)) for v in voters + learners}
    committed = quorum_index((match[v] for v in voters), majority(len(voters)))
    assert committed == naive_committed(voters, match)


@given(memberships(), st.data())
def test_vote_result_matches_counting_majorities(
    membership: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    voters, _ = membership
    answered = data.draw(st.lists(st.sampled_from(voters), unique=True))
    votes = {v: data.draw(st.booleans()) for v in answered}
    assert vote_result(votes, majority(len(voters))) == naive_vote(voters, votes)


# -- the same through a real node -------------------------------------------


def node_of(name: str, voters: list[str], learners: list[str]) -> RaftNode:
    config = RaftConfig(
        name=name, peers=voters, learners=learners, pre_vote=False, check_quorum=False
    )
    return RaftNode(config, random.Random(0), HardState(), [])


@settings(max_examples=150, deadline=None)
@given(memberships(), st.data())
def test_a_candidate_wins_or_loses_as_the_naive_count_says(
    membership: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    voters, learners = membership
    me = voters[0]
    node = node_of(me, voters, learners)
    node.campaign()
    votes: dict[str, bool] = {me: True}
    expected = naive_vote(voters, votes)
    # Answers arrive one at a time, learners' too (which must not count);
    # the node decides on the first answer that settles the election.
    others = [n for n in voters + learners if n != me]
    for src in data.draw(st.permutations(others)):
        if expected is not VoteResult.PENDING:
            break
        granted = data.draw(st.booleans())
        node.step(Message(MessageType.VOTE_RESP, 1, src, me, reject=not granted))
        if src in voters:
            votes[src] = granted
        expected = naive_vote(voters, votes)
    role = {
        VoteResult.WON: Role.LEADER,
        VoteResult.LOST: Role.FOLLOWER,
        VoteResult.PENDING: Role.CANDIDATE,
    }[expected]
    assert node.role is role


@settings(max_examples=150, deadline=None)
@given(memberships(), st.data())
def test_a_leader_commits_what_a_majority_of_voters_holds(
    membership: tuple[list[str], list[str]], data: st.DataObject
) -> None:
    voters, learners = membership
    me = voters[0]
    node = node_of(me, voters, learners)
    node.campaign()
    for peer in voters[1:]:
        node.step(Message(MessageType.VOTE_RESP, 1, peer, me))
    assert node.role is Role.LEADER
    # Entries 1 (the no-op) to 1 + proposed, all of this term; the leader's
    # own copy counts only up to what an advance() reported durable.
    durable = data.draw(st.integers(0, 6))
    proposed = durable + data.draw(st.integers(0, 6))
    for i in range(durable):
        node.propose(b"%d" % i)
    node.advance(node.ready())
    for i in range(durable, proposed):
        node.propose(b"%d" % i)
    node.ready()  # handed out, not yet durable
    last = node.last_index
    assert last == 1 + proposed
    match = {me: node.persisted_index}
    for peer in data.draw(st.permutations(voters[1:] + learners)):
        match[peer] = data.draw(st.integers(0, last))
        if match[peer]:
            node.step(Message(MessageType.APPEND_RESP, 1, peer, me, index=match[peer]))
    assert node.commit_index == naive_committed(voters, match)
