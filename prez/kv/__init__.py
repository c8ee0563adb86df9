"""The replicated state machine: keyspace, data types and the command table.

Deterministic and free of I/O: the same commands with the same `now` give
the same state and replies on every node. Knows nothing of Raft or sockets.

The server does not go through this module's functions: it builds its
dispatch table from `COMMANDS` (`prez.server.dispatch.build_table`) and
calls each spec's handler itself, for reads at once and for writes when a
committed entry is applied. `execute()` (name and arity checks, then the
handler) runs one command against a `KVStore` the same way for in-process
tests (`prez.testing.kvrunner`) and tools.
"""

from __future__ import annotations

from typing import Any

from prez.errors import unknown_command, wrong_arity
from prez.kv import (  # noqa: F401  (register)
    generic,
    hashes,
    lists,
    sets,
    strings,
    transaction,
    zsets,
)
from prez.kv.command import COMMANDS, CommandSpec
from prez.kv.keyspace import Keyspace, KVStore

__all__ = ["COMMANDS", "CommandSpec", "KVStore", "Keyspace", "execute", "lookup"]


def lookup(name: bytes) -> CommandSpec | None:
    try:
        return COMMANDS.get(name.decode("ascii").lower())
    except UnicodeDecodeError:
        return None


def execute(store: KVStore, db: int, args: list[bytes], now: int) -> Any:
    """Run one data command (checks name and arity); raises CommandError."""
    spec = lookup(args[0])
    if spec is None or spec.handler is None:
        raise unknown_command(args)
    if not spec.arity_ok(len(args)):
        raise wrong_arity(spec.name)
    return spec.handler(store.dbs[db], args, now)
