"""The seam between the client protocol and the state machine.

`propose()` takes a write, `read()` a read. `LocalDriver` (one node, no
replication) applies writes in arrival order and answers at once; the Raft
driver replaces it, answering writes with a Future that completes when the
entry is committed and applied. The client protocol accepts either: a
plain reply value or an `asyncio.Future` of one.
"""

from __future__ import annotations

from typing import Any, Protocol

from prez.kv import KVStore
from prez.server.dispatch import CommandEntry


class Driver(Protocol):
    def propose(
        self, entry: CommandEntry, db: int, args: list[bytes], now: int
    ) -> Any: ...

    def read(
        self, entry: CommandEntry, db: int, args: list[bytes], now: int
    ) -> Any: ...


class LocalDriver:
    """A single node with no log: a write is applied as soon as it arrives."""

    def __init__(self, store: KVStore) -> None:
        self.store = store

    def propose(self, entry: CommandEntry, db: int, args: list[bytes], now: int) -> Any:
        return entry.handler(self.store.dbs[db], args, now)

    def read(self, entry: CommandEntry, db: int, args: list[bytes], now: int) -> Any:
        return entry.handler(self.store.dbs[db], args, now)
