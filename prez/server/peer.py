"""The cluster bus: TCP connections between members carrying Raft messages.

Each node keeps one persistent outbound connection to every other member and
uses it only to send; what a member sends us arrives on the connection it
opened to our listener. Whoever opens a connection first sends a HELLO frame
(its name, its client address, the cluster id), so the listener knows who is
talking and learns where that member serves clients.

Peers are not trusted to be well behaved. A frame that fails to decode,
which includes every message no correct node sends (`decode_message` checks
terms, indexes, entry runs, kinds and CONFIG entries, so the Raft core only
ever sees well-formed messages), or a byte stream that cannot be framed,
closes that one connection with a warning (rate-limited); a message that
claims to come from someone else or is meant for another node is dropped.
Nothing a peer sends raises out of here.

Memory per connection is bounded before anything is buffered. Frame caps
(the length field, checked as soon as a frame's 6-byte header is in):

- before HELLO, HELLO_MAX_FRAME (4 KiB) for any frame: a HELLO is three
  short strings, and a node refuses to start with a HELLO over it;
- after it, by type: APPEND 64 MiB (`DEFAULT_MAX_FRAME_SIZE`: one entry may
  hold up to the driver's MAX_ENTRY_BYTES, 60 MiB; batches of small entries
  are cut at the core's max_append_bytes, 1 MiB), SNAPSHOT and
  SNAPSHOT_CHUNK 1 MiB (a chunk carries 256 KiB, an offer a membership),
  every other type 64 KiB (fixed fields, two names and an 8-byte context).

Bytes buffered: a frame up to SMALL_FRAME (2 MiB, above any batch or chunk)
is buffered freely, one per connection. A bigger one (only an APPEND
carrying an entry of over 1 MiB, and only the leader sends those, one at a
time) must fit, from its header on, in a budget shared by every inbound
connection, `large_frame_budget` (one largest APPEND); a connection whose
frame does not fit is closed (its sender reconnects and Raft resends), and
one that holds the budget longer than LARGE_FRAME_TIMEOUT too. At most
MAX_INBOUND_PER_PEER connections may name one member (the oldest goes: a
member that reconnects must always get in, even past half-open leftovers).
So what the inbound side can be made to hold is about
large_frame_budget + connections x SMALL_FRAME, whoever sends it.

Sending never blocks: a batch of messages (one Raft Ready) is encoded,
grouped per destination and written with one `transport.write` per peer.
Messages for a peer that is down, unknown or too far behind in reading
(its write buffer would go over `max_buffer`; a write to an empty buffer
always goes, so one oversize batch still makes progress) are dropped and
counted; Raft resends.

Outbound connections start from `source_host` when it is given (the address
this node binds): otherwise the kernel would pick 127.0.0.1 for every
loopback destination, and a test could not tell nodes on 127.0.0.X apart
by address to cut the links between them (prez.testing.partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from prez._core import select
from prez.config import BadValue, host_port
from prez.errors import ProtocolError
from prez.raft.types import Message, MessageType
from prez.server.logging import log

if TYPE_CHECKING:
    from prez._core import wire as _wire
else:
    _wire = select("wire")

DEFAULT_MAX_FRAME_SIZE = _wire.DEFAULT_MAX_FRAME_SIZE
FrameReader = _wire.FrameReader
decode_hello = _wire.decode_hello
decode_message = _wire.decode_message
encode_hello = _wire.encode_hello
encode_message = _wire.encode_message

Address = tuple[str, int]

BACKOFF_START = 0.05
BACKOFF_CAP = 1.0
# A dial that neither connects nor fails within this long is given up and retried.
CONNECT_TIMEOUT = 2.0
# An accepted connection that has not said HELLO by then is closed, so that
# strangers cannot hold connections (and frame buffers) open for free.
HELLO_TIMEOUT = 10.0
# At most one warning line per peer (or unknown address) per this many seconds.
WARNING_INTERVAL = 1.0
# Frame caps (length field values; see the module docstring for why these).
HELLO_MAX_FRAME = 4 * 1024
MESSAGE_MAX_FRAME = 64 * 1024
FRAME_LIMITS = {
    int(MessageType.APPEND): DEFAULT_MAX_FRAME_SIZE,
    int(MessageType.SNAPSHOT): 1024 * 1024,
    int(MessageType.SNAPSHOT_CHUNK): 1024 * 1024,
}
# Frames up to this whole size are buffered without drawing on the budget.
SMALL_FRAME = 2 * 1024 * 1024
# The inbound budget for bigger frames: one largest APPEND (header included).
LARGE_FRAME_BUDGET = DEFAULT_MAX_FRAME_SIZE + 4
# A frame drawing on that budget must be complete within this long (64 MiB
# at about 1 MiB/s); otherwise one slow sender could hold it for good.
LARGE_FRAME_TIMEOUT = 60.0
# Inbound connections naming one member; a new one beyond it closes the oldest.
MAX_INBOUND_PER_PEER = 4


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    # Raft messages are small and latency-bound: never let Nagle hold them.
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def reset_if_connected_to_itself(transport: asyncio.BaseTransport) -> bool:
    """Abort a connection that TCP made to its own socket; True if it did.

    Dialing a local port that nothing listens on can succeed when the
    kernel picks that same port as the dialer's ephemeral port (TCP
    simultaneous open). The dialer would then hold the port the member
    needs to bind, and read its own requests back as answers. The reset
    (linger 0) leaves no TIME_WAIT behind either, which would keep some
    listeners from binding the port.
    """
    sockname = transport.get_extra_info("sockname")
    if sockname is None or sockname != transport.get_extra_info("peername"):
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
    transport.abort()  # type: ignore[attr-defined]
    return True


def _format_addr(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def outbound_local_addr(source_host: str | None) -> tuple[str, int] | None:
    """The `local_addr` for outbound connections from `source_host`.

    None (the kernel chooses) for no host or a wildcard one, which names
    no single address to start from.
    """
    if source_host is None or source_host in _WILDCARD_HOSTS:
        return None
    return (source_host, 0)


_WILDCARD_HOSTS = frozenset({"", "*", "0.0.0.0", "::", "::*"})


def _normalized(members: dict[str, Address]) -> dict[str, Address]:
    # A config may hand over lists or a string port; a link is redialed only
    # when its address really changes, so compare like with like.
    return {name: (str(host), int(port)) for name, (host, port) in members.items()}


class _WarningLimiter:
    """Lets through at most one warning per key per WARNING_INTERVAL.

    A misbehaving peer can send thousands of bad frames a second; the log
    gets one line a second saying how many were suppressed since the last.
    """

    __slots__ = ("_last", "_suppressed")

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < WARNING_INTERVAL:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += f" ({suppressed} similar warnings suppressed)"
        log.warning(message)


class _Link:
    """Everything about the outbound side towards one member."""

    __slots__ = ("name", "addr", "transport", "task", "announced_up")

    def __init__(self, name: str, addr: Address) -> None:
        self.name = name
        self.addr = addr
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        # Whether the last notice logged for this member said "connected".
        self.announced_up = False


class _OutboundProtocol(asyncio.Protocol):
    """Our side of the connection we opened to a member; send-only."""

    __slots__ = ("link", "lost", "transport")

    def __init__(self, link: _Link, lost: asyncio.Future[None]) -> None:
        self.link = link
        self.lost = lost
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        # Members never answer on the connection we opened: ignore anything.
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        # Bookkeeping happens here rather than in the dialing task so that
        # connected() turns false and the loss is logged at the same moment.
        link = self.link
        if link.transport is not None and link.transport is self.transport:
            link.transport = None
            host, port = link.addr
            log.debug(f"Cluster bus connection to {link.name} at {host}:{port} closed")
            if link.announced_up:
                link.announced_up = False
                log.notice(f"Lost connection to peer {link.name} at {host}:{port}")
        if not self.lost.done():
            self.lost.set_result(None)


class _InboundProtocol(asyncio.Protocol):
    """A connection a member (or anyone) opened to our cluster port."""

    __slots__ = (
        "bus",
        "transport",
        "reader",
        "peer",
        "addr",
        "host",
        "hello_timer",
        "reserved",
        "large_timer",
    )

    def __init__(self, bus: PeerBus) -> None:
        self.bus = bus
        self.transport: asyncio.Transport | None = None
        # Until the HELLO is accepted, only a HELLO-sized frame of any type.
        self.reader = FrameReader(HELLO_MAX_FRAME)
        self.peer: str | None = None  # the member name, once its HELLO is accepted
        self.addr = "?"
        self.host = "?"  # the warning rate-limit key until the peer is known
        self.hello_timer: asyncio.TimerHandle | None = None
        # Bytes of the bus's large-frame budget held for the frame under way.
        self.reserved = 0
        self.large_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, not assert.
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.addr = _format_addr(peername)
        self.host = str(peername[0]) if isinstance(peername, tuple) else self.addr
        self.hello_timer = asyncio.get_running_loop().call_later(
            HELLO_TIMEOUT, self._hello_timed_out
        )
        _set_nodelay(transport)
        self.bus._inbound.add(self)
        log.debug(f"Accepted cluster bus connection from {self.addr}")

    def _hello_timed_out(self) -> None:
        self.hello_timer = None
        self._reject(
            f"Closing cluster bus connection from {self.addr}: "
            f"no HELLO within {HELLO_TIMEOUT:g} s"
        )

    def _large_frame_timed_out(self) -> None:
        self.large_timer = None
        self._reject(
            f"Closing cluster bus connection from peer {self.peer} at {self.addr}: "
            f"a frame of {self.reserved} bytes still incomplete after "
            f"{LARGE_FRAME_TIMEOUT:g} s"
        )

    def _warn(self, message: str) -> None:
        self.bus._warnings.warn(self.peer or self.host, message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        self.bus._inbound.discard(self)
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None
        who = self.peer or "unidentified peer"
        # After a rejection the leftover bytes are expected, not news.
        if self.reader.buffered and not self.bus._closing and self.transport:
            self._warn(
                f"Cluster bus connection from {who} at {self.addr} closed in the "
                f"middle of a frame ({self.reader.buffered} bytes discarded)",
            )
        log.debug(f"Cluster bus connection from {who} at {self.addr} closed")

    def _reject(self, message: str) -> None:
        """Count, warn and hang up: the stream cannot be trusted any further."""
        self.bus.bad_frames += 1
        self._warn(message)
        self.hang_up()

    def hang_up(self) -> None:
        """Drop the connection now; whatever it still delivers is ignored."""
        self._release()
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None
        if self.transport is not None:
            transport, self.transport = self.transport, None
            transport.abort()

    def _release(self) -> None:
        """Give back what this connection holds of the large-frame budget, and
        its place among its member's connections."""
        if self.reserved:
            self.bus._large_reserved -= self.reserved
            self.reserved = 0
        if self.large_timer is not None:
            self.large_timer.cancel()
            self.large_timer = None
        if self.peer is not None:
            same = self.bus._by_peer.get(self.peer)
            if same is not None and self in same:
                same.remove(self)
                if not same:
                    del self.bus._by_peer[self.peer]

    def _fits_budget(self) -> bool:
        """Hold the budget for a large frame under way, from its header on;
        False (and the connection closed) when it does not fit."""
        size = self.reader.partial_size
        if size <= SMALL_FRAME:
            size = 0
        if size == self.reserved:
            return True
        bus = self.bus
        if self.reserved:
            bus._large_reserved -= self.reserved
            self.reserved = 0
            if self.large_timer is not None:
                self.large_timer.cancel()
                self.large_timer = None
        if not size:
            return True
        if bus._large_reserved + size > bus.large_frame_budget:
            bus.large_frames_refused += 1
            self._reject(
                f"Closing cluster bus connection from peer {self.peer} at {self.addr}: "
                f"a frame of {size} bytes does not fit in what is left of the "
                f"{bus.large_frame_budget}-byte budget for large frames "
                f"({bus._large_reserved} held by other connections)"
            )
            return False
        bus._large_reserved += size
        self.reserved = size
        self.large_timer = asyncio.get_running_loop().call_later(
            LARGE_FRAME_TIMEOUT, self._large_frame_timed_out
        )
        return True

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return  # rejected already; bytes still in flight are ignored
        reader = self.reader
        try:
            if self.peer is None:
                # Only the HELLO under the handshake's tiny cap: what came
                # with it waits for the caps that hold once it is accepted.
                frames = reader.feed(data, 1)
                if not frames:
                    return
                if not self._accept_hello(frames[0]):
                    return
                reader.set_limits(MESSAGE_MAX_FRAME, FRAME_LIMITS)
                frames = reader.feed(b"")
            else:
                frames = reader.feed(data)
        except ProtocolError as exc:
            who = f"peer {self.peer}" if self.peer else "unidentified peer"
            self._reject(
                f"Closing cluster bus connection from {who} at {self.addr}: {exc}"
            )
            return
        if not self._fits_budget():
            return
        bus = self.bus
        for frame in frames:
            try:
                msg = decode_message(frame)
            except ProtocolError as exc:
                self._reject(
                    f"Closing cluster bus connection from peer {self.peer} at "
                    f"{self.addr}: {exc}"
                )
                return
            if msg.src != self.peer or msg.dst != bus.name:
                bus.bad_frames += 1
                self._warn(
                    f"Dropped a message from peer {self.peer} at {self.addr} "
                    f"addressed {msg.src!r} -> {msg.dst!r} (this node is {bus.name!r})",
                )
                continue
            bus.frames_received += 1
            try:
                bus.on_message(msg)
            except Exception as exc:  # noqa: BLE001 - a peer's message must not kill the connection loop
                self._warn(
                    f"Handling a message from peer {self.peer} failed: {exc!r}",
                )
            if self.transport is None or self.transport.is_closing():
                return  # on_message may have led to close()

    def _accept_hello(self, frame: bytes) -> bool:
        """Identify the connection from its first frame; False if it was closed."""
        bus = self.bus
        try:
            hello = decode_hello(frame)
        except ProtocolError as exc:
            self._reject(
                f"Closing cluster bus connection from {self.addr}: "
                f"first frame is not a valid HELLO ({exc})"
            )
            return False
        if hello.name == bus.name or hello.name not in bus._members:
            self._reject(
                f"Closing cluster bus connection from {self.addr}: "
                f"HELLO from unknown member {hello.name!r}"
            )
            return False
        if hello.cluster_id != bus.cluster_id:
            self._reject(
                f"Closing cluster bus connection from {hello.name} at {self.addr}: "
                f"cluster id {hello.cluster_id!r} differs from ours ({bus.cluster_id!r})"
            )
            return False
        try:
            host_port(hello.client_addr)
        except BadValue:
            self._reject(
                f"Closing cluster bus connection from {hello.name} at {self.addr}: "
                f"client address {hello.client_addr[:100]!r} is not host:port"
            )
            return False
        self.peer = hello.name
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None
        same = bus._by_peer.setdefault(hello.name, [])
        same.append(self)
        while len(same) > MAX_INBOUND_PER_PEER:
            oldest = same[0]
            log.verbose(
                f"Closing the oldest of {len(same)} cluster bus connections "
                f"from {hello.name} (at {oldest.addr})"
            )
            oldest.hang_up()
        bus._client_addrs[hello.name] = hello.client_addr
        log.debug(
            f"Peer {hello.name} at {self.addr} identified itself "
            f"(clients at {hello.client_addr})"
        )
        return True


class PeerBus:
    """Connections to every other member: send Raft messages, deliver theirs."""

    def __init__(
        self,
        name: str,
        client_addr: str,
        members: dict[str, Address],
        on_message: Callable[[Message], None],
        *,
        cluster_id: str = "",
        max_buffer: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
        source_host: str | None = None,
        large_frame_budget: int = LARGE_FRAME_BUDGET,
    ) -> None:
        self.name = name
        self.cluster_id = cluster_id
        self.on_message = on_message
        self.max_buffer = max_buffer
        self.large_frame_budget = large_frame_budget
        self.frames_sent = 0
        self.frames_received = 0
        self.frames_dropped = 0
        self.bad_frames = 0
        self.large_frames_refused = 0
        self._large_reserved = 0  # of large_frame_budget, by inbound connections
        self._by_peer: dict[str, list[_InboundProtocol]] = {}
        self._client_addr = client_addr
        self._members = _normalized(members)
        self._links: dict[str, _Link] = {}
        self._client_addrs: dict[str, str] = {}
        self._inbound: set[_InboundProtocol] = set()
        self._server: asyncio.Server | None = None
        self._hello = encode_hello(name, client_addr, cluster_id)
        if len(self._hello) - 4 > HELLO_MAX_FRAME:
            # Every member would refuse it: say so now, not as silence later.
            raise ValueError(
                f"node name, client address and cluster id take {len(self._hello)} "
                f"bytes on the cluster bus, over the {HELLO_MAX_FRAME} a HELLO may"
            )
        self._rng = rng if rng is not None else random.Random()
        self._local_addr = outbound_local_addr(source_host)
        self._warnings = _WarningLimiter()
        self._started = False
        self._closing = False

    # ---- lifecycle ----

    async def start(self, host: str, port: int) -> None:
        """Listen on the cluster port and start dialing the other members."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _InboundProtocol(self), host, port
        )
        self._started = True
        log.debug(f"Cluster bus of {self.name} listening on {host}:{port}")
        self._sync_links()

    async def close(self) -> None:
        """Stop listening, drop every connection and stop reconnecting."""
        self._closing = True
        tasks = []
        for link in self._links.values():
            tasks.extend(self._drop_link(link))
        self._links.clear()
        if self._server is not None:
            self._server.close()
        for inbound in list(self._inbound):
            inbound.hang_up()
        self._inbound.clear()
        self._by_peer.clear()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def set_members(self, members: dict[str, Address]) -> None:
        """Adopt a new membership: dial new members, drop removed ones."""
        self._members = _normalized(members)
        for name in list(self._client_addrs):
            if name not in self._members:
                del self._client_addrs[name]
        for inbound in list(self._inbound):
            if inbound.peer is not None and inbound.peer not in self._members:
                log.debug(f"Closing connection from removed member {inbound.peer}")
                inbound.hang_up()
        if self._started and not self._closing:
            self._sync_links()

    def _sync_links(self) -> None:
        for name, link in list(self._links.items()):
            if self._members.get(name) != link.addr:
                del self._links[name]
                self._drop_link(link)
                log.notice(
                    f"Peer {name} is no longer a member at {link.addr[0]}:{link.addr[1]}"
                )
        for name, addr in self._members.items():
            if name == self.name or name in self._links:
                continue
            link = _Link(name, addr)
            self._links[name] = link
            link.task = asyncio.get_running_loop().create_task(
                self._keep_connected(link), name=f"prez-peer-{self.name}->{name}"
            )

    def _drop_link(self, link: _Link) -> list[asyncio.Task[None]]:
        if link.transport is not None:
            link.transport.abort()
            link.transport = None
        if link.task is None:
            return []
        link.task.cancel()
        return [link.task]

    # ---- outbound ----

    async def _keep_connected(self, link: _Link) -> None:
        """Dial `link` forever, backing off after each failure or loss."""
        loop = asyncio.get_running_loop()
        host, port = link.addr
        delay = BACKOFF_START
        while True:
            lost: asyncio.Future[None] = loop.create_future()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    transport, _ = await loop.create_connection(
                        partial(_OutboundProtocol, link, lost),
                        host,
                        port,
                        local_addr=self._local_addr,
                    )
            except (OSError, TimeoutError) as exc:
                log.debug(
                    f"Connecting to peer {link.name} at {host}:{port} failed: {exc!r}"
                )
            else:
                connected_at = loop.time()
                await self._use_connection(link, transport, lost)
                # A connection that stayed up a while earns a fresh, short backoff;
                # one the peer drops at once (it refuses our HELLO) keeps backing off.
                if loop.time() - connected_at >= BACKOFF_CAP:
                    delay = BACKOFF_START
            await asyncio.sleep(delay * (0.5 + 0.5 * self._rng.random()))
            delay = min(delay * 2, BACKOFF_CAP)

    async def _use_connection(
        self, link: _Link, transport: asyncio.Transport, lost: asyncio.Future[None]
    ) -> None:
        """Say HELLO and make the connection `link`'s until it is lost."""
        host, port = link.addr
        if lost.done():
            # It closed before the dialing task got to run: nothing to announce.
            transport.abort()
            log.debug(
                f"Cluster bus connection to {link.name} at {host}:{port} "
                "closed as soon as it opened"
            )
            return
        if reset_if_connected_to_itself(transport):
            log.debug(
                f"Connecting to peer {link.name} at {host}:{port} reached this "
                "socket itself; dropped"
            )
            return
        try:
            _set_nodelay(transport)
            transport.write(self._hello)
            link.transport = transport
            if not link.announced_up:
                link.announced_up = True
                log.notice(f"Connected to peer {link.name} at {host}:{port}")
            log.debug(f"Cluster bus connection to {link.name} at {host}:{port} up")
            await lost
        finally:
            if link.transport is transport:
                link.transport = None  # cancelled: close() or a removal
            transport.abort()

    def send(self, messages: list[Message]) -> None:
        """Write a Ready's messages, one write per destination; never blocks.

        Messages for an unknown, disconnected or backed-up peer are dropped
        and counted in frames_dropped.
        """
        by_dst: dict[str, list[Message]] = {}
        for msg in messages:
            group = by_dst.get(msg.dst)
            if group is None:
                by_dst[msg.dst] = [msg]
            else:
                group.append(msg)
        links = self._links
        for dst, group in by_dst.items():
            link = links.get(dst)
            transport = link.transport if link is not None else None
            if transport is None or transport.is_closing():
                self.frames_dropped += len(group)
                continue
            if len(group) == 1:
                payload = encode_message(group[0])
            else:
                payload = b"".join([encode_message(m) for m in group])
            backlog = transport.get_write_buffer_size()
            if backlog and backlog + len(payload) > self.max_buffer:
                # A follower that does not read must not grow our memory
                # without bound: drop until its backlog drains. (Into an
                # empty buffer anything goes, or an oversize batch never would.)
                self.frames_dropped += len(group)
                self._warnings.warn(
                    dst,
                    f"Peer {dst} is not keeping up: dropping messages while "
                    f"{backlog} bytes wait to be sent",
                )
                continue
            transport.write(payload)
            self.frames_sent += len(group)

    # ---- queries ----

    def client_addr(self, name: str) -> str | None:
        """The "host:port" where member `name` serves clients, once known."""
        if name == self.name:
            return self._client_addr
        return self._client_addrs.get(name)

    def connected(self, name: str) -> bool:
        """Whether our outbound connection to `name` is up."""
        link = self._links.get(name)
        return (
            link is not None
            and link.transport is not None
            and not link.transport.is_closing()
        )
