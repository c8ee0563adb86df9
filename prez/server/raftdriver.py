"""The Raft driver: runs a `RaftNode` against real disks, sockets and time.

Writes become log entries (`propose`), are replicated and made durable by
the Ready loop, and are answered when applied. The loop follows the core's
driver contract (prez/raft/core.py) strictly:

    send(rd.messages); write entries + stage hard state; fsync (in a worker
    thread, so the event loop keeps taking requests meanwhile: everything
    proposed during one fsync forms the next batch, which is the group
    commit); send(rd.persisted_messages); apply(rd.committed_entries);
    node.advance(rd)

A write on a follower is forwarded to the leader (default), or answered with
a redirect (`follower-writes ask|moved`). When this node stops being leader
every write still waiting is answered at once with an outcome-unknown error.
Reads are served from this node's applied state.

Membership (issue 5; the rules are the core's, see prez/raft/core.py): the
driver keeps the bootstrap membership durable (`raft/bootstrap`, written
once), follows `rd.membership` (dial new members, drop removed ones,
rewrite nodes.conf atomically once the Ready is durable), and keeps the
member registry (prez.storage.members): the core's CONFIG entries carry
names only, so RAFT.NODE ADD first replicates the new member's address as an
internal NORMAL entry `prez.member-addr NAME HOST:PORT voter|learner
[reuse]`, applied by every node into its registry, and only then proposes
the CONFIG entry. Being in the log, the address reaches every member (and a
later leader) in the same order as the change itself, and a snapshot records
the registry with the membership. A new member always enters as a learner;
`voter` in that entry asks the leader to promote it once its log is within
PROMOTE_LAG entries of the commit index (RAFT.NODE ADD without LEARNER, and
cluster-join). A name that left the membership is remembered as removed and
RAFT.NODE ADD refuses it unless the command says REUSE (the explicit
re-admission: the operator vouches that the node's old identity may come
back). A node started with `cluster-join` and no nodes.conf asks a member
for the bootstrap membership and the current members, starts as a learner,
and asks for RAFT.NODE ADD of itself; it writes nodes.conf once added.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from prez import respclient
from prez._core import select
from prez._core.replytypes import NULL_ARRAY
from prez.config import read_nodes_file
from prez.errors import (
    NO_LEADER,
    OUTCOME_UNKNOWN,
    CommandError,
    ConfigError,
    ProtocolError,
    StorageError,
    wrong_arity,
)
from prez.kv.command import COMMANDS
from prez.kv.transaction import EXEC_COMMAND, split_exec_args
from prez.netaddr import AddressError, split_host_port
from prez.raft.core import (
    ConfChangeInProgress,
    ConfChangeRefused,
    LeadershipTransferring,
    NotLeader,
    RaftConfig,
    RaftNode,
    RaftSafetyError,
    Ready,
    Role,
)
from prez.raft.ready_loop import ReadyLoop, needs_write
from prez.raft.types import (
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    Membership,
    Message,
    MessageType,
    ReadState,
    SnapshotMeta,
)
from prez.server.clustercmds import key_slot
from prez.server.dispatch import Deferred
from prez.server.forward import Forwarder
from prez.server.logging import DEBUG, log
from prez.server.peer import PeerBus
from prez.server.snapshots import SnapshotManager
from prez.server.watch import WriteTracker
from prez.storage.members import (
    MemberRegistry,
    decode_members,
    read_bootstrap,
    render_nodes_conf,
    write_atomically,
    write_bootstrap,
)
from prez.storage.wal import WAL

if TYPE_CHECKING:
    from prez._core import entry as _entry
else:
    _entry = select("entry")

decode_command = _entry.decode_command
encode_command = _entry.encode_command

if TYPE_CHECKING:
    from prez.kv import KVStore
    from prez.server.app import Server
    from prez.server.client import ClientConnection
    from prez.server.dispatch import CommandEntry

Future = asyncio.Future
# A read that could not be confirmed (no leader, or leadership changed while
# it waited): nothing changed, so it is safe to retry.
NO_LEADER_FOR_READ = "CLUSTERDOWN No leader to confirm the read; retry"
# As Redis answers when it cannot write its AOF ("-MISCONF Errors writing to
# the AOF file: ..."); safe to retry, on this node later or on another now.
DISK_ERROR_PREFIX = "MISCONF Errors writing to the Raft log: "
# A failed log write is tried again after this long, doubling up to the cap.
WRITE_RETRY_START = 0.05
WRITE_RETRY_CAP = 1.0
ReadRequest = tuple["CommandEntry", int, list[bytes], Deferred]
# The largest write the log takes: one entry must fit in one cluster-bus frame
# (prez._core.wire.DEFAULT_MAX_FRAME_SIZE, 64 MiB) with room for the headers.
MAX_ENTRY_BYTES = 60 * 1024 * 1024
# The internal entry that replicates a new member's address (see above).
MEMBER_ADDR = b"prez.member-addr"
# A learner to be promoted becomes a voter once its match index is within
# this many entries of the leader's commit index: close enough that its
# first votes and acks do not wait on a long catch-up.
PROMOTE_LAG = 64
MEMBERSHIP_IN_PROGRESS = (
    "ERR a membership change is in progress; retry once it has committed"
)
# How long a joining node keeps asking to be added (the cluster may be
# electing, or busy with another change).
JOIN_TIMEOUT = 60.0


EXEC_NAME = EXEC_COMMAND.decode()


class _BusTransport:
    """The Ready loop's transport: both kinds of message go out on the bus
    (ReadyLoop decides when each may)."""

    def __init__(self, driver: RaftDriver) -> None:
        self.send = driver._send
        self.send_durable = driver._send


class RaftDriver:
    """Owns the Raft node, its WAL, the cluster bus and the pending writes."""

    # Reads are confirmed through the core (ReadIndex or lease) unless a
    # connection asked for stale reads; writes always go through the log.
    reads_local = False
    writes_local = False

    def __init__(self, server: Server, members: dict[str, tuple[str, int]]) -> None:
        config = server.config
        self.server = server
        self.store: KVStore = server.store
        self.config = config
        self.name: str = config["name"]
        self.nodes_file: str = config["cluster-config-file"]
        self.join_addr: str = config["cluster-join"]
        self.own_addr = f"{config['bind'][0]}:{config['cluster-port']}"
        # A node with cluster-join and no nodes.conf has not joined yet.
        self.joining = bool(self.join_addr) and not members
        timeout_ms = config["cluster-node-timeout"]
        heartbeat_ms = config["cluster-heartbeat-interval"] or max(1, timeout_ms // 10)
        self.tick_seconds = heartbeat_ms / 1000
        # Segments a quarter of the compaction threshold: compaction deletes
        # whole segments, so smaller ones keep the log close to the threshold.
        segment_bytes = min(
            64 * 1024 * 1024, max(64 * 1024, config["raft-log-max-size"] // 4)
        )
        self.wal = WAL(
            config["dir"], fsync=config["raft-log-fsync"], segment_bytes=segment_bytes
        )
        # The registry as of the applied index (replicated state), plus the
        # addresses nodes.conf lists (hints until the log is re-applied).
        self.registry = MemberRegistry()
        self.bootstrap: Membership | None = None
        self._bootstrap_to_write = False
        found = read_bootstrap(self.wal.raft_dir)
        if found is not None:
            self.bootstrap, self.registry = found
        elif not self.joining:
            if self.name not in members:
                raise StorageError(
                    f"this node's name '{self.name}' is not listed in {self.nodes_file}"
                )
            # First start (or first start of a version that keeps it): the
            # voters of this nodes.conf are the bootstrap membership for good.
            self.bootstrap = Membership(frozenset(members))
            self._bootstrap_to_write = True
        for name, (host, port) in members.items():
            self.registry.addrs[name] = f"{host}:{port}"
        self.registry.addrs[self.name] = self.own_addr
        # The current members and their addresses (INFO, ROLE, transfer).
        self.members: dict[str, tuple[str, int]] = dict(members) or {
            self.name: split_host_port(self.own_addr)
        }
        self._applied_membership: Membership | None = None
        # Applied-index waiters of membership changes: index -> (term, future).
        self._apply_waiters: dict[int, tuple[int, asyncio.Future[bool]]] = {}
        self._change_busy = False
        self.raft_config = RaftConfig(
            name=self.name,
            peers=sorted(self.bootstrap.voters) if self.bootstrap else [self.name],
            election_ticks=max(3, round(timeout_ms / heartbeat_ms)),
            heartbeat_ticks=1,
            # Stale reads never reach the core; the core confirms the others.
            read_mode="lease" if config["read-mode"] == "lease" else "linearizable",
        )
        self.core_read_mode = self.raft_config.read_mode
        self.node: RaftNode | None = None
        host = config["bind"][0]
        self.client_addr = f"{host}:{config['port']}"
        # Outbound connections leave from this node's own address, so that a
        # node is one address on the network (partition tests rely on it).
        self.bus = PeerBus(
            self.name,
            self.client_addr,
            self.members,
            self._on_message,
            source_host=host,
        )
        self.forwarder = Forwarder(password=config["requirepass"], source_host=host)
        self.admin_forwarder = Forwarder(
            password=config["requirepass"], source_host=host
        )
        self.pending: dict[int, tuple[int, Deferred]] = {}  # index -> (term, reply)
        self.watch = WriteTracker()  # for WATCH: keys written since an index
        self.applied = 0
        self._read_batch: list[tuple[CommandEntry, int, list[bytes], Deferred]] = []
        self._read_flush_scheduled = False
        # Read-index contexts never repeat, across restarts included (a
        # random start): the leader may answer a late duplicate of an old
        # request, and its answer must not be taken for a newer one's.
        self._read_seq = int.from_bytes(os.urandom(7), "little")
        self._reads_waiting: dict[
            bytes, list[tuple[CommandEntry, int, list[bytes], Deferred]]
        ] = {}
        self._reads_parked: list[
            tuple[int, int, list[tuple[CommandEntry, int, list[bytes], Deferred]]]
        ] = []
        self._transfer_waiters: list[Deferred] = []
        self._stepped_down = asyncio.Event()  # set whenever this node is not the leader
        self.read_requests = 0
        self.reads_served = 0
        self.bytes_since_snapshot = 0  # entry bytes written since the last snapshot
        # Set while the log cannot be written (a full disk, an I/O error).
        self.disk_error: str | None = None
        self.disk_error_count = 0  # failed attempts in the current episode
        self.disk_errors_total = 0  # episodes
        self._bytes_at_snapshot_start = 0
        self.snapshots = SnapshotManager(self)
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="prez-fsync")
        self._closing = False
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.term = 0
        # Statistics for INFO.
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.fsync_max = 0.0
        self.leader_changes = 0
        self.elections = 0
        self.proposals = 0
        self.last_contact: dict[
            str, float
        ] = {}  # member -> monotonic time of its last message

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.joining:
            await self._fetch_join_info()
        elif self._bootstrap_to_write:
            assert self.bootstrap is not None
            write_bootstrap(self.wal.raft_dir, self.bootstrap, self.registry)
        bootstrap = self.bootstrap
        assert bootstrap is not None
        self.raft_config.peers = sorted(bootstrap.voters)
        self.raft_config.learners = sorted(bootstrap.learners)
        self._applied_membership = self._cluster_bootstrap()
        restored = self.snapshots.restore(self.store)
        hard_state, entries = self.wal.open()
        for warning in self.wal.recovery_warnings:
            log.warning(warning)
        snapshot = None
        if restored is not None:
            config = self._adopt_snapshot_registry(restored.members)
            snapshot = SnapshotMeta(restored.index, restored.term, config)
            entries = [e for e in entries if e.index > restored.index]
            self.applied = restored.index
        # The snapshot trigger counts the log on disk since the snapshot, not
        # since this start: a node restarted more often than it fills
        # raft-log-max-size must still snapshot and compact.
        self.bytes_since_snapshot = sum(len(e.data) for e in entries)
        if entries and entries[0].index != (restored.index if restored else 0) + 1:
            where = (
                f"snapshot {self.snapshots.latest.path} ends at index {restored.index}"
                if restored is not None and self.snapshots.latest is not None
                else "there is no snapshot"
            )
            raise StorageError(
                f"gap between snapshot and log: {where} but the log in "
                f"{self.wal.raft_dir} resumes at index {entries[0].index}"
            )
        self.node = RaftNode(
            self.raft_config,
            random.Random(),
            hard_state,
            entries,
            applied=self.applied,
            snapshot=snapshot,
        )
        self.term = hard_state.term
        log.notice(
            f"Raft log recovered: term {hard_state.term}, {len(entries)} entries "
            f"(last index {entries[-1].index if entries else 0}), members: "
            + ", ".join(f"{n} {h}:{p}" for n, (h, p) in self.members.items())
        )
        await self.bus.start(self.config["bind"][0], self.config["cluster-port"])
        self._adopt_membership(self.node.membership)
        self._wakeup = asyncio.Event()
        self._tasks.append(loop.create_task(self._ready_loop()))
        self._tasks.append(loop.create_task(self._ticker()))
        self._wakeup.set()
        if self.joining:
            await self._join()

    async def close(self) -> None:
        self._closing = True
        self.snapshots.kill_child()
        self.snapshots.abort_receive()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_pending(CommandError(OUTCOME_UNKNOWN))
        self._fail_reads(CommandError(NO_LEADER_FOR_READ))
        await self.forwarder.close()
        await self.admin_forwarder.close()
        await self.bus.close()
        try:
            self.wal.close()
        except OSError as e:
            log.warning(f"Closing the Raft log failed: {e}")
        self._executor.shutdown(wait=True)

    # -- the client side: proposals and reads ----------------------------------

    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def propose(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any:
        node = self.node
        assert node is not None
        if self.disk_error is not None:
            # Refused where this node's own log would take the write. A
            # follower still forwards it (the leader's log takes it), to the
            # leader its core knows now: role and leader are otherwise updated
            # by the Ready that the failing write holds up.
            if node.role is Role.LEADER:
                self._check_disk()
            return self._not_leader(entry, client, args, node.leader)
        if self.role is Role.LEADER:
            if entry.name == EXEC_NAME:
                watches, _ = split_exec_args(args)
                if watches:
                    # Checked against every write appended before it, and
                    # proposed right behind them (prez/server/watch.py).
                    self.watch.enable(node.last_index + 1)
                    self.watch.for_term(node.term, node.last_index + 1)
                    if self.watch.written_since(watches):
                        return NULL_ARRAY
            data = encode_command(now, client.db, args)
            if len(data) > MAX_ENTRY_BYTES:
                raise CommandError(
                    f"ERR write of {len(data)} bytes is larger than the replicated "
                    f"log takes ({MAX_ENTRY_BYTES} bytes per entry)"
                )
            try:
                index = node.propose(data)
            except LeadershipTransferring as e:
                raise CommandError(f"TRYAGAIN leadership is being handed to {e.leader}")
            except NotLeader:
                pass
            else:
                reply = Deferred(client)
                stale = self.pending.get(index)
                if stale is not None:
                    # The index was reused after a truncation: the old write
                    # at it may or may not survive elsewhere.
                    self._resolve(stale[1], CommandError(OUTCOME_UNKNOWN))
                self.pending[index] = (node.term, reply)
                self.proposals += 1
                if self.watch.enabled:
                    self.watch.for_term(node.term, index)
                    self.watch.note(entry.spec, client.db, args, index)
                self._kick()
                return reply
        return self._not_leader(entry, client, args)

    def propose_internal(self, db: int, args: list[bytes], now: int) -> None:
        """A write of the server's own (active expiry); nobody waits for it."""
        node = self.node
        if node is not None and self.role is Role.LEADER:
            try:
                index = node.propose(encode_command(now, db, args))
            except NotLeader:
                return
            if self.watch.enabled:
                self.watch.for_term(node.term, index)
                self.watch.note(COMMANDS[args[0].decode()], db, args, index)
            self._kick()

    def _not_leader(
        self,
        entry: CommandEntry,
        client: ClientConnection,
        args: list[bytes],
        leader: str | None = None,
    ) -> Any:
        if leader is None:
            leader = self.leader
        addr = (
            self.bus.client_addr(leader)
            if leader is not None and leader != self.name
            else None
        )
        if addr is None:
            raise CommandError(NO_LEADER)
        mode = self.config["follower-writes"]
        if mode == "moved":
            # Redis Cluster clients cache the owner per slot: name the key's.
            keys = entry.spec.keys(args)
            raise CommandError(f"MOVED {key_slot(keys[0]) if keys else 0} {addr}")
        if mode == "ask":
            raise CommandError(f"ASK {leader} {addr}")
        self.server.stats.forwarded += 1
        return self.forwarder.forward(addr, client.db, client.resp == 3, args)

    def read(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any:
        if client.read_mode == "stale":
            return entry.handler(self.store.dbs[client.db], args, now)
        # It would wait for an applied index that cannot advance.
        self._check_disk()
        reply = Deferred(client)
        self._read_batch.append((entry, client.db, args, reply))
        if not self._read_flush_scheduled:
            # Every read that arrives in this turn of the event loop, from any
            # connection, shares one read-index request: one confirmation
            # round serves the whole batch.
            self._read_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_reads)
        return reply

    def _flush_reads(self) -> None:
        self._read_flush_scheduled = False
        if self._reads_waiting:
            # One read-index request in flight at a time: the reads arriving
            # meanwhile go out together once it is answered, so batches grow
            # with load and a follower's reads cost the leader one round per
            # batch (each of them is still confirmed after it arrived).
            return
        batch, self._read_batch = self._read_batch, []
        node = self.node
        if not batch or node is None:
            return
        self._read_seq += 1
        context = self._read_seq.to_bytes(8, "little")
        self._reads_waiting[context] = batch
        self.read_requests += 1
        node.read_index(context)
        self._kick()

    def _on_read_states(self, read_states: list[ReadState]) -> None:
        for state in read_states:
            batch = self._reads_waiting.pop(state.context, None)
            if batch is None:
                continue
            if state.failed:
                error = CommandError(NO_LEADER_FOR_READ)
                for _, _, _, reply in batch:
                    self._resolve(reply, error)
            elif state.index <= self.applied:
                self._serve_reads(batch)
            else:
                self._read_seq += 1
                heapq.heappush(self._reads_parked, (state.index, self._read_seq, batch))
        if (
            self._read_batch
            and not self._reads_waiting
            and not self._read_flush_scheduled
        ):
            # At the end of this turn, so that reads still arriving in it join.
            self._read_flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_reads)

    def _serve_parked_reads(self) -> None:
        parked = self._reads_parked
        while parked and parked[0][0] <= self.applied:
            self._serve_reads(heapq.heappop(parked)[2])

    def _serve_reads(self, batch: list[ReadRequest]) -> None:
        now = time.time_ns() // 1_000_000
        dbs = self.store.dbs
        clients = set()
        for entry, db, args, reply in batch:
            try:
                value = entry.handler(dbs[db], args, now)
            except CommandError as e:
                value = e.with_traceback(None)
            reply.value = value
            reply.done = True
            clients.add(reply.client)
        self.reads_served += len(batch)
        for client in clients:
            client.drain()

    def _fail_reads(self, error: CommandError) -> None:
        waiting = list(self._reads_waiting.values()) + [
            b for _, _, b in self._reads_parked
        ]
        self._reads_waiting.clear()
        self._reads_parked.clear()
        for batch in waiting:
            for _, _, _, reply in batch:
                self._resolve(reply, error)

    # -- leadership transfer ---------------------------------------------------

    def transfer_leadership(self, client: ClientConnection, target: str | None) -> Any:
        """RAFT.TRANSFER-LEADER: answered once leadership moved, or failed."""
        node = self.node
        assert node is not None
        if self.role is not Role.LEADER:
            leader = self.leader
            addr = self.member_client_addr(leader) if leader else None
            if addr is None:
                raise CommandError(NO_LEADER)
            args = [b"RAFT.TRANSFER-LEADER"] + ([target.encode()] if target else [])
            # Not through the write forwarder: the leader change this causes
            # would fail it in flight instead of passing the leader's OK on.
            return self.admin_forwarder.forward(addr, client.db, client.resp == 3, args)
        if target is None:
            target = self._best_transfer_target()
            if target is None:
                raise CommandError("ERR no other member to hand leadership to")
        if target == self.name:
            raise CommandError("ERR this node is the leader already")
        if target not in node.membership.members:
            raise CommandError(f"ERR no member named '{target}'")
        if target not in node.membership.voters:
            raise CommandError(f"ERR '{target}' is a learner: it cannot lead")
        node.transfer_leader(target)
        self._kick()
        log.notice(f"Handing leadership to {target}")
        reply = Deferred(client)
        self._transfer_waiters.append(reply)
        return reply

    def _best_transfer_target(self) -> str | None:
        node = self.node
        assert node is not None
        best, best_match = None, -1
        for name in node.membership.voters:
            if name == self.name or not self.bus.connected(name):
                continue
            progress = node.progress_of(name)
            match = progress.match if progress is not None else -1
            if match > best_match:
                best, best_match = name, match
        return best

    def _check_transfer(self) -> None:
        """From the ticker: a transfer that ended without a new leader failed."""
        node = self.node
        if not self._transfer_waiters or node is None:
            return
        # The core's own role: the driver's copy lags until the next Ready is
        # handled, and the core has stepped down (transfer done) before then.
        if node.role is not Role.LEADER:
            waiters, self._transfer_waiters = self._transfer_waiters, []
            for reply in waiters:
                self._resolve(reply, "OK")
        elif node.transferring_to is None:
            waiters, self._transfer_waiters = self._transfer_waiters, []
            error = CommandError("ERR leadership transfer did not complete in time")
            for reply in waiters:
                self._resolve(reply, error)

    async def hand_off(self) -> None:
        """Before a clean shutdown, a leader hands leadership to a follower, so
        that a rolling restart does not wait out an election timeout."""
        node = self.node
        if node is None or self.role is not Role.LEADER or len(self.members) < 2:
            return
        target = self._best_transfer_target()
        if target is None:
            return
        node.transfer_leader(target)
        self._kick()
        log.notice(f"Shutting down: handing leadership to {target} first")
        self._stepped_down.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._stepped_down.wait(),
                self.tick_seconds * self.raft_config.election_ticks,
            )
        if self.role is Role.LEADER:
            log.warning(
                f"Leadership was not taken over by {target}; shutting down anyway"
            )

    # -- membership ------------------------------------------------------------

    def _adopt_snapshot_registry(self, lines: list[str]) -> Membership | None:
        """A snapshot's member lines become the registry (as of its index);
        returns its membership (None: the bootstrap one)."""
        try:
            membership, registry = decode_members(lines)
        except ValueError as e:
            log.warning(f"Snapshot member list not understood ({e}); ignored")
            return None
        if membership is None:  # an old snapshot: addresses only
            self.registry.addrs.update(registry.addrs)
        else:
            self.registry = registry
        self.registry.addrs[self.name] = self.own_addr
        self._applied_membership = membership or self._cluster_bootstrap()
        return membership

    def _cluster_bootstrap(self) -> Membership:
        """The cluster's bootstrap membership: a joining node's own bootstrap
        also names itself as a learner, which the rest of the cluster's
        does not (so replaying the log must not count it as removed)."""
        bootstrap = self.bootstrap
        assert bootstrap is not None
        if self.name in bootstrap.learners:
            return Membership(bootstrap.voters, bootstrap.learners - {self.name})
        return bootstrap

    def _adopt_membership(self, membership: Membership) -> None:
        """The membership in effect changed (durably): members, bus, nodes.conf."""
        addrs = self.registry.addrs
        self.members = {
            name: split_host_port(addrs[name])
            for name in sorted(membership.members)
            if name in addrs
        }
        self._sync_bus()
        if self.joining:
            return  # nodes.conf is written once this node has joined
        wanted = {name: addrs[name] for name in membership.members if name in addrs}
        try:
            listed = {
                name: f"{host}:{port}"
                for name, host, port in read_nodes_file(self.nodes_file)
            }
        except ConfigError:
            listed = {}
        if listed == wanted and not membership.learners:
            return  # the operator's file says it already: leave it as written
        text = render_nodes_conf(membership, addrs)
        try:
            write_atomically(self.nodes_file, text, fsync=self.wal.fsync)
        except OSError as e:
            log.warning(f"Rewriting {self.nodes_file} failed: {e}")
            return
        log.notice(
            f"Membership: voters {' '.join(sorted(membership.voters))}"
            + (
                f", learners {' '.join(sorted(membership.learners))}"
                if membership.learners
                else ""
            )
            + f"; {self.nodes_file} rewritten"
        )

    def _sync_bus(self) -> None:
        """Connect to the members in effect and to every name with a known
        address that was never removed: a node replaying old log entries may
        be in an older membership than the leader that feeds it. A removed
        name is dropped, so its HELLO is refused from then on."""
        node = self.node
        registry = self.registry
        names = set(node.membership.members) if node is not None else set()
        names |= registry.addrs.keys() - registry.removed
        names.discard(self.name)
        bus_members = {
            name: split_host_port(registry.addrs[name])
            for name in names
            if name in registry.addrs and registry.addrs[name] != "?:0"
        }
        bus_members[self.name] = split_host_port(self.own_addr)
        self.bus.set_members(bus_members)

    def _apply_member_addr(self, args: list[bytes]) -> str:
        if len(args) < 4:
            raise CommandError("ERR malformed prez.member-addr entry")
        name, addr, role = args[1].decode(), args[2].decode(), args[3]
        registry = self.registry
        registry.addrs[name] = addr
        if role == b"voter":
            registry.promote.add(name)
        else:
            registry.promote.discard(name)
        if b"reuse" in args[4:]:
            registry.removed.discard(name)
        if self.node is not None:
            self._sync_bus()
        return "OK"

    def _apply_config(self, entry: Entry) -> None:
        new = Membership.decode(entry.data)
        old = self._applied_membership or new
        left = old.members - new.members
        registry = self.registry
        registry.removed |= left
        registry.promote -= left | new.voters
        self._applied_membership = new
        if self.name in left:
            log.notice(
                "This node was removed from the cluster; it takes no further part"
            )
        if left:
            self._sync_bus()

    def bootstrap_lines(self) -> list[bytes]:
        """RAFT.NODE BOOTSTRAP: what a joining node needs to start as a learner."""
        assert self.bootstrap is not None
        return [
            line.encode()
            for line in MemberRegistry(self.registry.addrs).encode(self.bootstrap)
        ]

    def nodes_reply(self) -> list[list[Any]]:
        """RAFT.NODES: every member with its role, match index and last contact."""
        node = self.node
        assert node is not None
        membership = node.membership
        now = time.monotonic()
        rows = []
        for name in sorted(membership.members):
            if name == self.name:
                match = node.last_index
                contact = 0
            else:
                progress = node.progress_of(name) if self.role is Role.LEADER else None
                match = progress.match if progress is not None else -1
                seen = self.last_contact.get(name)
                contact = int((now - seen) * 1000) if seen is not None else -1
            rows.append(
                [
                    b"name",
                    name.encode(),
                    b"addr",
                    self.registry.addrs.get(name, "?:0").encode(),
                    b"role",
                    b"voter" if name in membership.voters else b"learner",
                    b"leader",
                    int(name == self.leader),
                    b"match_index",
                    match,
                    b"last_contact_ms",
                    contact,
                ]
            )
        return rows

    def _heard_recently(self, name: str) -> bool:
        if name == self.name:
            return True
        seen = self.last_contact.get(name)
        limit = self.tick_seconds * self.raft_config.election_ticks
        return seen is not None and time.monotonic() - seen < limit

    def _keeps_majority(self, voters_after: frozenset[str]) -> bool:
        healthy = sum(1 for v in voters_after if self._heard_recently(v))
        return healthy >= len(voters_after) // 2 + 1

    def node_command(self, client: ClientConnection, args: list[bytes]) -> Any:
        """RAFT.NODE ADD|REMOVE|PROMOTE|BOOTSTRAP (see prez.server.commands)."""
        node = self.node
        assert node is not None
        sub = args[1].lower()
        if sub == b"bootstrap":
            return self.bootstrap_lines()
        if self.role is not Role.LEADER:
            leader = self.leader
            leader_addr = self.member_client_addr(leader) if leader else None
            if leader_addr is None:
                raise CommandError(NO_LEADER)
            # Not through the write forwarder: a change may move leadership
            # (a removed leader steps down) and must not fail in flight.
            return self.admin_forwarder.forward(
                leader_addr, client.db, client.resp == 3, args
            )
        membership = node.membership
        if self._change_busy or node.conf_change_pending:
            raise CommandError(MEMBERSHIP_IN_PROGRESS)
        name = args[2].decode("utf-8", "replace")
        registry = self.registry
        addr: str | None = None
        auto_promote = reuse = False
        if sub == b"add":
            if len(args) < 4:
                raise CommandError(
                    "ERR syntax: RAFT.NODE ADD <name> <host:port> [LEARNER] [REUSE]"
                )
            addr = args[3].decode("utf-8", "replace")
            options = {a.lower() for a in args[4:]}
            if options - {b"learner", b"reuse"}:
                raise CommandError("ERR syntax error: options are LEARNER and REUSE")
            auto_promote = b"learner" not in options
            reuse = b"reuse" in options
            if not name or any(c.isspace() for c in name):
                raise CommandError(f"ERR invalid node name '{name}'")
            try:
                split_host_port(addr)
            except AddressError:
                raise CommandError(
                    f"ERR invalid address '{addr}': expected host:cluster-port"
                )
            if name in membership.members:
                raise CommandError(f"ERR node name '{name}' is already a member")
            for other in membership.members:
                if registry.addrs.get(other) == addr:
                    raise CommandError(
                        f"ERR address {addr} is already used by member '{other}'"
                    )
            if name in registry.removed and not reuse:
                raise CommandError(
                    f"ERR node name '{name}' was removed from the cluster and names "
                    "are not reused; add the node under a new name (or re-admit "
                    "this one explicitly with REUSE)"
                )
            kind = ConfChangeKind.ADD_LEARNER
        elif sub == b"remove":
            if len(args) != 3:
                raise wrong_arity("raft.node")
            if name not in membership.members:
                raise CommandError(f"ERR no member named '{name}'")
            if name in membership.voters:
                after = membership.voters - {name}
                if not after:
                    raise CommandError(f"ERR cannot remove '{name}', the last voter")
                if not self._keeps_majority(after):
                    raise CommandError(
                        f"ERR removing '{name}' would leave fewer healthy voters than "
                        f"a majority of the {len(after)} remaining"
                    )
            kind = ConfChangeKind.REMOVE
        elif sub == b"promote":
            if len(args) != 3:
                raise wrong_arity("raft.node")
            if name not in membership.learners:
                raise CommandError(f"ERR '{name}' is not a learner")
            if not self._keeps_majority(membership.voters | {name}):
                raise CommandError(
                    f"ERR promoting '{name}' would leave fewer healthy voters than a majority"
                )
            kind = ConfChangeKind.PROMOTE
        else:
            raise CommandError(
                f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                "Try ADD, REMOVE, PROMOTE or BOOTSTRAP."
            )
        reply = Deferred(client)
        self._start_change(kind, name, addr, auto_promote, reuse, reply)
        return reply

    def _start_change(
        self,
        kind: ConfChangeKind,
        name: str,
        addr: str | None,
        auto_promote: bool,
        reuse: bool,
        reply: Deferred | None,
    ) -> None:
        self._change_busy = True
        task = asyncio.get_running_loop().create_task(
            self._run_change(kind, name, addr, auto_promote, reuse)
        )

        def done(task: asyncio.Task[None]) -> None:
            self._change_busy = False
            error = None if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, CommandError):
                log.warning(f"Membership change failed: {error!r}")
                error = CommandError(f"ERR membership change failed: {error!r}")
            if error is None:
                log.notice(f"Membership change done: {kind.value} {name}")
            else:
                log.notice(f"Membership change {kind.value} {name} failed: {error}")
            if reply is not None:
                self._resolve(reply, "OK" if error is None else error)

        task.add_done_callback(done)
        self._tasks.append(task)

    async def _run_change(
        self,
        kind: ConfChangeKind,
        name: str,
        addr: str | None,
        auto_promote: bool,
        reuse: bool,
    ) -> None:
        node = self.node
        assert node is not None
        term = node.term
        try:
            if addr is not None:
                args = [MEMBER_ADDR, name.encode(), addr.encode()]
                args.append(b"voter" if auto_promote else b"learner")
                if reuse:
                    args.append(b"reuse")
                index = node.propose(
                    encode_command(time.time_ns() // 1_000_000, 0, args)
                )
                self._kick()
                await self._wait_applied(index, term)
            log.notice(f"Proposing membership change: {kind.value} {name}")
            index = node.propose_conf_change(ConfChange(kind, name))
        except ConfChangeInProgress:
            raise CommandError(MEMBERSHIP_IN_PROGRESS) from None
        except LeadershipTransferring as e:
            raise CommandError(
                f"TRYAGAIN leadership is being handed to {e.leader}"
            ) from None
        except NotLeader:
            raise CommandError(NO_LEADER) from None
        except ConfChangeRefused as e:
            raise CommandError(f"ERR {e}") from None
        self._kick()
        await self._wait_applied(index, term)

    async def _wait_applied(self, index: int, term: int) -> None:
        """Until the entry at `index` proposed in `term` is applied; the
        outcome-unknown error if leadership was lost first."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._apply_waiters[index] = (term, future)
        try:
            ok = await asyncio.wait_for(
                future, 20 * self.tick_seconds * self.raft_config.election_ticks
            )
        except TimeoutError:
            ok = False
        finally:
            self._apply_waiters.pop(index, None)
        if not ok:
            raise CommandError(OUTCOME_UNKNOWN)

    def _maybe_promote(self) -> None:
        """From the ticker, on the leader: promote a caught-up learner that
        joined to become a voter."""
        node = self.node
        assert node is not None
        if (
            self.role is not Role.LEADER
            or self._change_busy
            or node.conf_change_pending
        ):
            return
        membership = node.membership
        for name in sorted(membership.learners & self.registry.promote):
            progress = node.progress_of(name)
            if progress is None or progress.match + PROMOTE_LAG < node.commit_index:
                continue
            if not self._heard_recently(name) or not self._keeps_majority(
                membership.voters | {name}
            ):
                continue
            log.notice(
                f"Learner {name} caught up (match {progress.match}): promoting it"
            )
            self._start_change(ConfChangeKind.PROMOTE, name, None, False, False, None)
            return

    # -- joining a running cluster -----------------------------------------------

    async def _fetch_join_info(self) -> None:
        """Before the node starts: the cluster's bootstrap membership (this node
        added as a learner) and the current members' addresses."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        while True:
            try:
                boot_lines = await self._call_join_target([b"RAFT.NODE", b"BOOTSTRAP"])
                nodes = await self._call_join_target([b"RAFT.NODES"])
                if isinstance(boot_lines, list) and isinstance(nodes, list):
                    break
                problem = f"{boot_lines!r} / {nodes!r}"
            except (OSError, TimeoutError, ProtocolError) as e:
                problem = repr(e)
            if time.monotonic() > deadline:
                raise StorageError(f"cannot join through {self.join_addr}: {problem}")
            log.warning(f"Asking {self.join_addr} to join failed ({problem}); retrying")
            await asyncio.sleep(0.5)
        found = read_bootstrap(self.wal.raft_dir)
        if found is not None:  # an earlier attempt got this far
            self.bootstrap, registry = found
        else:
            try:
                cluster_boot, registry = decode_members(
                    [b.decode() for b in boot_lines]
                )
            except ValueError as e:
                raise StorageError(f"cannot join through {self.join_addr}: {e}")
            if cluster_boot is None:
                raise StorageError(f"{self.join_addr} sent no bootstrap membership")
            self.bootstrap = Membership(
                cluster_boot.voters, cluster_boot.learners | {self.name}
            )
            write_bootstrap(self.wal.raft_dir, self.bootstrap, registry)
        for name, addr in registry.addrs.items():
            self.registry.addrs.setdefault(name, addr)
        for row in nodes:
            fields = dict(zip(row[::2], row[1::2], strict=False))
            row_name, row_addr = fields.get(b"name"), fields.get(b"addr")
            if isinstance(row_name, bytes) and isinstance(row_addr, bytes):
                self.registry.addrs[row_name.decode()] = row_addr.decode()
        self.registry.addrs[self.name] = self.own_addr

    async def _join(self) -> None:
        """Ask the cluster to add this node (as a learner, promoted once caught up)."""
        deadline = time.monotonic() + JOIN_TIMEOUT
        request = [b"RAFT.NODE", b"ADD", self.name.encode(), self.own_addr.encode()]
        while True:
            try:
                reply = await self._call_join_target(request)
            except (OSError, TimeoutError, ProtocolError) as e:
                reply = CommandError(repr(e))
            if not isinstance(reply, CommandError):
                break
            text = str(reply)
            if "is already a member" in text:
                break  # added by an earlier attempt that did not see the answer
            if not any(
                mark in text
                for mark in (
                    "CLUSTERDOWN",
                    "TRYAGAIN",
                    "in progress",
                    "unknown",
                    "Error",
                )
            ):
                raise StorageError(f"the cluster refused to add this node: {text}")
            if time.monotonic() > deadline:
                raise StorageError(f"could not join through {self.join_addr}: {text}")
            await asyncio.sleep(0.2)
        log.notice(f"Joined the cluster through {self.join_addr} as a learner")
        self.joining = False
        node = self.node
        assert node is not None
        if self.name in node.membership.members:
            self._adopt_membership(node.membership)

    async def _call_join_target(self, args: list[bytes]) -> Any:
        """One command to the cluster-join address; an error reply comes back
        as a CommandError value."""
        host, port = split_host_port(self.join_addr)
        password = self.config["requirepass"]
        commands = ([[b"AUTH", password.encode()]] if password else []) + [args]
        replies = await respclient.request(
            host, port, commands, reply_timeout=30.0, connect_timeout=5.0
        )
        return replies[-1]

    # -- the Ready loop --------------------------------------------------------

    def _kick(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.is_set():
            wakeup.set()

    def _on_message(self, msg: Message) -> None:
        node = self.node
        if node is None or self._closing:
            return
        self.last_contact[msg.src] = time.monotonic()
        if log.level <= DEBUG and msg.type in (
            MessageType.APPEND,
            MessageType.HEARTBEAT,
        ):
            last = (
                msg.index + len(msg.entries)
                if msg.type == MessageType.APPEND
                else node.last_index
            )
            log.debug(
                f"--- Received AppendEntries term {msg.term}, name: {msg.src}, "
                f"logindex {last}, leadercommit {msg.commit}"
            )
        kind = msg.type
        if (
            kind == MessageType.SNAPSHOT
            or kind == MessageType.SNAPSHOT_FETCH
            or kind == MessageType.SNAPSHOT_CHUNK
        ):
            self._on_snapshot_message(msg)
            return
        try:
            node.step(msg)
        except RaftSafetyError as e:
            self._fatal(f"Raft safety violation: {e}")
            return
        if kind == MessageType.READ_INDEX:
            # The answer needs nothing durable: send it now rather than wake
            # the Ready loop for it, which costs the leader more than the
            # answer itself (followers' reads must not load the leader).
            answer = node.take_messages()
            if answer:
                self._send(answer)
            if not node.has_ready():
                return
        self._kick()

    def _on_snapshot_message(self, msg: Message) -> None:
        node = self.node
        assert node is not None
        snapshots = self.snapshots
        if msg.type == MessageType.SNAPSHOT:  # an offer from the leader
            if msg.src != self.leader and msg.term < node.term:
                return
            fetch = snapshots.on_offer(msg)
            if fetch is not None:
                self.bus.send([fetch])
        elif msg.type == MessageType.SNAPSHOT_FETCH:  # we lead: serve a chunk
            reply = snapshots.serve_fetch(msg)
            self.bus.send([reply])
            if reply.reject:
                node.report_snapshot(msg.src, False)
            elif reply.hint_term:  # the last chunk went out
                node.report_snapshot(msg.src, True)
                snapshots.serving.pop(msg.src, None)
            self._kick()
        else:  # a chunk for us
            fetch, offer = snapshots.on_chunk(msg)
            if fetch is not None:
                self.bus.send([fetch])
            if offer is not None:
                try:
                    node.step(offer)
                except RaftSafetyError as e:
                    self._fatal(f"Raft safety violation: {e}")
                    return
                installed = node.snapshot
                if installed is None or (installed.index, installed.term) < (
                    offer.index,
                    offer.log_term,
                ):
                    # Stale by the time it arrived: the core kept its own state.
                    snapshots.discard(offer.index, offer.log_term)
                self._kick()

    def _snapshot_timers(self) -> None:
        node = self.node
        assert node is not None
        refetch = self.snapshots.refetch_if_stalled()
        if refetch is not None:
            self.bus.send([refetch])
        for peer in self.snapshots.stale_transfers():
            log.warning(
                f"Snapshot transfer to {peer} went silent; it will be offered again"
            )
            node.report_snapshot(peer, False)
        if self.snapshots.child is not None:
            self._kick()  # poll the child from the Ready loop

    def _snapshot_housekeeping(self) -> None:
        """After each Ready: finish a snapshot child, compact, start a new one."""
        node = self.node
        assert node is not None
        snapshots = self.snapshots
        done = snapshots.poll()
        if done is not None:
            node.compact(done.index)
            covered, self._bytes_at_snapshot_start = self._bytes_at_snapshot_start, 0
            self.bytes_since_snapshot = max(0, self.bytes_since_snapshot - covered)
            # Keep the log after the OLDER of the two kept snapshots: if the newest
            # one is damaged, restart falls back to the older one plus this log.
            keep_from = snapshots.compaction_floor()
            if keep_from > 0:
                removed = self.wal.compact(keep_from)
                if removed:
                    log.verbose(
                        f"Compacted the log up to index {keep_from}: {removed} segments removed"
                    )
        if snapshots.due(self.applied, self.bytes_since_snapshot):
            members = self.registry.encode(node.membership_at(self.applied))
            term = node.log.term_at(self.applied)
            if term is not None and snapshots.start(self.applied, term, members):
                self._bytes_at_snapshot_start = self.bytes_since_snapshot

    def force_snapshot(self) -> bool:
        """RAFT.SNAPSHOT: take one now (False if one is already running)."""
        node = self.node
        assert node is not None
        term = node.log.term_at(self.applied)
        if term is None or self.applied <= (
            self.snapshots.latest.index if self.snapshots.latest else 0
        ):
            return False
        members = self.registry.encode(node.membership_at(self.applied))
        started = self.snapshots.start(self.applied, term, members)
        if started:
            self._bytes_at_snapshot_start = self.bytes_since_snapshot
        return started

    async def _ticker(self) -> None:
        node = self.node
        assert node is not None
        interval = self.tick_seconds
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += interval
            if next_tick < loop.time():  # the loop stalled: do not tick in a burst
                next_tick = loop.time() + interval
            node.tick()
            self._snapshot_timers()
            self._check_transfer()
            if node.membership.learners:
                self._maybe_promote()
            self._kick()

    async def _ready_loop(self) -> None:
        try:
            await self._ready_loop_body()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a dead loop must stop the node, not hang it
            import traceback

            log.warning("".join(traceback.format_exception(e)))
            self._fatal(f"Internal error in the Raft loop: {e!r}")

    async def _ready_loop_body(self) -> None:
        node = self.node
        wakeup = self._wakeup
        assert node is not None and wakeup is not None
        # The order of the driver contract (prez/raft/ready_loop.py); the
        # simulator runs the same ReadyLoop. Here the write's fsync runs in a
        # worker thread while the event loop keeps serving.
        ready_loop = ReadyLoop(node, self.wal, _BusTransport(self), self)
        while True:
            await wakeup.wait()
            wakeup.clear()
            while True:
                try:
                    # The received snapshot file is already durable in place;
                    # the log restarts after it (the core hands the kept
                    # suffix out again in rd.entries).
                    rd = ready_loop.begin()
                except OSError as e:
                    self._fatal(f"Resetting the Raft log for a snapshot failed: {e}")
                    return
                if rd is None:
                    break
                if needs_write(rd) and not await self._persist(ready_loop, rd):
                    return
                ready_loop.finish(rd)
                self._snapshot_housekeeping()
            # Also when no Ready came (an idle one-node cluster): reap a
            # finished snapshot child, compact, start a due snapshot.
            self._snapshot_housekeeping()

    # -- the state machine side of the Ready loop (ready_loop.Applier) -------

    def restore(self, snapshot: SnapshotMeta) -> None:
        meta = self.snapshots.install(snapshot.index, snapshot.term, self.store)
        self._adopt_snapshot_registry(meta.members)
        self._sync_bus()
        self.applied = snapshot.index
        self.bytes_since_snapshot = 0
        log.notice(f"Installed snapshot {snapshot.index}/{snapshot.term}")

    def apply(self, rd: Ready) -> None:
        if rd.membership is not None:
            self._adopt_membership(rd.membership)
        if rd.committed_entries:
            self._apply(rd.committed_entries)
            if self._reads_parked:
                self._serve_parked_reads()
        if rd.read_states:
            self._on_read_states(rd.read_states)
        if rd.soft_state is not None:
            self._on_soft_state(rd)

    async def _persist(self, ready_loop: ReadyLoop, rd: Ready) -> bool:
        """Make rd's entries and hard state durable, however long it takes.

        A full disk or an I/O error does not stop the node: the unsynced
        part of the log is rolled back and the same Ready is written again,
        from memory, with a growing delay, until it succeeds. Until then
        nothing of this Ready is acknowledged or applied (its answers wait in
        rd.persisted_messages), writes and reads on this node are refused
        with -MISCONF (see `_check_disk`), and the node keeps stepping
        messages: if it led, its followers elect another leader once its
        heartbeats stop. False only if the node must stop.
        """
        wal = self.wal
        loop = asyncio.get_running_loop()
        delay = WRITE_RETRY_START
        while True:
            try:
                ready_loop.write(rd)
                started = time.perf_counter()
                if wal.fsync:
                    await loop.run_in_executor(self._executor, wal.sync)
                else:
                    wal.sync()
                self._count_fsync(time.perf_counter() - started)
            except OSError as e:
                try:
                    wal.rollback_unsynced()
                except OSError as e2:
                    self._fatal(
                        f"Writing the Raft log failed ({e}) and so did undoing it ({e2})"
                    )
                    return False
                self._disk_failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, WRITE_RETRY_CAP)
                continue
            if rd.entries:
                self.bytes_since_snapshot += sum(len(e.data) for e in rd.entries)
            if self.disk_error is not None:
                log.notice(
                    f"The Raft log is writable again after {self.disk_error_count} "
                    "failed attempts; writes and reads are accepted again"
                )
                self.disk_error = None
            return True

    def _disk_failed(self, error: OSError) -> None:
        reason = error.strerror or str(error)
        if self.disk_error is None:
            self.disk_error_count = 0
            self.disk_errors_total += 1
            log.warning(
                f"Cannot write the Raft log in {self.wal.raft_dir}: {reason}. "
                "Refusing writes and reads until it can be written again "
                "(retrying by itself)"
            )
            # Nothing this node waits on can finish before the disk does;
            # the writes may still commit through the other members.
            self._fail_pending(
                CommandError(
                    f"UNKNOWN Cannot write the Raft log ({reason}); the write "
                    "may or may not have been applied"
                )
            )
            self._fail_reads(CommandError(f"{DISK_ERROR_PREFIX}{reason}"))
        self.disk_error = reason
        self.disk_error_count += 1

    def _check_disk(self) -> None:
        """Refuse what needs this node's log while it cannot be written."""
        if self.disk_error is not None:
            raise CommandError(f"{DISK_ERROR_PREFIX}{self.disk_error}")

    def _send(self, messages: list[Message]) -> None:
        for msg in messages:
            if msg.type == MessageType.SNAPSHOT:
                # Sent as an offer: the follower pulls the file in chunks.
                self.snapshots.serving[msg.dst] = time.monotonic()
                log.verbose(
                    f"Offering snapshot {msg.index}/{msg.log_term} to {msg.dst}"
                )
        if log.level <= DEBUG:
            for msg in messages:
                if (
                    msg.type in (MessageType.HEARTBEAT, MessageType.APPEND)
                    and not msg.entries
                ):
                    host, port = self.members.get(msg.dst, ("?", 0))
                    log.debug(
                        f"Sending heartbeat to port {port} ({msg.dst}), term {msg.term}"
                    )
        self.bus.send(messages)

    def _count_fsync(self, seconds: float) -> None:
        self.fsyncs += 1
        self.fsync_seconds += seconds
        if seconds > self.fsync_max:
            self.fsync_max = seconds

    def _apply(self, entries: list[Entry]) -> None:
        store_dbs = self.store.dbs
        # Keyed by the name as sent (upper and lower case): no decoding per entry.
        lookup = self.server.lookup
        pending = self.pending
        waiting_clients = set()
        for entry in entries:
            if entry.kind == EntryKind.NORMAL:
                try:
                    now, db, args = decode_command(entry.data)
                    result: Any
                    if args[0] == MEMBER_ADDR:
                        result = self._apply_member_addr(args)
                    else:
                        spec = lookup.get(args[0]) or lookup.get(args[0].lower())
                        if (
                            spec is None
                            or spec.kind != 1
                            or not 0 <= db < len(store_dbs)
                        ):
                            raise CommandError(
                                f"ERR log entry {entry.index} holds no write command"
                            )
                        result = spec.handler(store_dbs[db], args, now)
                except CommandError as e:
                    result = e.with_traceback(None)  # no frame cycle (see app.py)
                except ProtocolError as e:
                    # Every replica holds the same bytes, so every replica
                    # skips this entry the same way.
                    log.warning(f"Log entry {entry.index} is malformed ({e}); skipped")
                    result = CommandError(f"ERR log entry {entry.index} is malformed")
                except Exception as e:  # noqa: BLE001 - see below
                    # A bug in a command must not stop the node: every replica
                    # hits it on the same entry and answers the same error, so
                    # they still agree, and a restart would only hit it again.
                    log.warning(f"Applying log entry {entry.index} failed: {e!r}")
                    result = CommandError(
                        f"ERR internal error applying the command: {e!r}"
                    )
                else:
                    if args[0] == b"prez.expire" and type(result) is int:
                        self.server.count_expired(result)
            else:
                if entry.kind == EntryKind.CONFIG:
                    self._apply_config(entry)
                result = None
            self.applied = entry.index
            if self._apply_waiters:
                waiter = self._apply_waiters.pop(entry.index, None)
                if waiter is not None and not waiter[1].done():
                    waiter[1].set_result(waiter[0] == entry.term)
            if pending:
                waiting = pending.pop(entry.index, None)
                if waiting is not None:
                    term, reply = waiting
                    reply.value = (
                        result if term == entry.term else CommandError(OUTCOME_UNKNOWN)
                    )
                    reply.done = True
                    waiting_clients.add(reply.client)
        for client in waiting_clients:
            client.drain()

    def _on_soft_state(self, rd: Ready) -> None:
        soft = rd.soft_state
        assert soft is not None
        was_leader = self.role is Role.LEADER
        old_term = self.term
        if soft.leader != self.leader:
            self.leader_changes += 1
            self.forwarder.leader_changed()
        self.role, self.leader, self.term = soft.role, soft.leader, soft.term
        # Leadership lost, or lost and regained in a later term between two
        # Readys: either way the writes waiting may or may not survive.
        if was_leader and (soft.role is not Role.LEADER or soft.term != old_term):
            self._fail_pending(CommandError(OUTCOME_UNKNOWN))
        if soft.role is not Role.LEADER:
            self._stepped_down.set()
        if soft.role is Role.LEADER:
            log.notice(f"Became leader for term {soft.term}")
        elif soft.role is Role.FOLLOWER and soft.leader is not None:
            log.notice(f"Following {soft.leader} in term {soft.term}")
        elif soft.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            if soft.role is Role.CANDIDATE:
                self.elections += 1
            log.verbose(f"Starting an election ({soft.role.value}) in term {soft.term}")
        else:
            log.notice(f"No leader known in term {soft.term}")

    @staticmethod
    def _resolve(reply: Deferred, value: Any) -> None:
        reply.value = value
        reply.done = True
        reply.client.drain()

    def _fail_pending(self, error: CommandError) -> None:
        waiters, self._apply_waiters = self._apply_waiters, {}
        for _, future in waiters.values():
            if not future.done():
                future.set_result(False)
        pending, self.pending = self.pending, {}
        waiting_clients = set()
        for _, reply in pending.values():
            reply.value = error
            reply.done = True
            waiting_clients.add(reply.client)
        for client in waiting_clients:
            client.drain()

    def _fatal(self, message: str) -> None:
        log.warning(message)
        self.server.request_stop(message, exit_code=1)

    # -- introspection for ROLE and INFO ---------------------------------------

    def member_client_addr(self, name: str) -> str | None:
        if name == self.name:
            return self.client_addr
        addr: str | None = self.bus.client_addr(name)
        return addr

    def info_fields(self) -> dict[str, Any]:
        node = self.node
        assert node is not None
        fields: dict[str, Any] = {
            "raft_role": self.role.value,
            "raft_node_name": self.name,
            "raft_leader": self.leader or "",
            "raft_leader_addr": (self.member_client_addr(self.leader) or "")
            if self.leader
            else "",
            "raft_term": node.term,
            "raft_commit_index": node.commit_index,
            "raft_applied_index": self.applied,
            "raft_last_log_index": node.last_index,
            "raft_members": len(self.members),
            "raft_fsync": "yes" if self.wal.fsync else "no",
            "raft_fsyncs": self.fsyncs,
            "raft_fsync_avg_ms": f"{1000 * self.fsync_seconds / self.fsyncs:.3f}"
            if self.fsyncs
            else "0",
            "raft_fsync_max_ms": f"{1000 * self.fsync_max:.3f}",
            # As Redis's aof_last_write_status: ok, or err while writes fail.
            "raft_log_write_status": "ok" if self.disk_error is None else "err",
            "raft_log_write_error": self.disk_error or "",
            "raft_log_write_error_episodes": self.disk_errors_total,
            "raft_leader_changes": self.leader_changes,
            "raft_elections_started": self.elections,
            "raft_read_mode": self.config["read-mode"],
            "raft_proposals": self.proposals,
            "raft_reads": sum(
                e.calls for e in self.server.commands.values() if e.kind == 0
            ),
            # Batches: reads per request is raft_reads / this (linearizable).
            "raft_read_index_requests": self.read_requests,
            "raft_forwarded": self.server.stats.forwarded,
            "raft_log_bytes": self.wal.size_bytes,
            "raft_log_first_index": self.wal.first_index,
            "raft_log_bytes_since_snapshot": self.bytes_since_snapshot,
            **self.snapshots.info_fields(),
        }
        for name in self.members:
            if name == self.name:
                continue
            progress = node.progress_of(name) if self.role is Role.LEADER else None
            match = progress.match if progress is not None else -1
            seen = self.last_contact.get(name)
            contact = int((time.monotonic() - seen) * 1000) if seen is not None else -1
            fields[f"member_{name}"] = (
                f"addr={self.member_client_addr(name) or '?'},"
                f"connected={int(self.bus.connected(name))},match_index={match},"
                f"last_contact_ms={contact}"
            )
        return fields

    def role_reply(self) -> list[Any]:
        node = self.node
        assert node is not None
        if self.role is Role.LEADER:
            replicas = []
            for name in self.members:
                if name == self.name:
                    continue
                addr = self.member_client_addr(name)
                if addr is None:
                    continue
                host, port = split_host_port(addr)
                progress = node.progress_of(name)
                match = progress.match if progress is not None else 0
                replicas.append([host.encode(), b"%d" % port, b"%d" % match])
            return [b"master", node.commit_index, replicas]
        addr = self.member_client_addr(self.leader) if self.leader else None
        if addr is None:
            return [b"slave", b"", -1, b"connect", self.applied]
        host, port = split_host_port(addr)
        return [b"slave", host.encode(), port, b"connected", self.applied]


def load_members(path: str) -> dict[str, tuple[str, int]]:
    from prez.config import read_nodes_file

    return {name: (host, port) for name, host, port in read_nodes_file(path)}


def cluster_config_exists(path: str) -> bool:
    return os.path.exists(path)
