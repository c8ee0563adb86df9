"""The driver contract in code: one Ready through persist, send, apply, advance.

Every driver of a `RaftNode` runs its Readys through a `ReadyLoop`: the
asyncio server (prez.server.raftdriver), the simulator's `Simulation` and
`Network` (prez.testing.sim, prez.testing.network) and the core benchmark. The order lives here
once, so the simulator checks exactly the order that production runs.

A Ready goes through three calls, and the caller decides what happens
between them (nothing, an `await` of an fsync in a worker thread, a
simulated disk delay, a crash)::

    rd = loop.begin()      # 1. rd.messages leave; 2. a received snapshot
                           #    becomes the durable base of the log
    loop.write(rd)         # 3. entries, then hard state, handed to the log
    ...                    #    the caller makes them durable: log.sync()
    loop.finish(rd)        # 4. rd.persisted_messages leave; 5. the snapshot
                           #    is loaded, committed entries applied; 6. advance

`finish` must only be called once everything `write` handed over is
durable (the caller's `log.sync()` returned). `run_sync()` does all of it
in one call, for drivers whose writes are synchronous.

This is the one description of the driver contract; what it rests on:

- `rd.entries` may start at or below the durable last index: the durable log
  is then truncated from `rd.entries[0].index` before appending (a
  follower's conflict repair, §5.3). Entries are written before the hard
  state.
- `rd.messages` holds only what is safe to send before the node's own write
  is durable: the leader's AppendEntries, heartbeats and SNAPSHOT messages
  (the leader writes its log in parallel with replication, Raft thesis
  §10.2.1) and pre-votes, which promise nothing. Everything that promises
  something about durable state (votes, vote requests, append and
  heartbeat answers) is in `rd.persisted_messages`, so term and vote are on
  disk before any of them leaves the node.
- The leader counts its own log towards a majority only up to the last
  entry that an `advance()` reported durable, so an acknowledged write is
  on a majority's disks, the leader's included.
- `tick()`, `step()`, `propose()`, `compact()` and `report_snapshot()` may
  be called between `ready()` and `advance()` (for example while the fsync
  runs in a worker thread); `ready()` must not be called again before the
  previous Ready was advanced.
- `rd.soft_state` is set when the role, known leader or term changed: a
  driver fails its waiting clients ("outcome unknown") when leadership is
  lost, even if it was regained in a later term between two Readys.

What a driver does for snapshots and compaction is described in
prez.raft.replication, for reads in prez.raft.read_only, for leadership
transfer in prez.raft.election and for membership changes in
prez.raft.confchange.

No I/O here: storage, network and state machine are the protocols below.
"""

from __future__ import annotations

from typing import Protocol

from prez.raft.core import RaftNode, Ready
from prez.raft.types import Entry, HardState, Message, SnapshotMeta


class LogStore(Protocol):
    """The node's durable log and hard state."""

    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        """The received snapshot (already durable) becomes the log's base:
        the log restarts empty after it. Durable on return."""

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        """Append entries (truncating a conflicting suffix first), then stage
        the hard state. Not durable until `sync()`."""

    def sync(self) -> None:
        """Make everything written so far durable."""


class Transport(Protocol):
    def send(self, messages: list[Message]) -> None:
        """Messages that promise nothing about this node's durable state."""

    def send_durable(self, messages: list[Message]) -> None:
        """Answers, votes and vote requests: sent only once what they speak
        for is on disk."""


class Applier(Protocol):
    def restore(self, snapshot: SnapshotMeta) -> None:
        """Load the received snapshot into the state machine."""

    def apply(self, rd: Ready) -> None:
        """Apply rd.committed_entries in order and take the rest of what the
        Ready reports (membership, read states, soft state)."""


def needs_write(rd: Ready) -> bool:
    return bool(rd.entries) or rd.hard_state is not None


class ReadyLoop:
    def __init__(
        self, node: RaftNode, log: LogStore, transport: Transport, applier: Applier
    ) -> None:
        self.node = node
        self.log = log
        self.transport = transport
        self.applier = applier

    def begin(self) -> Ready | None:
        """Take the next Ready, if any, and do what may precede its write."""
        node = self.node
        if not node.has_ready():
            return None
        rd = node.ready()
        if rd.messages:
            # The leader's appends and heartbeats leave before its own write
            # is durable (Raft thesis §10.2.1); it counts itself only later.
            self.transport.send(rd.messages)
        if rd.snapshot is not None:
            self.log.install_snapshot_base(rd.snapshot)
        return rd

    def write(self, rd: Ready) -> None:
        if needs_write(rd):
            self.log.write(rd.hard_state, rd.entries)

    def finish(self, rd: Ready) -> None:
        """After rd's write is durable: answer, apply, advance."""
        if rd.persisted_messages:
            self.transport.send_durable(rd.persisted_messages)
        if rd.snapshot is not None:
            self.applier.restore(rd.snapshot)
        self.applier.apply(rd)
        self.node.advance(rd)

    def run_sync(self) -> Ready | None:
        """One whole Ready with a synchronous write; None if there was none."""
        rd = self.begin()
        if rd is None:
            return None
        if needs_write(rd):
            self.write(rd)
            self.log.sync()
        self.finish(rd)
        return rd
