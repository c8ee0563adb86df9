"""Every error type Prez raises, and the Redis error texts clients see.

Error replies follow Redis's wording exactly, because clients (redis-py,
redis-cli, cluster clients) match on the prefix and sometimes on the text.
A `CommandError` becomes a `-<message>` reply; nothing here does I/O.
"""

from __future__ import annotations


class PrezError(Exception):
    """Base class of all Prez errors."""


class CommandError(PrezError):
    """A command failed; `message` is the reply text without the leading '-'.

    The message starts with an upper-case error code, as Redis's do
    (`ERR ...`, `WRONGTYPE ...`, `CLUSTERDOWN ...`).
    """

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(PrezError):
    """The client sent bytes that are not RESP; the connection is closed."""


class ConfigError(PrezError):
    """A configuration file is missing or has a bad line.

    str() gives one line naming the file, the line number and the key, which
    is what prez-server prints before it exits with status 1.
    """

    def __init__(
        self, path: str, line: int | None, key: str | None, reason: str
    ) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.reason = reason
        where = path if line is None else f"{path}:{line}"
        what = f" '{key}'" if key else ""
        super().__init__(f"Bad config {where}{what}: {reason}")


class StorageError(PrezError):
    """The data on disk is corrupt in a way that start-up must not paper over."""


# The Raft core's errors (prez.raft); prez.raft.core re-exports them.


class NotLeader(PrezError):
    """propose() on a node that is not the leader; `leader` is the one it
    knows of (None during an election), for redirects."""

    def __init__(self, leader: str | None) -> None:
        super().__init__(f"not the leader (leader: {leader or 'unknown'})")
        self.leader = leader


class LeadershipTransferring(NotLeader):
    """propose() on a leader that is handing leadership to `leader` (the
    transfer target): writes stop for at most an election timeout."""

    def __init__(self, target: str) -> None:
        PrezError.__init__(self, f"leadership is being transferred to {target}")
        self.leader = target


class ConfChangeRefused(PrezError):
    """propose_conf_change() with a change that makes no sense for the
    current membership (adding a member, promoting a non-learner, removing a
    stranger or the last voter). Retrying will not help."""


class ConfChangeInProgress(ConfChangeRefused):
    """propose_conf_change() while a change is not settled: an earlier one is
    still uncommitted, or this leader has not yet committed an entry of its
    own term (thesis 4.1). Retry once it has committed."""


class RaftSafetyError(PrezError):
    """A Raft invariant broke: today only a recovered log whose CONFIG entry
    does not parse (corruption; what the network sends is dropped instead).
    The node must stop; continuing would corrupt data."""


# Redis's error texts, shared by the command implementations.
SYNTAX = "ERR syntax error"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
OVERFLOW = "ERR increment or decrement would overflow"
NO_SUCH_KEY = "ERR no such key"
OUT_OF_RANGE = "ERR index out of range"
DB_OUT_OF_RANGE = "ERR DB index is out of range"
INVALID_EXPIRE = "ERR invalid expire time in '{}' command"
NOAUTH = "NOAUTH Authentication required."
# maxmemory reached (noeviction): a denyoom command, and an EXEC carrying one.
OOM = "OOM command not allowed when used memory > 'maxmemory'."
EXEC_OOM = "EXECABORT Transaction discarded because of: " + OOM
NO_LEADER = "CLUSTERDOWN No leader elected"
# Distinct from the safe-to-retry errors: the write may or may not have been applied.
OUTCOME_UNKNOWN = "UNKNOWN Leadership lost before the write was committed; it may or may not have been applied"


def wrong_arity(name: str) -> CommandError:
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(args: list[bytes]) -> CommandError:
    name = args[0][:128].decode("utf-8", "replace") if args else ""
    # Redis quotes each argument and leaves a space after each, the last included.
    rest = "".join(f"'{a[:128].decode('utf-8', 'replace')}' " for a in args[1:])
    return CommandError(
        f"ERR unknown command '{name}', with args beginning with: {rest}"
    )


def unknown_subcommand(sub: bytes, command: str) -> CommandError:
    text = sub.decode("utf-8", "replace")
    return CommandError(f"ERR unknown subcommand '{text}'. Try {command.upper()} HELP.")
