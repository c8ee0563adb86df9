"""Transactions: the commands a connection queued between MULTI and EXEC,
run as one command so that they are applied atomically and in order.

The server turns EXEC into one `PREZ.EXEC` command carrying every queued
command (`exec_args`), which goes through the log as a single entry like any
other write: every replica runs the whole batch at the same point of its
history, with the leader's one timestamp. As in Redis, a command that fails
while running (WRONGTYPE, say) gives its error in its place in the reply and
the others still run; the queueing checks (unknown command, wrong number of
arguments) are the server's, before EXEC.

WATCH: the entry also names each watched key with the digest of its value
as WATCH read it (`watch_digest`: type, value and expiry, or absence) and
the applied index of that read. Whether a watched key was written after
that index is decided where the log order is known, before the entry is
proposed (prez/server/watch.py); here, at apply, each replica compares the
digests, which catches a key that expired meanwhile without any write. If
any differs nothing runs and the reply is a null array, as Redis's EXEC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from prez._core.replytypes import NULL_ARRAY, NullArray
from prez.errors import CommandError, unknown_command, wrong_arity
from prez.kv.command import COMMANDS, command
from prez.kv.digest import key_digest
from prez.kv.keyspace import Keyspace

EXEC_COMMAND = b"prez.exec"
# The layout of PREZ.EXEC's arguments. It is written into the log: a later
# layout gets a new number, so that a node that does not know it refuses
# the entry instead of misreading it.
EXEC_FORMAT = b"2"  # 1: the commands only (no watches)


MALFORMED = "ERR malformed PREZ.EXEC"
ABSENT = b""  # the digest of a key that does not exist


class Watch(NamedTuple):
    """A key WATCHed by the transaction, as WATCH's read saw it."""

    db: int
    key: bytes
    digest: bytes  # watch_digest() of the key then
    since: int  # the applied index (or local write count) of that read


def watch_digest(db: Keyspace, key: bytes, now: int) -> bytes:
    """What WATCH remembers of a key's value, and EXEC compares."""
    value = db.get(key, now)
    return ABSENT if value is None else key_digest(db, key, value)


def exec_args(
    commands: list[list[bytes]], watches: list[Watch] | None = None
) -> list[bytes]:
    """The PREZ.EXEC command: the format; the number of watched keys, each
    as database, key, digest and index; then each command as its argument
    count and its arguments."""
    watches = watches or []
    args = [EXEC_COMMAND, EXEC_FORMAT, b"%d" % len(watches)]
    for watch in watches:
        args.extend((b"%d" % watch.db, watch.key, watch.digest, b"%d" % watch.since))
    for cmd in commands:
        args.append(b"%d" % len(cmd))
        args.extend(cmd)
    return args


def _number(args: list[bytes], i: int) -> int:
    try:
        return int(args[i])
    except (ValueError, IndexError):
        raise CommandError(MALFORMED) from None


def split_exec_args(args: list[bytes]) -> tuple[list[Watch], list[list[bytes]]]:
    """The watched keys and the commands a PREZ.EXEC carries (the inverse
    of exec_args)."""
    if args[1] == b"1":
        args = [*args[:2], b"0", *args[2:]]  # as format 2 with no watches
    elif args[1] != EXEC_FORMAT:
        raise CommandError(
            f"ERR PREZ.EXEC format {args[1]!r} is not one this version knows"
        )
    end = len(args)
    watching = _number(args, 2)
    first_command = 3 + 4 * watching
    if watching < 0 or first_command > end:
        raise CommandError(MALFORMED)
    watches = [
        Watch(_number(args, i), args[i + 1], args[i + 2], _number(args, i + 3))
        for i in range(3, first_command, 4)
    ]
    commands = []
    i = first_command
    while i < end:
        count = _number(args, i)
        if count < 1 or i + 1 + count > end:
            raise CommandError(MALFORMED)
        commands.append(args[i + 1 : i + 1 + count])
        i += 1 + count
    return watches, commands


def _ping(db: Keyspace, args: list[bytes], now: int) -> Any:
    if len(args) > 2:
        raise wrong_arity("ping")
    return "PONG" if len(args) == 1 else args[1]


def _echo(db: Keyspace, args: list[bytes], now: int) -> Any:
    if len(args) != 2:
        raise wrong_arity("echo")
    return args[1]


def _unwatch(db: Keyspace, args: list[bytes], now: int) -> Any:
    return "OK"  # EXEC forgets the watches anyway


# Connection commands whose reply depends on nothing but their arguments:
# they may be queued in a transaction, as in Redis, and answer in place.
PURE_COMMANDS: dict[bytes, Callable[[Keyspace, list[bytes], int], Any]] = {
    b"ping": _ping,
    b"echo": _echo,
    b"unwatch": _unwatch,
}


@command(
    "prez.exec",
    -3,
    "write",
    group="transactions",
    summary="Runs a batch of commands atomically (what EXEC replicates).",
    since="7.0.0",
)
def prez_exec(db: Keyspace, args: list[bytes], now: int) -> list[Any] | NullArray:
    watches, commands = split_exec_args(args)
    dbs = db.store.dbs
    for watch in watches:
        if not 0 <= watch.db < len(dbs):
            raise CommandError(MALFORMED)
        if watch_digest(dbs[watch.db], watch.key, now) != watch.digest:
            return NULL_ARRAY  # a watched key changed: nothing runs
    # Every command is checked before any runs: all or nothing for these.
    handlers = []
    for cmd in commands:
        name = cmd[0].lower()
        pure = PURE_COMMANDS.get(name)
        if pure is not None:
            handlers.append(pure)
            continue
        try:
            spec = COMMANDS.get(name.decode("ascii"))
        except UnicodeDecodeError:
            spec = None
        if spec is None or spec.handler is None or spec.name == "prez.exec":
            raise unknown_command(cmd)
        if not spec.arity_ok(len(cmd)):
            raise wrong_arity(spec.name)
        handlers.append(spec.handler)
    replies: list[Any] = []
    for handler, cmd in zip(handlers, commands, strict=True):
        try:
            replies.append(handler(db, cmd, now))
        except CommandError as e:
            replies.append(e.with_traceback(None))
    return replies
