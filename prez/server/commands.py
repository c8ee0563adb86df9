"""Connection and server commands: the ones that are not replicated data.

Declared with the same table format as the data commands (so COMMAND and
the arity checks cover them), with handlers `handler(conn, args)` that may
look at the connection, the server and the configuration.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import prez
from prez._core.replytypes import NULL_ARRAY
from prez.config import PARAMS, BadValue
from prez.errors import (
    DB_OUT_OF_RANGE,
    NOT_INTEGER,
    SYNTAX,
    CommandError,
    unknown_subcommand,
    wrong_arity,
)
from prez.kv.command import CommandSpec, declare
from prez.kv.digest import digest, key_digest
from prez.kv.transaction import (
    ABSENT,
    EXEC_COMMAND,
    Watch,
    exec_args,
    watch_digest,
)
from prez.server.dispatch import READ, WRITE

if TYPE_CHECKING:
    from prez.server.client import ClientConnection

SERVER_COMMANDS: dict[str, CommandSpec] = {}
HANDLERS: dict[str, Callable[..., Any]] = {}

# What HELLO and INFO report as the Redis version: clients use it to decide
# which features to use; Prez speaks Redis 7's protocol and commands.
REDIS_COMPAT_VERSION = "7.2.0"


def server_command(
    name: str,
    arity: int,
    flags: str,
    first_key: int = 0,
    last_key: int = 0,
    key_step: int = 0,
    *,
    group: str,
    summary: str,
    since: str = "1.0.0",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(handler: Callable[..., Any]) -> Callable[..., Any]:
        declare(
            name,
            arity,
            flags,
            first_key,
            last_key,
            key_step,
            group=group,
            summary=summary,
            since=since,
            table=SERVER_COMMANDS,
        )
        HANDLERS[name] = handler
        return handler

    return register


def _text(arg: bytes) -> str:
    return arg.decode("utf-8", "replace")


# Connection


@server_command(
    "ping",
    -1,
    "fast stale",
    group="connection",
    summary="Returns the server's liveliness response.",
)
def ping(conn: ClientConnection, args: list[bytes]) -> Any:
    if len(args) > 2:
        raise wrong_arity("ping")
    return "PONG" if len(args) == 1 else args[1]


@server_command(
    "echo", 2, "fast", group="connection", summary="Returns the given string."
)
def echo(conn: ClientConnection, args: list[bytes]) -> Any:
    return args[1]


@server_command(
    "quit", -1, "fast noauth", group="connection", summary="Closes the connection."
)
def quit_(conn: ClientConnection, args: list[bytes]) -> Any:
    conn.reply_and_close("OK")
    return NO_REPLY


# Transactions (prez/kv/transaction.py runs them)


@server_command(
    "multi",
    1,
    "noscript loading stale fast",
    group="transactions",
    summary="Starts a transaction.",
    since="1.2.0",
)
def multi(conn: ClientConnection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    conn.multi = []
    conn.multi_failed = False
    return "OK"


@server_command(
    "exec",
    1,
    "noscript loading stale skip_slowlog",
    group="transactions",
    summary="Executes all commands in a transaction.",
    since="1.2.0",
)
def exec_(conn: ClientConnection, args: list[bytes]) -> Any:
    commands, failed = conn.multi, conn.multi_failed
    if commands is None:
        raise CommandError("ERR EXEC without MULTI")
    conn.multi, conn.multi_failed = None, False
    watched = conn.watched
    conn.unwatch()
    if failed:
        raise CommandError(
            "EXECABORT Transaction discarded because of previous errors."
        )
    server = conn.server
    driver = server.driver
    db = conn.db

    def run() -> Any:
        watches = [watch for watch in watched.values() if watch is not None]
        if len(watches) < len(watched):
            # A WATCH whose read failed: what it saw is unknown, so as if
            # its key had been written.
            return NULL_ARRAY
        if not commands and not watches:
            return []
        # One replicated command for the whole batch: one log entry,
        # applied atomically at one point of every replica's history.
        entry = conn.lookup[EXEC_COMMAND]
        entry.calls += 1
        tx = exec_args(commands, watches)
        now = time.time_ns() // 1_000_000
        if server.oom:
            conn.refuse_for_memory(entry, tx)
        if driver.writes_local:
            return entry.handler(server.store.dbs[db], tx, now)
        saved, conn.db = conn.db, db
        try:
            return driver.propose(entry, conn, tx, now)
        finally:
            conn.db = saved

    # A write: after the connection's unanswered reads (its WATCHes too).
    if conn.must_wait(WRITE):
        return conn.hold_call(WRITE, run)
    return run()


@server_command(
    "discard",
    1,
    "noscript loading stale fast",
    group="transactions",
    summary="Discards a transaction.",
    since="1.2.0",
)
def discard(conn: ClientConnection, args: list[bytes]) -> Any:
    if conn.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    conn.multi, conn.multi_failed = None, False
    conn.unwatch()
    return "OK"


@server_command(
    "watch",
    -2,
    "noscript loading stale fast",
    1,
    -1,
    1,
    group="transactions",
    summary="Monitors changes to keys to determine the execution of a transaction.",
    since="2.2.0",
)
def watch(conn: ClientConnection, args: list[bytes]) -> Any:
    if conn.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    server = conn.server
    driver = server.driver
    if driver.writes_local:
        # A node without a log: from now on its writes are counted and
        # tracked, so they must leave the fast path that runs them directly.
        driver.track_writes()
        for client in server.clients.values():
            client.refresh_local_kinds()
    index = conn.db
    keys = args[1:]
    # Filled in when the read below is served. If the keys are unwatched
    # meanwhile, this dict is no longer the connection's (unwatch() starts
    # a new one), except for the EXEC that took it over to wait for it.
    watched = conn.watched
    for key in keys:
        watched.setdefault((index, key), None)

    def remember(_db: Any, _args: list[bytes], now: int) -> str:
        db = server.store.dbs[index]  # the WATCH's, whatever SELECT came after
        for key in keys:
            if watched.get((index, key), ABSENT) is None:
                watched[(index, key)] = Watch(
                    index, key, watch_digest(db, key, now), driver.applied
                )
        return "OK"

    local = bool(conn.local_kinds & (1 << READ))

    def read() -> Any:
        # A read like any other (linearizable by default): it sees what the
        # client's next reads will see, or an earlier point after WATCH
        # arrived, and `driver.applied` is the point it saw.
        now = time.time_ns() // 1_000_000
        if local:
            return remember(None, args, now)
        return driver.read(_WatchRead(remember), conn, args, now)

    # A read: after the connection's unanswered writes.
    if conn.must_wait(READ):
        return conn.hold_call(READ, read)
    return read()


class _WatchRead:
    """WATCH's read, shaped as the command entry the driver's read path
    calls: it records what it saw on the connection and answers OK."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler


@server_command(
    "unwatch",
    1,
    "noscript loading stale fast",
    group="transactions",
    summary="Forgets about watched keys of a transaction.",
    since="2.2.0",
)
def unwatch(conn: ClientConnection, args: list[bytes]) -> Any:
    conn.unwatch()
    return "OK"


@server_command(
    "auth",
    -2,
    "fast noauth",
    group="connection",
    summary="Authenticates the connection.",
)
def auth(conn: ClientConnection, args: list[bytes]) -> Any:
    if len(args) > 3:
        raise CommandError(SYNTAX)
    check_password(conn, args[1] if len(args) == 3 else None, args[-1])
    return "OK"


def check_password(conn: ClientConnection, user: bytes | None, password: bytes) -> None:
    required = conn.server.config["requirepass"]
    if not required:
        if user is None:
            raise CommandError(
                "ERR AUTH <password> called without any password configured for the "
                "default user. Are you sure your configuration is correct?"
            )
        if user == b"default":
            conn.authed = True
            return
    if (user is None or user == b"default") and password == required.encode():
        conn.authed = True
        return
    raise CommandError("WRONGPASS invalid username-password pair or user is disabled.")


@server_command(
    "hello",
    -1,
    "fast noauth",
    group="connection",
    summary="Handshakes with the server.",
    since="6.0.0",
)
def hello(conn: ClientConnection, args: list[bytes]) -> Any:
    version = conn.resp
    i = 1
    if len(args) > 1:
        try:
            version = int(args[1])
        except ValueError:
            raise CommandError("ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        i = 2
    setname: bytes | None = None
    while i < len(args):
        opt = args[i].lower()
        if opt == b"auth" and i + 2 < len(args):
            check_password(conn, args[i + 1], args[i + 2])
            i += 3
        elif opt == b"setname" and i + 1 < len(args):
            setname = args[i + 1]
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{_text(args[i])}'")
    if not conn.authed:
        raise CommandError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
        )
    if setname is not None:
        _check_client_name(setname)
        conn.name = setname
    conn.set_protocol(version)
    server = conn.server
    return {
        b"server": b"redis",
        b"version": REDIS_COMPAT_VERSION.encode(),
        b"proto": version,
        b"id": conn.id,
        b"mode": server.mode().encode(),
        b"role": server.role_name().encode(),
        b"modules": [],
    }


@server_command(
    "select", 2, "fast", group="connection", summary="Changes the selected database."
)
def select(conn: ClientConnection, args: list[bytes]) -> Any:
    try:
        index = int(args[1])
    except ValueError:
        raise CommandError(NOT_INTEGER)
    if not 0 <= index < len(conn.server.store.dbs):
        raise CommandError(DB_OUT_OF_RANGE)
    conn.db = index
    return "OK"


@server_command(
    "reset",
    1,
    "fast noauth",
    group="connection",
    summary="Resets the connection.",
    since="6.2.0",
)
def reset(conn: ClientConnection, args: list[bytes]) -> Any:
    conn.multi, conn.multi_failed = None, False
    conn.unwatch()
    conn.db = 0
    conn.name = b""
    conn.set_protocol(2)
    conn.authed = not conn.server.config["requirepass"]
    conn.parser.noauth = not conn.authed
    conn.set_read_mode(conn.server.config["read-mode"])
    return "RESET"


def _check_client_name(name: bytes) -> None:
    if any(c <= 32 or c >= 127 for c in name):
        raise CommandError(
            "ERR Client names cannot contain spaces, newlines or special characters."
        )


@server_command(
    "client",
    -2,
    "",
    group="connection",
    summary="A container for client connection commands.",
)
def client(conn: ClientConnection, args: list[bytes]) -> Any:
    sub = args[1].lower()
    argc = len(args)
    if sub == b"id" and argc == 2:
        return conn.id
    if sub == b"getname" and argc == 2:
        return conn.name or None
    if sub == b"setname" and argc == 3:
        _check_client_name(args[2])
        conn.name = args[2]
        return "OK"
    if sub == b"setinfo" and argc == 4:
        attr = args[2].lower()
        if any(c < 33 or c > 126 for c in args[3]):
            raise CommandError(
                f"ERR {_text(args[2])} cannot contain spaces, newlines or special characters."
            )
        if attr == b"lib-name":
            conn.lib_name = args[3]
        elif attr == b"lib-ver":
            conn.lib_ver = args[3]
        else:
            raise CommandError(f"ERR Unrecognized option '{_text(args[2])}'")
        return "OK"
    if sub == b"info" and argc == 2:
        return _client_line(conn, time.time()).encode() + b"\n"
    if sub == b"list":
        now = time.time()
        clients = list(conn.server.clients.values())
        if argc >= 4 and args[2].lower() == b"id":
            try:
                wanted = {int(a) for a in args[3:]}
            except ValueError:
                raise CommandError("ERR Invalid client ID")
            clients = [c for c in clients if c.id in wanted]
        elif argc == 4 and args[2].lower() == b"type":
            kind = args[3].lower()
            if kind not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
                raise CommandError(f"ERR Unknown client type '{_text(args[3])}'")
            if kind != b"normal":
                clients = []
        elif argc != 2:
            raise CommandError(SYNTAX)
        return "".join(_client_line(c, now) + "\n" for c in clients).encode()
    if sub == b"kill" and argc >= 3:
        return _client_kill(conn, args)
    if sub == b"help":
        return [
            b"CLIENT <subcommand> [<arg> ...]. Subcommands are:",
            b"ID",
            b"GETNAME",
            b"SETNAME <name>",
            b"SETINFO <LIB-NAME|LIB-VER> <value>",
            b"INFO",
            b"LIST [TYPE normal] [ID id ...]",
            b"KILL <ip:port> | ID <id> | ADDR <ip:port>",
        ]
    if sub in (b"id", b"getname", b"setname", b"setinfo", b"info", b"kill"):
        raise CommandError(
            f"ERR wrong number of arguments for 'client|{sub.decode()}' command"
        )
    raise unknown_subcommand(args[1], "client")


def _client_kill(conn: ClientConnection, args: list[bytes]) -> Any:
    clients = list(conn.server.clients.values())
    if len(args) == 3:  # the old form: CLIENT KILL addr:port
        targets = [c for c in clients if c.addr.encode() == args[2]]
        if not targets:
            raise CommandError("ERR No such client")
        _close_clients(conn, targets)
        return "OK"
    if len(args) % 2:
        raise CommandError(SYNTAX)
    targets = clients
    for i in range(2, len(args), 2):
        filt, value = args[i].lower(), args[i + 1]
        if filt == b"id":
            targets = [c for c in targets if str(c.id).encode() == value]
        elif filt == b"addr":
            targets = [c for c in targets if c.addr.encode() == value]
        elif filt == b"laddr":
            targets = [c for c in targets if c.laddr.encode() == value]
        elif filt == b"skipme":
            if value.lower() == b"yes":
                targets = [c for c in targets if c is not conn]
        else:
            raise CommandError(SYNTAX)
    _close_clients(conn, targets)
    return len(targets)


def _close_clients(conn: ClientConnection, targets: list[ClientConnection]) -> None:
    for c in targets:
        if c is conn:
            c.closing = True  # answered first, closed after the reply is flushed
            conn.server.loop_call_soon(c.close_now)
        elif c.transport is not None:
            c.transport.close()


def _client_line(c: ClientConnection, now: float) -> str:
    return (
        f"id={c.id} addr={c.addr} laddr={c.laddr} fd=-1 name={_text(c.name)} "
        f"age={int(now - c.created)} idle={int(now - c.last_active)} flags=N db={c.db} "
        f"sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 "
        f"obl=0 oll={len(c.queue)} omem=0 tot-mem=0 events=r cmd={c.last_command} "
        f"user=default redir=-1 resp={c.resp} lib-name={_text(c.lib_name)} "
        f"lib-ver={_text(c.lib_ver)}"
    )


# Server


@server_command(
    "time", 1, "fast", group="server", summary="Returns the server time.", since="2.6.0"
)
def time_(conn: ClientConnection, args: list[bytes]) -> Any:
    now = time.time_ns() // 1000
    return [b"%d" % (now // 1_000_000), b"%d" % (now % 1_000_000)]


@server_command(
    "shutdown", -1, "admin noscript", group="server", summary="Stops the server."
)
def shutdown(conn: ClientConnection, args: list[bytes]) -> Any:
    for arg in args[1:]:
        if arg.lower() not in (b"nosave", b"save", b"now", b"force", b"abort"):
            raise CommandError(SYNTAX)
    conn.server.request_stop("SHUTDOWN command")
    return NO_REPLY


@server_command(
    "debug",
    -2,
    "admin noscript loading stale",
    group="server",
    summary="A container for debugging commands.",
)
def debug(conn: ClientConnection, args: list[bytes]) -> Any:
    sub = args[1].lower()
    store = conn.server.store
    if sub == b"digest" and len(args) == 2:
        return digest(store).encode()
    if sub == b"digest-value" and len(args) >= 2:
        db = store.dbs[conn.db]
        result = []
        for key in args[2:]:
            value = db.get(key, time.time_ns() // 1_000_000)
            result.append(
                key_digest(db, key, value).hex().encode()
                if value is not None
                else b"0" * 40
            )
        return result
    if sub == b"sleep" and len(args) == 3:
        try:
            seconds = float(args[2])
        except ValueError:
            raise CommandError(NOT_INTEGER)
        time.sleep(
            min(max(seconds, 0.0), 60.0)
        )  # blocks the node on purpose, as in Redis
        return "OK"
    if sub == b"help":
        return [
            b"DEBUG <subcommand> [<arg> ...]. Subcommands are:",
            b"DIGEST",
            b"DIGEST-VALUE <key> [<key> ...]",
            b"SLEEP <seconds>",
        ]
    raise unknown_subcommand(args[1], "debug")


@server_command(
    "raft.snapshot",
    1,
    "admin noscript",
    group="server",
    summary="Takes a snapshot of the state machine now and compacts the log.",
    since="0.1.0",
)
def raft_snapshot(conn: ClientConnection, args: list[bytes]) -> Any:
    server = conn.server
    if not server.clustered:
        raise CommandError("ERR This instance has cluster support disabled")
    if server.driver.force_snapshot():
        return "Snapshot started"
    raise CommandError(
        "ERR no snapshot started: one is already running, or nothing was applied since the last"
    )


@server_command(
    "readmode",
    -1,
    "fast stale",
    group="connection",
    summary="Gets or sets this connection's read consistency: linearizable, lease or stale.",
    since="0.1.0",
)
def readmode(conn: ClientConnection, args: list[bytes]) -> Any:
    if len(args) == 1:
        return conn.read_mode.encode()
    if len(args) > 2:
        raise wrong_arity("readmode")
    mode = _text(args[1]).lower()
    if mode not in ("linearizable", "lease", "stale"):
        raise CommandError("ERR READMODE must be linearizable, lease or stale")
    server = conn.server
    if server.clustered and mode != "stale" and mode != server.driver.core_read_mode:
        raise CommandError(
            f"ERR this node confirms reads in {server.driver.core_read_mode} mode "
            f"(read-mode in prez.conf); a connection may choose that mode or stale"
        )
    conn.set_read_mode(mode)
    return "OK"


@server_command(
    "raft.transfer-leader",
    -1,
    "admin noscript",
    group="server",
    summary="Hands leadership to another member (the most up-to-date one by default).",
    since="0.1.0",
)
def raft_transfer_leader(conn: ClientConnection, args: list[bytes]) -> Any:
    server = conn.server
    if not server.clustered:
        raise CommandError("ERR This instance has cluster support disabled")
    if len(args) > 2:
        raise wrong_arity("raft.transfer-leader")
    return server.driver.transfer_leadership(
        conn, _text(args[1]) if len(args) == 2 else None
    )


@server_command(
    "raft.node",
    -2,
    "admin noscript",
    group="server",
    summary="Changes the membership: ADD <name> <host:cluster-port> [LEARNER] [REUSE], "
    "REMOVE <name>, PROMOTE <name>; BOOTSTRAP lists the bootstrap membership.",
    since="0.1.0",
)
def raft_node(conn: ClientConnection, args: list[bytes]) -> Any:
    server = conn.server
    if not server.clustered:
        raise CommandError("ERR This instance has cluster support disabled")
    sub = args[1].lower()
    if sub != b"bootstrap" and len(args) < 3:
        raise wrong_arity("raft.node")
    return server.driver.node_command(conn, args)


@server_command(
    "raft.nodes",
    1,
    "admin noscript",
    group="server",
    summary="Lists the members: name, address, role (voter or learner), leader, "
    "match index and last contact.",
    since="0.1.0",
)
def raft_nodes(conn: ClientConnection, args: list[bytes]) -> Any:
    server = conn.server
    if not server.clustered:
        raise CommandError("ERR This instance has cluster support disabled")
    return server.driver.nodes_reply()


@server_command(
    "role",
    1,
    "fast stale noscript",
    group="server",
    summary="Returns the replication role.",
    since="2.8.12",
)
def role(conn: ClientConnection, args: list[bytes]) -> Any:
    server = conn.server
    if not server.clustered:
        return [b"master", 0, []]
    return server.driver.role_reply()


@server_command(
    "config",
    -2,
    "admin",
    group="server",
    summary="A container for server configuration commands.",
    since="2.0.0",
)
def config(conn: ClientConnection, args: list[bytes]) -> Any:
    sub = args[1].lower()
    cfg = conn.server.config
    if sub == b"get":
        if len(args) < 3:
            raise wrong_arity("config|get")
        result: dict[bytes, bytes] = {}
        for pattern in args[2:]:
            for name in cfg.matching(_text(pattern)):
                result[name.encode()] = cfg.get_text(name).encode()
        return result
    if sub == b"set":
        if len(args) < 4 or len(args) % 2:
            raise wrong_arity("config|set")
        pairs = [
            (_text(args[i]).lower(), _text(args[i + 1])) for i in range(2, len(args), 2)
        ]
        for name, value in pairs:
            if name not in PARAMS:
                raise CommandError(
                    f"ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                )
            if not PARAMS[name].mutable:
                raise CommandError(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - can't set immutable config"
                )
            try:
                PARAMS[name].parse(value)
            except BadValue as e:
                raise CommandError(
                    f"ERR CONFIG SET failed (possibly related to argument '{name}') - {e}"
                )
        for name, value in pairs:
            cfg.set_text(name, value)
            conn.server.config_changed(name)
        return "OK"
    if sub == b"resetstat" and len(args) == 2:
        conn.server.reset_stats()
        return "OK"
    if sub == b"rewrite" and len(args) == 2:
        raise CommandError(
            "ERR CONFIG REWRITE is not supported: edit prez.conf and restart"
        )
    if sub == b"help":
        return [
            b"CONFIG <subcommand> [<arg> ...]. Subcommands are:",
            b"GET <pattern>",
            b"SET <directive> <value>",
            b"RESETSTAT",
        ]
    raise unknown_subcommand(args[1], "config")


@server_command(
    "info",
    -1,
    "stale",
    group="server",
    summary="Returns information and statistics about the server.",
)
def info(conn: ClientConnection, args: list[bytes]) -> Any:
    return conn.server.info([_text(a).lower() for a in args[1:]]).encode()


@server_command(
    "command",
    -1,
    "stale",
    group="server",
    summary="Returns detailed information about all commands.",
    since="2.8.13",
)
def command(conn: ClientConnection, args: list[bytes]) -> Any:
    table = conn.server.commands
    if len(args) == 1:
        return [_command_info(e.spec) for e in table.values()]
    sub = args[1].lower()
    if sub == b"count" and len(args) == 2:
        return len(table)
    if sub == b"list":
        return [name.encode() for name in table]
    if sub == b"info":
        names = [_text(a).lower() for a in args[2:]] or list(table)
        return [_command_info(table[n].spec) if n in table else None for n in names]
    if sub == b"docs":
        names = [_text(a).lower() for a in args[2:]] or list(table)
        return {n.encode(): _command_docs(table[n].spec) for n in names if n in table}
    if sub == b"getkeys" and len(args) >= 3:
        entry = table.get(_text(args[2]).lower())
        if entry is None:
            raise CommandError("ERR Invalid command specified")
        if not entry.spec.arity_ok(len(args) - 2):
            raise CommandError("ERR Invalid number of arguments specified for command")
        keys = entry.spec.keys(args[2:])
        if not keys:
            raise CommandError("ERR The command has no key arguments")
        return keys
    if sub == b"help":
        return [
            b"COMMAND [<subcommand> [<arg> ...]]. Subcommands are:",
            b"COUNT",
            b"DOCS [<command-name> ...]",
            b"GETKEYS <full-command>",
            b"INFO [<command-name> ...]",
            b"LIST",
        ]
    raise unknown_subcommand(args[1], "command")


def _acl_categories(spec: CommandSpec) -> list[str]:
    cats = ["@write" if spec.is_write else "@read" if spec.first_key else "@connection"]
    group = {
        "string": "@string",
        "hash": "@hash",
        "list": "@list",
        "set": "@set",
        "sorted-set": "@sortedset",
        "generic": "@keyspace",
        "server": "@admin",
    }.get(spec.group)
    if group:
        cats.append(group)
    cats.append("@fast" if "fast" in spec.flags else "@slow")
    return cats


def _command_info(spec: CommandSpec) -> list[Any]:
    key_specs: list[Any] = []
    if spec.first_key > 0:
        key_specs.append(
            {
                b"flags": [
                    "RW" if spec.is_write else "RO",
                    "UPDATE" if spec.is_write else "ACCESS",
                ],
                b"begin_search": {
                    b"type": b"index",
                    b"spec": {b"index": spec.first_key},
                },
                b"find_keys": {
                    b"type": b"range",
                    b"spec": {
                        b"lastkey": spec.last_key - spec.first_key
                        if spec.last_key >= 0
                        else spec.last_key,
                        b"keystep": spec.key_step,
                        b"limit": 0,
                    },
                },
            }
        )
    return [
        spec.name.encode(),
        spec.arity,
        sorted(spec.flags),
        spec.first_key,
        spec.last_key,
        spec.key_step,
        _acl_categories(spec),
        [],
        key_specs,
        [],
    ]


def _command_docs(spec: CommandSpec) -> dict[bytes, Any]:
    return {
        b"summary": spec.summary.encode(),
        b"since": spec.since.encode(),
        b"group": spec.group.encode(),
    }


class _NoReply:
    """Returned by a handler that has already answered (QUIT, SHUTDOWN)."""


NO_REPLY = _NoReply()


def process_stats() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = 0
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        pass
    return {
        "used_cpu_sys": f"{usage.ru_stime:.6f}",
        "used_cpu_user": f"{usage.ru_utime:.6f}",
        "used_memory_rss": rss,
        "used_memory_peak_rss": usage.ru_maxrss * 1024,
        "python_version": sys.version.split()[0],
        "prez_version": prez.__version__,
    }


from prez.server import clustercmds  # noqa: E402,F401  (registers CLUSTER, ASKING, READONLY, READWRITE)
