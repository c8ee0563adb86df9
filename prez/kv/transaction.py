"""Transactions: the commands a connection queued between MULTI and EXEC,
run as one command so that they are applied atomically and in order.

The server turns EXEC into one `PREZ.EXEC` command carrying every queued
command (`exec_args`), which goes through the log as a single entry like any
other write: every replica runs the whole batch at the same point of its
history, with the leader's one timestamp. As in Redis, a command that fails
while running (WRONGTYPE, say) gives its error in its place in the reply and
the others still run; the queueing checks (unknown command, wrong number of
arguments) are the server's, before EXEC.

WATCH is optimistic locking by value: WATCH records a digest of each
watched key (`watch_digest`: type, value and expiry, or absence) as a
linearizable read sees it, and PREZ.EXEC carries those digests; if any key's
digest differs when the entry is applied, nothing runs and EXEC answers
with a null array, as Redis does. Unlike Redis, a write that leaves a
watched key exactly as it was (SET to the same value, or a change undone
before EXEC) does not abort the transaction: what the client read is still
what it would read.
"""

from __future__ import annotations

from typing import Any

from prez._core.replytypes import NULL_ARRAY, NullArray
from prez.errors import CommandError, unknown_command, wrong_arity
from prez.kv.command import COMMANDS, command
from prez.kv.digest import key_digest
from prez.kv.keyspace import Keyspace

EXEC_COMMAND = b"prez.exec"


# A watched key: (database index, key, its digest when WATCH read it).
Watch = tuple[int, bytes, bytes]

ABSENT = b""  # the digest of a key that does not exist


def watch_digest(db: Keyspace, key: bytes, now: int) -> bytes:
    """What WATCH remembers of `key`, and EXEC compares."""
    value = db.get(key, now)
    return ABSENT if value is None else key_digest(db, key, value)


def exec_args(
    commands: list[list[bytes]], watches: list[Watch] | None = None
) -> list[bytes]:
    """The PREZ.EXEC command: the number of watched keys, each as database,
    key and digest; then each command as its argument count and arguments."""
    watches = watches or []
    args = [EXEC_COMMAND, b"%d" % len(watches)]
    for db, key, digest in watches:
        args.extend((b"%d" % db, key, digest))
    for cmd in commands:
        args.append(b"%d" % len(cmd))
        args.extend(cmd)
    return args


def _count(args: list[bytes], i: int) -> int:
    try:
        return int(args[i])
    except (ValueError, IndexError):
        raise CommandError(MALFORMED) from None


MALFORMED = "ERR malformed PREZ.EXEC"


def split_exec_args(args: list[bytes]) -> tuple[list[Watch], list[list[bytes]]]:
    """The watched keys and the commands a PREZ.EXEC carries (the inverse
    of exec_args)."""
    end = len(args)
    watching = _count(args, 1)
    if watching < 0 or 2 + 3 * watching > end:
        raise CommandError(MALFORMED)
    watches = []
    for i in range(2, 2 + 3 * watching, 3):
        watches.append((_count(args, i), args[i + 1], args[i + 2]))
    commands = []
    i = 2 + 3 * watching
    while i < end:
        count = _count(args, i)
        if count < 1 or i + 1 + count > end:
            raise CommandError(MALFORMED)
        commands.append(args[i + 1 : i + 1 + count])
        i += 1 + count
    return watches, commands


@command(
    "prez.exec",
    -2,
    "write",
    group="transactions",
    summary="Runs a batch of commands atomically (what EXEC replicates).",
    since="7.0.0",
)
def prez_exec(db: Keyspace, args: list[bytes], now: int) -> list[Any] | NullArray:
    watches, commands = split_exec_args(args)
    dbs = db.store.dbs
    for index, key, digest in watches:
        if not 0 <= index < len(dbs):
            raise CommandError(MALFORMED)
        if watch_digest(dbs[index], key, now) != digest:
            return NULL_ARRAY  # a watched key changed: nothing runs
    # Every command is checked before any runs: all or nothing for these.
    specs = []
    for cmd in commands:
        try:
            spec = COMMANDS.get(cmd[0].decode("ascii").lower())
        except UnicodeDecodeError:
            spec = None
        if spec is None or spec.handler is None or spec.name == "prez.exec":
            raise unknown_command(cmd)
        if not spec.arity_ok(len(cmd)):
            raise wrong_arity(spec.name)
        specs.append(spec)
    replies: list[Any] = []
    for spec, cmd in zip(specs, commands, strict=True):
        try:
            replies.append(spec.handler(db, cmd, now))  # type: ignore[misc]
        except CommandError as e:
            replies.append(e.with_traceback(None))
    return replies
