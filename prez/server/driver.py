"""The seam between the client protocol and the state machine.

`propose()` takes a write, `read()` a read. `LocalDriver` (one node, no
replication) applies writes in arrival order and answers at once; the Raft
driver (`prez.server.raftdriver`) answers writes with a Future that
completes when the entry is committed and applied. The client protocol
accepts either: a plain reply value or an `asyncio.Future` of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from prez._core.replytypes import NULL_ARRAY
from prez.kv import KVStore
from prez.kv.transaction import EXEC_COMMAND, split_exec_args
from prez.server.dispatch import CommandEntry
from prez.server.watch import WriteTracker

EXEC_NAME = EXEC_COMMAND.decode()

if TYPE_CHECKING:
    from prez.server.client import ClientConnection


class Driver(Protocol):
    reads_local: bool  # read() is a plain handler call on local state
    writes_local: bool  # propose() is a plain handler call on local state
    applied: int  # what WATCH records as the point its read saw

    def propose(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any: ...

    def read(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any: ...

    def is_leader(self) -> bool: ...

    def propose_internal(self, db: int, args: list[bytes], now: int) -> None: ...


class LocalDriver:
    """A single node with no log: a write is applied as soon as it arrives."""

    # The client protocol calls handlers directly when these are set.
    reads_local = True

    def __init__(
        self,
        store: KVStore,
        commands: dict[str, CommandEntry],
        on_expired: Callable[[int], None],
    ) -> None:
        self.store = store
        self.commands = commands
        self.on_expired = on_expired
        self.writes_local = True
        # Once a WATCH needs it, every write goes through propose() and is
        # counted (the stand-in for a log index) and tracked.
        self.watch = WriteTracker()
        self.applied = 0

    def track_writes(self) -> None:
        """Called by WATCH: from now on, writes come through propose()
        (the caller refreshes every connection's fast path)."""
        self.watch.enable(self.applied + 1)
        self.writes_local = False

    def propose(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any:
        if entry.name == EXEC_NAME:
            watches, _ = split_exec_args(args)
            if watches and self.watch.written_since(watches):
                return NULL_ARRAY
        try:
            return entry.handler(self.store.dbs[client.db], args, now)
        finally:
            # Counted even if it failed: it may have changed something.
            if self.watch.enabled:
                self.applied += 1
                self.watch.note(entry.spec, client.db, args, self.applied)

    def read(
        self, entry: CommandEntry, client: ClientConnection, args: list[bytes], now: int
    ) -> Any:
        return entry.handler(self.store.dbs[client.db], args, now)

    def is_leader(self) -> bool:
        return True

    def propose_internal(self, db: int, args: list[bytes], now: int) -> None:
        entry = self.commands[args[0].decode()]
        result = entry.handler(self.store.dbs[db], args, now)
        if self.watch.enabled:
            self.applied += 1
            self.watch.note(entry.spec, db, args, self.applied)
        if entry.name == "prez.expire" and isinstance(result, int):
            self.on_expired(result)
