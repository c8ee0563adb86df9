"""Focused tests of the Raft core (prez.raft), etcd style: set up nodes, drive
them through step/tick/propose and the Ready contract, check state and the
messages that come out. Each test's docstring names the rule it checks.
"""

from __future__ import annotations

import random

import pytest

from prez.raft.core import (
    NotLeader,
    Progress,
    ProgressState,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
)
from prez.raft.log import RaftLog
from prez.raft.ready_loop import ReadyLoop
from prez.raft.types import (
    MAX_TERM,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    SnapshotMeta,
)
from prez.testing.invariants import InvariantViolation
from prez.testing.network import Network, log_with_terms
from prez.testing.sim import run_seed
from prez.testing.simdisk import Disk, SnapshotFile
from prez.testing.simnodes import SimFailure

THREE = ["n1", "n2", "n3"]
FIVE = ["n1", "n2", "n3", "n4", "n5"]


def make_node(
    name: str = "n1",
    peers: list[str] | None = None,
    term: int = 0,
    vote: str = "",
    entries: list[Entry] | None = None,
    seed: int = 1,
    **options: object,
) -> RaftNode:
    config = RaftConfig(name=name, peers=peers or list(THREE), **options)  # type: ignore[arg-type]
    return RaftNode(
        config, random.Random(seed), HardState(term, vote, 0), entries or []
    )


def drain(node: RaftNode) -> list[Ready]:
    """Run the node's Readys by the contract, as if every write succeeded."""
    readies = []
    while node.has_ready():
        rd = node.ready()
        node.advance(rd)
        readies.append(rd)
    return readies


def sent(readies: list[Ready]) -> list[Message]:
    return [m for rd in readies for m in rd.messages + rd.persisted_messages]


def vote_request(
    term: int, src: str, last_index: int, last_term: int, dst: str = "n1"
) -> Message:
    return Message(
        MessageType.VOTE, term, src, dst, index=last_index, log_term=last_term
    )


def elect_alone(node: RaftNode, voters: list[str]) -> None:
    """Campaign and feed the grants of `voters` by hand."""
    node.campaign()
    drain(node)
    if node.role is Role.PRE_CANDIDATE:
        for voter in voters:
            node.step(
                Message(MessageType.PRE_VOTE_RESP, node.term + 1, voter, node.name)
            )
        drain(node)
    for voter in voters:
        node.step(Message(MessageType.VOTE_RESP, node.term, voter, node.name))
    assert node.role is Role.LEADER


# -- configuration and the log --------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "n9"},
        {"peers": ["n1", "n1", "n2"]},
        {"election_ticks": 1, "heartbeat_ticks": 1},
        {"heartbeat_ticks": 0},
        {"max_inflight": 0},
    ],
)
def test_config_validate_rejects_bad_settings(changes: dict[str, object]) -> None:
    config = RaftConfig(name="n1", peers=list(THREE))
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(ValueError):
        config.validate()


def test_log_conflict_search_skips_whole_terms() -> None:
    log = RaftLog(log_with_terms([1, 1, 2, 2, 2, 5, 5]))
    assert log.find_conflict_by_term(7, 4) == (5, 2)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(99, 1) == (2, 1)
    assert log.find_conflict_by_term(7, 0) == (0, 0)
    assert log.slice(1, 8, max_bytes=20) == log.entries[:1]


def test_log_truncation_pulls_back_persisted_and_unstable_marks() -> None:
    log = RaftLog(log_with_terms([1, 1, 1, 1]))
    assert (log.persisted, log.unstable_from) == (4, 5)
    log.truncate_and_append([Entry(3, 2), Entry(4, 2), Entry(5, 2)])
    assert (log.persisted, log.unstable_from) == (2, 3)
    assert [e.index for e in log.unstable_entries()] == [3, 4, 5]
    # A write that completes after its entries were rewritten counts for nothing.
    assert not log.mark_persisted(4, 1)
    assert log.mark_persisted(5, 2) and log.persisted == 5


# -- elections (§5.2) -------------------------------------------------------------


def test_election_timeout_is_randomized_between_one_and_two_timeouts() -> None:
    """§5.2: randomized timeouts in [election_ticks, 2 * election_ticks)."""
    waits = set()
    for seed in range(40):
        node = make_node(seed=seed, election_ticks=10)
        ticks = 0
        while node.role is Role.FOLLOWER:
            node.tick()
            ticks += 1
            assert ticks < 100
        waits.add(ticks)
    assert min(waits) >= 10 and max(waits) < 20
    assert len(waits) > 3


def test_three_nodes_elect_one_leader_that_commits_a_noop() -> None:
    """§5.2 election, §5.4.2/§8 a new leader's no-op commits at once."""
    net = Network(THREE, seed=3)
    for _ in range(40):
        net.tick_all()
        if net.leaders():
            break
    (leader,) = net.leaders()
    term = net.nodes[leader].term
    for name, node in net.nodes.items():
        assert node.term == term
        assert node.leader == leader
        last = node.log.entry_at(node.last_index)
        assert (last.kind, last.term) == (EntryKind.NOOP, term)
        assert node.commit_index == node.last_index
        assert net.applied[name][-1] == last


def test_single_node_elects_itself_and_commits_alone() -> None:
    net = Network(["solo"])
    ticks = 0
    while not net.leaders():
        net.tick_all()
        ticks += 1
        assert ticks <= 20
    index = net.propose("solo", b"hello")
    node = net.nodes["solo"]
    assert node.commit_index == index == 2
    assert [e.data for e in net.applied["solo"]] == [b"", b"hello"]


def test_candidate_persists_term_and_self_vote_before_asking() -> None:
    """Vote requests leave only after term and vote are durable."""
    node = make_node(pre_vote=False)
    node.campaign()
    rd = node.ready()
    assert rd.hard_state == HardState(1, "n1", 0)
    assert rd.messages == []
    assert sorted(m.dst for m in rd.persisted_messages) == ["n2", "n3"]
    assert {m.type for m in rd.persisted_messages} == {MessageType.VOTE}


def test_pre_candidate_keeps_its_term_until_it_wins_the_pre_vote() -> None:
    """Thesis §9.6: a pre-vote asks for term+1 without moving to it."""
    node = make_node(term=4)
    node.campaign()
    rd = node.ready()
    assert node.role is Role.PRE_CANDIDATE and node.term == 4
    assert rd.hard_state is None
    assert {(m.type, m.term) for m in rd.messages} == {(MessageType.PRE_VOTE, 5)}
    node.advance(rd)
    node.step(Message(MessageType.PRE_VOTE_RESP, 5, "n2", "n1"))
    assert (node.role, node.term) == (Role.CANDIDATE, 5)


@pytest.mark.parametrize(
    ("last_index", "last_term", "granted"),
    [
        (2, 1, False),  # older last term
        (1, 2, False),  # same last term, shorter log
        (2, 2, True),  # same last term, same length
        (5, 2, True),  # same last term, longer
        (1, 3, True),  # newer last term, shorter log
    ],
)
def test_vote_only_for_an_up_to_date_log(
    last_index: int, last_term: int, granted: bool
) -> None:
    """§5.4.1: grant only to a candidate whose log is at least as up-to-date."""
    node = make_node(term=2, entries=log_with_terms([1, 2]))
    node.step(vote_request(3, "n2", last_index, last_term))
    (rd,) = drain(node)
    (resp,) = rd.persisted_messages
    assert resp.type == MessageType.VOTE_RESP and resp.reject is not granted
    assert node.term == 3  # the higher term is adopted either way (§5.1)
    assert rd.hard_state == HardState(3, "n2" if granted else "", 0)


def test_one_vote_per_term() -> None:
    """§5.2: at most one vote per term; repeating the same vote is fine."""
    node = make_node(term=1)
    answers = []
    for candidate in ["n2", "n3", "n2"]:
        node.step(vote_request(2, candidate, 0, 0))
        answers += [m.reject for m in sent(drain(node))]
    assert answers == [False, True, False]
    assert node.vote == "n2"


def test_vote_grant_survives_restart() -> None:
    """The persisted vote binds a restarted node for the rest of the term."""
    net = Network(THREE)
    net.cut = {frozenset(("n2", "n3"))}
    net.nodes["n2"].step(vote_request(1, "n3", 0, 0, dst="n2"))
    net.process("n2")
    net.crash("n2")
    node = net.start("n2")
    assert (node.term, node.vote) == (1, "n3")
    node.step(vote_request(1, "n1", 0, 0, dst="n2"))
    (rd,) = drain(node)
    assert [m.reject for m in rd.persisted_messages] == [True]


def test_messages_of_older_terms_and_strangers_are_dropped() -> None:
    node = make_node(term=5, entries=log_with_terms([1, 2]))
    drain(node)
    node.step(vote_request(4, "n2", 9, 4))  # stale candidate
    node.step(vote_request(6, "n9", 9, 9))  # not a member
    node.step(vote_request(6, "n2", 9, 9, dst="n3"))  # not for us
    node.step(Message(99, 9, "n2", "n1"))  # unknown type of a higher term
    assert not node.has_ready() and node.term == 5
    # A stale leader is told the current term so it steps down.
    node.step(Message(MessageType.APPEND, 3, "n2", "n1", index=2, log_term=2))
    (rd,) = drain(node)
    (resp,) = rd.persisted_messages
    assert (resp.type, resp.term, resp.dst) == (MessageType.APPEND_RESP, 5, "n2")
    assert node.last_index == 2 and node.leader is None


def test_garbage_append_is_ignored() -> None:
    node = make_node(term=1)
    gap = Message(MessageType.APPEND, 1, "n2", "n1", index=0, entries=[Entry(2, 1)])
    future_term = Message(
        MessageType.APPEND, 1, "n2", "n1", index=0, entries=[Entry(1, 7)]
    )
    node.step(gap)
    node.step(future_term)
    assert node.last_index == 0
    assert not any(m.type == MessageType.APPEND_RESP for m in sent(drain(node)))


def test_candidate_steps_down_for_a_leader_of_its_term() -> None:
    node = make_node(pre_vote=False)
    node.campaign()
    drain(node)
    node.step(Message(MessageType.APPEND, 1, "n3", "n1", index=0, log_term=0))
    assert node.role is Role.FOLLOWER and node.leader == "n3" and node.term == 1


def test_not_leader_names_the_known_leader() -> None:
    net = Network(THREE)
    net.elect("n2")
    with pytest.raises(NotLeader) as failure:
        net.nodes["n1"].propose(b"x")
    assert failure.value.leader == "n2"


# -- replication (§5.3) ---------------------------------------------------------


def test_leader_batches_all_proposals_into_one_append_per_follower() -> None:
    net = Network(THREE)
    leader = net.elect("n1")
    for i in range(64):
        leader.propose(b"v%d" % i)
    rd = leader.ready()
    appends = [m for m in rd.messages if m.type == MessageType.APPEND]
    assert sorted(m.dst for m in appends) == ["n2", "n3"]
    assert all(len(m.entries) == 64 for m in appends)
    assert len(rd.entries) == 64


def test_appends_are_cut_by_bytes_and_pipelined_up_to_max_inflight() -> None:
    def small(config: RaftConfig) -> None:
        config.max_append_bytes = 100
        config.max_inflight = 3

    net = Network(THREE, configure=small)
    leader = net.elect("n1")
    for _ in range(20):
        leader.propose(b"x" * 60)
    rd = leader.ready()
    to_n2 = [m for m in rd.messages if m.dst == "n2" and m.type == MessageType.APPEND]
    assert len(to_n2) == 3  # the window, not all 20 entries
    assert all(len(m.entries) == 1 for m in to_n2)
    leader.advance(rd)
    net.outbox.extend(rd.messages + rd.persisted_messages)
    net.stabilize()
    assert all(node.commit_index == leader.last_index for node in net.nodes.values())


def count_appends_to(net: Network, follower: str) -> int:
    return sum(
        1 for m in net.delivered if m.type == MessageType.APPEND and m.dst == follower
    )


@pytest.mark.parametrize(
    ("follower_terms", "max_appends"),
    [
        ([1] * 5 + [2] * 40 + [3] * 40, 4),  # divergent: two stale terms, 80 entries
        ([1] * 5, 3),  # lagging: missing 60 entries
        ([1] * 5 + [4] * 20, 3),  # a prefix of the leader's log
    ],
)
def test_conflict_hint_repairs_a_follower_in_a_few_round_trips(
    follower_terms: list[int], max_appends: int
) -> None:
    """§5.3 with the conflict-term optimisation: the follower's hint lets the
    leader skip a whole diverging term per round trip, not one entry."""
    leader_terms = [1] * 5 + [4] * 60
    net = Network(THREE)
    net.start("n1", entries=log_with_terms(leader_terms), hard=HardState(4, "", 0))
    net.start("n3", entries=log_with_terms(leader_terms), hard=HardState(4, "", 0))
    net.start("n2", entries=log_with_terms(follower_terms), hard=HardState(4, "", 0))
    net.dropped_types = {MessageType.HEARTBEAT}
    leader = net.elect("n1")
    assert leader.role is Role.LEADER
    assert count_appends_to(net, "n2") <= max_appends
    follower = net.nodes["n2"]
    assert follower.log.entries == leader.log.entries
    assert follower.commit_index == leader.last_index


def test_append_below_commit_rewrites_nothing() -> None:
    """Entries up to commit are settled; an old append that reaches back
    behind it is answered with the commit index and changes nothing."""
    node = make_node(term=2, entries=log_with_terms([1, 2]))
    node.step(Message(MessageType.HEARTBEAT, 2, "n2", "n1", commit=2))
    drain(node)
    stale = Message(
        MessageType.APPEND,
        3,
        "n2",
        "n1",
        index=1,
        log_term=1,
        entries=[Entry(2, 3, data=b"other")],
    )
    node.step(stale)
    (rd,) = drain(node)
    assert [(m.index, m.reject) for m in rd.persisted_messages] == [(2, False)]
    assert node.log.entry_at(2).data == b"2/2" and rd.entries == []


def test_follower_answers_only_after_its_write() -> None:
    """Append answers are persisted-only messages, with the entries in the
    same Ready's write."""
    node = make_node(term=1)
    node.step(
        Message(
            MessageType.APPEND,
            1,
            "n2",
            "n1",
            index=0,
            log_term=0,
            entries=[Entry(1, 1)],
        )
    )
    rd = node.ready()
    assert rd.messages == []
    assert [(m.type, m.index) for m in rd.persisted_messages] == [
        (MessageType.APPEND_RESP, 1)
    ]
    assert rd.entries == [Entry(1, 1)]


def test_leader_counts_its_own_log_only_once_durable() -> None:
    """The leader's append leaves before its own write (thesis §10.2.1), but
    its copy joins the majority only after advance()."""
    leader = make_node(peers=list(FIVE), pre_vote=False)
    elect_alone(leader, ["n2", "n3"])
    rd = leader.ready()
    noop = rd.entries[-1]
    assert {m.dst for m in rd.messages if m.type == MessageType.APPEND} == {
        "n2",
        "n3",
        "n4",
        "n5",
    }
    for peer in ["n2", "n3"]:
        leader.step(
            Message(MessageType.APPEND_RESP, 1, peer, "n1", index=0, reject=True)
        )
        leader.step(Message(MessageType.APPEND_RESP, 1, peer, "n1", index=noop.index))
    assert leader.commit_index == 0  # two followers + an undurable leader copy
    leader.advance(rd)
    assert leader.commit_index == noop.index


def test_stale_and_duplicate_append_answers_change_nothing() -> None:
    leader = make_node(pre_vote=False)
    elect_alone(leader, ["n2"])
    drain(leader)
    leader.step(Message(MessageType.APPEND_RESP, 1, "n2", "n1", index=1))
    progress = leader.progress_of("n2")
    assert progress is not None
    state = (progress.match, progress.next, progress.state)
    leader.step(Message(MessageType.APPEND_RESP, 1, "n2", "n1", index=1))
    leader.step(
        Message(
            MessageType.APPEND_RESP, 1, "n2", "n1", index=0, reject=True, reject_hint=0
        )
    )
    assert (progress.match, progress.next, progress.state) == state
    assert leader.commit_index == 1


# -- commitment (§5.4.2, Figure 8) -----------------------------------------------


def test_leader_commits_old_term_entries_only_through_its_own() -> None:
    """§5.4.2 / Figure 8: an entry of an earlier term on a majority is not
    committed by counting; it commits once an entry of the current term is."""
    leader = make_node(
        peers=list(FIVE), term=3, entries=log_with_terms([1, 2]), pre_vote=False
    )
    elect_alone(leader, ["n2", "n3"])
    assert leader.term == 4
    drain(leader)
    assert leader.persisted_index == 3  # the term-4 no-op, durable here
    for peer in ["n2", "n3"]:
        leader.step(Message(MessageType.APPEND_RESP, 4, peer, "n1", index=2))
    assert leader.commit_index == 0
    for peer in ["n2", "n3"]:
        leader.step(Message(MessageType.APPEND_RESP, 4, peer, "n1", index=3))
    assert leader.commit_index == 3


def play_figure8(net: Network) -> None:
    """The Figure 8 story on five nodes (terms shifted by the no-ops):
    (a) n1 leads term 1, gets X to n2 only; (b) n5 leads term 2 with n3, n4
    and keeps its entries; (c) n1 leads term 3 and gets X (term 1) to n3,
    but not its own no-op; (d) n5 comes back and leads term 4+."""
    no_appends_from: set[str] = set()
    not_beyond: dict[str, int] = {}

    def hook(msg: Message) -> bool:
        if msg.src in no_appends_from and msg.type == MessageType.APPEND:
            return False
        limit = not_beyond.get(msg.src)
        if limit and msg.entries:
            # Deliver only the entries up to `limit` (a shorter append).
            msg.entries = [entry for entry in msg.entries if entry.index <= limit]
        return True

    net.hook = hook
    net.elect("n1")
    net.isolated = {"n3", "n4", "n5"}
    net.propose("n1", b"X")  # index 2, term 1, on n1 and n2
    net.crash("n1")
    net.isolated = set()
    no_appends_from.add("n5")
    assert net.elect("n5").term == 2  # votes from n3, n4
    net.propose("n5", b"Y")
    net.crash("n5")
    net.start("n1")
    not_beyond["n1"] = 2  # X reaches n3, the term-3 no-op stays on n1
    net.nodes["n1"].campaign()  # term 2 fails: n3 and n4 voted for n5
    net.stabilize()
    leader = net.elect("n1")
    assert leader.role is Role.LEADER and leader.term == 3
    progress = leader.progress_of("n3")
    assert progress is not None and progress.match == 2
    net.crash("n1")
    net.start("n5")
    net.nodes["n5"].campaign()  # term 3 fails: everyone voted for n1
    net.stabilize()
    leader = net.elect("n5")  # term 4: n5's last term 2 beats X's term 1
    assert leader.role is Role.LEADER


def figure8_config(config: RaftConfig) -> None:
    # Plain elections, so that n5 can win the votes the story needs.
    config.pre_vote = False
    config.check_quorum = False


def test_figure8_history_is_safe() -> None:
    net = Network(FIVE, configure=figure8_config)
    play_figure8(net)
    # X was never committed, so n5 overwriting it breaks nothing.
    assert net.nodes["n5"].log.entry_at(2).data != b"X"


def test_figure8_without_the_current_term_rule_loses_a_committed_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RaftNode, "_is_committable", lambda self, index: True)
    net = Network(FIVE, configure=figure8_config)
    with pytest.raises(InvariantViolation) as failure:
        play_figure8(net)
    assert failure.value.invariant in ("Leader Completeness", "State Machine Safety")


# -- PreVote and CheckQuorum ----------------------------------------------------


@pytest.mark.parametrize("pre_vote", [True, False])
def test_pre_vote_stops_a_partitioned_node_from_inflating_its_term(
    pre_vote: bool,
) -> None:
    """Thesis §9.6: without pre-vote the isolated node's term runs away and
    deposes the leader when it rejoins; with it, nothing happens."""
    net = Network(THREE, configure=lambda c: setattr(c, "pre_vote", pre_vote))
    net.elect("n1")
    term = net.nodes["n1"].term
    net.isolated = {"n3"}
    net.tick_all(100)
    assert net.leaders() == ["n1"]
    isolated_term = net.nodes["n3"].term
    net.recover()
    net.tick_all(30)
    if pre_vote:
        assert isolated_term == term
        assert net.leaders() == ["n1"] and net.nodes["n1"].term == term
    else:
        assert isolated_term > term + 3
        assert net.nodes["n1"].term > term  # the old leader was deposed


def test_followers_in_lease_ignore_a_disruptive_candidate() -> None:
    """With CheckQuorum a follower that hears from its leader ignores vote
    requests of a higher term (thesis §4.2.3)."""
    net = Network(THREE)
    net.elect("n1")
    follower = net.nodes["n2"]
    follower.step(vote_request(9, "n3", 99, 9, dst="n2"))
    assert follower.term == 1 and not follower.has_ready()


@pytest.mark.parametrize("check_quorum", [True, False])
def test_check_quorum_leader_steps_down_without_a_majority(check_quorum: bool) -> None:
    net = Network(THREE, configure=lambda c: setattr(c, "check_quorum", check_quorum))
    leader = net.elect("n1")
    net.isolated = {"n1"}
    for _ in range(2 * leader.config.election_ticks):
        net.tick("n1")
    if check_quorum:
        assert leader.role is Role.FOLLOWER and leader.leader is None
    else:
        assert leader.role is Role.LEADER


def test_soft_state_reports_leadership_changes() -> None:
    node = make_node(peers=["n1"])
    node.campaign()
    rd = node.ready()
    assert rd.soft_state is not None
    assert (rd.soft_state.role, rd.soft_state.leader) == (Role.LEADER, "n1")
    node.advance(rd)
    node.step(Message(MessageType.APPEND, 5, "n2", "n1"))  # not a member: dropped
    assert node.role is Role.LEADER


# -- restart ----------------------------------------------------------------------


def test_restart_reloads_state_and_reapplies_committed_entries() -> None:
    net = Network(THREE)
    net.elect("n1")
    for value in [b"a", b"b"]:
        net.propose("n1", value)
    before = net.nodes["n2"]
    net.crash("n2")
    node = net.start("n2")
    assert (node.term, node.vote, node.commit_index) == (
        before.term,
        before.vote,
        before.commit_index,
    )
    assert node.role is Role.FOLLOWER and node.leader is None
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"", b"a", b"b"]
    assert rd.hard_state is None and rd.entries == []


# -- the checker catches a broken core ---------------------------------------------


def first_failure(seeds: range, snapshot_every: int = 0) -> SimFailure:
    for seed in seeds:
        try:
            run_seed(
                seed,
                replay_hint=f"PREZ_SEED={seed} ...",
                snapshot_every=snapshot_every,
            )
        except SimFailure as failure:
            return failure
    raise AssertionError(f"no seed in {seeds} caught the broken rule")


def test_sim_catches_votes_for_out_of_date_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RaftNode, "_log_is_up_to_date", lambda self, index, term: True)
    failure = first_failure(range(60))
    text = str(failure)
    assert "Leader Completeness" in text or "State Machine Safety" in text
    assert text.startswith("seed ") and "replay: PREZ_SEED=" in text
    assert text.count("\n  t=") == 40  # the trace tail


def test_sim_catches_answers_sent_before_the_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = RaftNode.ready

    def leaky_ready(self: RaftNode) -> Ready:
        rd = original(self)
        rd.messages = rd.messages + rd.persisted_messages
        rd.persisted_messages = []
        return rd

    monkeypatch.setattr(RaftNode, "ready", leaky_ready)
    failure = first_failure(range(20))
    assert "durable" in str(failure).splitlines()[0]


# -- log compaction and InstallSnapshot (§7) -------------------------------------

SNAP = MessageType.SNAPSHOT


def compacted_leader(
    committed: int = 20, snapshot_retry_ticks: int = 10
) -> tuple[RaftNode, Progress]:
    """n1 restarted with `committed` applied term-1 entries, elected in term
    2, its log compacted to `committed`; n2's progress is returned, probing."""
    leader = RaftNode(
        RaftConfig(
            name="n1",
            peers=list(THREE),
            pre_vote=False,
            snapshot_retry_ticks=snapshot_retry_ticks,
        ),
        random.Random(1),
        HardState(1, "", committed),
        log_with_terms([1] * committed),
        applied=committed,
    )
    elect_alone(leader, ["n2"])
    drain(leader)
    leader.compact(committed)
    progress = leader.progress_of("n2")
    assert progress is not None and progress.state is ProgressState.PROBE
    return leader, progress


def reject_down_to(leader: RaftNode, peer: str, hint: int) -> None:
    """`peer` rejects the leader's probe, holding nothing past `hint`."""
    progress = leader.progress_of(peer)
    assert progress is not None
    leader.step(
        Message(
            MessageType.APPEND_RESP,
            leader.term,
            peer,
            leader.name,
            index=progress.next - 1,
            reject=True,
            reject_hint=hint,
            hint_term=1 if hint else 0,
        )
    )


def state_of(leader: RaftNode, peer: str) -> ProgressState:
    progress = leader.progress_of(peer)
    assert progress is not None
    return progress.state


def snapshot_msg(
    index: int, log_term: int, term: int = 2, src: str = "n2", dst: str = "n1"
) -> Message:
    return Message(SNAP, term, src, dst, index=index, log_term=log_term)


def test_compact_drops_applied_durable_entries_only() -> None:
    node = make_node(term=1, entries=log_with_terms([1] * 6 + [2] * 4))
    node.step(Message(MessageType.HEARTBEAT, 2, "n2", "n1", commit=8))
    drain(node)
    assert (node.commit_index, node.applied_index, node.snapshot) == (8, 8, None)
    with pytest.raises(ValueError, match="applied"):
        node.compact(9)
    node.compact(7)
    assert node.snapshot == SnapshotMeta(7, 2)
    assert node.log.first_index == 8 and node.last_index == 10
    assert node.log.term_at(7) == 2 and node.log.term_at(6) is None
    node.compact(5)  # older than what we hold: nothing to do
    assert node.snapshot == SnapshotMeta(7, 2)
    # A new leader's entries are handed out but not durable yet: not droppable.
    log = RaftLog(log_with_terms([1, 1, 1]))
    log.append([Entry(4, 2)])
    with pytest.raises(ValueError, match="durable"):
        log.compact(4)


def test_leader_switches_a_lagging_follower_to_one_snapshot_message() -> None:
    """A follower that needs compacted entries gets ONE SNAPSHOT message
    naming the leader's snapshot point; appends to it pause while the
    transfer runs, heartbeats go on; its answer resumes replication."""
    leader, progress = compacted_leader()
    reject_down_to(leader, "n2", hint=5)
    (rd,) = drain(leader)
    snaps = [m for m in rd.messages if m.type == SNAP]
    assert [(m.dst, m.index, m.log_term, m.term) for m in snaps] == [("n2", 20, 1, 2)]
    assert not [m for m in rd.persisted_messages if m.type == SNAP]
    assert state_of(leader, "n2") is ProgressState.SNAPSHOT
    leader.propose(b"more")
    leader.tick()  # heartbeat_ticks = 1
    leader.step(Message(MessageType.HEARTBEAT_RESP, 2, "n2", "n1"))
    to_n2 = [m for m in sent(drain(leader)) if m.dst == "n2"]
    assert [m.type for m in to_n2] == [MessageType.HEARTBEAT]
    # The follower installed the snapshot and answers for it.
    leader.step(Message(MessageType.APPEND_RESP, 2, "n2", "n1", index=20))
    assert state_of(leader, "n2") is ProgressState.REPLICATE and progress.match == 20
    appends = [m for m in sent(drain(leader)) if m.type == MessageType.APPEND]
    assert [(m.index, m.log_term, [e.index for e in m.entries]) for m in appends] == [
        (20, 1, [21, 22])
    ]


def test_failed_snapshot_transfer_is_retried_after_a_delay() -> None:
    leader, progress = compacted_leader(snapshot_retry_ticks=3)
    reject_down_to(leader, "n2", hint=0)
    assert [m.type for m in sent(drain(leader)) if m.dst == "n2"] == [SNAP]
    leader.report_snapshot("n2", ok=False)
    assert state_of(leader, "n2") is ProgressState.PROBE
    retried_after = 0
    for tick in range(1, 6):
        leader.tick()
        # The follower is alive, yet its heartbeat answers do not cut the wait.
        leader.step(Message(MessageType.HEARTBEAT_RESP, 2, "n2", "n1"))
        if any(m.type == SNAP for m in sent(drain(leader)) if m.dst == "n2"):
            retried_after = tick
            break
    assert retried_after == 3
    assert state_of(leader, "n2") is ProgressState.SNAPSHOT
    # A report for a follower that is not waiting for a snapshot is moot.
    n3 = leader.progress_of("n3")
    assert n3 is not None
    before = (n3.state, n3.next, n3.paused, n3.retry_wait)
    leader.report_snapshot("n3", ok=False)
    assert (n3.state, n3.next, n3.paused, n3.retry_wait) == before


def test_successful_transfer_probes_right_after_the_snapshot() -> None:
    leader, progress = compacted_leader()
    reject_down_to(leader, "n2", hint=0)
    drain(leader)
    leader.report_snapshot("n2", ok=True)
    assert progress.state is ProgressState.PROBE and progress.next == 21
    assert not [m for m in sent(drain(leader)) if m.dst == "n2"]  # waits
    leader.step(Message(MessageType.HEARTBEAT_RESP, 2, "n2", "n1"))
    appends = [m for m in sent(drain(leader)) if m.type == MessageType.APPEND]
    assert [(m.dst, m.index, m.log_term) for m in appends] == [("n2", 20, 1)]


def test_follower_with_the_snapshot_entry_keeps_its_suffix() -> None:
    """§7: a log holding the snapshot's last entry keeps what follows it;
    the Ready hands the kept suffix out again for the rewritten WAL, and
    the answer acknowledges the snapshot point only."""
    node = make_node(term=2, entries=log_with_terms([1] * 10 + [2] * 5))
    node.step(Message(MessageType.HEARTBEAT, 2, "n2", "n1", commit=3))
    drain(node)
    node.step(snapshot_msg(10, 1))
    rd = node.ready()
    assert rd.snapshot == SnapshotMeta(10, 1)
    assert [e.index for e in rd.entries] == [11, 12, 13, 14, 15]
    assert rd.entries == log_with_terms([1] * 10 + [2] * 5)[10:]
    assert rd.committed_entries == []
    assert rd.hard_state is not None and rd.hard_state.commit == 10
    assert [(m.type, m.index, m.reject) for m in rd.persisted_messages] == [
        (MessageType.APPEND_RESP, 10, False)
    ]
    node.advance(rd)
    assert (node.applied_index, node.persisted_index, node.last_index) == (10, 15, 15)
    # Entries after the snapshot commit and apply from the kept log.
    node.step(Message(MessageType.HEARTBEAT, 2, "n2", "n1", commit=12))
    assert [e.index for e in node.ready().committed_entries] == [11, 12]


def test_follower_without_the_snapshot_entry_discards_its_log() -> None:
    node = make_node(term=2, entries=log_with_terms([1] * 10 + [2] * 5))
    node.step(snapshot_msg(14, 3, term=3))
    rd = node.ready()
    assert rd.snapshot == SnapshotMeta(14, 3) and rd.entries == []
    assert node.last_index == 14 and node.log.entries == []
    assert node.leader == "n2" and node.term == 3
    node.advance(rd)
    assert node.applied_index == 14
    # The next append follows the snapshot point.
    node.step(
        Message(
            MessageType.APPEND,
            3,
            "n2",
            "n1",
            index=14,
            log_term=3,
            entries=[Entry(15, 3)],
        )
    )
    (answer,) = node.ready().persisted_messages
    assert (answer.index, answer.reject) == (15, False)


@pytest.mark.parametrize("stale", ["commit", "term"])
def test_stale_snapshot_is_ignored(stale: str) -> None:
    """A snapshot at or below the commit index (a duplicated or late
    transfer) or from an older term installs nothing."""
    node = make_node(term=3, entries=log_with_terms([1] * 10))
    node.step(Message(MessageType.HEARTBEAT, 3, "n2", "n1", commit=8))
    drain(node)
    msg = snapshot_msg(6, 1, term=3) if stale == "commit" else snapshot_msg(9, 1)
    node.step(msg)
    (rd,) = drain(node)
    assert rd.snapshot is None and node.snapshot is None and node.last_index == 10
    assert [(m.type, m.term, m.index) for m in rd.persisted_messages] == [
        (MessageType.APPEND_RESP, 3, 8 if stale == "commit" else 0)
    ]
    assert node.commit_index == 8


def test_snapshot_installed_while_a_ready_is_in_flight() -> None:
    """The Ready handed out before the install is finished first; what it
    wrote no longer counts as durable (the WAL is rewritten behind the
    snapshot), and the next Ready carries the snapshot and the kept suffix."""
    node = make_node(term=1)
    node.step(
        Message(
            MessageType.APPEND,
            1,
            "n2",
            "n1",
            index=0,
            log_term=0,
            commit=2,
            entries=log_with_terms([1] * 10),
        )
    )
    in_flight = node.ready()
    assert [e.index for e in in_flight.committed_entries] == [1, 2]
    node.step(snapshot_msg(8, 1, term=1))
    node.advance(in_flight)
    assert (node.persisted_index, node.applied_index) == (8, 2)
    rd = node.ready()
    assert rd.snapshot == SnapshotMeta(8, 1) and rd.committed_entries == []
    assert [e.index for e in rd.entries] == [9, 10]
    node.advance(rd)
    assert (node.persisted_index, node.applied_index) == (10, 8)
    assert not node.has_ready()


def test_restart_from_a_snapshot_and_the_log_after_it() -> None:
    entries = log_with_terms([1] * 5 + [2] * 5)
    config = RaftConfig(name="n1", peers=list(THREE))
    node = RaftNode(
        config,
        random.Random(1),
        HardState(2, "n2", 8),
        entries,  # a WAL segment the snapshot covers may still be there
        applied=6,
        snapshot=SnapshotMeta(6, 2),
    )
    assert node.snapshot == SnapshotMeta(6, 2) and node.log.first_index == 7
    assert (node.commit_index, node.applied_index, node.last_index) == (8, 6, 10)
    assert [e.index for e in node.ready().committed_entries] == [7, 8]
    # A hard state behind the snapshot still commits what the snapshot holds.
    node = RaftNode(
        config,
        random.Random(1),
        HardState(2, "", 0),
        entries[6:],
        6,
        SnapshotMeta(6, 2),
    )
    assert (node.commit_index, node.applied_index) == (6, 6)
    assert node.ready().committed_entries == []
    with pytest.raises(ValueError, match="gap"):
        RaftNode(
            config, random.Random(1), HardState(2), entries[8:], 6, SnapshotMeta(6, 2)
        )
    # A diverging log left by a crash before the WAL reset does not follow
    # the snapshot (another entry at its index): none of it is kept.
    node = RaftNode(
        config, random.Random(1), HardState(3), entries, 6, SnapshotMeta(6, 3)
    )
    assert node.log.entries == [] and node.last_index == 6
    assert node.log.last_term == 3


def test_network_catches_a_far_behind_follower_up_by_snapshot() -> None:
    """End to end through the Network harness: a follower cut off while the
    others commit and compact gets one snapshot, then the log after it, and
    ends with the same state machine; a restart recovers from the snapshot."""
    net = Network(THREE)
    net.elect("n1")
    net.isolated.add("n3")
    for i in range(30):
        net.propose("n1", b"v%d" % i)
    snapshot = net.compact("n1")
    net.compact("n2")
    assert snapshot.index == 31 and net.nodes["n1"].log.entries == []
    net.recover()
    net.propose("n1", b"after")
    net.tick_all()
    leader, follower = net.nodes["n1"], net.nodes["n3"]
    assert [(m.src, m.dst) for m in net.delivered if m.type == SNAP] == [("n1", "n3")]
    assert net.transfers == [("n1", "n3", True)]
    assert follower.snapshot == SnapshotMeta(31, 1)
    assert net.disks["n3"].snapshot is snapshot and net.disks["n3"].offset == 31
    assert [e.data for e in net.applied["n3"]] == [e.data for e in net.applied["n1"]]
    assert follower.commit_index == leader.commit_index == 32
    progress = leader.progress_of("n3")
    assert progress is not None and progress.state is ProgressState.REPLICATE
    net.crash("n3")
    restarted = net.start("n3")
    assert restarted.snapshot == SnapshotMeta(31, 1) and restarted.applied_index == 31
    assert net.applied["n3"] == list(snapshot.entries)


def test_network_reports_a_dropped_transfer_and_retries_it() -> None:
    net = Network(THREE, configure=lambda c: setattr(c, "snapshot_retry_ticks", 2))
    net.elect("n1")
    net.isolated.add("n3")
    for i in range(12):
        net.propose("n1", b"v%d" % i)
    net.compact("n1")
    net.recover()
    net.dropped_types = {SNAP}
    net.tick_all()
    assert net.transfers == [("n1", "n3", False)]
    net.dropped_types = set()
    net.tick_all(3)
    assert net.transfers[1:] == [("n1", "n3", True)]
    assert net.nodes["n3"].commit_index == net.nodes["n1"].commit_index


def test_sim_catches_a_snapshot_installed_below_the_commit_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken: the follower installs every snapshot, even one older than
    what it already applied."""

    def install_always(self: RaftNode, msg: Message) -> None:
        self._commit = min(self._commit, msg.index - 1)
        original(self, msg)

    original = RaftNode._handle_snapshot
    monkeypatch.setattr(RaftNode, "_handle_snapshot", install_always)
    failure = first_failure(range(60), snapshot_every=10)
    first_line = str(failure).splitlines()[0]
    assert "monotonic" in first_line or "apply in order" in first_line


def test_sim_catches_a_snapshot_install_that_drops_the_acknowledged_suffix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Broken (as the WAL was): installing a received snapshot empties the
    log even when the log holds the snapshot's last entry, so the suffix
    after it, already acknowledged, is not durable again until the next
    write completes. The simulator runs the production Ready order, in
    which the base is installed before the write: it must catch this."""

    def reset_always(self: Disk, snapshot: SnapshotFile) -> None:
        self.snapshot = snapshot
        self.entries = []

    monkeypatch.setattr(Disk, "reset_to", reset_always)
    failure = first_failure(range(100), snapshot_every=10)
    assert "durable" in str(failure)


def test_sim_runs_the_production_ready_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator drives every node through prez.raft.ready_loop, the
    loop the server runs: break its order (answers and votes leave with the
    early messages, before their write is durable) and a simulation fails."""
    original_begin = ReadyLoop.begin

    def begin_and_answer_at_once(self: ReadyLoop) -> Ready | None:
        rd = original_begin(self)
        if rd is not None and rd.persisted_messages:
            self.transport.send(rd.persisted_messages)
            rd.persisted_messages = []
        return rd

    monkeypatch.setattr(ReadyLoop, "begin", begin_and_answer_at_once)
    failure = first_failure(range(30))
    assert "durable before" in str(failure), str(failure).splitlines()[0]


# -- messages no leader sends (issue 11): dropped, never fatal ----------------


def test_a_term_that_cannot_be_incremented_is_dropped() -> None:
    """A term over MAX_TERM would leave the node a term it cannot campaign
    past (term + 1 overflowed the hard state's u64 and crashed every node
    that took it, at each restart): such messages are dropped."""
    node = make_node(term=2, entries=log_with_terms([1, 2]))
    drain(node)
    for term in (2**64 - 1, MAX_TERM + 1):
        node.step(Message(MessageType.HEARTBEAT, term, "n2", "n1", commit=2))
        node.step(Message(MessageType.VOTE, term, "n2", "n1", index=9, log_term=2))
        assert node.term == 2 and not node.has_ready()


def test_the_largest_term_still_leaves_room_to_campaign() -> None:
    node = make_node(term=2, entries=log_with_terms([1, 2]), pre_vote=False)
    node.step(Message(MessageType.HEARTBEAT, MAX_TERM, "n2", "n1", commit=2))
    drain(node)
    assert node.term == MAX_TERM
    for _ in range(100):
        node.tick()
        drain(node)
        if node.term > MAX_TERM:
            break
    assert node.term == MAX_TERM + 1 < 2**63


def test_an_append_with_a_config_entry_that_does_not_parse_is_dropped() -> None:
    """It stopped the node ("Raft safety violation"): now the log and the
    membership stay as they were and nothing is answered."""
    node = make_node(term=2, entries=log_with_terms([1, 2]))
    drain(node)
    before = node.membership
    bad = Message(
        MessageType.APPEND,
        2,
        "n2",
        "n1",
        index=2,
        log_term=2,
        commit=3,
        entries=[Entry(3, 2), Entry(4, 2, EntryKind.CONFIG, b"not a membership")],
    )
    node.step(bad)
    (rd,) = drain(node)  # only the leader's name is news
    assert rd.entries == [] and rd.persisted_messages == []
    assert node.last_index == 2 and node.commit_index == 0
    assert node.membership == before


def test_an_append_reaching_below_commit_through_a_stray_index_is_dropped() -> None:
    """A run with a stray index in the middle could name a committed entry as
    its conflict: that raised RaftSafetyError; now the message is dropped."""
    node = make_node(term=2, entries=log_with_terms([1, 2, 2, 2]))
    node.step(Message(MessageType.HEARTBEAT, 2, "n2", "n1", commit=3))
    drain(node)
    assert node.commit_index == 3
    bad = Message(
        MessageType.APPEND,
        2,
        "n2",
        "n1",
        index=3,
        log_term=2,
        # 4 matches what the log holds; "2" then conflicts, behind commit.
        entries=[Entry(4, 2), Entry(2, 3, data=b"other"), Entry(6, 2)],
    )
    node.step(bad)
    assert not node.has_ready()
    assert node.log.entry_at(2).data == b"2/2" and node.last_index == 4
