"""Membership changes (thesis ch. 4; etcd's confchange/): applying a
ConfChange to a Membership, and the node's record of the memberships its
log holds.

Single-server changes, not joint consensus (see `propose_conf_change`).
`node.propose_conf_change(ConfChange(kind, name))` on the leader appends a
CONFIG entry whose data is the whole new `Membership` (voters and learners,
names only). `node.membership` is the newest CONFIG entry in the log,
committed or not, else the snapshot's, else the bootstrap one
(RaftConfig.peers/learners); `conf_change_pending` says it is not committed
yet (no other change is accepted meanwhile).

What the driver does:

- A membership is effective when appended, on every node; a truncated
  CONFIG entry reverts it. `rd.membership` is set in the Ready whose
  entries changed it: once that Ready's write is durable, rewrite
  nodes.conf to it and connect to its members.
- Restart: the constructor derives it from the recovered log and the
  snapshot's `SnapshotMeta.config` (None: the bootstrap one). So the
  bootstrap membership must be the same on every node and must not follow
  the rewritten nodes.conf: keep the original one durable (or make sure the
  snapshot names one). A joining node is started as a learner (its own name
  in RaftConfig.learners, the cluster's bootstrap voters as peers).
- Snapshots: when writing a state machine snapshot at `index`, record
  `node.membership_at(index)` in the file; `node.snapshot.config` is the
  membership of the compacted point. A leader's SNAPSHOT message carries its
  snapshot point's membership in `context` (informational), and the
  follower's driver steps the received file in with `context =
  file_membership.encode()` (empty: the bootstrap membership).
- CONFIG entries come through `committed_entries` like any other: the
  state machine skips them (as it skips NOOP).

Learners receive the log, never campaign, and never count toward a
majority or a vote (a candidate counts only its voters). A node removed
from its newest membership stops campaigning once the removal is
committed; until then it may still be needed and campaigns without
counting itself (thesis 4.2.2). Vote requests from nodes that are neither
voters nor uncommitted-removed voters here are dropped, so a removed node
cannot raise the members' terms (with PreVote it never raises its own
either). A leader that removed itself keeps leading, counting commits
without its own copy, and steps down when the removal commits.

The functions taking `self: RaftNode` are RaftNode's methods, bound in its
class body (prez.raft.core says why); `changed_membership` and
`parse_config_entries` are pure.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

from prez.errors import (
    ConfChangeInProgress,
    ConfChangeRefused,
    LeadershipTransferring,
    NotLeader,
    RaftSafetyError,
)
from prez.raft.progress import Progress
from prez.raft.quorum import majority
from prez.raft.types import (
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    Membership,
    Role,
)

if TYPE_CHECKING:
    from prez.raft.core import RaftNode

CONFIG = EntryKind.CONFIG


def membership_at(self: RaftNode, index: int) -> Membership:
    """The membership in effect at `index`, which must lie between the
    snapshot point and the last index: what a snapshot of the state
    machine at `index` must record (the driver's snapshot file)."""
    if not self.log.offset <= index <= self.log.last_index:
        raise ValueError(
            f"membership at {index}: the log holds {self.log.offset}.."
            f"{self.log.last_index}"
        )
    position = bisect_right(self._config_entries, index, key=config_index)
    if position == 0:
        return self._base_membership
    return self._config_entries[position - 1][1]


def propose_conf_change(self: RaftNode, change: ConfChange) -> int:
    """Append a CONFIG entry holding the membership after `change`;
    returns its index.

    Single-server changes (thesis ch. 4) rather than joint consensus:
    any majority of the old and of the new voters overlap, so one change
    at a time needs no intermediate configuration, and the log carries
    one entry per change. The new membership is in effect as soon as the
    entry is appended, here and on every follower (the leader counts
    commits by it at once: a leader removing itself counts without its
    own copy, and steps down once the entry commits); a truncated entry
    reverts it.

    Raises NotLeader (LeadershipTransferring during a transfer),
    ConfChangeInProgress while an earlier change is uncommitted or no
    entry of this leader's term has committed yet (the fix of thesis
    4.1: otherwise a change appended by a new leader could overlap one
    an earlier leader left uncommitted), ConfChangeRefused for a change
    that does not fit the membership.
    """
    if self._role is not Role.LEADER:
        raise NotLeader(self._leader)
    if self._transfer_target is not None:
        raise LeadershipTransferring(self._transfer_target)
    if not self._term_committed:
        raise ConfChangeInProgress(
            "the leader has not yet committed an entry of its term"
        )
    if self.conf_change_pending:
        raise ConfChangeInProgress(
            f"the membership change at index {self.membership_index} "
            "is not committed yet"
        )
    membership = changed_membership(self._membership, change)
    log = self.log
    index = log.last_index + 1
    log.entries.append(Entry(index, self._term, CONFIG, membership.encode()))
    self._config_entries.append((index, membership))
    self._set_membership(membership)
    self._bcast_new_entries = True
    # A smaller majority may already hold entries the old one did not.
    self._maybe_commit()
    return index


def track_config_entries(self: RaftNode, entries: list[Entry]) -> None:
    """Adopt the CONFIG entries of the log recovered from storage: one
    that does not parse there is corruption. (Entries from a leader are
    parsed before they are appended, and dropped if one does not.)"""
    for entry in entries:
        if entry.kind == CONFIG:
            try:
                membership = Membership.decode(entry.data)
            except ValueError as error:
                raise RaftSafetyError(
                    f"{self._name}: CONFIG entry {entry.index} does not parse: {error}"
                ) from error
            self._config_entries.append((entry.index, membership))


def current_membership(self: RaftNode) -> Membership:
    entries = self._config_entries
    return entries[-1][1] if entries else self._base_membership


def on_log_rewritten(
    self: RaftNode, first: int, configs: list[tuple[int, Membership]]
) -> None:
    """The log was truncated from `first` and entries written there whose
    CONFIG entries are `configs`: CONFIG entries truncated revert their
    change, new ones take effect."""
    entries = self._config_entries
    del entries[bisect_left(entries, first, key=config_index) :]
    entries.extend(configs)
    self._set_membership(self._current_membership())


def set_membership(self: RaftNode, membership: Membership, force: bool = False) -> None:
    # Whom we take messages from: every member of a membership the log
    # still records (a leader that removed itself leads on until the
    # change commits); a removed node is forgotten once compacted away.
    known = set(self._base_membership.members)
    for _, recorded in self._config_entries:
        known |= recorded.members
    known.discard(self._name)
    self._known = frozenset(known)
    if membership == self._membership and not force:
        return
    self._membership = membership
    self._voters = membership.voters
    self.peers = sorted(membership.voters)
    self._others = sorted(membership.members - {self._name})
    self._quorum = majority(len(membership.voters))
    if self._role is not Role.LEADER:
        return
    progress = self._progress
    members = set(self._others)
    for peer in list(progress):
        if peer not in members:
            del progress[peer]
            self._pending_sends.pop(peer, None)
    next_index = self.log.last_index + 1
    for peer in self._others:
        if peer not in progress:
            # Probe from the end; the answer's hint finds the match.
            progress[peer] = Progress(next_index)
            self._pending_sends[peer] = True
    if self._transfer_target is not None and self._transfer_target not in self._voters:
        self._transfer_target = None


def parse_config_entries(entries: list[Entry]) -> list[tuple[int, Membership]] | None:
    """The (index, membership) of each CONFIG entry in `entries`, or None if
    one of them does not parse."""
    configs = []
    for entry in entries:
        if entry.kind == CONFIG:
            try:
                configs.append((entry.index, Membership.decode(entry.data)))
            except ValueError:
                return None
    return configs


def changed_membership(current: Membership, change: ConfChange) -> Membership:
    """The membership after `change`, or ConfChangeRefused if it does not
    apply to `current`."""
    name, kind = change.name, change.kind
    voters, learners = current.voters, current.learners
    if not name or "\n" in name:
        raise ConfChangeRefused(f"invalid node name {name!r}")
    if kind in (ConfChangeKind.ADD_VOTER, ConfChangeKind.ADD_LEARNER):
        if name in voters or name in learners:
            raise ConfChangeRefused(f"node {name!r} is already a member")
        if kind == ConfChangeKind.ADD_VOTER:
            return Membership(voters | {name}, learners)
        return Membership(voters, learners | {name})
    if kind == ConfChangeKind.PROMOTE:
        if name not in learners:
            raise ConfChangeRefused(f"node {name!r} is not a learner")
        return Membership(voters | {name}, learners - {name})
    if kind == ConfChangeKind.REMOVE:
        if name in learners:
            return Membership(voters, learners - {name})
        if name not in voters:
            raise ConfChangeRefused(f"node {name!r} is not a member")
        if len(voters) == 1:
            raise ConfChangeRefused(f"cannot remove {name!r}, the last voter")
        return Membership(voters - {name}, learners)
    raise ConfChangeRefused(f"unknown membership change {kind!r}")


def config_index(pair: tuple[int, Membership]) -> int:
    return pair[0]
