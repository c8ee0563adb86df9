"""The peer wire codec in plain Python (struct): the twin of `prez._core.wire`.

Same API and the same bytes as the compiled module, written for clarity;
tests use it as the oracle and benchmarks as the baseline. It is never
picked as a silent fallback.

Frame layout, all little-endian:

    u32 frame length (bytes after this field) | u8 version | u8 type | body

A Raft message body (type = a MessageType value):

    u64 term | u64 index | u64 log_term | u64 commit | u64 reject_hint |
    u64 hint_term | u8 flags (bit 0: reject) |
    u16 len + src (UTF-8) | u16 len + dst (UTF-8) | u32 len + context |
    u32 entry count | entries: u64 index | u64 term | u8 kind | u32 len + data

A HELLO body (type = HELLO_TYPE), the first frame on a peer connection:

    u16 len + sender name | u16 len + client host:port | u16 len + cluster id

A frame that decodes is a well-formed message, not just well-framed bytes:
decode_message also refuses (ProtocolError) what no correct node sends, so
that nothing from the network can make the Raft core do arithmetic it cannot
persist or take a state change it would have to call unsafe:

- every term at most MAX_TERM, every index and offset (index, commit,
  reject_hint) at most MAX_INDEX (prez.raft.types);
- entries only in an APPEND, where they are the run that follows the prev
  entry: indexes index+1, index+2, ... (the last at most MAX_INDEX), terms
  non-decreasing from log_term and at most the message's term, a known
  EntryKind, and a CONFIG entry's data a Membership that decodes and names
  at least one voter; an APPEND's log_term at most its term;
- a VOTE or PRE_VOTE's last log term at most its term;
- a SNAPSHOT offer names a snapshot: index >= 1, 1 <= log_term <= term.

Pure computation over bytes: no I/O, and nothing from prez.server may be
imported here.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

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

WIRE_VERSION = 1
HELLO_TYPE = 0x80  # outside MessageType's range on purpose
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
# Every Message field, in wire order; a test checks it against the dataclass.
MESSAGE_FIELDS = (
    "type",
    "term",
    "src",
    "dst",
    "index",
    "log_term",
    "commit",
    "reject",
    "reject_hint",
    "hint_term",
    "entries",
    "context",
)

_LENGTH = struct.Struct("<I")
_HEADER = struct.Struct("<IBB")  # frame length, version, type
_FIXED = struct.Struct("<QQQQQQB")  # term .. hint_term, flags
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ENTRY = struct.Struct("<QQBI")  # index, term, kind, data length
_FLAG_REJECT = 0x01
_MESSAGE_TYPES = {int(t): t for t in MessageType}
_ENTRY_KINDS = frozenset(int(k) for k in EntryKind)
_APPEND = int(MessageType.APPEND)
_SNAPSHOT = int(MessageType.SNAPSHOT)
_VOTES = (int(MessageType.VOTE), int(MessageType.PRE_VOTE))


class Hello(NamedTuple):
    name: str  # the sender's node name
    client_addr: str  # where the sender serves clients, "host:port"
    cluster_id: str  # must match the receiver's, or the peer is refused


def _short_string(value: str, what: str) -> bytes:
    raw = value.encode()
    if len(raw) > 0xFFFF:
        raise ValueError(f"{what} too long for the wire ({len(raw)} bytes)")
    return _U16.pack(len(raw)) + raw


def _frame(frame_type: int, body: bytes) -> bytes:
    if len(body) + 2 > 0xFFFFFFFF:
        raise ValueError("message too large for one frame")
    return _HEADER.pack(len(body) + 2, WIRE_VERSION, frame_type) + body


def encode_message(msg: Message) -> bytes:
    """One frame holding `msg`, entries included."""
    try:
        return _encode_message(msg)
    except struct.error as exc:
        # The same exception as the compiled twin's C integer conversion.
        raise OverflowError(str(exc))


def _encode_message(msg: Message) -> bytes:
    msg_type = int(msg.type)
    if msg_type not in _MESSAGE_TYPES:
        raise ValueError(f"unknown message type {msg_type}")
    if len(msg.context) > 0xFFFFFFFF or len(msg.entries) > 0xFFFFFFFF:
        raise ValueError("message too large for one frame")
    parts = [
        _FIXED.pack(
            msg.term,
            msg.index,
            msg.log_term,
            msg.commit,
            msg.reject_hint,
            msg.hint_term,
            _FLAG_REJECT if msg.reject else 0,
        ),
        _short_string(msg.src, "src"),
        _short_string(msg.dst, "dst"),
        _U32.pack(len(msg.context)),
        bytes(msg.context),
        _U32.pack(len(msg.entries)),
    ]
    for entry in msg.entries:
        if not isinstance(entry.data, bytes):
            raise TypeError(
                f"entry data must be bytes, not {type(entry.data).__name__}"
            )
        parts.append(_ENTRY.pack(entry.index, entry.term, entry.kind, len(entry.data)))
        parts.append(entry.data)
    return _frame(msg_type, b"".join(parts))


def encode_hello(name: str, client_addr: str, cluster_id: str = "") -> bytes:
    """The HELLO frame a node sends first on each peer connection it opens."""
    body = (
        _short_string(name, "name")
        + _short_string(client_addr, "client_addr")
        + _short_string(cluster_id, "cluster_id")
    )
    return _frame(HELLO_TYPE, body)


class _Reader:
    """Checked reads over one frame: never past its end."""

    def __init__(self, frame: bytes, pos: int) -> None:
        self.frame = frame
        self.pos = pos

    def take(self, size: int, what: str) -> bytes:
        if size > len(self.frame) - self.pos:
            raise ProtocolError(
                f"wire: truncated frame: {what} needs {size} bytes, "
                f"{len(self.frame) - self.pos} left"
            )
        chunk = self.frame[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, layout: struct.Struct, what: str) -> tuple[int, ...]:
        return layout.unpack(self.take(layout.size, what))

    def string(self, length_layout: struct.Struct, what: str) -> str:
        (length,) = self.unpack(length_layout, f"{what} length")
        try:
            return self.take(length, what).decode()
        except UnicodeDecodeError:
            raise ProtocolError(f"wire: {what} is not valid UTF-8")


def _open_frame(frame: bytes | bytearray | memoryview) -> tuple[int, _Reader]:
    """Check the header of a whole frame; return its type and a body reader."""
    frame = bytes(frame)
    if len(frame) < _HEADER.size:
        raise ProtocolError(
            f"wire: frame of {len(frame)} bytes is shorter than a header"
        )
    length, version, frame_type = _HEADER.unpack_from(frame)
    if length != len(frame) - _LENGTH.size:
        raise ProtocolError(
            f"wire: frame length field {length} does not match "
            f"{len(frame) - _LENGTH.size} bytes of frame"
        )
    if version != WIRE_VERSION:
        raise ProtocolError(f"wire: unsupported version {version}")
    return frame_type, _Reader(frame, _HEADER.size)


def frame_type(frame: bytes | bytearray | memoryview) -> int:
    """The type byte of a whole frame: HELLO_TYPE or a MessageType value."""
    return _open_frame(frame)[0]


def _expect_end(reader: _Reader) -> None:
    if reader.pos != len(reader.frame):
        raise ProtocolError(
            f"wire: {len(reader.frame) - reader.pos} bytes of trailing garbage"
        )


def _check_fixed(
    term: int, index: int, log_term: int, commit: int, reject_hint: int, hint_term: int
) -> None:
    for value, name, limit in (
        (term, "term", MAX_TERM),
        (index, "index", MAX_INDEX),
        (log_term, "log_term", MAX_TERM),
        (commit, "commit", MAX_INDEX),
        (reject_hint, "reject_hint", MAX_INDEX),
        (hint_term, "hint_term", MAX_TERM),
    ):
        if value > limit:
            raise ProtocolError(f"wire: {name} {value} over the limit of {limit}")


def check_config_entry(index: int, data: bytes) -> None:
    """ProtocolError unless `data` is a CONFIG entry a node could have written."""
    try:
        membership = Membership.decode(data)
    except ValueError as exc:
        # (Cut short: the reason quotes the data, which may be megabytes.)
        raise ProtocolError(
            f"wire: CONFIG entry {index} does not parse: {str(exc)[:100]}"
        )
    if not membership.voters:
        raise ProtocolError(f"wire: CONFIG entry {index} names no voter")


def decode_message(frame: bytes | bytearray | memoryview) -> Message:
    """The Message in one whole frame (as FrameReader.feed returns them);
    ProtocolError if the frame is malformed or the message is not one a
    correct node sends (see the module docstring)."""
    raw_type, reader = _open_frame(frame)
    msg_type = _MESSAGE_TYPES.get(raw_type)
    if msg_type is None:
        raise ProtocolError(f"wire: unknown message type {raw_type}")
    term, index, log_term, commit, reject_hint, hint_term, flags = reader.unpack(
        _FIXED, "message header"
    )
    if flags & ~_FLAG_REJECT:
        raise ProtocolError(f"wire: unknown flags {flags:#x}")
    _check_fixed(term, index, log_term, commit, reject_hint, hint_term)
    src = reader.string(_U16, "src")
    dst = reader.string(_U16, "dst")
    (context_len,) = reader.unpack(_U32, "context length")
    context = reader.take(context_len, "context")
    (count,) = reader.unpack(_U32, "entry count")
    # Each entry takes at least its fixed header: a count that cannot fit in
    # the rest of the frame is refused before anything is allocated for it.
    if count * _ENTRY.size > len(reader.frame) - reader.pos:
        raise ProtocolError(f"wire: entry count {count} does not fit in the frame")
    if count and raw_type != _APPEND:
        raise ProtocolError(f"wire: a {msg_type.name} message carries no entries")
    if raw_type == _APPEND and log_term > term:
        raise ProtocolError(f"wire: APPEND prev log term {log_term} above term {term}")
    entries = []
    expected_index = index + 1
    previous_term = log_term
    for _ in range(count):
        entry_index, entry_term, kind, data_len = reader.unpack(_ENTRY, "entry header")
        if entry_index != expected_index or entry_index > MAX_INDEX:
            raise ProtocolError(
                f"wire: entry index {entry_index} where {expected_index} belongs"
            )
        if entry_term < previous_term or entry_term > term:
            raise ProtocolError(
                f"wire: entry {entry_index} has term {entry_term} out of order "
                f"(after {previous_term}, message term {term})"
            )
        if kind not in _ENTRY_KINDS:
            raise ProtocolError(f"wire: entry {entry_index} of unknown kind {kind}")
        data = reader.take(data_len, "entry data")
        if kind == EntryKind.CONFIG:
            check_config_entry(entry_index, data)
        entries.append(Entry(entry_index, entry_term, kind, data))
        expected_index += 1
        previous_term = entry_term
    _expect_end(reader)
    if raw_type in _VOTES and log_term > term:
        raise ProtocolError(
            f"wire: {msg_type.name} last log term {log_term} above term {term}"
        )
    if raw_type == _SNAPSHOT and not (index >= 1 and 1 <= log_term <= term):
        raise ProtocolError(
            f"wire: SNAPSHOT offer of {index}/{log_term} in term {term} names no snapshot"
        )
    return Message(
        msg_type,
        term,
        src,
        dst,
        index,
        log_term,
        commit,
        bool(flags & _FLAG_REJECT),
        reject_hint,
        hint_term,
        entries,
        context,
    )


def decode_hello(frame: bytes | bytearray | memoryview) -> Hello:
    raw_type, reader = _open_frame(frame)
    if raw_type != HELLO_TYPE:
        raise ProtocolError(f"wire: expected a HELLO frame, got type {raw_type}")
    hello = Hello(
        reader.string(_U16, "name"),
        reader.string(_U16, "client_addr"),
        reader.string(_U16, "cluster_id"),
    )
    _expect_end(reader)
    return hello


class FrameReader:
    """Splits a byte stream from a peer into whole frames.

    A frame is refused (ProtocolError) as soon as its header announces a
    length over the cap for its type, before any of it is buffered:
    `type_limits` maps a type byte to its cap, and `max_frame_size` caps
    every other type. Lengths count the bytes after the length field.
    """

    def __init__(
        self,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        type_limits: dict[int, int] | None = None,
    ) -> None:
        self._buffer = bytearray()
        self.set_limits(max_frame_size, type_limits)

    def set_limits(
        self, max_frame_size: int, type_limits: dict[int, int] | None = None
    ) -> None:
        """New caps, for every frame not yet returned (a handshake's end)."""
        if max_frame_size < 2:
            raise ValueError("max_frame_size must be at least 2")
        limits = [max_frame_size] * 256
        for frame_type, limit in (type_limits or {}).items():
            if not 0 <= frame_type <= 255 or limit < 2:
                raise ValueError(f"bad frame limit {limit} for type {frame_type}")
            limits[frame_type] = limit
        # The largest frame length field accepted for any type.
        self.max_frame_size = max_frame_size
        self._limits = limits
        self._largest = max(limits)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer)

    @property
    def partial_size(self) -> int:
        """The whole size (length field included) of the frame being received,
        once its header is in and accepted; 0 when no frame is under way."""
        if len(self._buffer) < _HEADER.size:
            return 0
        length: int = _LENGTH.unpack_from(self._buffer, 0)[0]
        return _LENGTH.size + length

    def feed(
        self, data: bytes | bytearray | memoryview, max_frames: int = 0
    ) -> list[bytes]:
        """Add received bytes; return the frames now complete (length included).

        With `max_frames` > 0, at most that many: the rest stays buffered,
        unchecked, until the next feed (b"" will do), so that the caps can
        change after a handshake frame that arrived together with others.
        """
        self._buffer += data
        frames: list[bytes] = []
        pos = 0
        while len(self._buffer) - pos >= _LENGTH.size:
            if max_frames > 0 and len(frames) >= max_frames:
                break
            (length,) = _LENGTH.unpack_from(self._buffer, pos)
            if length > self._largest:
                raise ProtocolError(
                    f"wire: frame length {length} over the limit of {self._largest}"
                )
            if length < 2:
                raise ProtocolError(f"wire: frame length {length} is too short")
            if len(self._buffer) - pos < _HEADER.size:
                break
            frame_type = self._buffer[pos + 5]
            limit = self._limits[frame_type]
            if length > limit:
                raise ProtocolError(
                    f"wire: frame length {length} over the limit of {limit} "
                    f"for type {frame_type}"
                )
            end = pos + _LENGTH.size + length
            if end > len(self._buffer):
                break
            frames.append(bytes(self._buffer[pos:end]))
            pos = end
        del self._buffer[:pos]
        return frames
