"""The peer wire codec: round trips, identical bytes, malformed frames, splitting,
and the checks that keep messages no correct node sends from being decoded.

Every test runs against the compiled module and its struct-based twin.
(Property-based fuzzing of the decoders: tests/test_fuzz_bus.py.)
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
from prez.raft.types import (
    MAX_INDEX,
    MAX_TERM,
    Entry,
    EntryKind,
    Membership,
    Message,
    MessageType,
)

IMPLS = [pytest.param(compiled_wire, id="compiled"), pytest.param(wire_py, id="twin")]

U64 = st.integers(0, 2**64 - 1)
NAMES = st.text(max_size=24)
CONFIG_DATA = Membership(frozenset({"n1", "n2"}), frozenset({"n3"})).encode()

# Any message the format can carry, well-formed or not.
any_entries = st.lists(
    st.builds(
        Entry,
        index=U64,
        term=U64,
        kind=st.integers(0, 255),
        data=st.binary(max_size=200),
    ),
    max_size=30,
)

any_messages = st.builds(
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
    entries=any_entries,
    context=st.binary(max_size=64),
)


@st.composite
def well_formed_messages(draw: st.DrawFn) -> Message:
    """Messages of the kind correct nodes send: decode_message takes them."""
    msg_type = draw(st.sampled_from(list(MessageType)))
    term = draw(st.integers(1 if msg_type == MessageType.SNAPSHOT else 0, MAX_TERM))
    index = draw(st.integers(0, MAX_INDEX - 30))
    log_term = draw(st.integers(0, MAX_TERM))
    entries: list[Entry] = []
    if msg_type in (MessageType.APPEND, MessageType.VOTE, MessageType.PRE_VOTE):
        log_term = draw(st.integers(0, term))
    if msg_type == MessageType.SNAPSHOT:
        index = max(index, 1)
        log_term = draw(st.integers(1, term))
    if msg_type == MessageType.APPEND:
        terms = sorted(draw(st.lists(st.integers(log_term, term), max_size=30)))
        for offset, entry_term in enumerate(terms, start=1):
            kind = draw(st.sampled_from(list(EntryKind)))
            data = (
                CONFIG_DATA
                if kind == EntryKind.CONFIG
                else draw(st.binary(max_size=200))
            )
            entries.append(Entry(index + offset, entry_term, kind, data))
    return Message(
        msg_type,
        term,
        draw(NAMES),
        draw(NAMES),
        index,
        log_term,
        draw(st.integers(0, MAX_INDEX)),
        draw(st.booleans()),
        draw(st.integers(0, MAX_INDEX)),
        draw(st.integers(0, MAX_TERM)),
        entries,
        draw(st.binary(max_size=64)),
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
            Entry(101 + k, 7, k % 2, bytes([k % 256]) * size) for k in range(count)
        ]
        + ([Entry(101 + count, 7, EntryKind.CONFIG, CONFIG_DATA)] if count else []),
        context=b"ctx",
    )


def with_length_fixed(frame: bytes) -> bytes:
    """`frame` with its length field rewritten to match its size."""
    return struct.pack("<I", len(frame) - 4) + frame[4:]


def test_codec_covers_every_message_field(impl: ModuleType) -> None:
    """Fails when a field is added to Message without adding it to the wire."""
    assert tuple(f.name for f in dataclasses.fields(Message)) == impl.MESSAGE_FIELDS


@settings(max_examples=200, deadline=None)
@given(well_formed_messages())
@example(Message(MessageType.HEARTBEAT, 0, "", ""))
@example(
    Message(
        MessageType.APPEND,
        MAX_TERM,
        "a",
        "b",
        index=MAX_INDEX - 1,
        log_term=1,
        commit=MAX_INDEX,
        reject_hint=MAX_INDEX,
        hint_term=MAX_TERM,
        entries=[Entry(MAX_INDEX, MAX_TERM, EntryKind.NOOP)],
    )
)
def test_round_trip_and_identical_bytes(msg: Message) -> None:
    frame = compiled_wire.encode_message(msg)
    assert frame == wire_py.encode_message(msg)
    for impl in (compiled_wire, wire_py):
        decoded = impl.decode_message(frame)
        assert decoded == msg
        assert isinstance(decoded.type, MessageType)
        assert impl.frame_type(frame) == msg.type


@settings(max_examples=200, deadline=None)
@given(any_messages)
def test_any_message_round_trips_or_is_refused_by_both(msg: Message) -> None:
    """The encoder carries any u64; what the decoders refuse, both refuse."""
    frame = compiled_wire.encode_message(msg)
    assert frame == wire_py.encode_message(msg)
    outcomes = []
    for impl in (compiled_wire, wire_py):
        try:
            decoded = impl.decode_message(frame)
        except ProtocolError as exc:
            outcomes.append(str(exc))
        else:
            assert decoded == msg
            outcomes.append("decoded")
    assert outcomes[0] == outcomes[1]


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
    msg.entries = [TaggedEntry(e.index, e.term, e.kind, e.data) for e in msg.entries]
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


# -- what decode_message refuses (issue 11: one bad frame must not kill a node) --


def base_append() -> Message:
    return Message(
        MessageType.APPEND,
        term=7,
        src="n1",
        dst="n2",
        index=10,
        log_term=6,
        commit=9,
        entries=[
            Entry(11, 6, EntryKind.NORMAL, b"x"),
            Entry(12, 7, EntryKind.NOOP),
            Entry(13, 7, EntryKind.CONFIG, CONFIG_DATA),
        ],
    )


def changed(msg: Message, **fields: object) -> Message:
    return dataclasses.replace(msg, **fields)  # type: ignore[arg-type]


def with_entry(msg: Message, position: int, **fields: object) -> Message:
    entries = list(msg.entries)
    entries[position] = dataclasses.replace(entries[position], **fields)  # type: ignore[arg-type]
    return changed(msg, entries=entries)


REFUSED = [
    # Every number a core does arithmetic on or persists, one past its bound.
    pytest.param(changed(base_append(), term=2**64 - 1), "term", id="term-u64-max"),
    pytest.param(changed(base_append(), term=MAX_TERM + 1), "term", id="term"),
    pytest.param(changed(base_append(), index=MAX_INDEX + 1), "index", id="index"),
    pytest.param(
        Message(MessageType.HEARTBEAT, 7, "n1", "n2", log_term=MAX_TERM + 1),
        "log_term",
        id="log-term",
    ),
    pytest.param(changed(base_append(), commit=2**64 - 1), "commit", id="commit"),
    pytest.param(
        Message(MessageType.APPEND_RESP, 7, "n1", "n2", reject_hint=MAX_INDEX + 1),
        "reject_hint",
        id="reject-hint",
    ),
    pytest.param(
        Message(MessageType.APPEND_RESP, 7, "n1", "n2", hint_term=MAX_TERM + 1),
        "hint_term",
        id="hint-term",
    ),
    # Entries: only the consecutive run after prev, in term order.
    pytest.param(
        with_entry(base_append(), 0, index=12), "entry index", id="first-index"
    ),
    pytest.param(
        with_entry(base_append(), 1, index=11), "entry index", id="repeated-index"
    ),
    pytest.param(with_entry(base_append(), 1, index=3), "entry index", id="gap-back"),
    pytest.param(with_entry(base_append(), 2, index=14), "entry index", id="gap-ahead"),
    pytest.param(
        Message(
            MessageType.APPEND,
            7,
            "n1",
            "n2",
            index=MAX_INDEX,
            log_term=1,
            entries=[Entry(MAX_INDEX + 1, 7)],
        ),
        "entry index",
        id="entry-index-over-limit",
    ),
    pytest.param(
        with_entry(base_append(), 0, term=5), "out of order", id="term-before-prev"
    ),
    pytest.param(
        with_entry(base_append(), 2, term=6), "out of order", id="term-decreases"
    ),
    pytest.param(
        with_entry(base_append(), 2, term=8), "out of order", id="term-after-msg"
    ),
    pytest.param(with_entry(base_append(), 1, kind=3), "unknown kind", id="kind"),
    pytest.param(with_entry(base_append(), 1, kind=255), "unknown kind", id="kind-255"),
    pytest.param(changed(base_append(), log_term=8), "prev log term", id="prev-term"),
    # CONFIG entries the core could not adopt.
    pytest.param(
        with_entry(base_append(), 2, data=b"x n1"), "does not parse", id="config-role"
    ),
    pytest.param(
        with_entry(base_append(), 2, data=b"v n1\nv n1"),
        "does not parse",
        id="config-dup",
    ),
    pytest.param(
        with_entry(base_append(), 2, data=b"v \xff"), "does not parse", id="config-utf8"
    ),
    pytest.param(
        with_entry(base_append(), 2, data=b"v "),
        "does not parse",
        id="config-empty-name",
    ),
    pytest.param(with_entry(base_append(), 2, data=b""), "no voter", id="config-empty"),
    pytest.param(
        with_entry(base_append(), 2, data=b"l n3"),
        "no voter",
        id="config-learners-only",
    ),
    # Entries ride only in APPEND.
    pytest.param(
        Message(MessageType.HEARTBEAT, 7, "n1", "n2", entries=[Entry(1, 1)]),
        "carries no entries",
        id="entries-in-heartbeat",
    ),
    pytest.param(
        Message(MessageType.VOTE, 7, "n1", "n2", index=5, log_term=8),
        "last log term",
        id="vote-log-term",
    ),
    pytest.param(
        Message(MessageType.PRE_VOTE, 7, "n1", "n2", index=5, log_term=8),
        "last log term",
        id="pre-vote-log-term",
    ),
    # A snapshot offer must name a snapshot.
    pytest.param(
        Message(MessageType.SNAPSHOT, 7, "n1", "n2", index=0, log_term=3),
        "names no snapshot",
        id="snapshot-index-0",
    ),
    pytest.param(
        Message(MessageType.SNAPSHOT, 7, "n1", "n2", index=5, log_term=0),
        "names no snapshot",
        id="snapshot-term-0",
    ),
    pytest.param(
        Message(MessageType.SNAPSHOT, 7, "n1", "n2", index=5, log_term=8),
        "names no snapshot",
        id="snapshot-future-term",
    ),
]


def test_the_base_message_is_accepted(impl: ModuleType) -> None:
    msg = base_append()
    assert impl.decode_message(impl.encode_message(msg)) == msg


@pytest.mark.parametrize(("msg", "reason"), REFUSED)
def test_messages_no_correct_node_sends_are_refused(
    impl: ModuleType, msg: Message, reason: str
) -> None:
    frame = compiled_wire.encode_message(msg)
    with pytest.raises(ProtocolError, match=reason):
        impl.decode_message(frame)


@pytest.mark.parametrize(
    "msg",
    [
        pytest.param(
            Message(
                MessageType.HEARTBEAT,
                MAX_TERM,
                "n1",
                "n2",
                index=MAX_INDEX,
                log_term=MAX_TERM,
                commit=MAX_INDEX,
                reject_hint=MAX_INDEX,
                hint_term=MAX_TERM,
            ),
            id="every-bound",
        ),
        pytest.param(
            Message(
                MessageType.APPEND,
                3,
                "n1",
                "n2",
                index=0,
                log_term=0,
                entries=[Entry(1, 1), Entry(2, 3)],
            ),
            id="from-the-start",
        ),
        pytest.param(
            Message(MessageType.SNAPSHOT, 3, "n1", "n2", index=1, log_term=3),
            id="snapshot-own-term",
        ),
        pytest.param(with_entry(base_append(), 2, data=b"v n1"), id="config-one-voter"),
    ],
)
def test_the_limits_themselves_are_accepted(impl: ModuleType, msg: Message) -> None:
    assert impl.decode_message(compiled_wire.encode_message(msg)) == msg


def test_refusals_quote_little_of_a_huge_config_entry(impl: ModuleType) -> None:
    msg = with_entry(base_append(), 2, data=b"x" * 100_000)
    with pytest.raises(ProtocolError) as caught:
        impl.decode_message(compiled_wire.encode_message(msg))
    assert len(str(caught.value)) < 300


# -- frame caps per type --


def test_frame_reader_caps_per_type(impl: ModuleType) -> None:
    limits = {int(MessageType.APPEND): 10_000}
    append = impl.encode_message(append_message(count=20, size=100))
    heartbeat = impl.encode_message(Message(MessageType.HEARTBEAT, 1, "a", "b"))
    assert 2000 < len(append) < 10_000
    reader = impl.FrameReader(1000, limits)
    assert reader.max_frame_size == 1000
    assert reader.feed(append + heartbeat) == [append, heartbeat]
    # Any other type over 1000 is refused on its 6-byte header alone.
    big_vote = impl.encode_message(
        Message(MessageType.VOTE, 1, "a", "b", context=b"x" * 2000)
    )
    with pytest.raises(ProtocolError, match="over the limit of 1000 for type 1"):
        impl.FrameReader(1000, limits).feed(big_vote[:6])
    # A length over every cap goes at once, on the 4 bytes of the length.
    with pytest.raises(ProtocolError, match="over the limit of 10000"):
        impl.FrameReader(1000, limits).feed(struct.pack("<I", 10_001))
    with pytest.raises(ValueError):
        impl.FrameReader(1000, {256: 10})
    with pytest.raises(ValueError):
        impl.FrameReader(1000, {3: 1})


def test_frame_reader_stops_after_max_frames_and_takes_new_caps(
    impl: ModuleType,
) -> None:
    """A HELLO and the first messages often arrive in one read: the rest waits
    for the caps that hold after the handshake."""
    hello = impl.encode_hello("n1", "127.0.0.1:1")
    append = impl.encode_message(append_message(count=20, size=100))
    reader = impl.FrameReader(len(hello))
    assert reader.feed(hello + append + append[:10], max_frames=1) == [hello]
    assert reader.buffered == len(append) + 10
    reader.set_limits(100, {int(MessageType.APPEND): len(append)})
    assert reader.max_frame_size == 100
    assert reader.feed(b"") == [append]
    assert reader.partial_size == len(append)
    assert reader.feed(append[10:]) == [append]
    assert reader.partial_size == 0
    # Without the new caps, the same bytes are refused.
    strict = impl.FrameReader(len(hello))
    with pytest.raises(ProtocolError, match="over the limit"):
        strict.feed(hello + append)


def test_partial_size_needs_the_whole_header(impl: ModuleType) -> None:
    frame = impl.encode_message(append_message(count=3))
    reader = impl.FrameReader()
    assert reader.partial_size == 0
    reader.feed(frame[:5])
    assert reader.partial_size == 0
    reader.feed(frame[5:6])
    assert reader.partial_size == len(frame)
    reader.feed(frame[6:-1])
    assert reader.partial_size == len(frame)
    assert reader.feed(frame[-1:]) == [frame]
    assert reader.partial_size == 0 and reader.buffered == 0
