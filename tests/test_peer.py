"""The cluster bus: several PeerBus instances on 127.0.0.1 in one event loop.

Every test runs under both the asyncio and the uvloop event loop, with a hard
timeout, and fails if the loop reported an unhandled exception or a task was
left running after the buses closed. Hostile peers are raw sockets writing
hand-made bytes to a bus's cluster port.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, cast

import pytest
import uvloop

from prez._core.wire import encode_hello, encode_message
from prez.raft.types import MAX_TERM, Entry, EntryKind, Message, MessageType
from prez.server import peer
from prez.server.logging import DEBUG, log
from prez.server.peer import PeerBus
from prez.testing.procs import free_ports

HOST = "127.0.0.1"
TEST_TIMEOUT = 30.0
WAIT = 10.0  # deadline for any one condition

LOOPS = [
    pytest.param(None, id="asyncio"),
    pytest.param(uvloop.new_event_loop, id="uvloop"),
]

Runner = Callable[[Callable[[], Awaitable[None]]], None]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    """Run an async test body on a fresh loop; fail on leaks and loop errors."""
    loop_factory = request.param

    def runner(body: Callable[[], Awaitable[None]]) -> None:
        errors: list[dict[str, Any]] = []

        async def main() -> None:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _loop, context: errors.append(context))
            async with asyncio.timeout(TEST_TIMEOUT):
                await body()
            leftover = asyncio.all_tasks() - {asyncio.current_task()}
            assert not leftover, f"tasks left running: {leftover}"

        with asyncio.Runner(loop_factory=loop_factory) as async_runner:
            async_runner.run(main())
        assert not errors, f"the event loop reported errors: {errors}"

    return runner


@pytest.fixture
def log_text() -> Iterator[Callable[[], str]]:
    """Capture the server log at debug level; call the fixture for its text."""
    stream = io.StringIO()
    saved = log.stream, log.level
    log.stream, log.level = stream, DEBUG
    try:
        yield stream.getvalue
    finally:
        log.stream, log.level = saved


async def wait_for(
    condition: Callable[[], object], what: str, within: float = WAIT
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.005)


class Node:
    """A bus plus the messages it delivered, in arrival order."""

    def __init__(
        self,
        name: str,
        members: dict[str, tuple[str, int]],
        *,
        cluster_id: str = "",
        max_buffer: int = 64 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.port = members[name][1]
        # Only ever reported, never dialed: any distinct "host:port" will do.
        self.client = f"{HOST}:{6000 + sum(map(ord, name))}"
        self.inbox: list[Message] = []
        self.bus = PeerBus(
            name,
            self.client,
            members,
            self.inbox.append,
            cluster_id=cluster_id,
            max_buffer=max_buffer,
            rng=random.Random(name),
        )

    async def start(self) -> Node:
        await self.bus.start(HOST, self.port)
        return self

    def from_(self, src: str) -> list[Message]:
        return [m for m in self.inbox if m.src == src]


def make_members(*names: str) -> dict[str, tuple[str, int]]:
    ports = free_ports(len(names))
    return {name: (HOST, port) for name, port in zip(names, ports, strict=True)}


async def start_all(members: dict[str, tuple[str, int]], **kwargs: Any) -> list[Node]:
    nodes = [Node(name, members, **kwargs) for name in members]
    for node in nodes:
        await node.start()
    return nodes


async def wait_meshed(nodes: list[Node]) -> None:
    """Every bus has its outbound link up and every HELLO has been accepted."""
    await wait_for(
        lambda: all(
            a.bus.connected(b.name) and a.bus.client_addr(b.name) == b.client
            for a in nodes
            for b in nodes
            if a is not b
        ),
        "every bus connected to every other",
    )


async def close_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.bus.close()


def random_message(rng: random.Random, src: str, dst: str, seq: int) -> Message:
    """A well-formed message of any type (one decode_message takes); `seq`
    in `commit` makes each one recognisable."""
    kind = rng.choice(list(MessageType))
    term = rng.randrange(1, MAX_TERM + 1)
    index = rng.randrange(1, 1 << 40)
    log_term = rng.randrange(1, term + 1)
    entries = []
    if kind == MessageType.APPEND:
        terms = sorted(
            rng.randrange(log_term, term + 1) for _ in range(rng.randrange(80))
        )
        entries = [
            Entry(
                index + 1 + i,
                entry_term,
                rng.randrange(2),
                rng.randbytes(rng.randrange(300)),
            )
            for i, entry_term in enumerate(terms)
        ]
    return Message(
        type=kind,
        term=term,
        src=src,
        dst=dst,
        index=index,
        log_term=log_term,
        commit=seq,
        reject=rng.random() < 0.5,
        reject_hint=rng.randrange(1 << 20),
        hint_term=rng.randrange(1 << 20),
        entries=entries,
        context=rng.randbytes(rng.randrange(20)),
    )


def marker(src: str, dst: str, seq: int) -> Message:
    return Message(MessageType.HEARTBEAT, 7, src, dst, commit=seq)


async def exchange(nodes: list[Node], rounds: int, seed: int) -> None:
    """Every bus sends batches to every other; each receives exactly them, in order."""
    rng = random.Random(seed)
    sent: dict[tuple[str, str], list[Message]] = {}
    before = {n.name: list(n.inbox) for n in nodes}
    seq = 0
    for _ in range(rounds):
        for sender in nodes:
            batch = []
            for _ in range(rng.randrange(1, 6)):
                dst = rng.choice([n.name for n in nodes if n is not sender])
                seq += 1
                msg = random_message(rng, sender.name, dst, seq)
                batch.append(msg)
                sent.setdefault((sender.name, dst), []).append(msg)
            sender.bus.send(batch)
        # Yield now and then so that sending and receiving interleave.
        await asyncio.sleep(0)
    total = {
        n.name: sum(len(v) for (_, d), v in sent.items() if d == n.name) for n in nodes
    }
    await wait_for(
        lambda: all(len(n.inbox) - len(before[n.name]) >= total[n.name] for n in nodes),
        "every message to arrive",
    )
    for node in nodes:
        new = node.inbox[len(before[node.name]) :]
        assert len(new) == total[node.name]
        for other in nodes:
            if other is not node:
                got = [m for m in new if m.src == other.name]
                assert got == sent.get((other.name, node.name), [])


# ---- exchanging messages ----


def test_three_buses_exchange_every_message_in_order(run: Runner) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        try:
            await wait_meshed(nodes)
            await exchange(nodes, rounds=300, seed=1)
            for node in nodes:
                assert node.bus.frames_dropped == 0
                assert node.bus.bad_frames == 0
                assert node.bus.frames_received == len(node.inbox)
            assert sum(n.bus.frames_sent for n in nodes) == sum(
                n.bus.frames_received for n in nodes
            )
        finally:
            await close_all(nodes)

    run(body)


def test_one_batch_to_one_peer_is_one_write(run: Runner) -> None:
    """A Ready's messages for a peer go out in a single transport.write."""

    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        a, b, c = nodes
        try:
            await wait_meshed(nodes)
            writes: dict[str, int] = {}
            for name in ("b", "c"):
                transport = a.bus._links[name].transport
                assert transport is not None
                writes[name] = 0
                original = transport.write

                def counting_write(
                    data: Any, name: str = name, original: Any = original
                ) -> None:
                    writes[name] += 1
                    original(data)

                # uvloop transports are C types: wrap through a proxy link object.
                a.bus._links[name].transport = cast(
                    Any, _WriteSpy(transport, counting_write)
                )
            batch = [marker("a", "b", i) for i in range(5)] + [
                marker("a", "c", i) for i in range(3)
            ]
            a.bus.send(batch)
            await wait_for(
                lambda: len(b.inbox) == 5 and len(c.inbox) == 3, "the batch to arrive"
            )
            assert writes == {"b": 1, "c": 1}
            assert [m.commit for m in b.inbox] == list(range(5))
            assert [m.commit for m in c.inbox] == list(range(3))
        finally:
            await close_all(nodes)

    run(body)


class _WriteSpy:
    """Stands in for a transport, counting writes and passing everything on."""

    def __init__(self, transport: Any, write: Callable[[Any], None]) -> None:
        self._transport = transport
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def test_client_addresses_are_learned_from_hello(run: Runner) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        try:
            for node in nodes:
                assert node.bus.client_addr(node.name) == node.client
            await wait_for(
                lambda: all(
                    x.bus.client_addr(y.name) == y.client for x in nodes for y in nodes
                ),
                "every client address to be learned",
            )
            assert nodes[0].bus.client_addr("nobody") is None
        finally:
            await close_all(nodes)

    run(body)


# ---- connecting and reconnecting ----


def test_a_late_bus_gets_connected(run: Runner, log_text: Callable[[], str]) -> None:
    async def body() -> None:
        members = make_members("a", "b", "c")
        a, b = await start_all({k: members[k] for k in ("a", "b")})
        a.bus.set_members(members)
        b.bus.set_members(members)
        c = Node("c", members)
        nodes = [a, b, c]
        try:
            await wait_meshed([a, b])
            # Let a few dials to c be refused before c starts listening.
            await wait_for(
                lambda: log_text().count("Connecting to peer c at") >= 4,
                "repeated failed dials to c",
            )
            assert not a.bus.connected("c")
            await c.start()
            await wait_meshed(nodes)
            await exchange(nodes, rounds=20, seed=2)
            assert "Connected to peer c at" in log_text()
        finally:
            await close_all(nodes)

    run(body)


def port_is_free(port: int) -> bool:
    """Whether a listener could bind `port` now (with SO_REUSEADDR, as
    asyncio's servers do: a closed connection's TIME_WAIT does not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def test_a_dial_that_reaches_itself_lets_the_port_go(
    run: Runner, log_text: Callable[[], str]
) -> None:
    """TCP connects a socket to itself when its ephemeral port is the port it
    dials. The bus must drop such a connection at once: it would otherwise
    hold the port the member needs (seen in CI as "address in use")."""

    async def body() -> None:
        members = make_members("a", "b")
        a = Node("a", members)
        # Dial b from b's own port, as the kernel happened to choose in CI.
        a.bus._local_addr = members["b"]
        b = Node("b", members)
        try:
            await a.start()
            await wait_for(
                lambda: "reached this socket itself" in log_text(),
                "a dial to b that reaches itself",
            )
            assert not a.bus.connected("b")
            a.bus._local_addr = None
            await wait_for(lambda: port_is_free(b.port), "the bus to let b's port go")
            await b.start()
            await wait_meshed([a, b])
        finally:
            await close_all([a, b])

    run(body)


def test_a_restarted_bus_gets_reconnected(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        members = make_members("a", "b", "c")
        nodes = await start_all(members)
        a, b, c = nodes
        try:
            await wait_meshed(nodes)
            await b.bus.close()
            await wait_for(
                lambda: not a.bus.connected("b") and not c.bus.connected("b"),
                "a and c to notice that b is gone",
            )
            await wait_for(
                lambda: log_text().count("Lost connection to peer b at") == 2,
                "a and c to log the loss",
            )
            a.bus.send([marker("a", "b", 1)])
            assert a.bus.frames_dropped == 1
            nodes[1] = b = await Node("b", members).start()
            await wait_meshed(nodes)
            await exchange(nodes, rounds=20, seed=3)
        finally:
            await close_all(nodes)

    run(body)


def test_reconnect_backs_off_exponentially_with_jitter(run: Runner) -> None:
    """A member that accepts and hangs up at once is redialed ever more slowly."""

    async def body() -> None:
        attempts: list[float] = []

        class HangUp(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                attempts.append(time.monotonic())
                transport.close()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(HangUp, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        members = make_members("a")
        members["rude"] = (HOST, port)
        (a,) = await start_all({"a": members["a"]})
        a.bus.set_members(members)
        try:
            await wait_for(lambda: len(attempts) >= 7, "seven dials", within=15)
            gaps = [t1 - t0 for t0, t1 in zip(attempts, attempts[1:], strict=False)]
            # Sleep before redial k is in [0.5, 1] x min(50 ms x 2^k, 1 s).
            for k, gap in enumerate(gaps[:6]):
                floor = 0.5 * min(peer.BACKOFF_START * 2**k, peer.BACKOFF_CAP)
                assert gap >= floor * 0.95, (k, gaps)
                # Upper bound is loose: the machine may be busy.
                assert gap <= peer.BACKOFF_CAP + 1.0, (k, gaps)
            assert gaps[4] > gaps[0]
            assert a.bus.frames_dropped == 0
        finally:
            await a.bus.close()
            server.close()
            await server.wait_closed()

    run(body)


def test_set_members_connects_new_and_drops_removed(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        members = make_members("a", "b", "c", "d")
        three = {k: members[k] for k in "abc"}
        a, b, c = await start_all(three)
        d = Node("d", members)
        nodes = [a, b, c, d]
        try:
            await wait_meshed([a, b, c])
            await d.start()
            for node in (a, b):
                node.bus.set_members({k: members[k] for k in "abd"})
            d.bus.set_members({k: members[k] for k in "abd"})
            await wait_meshed([a, b, d])
            await wait_for(
                lambda: not a.bus.connected("c") and not b.bus.connected("c"),
                "a and b to drop c",
            )
            assert a.bus.client_addr("c") is None
            # c still dials a but is now refused as an unknown member.
            await wait_for(
                lambda: "HELLO from unknown member 'c'" in log_text(),
                "a to refuse c",
            )
            a.bus.send([marker("a", "c", 1)])
            assert a.bus.frames_dropped == 1
            await exchange([a, b, d], rounds=20, seed=4)
        finally:
            await close_all(nodes)

    run(body)


def test_mismatched_cluster_id_is_refused(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        members = make_members("a", "b")
        a = await Node("a", members, cluster_id="blue").start()
        b = await Node("b", members, cluster_id="green").start()
        try:
            await wait_for(
                lambda: log_text().count("differs from ours") >= 2,
                "both sides to refuse the other's HELLO",
            )
            assert a.bus.client_addr("b") is None
            assert b.bus.client_addr("a") is None
            assert a.inbox == [] and b.inbox == []
        finally:
            await close_all([a, b])

    run(body)


# ---- hostile input on the cluster port ----


def frame_of(frame_type: int, body: bytes) -> bytes:
    return struct.pack("<IBB", len(body) + 2, 1, frame_type) + body


def truncated_message(src: str, dst: str) -> bytes:
    """A frame whose length is right but whose message body is cut short."""
    whole = encode_message(
        Message(MessageType.APPEND, 3, src, dst, entries=[Entry(1, 1, 0, b"x" * 50)])
    )
    body = whole[6:-20]
    return frame_of(whole[5], body)


class RawPeer:
    """A raw TCP connection to a bus's cluster port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        host, port = writer.get_extra_info("sockname")[:2]
        self.addr = f"{host}:{port}"

    @classmethod
    async def open(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_by_bus(self) -> bool:
        """Whether the bus hangs up on us (EOF or reset) within the deadline."""
        try:
            async with asyncio.timeout(WAIT):
                return await self.reader.read(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await self.writer.wait_closed()


def hello(name: str) -> bytes:
    return encode_hello(name, f"{HOST}:1", "")


# (name, bytes after connecting, what the log must say)
CLOSING_INPUTS = [
    ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "over the limit"),
    ("short-length", b"\x01\x00\x00\x00\x01", "too short"),
    (
        "oversized-length",
        hello("b") + b"\xff\xff\xff\x7f" + b"\x00" * 64,
        "over the limit",
    ),
    ("unknown-name", hello("mallory"), "HELLO from unknown member 'mallory'"),
    ("own-name", hello("a"), "HELLO from unknown member 'a'"),
    ("message-before-hello", encode_message(marker("b", "a", 1)), "not a valid HELLO"),
    ("truncated-hello", frame_of(0x80, b"\x05\x00ab"), "not a valid HELLO"),
    (
        "bad-client-addr",
        encode_hello("b", "no port here", ""),
        "client address 'no port here' is not host:port",
    ),
    # Refused on the header alone: nothing of a large frame is buffered
    # before the HELLO (issue 11: 64 MiB frames from strangers).
    (
        "large-frame-before-hello",
        struct.pack("<IBB", 64 * 1024 * 1024, 1, int(MessageType.APPEND))
        + b"\x00" * 65536,
        f"over the limit of {peer.HELLO_MAX_FRAME}",
    ),
    (
        "large-hello",
        frame_of(0x80, b"\x00" * peer.HELLO_MAX_FRAME),
        f"over the limit of {peer.HELLO_MAX_FRAME}",
    ),
]


@pytest.mark.parametrize(
    ("data", "logged"),
    [pytest.param(data, logged, id=case) for case, data, logged in CLOSING_INPUTS],
)
def test_hostile_stream_is_closed_and_logged(
    run: Runner, log_text: Callable[[], str], data: bytes, logged: str
) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            await raw.send(data)
            assert await raw.closed_by_bus()
            await raw.close()
            lines = [line for line in log_text().splitlines() if logged in line]
            assert lines, log_text()
            assert " # " in lines[0]  # a warning
            assert raw.addr in lines[0]  # naming the address
            assert a.bus.bad_frames == 1
            assert a.bus.frames_received == 0
            await exchange(nodes, rounds=10, seed=5)
        finally:
            await close_all(nodes)

    run(body)


# (name, one frame sent after a valid HELLO as "b", what the log must say):
# well-formed messages naming the wrong nodes are dropped, the connection stays.
DROPPED_FRAMES = [
    ("forged-src", encode_message(marker("c", "a", 99)), "addressed 'c' -> 'a'"),
    ("wrong-dst", encode_message(marker("b", "c", 99)), "addressed 'b' -> 'c'"),
]


@pytest.mark.parametrize(
    ("frame", "logged"),
    [pytest.param(frame, logged, id=case) for case, frame, logged in DROPPED_FRAMES],
)
def test_misaddressed_message_is_dropped_and_the_connection_stays(
    run: Runner, log_text: Callable[[], str], frame: bytes, logged: str
) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            await raw.send(hello("b") + frame)
            await wait_for(lambda: a.bus.bad_frames == 1, "the frame to be refused")
            # The same connection still delivers good messages from "b".
            await raw.send(encode_message(marker("b", "a", 1234)))
            await wait_for(lambda: a.inbox, "the good message after it")
            assert a.inbox == [marker("b", "a", 1234)]
            lines = [line for line in log_text().splitlines() if logged in line]
            assert lines and " # " in lines[0], log_text()
            assert "peer b" in lines[0]
            await raw.close()
            await exchange(nodes, rounds=10, seed=6)
            assert all(m.commit != 99 for m in a.inbox)
        finally:
            await close_all(nodes)

    run(body)


def unchecked_frame(msg: Message) -> bytes:
    """`msg` as the compiled encoder writes it (any u64 goes)."""
    return encode_message(msg)


# (name, one frame sent after a valid HELLO as "b", what the log must say):
# frames that do not decode, messages no correct node sends (issue 11) and
# frames over their type's cap close the connection; nothing reaches Raft.
REFUSED_FRAMES = [
    ("truncated-message", truncated_message("b", "a"), "truncated frame"),
    ("unknown-type", frame_of(42, b"\x00" * 60), "unknown message type"),
    (
        "bad-version",
        encode_message(marker("b", "a", 99))[:4]
        + b"\x09"
        + encode_message(marker("b", "a", 99))[5:],
        "unsupported version",
    ),
    ("second-hello", hello("b"), "unknown message type"),
    (
        "term-u64-max",
        unchecked_frame(Message(MessageType.HEARTBEAT, 2**64 - 1, "b", "a", commit=99)),
        "term 18446744073709551615 over the limit",
    ),
    (
        "commit-u64-max",
        unchecked_frame(
            Message(
                MessageType.APPEND, 3, "b", "a", index=1, log_term=1, commit=2**64 - 1
            )
        ),
        "commit 18446744073709551615 over the limit",
    ),
    (
        "config-does-not-parse",
        unchecked_frame(
            Message(
                MessageType.APPEND,
                3,
                "b",
                "a",
                index=0,
                log_term=0,
                commit=99,
                entries=[Entry(1, 3, EntryKind.CONFIG, b"\x00garbage")],
            )
        ),
        "CONFIG entry 1 does not parse",
    ),
    (
        "entries-out-of-sequence",
        unchecked_frame(
            Message(
                MessageType.APPEND,
                3,
                "b",
                "a",
                index=5,
                log_term=3,
                commit=99,
                entries=[Entry(6, 3), Entry(2, 3), Entry(8, 3)],
            )
        ),
        "entry index 2 where 7 belongs",
    ),
    (
        "snapshot-offer-of-nothing",
        unchecked_frame(Message(MessageType.SNAPSHOT, 3, "b", "a", commit=99)),
        "names no snapshot",
    ),
    (
        "oversized-heartbeat-header",
        struct.pack("<IBB", peer.MESSAGE_MAX_FRAME + 1, 1, int(MessageType.HEARTBEAT)),
        f"over the limit of {peer.MESSAGE_MAX_FRAME} for type 8",
    ),
    (
        "oversized-append-header",
        struct.pack("<IBB", 0xFFFFFFF0, 1, int(MessageType.APPEND)),
        "over the limit of 67108864",
    ),
]


@pytest.mark.parametrize(
    ("frame", "logged"),
    [pytest.param(frame, logged, id=case) for case, frame, logged in REFUSED_FRAMES],
)
def test_bad_frame_closes_the_connection_and_reaches_nothing(
    run: Runner, log_text: Callable[[], str], frame: bytes, logged: str
) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            await raw.send(hello("b") + frame + encode_message(marker("b", "a", 99)))
            assert await raw.closed_by_bus()
            await raw.close()
            assert a.bus.bad_frames == 1
            lines = [line for line in log_text().splitlines() if logged in line]
            assert lines and " # " in lines[0], log_text()
            assert "peer b" in lines[0]
            # The real "b" kept its own connection, and a new one works too.
            assert a.bus.connected("b") and nodes[1].bus.connected("a")
            again = await RawPeer.open(a.port)
            await again.send(hello("b") + encode_message(marker("b", "a", 1234)))
            await wait_for(lambda: a.inbox, "a good message on a new connection")
            await again.close()
            await exchange(nodes, rounds=10, seed=6)
            assert all(m.commit != 99 for m in a.inbox)
        finally:
            await close_all(nodes)

    run(body)


def test_silent_connection_is_closed_after_the_hello_timeout(
    run: Runner, log_text: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peer, "HELLO_TIMEOUT", 0.2)

    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            silent = await RawPeer.open(a.port)
            assert await silent.closed_by_bus()
            await silent.close()
            assert f"from {silent.addr}: no HELLO within 0.2 s" in log_text()
            # The real peer said HELLO long ago and is still connected.
            assert a.bus.connected("b") and nodes[1].bus.connected("a")
            await exchange(nodes, rounds=10, seed=8)
        finally:
            await close_all(nodes)

    run(body)


def test_connection_closed_mid_frame_is_logged(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            whole = encode_message(marker("b", "a", 5))
            await raw.send(hello("b") + whole[:-3])
            await raw.close()
            await wait_for(
                lambda: "closed in the middle of a frame" in log_text(),
                "the partial frame to be reported",
            )
            assert a.inbox == []
            await exchange(nodes, rounds=10, seed=7)
        finally:
            await close_all(nodes)

    run(body)


def test_bad_frame_warnings_are_rate_limited(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            forged = encode_message(marker("c", "a", 99))
            await raw.send(hello("b") + forged * 500)
            await wait_for(lambda: a.bus.bad_frames == 500, "all 500 to be refused")
            warnings = [
                line for line in log_text().splitlines() if "addressed 'c'" in line
            ]
            # One line per second at most: the burst takes far less than 2 s.
            assert 1 <= len(warnings) <= 2, warnings
            await raw.close()
        finally:
            await close_all(nodes)

    run(body)


def test_on_message_failure_does_not_break_the_connection(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        members = make_members("a", "b")
        received: list[Message] = []

        def fussy(msg: Message) -> None:
            if msg.commit == 13:
                raise RuntimeError("unlucky")
            received.append(msg)

        a = Node("a", members)
        a.bus.on_message = fussy
        await a.start()
        b = await Node("b", members).start()
        try:
            await wait_meshed([a, b])
            b.bus.send([marker("b", "a", i) for i in (12, 13, 14)])
            await wait_for(lambda: len(received) == 2, "the other two messages")
            assert [m.commit for m in received] == [12, 14]
            assert "unlucky" in log_text()
            assert a.bus.connected("b") and b.bus.connected("a")
        finally:
            await close_all([a, b])

    run(body)


# ---- dropping on send ----


def test_send_to_unknown_or_disconnected_peer_counts_drops(run: Runner) -> None:
    async def body() -> None:
        members = make_members("a", "b", "down")
        a, b = await start_all({k: members[k] for k in ("a", "b")})
        a.bus.set_members(members)
        try:
            await wait_meshed([a, b])
            a.bus.send([marker("a", "nobody", 1)])
            a.bus.send([marker("a", "down", 2), marker("a", "down", 3)])
            a.bus.send([marker("a", "a", 4)])
            assert a.bus.frames_dropped == 4
            assert a.bus.frames_sent == 0
            a.bus.send(
                [marker("a", "b", 5), marker("a", "down", 6), marker("a", "b", 7)]
            )
            assert a.bus.frames_dropped == 5
            assert a.bus.frames_sent == 2
            await wait_for(lambda: len(b.inbox) == 2, "the two messages for b")
            assert [m.commit for m in b.inbox] == [5, 7]
            a.bus.send([])
            assert (a.bus.frames_sent, a.bus.frames_dropped) == (2, 5)
        finally:
            await close_all([a, b])
        # A closed bus drops everything and raises nothing.
        a.bus.send([marker("a", "b", 8)])
        assert a.bus.frames_dropped == 6

    run(body)


def test_slow_peer_backlog_is_bounded_then_drains(
    run: Runner, log_text: Callable[[], str]
) -> None:
    async def body() -> None:
        received = 0
        slow_transport: list[Any] = []

        class Sluggish(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                cast(Any, transport).pause_reading()
                slow_transport.append(transport)

            def data_received(self, data: bytes) -> None:
                nonlocal received
                received += len(data)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Sluggish, HOST, 0)
        members = make_members("a")
        members["slow"] = (HOST, server.sockets[0].getsockname()[1])
        max_buffer = 1 << 20
        a = await Node("a", members, max_buffer=max_buffer).start()
        try:
            await wait_for(lambda: a.bus.connected("slow"), "a to reach slow")
            await wait_for(lambda: slow_transport, "slow to accept")
            transport = a.bus._links["slow"].transport
            assert transport is not None
            payload = b"p" * 65536
            batch_size = 4 * (len(payload) + 64)
            seq = 0
            for _ in range(2000):  # at most ~500 MiB, far past any socket buffer
                batch = []
                for _ in range(4):
                    seq += 1
                    batch.append(
                        Message(
                            MessageType.APPEND,
                            1,
                            "a",
                            "slow",
                            commit=seq,
                            entries=[Entry(seq, 1, 0, payload)],
                        )
                    )
                a.bus.send(batch)
                assert transport.get_write_buffer_size() <= max_buffer + batch_size
                if a.bus.frames_dropped:
                    break
            assert a.bus.frames_dropped == 4
            assert "slow is not keeping up" in log_text()
            sent = a.bus.frames_sent
            slow_transport[0].resume_reading()
            await wait_for(
                lambda: transport.get_write_buffer_size() == 0, "the backlog to drain"
            )
            a.bus.send([marker("a", "slow", 0)])
            assert a.bus.frames_sent == sent + 1
            await wait_for(
                lambda: received > sent * len(payload),
                "slow to read everything",
            )
        finally:
            await a.bus.close()
            server.close()
            for t in slow_transport:
                t.abort()
            await server.wait_closed()

    run(body)


def test_listening_on_a_taken_port_raises(run: Runner) -> None:
    async def body() -> None:
        members = make_members("a", "b")
        a = await Node("a", members).start()
        clash = PeerBus("b", "x:1", members, lambda m: None)
        try:
            with pytest.raises(OSError):
                await clash.start(HOST, a.port)
        finally:
            await clash.close()
            await a.bus.close()

    run(body)


# ---- memory per connection (issue 11 part 4) ----


def append_of(size: int, src: str = "b", dst: str = "a", commit: int = 1) -> bytes:
    """A well-formed APPEND frame of about `size` bytes (one entry)."""
    msg = Message(
        MessageType.APPEND,
        3,
        src,
        dst,
        index=0,
        log_term=0,
        commit=commit,
        entries=[Entry(1, 3, 0, b"v" * size)],
    )
    return encode_message(msg)


def test_hello_and_a_big_frame_in_one_write_are_both_taken(run: Runner) -> None:
    """The tiny pre-HELLO cap holds for the HELLO only, not for what arrives
    in the same read after it."""

    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            big = append_of(3 * 1024 * 1024)
            await raw.send(hello("b") + big + encode_message(marker("b", "a", 7)))
            await wait_for(lambda: len(a.inbox) == 2, "both messages")
            assert a.inbox[0] == Message(
                MessageType.APPEND,
                3,
                "b",
                "a",
                index=0,
                log_term=0,
                commit=1,
                entries=[Entry(1, 3, 0, b"v" * (3 * 1024 * 1024))],
            )
            assert a.bus.bad_frames == 0 and a.bus._large_reserved == 0
            await raw.close()
        finally:
            await close_all(nodes)

    run(body)


def test_large_frames_share_one_budget(
    run: Runner, log_text: Callable[[], str]
) -> None:
    """Only one large frame at a time fits the budget: a second connection
    announcing one is closed at its header, small frames keep flowing, and
    the budget is free again once the first completes or goes."""

    async def body() -> None:
        nodes = await start_all(make_members("a", "b", "c"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            a.bus.large_frame_budget = 5 * 1024 * 1024
            first = append_of(4 * 1024 * 1024, commit=11)
            holder = await RawPeer.open(a.port)
            await holder.send(hello("b") + first[: len(first) // 2])
            await wait_for(
                lambda: a.bus._large_reserved == len(first), "the reservation"
            )
            second = await RawPeer.open(a.port)
            await second.send(hello("c") + append_of(2 * 1024 * 1024, src="c")[:100])
            assert await second.closed_by_bus()
            await second.close()
            assert a.bus.large_frames_refused == 1
            assert (
                "does not fit in what is left of the 5242880-byte budget" in log_text()
            )
            # Small frames from everyone still go through meanwhile.
            await exchange(nodes, rounds=5, seed=3)
            await holder.send(first[len(first) // 2 :])
            await wait_for(
                lambda: a.inbox and a.inbox[-1].commit == 11, "the large frame"
            )
            assert a.bus._large_reserved == 0
            # Again, and this time the holder gives up half-way.
            await holder.send(first[:1000])
            await wait_for(
                lambda: a.bus._large_reserved == len(first), "a new reservation"
            )
            await holder.close()
            await wait_for(lambda: a.bus._large_reserved == 0, "the budget back")
        finally:
            await close_all(nodes)

    run(body)


def test_a_large_frame_must_complete_in_time(
    run: Runner, log_text: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peer, "LARGE_FRAME_TIMEOUT", 0.2)

    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a = nodes[0]
        try:
            await wait_meshed(nodes)
            raw = await RawPeer.open(a.port)
            await raw.send(hello("b") + append_of(3 * 1024 * 1024)[:4096])
            assert await raw.closed_by_bus()
            await raw.close()
            assert "still incomplete after 0.2 s" in log_text()
            assert a.bus._large_reserved == 0
        finally:
            await close_all(nodes)

    run(body)


def test_connections_naming_one_member_are_capped(run: Runner) -> None:
    """However many connections say HELLO as "b", at most
    MAX_INBOUND_PER_PEER stay open (the oldest go), and the real "b" gets
    back in and delivers."""

    async def body() -> None:
        nodes = await start_all(make_members("a", "b"))
        a, b = nodes
        try:
            await wait_meshed(nodes)
            raws = []
            for _ in range(peer.MAX_INBOUND_PER_PEER + 2):
                raw = await RawPeer.open(a.port)
                await raw.send(hello("b"))
                raws.append(raw)
            await wait_for(
                lambda: (
                    sum(1 for c in a.bus._inbound if c.peer == "b")
                    <= peer.MAX_INBOUND_PER_PEER
                ),
                "the oldest connections to be closed",
            )
            assert await raws[0].closed_by_bus()
            for raw in raws:
                await raw.close()
            await wait_for(lambda: b.bus.connected("a"), "b to reconnect")
            b.bus.send([marker("b", "a", 4321)])
            await wait_for(
                lambda: any(m.commit == 4321 for m in a.inbox), "b's message"
            )
            assert len(a.bus._by_peer.get("b", [])) <= peer.MAX_INBOUND_PER_PEER
        finally:
            await close_all(nodes)

    run(body)


def test_a_hello_over_the_cap_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="over the 4096 a HELLO may"):
        PeerBus("n" * 5000, f"{HOST}:1", {}, lambda msg: None)
