"""Transactions: the commands a connection queued between MULTI and EXEC,
run as one command so that they are applied atomically and in order.

The server turns EXEC into one `PREZ.EXEC` command carrying every queued
command (`exec_args`), which goes through the log as a single entry like any
other write: every replica runs the whole batch at the same point of its
history, with the leader's one timestamp. As in Redis, a command that fails
while running (WRONGTYPE, say) gives its error in its place in the reply and
the others still run; the queueing checks (unknown command, wrong number of
arguments) are the server's, before EXEC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prez.errors import CommandError, unknown_command, wrong_arity
from prez.kv.command import COMMANDS, command
from prez.kv.keyspace import Keyspace

EXEC_COMMAND = b"prez.exec"
# The layout of PREZ.EXEC's arguments. It is written into the log: a later
# layout gets a new number, so that a node that does not know it refuses
# the entry instead of misreading it.
EXEC_FORMAT = b"1"


def exec_args(commands: list[list[bytes]]) -> list[bytes]:
    """The PREZ.EXEC command for `commands`: the format, then each command
    as its argument count and its arguments."""
    args = [EXEC_COMMAND, EXEC_FORMAT]
    for cmd in commands:
        args.append(b"%d" % len(cmd))
        args.extend(cmd)
    return args


def split_exec_args(args: list[bytes]) -> list[list[bytes]]:
    """The commands a PREZ.EXEC carries (the inverse of exec_args)."""
    if args[1] != EXEC_FORMAT:
        raise CommandError(
            f"ERR PREZ.EXEC format {args[1]!r} is not one this version knows"
        )
    commands = []
    i, end = 2, len(args)
    while i < end:
        try:
            count = int(args[i])
        except ValueError:
            count = 0
        if count < 1 or i + 1 + count > end:
            raise CommandError("ERR malformed PREZ.EXEC")
        commands.append(args[i + 1 : i + 1 + count])
        i += 1 + count
    return commands


def _ping(db: Keyspace, args: list[bytes], now: int) -> Any:
    if len(args) > 2:
        raise wrong_arity("ping")
    return "PONG" if len(args) == 1 else args[1]


def _echo(db: Keyspace, args: list[bytes], now: int) -> Any:
    if len(args) != 2:
        raise wrong_arity("echo")
    return args[1]


def _unwatch(db: Keyspace, args: list[bytes], now: int) -> Any:
    return "OK"  # nothing is ever watched (WATCH is refused)


# Connection commands whose reply depends on nothing but their arguments:
# they may be queued in a transaction, as in Redis, and answer in place.
PURE_COMMANDS: dict[bytes, Callable[[Keyspace, list[bytes], int], Any]] = {
    b"ping": _ping,
    b"echo": _echo,
    b"unwatch": _unwatch,
}


@command(
    "prez.exec",
    -4,
    "write",
    group="transactions",
    summary="Runs a batch of commands atomically (what EXEC replicates).",
    since="7.0.0",
)
def prez_exec(db: Keyspace, args: list[bytes], now: int) -> list[Any]:
    commands = split_exec_args(args)
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
