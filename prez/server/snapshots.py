"""Snapshots for the Raft driver: taking them, compacting, shipping, restoring.

Taking a snapshot must not stall the event loop (the leader keeps
heartbeating and committing). Prez does what Redis does for BGSAVE: it
forks. The child holds a copy-on-write image of the keyspace as it was at
the applied index, writes it with `prez.storage.snapshot.write_snapshot`
(temp file, fsync, rename, fsync the directory) and exits; the parent only
pays for the fork itself (page tables: tens of milliseconds for millions of
keys, recorded in INFO as the fork time) and polls for the child's exit.
An incremental copy in the event loop was the alternative; it would need a
copy-on-write keyspace of our own, and costs CPU on the loop for every key.

Once the file is durable the log before it is compacted: the core drops its
entries and the WAL deletes whole segments, between two Readies (never while
an fsync runs in the worker thread).

A follower that needs entries the leader no longer has gets the snapshot by
pulling it over the cluster bus: on the core's SNAPSHOT message it asks for
chunks (SNAPSHOT_FETCH with an offset), one at a time (flow control), and
writes them into a `SnapshotReceiver`; a transfer that stalls is asked for
again from the last good offset (resumable); one that fails verification is
discarded and started over. Only a complete, verified file is stepped into
the core, whose Ready then tells the driver to load it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from prez.errors import StorageError
from prez.kv.keyspace import KVStore
from prez.kv.snapshot import SnapshotMeta as KVSnapshotMeta
from prez.raft.types import Message, MessageType
from prez.server.logging import log
from prez.storage.durable import unlink_durably
from prez.storage.snapshot import (
    SnapshotInfo,
    SnapshotReceiver,
    list_snapshots,
    load_newest_valid,
    read_snapshot,
    snapshot_dir,
    snapshot_name,
    write_snapshot,
)

if TYPE_CHECKING:
    from prez.server.raftdriver import RaftDriver

CHUNK_SIZE = 256 * 1024  # bytes per SNAPSHOT_CHUNK frame
FETCH_TIMEOUT = 3.0  # seconds without a chunk before asking again
TRANSFER_IDLE_LIMIT = 30.0  # leader side: a follower silent this long failed
# After a failed snapshot (a full disk, say) the next try waits this long, as
# Redis waits before retrying a failed BGSAVE; otherwise every turn of the
# Ready loop would fork a child that fails again.
RETRY_DELAY = 5.0


def replace_store(target: KVStore, source: KVStore) -> None:
    """Make `target` hold `source`'s data, in place (clients keep their dbs)."""
    for mine, theirs in zip(target.dbs, source.dbs, strict=True):
        mine.data = theirs.data
        mine.expires = theirs.expires


class SnapshotManager:
    def __init__(self, driver: RaftDriver) -> None:
        self.driver = driver
        # Absolute: every error names a file an operator can find.
        self.dir: str = os.path.abspath(driver.config["dir"])
        self.fsync: bool = driver.config["raft-log-fsync"]
        self.latest: SnapshotInfo | None = None
        self.child: int | None = None
        self.child_meta: KVSnapshotMeta | None = None
        self.child_started = 0.0
        self.last_fork_ms = 0.0
        self.max_fork_ms = 0.0
        self.last_seconds = 0.0
        self.snapshots_taken = 0
        self.snapshots_installed = 0
        self.entries_at_last = 0  # applied index when the last snapshot was taken
        self.last_ok = True  # INFO's raft_snapshot_last_status
        self.retry_at = 0.0  # monotonic time before which none is started
        # Follower side: the transfer in progress.
        self.receiving: tuple[int, int] | None = None  # (index, term)
        self.receiver: SnapshotReceiver | None = None
        self.receive_offset = 0
        self.receive_from: str = ""
        self.receive_msg: Message | None = None
        self.last_chunk_at = 0.0
        # Leader side: last fetch seen per follower (for giving up on them).
        self.serving: dict[str, float] = {}

    # -- start-up --------------------------------------------------------------

    def restore(self, store: KVStore) -> KVSnapshotMeta | None:
        """Load the newest valid snapshot into `store`; None when there is none."""
        found = load_newest_valid(self.dir, len(store.dbs))
        if found is None:
            return None
        meta, loaded, info, warnings = found
        for warning in warnings:
            log.warning(warning)
        replace_store(store, loaded)
        self.latest = info
        self.entries_at_last = meta.index
        log.notice(
            f"Loaded snapshot {os.path.basename(info.path)}: index {meta.index}, term {meta.term}"
        )
        return meta

    # -- taking snapshots --------------------------------------------------------

    def due(self, applied: int, log_bytes: int) -> bool:
        if self.child is not None or time.monotonic() < self.retry_at:
            return False
        config = self.driver.config
        every = config["raft-snapshot-entries"]
        if every and applied - self.entries_at_last >= every:
            return True
        return (
            log_bytes > config["raft-log-max-size"] and applied > self.entries_at_last
        )

    def start(self, index: int, term: int, members: list[str]) -> bool:
        """Fork a child that writes the keyspace as of `index`; False if busy."""
        if self.child is not None or index <= 0:
            return False
        meta = KVSnapshotMeta(
            index=index,
            term=term,
            members=members,
            created_ms=time.time_ns() // 1_000_000,
        )
        store = self.driver.store
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # the child: write and leave, touching nothing of the parent's
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                # Below the servers' priority: the node keeps heartbeating and
                # serving while its snapshot is written.
                os.nice(10)
                write_snapshot(self.dir, store, meta, fsync=self.fsync)
                code = 0
            except BaseException as e:  # noqa: BLE001 - reported through the exit code
                with contextlib.suppress(Exception):
                    os.write(2, f"snapshot child failed: {e!r}\n".encode())
            finally:
                os._exit(code)
        self.last_fork_ms = (time.perf_counter() - started) * 1000
        self.max_fork_ms = max(self.max_fork_ms, self.last_fork_ms)
        self.child = pid
        self.child_meta = meta
        self.child_started = time.perf_counter()
        log.notice(
            f"Snapshot of index {index} started by child {pid} (fork took {self.last_fork_ms:.1f} ms)"
        )
        return True

    def poll(self) -> KVSnapshotMeta | None:
        """The meta of a snapshot whose child just finished well, else None."""
        if self.child is None:
            return None
        try:
            pid, status = os.waitpid(self.child, os.WNOHANG)
        except ChildProcessError:
            pid, status = self.child, 1 << 8
        if pid == 0:
            return None
        meta = self.child_meta
        self.child = None
        self.child_meta = None
        assert meta is not None
        self.last_seconds = time.perf_counter() - self.child_started
        if os.waitstatus_to_exitcode(status) != 0:
            self.last_ok = False
            self.retry_at = time.monotonic() + RETRY_DELAY
            log.warning(
                f"Snapshot of index {meta.index} failed (child exit status {status}); "
                f"the log is kept, next try in {RETRY_DELAY:.0f}s"
            )
            return None
        snaps = [
            s
            for s in list_snapshots(self.dir)
            if s.index == meta.index and s.term == meta.term
        ]
        if not snaps:
            log.warning(
                f"Snapshot of index {meta.index} finished but its file is missing"
            )
            return None
        self.latest = SnapshotInfo(
            snaps[0].path, meta.index, meta.term, snaps[0].size, self.last_seconds
        )
        self.snapshots_taken += 1
        self.last_ok = True
        self.entries_at_last = meta.index
        log.notice(
            f"Snapshot of index {meta.index} written: {snaps[0].size} bytes in {self.last_seconds:.2f}s"
        )
        return meta

    def compaction_floor(self) -> int:
        """How far the log may be compacted: the older kept snapshot's index.

        Restart falls back to the previous snapshot when the newest is damaged,
        and needs the log after it; with a single snapshot nothing is dropped.
        """
        kept = list_snapshots(self.dir)
        return kept[1].index if len(kept) >= 2 else 0

    def discard(self, index: int, term: int) -> None:
        """Remove a received file the core did not install (it was stale)."""
        for info in list_snapshots(self.dir):
            if (info.index, info.term) == (index, term):
                with contextlib.suppress(FileNotFoundError):
                    unlink_durably(info.path, fsync=self.fsync)
        remaining = list_snapshots(self.dir)
        self.latest = remaining[0] if remaining else None

    def kill_child(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.child, 0)
            self.child = None
            meta = self.child_meta
            if meta is not None:  # its half-written temp file
                temp = os.path.join(
                    snapshot_dir(self.dir),
                    snapshot_name(meta.index, meta.term) + ".tmp",
                )
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)

    # -- leader side: serving chunks ----------------------------------------------

    def serve_fetch(self, msg: Message) -> Message:
        """Answer a follower's SNAPSHOT_FETCH with the next chunk (or a refusal)."""
        driver = self.driver
        self.serving[msg.src] = time.monotonic()
        latest = self.latest
        reply = Message(
            type=MessageType.SNAPSHOT_CHUNK,
            term=driver.term,
            src=driver.name,
            dst=msg.src,
            index=msg.index,
            log_term=msg.log_term,
            commit=msg.commit,
        )
        if latest is None or (latest.index, latest.term) != (msg.index, msg.log_term):
            reply.reject = (
                True  # that snapshot is gone: the core will offer a newer one
            )
            return reply
        try:
            with open(latest.path, "rb") as f:
                f.seek(msg.commit)
                data = f.read(CHUNK_SIZE)
        except OSError as e:
            log.warning(f"Cannot read snapshot {latest.path} for {msg.src}: {e}")
            reply.reject = True
            return reply
        reply.context = data
        reply.reject_hint = latest.size
        reply.hint_term = 1 if msg.commit + len(data) >= latest.size else 0
        return reply

    def stale_transfers(self) -> list[str]:
        """Followers whose transfer went silent: the leader reports them failed."""
        now = time.monotonic()
        gone = [
            peer
            for peer, seen in self.serving.items()
            if now - seen > TRANSFER_IDLE_LIMIT
        ]
        for peer in gone:
            del self.serving[peer]
        return gone

    # -- follower side: fetching ------------------------------------------------

    def on_offer(self, msg: Message) -> Message | None:
        """The leader's core says we need its snapshot: start (or keep) fetching."""
        wanted = (msg.index, msg.log_term)
        if self.receiving == wanted:
            self.receive_msg = msg
            return None
        self.abort_receive()
        try:
            self.receiver = SnapshotReceiver(self.dir, fsync=self.fsync)
        except OSError as e:
            # A full disk: the leader offers it again later.
            log.warning(f"Cannot receive snapshot {msg.index}/{msg.log_term}: {e}")
            return None
        self.receiving = wanted
        self.receive_offset = 0
        self.receive_from = msg.src
        self.receive_msg = msg
        log.notice(f"Receiving snapshot {msg.index}/{msg.log_term} from {msg.src}")
        return self.fetch_message()

    def fetch_message(self) -> Message:
        assert self.receiving is not None
        self.last_chunk_at = time.monotonic()
        return Message(
            type=MessageType.SNAPSHOT_FETCH,
            term=self.driver.term,
            src=self.driver.name,
            dst=self.receive_from,
            index=self.receiving[0],
            log_term=self.receiving[1],
            commit=self.receive_offset,
        )

    def on_chunk(self, msg: Message) -> tuple[Message | None, Message | None]:
        """Take one chunk: (next fetch to send, SNAPSHOT message to step when complete)."""
        if self.receiving != (msg.index, msg.log_term) or self.receiver is None:
            return None, None
        if msg.reject:
            log.warning(
                f"{msg.src} no longer has snapshot {msg.index}; waiting for a newer offer"
            )
            self.abort_receive()
            return None, None
        if msg.commit != self.receive_offset:
            return None, None  # a duplicate or a late answer to an earlier ask
        try:
            self.receiver.write_chunk(msg.commit, msg.context)
        except (StorageError, OSError) as e:
            log.warning(f"Snapshot transfer failed: {e}; starting over")
            if not self.restart_receive():
                return None, None
            return self.fetch_message(), None
        self.receive_offset += len(msg.context)
        if not msg.hint_term:
            return self.fetch_message(), None
        try:
            info = self.receiver.finish()
        except (StorageError, OSError) as e:
            log.warning(f"Received snapshot is damaged ({e}); asking for it again")
            if not self.restart_receive():
                return None, None
            return self.fetch_message(), None
        offer = self.receive_msg
        self.receiver = None
        self.receiving = None
        self.latest = info
        log.notice(f"Received snapshot {info.index}/{info.term}: {info.size} bytes")
        return None, offer

    def refetch_if_stalled(self) -> Message | None:
        if (
            self.receiving is not None
            and time.monotonic() - self.last_chunk_at > FETCH_TIMEOUT
        ):
            return self.fetch_message()
        return None

    def restart_receive(self) -> bool:
        """Start the transfer over; False (and the transfer dropped until the
        leader offers it again) when not even a new file can be created."""
        if self.receiver is not None:
            self.receiver.abort()
        try:
            self.receiver = SnapshotReceiver(self.dir, fsync=self.fsync)
        except OSError as e:
            log.warning(f"Cannot receive a snapshot: {e}; waiting for a new offer")
            self.receiver = None
            self.receiving = None
            return False
        self.receive_offset = 0
        return True

    def abort_receive(self) -> None:
        if self.receiver is not None:
            self.receiver.abort()
        self.receiver = None
        self.receiving = None

    # -- follower side: installing ----------------------------------------------

    def install(self, index: int, term: int, store: KVStore) -> KVSnapshotMeta:
        """Load the received snapshot (index, term) into the state machine;
        returns its meta (the driver takes the member registry from it)."""
        latest = self.latest
        if latest is None or (latest.index, latest.term) != (index, term):
            matches = [
                s
                for s in list_snapshots(self.dir)
                if (s.index, s.term) == (index, term)
            ]
            if not matches:
                raise StorageError(f"snapshot {index}/{term} to install is not on disk")
            latest = matches[0]
        meta, loaded = read_snapshot(latest.path, len(store.dbs))
        replace_store(store, loaded)
        self.latest = latest
        self.entries_at_last = index
        self.snapshots_installed += 1
        return meta

    def info_fields(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "raft_snapshot_index": latest.index if latest else 0,
            "raft_snapshot_term": latest.term if latest else 0,
            "raft_snapshot_size": latest.size if latest else 0,
            "raft_snapshot_seconds": f"{self.last_seconds:.3f}",
            "raft_snapshot_fork_ms": f"{self.last_fork_ms:.3f}",
            "raft_snapshot_fork_max_ms": f"{self.max_fork_ms:.3f}",
            "raft_snapshot_in_progress": int(self.child is not None),
            "raft_snapshot_last_status": "ok" if self.last_ok else "err",
            "raft_snapshot_child_pid": self.child or 0,
            "raft_snapshots_taken": self.snapshots_taken,
            "raft_snapshots_installed": self.snapshots_installed,
            "raft_snapshot_receiving": f"{self.receiving[0]}" if self.receiving else "",
        }
