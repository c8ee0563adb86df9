"""The leader's view of each follower (etcd's tracker/): `Progress` and its
`ProgressState`.

The leader keeps one Progress per other member, learners included, in a
plain dict (RaftNode._progress, rebuilt on election and on a membership
change); the replication code in prez.raft.replication moves them between
states, and the majority over their match indexes, answered rounds and
lease dates is computed by prez.raft.quorum. Kept as a slotted class with
plain attributes because the leader touches one on every append answer.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum


class ProgressState(StrEnum):
    # Probe: the matching point is unknown; one append at a time, paused
    # until it is answered (or a heartbeat answer shows the follower alive).
    PROBE = "probe"
    # Replicate: the follower is in step; appends are pipelined, up to
    # max_inflight of them unanswered.
    REPLICATE = "replicate"
    # Snapshot: the follower needs entries that were compacted; one SNAPSHOT
    # message went out and appends stay paused until the follower answers
    # or the driver reports the transfer (heartbeats continue).
    SNAPSHOT = "snapshot"


class Progress:
    """The leader's view of one follower (etcd tracker.Progress, trimmed).

    Invariant: match < next. `inflight` holds the last index of every append
    sent in replicate state and not yet acknowledged, oldest first.
    `pending_snapshot` is the index of the snapshot sent in snapshot state;
    `retry_wait` counts down the ticks before probing again after a failed
    snapshot transfer (appends stay paused meanwhile).
    """

    __slots__ = (
        "match",
        "next",
        "state",
        "paused",
        "inflight",
        "recent_active",
        "sent_commit",
        "pending_snapshot",
        "retry_wait",
        "read_ack",
        "lease_tick",
    )

    def __init__(self, next_index: int) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflight: deque[int] = deque()
        # Set by any answer from the follower; CheckQuorum clears it once per
        # election timeout. True at the start so a new leader gets one full
        # timeout before it can conclude it lost its quorum.
        self.recent_active = True
        self.sent_commit = 0  # commit index carried by the last append sent
        self.pending_snapshot = 0
        self.retry_wait = 0
        # The newest heartbeat round the follower answered (ReadIndex), and
        # the tick at which the newest answered round we still date was sent
        # (the lease); None until one is answered.
        self.read_ack = 0
        self.lease_tick: int | None = None

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.paused = False
        self.inflight.clear()
        self.pending_snapshot = 0

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.next = self.match + 1
        self.paused = False
        self.inflight.clear()
        self.pending_snapshot = 0
        self.retry_wait = 0  # it answered in step: no transfer to retry

    def become_snapshot(self, index: int) -> None:
        self.state = ProgressState.SNAPSHOT
        self.paused = True
        self.inflight.clear()
        self.pending_snapshot = index
