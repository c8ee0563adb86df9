"""`Network`: an etcd-style synchronous harness for unit tests of the Raft
core. Each message is stepped into its target and the answers delivered
until the network is quiet, with per-link and per-type filters; writes,
snapshots and transfers complete at once, each node through the production
ReadyLoop. See prez.testing.sim for the randomized harness."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from prez.raft.core import (
    RaftConfig,
    RaftNode,
    Ready,
    Role,
)
from prez.raft.ready_loop import ReadyLoop
from prez.raft.types import (
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    SnapshotMeta,
)
from prez.testing.invariants import SafetyChecker
from prez.testing.simdisk import (
    Disk,
    SnapshotFile,
    bootstrap_membership,
    take_snapshot,
)


class _NetworkAdapter:
    """A Network node's log, transport and state machine for the ReadyLoop."""

    def __init__(self, net: Network, name: str) -> None:
        self.net = net
        self.name = name
        self.disk = net.disks[name]
        self.installing: SnapshotFile | None = None

    def install_snapshot_base(self, snapshot: SnapshotMeta) -> None:
        installed = self.net.incoming.pop(self.name)
        assert installed.meta == snapshot
        self.disk.reset_to(installed)
        self.installing = installed

    def write(self, hard_state: HardState | None, entries: list[Entry]) -> None:
        self.net.checker.check_ready_entries(self.net.nodes[self.name], entries)
        self.disk.write(hard_state, entries)

    def sync(self) -> None:
        before = self.disk.hard_state
        self.disk.sync()
        self.net.checker.check_persist(self.name, before, self.disk.hard_state)

    def send(self, messages: list[Message]) -> None:
        self.net.outbox.extend(messages)

    def send_durable(self, messages: list[Message]) -> None:
        for msg in messages:
            self.net.checker.check_persisted_message(msg, self.disk)
        self.net.outbox.extend(messages)

    def restore(self, snapshot: SnapshotMeta) -> None:
        installed = self.installing
        assert installed is not None
        self.net.checker.check_restore(self.name, installed)
        self.net.applied[self.name] = list(installed.entries)

    def apply(self, rd: Ready) -> None:
        self.net.checker.check_apply(self.name, rd.committed_entries)
        self.net.applied[self.name].extend(rd.committed_entries)
        self.net.read_states[self.name].extend(rd.read_states)


# -- the synchronous harness for unit tests ----------------------------------------


class Network:
    """Nodes joined by a perfect synchronous network (etcd's raft_test
    `network`): writes complete at once, messages are stepped into their
    targets until nothing is left, minus what the filters drop."""

    def __init__(
        self,
        names: Iterable[str],
        seed: int = 0,
        configure: Callable[[RaftConfig], None] | None = None,
    ) -> None:
        self.names = list(names)
        self.rng = random.Random(seed)
        self.disks = {name: Disk() for name in self.names}
        self.configs: dict[str, RaftConfig] = {}
        for name in self.names:
            config = RaftConfig(name=name, peers=list(self.names))
            if configure is not None:
                configure(config)
            self.configs[name] = config
        self.nodes: dict[str, RaftNode] = {}
        # Each node's state machine: every applied entry from index 1.
        self.applied: dict[str, list[Entry]] = {name: [] for name in self.names}
        # Received and installed, not yet the base (writes here are
        # synchronous, so at most one per node).
        self.incoming: dict[str, SnapshotFile] = {}
        self.transfers: list[tuple[str, str, bool]] = []  # (src, dst, ok)
        # Every ReadState each node handed out, in order.
        self.read_states: dict[str, list[ReadState]] = {name: [] for name in self.names}
        self.checker = SafetyChecker(self.names, self.disks)
        self.configure = configure
        self.bootstrap = list(self.names)
        self.cut: set[frozenset[str]] = set()
        self.isolated: set[str] = set()
        self.dropped_types: set[int] = set()
        self.delivered: list[Message] = []  # every message stepped, in order
        self.hook: Callable[[Message], bool] | None = None  # False drops
        self.outbox: deque[Message] = deque()
        for name in self.names:
            self.start(name)

    def start(
        self,
        name: str,
        entries: list[Entry] | None = None,
        hard: HardState | None = None,
    ) -> RaftNode:
        """(Re)start `name` from its disk (or from the given state, written
        to its disk first, to set up a scenario)."""
        disk = self.disks[name]
        if entries is not None:
            disk.entries = list(entries)
        if hard is not None:
            disk.hard_state = hard
        recovered_hard, recovered_entries, snapshot = disk.recovered()
        node = RaftNode(
            self.configs[name],
            random.Random(self.rng.getrandbits(32)),
            recovered_hard,
            recovered_entries,
            applied=disk.offset,
            snapshot=snapshot,
        )
        self.nodes[name] = node
        self.applied[name] = list(disk.snapshot.entries) if disk.snapshot else []
        self.incoming.pop(name, None)
        if entries is None and hard is None:
            self.checker.on_restart(node, disk)
        return node

    def add(self, name: str) -> RaftNode:
        """Start a fresh node, empty disk, as a joining learner (bootstrap
        voters as the others', itself a learner): the leader's
        propose_conf_change makes it a member."""
        config = RaftConfig(name=name, peers=list(self.bootstrap), learners=[name])
        if self.configure is not None:
            self.configure(config)
        self.names.append(name)
        self.configs[name] = config
        self.disks[name] = Disk()
        self.applied[name] = []
        self.read_states[name] = []
        self.checker.add_node(name)
        return self.start(name)

    def crash(self, name: str) -> None:
        """Stop a node: unflushed output is lost, its disk stays."""
        del self.nodes[name]
        self.incoming.pop(name, None)
        self.checker.on_crash(name)

    def compact(self, name: str, index: int | None = None) -> SnapshotFile:
        """Snapshot `name`'s state machine at `index` (default: all it
        applied), durably, and compact its log there."""
        state = self.applied[name]
        snapshot = take_snapshot(
            state if index is None else state[:index],
            bootstrap_membership(self.configs[name]),
        )
        self.checker.check_snapshot(name, snapshot)
        self.disks[name].compact(snapshot)
        self.nodes[name].compact(snapshot.index)
        return snapshot

    def process(self, name: str) -> None:
        """Drain the node's Readys by the driver contract, queueing messages."""
        node = self.nodes[name]
        self.checker.check_node(node)
        adapter = _NetworkAdapter(self, name)
        loop = ReadyLoop(node, adapter, adapter, adapter)
        while loop.run_sync() is not None:
            self.checker.check_node(node)

    def _passes(self, msg: Message) -> bool:
        if msg.dst not in self.nodes:
            return False
        if msg.src in self.isolated or msg.dst in self.isolated:
            return False
        if frozenset((msg.src, msg.dst)) in self.cut or msg.type in self.dropped_types:
            return False
        return self.hook is None or self.hook(msg)

    def stabilize(self, max_messages: int = 100_000) -> int:
        """Process every node and deliver until quiet; returns messages stepped."""
        for name in list(self.nodes):
            self.process(name)
        stepped = 0
        while self.outbox:
            msg = self.outbox.popleft()
            if not self._passes(msg):
                if msg.type == MessageType.SNAPSHOT:
                    self._report(msg, ok=False)  # the transfer broke
                continue
            stepped += 1
            if stepped > max_messages:
                raise AssertionError("network did not quiesce")
            self.delivered.append(msg)
            if msg.type == MessageType.SNAPSHOT:
                self._transfer(msg)
                continue
            self.nodes[msg.dst].step(msg)
            self.process(msg.dst)
        return stepped

    def _transfer(self, msg: Message) -> None:
        """A SNAPSHOT message that got through: the leader's newest snapshot
        arrives whole, the follower's driver steps it in, the leader's
        driver reports success."""
        disk = self.disks[msg.src]
        file = max(
            (f for f in (disk.snapshot, self.incoming.get(msg.src)) if f is not None),
            key=lambda f: f.index,
        )
        node = self.nodes[msg.dst]
        before = node.snapshot
        node.step(
            Message(
                MessageType.SNAPSHOT,
                msg.term,
                msg.src,
                msg.dst,
                index=file.index,
                log_term=file.term,
                context=file.step_context(),
            )
        )
        if node.snapshot == file.meta and before != file.meta:
            self.incoming[msg.dst] = file
        self.process(msg.dst)
        self._report(msg, ok=True)

    def _report(self, msg: Message, ok: bool) -> None:
        self.transfers.append((msg.src, msg.dst, ok))
        if msg.src in self.nodes:
            self.nodes[msg.src].report_snapshot(msg.dst, ok)
            self.process(msg.src)

    def tick(self, name: str, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.nodes[name].tick()
            self.process(name)

    def tick_all(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for name in list(self.nodes):
                self.nodes[name].tick()
                self.process(name)
            self.stabilize()

    def elect(self, name: str) -> RaftNode:
        """Make `name` campaign and run the election to the end."""
        self.nodes[name].campaign()
        self.stabilize()
        return self.nodes[name]

    def leaders(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.role is Role.LEADER]

    def propose(self, name: str, data: bytes) -> int:
        index = self.nodes[name].propose(data)
        self.stabilize()
        return index

    def recover(self) -> None:
        self.cut.clear()
        self.isolated.clear()
        self.dropped_types.clear()
        self.hook = None


def log_with_terms(terms: list[int]) -> list[Entry]:
    """A log with one entry per term in `terms`, for scenario setup."""
    return [
        Entry(index, term, EntryKind.NORMAL, f"{index}/{term}".encode())
        for index, term in enumerate(terms, start=1)
    ]
