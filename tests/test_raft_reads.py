"""Linearizable reads (ReadIndex, lease) and leadership transfer in the Raft
core (prez.raft.core), driven through the synchronous `Network` harness of
prez.testing.sim. Each test's docstring names the rule it checks.
"""

from __future__ import annotations

import pytest

from prez.raft.core import (
    LeadershipTransferring,
    NotLeader,
    RaftConfig,
    Role,
)
from prez.raft.types import (
    READ_FAILED,
    TRANSFER_CONTEXT,
    Message,
    MessageType,
    ReadState,
)
from prez.testing.network import Network

THREE = ["n1", "n2", "n3"]
FIVE = ["n1", "n2", "n3", "n4", "n5"]
ELECTION_TICKS = 10
DRIFT_TICKS = 2


def lease_mode(config: RaftConfig) -> None:
    config.read_mode = "lease"
    config.lease_drift_ticks = DRIFT_TICKS


def cluster(configure=None, names: list[str] | None = None) -> Network:  # type: ignore[no-untyped-def]
    """A cluster with n1 elected and its no-op committed everywhere."""
    net = Network(names or THREE, configure=configure)
    net.elect("n1")
    assert net.leaders() == ["n1"]
    assert net.nodes["n1"].commit_index == 1
    return net


def elect_without(net: Network, gone: str, name: str) -> None:
    """With `gone` cut off, let the followers' leases run out (they ignore
    vote requests while they hear from a leader), then elect `name`."""
    net.isolated.add(gone)
    for peer in net.nodes:
        if peer not in (gone, name):
            net.tick(peer, ELECTION_TICKS)
    net.elect(name)
    assert net.nodes[name].role is Role.LEADER


def count(messages: list[Message], kind: int) -> int:
    return sum(1 for msg in messages if msg.type == kind)


def test_new_leader_serves_no_read_before_its_noop_commits() -> None:
    """Thesis 6.4 step 1: a new leader's commit index may lag what an
    earlier leader committed until an entry of its own term commits."""
    net = Network(THREE)
    net.dropped_types.add(MessageType.APPEND)
    leader = net.elect("n1")
    assert leader.role is Role.LEADER and leader.commit_index == 0
    leader.read_index(b"early")
    net.stabilize()
    net.tick_all(3)  # heartbeats flow and are answered: still no no-op
    assert net.read_states["n1"] == []
    net.dropped_types.clear()
    net.tick_all(1)
    assert leader.commit_index == 1
    assert net.read_states["n1"] == [ReadState(1, b"early")]


def test_one_heartbeat_round_confirms_a_batch_of_reads() -> None:
    """Requests since the last Ready share one heartbeat round, and none is
    answered before a majority answered that round."""
    net = cluster()
    leader = net.nodes["n1"]
    net.propose("n1", b"x")
    first = len(net.delivered)
    for context in (b"a", b"b", b"c"):
        leader.read_index(context)
    net.process("n1")
    assert net.read_states["n1"] == []
    assert count(list(net.outbox), MessageType.HEARTBEAT) == 2  # one per follower
    net.stabilize()
    assert net.read_states["n1"] == [ReadState(2, c) for c in (b"a", b"b", b"c")]
    assert count(net.delivered[first:], MessageType.HEARTBEAT) == 2


def test_one_follower_answer_makes_a_majority_of_three() -> None:
    """With n3 cut off, n1 and n2 still make a majority and confirm."""
    net = cluster()
    net.isolated.add("n3")
    net.nodes["n1"].read_index(b"r")
    net.stabilize()
    assert net.read_states["n1"] == [ReadState(1, b"r")]


def test_follower_gets_the_read_index_from_the_leader() -> None:
    """A follower forwards READ_INDEX; the leader confirms and answers with
    its commit index, which the follower hands out as a ReadState."""
    net = cluster()
    net.propose("n1", b"x")
    net.propose("n1", b"y")
    net.nodes["n2"].read_index(b"f")
    net.stabilize()
    assert net.read_states["n2"] == [ReadState(3, b"f")]
    kinds = [msg.type for msg in net.delivered]
    assert MessageType.READ_INDEX in kinds and MessageType.READ_INDEX_RESP in kinds


def test_follower_without_a_leader_fails_the_read_at_once() -> None:
    net = Network(THREE)
    net.nodes["n2"].read_index(b"f")
    net.process("n2")
    assert net.read_states["n2"] == [ReadState(READ_FAILED, b"f")]
    assert net.read_states["n2"][0].failed


def test_follower_fails_forwarded_reads_when_its_leader_changes() -> None:
    net = cluster()
    net.dropped_types.add(MessageType.READ_INDEX)
    net.nodes["n2"].read_index(b"lost")
    net.stabilize()
    assert net.read_states["n2"] == []
    net.dropped_types.clear()
    elect_without(net, "n1", "n3")
    assert net.nodes["n2"].leader == "n3"
    assert net.read_states["n2"] == [ReadState(READ_FAILED, b"lost")]


def test_forwarded_read_whose_message_is_lost_times_out() -> None:
    """No answer within two election timeouts: the request fails instead
    of hanging (the leader stays, so nothing else would end it)."""
    net = cluster()
    net.dropped_types.add(MessageType.READ_INDEX)
    net.nodes["n2"].read_index(b"lost")
    net.tick_all(2 * ELECTION_TICKS - 1)
    assert net.read_states["n2"] == []
    net.tick_all(1)
    assert net.read_states["n2"] == [ReadState(READ_FAILED, b"lost")]
    assert net.leaders() == ["n1"]


def test_follower_read_index_in_a_three_node_cluster_needs_no_round() -> None:
    """The READ_INDEX was made in the leader's term after its reads
    arrived: its sender and the leader are a majority of three, so the
    leader answers at once, even with every heartbeat answer lost."""
    net = cluster()
    net.propose("n1", b"x")
    net.dropped_types.add(MessageType.HEARTBEAT_RESP)
    first = len(net.delivered)
    net.nodes["n2"].read_index(b"f")
    net.stabilize()
    assert net.read_states["n2"] == [ReadState(2, b"f")]
    assert count(net.delivered[first:], MessageType.HEARTBEAT) == 0


def assert_read_waits_for_a_round(net: Network, reader: str) -> None:
    """`reader`'s read index comes only once the leader's heartbeat round
    is answered: never while the answers are lost."""
    net.dropped_types.add(MessageType.HEARTBEAT_RESP)
    net.nodes[reader].read_index(b"r")
    net.stabilize()
    assert net.read_states[reader] == []
    net.dropped_types.clear()
    net.tick_all(1)
    net.stabilize()
    assert net.read_states[reader] == [ReadState(1, b"r")]


def test_follower_read_index_in_a_five_node_cluster_still_needs_a_round() -> None:
    """Sender and leader are two of five: a heartbeat round must bring the
    rest of a majority, and without its answers no read index is given."""
    assert_read_waits_for_a_round(cluster(names=FIVE), "n2")


def test_old_leader_and_one_follower_of_five_never_answer_a_read() -> None:
    """Cut off with one follower, a leader of five hears that follower's
    READ_INDEX but two votes are no majority: while the other three elect
    a leader and commit a write, the follower's read gets no old index."""

    def no_check_quorum(config: RaftConfig) -> None:
        config.check_quorum = False  # so that n1 keeps leading on its side

    net = cluster(no_check_quorum, names=FIVE)
    minority, majority = ["n1", "n2"], ["n3", "n4", "n5"]
    for a in minority:
        for b in majority:
            net.cut.add(frozenset((a, b)))
    for peer in majority:
        if peer != "n3":
            net.tick(peer, ELECTION_TICKS)
    net.elect("n3")
    index = net.propose("n3", b"new")
    assert net.nodes["n5"].commit_index == index
    net.nodes["n2"].read_index(b"stale?")
    net.tick_all(ELECTION_TICKS)
    assert net.nodes["n1"].role is Role.LEADER
    assert net.read_states["n2"] in ([], [ReadState(READ_FAILED, b"stale?")])


def test_learner_read_index_is_no_vote_and_needs_a_round() -> None:
    """A learner cannot vote, so its request proves nothing about who may
    lead: the leader confirms it with a round like its own reads."""

    def with_learner(config: RaftConfig) -> None:
        config.peers = list(THREE)
        config.learners = ["n4"]

    assert_read_waits_for_a_round(cluster(with_learner, names=[*THREE, "n4"]), "n4")


def test_leader_that_steps_down_fails_its_and_its_followers_reads() -> None:
    # Five nodes, so that the follower's request also waits for a round.
    net = cluster(names=FIVE)
    net.dropped_types.add(MessageType.HEARTBEAT_RESP)
    net.nodes["n1"].read_index(b"own")
    net.nodes["n2"].read_index(b"fwd")
    net.stabilize()
    assert net.read_states["n1"] == [] and net.read_states["n2"] == []
    # A message of a later term deposes n1 (as a new leader's would).
    net.nodes["n1"].step(Message(MessageType.APPEND_RESP, 5, "n3", "n1"))
    net.stabilize()
    assert net.nodes["n1"].role is Role.FOLLOWER
    assert net.read_states["n1"] == [ReadState(READ_FAILED, b"own")]
    assert net.read_states["n2"] == [ReadState(READ_FAILED, b"fwd")]


@pytest.mark.parametrize("check_quorum", [True, False])
def test_partitioned_old_leader_never_confirms_a_read(check_quorum: bool) -> None:
    """The old leader cut off from the majority cannot get a majority to
    answer a round, so it produces no ReadState (its requests fail), while
    the majority elects a new leader that serves reads and writes."""

    def configure(config: RaftConfig) -> None:
        config.check_quorum = check_quorum

    net = cluster(configure)
    net.isolated.add("n1")
    net.nodes["n1"].read_index(b"stale?")
    elect_without(net, "n1", "n2")
    index = net.propose("n2", b"new")
    net.nodes["n3"].read_index(b"fresh")
    net.tick_all(2 * ELECTION_TICKS)
    assert net.read_states["n1"] == [ReadState(READ_FAILED, b"stale?")]
    assert net.read_states["n3"] == [ReadState(index, b"fresh")]


def test_lease_read_needs_no_message_while_the_lease_holds() -> None:
    """Lease mode: after a majority answered a heartbeat sent less than
    election_ticks - lease_drift_ticks ago, reads are answered at once."""
    net = cluster(lease_mode)
    net.tick_all(1)  # a heartbeat round, answered by both followers
    leader = net.nodes["n1"]
    assert leader.lease_valid
    before = len(net.delivered)
    leader.read_index(b"lease")
    net.stabilize()
    assert net.read_states["n1"] == [ReadState(1, b"lease")]
    assert len(net.delivered) == before


def test_lease_expires_and_reads_fall_back_to_read_index() -> None:
    """Cut off, the leader keeps its lease for exactly election_ticks -
    lease_drift_ticks ticks after sending the last answered heartbeat,
    then needs a round (which it cannot complete) for every read."""
    net = cluster(lease_mode)
    net.tick_all(1)  # the last round answered, sent at this tick
    net.isolated.update({"n2", "n3"})
    leader = net.nodes["n1"]
    lease = ELECTION_TICKS - DRIFT_TICKS
    net.tick("n1", lease - 1)
    assert leader.lease_valid
    leader.read_index(b"in-lease")
    net.process("n1")
    assert net.read_states["n1"] == [ReadState(1, b"in-lease")]
    net.tick("n1", 1)
    assert not leader.lease_valid and leader.role is Role.LEADER
    leader.read_index(b"after")
    net.process("n1")
    assert count(list(net.outbox), MessageType.HEARTBEAT) >= 2
    net.stabilize()
    assert net.read_states["n1"] == [ReadState(1, b"in-lease")]
    # Healed, the next round confirms it the ReadIndex way.
    net.recover()
    net.tick_all(1)
    assert net.read_states["n1"][-1] == ReadState(1, b"after")


def test_lease_mode_follower_read_is_answered_from_the_lease() -> None:
    net = cluster(lease_mode)
    net.tick_all(1)
    first = len(net.delivered)
    net.nodes["n3"].read_index(b"f")
    net.stabilize()
    assert net.read_states["n3"] == [ReadState(1, b"f")]
    kinds = [msg.type for msg in net.delivered[first:]]
    assert kinds == [MessageType.READ_INDEX, MessageType.READ_INDEX_RESP]


def test_lease_mode_restarted_node_honours_the_lease_it_may_have_granted() -> None:
    """A node restarted in lease mode refuses votes for an election timeout:
    before the crash it may have answered the leader's heartbeat."""
    net = cluster(lease_mode)
    net.crash("n2")
    net.start("n2")
    vote = Message(MessageType.VOTE, 9, "n3", "n2", index=5, log_term=5)
    net.nodes["n2"].step(vote)
    net.process("n2")
    assert net.nodes["n2"].term == 1 and net.nodes["n2"].vote != "n3"
    net.isolated.add("n2")
    net.tick("n2", ELECTION_TICKS - 1)
    net.nodes["n2"].step(vote)
    assert net.nodes["n2"].term == 1
    net.tick("n2", 1)
    net.nodes["n2"].step(vote)
    assert net.nodes["n2"].term == 9 and net.nodes["n2"].vote == "n3"


def test_transfer_brings_the_target_up_to_date_and_hands_over() -> None:
    """The leader stops taking writes, catches the lagging target up, sends
    TIMEOUT_NOW; the target wins at once although every voter still hears
    from the old leader (the vote carries the transfer flag)."""
    net = cluster()
    net.cut.add(frozenset(("n1", "n3")))
    for value in (b"a", b"b", b"c"):
        net.propose("n1", value)
    leader = net.nodes["n1"]
    assert leader.progress_of("n3").match < leader.last_index  # type: ignore[union-attr]
    leader.transfer_leader("n3")
    assert leader.transferring_to == "n3"
    with pytest.raises(LeadershipTransferring) as refused:
        leader.propose(b"refused")
    assert isinstance(refused.value, NotLeader) and refused.value.leader == "n3"
    net.recover()
    first = len(net.delivered)
    net.tick_all(1)
    target = net.nodes["n3"]
    assert target.role is Role.LEADER and target.term == 2
    assert net.leaders() == ["n3"]
    assert leader.transferring_to is None
    timeout_now = [m for m in net.delivered if m.type == MessageType.TIMEOUT_NOW]
    assert len(timeout_now) == 1
    votes = [m for m in net.delivered[first:] if m.type == MessageType.VOTE]
    assert votes and all(m.context == TRANSFER_CONTEXT for m in votes)
    # Nothing was lost: the target holds every entry, and commits its own.
    assert [e.data for e in net.applied["n3"] if e.data][:3] == [b"a", b"b", b"c"]
    net.propose("n3", b"after")
    assert net.applied["n1"][-1].data == b"after"


def test_transfer_to_an_up_to_date_target_sends_timeout_now_at_once() -> None:
    net = cluster()
    net.nodes["n1"].transfer_leader("n2")
    net.stabilize()
    assert net.leaders() == ["n2"]


def test_transfer_to_an_unreachable_node_times_out_and_the_leader_resumes() -> None:
    net = cluster()
    net.isolated.add("n3")
    leader = net.nodes["n1"]
    leader.transfer_leader("n3")
    net.tick_all(ELECTION_TICKS - 1)
    assert leader.transferring_to == "n3"
    with pytest.raises(LeadershipTransferring):
        leader.propose(b"refused")
    net.tick_all(1)
    assert leader.transferring_to is None and leader.role is Role.LEADER
    index = net.propose("n1", b"resumed")
    assert leader.commit_index == index


def test_ordinary_vote_is_still_ignored_while_a_leader_is_heard() -> None:
    """Only the transfer flag lifts the followers' lease: a plain vote
    request of a later term is dropped (thesis 4.2.3)."""
    net = cluster()
    follower = net.nodes["n2"]
    last = follower.last_index
    follower.step(Message(MessageType.VOTE, 5, "n3", "n2", index=last, log_term=1))
    assert follower.term == 1
    follower.step(
        Message(
            MessageType.VOTE,
            5,
            "n3",
            "n2",
            index=last,
            log_term=1,
            context=TRANSFER_CONTEXT,
        )
    )
    assert follower.term == 5 and follower.vote == "n3"


def test_transfer_is_refused_by_a_follower_and_for_strangers() -> None:
    net = cluster()
    with pytest.raises(NotLeader):
        net.nodes["n2"].transfer_leader("n3")
    with pytest.raises(ValueError):
        net.nodes["n1"].transfer_leader("n9")


def test_single_node_answers_reads_alone() -> None:
    net = Network(["solo"])
    net.elect("solo")
    net.nodes["solo"].read_index(b"r")
    net.stabilize()
    assert net.read_states["solo"] == [ReadState(1, b"r")]


@pytest.mark.parametrize(
    "changes",
    [
        {"read_mode": "eventual"},
        {"read_mode": "lease", "check_quorum": False},
        {"read_mode": "lease", "lease_drift_ticks": 0},
        {"read_mode": "lease", "lease_drift_ticks": 9},
    ],
)
def test_read_config_is_validated(changes: dict[str, object]) -> None:
    """Unknown modes, a lease without CheckQuorum (followers would not keep
    the promise it rests on) and drift margins that leave no lease."""
    config = RaftConfig(name="n1", peers=THREE, **changes)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        config.validate()
