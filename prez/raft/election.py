"""Elections (§5.2, PreVote §9.6) and leadership transfer (thesis 3.10).

Who takes part in elections, answering vote and pre-vote requests, and
counting the answers (the tally itself is prez.raft.quorum.vote_result).
The role changes an election causes (`_become_candidate`, ...) stay with
the other role changes in prez.raft.core.

Leadership transfer: `node.transfer_leader(target)` on the leader. Until
the transfer ends, `propose()` raises LeadershipTransferring (a NotLeader
whose `leader` is the target; a driver answers as for "no leader", safe to
retry) and `node.transferring_to` names the target. The leader brings the
target's log up to date, sends it TIMEOUT_NOW (in `rd.messages`), and the
target campaigns at once without PreVote, its vote requests flagged
(`context == TRANSFER_CONTEXT`) so voters grant them even while they hear
from the leader. The leader learns of the new term and steps down
(soft_state); if no new leader took over within an election timeout,
`transferring_to` becomes None and proposals are accepted again. Lease
reads stop for the rest of the leader's term once a transfer started.

The functions here are RaftNode's methods, bound in its class body
(prez.raft.core says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prez.errors import NotLeader
from prez.raft.quorum import VoteResult, vote_result
from prez.raft.types import Message, MessageType, Role

if TYPE_CHECKING:
    from prez.raft.core import RaftNode

PRE_VOTE = MessageType.PRE_VOTE
PRE_VOTE_RESP = MessageType.PRE_VOTE_RESP
VOTE_RESP = MessageType.VOTE_RESP
TIMEOUT_NOW = MessageType.TIMEOUT_NOW


def campaign(self: RaftNode) -> None:
    """Start an election now (etcd's MsgHup); a no-op on a leader and on
    a node that takes no part in elections (see `_electoral`)."""
    if self._role is Role.LEADER or not self._electoral():
        return
    if self._pre_vote:
        self._become_pre_candidate()
    else:
        self._become_candidate()


def transfer_leader(self: RaftNode, target: str) -> None:
    """Hand leadership to `target` (thesis 3.10, etcd's TimeoutNow).

    The leader stops taking proposals (LeadershipTransferring, a
    NotLeader), brings the target's log up to date, then sends it
    TIMEOUT_NOW, upon which the target campaigns at once, skipping
    PreVote, with a vote request that voters grant even though they hear
    from this leader. If no new leader took over within an election
    timeout, the transfer is abandoned and proposals resume. A transfer
    to this node itself cancels the one in progress; a new target
    replaces the old one. Lease reads stop for the rest of the term.
    """
    if self._role is not Role.LEADER:
        raise NotLeader(self._leader)
    if target == self._name:
        self._transfer_target = None
        return
    if target not in self._voters or target not in self._progress:
        raise ValueError(f"cannot transfer leadership to non-voter {target!r}")
    if self._transfer_target == target:
        return
    self._transfer_target = target
    self._transfer_elapsed = 0
    self._timeout_now_sent = False
    self._lease_revoked = True
    if self._progress[target].match == self.log.last_index:
        self._send_timeout_now(target)
    else:
        self._pending_sends[target] = True


def send_timeout_now(self: RaftNode, target: str) -> None:
    self._timeout_now_sent = True
    self._msgs.append(Message(TIMEOUT_NOW, self._term, self._name, target))


def votes_won(self: RaftNode) -> bool:
    return vote_result(self._votes, self._quorum) is VoteResult.WON


def electoral(self: RaftNode, name: str | None = None) -> bool:
    """Whether `name` (default: this node) takes part in elections here:
    a voter, or a node whose removal is not committed yet (thesis 4.2.2:
    it may still be needed, say a leader that removed itself and crashed
    holding the newest log; it does not count its own vote then). This
    node campaigns only if it does, and ignores vote requests from nodes
    that do not (a removed node cannot disrupt)."""
    if name is None:
        name = self._name
    return name in self._voters or name in self.membership_at(self._commit).voters


def own_vote(self: RaftNode) -> dict[str, bool]:
    return {self._name: True} if self._name in self._voters else {}


def other_voters(self: RaftNode) -> list[str]:
    return [peer for peer in self.peers if peer != self._name]


def poll(self: RaftNode, voter: str, granted: bool) -> None:
    if voter not in self._voters:
        return  # a learner's or a stranger's answer counts for nothing
    self._votes.setdefault(voter, granted)
    result = vote_result(self._votes, self._quorum)
    if result is VoteResult.WON:
        if self._role is Role.PRE_CANDIDATE:
            self._become_candidate()
        else:
            self._become_leader()
    elif result is VoteResult.LOST:
        self._become_follower(self._term, None)


def log_is_up_to_date(self: RaftNode, index: int, term: int) -> bool:
    """§5.4.1: grant only to a candidate whose log is at least as
    up-to-date as ours (later last term, or same term and not shorter)."""
    last_term = self.log.last_term
    return term > last_term or (term == last_term and index >= self.log.last_index)


def handle_vote_request(self: RaftNode, msg: Message) -> None:
    is_pre_vote = msg.type == PRE_VOTE
    # One vote per term (§5.2): repeat the vote we gave, or give a fresh
    # one if we have neither voted nor heard from a leader this term. A
    # pre-vote for a later term promises nothing, so it is always free.
    can_vote = (
        self._vote == msg.src
        or (self._vote == "" and self._leader is None)
        or (is_pre_vote and msg.term > self._term)
    )
    resp_type = PRE_VOTE_RESP if is_pre_vote else VOTE_RESP
    # Whatever our own membership says (thesis 4.2.1): a candidate counts
    # only the voters of its membership, and a node whose log does not
    # yet say it was promoted may be one of them; refusing would leave a
    # cluster that needs its vote without a leader to tell it.
    if can_vote and self._log_is_up_to_date(msg.index, msg.log_term):
        if not is_pre_vote:
            self._election_elapsed = 0
            self._vote = msg.src
        # Answer in the asked term: a pre-candidate counts grants for the
        # term it is about to enter.
        self._persisted_msgs.append(Message(resp_type, msg.term, self._name, msg.src))
    else:
        self._persisted_msgs.append(
            Message(resp_type, self._term, self._name, msg.src, reject=True)
        )
