"""The peer wire codec: round trips, identical bytes, malformed frames, splitting.

Every test runs against the compiled module and its struct-based twin.
"""

from __future__ import annotations

import dataclasses
import struct
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prez._core import wire as compiled_wire
from prez._core import wire_py
from prez.errors import ProtocolError
from prez.raft.types import Entry, Message, MessageType

IMPLS = [pytest.param(compiled_wire, id="compiled"), pytest.param(wire_py, id="twin")]

U64 = st.integers(0, 2**64 - 1)
NAMES = st.text(max_size=24)

entries_strategy = st.lists(
    st.builds(
        Entry,
        index=U64,
        term=U64,
        kind=st.integers(0, 255),
        data=st.binary(max_size=200),
    ),
    max_size=30,
)

messages = st.builds(
    Message,
    type=st.sampled_from(list(MessageType)),
    term=U64,
    src=NAMES,
    dst=NAMES,
    index=U64,
    log_term=U64,
    commit=U64,
    reject=st.booleans(),
    reject_hint=U64,
    hint_term=U64,
    entries=entries_strategy,
    context=st.binary(max_size=64),
)


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    module: ModuleType = request.param
    return module


def append_message(count: int = 3, size: int = 10) -> Message:
    return Message(
        MessageType.APPEND,
        term=7,
        src="node-a",
        dst="nöde-b",
        index=100,
        log_term=6,
        commit=99,
        entries=[
            Entry(101 + k, 7, k % 3, bytes([k % 256]) * size) for k in range(count)
        ],
        context=b"ctx",
    )


def with_length_fixed(frame: bytes) -> bytes:
    """`frame` with its length field rewritten to match its size."""
    return struct.pack("<I", len(frame) - 4) + frame[4:]


def test_codec_covers_every_message_field(impl: ModuleType) -> None:
    """Fails when a field is added to Message without adding it to the wire."""
    assert tuple(f.name for f in dataclasses.fields(Message)) == impl.MESSAGE_FIELDS


@settings(max_examples=200, deadline=None)
@given(messages)
@example(Message(MessageType.HEARTBEAT, 0, "", ""))
def test_round_trip_and_identical_bytes(msg: Message) -> None:
    frame = compiled_wire.encode_message(msg)
    assert frame == wire_py.encode_message(msg)
    for impl in (compiled_wire, wire_py):
        decoded = impl.decode_message(frame)
        assert decoded == msg
        assert isinstance(decoded.type, MessageType)
        assert impl.frame_type(frame) == msg.type


def test_append_with_many_entries(impl: ModuleType) -> None:
    msg = append_message(count=2000, size=100)
    frame = impl.encode_message(msg)
    assert impl.decode_message(frame) == msg
    assert impl.decode_message(bytearray(frame)) == msg
    assert impl.decode_message(memoryview(frame)) == msg


def test_entry_subclass_is_encoded_like_an_entry(impl: ModuleType) -> None:
    @dataclasses.dataclass(slots=True)
    class TaggedEntry(Entry):
        tag: str = "x"

    msg = append_message(count=1)
    plain = impl.encode_message(msg)
    original = msg.entries[0]
    msg.entries = [
        TaggedEntry(original.index, original.term, original.kind, original.data)
    ]
    assert impl.encode_message(msg) == plain


def test_hello_round_trip(impl: ModuleType) -> None:
    frame = impl.encode_hello("node-1", "127.0.0.1:7001", "cluster-x")
    assert frame == wire_py.encode_hello("node-1", "127.0.0.1:7001", "cluster-x")
    assert impl.frame_type(frame) == impl.HELLO_TYPE
    hello = impl.decode_hello(frame)
    assert hello == ("node-1", "127.0.0.1:7001", "cluster-x")
    assert (hello.name, hello.client_addr, hello.cluster_id) == tuple(hello)
    assert impl.decode_hello(impl.encode_hello("ü", "[::1]:1")) == ("ü", "[::1]:1", "")


def test_snapshot_message_keeps_its_wire_number(impl: ModuleType) -> None:
    """SNAPSHOT (InstallSnapshot) is type byte 10 on the wire, for good: nodes
    of different versions must agree on it."""
    msg = Message(
        MessageType.SNAPSHOT, 7, "n1", "n2", index=120, log_term=6, commit=130
    )
    frame = impl.encode_message(msg)
    assert frame == wire_py.encode_message(msg)
    assert frame[5] == 10 and impl.frame_type(frame) == MessageType.SNAPSHOT
    assert impl.decode_message(frame) == msg


def test_hello_and_messages_are_not_confused(impl: ModuleType) -> None:
    with pytest.raises(ProtocolError, match="unknown message type 128"):
        impl.decode_message(impl.encode_hello("a", "b"))
    with pytest.raises(ProtocolError, match="expected a HELLO"):
        impl.decode_hello(impl.encode_message(append_message()))


@pytest.mark.parametrize("use_hello", [False, True], ids=["message", "hello"])
def test_truncated_at_every_byte(impl: ModuleType, use_hello: bool) -> None:
    if use_hello:
        frame, decode = impl.encode_hello("n1", "127.0.0.1:1", "c"), impl.decode_hello
    else:
        frame, decode = impl.encode_message(append_message()), impl.decode_message
    for cut in range(len(frame)):
        with pytest.raises(ProtocolError):
            decode(frame[:cut])
        if cut >= 6:
            # A consistent length field makes the body parser meet the cut.
            with pytest.raises(ProtocolError):
                decode(with_length_fixed(frame[:cut]))


def test_trailing_garbage_is_refused(impl: ModuleType) -> None:
    for frame, decode in (
        (impl.encode_message(append_message()), impl.decode_message),
        (impl.encode_hello("a", "b"), impl.decode_hello),
    ):
        with pytest.raises(ProtocolError, match="trailing garbage"):
            decode(with_length_fixed(frame + b"\x00"))


def test_bad_header_fields_are_refused(impl: ModuleType) -> None:
    frame = bytearray(impl.encode_message(append_message()))
    wrong_version = bytes(frame[:4]) + b"\x02" + bytes(frame[5:])
    with pytest.raises(ProtocolError, match="version"):
        impl.decode_message(wrong_version)
    for bad_type in (0, max(MessageType) + 1, 0x7F, 0xFF):
        with pytest.raises(ProtocolError, match="unknown message type"):
            impl.decode_message(bytes(frame[:5]) + bytes([bad_type]) + bytes(frame[6:]))
    flags_at = 6 + 48
    frame[flags_at] = 0x02
    with pytest.raises(ProtocolError, match="flags"):
        impl.decode_message(bytes(frame))
    with pytest.raises(ProtocolError, match="length field"):
        impl.decode_message(struct.pack("<I", 1000) + bytes(frame[4:]))


def body_after_names(context: bytes = b"") -> bytes:
    """A message body up to (not including) its entry count."""
    fixed = struct.pack("<QQQQQQB", 1, 2, 3, 4, 5, 6, 0)
    names = struct.pack("<H", 1) + b"a" + struct.pack("<H", 1) + b"b"
    return fixed + names + struct.pack("<I", len(context)) + context


def frame_of(body: bytes, frame_type: int = MessageType.APPEND) -> bytes:
    return struct.pack("<IBB", len(body) + 2, 1, frame_type) + body


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            body_after_names() + struct.pack("<I", 0xFFFFFFFF), id="entry-count"
        ),
        pytest.param(
            body_after_names()
            + struct.pack("<I", 1)
            + struct.pack("<QQBI", 1, 1, 0, 0xFFFFFFFF),
            id="entry-data-length",
        ),
        pytest.param(
            struct.pack("<QQQQQQB", 0, 0, 0, 0, 0, 0, 0)
            + struct.pack("<H", 0xFFFF)
            + b"ab",
            id="name-length",
        ),
        pytest.param(
            struct.pack("<QQQQQQB", 0, 0, 0, 0, 0, 0, 0)
            + struct.pack("<HH", 0, 0)
            + struct.pack("<I", 0xFFFFFFFF),
            id="context-length",
        ),
    ],
)
def test_absurd_lengths_are_refused(impl: ModuleType, body: bytes) -> None:
    with pytest.raises(ProtocolError):
        impl.decode_message(frame_of(body))


def test_invalid_utf8_name_is_refused(impl: ModuleType) -> None:
    fixed = struct.pack("<QQQQQQB", 0, 0, 0, 0, 0, 0, 0)
    body = fixed + struct.pack("<H", 2) + b"\xff\xfe" + struct.pack("<H", 0)
    body += struct.pack("<II", 0, 0)
    with pytest.raises(ProtocolError, match="UTF-8"):
        impl.decode_message(frame_of(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 9))
def test_garbage_never_crashes_and_both_agree(garbage: bytes, msg_type: int) -> None:
    # Raw garbage, and garbage behind a plausible header so that the body
    # parser sees it too.
    for frame in (garbage, frame_of(garbage, msg_type)):
        outcomes = []
        for impl in (compiled_wire, wire_py):
            try:
                outcomes.append(impl.decode_message(frame))
            except ProtocolError:
                outcomes.append("ProtocolError")
        assert outcomes[0] == outcomes[1]


def test_encode_rejects_what_it_cannot_carry(impl: ModuleType) -> None:
    with pytest.raises(ValueError):
        impl.encode_message(Message(42, 1, "a", "b"))
    with pytest.raises(ValueError):
        impl.encode_message(Message(MessageType.VOTE, 1, "a" * 70000, "b"))
    with pytest.raises(TypeError):
        impl.encode_message(
            Message(MessageType.APPEND, 1, "a", "b", entries=[Entry(1, 1, 0, "text")])  # type: ignore[arg-type]
        )
    with pytest.raises(OverflowError):
        impl.encode_message(Message(MessageType.VOTE, -1, "a", "b"))


def stream_of_frames(impl: ModuleType) -> list[bytes]:
    return [
        impl.encode_hello("n1", "127.0.0.1:7000"),
        impl.encode_message(append_message(count=5)),
        impl.encode_message(Message(MessageType.HEARTBEAT, 3, "n1", "n2", commit=9)),
        impl.encode_message(append_message(count=0)),
    ]


def test_frame_reader_at_every_split_point(impl: ModuleType) -> None:
    frames = stream_of_frames(impl)
    stream = b"".join(frames)
    for split in range(len(stream) + 1):
        reader = impl.FrameReader()
        got = reader.feed(stream[:split]) + reader.feed(stream[split:])
        assert got == frames, split
        assert reader.buffered == 0


def test_frame_reader_byte_by_byte(impl: ModuleType) -> None:
    frames = stream_of_frames(impl)
    stream = b"".join(frames)
    reader = impl.FrameReader()
    got = []
    for position in range(len(stream)):
        got += reader.feed(memoryview(stream)[position : position + 1])
        assert reader.buffered == (position + 1) - sum(len(f) for f in got)
    assert got == frames


def test_frame_reader_many_frames_with_partial_tail(impl: ModuleType) -> None:
    frame = impl.encode_message(append_message(count=10, size=100))
    reader = impl.FrameReader()
    stream = frame * 200
    got = reader.feed(stream + frame[:7])
    assert got == [frame] * 200
    assert reader.buffered == 7
    assert reader.feed(frame[7:]) == [frame]
    assert reader.buffered == 0


def test_frame_reader_refuses_oversized_and_undersized(impl: ModuleType) -> None:
    reader = impl.FrameReader(max_frame_size=1000)
    assert reader.feed(struct.pack("<I", 1000)) == []  # at the limit: waits for it
    with pytest.raises(ProtocolError, match="over the limit"):
        impl.FrameReader(max_frame_size=1000).feed(struct.pack("<I", 1001))
    with pytest.raises(ProtocolError, match="over the limit"):
        impl.FrameReader().feed(struct.pack("<I", 0xFFFFFFFF))
    with pytest.raises(ProtocolError, match="too short"):
        impl.FrameReader().feed(struct.pack("<I", 1) + b"x")
