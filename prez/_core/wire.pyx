# cython: language_level=3
"""The peer wire codec, compiled (twin and format spec: `prez._core.wire_py`).

Frame layout, all little-endian:

    u32 frame length (bytes after this field) | u8 version | u8 type | body

A Raft message body (type = a MessageType value):

    u64 term | u64 index | u64 log_term | u64 commit | u64 reject_hint |
    u64 hint_term | u8 flags (bit 0: reject) |
    u16 len + src (UTF-8) | u16 len + dst (UTF-8) | u32 len + context |
    u32 entry count | entries: u64 index | u64 term | u8 kind | u32 len + data

A HELLO body (type = HELLO_TYPE), the first frame on a peer connection:

    u16 len + sender name | u16 len + client host:port | u16 len + cluster id

A frame that decodes is a well-formed message: decode_message also
refuses what no correct node sends (terms over MAX_TERM, indexes over
MAX_INDEX, entries that are not the consecutive run after the prev entry or
of an unknown kind, a CONFIG entry that does not decode, ...); the rules are
listed in the twin's docstring, which is the spec.

Encoding computes the exact size first and writes into one new bytes
object. Decoding reads only through `_take`, which checks every length
against what is left of the frame, so a malformed frame raises
ProtocolError instead of reading or allocating past it.

Pure computation over bytes: no I/O, and nothing from prez.server may be
imported here.
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from prez._core.lebytes cimport load_u16, load_u32, load_u64, store_u16, store_u32, store_u64

from collections import namedtuple

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


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    ctypedef struct PyObject


# Entry is a slots dataclass. Building and reading entries is most of the
# cost of an AppendEntries, so when its layout is the plain one (checked at
# import by _slot_offsets) entries are allocated and their slots read and
# written directly at the member offsets, skipping __init__ and attribute
# lookup. Anything unexpected keeps the ordinary (slower) path.
cdef extern from *:
    """
    #include "structmember.h"

    static Py_ssize_t prez_member_offset(PyObject *descr) {
        PyMemberDef *member;
        if (Py_TYPE(descr) != &PyMemberDescr_Type) return -1;
        member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || (member->flags & READONLY)) return -1;
        return member->offset;
    }

    static PyObject *prez_alloc_instance(PyObject *type) {
        PyTypeObject *tp = (PyTypeObject *)type;
        return tp->tp_alloc(tp, 0);
    }

    /* Borrowed reference, NULL when the slot is unset. */
    static PyObject *prez_slot_get(PyObject *obj, Py_ssize_t offset) {
        return *(PyObject **)((char *)obj + offset);
    }

    /* Only for a fresh instance from prez_alloc_instance: the slot is NULL. */
    static void prez_slot_init(PyObject *obj, Py_ssize_t offset, PyObject *value) {
        Py_INCREF(value);
        *(PyObject **)((char *)obj + offset) = value;
    }
    """
    Py_ssize_t prez_member_offset(object descr)
    object prez_alloc_instance(object cls)
    PyObject* prez_slot_get(object obj, Py_ssize_t offset) noexcept
    void prez_slot_init(object obj, Py_ssize_t offset, object value) noexcept


def _slot_offsets(cls: type, names: tuple) -> tuple | None:
    """Member offsets of `names` if `cls` is a plain slots dataclass of exactly them."""
    import dataclasses

    if not dataclasses.is_dataclass(cls) or cls.__bases__ != (object,):
        return None
    if tuple(f.name for f in dataclasses.fields(cls)) != names:
        return None
    if hasattr(cls, "__post_init__") or cls.__new__ is not object.__new__:
        return None
    if tuple(getattr(cls, "__slots__", ())) != names:
        return None
    offsets = tuple(prez_member_offset(cls.__dict__[name]) for name in names)
    return None if -1 in offsets else offsets


_entry_offsets = _slot_offsets(Entry, ("index", "term", "kind", "data"))
cdef bint _entry_fast = _entry_offsets is not None
cdef Py_ssize_t _OFF_INDEX = _entry_offsets[0] if _entry_fast else -1
cdef Py_ssize_t _OFF_TERM = _entry_offsets[1] if _entry_fast else -1
cdef Py_ssize_t _OFF_KIND = _entry_offsets[2] if _entry_fast else -1
cdef Py_ssize_t _OFF_DATA = _entry_offsets[3] if _entry_fast else -1


cdef inline object _make_entry(object index, object term, object kind, object data):
    if not _entry_fast:
        return _entry_class(index, term, kind, data)
    entry = prez_alloc_instance(_entry_class)
    prez_slot_init(entry, _OFF_INDEX, index)
    prez_slot_init(entry, _OFF_TERM, term)
    prez_slot_init(entry, _OFF_KIND, kind)
    prez_slot_init(entry, _OFF_DATA, data)
    return entry


cdef enum:
    LENGTH_SIZE = 4  # the u32 frame length
    HEADER_SIZE = 6  # frame length, version, type
    FIXED_BODY_SIZE = 49  # six u64 fields and the flags byte
    ENTRY_HEADER_SIZE = 21  # u64 index, u64 term, u8 kind, u32 data length
    FLAG_REJECT = 0x01
    MAX_MESSAGE_TYPE = 255

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

Hello = namedtuple("Hello", ["name", "client_addr", "cluster_id"])

cdef uint8_t C_WIRE_VERSION = 1
cdef uint64_t C_MAX_TERM = MAX_TERM
cdef uint64_t C_MAX_INDEX = MAX_INDEX
cdef uint8_t C_APPEND = MessageType.APPEND
cdef uint8_t C_SNAPSHOT = MessageType.SNAPSHOT
cdef uint8_t C_VOTE = MessageType.VOTE
cdef uint8_t C_PRE_VOTE = MessageType.PRE_VOTE
cdef uint8_t C_CONFIG = EntryKind.CONFIG
# _known_kinds[k]: whether kind byte k is an EntryKind.
cdef bint _known_kinds[256]
for _k in range(256):
    _known_kinds[_k] = False
for _kind in EntryKind:
    _known_kinds[int(_kind)] = True
cdef uint8_t C_HELLO_TYPE = 0x80
cdef object _entry_class = Entry
cdef object _message_class = Message
cdef object _hello_class = Hello
# _message_types[t] is the MessageType member for wire type t, or None.
cdef list _message_types = [None] * (MAX_MESSAGE_TYPE + 1)
for _member in MessageType:
    _message_types[int(_member)] = _member


# -- encoding -------------------------------------------------------------------


cdef inline const char* _utf8(object text, Py_ssize_t* size, Py_ssize_t limit, str what) except NULL:
    # The UTF-8 form is cached on the str object, so names cost one encode.
    if not isinstance(text, str):
        raise TypeError(f"{what} must be str, not {type(text).__name__}")
    cdef const char* raw = PyUnicode_AsUTF8AndSize(text, size)
    if size[0] > limit:
        raise ValueError(f"{what} too long for the wire ({size[0]} bytes)")
    return raw


cdef inline uint8_t* _put_string(uint8_t* p, const char* raw, Py_ssize_t size) noexcept:
    store_u16(p, <uint16_t>size)
    if size:
        memcpy(p + 2, raw, <size_t>size)
    return p + 2 + size


cdef bytes _new_frame(Py_ssize_t body_size, uint8_t frame_type, uint8_t** body):
    if body_size + 2 > 0xFFFFFFFF:
        raise ValueError("message too large for one frame")
    out = PyBytes_FromStringAndSize(NULL, HEADER_SIZE + body_size)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    store_u32(p, <uint32_t>(body_size + 2))
    p[4] = C_WIRE_VERSION
    p[5] = frame_type
    body[0] = p + HEADER_SIZE
    return out


def encode_message(msg) -> bytes:
    """One frame holding `msg`, entries included."""
    cdef Py_ssize_t msg_type = msg.type
    if msg_type < 0 or msg_type > MAX_MESSAGE_TYPE or _message_types[msg_type] is None:
        raise ValueError(f"unknown message type {msg_type}")
    cdef uint64_t term = msg.term
    cdef uint64_t index = msg.index
    cdef uint64_t log_term = msg.log_term
    cdef uint64_t commit = msg.commit
    cdef uint64_t reject_hint = msg.reject_hint
    cdef uint64_t hint_term = msg.hint_term
    cdef bint reject = msg.reject
    cdef Py_ssize_t src_size, dst_size
    cdef const char* src = _utf8(msg.src, &src_size, 0xFFFF, "src")
    cdef const char* dst = _utf8(msg.dst, &dst_size, 0xFFFF, "dst")
    context = msg.context
    if not PyBytes_Check(context):
        context = bytes(context)
    cdef Py_ssize_t context_size = PyBytes_GET_SIZE(context)
    cdef list entries = msg.entries
    cdef Py_ssize_t count = len(entries)
    if context_size > 0xFFFFFFFF or count > 0xFFFFFFFF:
        raise ValueError("message too large for one frame")

    cdef Py_ssize_t body_size = (
        FIXED_BODY_SIZE + 2 + src_size + 2 + dst_size + 4 + context_size + 4
        + count * ENTRY_HEADER_SIZE
    )
    cdef object data
    cdef PyObject* slot
    for entry in entries:
        slot = NULL
        if _entry_fast and type(entry) is _entry_class:
            slot = prez_slot_get(entry, _OFF_DATA)
        data = <object>slot if slot != NULL else entry.data
        if not PyBytes_Check(data):
            raise TypeError(f"entry data must be bytes, not {type(data).__name__}")
        body_size += PyBytes_GET_SIZE(data)

    cdef uint8_t* p
    cdef bytes out = _new_frame(body_size, <uint8_t>msg_type, &p)
    cdef uint8_t* end = p + body_size
    store_u64(p, term)
    store_u64(p + 8, index)
    store_u64(p + 16, log_term)
    store_u64(p + 24, commit)
    store_u64(p + 32, reject_hint)
    store_u64(p + 40, hint_term)
    p[48] = FLAG_REJECT if reject else 0
    p = _put_string(p + FIXED_BODY_SIZE, src, src_size)
    p = _put_string(p, dst, dst_size)
    store_u32(p, <uint32_t>context_size)
    if context_size:
        memcpy(p + 4, PyBytes_AS_STRING(context), <size_t>context_size)
    p += 4 + context_size
    store_u32(p, <uint32_t>count)
    p += 4

    cdef uint64_t entry_index, entry_term
    cdef uint8_t kind
    cdef Py_ssize_t data_size
    cdef PyObject* index_slot
    cdef PyObject* term_slot
    cdef PyObject* kind_slot
    cdef PyObject* data_slot
    for entry in entries:
        if _entry_fast and type(entry) is _entry_class:
            index_slot = prez_slot_get(entry, _OFF_INDEX)
            term_slot = prez_slot_get(entry, _OFF_TERM)
            kind_slot = prez_slot_get(entry, _OFF_KIND)
            data_slot = prez_slot_get(entry, _OFF_DATA)
        else:
            index_slot = term_slot = kind_slot = data_slot = NULL
        # An unset slot goes through getattr to raise the usual AttributeError.
        entry_index = <object>index_slot if index_slot != NULL else entry.index
        entry_term = <object>term_slot if term_slot != NULL else entry.term
        kind = <object>kind_slot if kind_slot != NULL else entry.kind
        data = <object>data_slot if data_slot != NULL else entry.data
        if not PyBytes_Check(data):
            raise TypeError(f"entry data must be bytes, not {type(data).__name__}")
        data_size = PyBytes_GET_SIZE(data)
        if data_size > 0xFFFFFFFF:
            raise ValueError(f"entry {entry_index} too large for the wire")
        if end - p < ENTRY_HEADER_SIZE + data_size:
            # Only possible if an entry changed between the two passes.
            raise RuntimeError("entries changed while being encoded")
        store_u64(p, entry_index)
        store_u64(p + 8, entry_term)
        p[16] = kind
        store_u32(p + 17, <uint32_t>data_size)
        if data_size:
            memcpy(p + ENTRY_HEADER_SIZE, PyBytes_AS_STRING(data), <size_t>data_size)
        p += ENTRY_HEADER_SIZE + data_size
    if p != end:
        raise RuntimeError("entries changed while being encoded")
    return out


def encode_hello(name: str, client_addr: str, cluster_id: str = "") -> bytes:
    """The HELLO frame a node sends first on each peer connection it opens."""
    cdef Py_ssize_t name_size, addr_size, cluster_size
    cdef const char* raw_name = _utf8(name, &name_size, 0xFFFF, "name")
    cdef const char* raw_addr = _utf8(client_addr, &addr_size, 0xFFFF, "client_addr")
    cdef const char* raw_cluster = _utf8(cluster_id, &cluster_size, 0xFFFF, "cluster_id")
    cdef uint8_t* p
    out = _new_frame(6 + name_size + addr_size + cluster_size, C_HELLO_TYPE, &p)
    p = _put_string(p, raw_name, name_size)
    p = _put_string(p, raw_addr, addr_size)
    _put_string(p, raw_cluster, cluster_size)
    return out


# -- decoding -------------------------------------------------------------------


cdef struct _Cursor:
    const uint8_t* pos  # next unread byte
    const uint8_t* end  # one past the frame's last byte


cdef inline const uint8_t* _take(_Cursor* cursor, Py_ssize_t size, str what) except NULL:
    """The next `size` bytes of the frame; ProtocolError if fewer are left."""
    cdef const uint8_t* start = cursor.pos
    if size > cursor.end - start:
        _truncated(cursor, size, what)
    cursor.pos = start + size
    return start


cdef int _truncated(_Cursor* cursor, Py_ssize_t size, str what) except -1:
    raise ProtocolError(
        f"wire: truncated frame: {what} needs {size} bytes, {cursor.end - cursor.pos} left"
    )


cdef str _take_string(_Cursor* cursor, str what):
    cdef Py_ssize_t size = load_u16(_take(cursor, 2, what))
    cdef const uint8_t* raw = _take(cursor, size, what)
    try:
        return PyUnicode_DecodeUTF8(<const char*>raw, size, NULL)
    except UnicodeDecodeError:
        raise ProtocolError(f"wire: {what} is not valid UTF-8")


cdef int _open_frame(object frame, _Cursor* cursor) except -1:
    """Check a whole frame's header; leave `cursor` on its body, return its type."""
    if not PyBytes_Check(frame):
        raise TypeError(f"a frame must be bytes, not {type(frame).__name__}")
    cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(frame)
    if size < HEADER_SIZE:
        raise ProtocolError(f"wire: frame of {size} bytes is shorter than a header")
    cdef uint32_t length = load_u32(p)
    if length != size - LENGTH_SIZE:
        raise ProtocolError(
            f"wire: frame length field {length} does not match "
            f"{size - LENGTH_SIZE} bytes of frame"
        )
    if p[4] != C_WIRE_VERSION:
        raise ProtocolError(f"wire: unsupported version {p[4]}")
    cursor.pos = p + HEADER_SIZE
    cursor.end = p + size
    return p[5]


cdef int _expect_end(_Cursor* cursor) except -1:
    if cursor.pos != cursor.end:
        raise ProtocolError(f"wire: {cursor.end - cursor.pos} bytes of trailing garbage")
    return 0


cdef inline object _as_frame(object frame):
    # bytearray / memoryview frames are copied once; bytes are used in place.
    return frame if PyBytes_Check(frame) else bytes(frame)


def frame_type(frame) -> int:
    """The type byte of a whole frame: HELLO_TYPE or a MessageType value."""
    cdef _Cursor cursor
    return _open_frame(_as_frame(frame), &cursor)


cdef int _check_fixed(const uint8_t* fixed) except -1:
    cdef uint64_t value
    cdef int k
    for k in range(6):
        value = load_u64(fixed + 8 * k)
        # term, index, log_term, commit, reject_hint, hint_term
        if value > (C_MAX_TERM if k in (0, 2, 5) else C_MAX_INDEX):
            _over_limit(k, value)
    return 0


cdef int _over_limit(int k, uint64_t value) except -1:
    name = ("term", "index", "log_term", "commit", "reject_hint", "hint_term")[k]
    limit = MAX_TERM if k in (0, 2, 5) else MAX_INDEX
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


def decode_message(frame) -> Message:
    """The Message in one whole frame (as FrameReader.feed returns them);
    ProtocolError if the frame is malformed or the message is not one a
    correct node sends."""
    frame = _as_frame(frame)
    cdef _Cursor cursor
    cdef int raw_type = _open_frame(frame, &cursor)
    msg_type = _message_types[raw_type]
    if msg_type is None:
        raise ProtocolError(f"wire: unknown message type {raw_type}")
    cdef const uint8_t* fixed = _take(&cursor, FIXED_BODY_SIZE, "message header")
    cdef uint8_t flags = fixed[48]
    if flags & ~FLAG_REJECT:
        raise ProtocolError(f"wire: unknown flags {flags:#x}")
    _check_fixed(fixed)
    cdef uint64_t term = load_u64(fixed)
    cdef uint64_t index = load_u64(fixed + 8)
    cdef uint64_t log_term = load_u64(fixed + 16)
    src = _take_string(&cursor, "src")
    dst = _take_string(&cursor, "dst")
    cdef Py_ssize_t context_size = load_u32(_take(&cursor, 4, "context length"))
    cdef const uint8_t* context = _take(&cursor, context_size, "context")
    cdef Py_ssize_t count = load_u32(_take(&cursor, 4, "entry count"))
    # Each entry takes at least its fixed header: a count that cannot fit in
    # the rest of the frame is refused before anything is allocated for it.
    if count > (cursor.end - cursor.pos) // ENTRY_HEADER_SIZE:
        raise ProtocolError(f"wire: entry count {count} does not fit in the frame")
    if count and raw_type != C_APPEND:
        raise ProtocolError(f"wire: a {msg_type.name} message carries no entries")
    if raw_type == C_APPEND and log_term > term:
        raise ProtocolError(f"wire: APPEND prev log term {log_term} above term {term}")
    cdef list entries = PyList_New(count)
    cdef Py_ssize_t k
    cdef const uint8_t* header
    cdef Py_ssize_t data_size
    cdef object entry
    cdef object data
    cdef uint64_t entry_index, entry_term
    # Both stay <= MAX_INDEX + 1 and MAX_TERM: no wrap-around.
    cdef uint64_t expected_index = index + 1
    cdef uint64_t previous_term = log_term
    for k in range(count):
        header = _take(&cursor, ENTRY_HEADER_SIZE, "entry header")
        entry_index = load_u64(header)
        entry_term = load_u64(header + 8)
        # (A list dropped half filled is fine: its empty slots are NULL.)
        if entry_index != expected_index or entry_index > C_MAX_INDEX:
            raise ProtocolError(
                f"wire: entry index {entry_index} where {expected_index} belongs"
            )
        if entry_term < previous_term or entry_term > term:
            raise ProtocolError(
                f"wire: entry {entry_index} has term {entry_term} out of order "
                f"(after {previous_term}, message term {term})"
            )
        if not _known_kinds[header[16]]:
            raise ProtocolError(
                f"wire: entry {entry_index} of unknown kind {header[16]}"
            )
        data_size = load_u32(header + 17)
        data = PyBytes_FromStringAndSize(
            <const char*>_take(&cursor, data_size, "entry data"), data_size
        )
        if header[16] == C_CONFIG:
            check_config_entry(entry_index, data)
        entry = _make_entry(entry_index, entry_term, header[16], data)
        Py_INCREF(entry)
        PyList_SET_ITEM(entries, k, entry)
        expected_index += 1
        previous_term = entry_term
    _expect_end(&cursor)
    if (raw_type == C_VOTE or raw_type == C_PRE_VOTE) and log_term > term:
        raise ProtocolError(
            f"wire: {msg_type.name} last log term {log_term} above term {term}"
        )
    if raw_type == C_SNAPSHOT and not (index >= 1 and 1 <= log_term <= term):
        raise ProtocolError(
            f"wire: SNAPSHOT offer of {index}/{log_term} in term {term} names no snapshot"
        )
    return _message_class(
        msg_type,
        term,
        src,
        dst,
        index,
        log_term,
        load_u64(fixed + 24),
        (flags & FLAG_REJECT) != 0,
        load_u64(fixed + 32),
        load_u64(fixed + 40),
        entries,
        PyBytes_FromStringAndSize(<const char*>context, context_size),
    )


def decode_hello(frame):
    """The Hello (name, client_addr, cluster_id) in one whole HELLO frame."""
    frame = _as_frame(frame)
    cdef _Cursor cursor
    cdef int raw_type = _open_frame(frame, &cursor)
    if raw_type != C_HELLO_TYPE:
        raise ProtocolError(f"wire: expected a HELLO frame, got type {raw_type}")
    name = _take_string(&cursor, "name")
    client_addr = _take_string(&cursor, "client_addr")
    cluster_id = _take_string(&cursor, "cluster_id")
    _expect_end(&cursor)
    return _hello_class(name, client_addr, cluster_id)


# -- stream splitting -----------------------------------------------------------


@cython.final
cdef class FrameReader:
    """Splits a byte stream from a peer into whole frames.

    A frame is refused (ProtocolError) as soon as its header announces a
    length over the cap for its type, before any of it is buffered:
    `type_limits` maps a type byte to its cap, and `max_frame_size` caps
    every other type. Lengths count the bytes after the length field.
    """

    cdef bytearray _buffer  # bytes received; frames start at _start
    cdef Py_ssize_t _start  # offset of the first byte not yet returned
    cdef readonly Py_ssize_t max_frame_size  # the cap of types without their own
    cdef Py_ssize_t _limits[256]  # the cap per type byte
    cdef Py_ssize_t _largest  # the largest of them

    def __cinit__(self, Py_ssize_t max_frame_size=DEFAULT_MAX_FRAME_SIZE, type_limits=None):
        self._buffer = bytearray()
        self._start = 0
        self.set_limits(max_frame_size, type_limits)

    def set_limits(self, Py_ssize_t max_frame_size, type_limits=None) -> None:
        """New caps, for every frame not yet returned (a handshake's end)."""
        if max_frame_size < 2:
            raise ValueError("max_frame_size must be at least 2")
        cdef Py_ssize_t limits[256]
        cdef Py_ssize_t k
        for k in range(256):
            limits[k] = max_frame_size
        if type_limits:
            for frame_type, limit in type_limits.items():
                if not 0 <= frame_type <= 255 or limit < 2:
                    raise ValueError(f"bad frame limit {limit} for type {frame_type}")
                limits[<Py_ssize_t>frame_type] = limit
        cdef Py_ssize_t largest = 0
        for k in range(256):
            self._limits[k] = limits[k]
            if limits[k] > largest:
                largest = limits[k]
        self._largest = largest
        self.max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return PyByteArray_GET_SIZE(self._buffer) - self._start

    @property
    def partial_size(self) -> int:
        """The whole size (length field included) of the frame being received,
        once its header is in and accepted; 0 when no frame is under way."""
        if PyByteArray_GET_SIZE(self._buffer) - self._start < HEADER_SIZE:
            return 0
        cdef const uint8_t* base = <const uint8_t*>PyByteArray_AS_STRING(self._buffer)
        return LENGTH_SIZE + <Py_ssize_t>load_u32(base + self._start)

    def feed(self, data, Py_ssize_t max_frames=0) -> list:
        """Add received bytes; return the frames now complete (length included).

        With `max_frames` > 0, at most that many: the rest stays buffered,
        unchecked, until the next feed (b"" will do), so that the caps can
        change after a handshake frame that arrived together with others.
        """
        self._buffer += data
        cdef list frames = []
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(self._buffer)
        cdef const uint8_t* base = <const uint8_t*>PyByteArray_AS_STRING(self._buffer)
        cdef Py_ssize_t pos = self._start
        cdef Py_ssize_t taken = 0
        cdef uint32_t length
        cdef uint8_t frame_type
        while size - pos >= LENGTH_SIZE:
            if max_frames > 0 and taken >= max_frames:
                break
            length = load_u32(base + pos)
            if length > self._largest:
                raise ProtocolError(
                    f"wire: frame length {length} over the limit of {self._largest}"
                )
            if length < 2:
                raise ProtocolError(f"wire: frame length {length} is too short")
            if size - pos < HEADER_SIZE:
                break
            frame_type = base[pos + 5]
            if length > self._limits[frame_type]:
                raise ProtocolError(
                    f"wire: frame length {length} over the limit of "
                    f"{self._limits[frame_type]} for type {frame_type}"
                )
            if size - pos - LENGTH_SIZE < length:
                break
            frames.append(PyBytes_FromStringAndSize(<const char*>base + pos, LENGTH_SIZE + length))
            taken += 1
            pos += LENGTH_SIZE + length
        if pos == size:
            del self._buffer[:]
            self._start = 0
        elif pos > 65536 and pos * 2 > size:
            # Drop consumed bytes once they outweigh the partial frame kept.
            del self._buffer[:pos]
            self._start = 0
        else:
            self._start = pos
        return frames
