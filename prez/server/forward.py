"""Forwarding of writes from a follower to the leader, over the leader's client port.

A write sent to a follower is forwarded to the leader by default (as etcd
and ZooKeeper do): the follower is an ordinary RESP client of the leader's
client port and hands the leader's reply to its own client unchanged, as a
`Raw` reply framed by `prez._core.replyframe_py` and never decoded.

One pipelined connection per (leader address, RESP version), made on first
use and kept: a RESP3 connection starts with HELLO 3 so that replies come
back in the client's protocol, a password is sent with AUTH first, and a
SELECT goes ahead of any command for another database than the
connection's. Those replies are swallowed. Requests are written without
waiting for earlier replies; replies come back in request order.

What a waiting client gets when forwarding fails:
- the request never left this node (no connection could be made): a
  CLUSTERDOWN error, safe to retry;
- the request was written and the connection then failed or the leader
  changed: the outcome-unknown error, because the leader may have applied it.
Every Future handed out is resolved, whatever happens to the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque

from prez._core.replyframe_py import ReplyFramer
from prez._core.replytypes import Raw
from prez.errors import NO_LEADER, OUTCOME_UNKNOWN, CommandError, ProtocolError
from prez.netaddr import split_host_port
from prez.respclient import encode_request
from prez.server.logging import log
from prez.server.peer import outbound_local_addr, reset_if_connected_to_itself

# Safe to retry: the request was never written to the leader.
LEADER_UNREACHABLE = "CLUSTERDOWN The leader is unreachable"
TOO_MANY_IN_FLIGHT = "TRYAGAIN too many forwarded requests in flight"
CONNECT_TIMEOUT = 5.0
# A failing leader connection fails every request: one warning per kind of
# failure per this many seconds is enough to diagnose it.
WARNING_INTERVAL = 5.0

_PUSH = ord(">")
_ERROR_TYPES = frozenset(b"-!")


class ForwardStats:
    """`forwarded`: requests sent (or queued to send) to a leader.

    `failed`: requests this node failed itself (unreachable leader, lost
    connection, leader change, too many in flight), not error replies of
    the leader, which are passed through like any reply.
    """

    __slots__ = ("forwarded", "failed")

    def __init__(self) -> None:
        self.forwarded = 0
        self.failed = 0


class _Swallowed:
    """Stands in the reply queue for a request of the forwarder's own (AUTH, HELLO, SELECT)."""

    __slots__ = ("command", "db")

    def __init__(self, command: str, db: int = -1) -> None:
        self.command = command
        self.db = db

    def __repr__(self) -> str:
        return f"<{self.command}>" if self.db < 0 else f"<SELECT {self.db}>"


_AUTH = _Swallowed("AUTH")
_HELLO = _Swallowed("HELLO")


class _RateLimitedWarnings:
    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < WARNING_INTERVAL:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += f" ({suppressed} similar messages suppressed)"
        log.warning(message)


def _error_text(reply: bytes) -> str | None:
    """The message of an error reply (simple or RESP3 blob), None for any other reply."""
    if reply[0] not in _ERROR_TYPES:
        return None
    if reply[0] == ord("-"):
        return reply[1:-2].decode("utf-8", "replace")
    payload = reply[reply.index(b"\r\n") + 2 : -2]
    return payload.decode("utf-8", "replace")


class Forwarder:
    """Sends writes to the leader and returns Futures of its raw replies."""

    def __init__(
        self,
        password: str = "",
        max_pending: int = 100_000,
        *,
        source_host: str | None = None,
    ) -> None:
        self.password = password
        self.max_pending = max_pending
        # Connections start from this node's own address (see prez.server.peer).
        self.local_addr = outbound_local_addr(source_host)
        self.stats = ForwardStats()
        self.warnings = _RateLimitedWarnings()
        self._connections: dict[tuple[str, bool], _LeaderConnection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def forward(
        self, addr: str, db: int, resp3: bool, args: list[bytes]
    ) -> asyncio.Future[Raw]:
        """Send `args` to the leader at addr ("host:port") to run in database `db`.

        The Future resolves with the leader's reply in the client's protocol
        (RESP3 if `resp3`), or fails with a CommandError. Never raises.
        """
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._closed:
            return self._failed(loop, LEADER_UNREACHABLE)
        key = (addr, resp3)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = _LeaderConnection(
                self, loop, addr, resp3
            )
            connection.start()
        if connection.in_flight >= self.max_pending:
            return self._failed(loop, TOO_MANY_IN_FLIGHT)
        self.stats.forwarded += 1
        return connection.send(db, args)

    def leader_changed(self) -> None:
        """Fail every request in flight and close every connection.

        Requests already written fail with the outcome-unknown error (the old
        leader may still commit them), the others with a CLUSTERDOWN error.
        """
        connections = list(self._connections.values())
        self._connections.clear()
        for connection in connections:
            connection.close(NO_LEADER)

    async def close(self) -> None:
        """Fail what is in flight as leader_changed() does, and wait for the connections to go."""
        self._closed = True
        connections = list(self._connections.values())
        self.leader_changed()
        gone = [connection.gone for connection in connections]
        if gone:
            await asyncio.wait(gone, timeout=CONNECT_TIMEOUT)

    def _failed(
        self, loop: asyncio.AbstractEventLoop, message: str
    ) -> asyncio.Future[Raw]:
        self.stats.failed += 1
        future: asyncio.Future[Raw] = loop.create_future()
        future.set_exception(CommandError(message))
        return future

    def _forget(self, connection: _LeaderConnection) -> None:
        key = (connection.addr, connection.resp3)
        if self._connections.get(key) is connection:
            del self._connections[key]


class _LeaderConnection(asyncio.Protocol):
    """One pipelined client connection to the leader's client port.

    `waiting` holds, in request order, a Future per forwarded request and a
    `_Swallowed` marker per request of our own. Its last `unwritten` entries
    are still in `out`, not yet handed to the transport: those fail with the
    safe-to-retry error rather than outcome-unknown.
    """

    __slots__ = (
        "forwarder",
        "loop",
        "addr",
        "resp3",
        "transport",
        "framer",
        "waiting",
        "unwritten",
        "in_flight",
        "out",
        "db",
        "flush_scheduled",
        "closed",
        "connect_task",
        "gone",
        "auth_error",
        "select_error",
    )

    def __init__(
        self,
        forwarder: Forwarder,
        loop: asyncio.AbstractEventLoop,
        addr: str,
        resp3: bool,
    ) -> None:
        self.forwarder = forwarder
        self.loop = loop
        self.addr = addr
        self.resp3 = resp3
        self.transport: asyncio.Transport | None = None
        self.framer = ReplyFramer()
        self.waiting: deque[asyncio.Future[Raw] | _Swallowed] = deque()
        self.unwritten = 0
        self.in_flight = 0  # Futures in `waiting`
        self.out = bytearray()
        self.db = 0  # the leader's database for this connection once `out` has run
        self.flush_scheduled = False
        self.closed = False
        self.connect_task: asyncio.Task[None] | None = None
        self.gone: asyncio.Future[None] = loop.create_future()
        # After a failed AUTH the leader answers NOAUTH: those requests fail
        # with the AUTH error instead, which says why.
        self.auth_error: CommandError | None = None
        # After a failed SELECT the requests behind it ran in another database.
        self.select_error: CommandError | None = None

    def start(self) -> None:
        password = self.forwarder.password
        if password:
            self._queue(_AUTH, [b"AUTH", password.encode()])
        if self.resp3:
            self._queue(_HELLO, [b"HELLO", b"3"])
        self.connect_task = self.loop.create_task(self._connect())
        self.connect_task.add_done_callback(self._connect_done)

    async def _connect(self) -> None:
        try:
            host, port = split_host_port(self.addr)
            await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: self, host, port, local_addr=self.forwarder.local_addr
                ),
                CONNECT_TIMEOUT,
            )
        except (TimeoutError, OSError, ValueError) as e:
            reason = str(e) or type(e).__name__
            count = self._fail_waiting(LEADER_UNREACHABLE)
            self.forwarder.warnings.warn(
                "connect",
                f"Cannot forward to the leader at {self.addr}: {reason}; "
                f"{count} requests failed",
            )

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        # Also reached when the task is cancelled before it ever ran, so no
        # handler inside _connect() would see it.
        if task.cancelled():
            self._fail_waiting(NO_LEADER)
        if self.transport is None:
            self._finish()  # never connected, or connected and already lost

    def send(self, db: int, args: list[bytes]) -> asyncio.Future[Raw]:
        if db != self.db:
            self._queue(_Swallowed("SELECT", db), [b"SELECT", b"%d" % db])
            self.db = db
        future: asyncio.Future[Raw] = self.loop.create_future()
        self._queue(future, args)
        self.in_flight += 1
        return future

    def _queue(
        self, entry: asyncio.Future[Raw] | _Swallowed, args: list[bytes]
    ) -> None:
        self.out += encode_request(args)
        self.waiting.append(entry)
        self.unwritten += 1
        # Every request queued in this turn of the loop goes out in one write.
        if self.transport is not None and not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        transport = self.transport
        if transport is None or self.closed or not self.out:
            return
        # The transport may keep the buffer instead of copying it: hand it
        # over and start a new one rather than clearing it.
        data, self.out = self.out, bytearray()
        self.unwritten = 0
        transport.write(data)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.closed:
            transport.close()
            return
        if reset_if_connected_to_itself(transport):
            # Nothing listens at the leader's address: our own requests
            # would come back as its "replies". connection_lost follows and
            # fails the waiting requests as unreachable.
            log.verbose(f"Forwarding to {self.addr} reached this socket itself")
            return
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Small requests must not wait for Nagle behind unacknowledged ones.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.verbose(
            f"Forwarding writes to the leader at {self.addr} (RESP{3 if self.resp3 else 2})"
        )
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = not self.closed
        self.transport = None
        if was_open:
            count = self._fail_waiting(LEADER_UNREACHABLE)
            reason = f": {exc}" if exc is not None else ""
            log.verbose(f"Connection to the leader at {self.addr} lost{reason}")
            if count:
                self.forwarder.warnings.warn(
                    "lost",
                    f"Connection to the leader at {self.addr} lost with "
                    f"{count} forwarded requests in flight{reason}",
                )
        self._finish()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            replies = self.framer.feed(data)
        except ProtocolError as e:
            self._abort(f"bad reply stream from the leader at {self.addr}: {e}")
            return
        waiting = self.waiting
        resp3 = self.resp3
        for reply in replies:
            if resp3 and reply[0] == _PUSH:
                continue  # out of band (invalidation, pub/sub): answers no request
            if not waiting:
                self._abort(f"reply with no request from the leader at {self.addr}")
                return
            entry = waiting.popleft()
            if isinstance(entry, _Swallowed):
                self._swallowed_reply(entry, reply)
                continue
            self.in_flight -= 1
            if entry.done():
                continue  # cancelled by its waiter
            if self.auth_error is not None and reply.startswith(b"-NOAUTH"):
                self.forwarder.stats.failed += 1
                entry.set_exception(self.auth_error)
            elif self.select_error is not None:
                self.forwarder.stats.failed += 1
                entry.set_exception(self.select_error)
            else:
                entry.set_result(Raw(reply))

    # Failure

    def _swallowed_reply(self, entry: _Swallowed, reply: bytes) -> None:
        text = _error_text(reply)
        if entry.db >= 0:
            # Requests behind a refused SELECT ran in the previous database:
            # they fail until a SELECT succeeds (the next request for any
            # other database sends one).
            if text is None:
                self.select_error = None
                return
            self.select_error = CommandError(
                f"ERR the leader refused SELECT {entry.db} ({text}): "
                "the forwarded command ran in another database"
            )
            self.forwarder.warnings.warn(
                "select", f"The leader at {self.addr} refused SELECT {entry.db}: {text}"
            )
            return
        if text is None:
            return
        self.forwarder.warnings.warn(
            entry.command.lower(),
            f"The leader at {self.addr} refused {entry.command}: {text}",
        )
        if entry is _AUTH:
            self.auth_error = CommandError(text)
        # A refused HELLO 3 leaves the connection in RESP2, whose replies a
        # RESP3 client reads as well: they are still passed through.

    def _abort(self, reason: str) -> None:
        count = self._fail_waiting(NO_LEADER)
        self.forwarder.warnings.warn(
            "protocol",
            f"Closing the connection to the leader: {reason}; {count} requests failed",
        )
        self._close_transport()

    def close(self, unwritten_error: str) -> None:
        """Fail what is waiting and close (leader change, shutdown)."""
        if self.closed:
            return
        self._fail_waiting(unwritten_error)
        self._close_transport()
        task = self.connect_task
        if task is not None and not task.done():
            task.cancel()

    def _close_transport(self) -> None:
        self.closed = True
        self.forwarder._forget(self)
        if self.transport is not None:
            self.transport.close()  # connection_lost() will call _finish()
        elif self.connect_task is None or self.connect_task.done():
            self._finish()
        # Otherwise _connect_done() will.

    def _fail_waiting(self, unwritten_error: str) -> int:
        """Fail every waiting request; return how many."""
        self.closed = True
        self.forwarder._forget(self)
        waiting = self.waiting
        written = len(waiting) - self.unwritten
        self.waiting = deque()
        self.unwritten = 0
        self.in_flight = 0
        self.out = bytearray()
        outcome_unknown = CommandError(OUTCOME_UNKNOWN)
        never_sent = CommandError(unwritten_error)
        count = 0
        for index, entry in enumerate(waiting):
            if isinstance(entry, _Swallowed):
                continue
            if not entry.done():
                entry.set_exception(outcome_unknown if index < written else never_sent)
                count += 1
        self.forwarder.stats.failed += count
        return count

    def _finish(self) -> None:
        self.closed = True
        self.forwarder._forget(self)
        if not self.gone.done():
            self.gone.set_result(None)
