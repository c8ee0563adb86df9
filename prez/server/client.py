"""One client connection: parse pipelined requests, dispatch, answer in order.

Everything parsed from one read is executed in order and answered with one
write. A reply is either a value, written at once, or a Future (a write
waiting for commit): from then on replies queue behind it so that a
connection's answers always come back in the order it asked.

The hot path: while nothing is queued, the compiled loop
(`prez._core.batch.run_local`) runs the batch's data commands that this
node serves from local state straight through their handlers; the first
command it cannot run (unknown, wrong arity, a server command, a write that
goes through the log, anything before AUTH) goes through `execute_one`,
which does every check, and the rest of the batch continues from there.

A connection's commands take effect in the order it sent them, as with
Redis, pipelined or not: a read behind one of the connection's writes that
is still unanswered, or a write behind one of its reads still unanswered
(or behind anything held), waits in the reply queue (`_Held`) and is only
issued once everything before it was answered. So a read's index covers the
connection's earlier writes (on a follower too), and its later writes are
not applied before it is served. Reads behind reads and writes behind
writes are not held: a pipeline of GETs still shares one confirmation
round, and a pipeline of SETs one log append.

Limits, as Redis 7 has them (the README lists the keys): the parser
enforces proto-max-bulk-len, client-query-buffer-limit (the client is
closed without a reply and the server logs it) and, before AUTH, the
10-argument / 16 KB limits, in compiled code; an unauthenticated connection
is parsed one command at a time (`_data_received_noauth`) so that its AUTH
runs before the rest is parsed. client-output-buffer-limit for normal
clients: the reply buffer refuses to grow past the hard limit and the
transport's buffer is checked after each write, only when a limit is set;
a client over it is dropped at once, its pending output discarded.
Whatever the limits, a client whose replies pile up stops being read
(pause_writing), so a slow reader slows down instead of growing memory.
maxmemory: a denyoom write is refused with -OOM by the node that appends it
to the log (see `_refuse_for_memory`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prez._core import select
from prez.errors import (
    EXEC_OOM,
    NOAUTH,
    OOM,
    CommandError,
    unknown_command,
    wrong_arity,
)
from prez.kv.transaction import EXEC_COMMAND, PURE_COMMANDS, Watch, split_exec_args
from prez.server.commands import NO_REPLY
from prez.server.dispatch import READ, SERVER, WRITE, CommandEntry, Deferred
from prez.server.logging import log

if TYPE_CHECKING:
    from prez._core import batch as _batch
    from prez._core import resp as _resp
    from prez.server.app import Server
else:
    _batch = select("batch")
    _resp = select("resp")

TIMING_SAMPLE = _batch.TIMING_SAMPLE
run_local = _batch.run_local
ERR_QUERY_LIMIT = _resp.ERR_QUERY_LIMIT
OutputLimitExceeded = _resp.OutputLimitExceeded
ReplyBuffer = _resp.ReplyBuffer
RequestParser = _resp.RequestParser

Future = asyncio.Future
# Commands a client may send before AUTH when requirepass is set.
NOAUTH_ALLOWED = frozenset({"auth", "hello", "quit"})
# Run at once even between MULTI and EXEC; every other command is queued.
MULTI_CONTROL = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
# Connection and server commands act on this node, not on the replicated
# data, so they cannot join a transaction that every replica applies (but
# PING and ECHO, which answer from their arguments alone: PURE_COMMANDS).
NOT_IN_MULTI = "ERR Command not allowed inside a transaction"
# Still accepted inside MULTI while over maxmemory (Redis's processCommand).
MULTI_UNDER_OOM = frozenset({"exec", "discard", "quit", "reset"})
# Stop reading from a client whose unanswered replies pile up past this.
MAX_PENDING = 100_000
_clock_ns = time.perf_counter_ns
_time_ns = time.time_ns


class _Held:
    """A read or write waiting in the reply queue for the connection's
    earlier commands of the other kind to be answered: a data command
    (`entry`, `args`, in database `db`, served locally if `local`), or a
    server command's own continuation (`call`: EXEC, WATCH)."""

    __slots__ = ("kind", "entry", "args", "db", "local", "call")

    def __init__(
        self,
        kind: int,
        entry: CommandEntry | None = None,
        args: list[bytes] | None = None,
        db: int = 0,
        local: bool = False,
        call: Callable[[], Any] | None = None,
    ) -> None:
        self.kind = kind
        self.entry = entry
        self.args = args
        self.db = db
        self.local = local
        self.call = call


class ClientConnection(asyncio.Protocol):
    __slots__ = (
        "server",
        "transport",
        "parser",
        "out",
        "db",
        "id",
        "name",
        "lib_name",
        "lib_ver",
        "authed",
        "created",
        "last_name",
        "last_active_ms",
        "queue",
        "closing",
        "addr",
        "laddr",
        "paused",
        "resp",
        "read_mode",
        "lookup",
        "dbs",
        "stats",
        "append_reply",
        "local_kinds",
        "multi",
        "multi_failed",
        "watched",
        "write_replies",
        "read_replies",
        "held",
        "soft_since",
        "obuf_check",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        config = server.config
        self.authed = not config["requirepass"]
        self.parser = RequestParser(
            max_bulk_len=config["proto-max-bulk-len"],
            max_query_len=config["client-query-buffer-limit"],
            noauth=not self.authed,
        )
        # The hard output limit also caps the reply buffer of one read, so
        # a pipeline of big GETs cannot build a huge reply before the check.
        self.out = ReplyBuffer(False, server.output_limits[0])
        # When the transport's buffer first went over the soft output
        # limit (monotonic seconds), 0.0 while under it.
        self.soft_since = 0.0
        self.obuf_check = any(server.output_limits[:2])  # any limit to check
        self.resp = 2
        self.db = 0
        self.id = server.next_client_id()
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.created = time.time()
        self.last_active_ms = int(self.created * 1000)
        self.last_name = b""  # the name, as sent, of the last command run
        self.queue: deque[Any] = deque()  # replies behind a pending Future
        self.closing = False
        self.paused = False
        self.addr = "?"
        self.laddr = "?"
        self.read_mode = server.config["read-mode"]
        # Cached for the hot path; none of them is replaced while the server
        # runs (a snapshot is restored into the same keyspaces).
        self.lookup = server.lookup
        self.dbs = server.store.dbs
        self.stats = server.stats
        self.append_reply = self.out.append
        self.local_kinds = 0
        self.refresh_local_kinds()
        # Between MULTI and EXEC: the commands queued (None outside MULTI),
        # and whether one was refused while queueing (EXEC then aborts).
        self.multi: list[list[bytes]] | None = None
        self.multi_failed = False
        # WATCHed keys: (db, key) -> what WATCH's read saw (None until that
        # read answers).
        self.watched: dict[tuple[int, bytes], Watch | None] = {}
        # ids of the unanswered write and read replies in `queue`, and how
        # many `_Held` commands it holds (see the module docstring).
        self.write_replies: set[int] = set()
        self.read_replies: set[int] = set()
        self.held = 0

    @property
    def last_command(self) -> str:
        """The last command's name, as CLIENT LIST shows it ("NULL" if unknown)."""
        name = self.last_name
        entry = self.lookup.get(name) or self.lookup.get(name.lower())
        return entry.name if entry is not None else "NULL"

    @property
    def last_active(self) -> float:
        """When the last command ran, in seconds since the epoch."""
        return self.last_active_ms / 1000

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self.addr = _format_addr(transport.get_extra_info("peername"))
        self.laddr = _format_addr(transport.get_extra_info("sockname"))
        server = self.server
        server.stats.connections_received += 1
        if len(server.clients) >= server.config["maxclients"]:
            server.stats.rejected_connections += 1
            self.transport.write(b"-ERR max number of clients reached\r\n")  # type: ignore[union-attr]
            transport.close()
            self.closing = True
            return
        server.clients[self.id] = self

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.clients.pop(self.id, None)
        # Nobody will read these replies; still collect each Future's outcome
        # so that asyncio does not report it as never retrieved.
        for item in self.queue:
            if type(item) is Future:
                item.remove_done_callback(self._future_done)
                item.add_done_callback(_discard_outcome)
        self.queue.clear()
        self.write_replies.clear()
        self.read_replies.clear()
        self.held = 0

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests.
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused and len(self.queue) < MAX_PENDING:
            self.paused = False
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        # The whole batch is run here, not in a helper method: at one
        # command per read (redis-benchmark -P 1) each Python call counts.
        if not self.authed:
            self._data_received_noauth(data)
            return
        parser = self.parser
        try:
            commands = parser.feed(data)
            if commands:
                now = _time_ns() // 1_000_000
                count = len(commands)
                done = 0
                if not self.queue and not self.closing and self.multi is None:
                    # The compiled loop runs the leading data commands that
                    # need nothing from this connection but its keyspace, and
                    # stops at the first one that needs the general path.
                    # Only unpipelined calls are timed (sampled) for INFO
                    # commandstats.
                    done = run_local(
                        commands,
                        0,
                        self.lookup,
                        self.dbs[self.db],
                        now,
                        self.append_reply,
                        self.local_kinds,
                        _clock_ns if count == 1 else None,
                    )
                if done < count:
                    self.execute(commands, done, now)
                self.stats.commands_processed += count
                self.last_name = commands[-1][0]
                self.last_active_ms = now
                if self.closing:
                    self.flush()
                else:
                    # Only closing (QUIT, CLIENT KILL, a protocol error: each
                    # sets `closing`) ends the transport while a read is being
                    # handled, so flush()'s checks are not needed here.
                    self.transport.write(self.out.take())  # type: ignore[union-attr]
                    if self.obuf_check:
                        self.check_output()
            else:
                # A read that completed no command is still activity
                # (timeout): a big value may take many reads to arrive.
                self.last_active_ms = _time_ns() // 1_000_000
        except OutputLimitExceeded:
            self.output_limit_reached()
            return
        if parser.error is not None and not self.closing:
            self.parse_error(parser.error)

    def _data_received_noauth(self, data: bytes) -> None:
        """Before AUTH: the parser returns one command at a time (with
        Redis's 10-argument / 16 KB limits), and each is run before the
        next is parsed, so that what follows an AUTH is parsed as
        authenticated, as Redis does. Nothing here is on the compiled path."""
        parser = self.parser
        now = _time_ns() // 1_000_000
        self.last_active_ms = now
        try:
            commands = parser.feed(data)
            while commands and not self.closing:
                self.execute(commands, 0, now)
                self.stats.commands_processed += len(commands)
                self.last_name = commands[-1][0]
                if self.authed:
                    parser.noauth = False
                    self.flush()
                    # The rest of this read, parsed and run as authenticated.
                    self.data_received(b"")
                    return
                commands = parser.feed(b"")
            self.flush()
        except OutputLimitExceeded:
            self.output_limit_reached()
            return
        if parser.error is not None and not self.closing:
            self.parse_error(parser.error)

    def parse_error(self, error: str) -> None:
        if error == ERR_QUERY_LIMIT:
            # As Redis: no reply, logged, closed at once.
            self.server.stats.query_limit_disconnections += 1
            log.warning(
                f"Closing client that reached max query buffer length: "
                f"id={self.id} addr={self.addr} "
                f"(limit {self.parser.max_query_len} bytes)"
            )
            self.drop()
            return
        self.reply_and_close(CommandError(error), protocol_error=True)

    def drop(self) -> None:
        """Close at once, discarding what is not yet sent (abort, not close:
        close would keep the buffer until a client that does not read has
        read it)."""
        self.closing = True
        self.out.take()
        if self.transport is not None:
            self.transport.abort()

    def output_limit_reached(self) -> None:
        self.server.stats.output_limit_disconnections += 1
        log.warning(
            f"Client id={self.id} addr={self.addr} closed for overcoming of "
            "output buffer limits."
        )
        self.drop()

    def check_output(self) -> None:
        """client-output-buffer-limit (normal class), after a write: over
        the hard limit, or over the soft one for longer than its seconds
        (Redis's checkClientOutputBufferLimits)."""
        transport = self.transport
        if transport is None or self.closing:
            return
        hard, soft, seconds = self.server.output_limits
        size = transport.get_write_buffer_size()
        if hard and size > hard:
            self.output_limit_reached()
        elif soft and size > soft:
            now = time.monotonic()
            if not self.soft_since:
                self.soft_since = now
            elif now - self.soft_since > seconds:
                self.output_limit_reached()
        else:
            self.soft_since = 0.0

    # Execution

    def execute(self, commands: list[list[bytes]], start: int, now: int) -> None:
        """Run commands[start:] in order; the caller writes the replies."""
        clock = _clock_ns if len(commands) == 1 else None
        count = len(commands)
        done = start
        while done < count and not self.closing:
            self.execute_one(commands[done], now, clock)
            done += 1
            if (
                done < count
                and not self.queue
                and self.authed
                and not self.closing
                and self.multi is None
            ):
                # Back on the compiled loop, e.g. after a SELECT in a pipeline.
                done = run_local(
                    commands,
                    done,
                    self.lookup,
                    self.dbs[self.db],
                    now,
                    self.append_reply,
                    self.local_kinds,
                    clock,
                )

    def execute_one(
        self, args: list[bytes], now: int, clock: Callable[[], int] | None
    ) -> None:
        """The general path for one command: every check, every kind, replies in order."""
        server = self.server
        entry = self.lookup.get(args[0])
        if entry is None:
            entry = self.lookup.get(args[0].lower())
            if entry is None:
                server.stats.unknown_commands += 1
                if self.multi is not None:
                    self.multi_failed = True
                self.answer(unknown_command(args))
                return
        # Sampled as in the compiled loop, so the two paths report alike.
        timing = clock is not None and entry.calls % TIMING_SAMPLE == 0
        entry.calls += 1
        started = clock() if timing and clock is not None else 0
        checked = False
        try:
            arity = entry.arity
            argc = len(args)
            if (argc != arity) if arity > 0 else (argc < -arity):
                raise wrong_arity(entry.name)
            if not self.authed and entry.name not in NOAUTH_ALLOWED:
                raise CommandError(NOAUTH)
            checked = True
            kind = entry.kind
            driver = server.driver
            if self.multi is not None and entry.name not in MULTI_CONTROL:
                if kind == SERVER and args[0].lower() not in PURE_COMMANDS:
                    raise CommandError(NOT_IN_MULTI)
                if server.oom and driver.is_leader():
                    # Redis refuses to queue anything while over maxmemory.
                    raise CommandError(OOM)
                self.multi.append(args)
                reply: Any = "QUEUED"
            elif kind == READ:
                if self.write_replies or self.held:
                    reply = self._hold(entry, args)
                elif self.local_kinds & (1 << READ):
                    reply = entry.handler(server.store.dbs[self.db], args, now)
                else:
                    reply = driver.read(entry, self, args, now)
                    if type(reply) is Deferred:
                        self.read_replies.add(id(reply))
            elif kind == WRITE:
                if server.oom:
                    self.refuse_for_memory(entry, args)
                if driver.writes_local:
                    reply = entry.handler(server.store.dbs[self.db], args, now)
                elif self.read_replies or self.held:
                    reply = self._hold(entry, args)
                else:
                    reply = driver.propose(entry, self, args, now)
                    if type(reply) is Deferred or type(reply) is Future:
                        self.write_replies.add(id(reply))
            else:
                if (
                    server.oom
                    and self.multi is not None
                    and entry.name not in MULTI_UNDER_OOM
                    and driver.is_leader()
                ):
                    raise CommandError(OOM)
                reply = entry.handler(self, args)
                if type(reply) is Deferred or type(reply) is Future:
                    # EXEC writes, WATCH reads (they hold themselves).
                    if entry.name == "exec":
                        self.write_replies.add(id(reply))
                    elif entry.name == "watch":
                        self.read_replies.add(id(reply))
        except CommandError as e:
            entry.failed += 1
            if self.multi is not None and (
                not checked or entry.name not in MULTI_CONTROL
            ):
                # Refused while queueing (as Redis does, even EXEC refused
                # for its arity): the transaction can only be discarded.
                self.multi_failed = True
            # Kept as the reply: drop the traceback, whose frame refers back
            # to the error (a cycle only the GC could free, see app.py).
            reply = e.with_traceback(None)
        if timing and clock is not None:
            entry.nanos += clock() - started
            entry.timed += 1
        if reply is not NO_REPLY:
            self.answer(reply)

    def answer(self, reply: Any) -> None:
        """Queue a reply behind pending ones, or buffer it for this read's write."""
        if (
            self.queue
            or type(reply) is Deferred
            or type(reply) is Future
            or type(reply) is _Held
        ):
            self.enqueue(reply)
        else:
            self.out.append(reply)

    def enqueue(self, reply: Any) -> None:
        self.queue.append(reply)
        if type(reply) is Future:
            reply.add_done_callback(self._future_done)
        if (
            len(self.queue) >= MAX_PENDING
            and not self.paused
            and self.transport is not None
        ):
            self.paused = True
            self.transport.pause_reading()

    def _future_done(self, _: Future[Any]) -> None:
        self.drain()

    def drain(self) -> None:
        """Write every reply at the head of the queue that is known now."""
        try:
            self._drain()
        except OutputLimitExceeded:
            self.output_limit_reached()

    def _drain(self) -> None:
        queue = self.queue
        out = self.out
        write_replies = self.write_replies
        read_replies = self.read_replies
        while queue:
            head = queue[0]
            if type(head) is _Held:
                self._issue_held()
                continue
            if type(head) is Deferred:
                if not head.done:
                    break
                out.append(head.value)
                queue.popleft()
                if write_replies:
                    write_replies.discard(id(head))
                if read_replies:
                    read_replies.discard(id(head))
                continue
            if head is _CLOSE:
                queue.clear()
                self.flush()
                if self.transport is not None:
                    self.transport.close()
                return
            if type(head) is Future:
                if not head.done():
                    break
                exc = head.exception()
                value = exc if exc is not None else head.result()
                if exc is not None and not isinstance(exc, CommandError):
                    log.warning(f"Internal error answering client {self.id}: {exc!r}")
                    value = CommandError(f"ERR internal error: {exc}")
                out.append(value)
            else:
                out.append(head)
            queue.popleft()
            if write_replies:
                write_replies.discard(id(head))
            if read_replies:
                read_replies.discard(id(head))
        self.flush()
        if self.paused and len(queue) < MAX_PENDING // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def must_wait(self, kind: int) -> bool:
        """Whether a command of `kind` (READ or WRITE) must be held: behind
        an unanswered command of the other kind, or behind anything held."""
        if kind == READ:
            return bool(self.write_replies or self.held)
        return bool(self.read_replies or self.held)

    def _hold(self, entry: CommandEntry, args: list[bytes]) -> _Held:
        self.held += 1
        local = bool(self.local_kinds & (1 << READ))
        return _Held(entry.kind, entry, args, self.db, local)

    def hold_call(self, kind: int, call: Callable[[], Any]) -> _Held:
        """Hold a server command's continuation (EXEC, WATCH) as a `kind`."""
        self.held += 1
        return _Held(kind, call=call)

    def _issue_held(self) -> None:
        """The head of the queue is held, so everything before it was
        answered: issue it and the held commands of the same kind (reads, or
        writes) right behind it; the next of the other kind waits for them."""
        queue = self.queue
        kind = queue[0].kind
        for i in range(len(queue)):
            item = queue[i]
            if type(item) is not _Held or item.kind != kind:
                break
            queue[i] = self._issue(item)

    def _issue(self, held: _Held) -> Any:
        self.held -= 1
        server = self.server
        driver = server.driver
        now = _time_ns() // 1_000_000
        entry, args = held.entry, held.args
        # The driver works in the connection's database: the one the command
        # was sent in, whatever SELECT came after it.
        db, self.db = self.db, held.db
        try:
            if held.call is not None:
                self.db = db  # a continuation keeps its own database
                reply = held.call()
            elif held.kind == WRITE:
                assert entry is not None and args is not None
                if server.oom:
                    self.refuse_for_memory(entry, args)
                reply = driver.propose(entry, self, args, now)
            elif held.local:
                assert entry is not None and args is not None
                return entry.handler(server.store.dbs[held.db], args, now)
            else:
                assert entry is not None and args is not None
                reply = driver.read(entry, self, args, now)
        except CommandError as e:
            return e.with_traceback(None)
        except Exception as e:  # noqa: BLE001 - one client's command must not stop the node
            log.warning(f"Internal error answering client {self.id}: {e!r}")
            return CommandError(f"ERR internal error: {e}")
        finally:
            self.db = db
        replies = self.write_replies if held.kind == WRITE else self.read_replies
        if type(reply) is Deferred:
            replies.add(id(reply))
        elif type(reply) is Future:
            replies.add(id(reply))
            reply.add_done_callback(self._future_done)
        return reply

    def flush(self) -> None:
        if (
            len(self.out)
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.write(self.out.take())
            if self.obuf_check:
                self.check_output()

    def refuse_for_memory(self, entry: CommandEntry, args: list[bytes]) -> None:
        """Raise -OOM for a denyoom write (an EXEC carrying one: EXECABORT)
        while used memory is over maxmemory, on the node that appends it to
        the log. Only the leader (or a node without a log) decides: the log
        must be the same on every replica, so a follower never refuses on
        its own memory; it forwards the write and the leader, over its
        limit or not, answers for it."""
        if not self.server.driver.is_leader():
            return
        if entry.denyoom:
            raise CommandError(OOM)
        if args[0].lower() == EXEC_COMMAND:
            try:
                _, commands = split_exec_args(args)
            except CommandError:
                return  # refused as malformed when applied
            lookup = self.lookup
            for command in commands:
                queued = lookup.get(command[0]) or lookup.get(command[0].lower())
                if queued is not None and queued.denyoom:
                    raise CommandError(EXEC_OOM)

    def reply_and_close(self, reply: Any, protocol_error: bool = False) -> None:
        """Answer what came before, then this reply, then close (QUIT, protocol errors)."""
        if protocol_error:
            self.server.stats.protocol_errors += 1
            log.verbose(f"Protocol error from client {self.addr}: {reply.message}")
        if self.queue:
            self.queue.append(reply)
            self.queue.append(_CLOSE)
        else:
            self.out.append(reply)
            self.flush()
            if self.transport is not None:
                self.transport.close()
        self.closing = True

    def unwatch(self) -> None:
        if self.watched:
            self.watched = {}  # a new dict: late WATCH answers fill the old one

    def refresh_local_kinds(self) -> None:
        """Which kinds of data command this connection runs on local state at
        once: reads when the driver serves them locally (standalone) or the
        connection asked for stale reads; writes only without replication."""
        server = self.server
        driver = server.driver
        reads_local = driver.reads_local or self.read_mode == "stale"
        # Over maxmemory, writes leave the compiled loop for execute_one,
        # which refuses the denyoom ones.
        writes_local = driver.writes_local and not server.oom
        self.local_kinds = (reads_local << READ) | (writes_local << WRITE)

    def set_read_mode(self, mode: str) -> None:
        self.read_mode = mode
        self.refresh_local_kinds()

    def close_now(self) -> None:
        self.flush()
        if self.transport is not None:
            self.transport.close()

    def set_protocol(self, version: int) -> None:
        self.resp = version
        self.out.resp3 = version == 3


def _discard_outcome(future: Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _Close:
    """Queued after QUIT's reply when writes are still pending."""


_CLOSE = _Close()


def _format_addr(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"
    return str(addr)
