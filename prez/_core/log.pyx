# cython: language_level=3
"""WAL record framing and CRC32C, compiled (twin: `prez._core.log_py`).

A record is `u32 payload length | u32 CRC32C of payload | payload`, with the
payload `u64 index | u64 term | u8 kind | data`, all little-endian.
`frame_entries` turns a batch of entries into one buffer; `scan_records`
reads a buffer of records back and says how it ends: cleanly, with a torn
tail (a crash mid-write) or with corruption (damage with good data after it).

Pure computation over bytes: no I/O, and nothing from prez.server or
prez.storage may be imported here.
"""

cimport cython
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_Append
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from prez._core.lebytes cimport load_u32, load_u64, store_u32, store_u64

from enum import IntEnum

from prez.raft.types import Entry


cdef enum:
    HEADER_SIZE = 8  # u32 payload length + u32 CRC32C
    PAYLOAD_FIXED_SIZE = 17  # u64 index + u64 term + u8 kind, before the data

# The Castagnoli polynomial 0x1EDC6F41, bit-reversed for an LSB-first CRC.
cdef uint32_t CRC32C_POLY_REFLECTED = 0x82F63B78

RECORD_HEADER_SIZE = HEADER_SIZE
RECORD_OVERHEAD = HEADER_SIZE + PAYLOAD_FIXED_SIZE


class ScanStatus(IntEnum):
    CLEAN = 0  # the buffer ends exactly at the end of a good record
    TORN = 1  # damage at the tail and nothing good after it: a crash mid-write
    CORRUPT = 2  # a bad record with at least one good record after it


# Eight tables of 256 entries each: slice-by-8 folds eight input bytes per
# step, table k giving the CRC contribution of a byte k positions further on.
cdef uint32_t CRC_TABLE[8][256]


cdef void _init_crc_table() noexcept:
    cdef uint32_t crc
    cdef int i, bit, k
    for i in range(256):
        crc = <uint32_t>i
        for bit in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ CRC32C_POLY_REFLECTED
            else:
                crc = crc >> 1
        CRC_TABLE[0][i] = crc
    for i in range(256):
        for k in range(1, 8):
            CRC_TABLE[k][i] = (CRC_TABLE[k - 1][i] >> 8) ^ CRC_TABLE[0][CRC_TABLE[k - 1][i] & 0xFF]


_init_crc_table()


@cython.boundscheck(False)
@cython.wraparound(False)
cdef uint32_t _crc32c_update(uint32_t crc, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t lo, hi
    crc = ~crc
    while n >= 8:
        lo = load_u32(p) ^ crc
        hi = load_u32(p + 4)
        crc = (
            CRC_TABLE[7][lo & 0xFF]
            ^ CRC_TABLE[6][(lo >> 8) & 0xFF]
            ^ CRC_TABLE[5][(lo >> 16) & 0xFF]
            ^ CRC_TABLE[4][lo >> 24]
            ^ CRC_TABLE[3][hi & 0xFF]
            ^ CRC_TABLE[2][(hi >> 8) & 0xFF]
            ^ CRC_TABLE[1][(hi >> 16) & 0xFF]
            ^ CRC_TABLE[0][hi >> 24]
        )
        p += 8
        n -= 8
    while n > 0:
        crc = (crc >> 8) ^ CRC_TABLE[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return ~crc


def crc32c(data, uint32_t crc=0) -> int:
    """CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start)."""
    cdef const uint8_t[::1] view = data
    if view.shape[0] == 0:
        return crc
    return _crc32c_update(crc, &view[0], view.shape[0])


@cython.final
cdef class ScanResult:
    """What `scan_records` found: the good records and how the buffer ends.

    `end` is the offset just past the last good record; when the status is
    TORN or CORRUPT, `bad_offset` (== `end`) is where the bad record starts
    and `reason` says what is wrong with it. `offsets[k]` is the offset of
    the record holding `entries[k]`.
    """

    cdef readonly list entries
    cdef readonly list offsets
    cdef readonly Py_ssize_t end
    cdef readonly object status
    cdef readonly Py_ssize_t bad_offset
    cdef readonly str reason

    def __repr__(self) -> str:
        return (
            f"ScanResult(entries={len(self.entries)}, end={self.end}, "
            f"status={self.status!r}, bad_offset={self.bad_offset}, reason={self.reason!r})"
        )


def frame_entries(list entries, Py_ssize_t base_offset=0, list offsets_out=None) -> bytes:
    """Frame a batch of entries as consecutive records in one new buffer.

    When `offsets_out` is given, the offset of each record (counted from
    `base_offset`, e.g. the current size of the file it will be appended to)
    is appended to it, which is how the WAL keeps its index without a
    second pass over the entries.
    """
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t data_len, record_len
    cdef uint64_t index, term
    cdef uint8_t kind
    cdef uint8_t* out_ptr
    cdef uint8_t* rec
    cdef object data
    for entry in entries:
        data = entry.data
        if not PyBytes_Check(data):
            raise TypeError(f"entry data must be bytes, not {type(data).__name__}")
        total += HEADER_SIZE + PAYLOAD_FIXED_SIZE + PyBytes_GET_SIZE(data)
    out = PyBytes_FromStringAndSize(NULL, total)
    out_ptr = <uint8_t*>PyBytes_AS_STRING(out)
    for entry in entries:
        index = entry.index
        term = entry.term
        kind = entry.kind
        data = entry.data
        if not PyBytes_Check(data):
            raise TypeError(f"entry data must be bytes, not {type(data).__name__}")
        data_len = PyBytes_GET_SIZE(data)
        if data_len > 0xFFFFFFFF - PAYLOAD_FIXED_SIZE:
            raise ValueError(f"entry {index} is too large to frame ({data_len} bytes)")
        record_len = HEADER_SIZE + PAYLOAD_FIXED_SIZE + data_len
        if pos + record_len > total:
            # Only possible if an entry changed between the two passes.
            raise RuntimeError("entries changed while being framed")
        rec = out_ptr + pos
        store_u32(rec, <uint32_t>(PAYLOAD_FIXED_SIZE + data_len))
        store_u64(rec + 8, index)
        store_u64(rec + 16, term)
        rec[24] = kind
        if data_len:
            memcpy(rec + HEADER_SIZE + PAYLOAD_FIXED_SIZE, PyBytes_AS_STRING(data), <size_t>data_len)
        store_u32(rec + 4, _crc32c_update(0, rec + HEADER_SIZE, PAYLOAD_FIXED_SIZE + data_len))
        if offsets_out is not None:
            PyList_Append(offsets_out, base_offset + pos)
        pos += record_len
    if pos != total:
        raise RuntimeError("entries changed while being framed")
    return out


cdef inline bint _good_record_at(const uint8_t* buf, Py_ssize_t pos, Py_ssize_t size) noexcept nogil:
    cdef uint64_t payload_len
    if size - pos < HEADER_SIZE + PAYLOAD_FIXED_SIZE:
        return False
    payload_len = load_u32(buf + pos)
    if payload_len < PAYLOAD_FIXED_SIZE or <uint64_t>(size - pos - HEADER_SIZE) < payload_len:
        return False
    return _crc32c_update(0, buf + pos + HEADER_SIZE, <Py_ssize_t>payload_len) == load_u32(buf + pos + 4)


cdef bint _good_record_after(const uint8_t* buf, Py_ssize_t bad, Py_ssize_t size) noexcept nogil:
    # Is any good record hiding behind the damage at `bad`? Only then is the
    # damage corruption rather than a torn tail. A random match needs a
    # plausible length and a CRC hit (1 in 2**32), so this does not turn
    # garbage into false corruption in practice.
    cdef Py_ssize_t pos
    for pos in range(bad + 1, size - (HEADER_SIZE + PAYLOAD_FIXED_SIZE) + 1):
        if _good_record_at(buf, pos, size):
            return True
    return False


cdef object _entry_class = Entry


def scan_records(buf, Py_ssize_t start=0) -> ScanResult:
    """Decode the records in `buf[start:]` and classify how the buffer ends.

    Stops at the first bad record: an incomplete header, an impossible
    length, a length running past the end, or a CRC mismatch. That record is
    CORRUPT when a good record follows somewhere after it (data would be
    lost by cutting there), otherwise TORN.
    """
    cdef const uint8_t[::1] view = buf
    cdef Py_ssize_t size = view.shape[0]
    cdef const uint8_t* base
    cdef Py_ssize_t pos = start
    cdef uint64_t payload_len
    cdef const uint8_t* payload
    cdef list entries = []
    cdef list offsets = []
    cdef str reason = ""
    cdef ScanResult result
    if start < 0 or start > size:
        raise ValueError(f"start {start} outside buffer of {size} bytes")
    base = &view[0] if size > 0 else NULL
    while pos < size:
        if size - pos < HEADER_SIZE:
            reason = f"incomplete record header ({size - pos} of {HEADER_SIZE} bytes)"
            break
        payload_len = load_u32(base + pos)
        if payload_len < PAYLOAD_FIXED_SIZE:
            reason = f"impossible record length {payload_len}"
            break
        if payload_len > <uint64_t>(size - pos - HEADER_SIZE):
            reason = (
                f"record length {payload_len} runs past the end "
                f"({size - pos - HEADER_SIZE} bytes left)"
            )
            break
        payload = base + pos + HEADER_SIZE
        if _crc32c_update(0, payload, <Py_ssize_t>payload_len) != load_u32(base + pos + 4):
            reason = "checksum mismatch"
            break
        entries.append(
            _entry_class(
                load_u64(payload),
                load_u64(payload + 8),
                payload[16],
                PyBytes_FromStringAndSize(
                    <const char*>payload + PAYLOAD_FIXED_SIZE,
                    <Py_ssize_t>payload_len - PAYLOAD_FIXED_SIZE,
                ),
            )
        )
        offsets.append(pos)
        pos += HEADER_SIZE + <Py_ssize_t>payload_len
    result = ScanResult.__new__(ScanResult)
    result.entries = entries
    result.offsets = offsets
    result.end = pos
    result.reason = reason
    if pos == size:
        result.status = ScanStatus.CLEAN
        result.bad_offset = -1
    else:
        result.bad_offset = pos
        if _good_record_after(base, pos, size):
            result.status = ScanStatus.CORRUPT
        else:
            result.status = ScanStatus.TORN
    return result

