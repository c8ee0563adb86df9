"""State-machine snapshots: the byte format of a whole `KVStore`, streamed.

Pure: no files, no clock. `dump` hands the bytes to a `write(bytes)` callable
in pieces of about `CHUNK_SIZE`, and `load` / `verify` pull them through a
`read(n)` callable, so neither end ever holds the whole snapshot in memory
(only the current chunk and the value being decoded). Files, retention and
transfer to followers live in `prez.storage.snapshot`. Must not import
prez.raft, prez.storage or prez.server, nor do I/O.

Format, version 1. Integers are little-endian; `blob` is `u32 length` then
that many bytes; `f64` is an IEEE 754 double.

    header   "PREZSNAP"         magic, 8 bytes
             u16 version        FORMAT_VERSION
             u64 index          last log index included in the state
             u64 term           term of that entry
             u64 created_ms     wall-clock creation time (informational)
             u32 databases      number of databases of the store dumped
             u16 member count   then per member: u16 length, UTF-8 text
                                (membership at `index`, opaque here)
    body     records, each starting with a one-byte tag:
      0xFE   database           u32 db index, u64 key count; the keys of
                                that database follow. Only non-empty
                                databases get one, in increasing order.
      0x01   string             [i64 expiry] u32 key length, u32 value
                                length, key, value
      0x02   hash               [i64 expiry] blob key, u32 count,
                                count x (blob field, blob value)
      0x03   list               [i64 expiry] blob key, u32 count, count x blob
      0x04   set                [i64 expiry] blob key, u32 count, count x blob
                                (members in ascending byte order)
      0x05   sorted set         [i64 expiry] blob key, u32 count,
                                count x (blob member, f64 score) in
                                ascending (score, member) order
             A key's tag has bit 0x80 set when the key has an expiry: the
             absolute time in ms follows the tag as i64.
      0xFF   end                (no payload)
    trailer  u64 record count   number of key records in the body
             u32 CRC32C         of every byte before this field

Deterministic: the same store contents give the same bytes on every node.
Keys and hash fields go in dict insertion order (a function of the log
alone); set members are sorted, since set iteration order depends on
PYTHONHASHSEED. Keys whose expiry has passed are kept: they are still part
of the replicated state until a write removes them. After `load`, each
database's `expires` dict follows key order; its order only steers which
keys the leader's active-expiry sweep proposes first, never the state.

Every malformed input raises `SnapshotError` saying what is wrong and at
which byte offset. A declared length is never trusted for allocation: bytes
are read in chunks until the length is met or the stream ends, and when the
total size is known (`size=`) a length running past it is refused at once.
"""

from __future__ import annotations

import gc
import math
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prez._core import select
from prez.errors import StorageError
from prez.kv.keyspace import KVStore
from prez.kv.zsets import ZSet

if TYPE_CHECKING:
    from prez._core import log as _log
else:
    _log = select("log")

crc32c = _log.crc32c

MAGIC = b"PREZSNAP"
FORMAT_VERSION = 1
CHUNK_SIZE = 1 << 20

TAG_STRING = 0x01
TAG_HASH = 0x02
TAG_LIST = 0x03
TAG_SET = 0x04
TAG_ZSET = 0x05
EXPIRY_FLAG = 0x80
TAG_DATABASE = 0xFE
TAG_END = 0xFF

MAX_MEMBER_BYTES = 0xFFFF
MAX_MEMBERS = 0xFFFF

_HEADER = struct.Struct("<8sHQQQIH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_DATABASE = struct.Struct("<BIQ")
_STRING = struct.Struct("<BII")
_STRING_EXPIRING = struct.Struct("<BqII")
_KEY = struct.Struct("<BI")
_KEY_EXPIRING = struct.Struct("<BqI")
_END = struct.Struct("<BQ")
_CRC = struct.Struct("<I")

# The end record plus trailer: every record starts at least this far from
# the end of a well-formed snapshot, so reading this much ahead is safe.
_TAIL_SIZE = _END.size + _CRC.size
_TYPE_NAMES = {
    TAG_STRING: "string",
    TAG_HASH: "hash",
    TAG_LIST: "list",
    TAG_SET: "set",
    TAG_ZSET: "sorted set",
}
_COLLECTION_TAGS = {dict: TAG_HASH, deque: TAG_LIST, set: TAG_SET, ZSet: TAG_ZSET}


class SnapshotError(StorageError):
    """A snapshot is malformed, damaged or cannot be used."""


@dataclass(slots=True)
class SnapshotMeta:
    """What a snapshot covers: the log position and membership it replaces."""

    index: int
    term: int
    members: list[str] = field(default_factory=list)
    created_ms: int = 0


# -- writing ----------------------------------------------------------------------


class _Sink:
    """Batches small records into ~CHUNK_SIZE writes and keeps the running CRC."""

    __slots__ = ("buffer", "crc", "write", "written")

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self.write = write
        self.buffer = bytearray()
        self.crc = 0
        self.written = 0

    def flush(self) -> None:
        if self.buffer:
            self.pass_through(bytes(self.buffer))
            # clear(), not a new bytearray: the dump loops hold this object.
            self.buffer.clear()

    def pass_through(self, data: bytes) -> None:
        """Write `data` as it is (a big value is not copied into the buffer)."""
        self.crc = crc32c(data, self.crc)
        self.write(data)
        self.written += len(data)


def encode_header(meta: SnapshotMeta, databases: int) -> bytes:
    """The header bytes for `meta` (ValueError if it cannot be encoded)."""
    if len(meta.members) > MAX_MEMBERS:
        raise ValueError(f"too many members for a snapshot ({len(meta.members)})")
    try:
        parts = [
            _HEADER.pack(
                MAGIC,
                FORMAT_VERSION,
                meta.index,
                meta.term,
                meta.created_ms,
                databases,
                len(meta.members),
            )
        ]
    except struct.error as exc:
        raise ValueError(f"snapshot header out of range: {meta!r} ({exc})")
    for member in meta.members:
        encoded = member.encode()
        if len(encoded) > MAX_MEMBER_BYTES:
            raise ValueError(f"member entry too long ({len(encoded)} bytes)")
        parts.append(_U16.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)


def dump(store: KVStore, write: Callable[[bytes], None], meta: SnapshotMeta) -> int:
    """Serialize `store` through `write`; returns the number of bytes written.

    Raises ValueError for a store or meta that the format cannot hold (a
    value type it does not know, a length beyond 32 bits, an expiry beyond
    64 bits); by then `write` may have been given part of the snapshot.
    """
    try:
        return _dump(store, write, meta)
    except struct.error as exc:
        raise ValueError(f"store cannot be snapshotted: {exc}") from exc


def _dump(store: KVStore, write: Callable[[bytes], None], meta: SnapshotMeta) -> int:
    sink = _Sink(write)
    buffer = sink.buffer
    buffer += encode_header(meta, len(store.dbs))
    pack_string = _STRING.pack
    pack_string_expiring = _STRING_EXPIRING.pack
    records = 0
    for index, db in enumerate(store.dbs):
        data = db.data
        if not data:
            continue
        expires = db.expires
        buffer += _DATABASE.pack(TAG_DATABASE, index, len(data))
        for key, value in data.items():
            when = expires.get(key) if expires else None
            if type(value) is bytes:
                # The common case, inline: small strings dominate most stores.
                if when is None:
                    buffer += pack_string(TAG_STRING, len(key), len(value))
                else:
                    buffer += pack_string_expiring(
                        TAG_STRING | EXPIRY_FLAG, when, len(key), len(value)
                    )
                buffer += key
                if len(value) >= CHUNK_SIZE:
                    sink.flush()
                    sink.pass_through(value)
                else:
                    buffer += value
            else:
                _dump_collection(sink, key, value, when)
            records += 1
            if len(buffer) >= CHUNK_SIZE:
                sink.flush()
    buffer += _END.pack(TAG_END, records)
    crc = crc32c(buffer, sink.crc)
    buffer += _CRC.pack(crc)
    tail = bytes(buffer)
    buffer.clear()
    write(tail)
    return sink.written + len(tail)


def _dump_collection(sink: _Sink, key: bytes, value: Any, when: int | None) -> None:
    kind = type(value)
    tag = _COLLECTION_TAGS.get(kind)
    if tag is None:
        raise ValueError(
            f"cannot snapshot key {key!r}: unknown value type {kind.__name__}"
        )
    buffer = sink.buffer
    if when is None:
        buffer += _KEY.pack(tag, len(key))
    else:
        buffer += _KEY_EXPIRING.pack(tag | EXPIRY_FLAG, when, len(key))
    buffer += key
    buffer += _U32.pack(len(value))
    pack_u32 = _U32.pack
    if tag == TAG_HASH:
        for name, item in value.items():
            buffer += pack_u32(len(name))
            buffer += name
            buffer += pack_u32(len(item))
            buffer += item
            if len(buffer) >= CHUNK_SIZE:
                sink.flush()
    elif tag == TAG_ZSET:
        pack_f64 = _F64.pack
        for score, member in value.order:
            buffer += pack_u32(len(member))
            buffer += member
            buffer += pack_f64(score)
            if len(buffer) >= CHUNK_SIZE:
                sink.flush()
    else:
        for item in sorted(value) if tag == TAG_SET else value:
            buffer += pack_u32(len(item))
            buffer += item
            if len(buffer) >= CHUNK_SIZE:
                sink.flush()


def dumps(store: KVStore, meta: SnapshotMeta) -> bytes:
    """The whole snapshot as one bytes object (for small stores and tests)."""
    parts: list[bytes] = []
    dump(store, parts.append, meta)
    return b"".join(parts)


# -- reading ----------------------------------------------------------------------


class _Source:
    """Pulls chunks through `read(n)`; `data[pos:]` is what is not consumed yet.

    The CRC covers the bytes dropped from the front of `data` so far; `base`
    is the stream offset of `data[0]`.
    """

    __slots__ = ("base", "crc", "data", "pos", "read", "size")

    def __init__(self, read: Callable[[int], bytes], size: int | None) -> None:
        self.read = read
        self.size = size
        self.data = b""
        self.pos = 0
        self.base = 0
        self.crc = 0

    def offset(self, pos: int) -> int:
        return self.base + pos

    def fill(self, data: bytes, pos: int, count: int, what: str) -> tuple[bytes, int]:
        """Make `count` bytes available from `pos`: returns the new (data, pos)."""
        if pos:
            self.crc = crc32c(memoryview(data)[:pos], self.crc)
            self.base += pos
        rest = data[pos:]
        size = self.size
        if size is not None and self.base + count > size:
            raise SnapshotError(
                f"snapshot is truncated or a length is damaged: {what} at byte "
                f"offset {self.base} needs {count} bytes but only "
                f"{size - self.base} remain in the {size}-byte snapshot"
            )
        parts = [rest]
        have = len(rest)
        while have < count:
            # Never read(count): file reads allocate the size asked for, and
            # `count` may come from a damaged length field.
            chunk = self.read(CHUNK_SIZE)
            if not chunk:
                raise SnapshotError(
                    f"snapshot is truncated: {what} at byte offset {self.base} "
                    f"needs {count} bytes, the stream ends after {have}"
                )
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.data = data
        self.pos = 0
        return data, 0

    def take(self, count: int, what: str) -> bytes:
        data, pos = self.data, self.pos
        if pos + count > len(data):
            data, pos = self.fill(data, pos, count, what)
        self.pos = pos + count
        return data[pos : pos + count]

    def unpack(self, layout: struct.Struct, what: str) -> tuple[Any, ...]:
        data, pos = self.data, self.pos
        if pos + layout.size > len(data):
            data, pos = self.fill(data, pos, layout.size, what)
        self.pos = pos + layout.size
        return layout.unpack_from(data, pos)

    def check_count(self, count: int, least_bytes_each: int, what: str) -> None:
        """Refuse a count that cannot fit in what remains of a known-size stream."""
        if self.size is None:
            return
        remaining = self.size - self.base - self.pos
        if count * least_bytes_each > remaining:
            raise SnapshotError(
                f"{what} at byte offset {self.offset(self.pos)} claims {count} "
                f"elements but only {remaining} bytes remain in the snapshot"
            )

    def blobs(self, count: int, what: str) -> list[bytes]:
        """`count` length-prefixed byte strings."""
        self.check_count(count, _U32.size, what)
        data, pos = self.data, self.pos
        end = len(data)
        unpack_u32 = _U32.unpack_from
        found: list[bytes] = []
        append = found.append
        for _ in range(count):
            if pos + 4 > end:
                data, pos = self.fill(data, pos, 4, what)
                end = len(data)
            (length,) = unpack_u32(data, pos)
            pos += 4
            stop = pos + length
            if stop > end:
                data, pos = self.fill(data, pos, length, what)
                end = len(data)
                stop = length
            append(data[pos:stop])
            pos = stop
        self.data, self.pos = data, pos
        return found

    def scored_members(self, count: int, what: str) -> list[tuple[bytes, float]]:
        """`count` (member, score) pairs of a sorted set; no NaN scores."""
        self.check_count(count, _U32.size + _F64.size, what)
        data, pos = self.data, self.pos
        end = len(data)
        unpack_u32 = _U32.unpack_from
        unpack_f64 = _F64.unpack_from
        found: list[tuple[bytes, float]] = []
        append = found.append
        for _ in range(count):
            if pos + 4 > end:
                data, pos = self.fill(data, pos, 4, what)
                end = len(data)
            (length,) = unpack_u32(data, pos)
            pos += 4
            stop = pos + length + 8
            if stop > end:
                data, pos = self.fill(data, pos, length + 8, what)
                end = len(data)
                stop = length + 8
            (score,) = unpack_f64(data, stop - 8)
            if math.isnan(score):
                raise SnapshotError(
                    f"{what} at byte offset {self.offset(stop - 8)} has a NaN score"
                )
            append((data[pos : stop - 8], score))
            pos = stop
        self.data, self.pos = data, pos
        return found

    def expect_end_of_stream(self) -> None:
        extra = len(self.data) - self.pos
        if extra == 0:
            extra = len(self.read(CHUNK_SIZE))
        if extra:
            raise SnapshotError(
                f"unexpected bytes after the snapshot trailer at byte offset "
                f"{self.offset(self.pos)}"
            )


def _read_header(source: _Source) -> tuple[SnapshotMeta, int]:
    """The header: (meta, number of databases of the store dumped)."""
    if source.size is not None and source.size < _HEADER.size:
        raise SnapshotError(
            f"too short to be a snapshot ({source.size} bytes, the header alone "
            f"is {_HEADER.size})"
        )
    fixed = source.take(_HEADER.size, "header")
    magic, version, index, term, created_ms, databases, member_count = _HEADER.unpack(
        fixed
    )
    if magic != MAGIC:
        raise SnapshotError(f"not a Prez snapshot (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise SnapshotError(
            f"unsupported snapshot format version {version} "
            f"(this build reads version {FORMAT_VERSION})"
        )
    members = []
    for number in range(member_count):
        what = f"member entry {number}"
        (length,) = source.unpack(_U16, what)
        raw = source.take(length, what)
        try:
            members.append(raw.decode())
        except UnicodeDecodeError:
            raise SnapshotError(f"{what} is not valid UTF-8: {raw!r}")
    return SnapshotMeta(index, term, members, created_ms), databases


def load(
    read: Callable[[int], bytes], databases: int, *, size: int | None = None
) -> tuple[SnapshotMeta, KVStore]:
    """Rebuild a store with `databases` databases from a snapshot stream.

    `read(n)` returns up to n bytes, b"" at the end. `size`, when known, is
    the stream's total length: lengths running past it are refused before
    any reading. The CRC is checked at the end, so a store is returned only
    for an intact snapshot; any defect raises SnapshotError. The cyclic
    garbage collector (process-wide) is paused while loading.
    """
    # Loading allocates millions of acyclic objects (bytes, dicts, deques),
    # each allocation counting towards a cyclic GC pass that finds nothing:
    # pausing the collector halves the time for stores of small collections.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load(read, databases, size)
    finally:
        if collecting:
            gc.enable()


def _load(
    read: Callable[[int], bytes], databases: int, size: int | None
) -> tuple[SnapshotMeta, KVStore]:
    source = _Source(read, size)
    meta, _ = _read_header(source)
    store = KVStore(databases)
    unpack_string = _STRING.unpack_from
    data, pos = source.data, source.pos
    end = len(data)
    records = 0
    current = -1  # database whose keys are being read
    declared = 0  # its key count from the database record
    first_record = 0  # value of `records` when it started
    db_data: dict[bytes, Any] = {}
    db_expires: dict[bytes, int] = {}
    while True:
        if pos + _TAIL_SIZE > end:
            data, pos = source.fill(data, pos, _TAIL_SIZE, "record")
            end = len(data)
        tag = data[pos]
        if tag == TAG_STRING:
            _, key_length, value_length = unpack_string(data, pos)
            stop = pos + _STRING.size + key_length + value_length
            if stop > end:
                data, pos = source.fill(data, pos, stop - pos, "string record")
                end = len(data)
                stop = _STRING.size + key_length + value_length
            if current < 0:
                raise _outside_database(source, pos)
            key_stop = pos + _STRING.size + key_length
            db_data[data[pos + _STRING.size : key_stop]] = data[key_stop:stop]
            pos = stop
            records += 1
            continue
        if tag in (TAG_DATABASE, TAG_END):
            if current >= 0:
                _check_database_count(
                    source, pos, current, declared, records - first_record, db_data
                )
            if tag == TAG_END:
                break
            _, number, declared = _DATABASE.unpack_from(data, pos)
            if number <= current:
                raise SnapshotError(
                    f"database record at byte offset {source.offset(pos)} is for "
                    f"database {number}, not after database {current}"
                )
            if number >= databases:
                raise SnapshotError(
                    f"snapshot holds keys in database {number} but only "
                    f"{databases} databases are configured"
                )
            if declared == 0:
                raise SnapshotError(
                    f"database record at byte offset {source.offset(pos)} "
                    "declares no keys"
                )
            current = number
            first_record = records
            db_data = store.dbs[number].data
            db_expires = store.dbs[number].expires
            pos += _DATABASE.size
            continue
        if _TYPE_NAMES.get(tag & ~EXPIRY_FLAG) is None:
            raise SnapshotError(
                f"unknown record tag 0x{tag:02x} at byte offset {source.offset(pos)}"
            )
        if current < 0:
            raise _outside_database(source, pos)
        source.data, source.pos = data, pos
        key, value, when = _read_key_record(source, tag)
        data, pos = source.data, source.pos
        end = len(data)
        db_data[key] = value
        if when is not None:
            db_expires[key] = when
        records += 1

    # `pos` is at the end record: the CRC covers up to the checksum field.
    crc_stop = pos + _END.size
    _, declared_records = _END.unpack_from(data, pos)
    (stored_crc,) = _CRC.unpack_from(data, crc_stop)
    computed_crc = crc32c(memoryview(data)[:crc_stop], source.crc)
    if computed_crc != stored_crc:
        raise SnapshotError(
            f"checksum mismatch: trailer says 0x{stored_crc:08x}, the data gives "
            f"0x{computed_crc:08x}"
        )
    if declared_records != records:
        raise SnapshotError(
            f"trailer counts {declared_records} records but the body holds {records}"
        )
    source.data, source.pos = data, crc_stop + _CRC.size
    source.expect_end_of_stream()
    return meta, store


def _outside_database(source: _Source, pos: int) -> SnapshotError:
    return SnapshotError(
        f"key record at byte offset {source.offset(pos)} comes before any "
        "database record"
    )


def _check_database_count(
    source: _Source,
    pos: int,
    number: int,
    declared: int,
    read: int,
    keys: dict[bytes, Any],
) -> None:
    if read != declared:
        raise SnapshotError(
            f"database {number} declares {declared} keys but {read} records "
            f"precede byte offset {source.offset(pos)}"
        )
    if len(keys) != declared:
        raise SnapshotError(
            f"database {number} holds duplicate keys ({declared} records, "
            f"{len(keys)} distinct keys)"
        )


def _read_key_record(source: _Source, tag: int) -> tuple[bytes, Any, int | None]:
    """One record other than a plain string without expiry."""
    start = source.offset(source.pos)
    kind = tag & ~EXPIRY_FLAG
    what = f"{_TYPE_NAMES[kind]} record at byte offset {start}"
    when: int | None = None
    if tag & EXPIRY_FLAG:
        if kind == TAG_STRING:
            _, when, key_length, value_length = source.unpack(_STRING_EXPIRING, what)
            key = source.take(key_length, what)
            return key, source.take(value_length, what), when
        _, when, key_length = source.unpack(_KEY_EXPIRING, what)
    else:
        _, key_length = source.unpack(_KEY, what)
    key = source.take(key_length, what)
    (count,) = source.unpack(_U32, what)
    value: Any
    if kind == TAG_HASH:
        items = source.blobs(2 * count, what)
        value = dict(zip(items[::2], items[1::2], strict=True))
        distinct = len(value)
    elif kind == TAG_LIST:
        value = deque(source.blobs(count, what))
        distinct = count
    elif kind == TAG_SET:
        value = set(source.blobs(count, what))
        distinct = len(value)
    else:
        value = ZSet.from_items(source.scored_members(count, what))
        distinct = len(value)
    if distinct != count:
        raise SnapshotError(f"{what} holds duplicate elements")
    return key, value, when


def loads(data: bytes, databases: int) -> tuple[SnapshotMeta, KVStore]:
    """`load` from one bytes object."""
    view = memoryview(data)
    position = 0

    def read(count: int) -> bytes:
        nonlocal position
        chunk = bytes(view[position : position + count])
        position += len(chunk)
        return chunk

    return load(read, databases, size=len(data))


def verify(
    read: Callable[[int], bytes], *, size: int | None = None
) -> tuple[SnapshotMeta, int]:
    """Check header and checksum in one streaming pass, building nothing.

    Returns (meta, record count from the trailer). The records' structure
    is not parsed: a matching CRC means the bytes are the ones `dump` wrote,
    which is what a receiver needs to know before keeping a transfer.
    """
    source = _Source(read, size)
    meta, _ = _read_header(source)
    crc = crc32c(memoryview(source.data)[: source.pos], source.crc)
    held = source.data[source.pos :]
    total = source.offset(source.pos) + len(held)
    while True:
        # Keep back what may be the end record and trailer.
        if len(held) > _TAIL_SIZE:
            crc = crc32c(memoryview(held)[: len(held) - _TAIL_SIZE], crc)
            held = held[len(held) - _TAIL_SIZE :]
        chunk = read(CHUNK_SIZE)
        if not chunk:
            break
        total += len(chunk)
        held += chunk
    if len(held) < _TAIL_SIZE:
        raise SnapshotError(
            f"snapshot is truncated: {total} bytes, too short for its trailer"
        )
    if size is not None and total != size:
        raise SnapshotError(f"snapshot stream has {total} bytes, expected {size}")
    tag, records = _END.unpack_from(held)
    (stored_crc,) = _CRC.unpack_from(held, _END.size)
    computed_crc = crc32c(memoryview(held)[: _END.size], crc)
    if computed_crc != stored_crc:
        raise SnapshotError(
            f"checksum mismatch: trailer says 0x{stored_crc:08x}, the data gives "
            f"0x{computed_crc:08x}"
        )
    if tag != TAG_END:
        raise SnapshotError(f"no end record before the trailer (tag 0x{tag:02x})")
    return meta, records
