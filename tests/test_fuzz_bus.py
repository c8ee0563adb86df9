"""Property-based fuzzing of what the network hands a node (issue 11 part 8).

The cluster-bus decoders (decode_message, decode_hello, FrameReader) and the
log entry decoder (decode_command, which every replica runs on entries a
leader sent) get bytes from anyone. For any input, each must either return
a value or raise ProtocolError, nothing else, and the compiled module and
its pure-Python twin must agree on which (and on the value). Inputs are
random bytes and, more usefully, valid frames with bytes flipped, cut or
spliced, so that the fuzzing reaches deep into the body parser.

Bounded for CI: a few hundred examples per property, the whole file in a
few seconds. A failure hypothesis finds is kept below as an `@example`,
so it is replayed on every run from then on.
"""

from __future__ import annotations

import struct
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prez._core import entry, entry_py, wire, wire_py
from prez.errors import ProtocolError
from prez.raft.types import (
    MAX_INDEX,
    MAX_TERM,
    Entry,
    EntryKind,
    Membership,
    Message,
    MessageType,
)

FUZZ = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
CONFIG_DATA = Membership(frozenset({"n1", "n2"})).encode()


def outcome(impl: ModuleType, name: str, *args: Any) -> object:
    """The value, or ("refused",) for ProtocolError; anything else fails."""
    try:
        return getattr(impl, name)(*args)
    except ProtocolError:
        return ("refused",)


def both(name: str, *args: Any, modules: tuple[ModuleType, ModuleType]) -> object:
    compiled, twin = (outcome(m, name, *args) for m in modules)
    assert compiled == twin, (compiled, twin)
    return compiled


def seed_frames() -> list[bytes]:
    """Valid frames of every kind, to be mutated."""
    append = Message(
        MessageType.APPEND,
        7,
        "n1",
        "n2",
        index=10,
        log_term=6,
        commit=9,
        entries=[
            Entry(
                11,
                6,
                EntryKind.NORMAL,
                entry.encode_command(1, 0, [b"SET", b"k", b"v"]),
            ),
            Entry(12, 7, EntryKind.NOOP),
            Entry(13, 7, EntryKind.CONFIG, CONFIG_DATA),
        ],
    )
    others = [
        Message(MessageType.HEARTBEAT, 7, "n1", "n2", commit=9, context=b"\x00" * 8),
        Message(MessageType.VOTE, 8, "n1", "n2", index=13, log_term=7),
        Message(
            MessageType.APPEND_RESP,
            7,
            "n2",
            "n1",
            index=10,
            reject=True,
            reject_hint=5,
            hint_term=3,
        ),
        Message(
            MessageType.SNAPSHOT,
            7,
            "n1",
            "n2",
            index=100,
            log_term=6,
            commit=120,
            context=CONFIG_DATA,
        ),
        Message(
            MessageType.SNAPSHOT_CHUNK,
            7,
            "n1",
            "n2",
            index=100,
            log_term=6,
            context=b"x" * 100,
        ),
        Message(MessageType.TIMEOUT_NOW, MAX_TERM, "n1", "n2", index=MAX_INDEX),
    ]
    return [wire.encode_message(m) for m in [append, *others]] + [
        wire.encode_hello("n1", "127.0.0.1:7000", "cluster")
    ]


SEEDS = seed_frames()


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "set", "cut", "splice", "u64"]))
        at = draw(st.integers(0, len(frame) - 1))
        if how == "flip":
            frame[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "set":
            frame[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF]))
        elif how == "cut":
            del frame[at:]
            if not frame:
                frame = bytearray(b"\x00")
        elif how == "splice":
            frame[at:at] = draw(st.binary(min_size=1, max_size=30))
        else:
            # A whole u64 field to an extreme (terms, indexes, lengths).
            value = draw(
                st.sampled_from([0, 1, MAX_TERM, MAX_TERM + 1, 2**63, 2**64 - 1])
            )
            frame[at : at + 8] = struct.pack("<Q", value)
    if draw(st.booleans()) and len(frame) >= 4:
        # Keep the length field consistent, so the body parser meets the damage.
        frame[:4] = struct.pack("<I", len(frame) - 4)
    return bytes(frame)


@FUZZ
@given(st.one_of(mutated_frames(), st.binary(max_size=400)))
@example(
    # Regression (issue 11): a heartbeat whose term is 2**64 - 1 decoded and
    # was stepped into the core, which could never campaign past it.
    wire.encode_message(Message(MessageType.HEARTBEAT, 2**64 - 1, "n1", "n2"))
)
@example(
    # Regression (issue 11): an APPEND whose CONFIG entry does not parse
    # stopped the node ("Raft safety violation").
    wire.encode_message(
        Message(
            MessageType.APPEND,
            2,
            "n1",
            "n2",
            entries=[Entry(1, 2, EntryKind.CONFIG, b"\xff\xfe")],
        )
    )
)
def test_decode_message_refuses_or_returns_a_well_formed_message(frame: bytes) -> None:
    msg = both("decode_message", frame, modules=(wire, wire_py))
    if not isinstance(msg, Message):
        return
    # What gets through is within every bound the core relies on.
    assert 0 <= msg.term <= MAX_TERM
    assert max(msg.index, msg.commit, msg.reject_hint) <= MAX_INDEX
    assert max(msg.log_term, msg.hint_term) <= MAX_TERM
    if msg.entries:
        assert msg.type == MessageType.APPEND
        assert [e.index for e in msg.entries] == list(
            range(msg.index + 1, msg.index + 1 + len(msg.entries))
        )
        terms = [msg.log_term] + [e.term for e in msg.entries] + [msg.term]
        assert terms == sorted(terms)
        for e in msg.entries:
            assert e.kind in set(EntryKind)
            if e.kind == EntryKind.CONFIG:
                assert Membership.decode(e.data).voters
    # And it encodes back to the very same frame.
    assert wire.encode_message(msg) == frame


@FUZZ
@given(st.one_of(mutated_frames(), st.binary(max_size=200)))
def test_decode_hello_refuses_or_returns_three_strings(frame: bytes) -> None:
    hello = both("decode_hello", frame, modules=(wire, wire_py))
    if hello != ("refused",):
        assert isinstance(hello, tuple) and len(hello) == 3
        assert all(isinstance(part, str) for part in hello)


@FUZZ
@given(
    st.lists(st.one_of(mutated_frames(), st.sampled_from(SEEDS)), max_size=6),
    st.lists(st.integers(1, 64), min_size=1, max_size=8),
    st.sampled_from([None, {int(MessageType.APPEND): 1000}, {0x80: 64}]),
    st.integers(16, 400),
)
def test_frame_reader_twins_split_any_stream_alike(
    frames: list[bytes],
    chunks: list[int],
    limits: dict[int, int] | None,
    cap: int,
) -> None:
    """Fed in the same pieces, both readers return the same frames and refuse
    at the same point; what they return always is whole frames under the caps."""
    stream = b"".join(frames)
    readers = [wire.FrameReader(cap, limits), wire_py.FrameReader(cap, limits)]
    pos = 0
    step = 0
    while pos < len(stream) or step == 0:
        size = chunks[step % len(chunks)]
        piece = stream[pos : pos + size]
        pos += size
        step += 1
        results = []
        for reader in readers:
            try:
                results.append(reader.feed(piece))
            except ProtocolError:
                results.append("refused")
        assert results[0] == results[1]
        if results[0] == "refused":
            return
        got = results[0]
        assert isinstance(got, list)
        for frame in got:
            length = struct.unpack_from("<I", frame)[0]
            assert length == len(frame) - 4
            assert length <= (limits or {}).get(frame[5], cap)
        assert readers[0].buffered == readers[1].buffered
        assert readers[0].partial_size == readers[1].partial_size


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda now, db, args, cut: entry.encode_command(now, db, args)[:cut],
            st.integers(-(2**63), 2**63 - 1),
            st.integers(0, 65535),
            st.lists(st.binary(max_size=40), min_size=1, max_size=6),
            st.integers(0, 400),
        ),
    )
)
@example(b"\x00" * 10 + b"\xff\xff\xff\xff")  # an argument length past the end
def test_entry_decoder_refuses_or_decodes_alike(data: bytes) -> None:
    """A NORMAL entry's payload comes from the leader; a malformed one is
    skipped at apply (ProtocolError), the same way on every replica."""
    decoded = both("decode_command", data, modules=(entry, entry_py))
    if decoded != ("refused",):
        assert isinstance(decoded, tuple)
        now, db, args = decoded
        assert 0 <= db <= 65535 and args
        assert entry.encode_command(now, db, args) == data
