"""One client connection: parse pipelined requests, dispatch, answer in order.

Everything parsed from one read is executed in order and answered with one
write. A reply is either a value, written at once, or a Future (a write
waiting for commit): from then on replies queue behind it so that a
connection's answers always come back in the order it asked.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from prez.errors import NOAUTH, CommandError, unknown_command, wrong_arity
from prez.server.commands import NO_REPLY
from prez.server.dispatch import READ, WRITE, Deferred
from prez.server.logging import log

# The pure-Python twin only when asked for by name (tests of the twin, or a
# machine without a compiler); never as a silent fallback.
if os.environ.get("PREZ_PURE_CORE") == "1":
    from prez._core.resp_py import ReplyBuffer, RequestParser
else:
    from prez._core.resp import ReplyBuffer, RequestParser  # type: ignore[assignment]

if TYPE_CHECKING:
    from prez.server.app import Server

Future = asyncio.Future
# Commands a client may send before AUTH when requirepass is set.
NOAUTH_ALLOWED = frozenset({"auth", "hello", "quit"})
# Stop reading from a client whose unanswered replies pile up past this.
MAX_PENDING = 100_000


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
        "last_command",
        "last_active",
        "queue",
        "closing",
        "addr",
        "laddr",
        "paused",
        "resp",
        "read_mode",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = RequestParser(max_bulk_len=server.config["proto-max-bulk-len"])
        self.out = ReplyBuffer(False)
        self.resp = 2
        self.db = 0
        self.id = server.next_client_id()
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.authed = not server.config["requirepass"]
        self.created = time.time()
        self.last_active = self.created
        self.last_command = "NULL"
        self.queue: deque[Any] = deque()  # replies behind a pending Future
        self.closing = False
        self.paused = False
        self.addr = "?"
        self.laddr = "?"
        self.read_mode = server.config["read-mode"]

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
        parser = self.parser
        commands = parser.feed(data)
        if commands:
            self.execute(commands)
        if parser.error is not None and not self.closing:
            self.reply_and_close(CommandError(parser.error), protocol_error=True)

    # Execution

    def execute(self, commands: list[list[bytes]]) -> None:
        server = self.server
        lookup = server.lookup
        driver = server.driver
        # Drivers that serve reads (or writes) from local state at once are
        # called around: one Python call less per command on the hot path.
        reads_local = driver.reads_local
        writes_local = driver.writes_local
        dbs = server.store.dbs
        out = self.out
        queue = self.queue
        now = time.time_ns() // 1_000_000
        started = time.perf_counter()
        entry = None
        for args in commands:
            if self.closing:
                break
            entry = lookup.get(args[0])
            if entry is None:
                entry = lookup.get(args[0].lower())
                if entry is None:
                    reply: Any = unknown_command(args)
                    server.stats.unknown_commands += 1
                    if queue:
                        queue.append(reply)
                    else:
                        out.append(reply)
                    continue
            entry.calls += 1
            try:
                arity = entry.spec.arity
                argc = len(args)
                if (argc != arity) if arity > 0 else (argc < -arity):
                    raise wrong_arity(entry.name)
                if not self.authed and entry.name not in NOAUTH_ALLOWED:
                    raise CommandError(NOAUTH)
                kind = entry.kind
                if kind == READ:
                    if reads_local:
                        reply = entry.handler(dbs[self.db], args, now)
                    else:
                        reply = driver.read(entry, self, args, now)
                elif kind == WRITE:
                    if writes_local:
                        reply = entry.handler(dbs[self.db], args, now)
                    else:
                        reply = driver.propose(entry, self, args, now)
                else:
                    reply = entry.handler(self, args)
                    if reply is NO_REPLY:
                        continue
            except CommandError as e:
                entry.failed += 1
                reply = e
            if queue or type(reply) is Deferred or type(reply) is Future:
                self.enqueue(reply)
            else:
                out.append(reply)
        count = len(commands)
        server.stats.commands_processed += count
        if count == 1 and entry is not None:
            # Only unpipelined calls are timed: timing each command of a
            # pipeline would cost more than many commands do.
            self.last_command = entry.name
            entry.timed += 1
            entry.usec += (time.perf_counter() - started) * 1e6
        self.last_active = now / 1000
        self.flush()

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
        queue = self.queue
        out = self.out
        while queue:
            head = queue[0]
            if type(head) is Deferred:
                if not head.done:
                    break
                out.append(head.value)
                queue.popleft()
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
        self.flush()
        if self.paused and len(queue) < MAX_PENDING // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def flush(self) -> None:
        if (
            len(self.out)
            and self.transport is not None
            and not self.transport.is_closing()
        ):
            self.transport.write(self.out.take())

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
