"""Membership changes in the Raft core (single-server changes, thesis ch. 4):
each test names the rule it checks. Driven through the synchronous
`Network` harness (which runs the SafetyChecker after every step) or by
hand, etcd style.
"""

from __future__ import annotations

import random

import pytest

from prez.raft.core import (
    ConfChangeInProgress,
    ConfChangeRefused,
    NotLeader,
    RaftConfig,
    RaftNode,
    Role,
)
from prez.raft.types import (
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Message,
    MessageType,
    SnapshotMeta,
)
from prez.testing.network import Network

THREE = ["n1", "n2", "n3"]
ADD_VOTER = ConfChangeKind.ADD_VOTER
ADD_LEARNER = ConfChangeKind.ADD_LEARNER
PROMOTE = ConfChangeKind.PROMOTE
REMOVE = ConfChangeKind.REMOVE


def members(voters: list[str], learners: list[str] | None = None) -> Membership:
    return Membership(frozenset(voters), frozenset(learners or []))


def config_entry(index: int, term: int, membership: Membership) -> Entry:
    return Entry(index, term, EntryKind.CONFIG, membership.encode())


def role_of(node: RaftNode) -> Role:
    # (A call, so that mypy does not keep the role narrowed across steps.)
    return node.role


def leader_of_three() -> Network:
    net = Network(THREE)
    net.elect("n1")
    assert net.leaders() == ["n1"]
    return net


def change(net: Network, leader: str, kind: ConfChangeKind, name: str) -> int:
    index = net.nodes[leader].propose_conf_change(ConfChange(kind, name))
    net.stabilize()
    return index


def add_voter_by_learner(net: Network, leader: str, name: str) -> None:
    net.add(name)
    change(net, leader, ADD_LEARNER, name)
    change(net, leader, PROMOTE, name)


# -- the encoding ---------------------------------------------------------------


def test_membership_encoding_is_deterministic_and_round_trips() -> None:
    membership = members(["n3", "n1", "n2"], ["n5", "n4"])
    same = Membership(frozenset(["n2", "n3", "n1"]), frozenset(["n4", "n5"]))
    assert membership.encode() == same.encode()
    assert Membership.decode(membership.encode()) == membership
    assert membership.members == frozenset(["n1", "n2", "n3", "n4", "n5"])


@pytest.mark.parametrize("data", [b"x n1", b"v n1\nl n1", b"v ", b"v n1\n"])
def test_membership_decode_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ValueError):
        Membership.decode(data)


# -- proposing changes ----------------------------------------------------------


def test_a_change_takes_effect_when_appended_on_leader_and_followers() -> None:
    """The new membership is in effect as soon as its entry is appended,
    before it commits, on the leader and on every follower that appends it;
    the driver is told through Ready.membership."""
    net = leader_of_three()
    net.add("n4")
    net.dropped_types.add(MessageType.APPEND_RESP)  # nothing commits
    index = net.nodes["n1"].propose_conf_change(ConfChange(ADD_LEARNER, "n4"))
    leader = net.nodes["n1"]
    assert leader.membership == members(THREE, ["n4"])
    assert leader.conf_change_pending and leader.membership_index == index
    rd = leader.ready()
    assert rd.membership == members(THREE, ["n4"])
    assert [e.kind for e in rd.entries] == [EntryKind.CONFIG]
    net.disks["n1"].persist(rd.hard_state, rd.entries)
    net.outbox.extend(rd.messages + rd.persisted_messages)
    leader.advance(rd)
    net.stabilize()
    for name in ["n2", "n3"]:
        follower = net.nodes[name]
        assert follower.commit_index < index <= follower.last_index
        assert follower.membership == members(THREE, ["n4"])
    assert leader.commit_index < index


def test_a_truncated_change_reverts_the_membership() -> None:
    """A follower that appended a CONFIG entry which the next leader does
    not hold goes back to the membership before it, and tells the driver."""
    node = RaftNode(
        RaftConfig(name="n2", peers=list(THREE)),
        random.Random(1),
        HardState(1, "n1", 0),
        [Entry(1, 1, EntryKind.NOOP)],
    )
    removal = config_entry(2, 1, members(["n1", "n2"]))
    node.step(
        Message(
            MessageType.APPEND, 1, "n1", "n2", index=1, log_term=1, entries=[removal]
        )
    )
    rd = node.ready()
    assert rd.membership == members(["n1", "n2"]) == node.membership
    node.advance(rd)
    # n3 won term 2 without the entry and overwrites index 2.
    replacement = Entry(2, 2, EntryKind.NOOP)
    node.step(
        Message(
            MessageType.APPEND,
            2,
            "n3",
            "n2",
            index=1,
            log_term=1,
            entries=[replacement],
        )
    )
    assert node.membership == members(THREE) and node.membership_index == 0
    rd = node.ready()
    assert rd.membership == members(THREE)
    assert rd.entries == [replacement]


def test_one_change_at_a_time() -> None:
    """A change is refused while another is uncommitted; once it commits,
    the next one is accepted."""
    net = leader_of_three()
    net.add("n4")
    net.add("n5")
    leader = net.nodes["n1"]
    net.dropped_types.add(MessageType.APPEND_RESP)
    leader.propose_conf_change(ConfChange(ADD_LEARNER, "n4"))
    net.stabilize()
    with pytest.raises(ConfChangeInProgress):
        leader.propose_conf_change(ConfChange(ADD_LEARNER, "n5"))
    net.recover()
    net.tick_all(2)  # heartbeats reopen replication; the change commits
    assert not leader.conf_change_pending
    change(net, "n1", ADD_LEARNER, "n5")
    assert leader.membership == members(THREE, ["n4", "n5"])


def test_a_new_leader_commits_an_entry_of_its_term_before_a_change() -> None:
    """Thesis 4.1 fix: until its no-op commits, a leader refuses changes."""
    node = RaftNode(
        RaftConfig(name="n1", peers=list(THREE), pre_vote=False),
        random.Random(1),
        HardState(),
        [],
    )
    node.campaign()
    node.advance(node.ready())
    node.step(Message(MessageType.VOTE_RESP, 1, "n2", "n1"))
    assert node.role is Role.LEADER
    with pytest.raises(ConfChangeInProgress):
        node.propose_conf_change(ConfChange(ADD_LEARNER, "n4"))
    rd = node.ready()
    node.advance(rd)
    node.step(Message(MessageType.APPEND_RESP, 1, "n2", "n1", index=1))
    assert node.commit_index == 1
    assert node.propose_conf_change(ConfChange(ADD_LEARNER, "n4")) == 2


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ADD_VOTER, "n2"),
        (ADD_LEARNER, "n3"),
        (PROMOTE, "n2"),
        (PROMOTE, "n9"),
        (REMOVE, "n9"),
        (ADD_LEARNER, ""),
    ],
)
def test_changes_that_do_not_fit_are_refused(kind: ConfChangeKind, name: str) -> None:
    net = leader_of_three()
    with pytest.raises(ConfChangeRefused) as refused:
        net.nodes["n1"].propose_conf_change(ConfChange(kind, name))
    assert not isinstance(refused.value, ConfChangeInProgress)
    assert net.nodes["n1"].membership == members(THREE)


def test_the_last_voter_cannot_be_removed_and_followers_cannot_change() -> None:
    net = Network(["n1"])
    net.elect("n1")
    with pytest.raises(ConfChangeRefused):
        net.nodes["n1"].propose_conf_change(ConfChange(REMOVE, "n1"))
    three = leader_of_three()
    with pytest.raises(NotLeader):
        three.nodes["n2"].propose_conf_change(ConfChange(ADD_LEARNER, "n4"))


# -- learners ---------------------------------------------------------------------


def test_a_learner_gets_the_log_but_never_counts_toward_commit() -> None:
    """With n2 and n3 cut off, the leader and a learner hold an entry: no
    majority of voters, so it does not commit; n2 back, it does."""
    net = leader_of_three()
    net.add("n4")
    change(net, "n1", ADD_LEARNER, "n4")
    assert net.nodes["n4"].membership == members(THREE, ["n4"])
    net.isolated.update({"n2", "n3"})
    index = net.propose("n1", b"x")
    assert net.nodes["n4"].last_index == index
    assert net.nodes["n1"].commit_index < index
    net.isolated.discard("n2")
    net.tick_all(2)
    assert net.nodes["n1"].commit_index >= index
    assert net.nodes["n4"].commit_index >= index


def test_a_learner_never_campaigns() -> None:
    """Ticks and campaign() leave a learner a follower sending nothing,
    even long after its leader went away."""
    net = leader_of_three()
    net.add("n4")
    change(net, "n1", ADD_LEARNER, "n4")
    net.crash("n1")
    learner = net.nodes["n4"]
    term = learner.term
    for _ in range(100):
        learner.tick()
    learner.campaign()
    net.process("n4")
    assert learner.role is Role.FOLLOWER and learner.term == term
    assert not [m for m in net.outbox if m.src == "n4"]


def test_a_candidate_ignores_grants_from_non_voters() -> None:
    node = RaftNode(
        RaftConfig(name="n1", peers=list(THREE), learners=["n4"], pre_vote=False),
        random.Random(1),
        HardState(),
        [],
    )
    node.campaign()
    rd = node.ready()
    assert sorted(m.dst for m in rd.persisted_messages) == ["n2", "n3"]
    node.advance(rd)
    node.step(Message(MessageType.VOTE_RESP, 1, "n4", "n1"))  # a learner
    node.step(Message(MessageType.VOTE_RESP, 1, "n9", "n1"))  # a stranger
    assert node.role is Role.CANDIDATE
    node.step(Message(MessageType.VOTE_RESP, 1, "n2", "n1"))
    assert role_of(node) is Role.LEADER
    # The learner is replicated to like any follower.
    assert all(node.progress_of(peer) is not None for peer in ["n2", "n3", "n4"])


def test_promoted_learner_counts_and_may_lead() -> None:
    net = leader_of_three()
    add_voter_by_learner(net, "n1", "n4")
    assert net.nodes["n1"].membership == members(["n1", "n2", "n3", "n4"])
    # Four voters: three make a majority, so the leader and n4 alone do not.
    net.isolated.update({"n2", "n3"})
    index = net.propose("n1", b"x")
    assert net.nodes["n1"].commit_index < index
    net.recover()
    net.tick_all(2)
    net.nodes["n1"].transfer_leader("n4")
    net.stabilize()
    assert net.leaders() == ["n4"]


# -- removal ---------------------------------------------------------------------


def test_a_removed_node_cannot_disrupt_the_members() -> None:
    """The leader stops replicating to a node as soon as it appends the
    node's removal, so the removed node may never learn of it and campaign
    on: once the removal is committed, the members drop its vote requests
    (even of a higher term), and the leader leads on."""
    net = leader_of_three()
    index = change(net, "n1", REMOVE, "n3")
    net.tick_all(1)
    assert net.nodes["n2"].commit_index >= index
    removed = net.nodes["n3"]
    assert net.nodes["n1"].progress_of("n3") is None
    terms = {name: net.nodes[name].term for name in ["n1", "n2"]}
    for _ in range(60):
        net.tick_all(1)
    assert net.leaders() == ["n1"]
    assert {name: net.nodes[name].term for name in ["n1", "n2"]} == terms
    assert any(m.src == "n3" for m in net.delivered)  # it did try
    for kind in (MessageType.VOTE, MessageType.PRE_VOTE):
        net.nodes["n2"].step(
            Message(kind, removed.term + 5, "n3", "n2", index=99, log_term=99)
        )
    assert net.nodes["n2"].term == terms["n2"] and not net.nodes["n2"].has_ready()


def test_a_removed_node_that_knows_it_never_campaigns() -> None:
    node = RaftNode(
        RaftConfig(name="n3", peers=list(THREE)),
        random.Random(1),
        HardState(1, "n1", 2),
        [Entry(1, 1, EntryKind.NOOP), config_entry(2, 1, members(["n1", "n2"]))],
    )
    for _ in range(100):
        node.tick()
    node.campaign()
    assert node.role is Role.FOLLOWER and node.term == 1
    assert not node.ready().messages


def test_a_leader_removing_itself_leads_until_committed_then_steps_down() -> None:
    net = leader_of_three()
    leader = net.nodes["n1"]
    net.dropped_types.add(MessageType.APPEND_RESP)
    index = leader.propose_conf_change(ConfChange(REMOVE, "n1"))
    net.stabilize()
    assert leader.role is Role.LEADER and leader.commit_index < index
    # It still replicates (and counts commits without itself).
    later = leader.propose(b"after")
    net.stabilize()
    assert all(net.nodes[n].last_index == later for n in ["n2", "n3"])
    net.recover()
    net.tick_all(1)
    assert role_of(leader) is Role.FOLLOWER
    assert net.nodes["n2"].commit_index >= index
    assert net.nodes["n3"].commit_index >= index
    # A new leader comes from the remaining voters, without n1's vote.
    for _ in range(60):
        net.tick_all(1)
        if net.leaders():
            break
    assert net.leaders() and net.leaders()[0] in ("n2", "n3")
    assert net.nodes["n1"].role is Role.FOLLOWER


def test_removal_commits_without_the_leader_copy() -> None:
    """A leader removing itself from two voters needs only the other one:
    its own durable copy is not counted for the new membership."""
    net = Network(["n1", "n2"])
    net.elect("n1")
    index = net.nodes["n1"].propose_conf_change(ConfChange(REMOVE, "n1"))
    net.stabilize()
    assert net.nodes["n2"].commit_index >= index
    net.tick_all(1)
    net.elect("n2")
    assert net.leaders() == ["n2"]
    assert net.propose("n2", b"alone") == net.nodes["n2"].commit_index


# -- restart and snapshots ------------------------------------------------------------


def test_restart_recovers_the_membership_from_the_log() -> None:
    net = leader_of_three()
    add_voter_by_learner(net, "n1", "n4")
    change(net, "n1", REMOVE, "n2")
    expected = members(["n1", "n3", "n4"])
    for name in ["n1", "n3", "n4"]:
        net.crash(name)
        node = net.start(name)
        assert node.membership == expected
    # Before the first change: the bootstrap membership.
    assert net.nodes["n1"].membership_at(1) == members(THREE)


def test_restart_with_an_uncommitted_config_entry_holds_it() -> None:
    """The durable log's newest CONFIG entry is in effect after a restart,
    committed or not."""
    entries = [
        Entry(1, 1, EntryKind.NOOP),
        config_entry(2, 1, members(THREE, ["n4"])),
    ]
    node = RaftNode(
        RaftConfig(name="n2", peers=list(THREE)),
        random.Random(1),
        HardState(1, "n1", 1),
        entries,
    )
    assert node.membership == members(THREE, ["n4"])
    assert node.conf_change_pending


def test_snapshot_carries_the_membership_through_compaction_and_restart() -> None:
    net = leader_of_three()
    add_voter_by_learner(net, "n1", "n4")
    net.propose("n1", b"x")
    net.tick_all(1)
    snapshot = net.compact("n1")
    assert snapshot.config == members(["n1", "n2", "n3", "n4"])
    meta = net.nodes["n1"].snapshot
    assert meta is not None and meta.config == snapshot.config
    assert net.nodes["n1"].membership_index == 0  # its entry was compacted
    net.crash("n1")
    restarted = net.start("n1")
    assert restarted.membership == members(["n1", "n2", "n3", "n4"])
    # SnapshotMeta equality stays (index, term): the membership follows.
    assert SnapshotMeta(meta.index, meta.term) == meta


def test_a_follower_installs_the_membership_of_a_snapshot() -> None:
    """A new learner caught up by InstallSnapshot takes the snapshot's
    membership (the driver passes it as the stepped message's context)."""
    net = leader_of_three()
    add_voter_by_learner(net, "n1", "n4")
    net.propose("n1", b"x")
    net.tick_all(1)
    net.compact("n1")
    net.add("n5")
    change(net, "n1", ADD_LEARNER, "n5")
    net.tick_all(2)
    n5 = net.nodes["n5"]
    assert any(dst == "n5" and ok for _, dst, ok in net.transfers)
    assert n5.snapshot is not None
    assert n5.snapshot.config == members(["n1", "n2", "n3", "n4"])
    assert n5.membership == members(["n1", "n2", "n3", "n4"], ["n5"])
    assert n5.commit_index == net.nodes["n1"].commit_index


def test_membership_at_rejects_indexes_outside_the_log() -> None:
    net = leader_of_three()
    with pytest.raises(ValueError):
        net.nodes["n1"].membership_at(net.nodes["n1"].last_index + 1)


def test_config_validation_knows_learners() -> None:
    RaftConfig(name="n4", peers=list(THREE), learners=["n4"]).validate()
    for bad in (
        RaftConfig(name="n4", peers=list(THREE)),
        RaftConfig(name="n1", peers=list(THREE), learners=["n1"]),
        RaftConfig(name="n1", peers=[], learners=["n1"]),
    ):
        with pytest.raises(ValueError):
            bad.validate()
