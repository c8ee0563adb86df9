# cython: language_level=3, boundscheck=False, wraparound=False
"""Client writes as Raft log entry payloads: encode on the leader, decode on apply.

Layout, little-endian: i64 time in ms (the leader's stamp), u16 database,
then each argument as u32 length + bytes. Pure computation over bytes;
must not import asyncio, socket or prez.server. Twin: `entry_py.py`.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint8_t
from libc.string cimport memcpy

from prez._core.lebytes cimport load_u32, store_u32

from prez.errors import ProtocolError

DEF HEADER = 10


def encode_command(int64_t now, int db, list args):
    """The entry payload for one write command."""
    cdef Py_ssize_t n = PyList_GET_SIZE(args)
    cdef Py_ssize_t i, size = HEADER, length
    cdef object arg
    for i in range(n):
        arg = <object>PyList_GET_ITEM(args, i)
        if type(arg) is not bytes:
            raise TypeError("command arguments must be bytes")
        size += 4 + PyBytes_GET_SIZE(arg)
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef char* p = PyBytes_AS_STRING(out)
    cdef uint64_t_alias t = <uint64_t_alias>now
    cdef int k
    for k in range(8):
        p[k] = <char>((t >> (8 * k)) & 0xff)
    p[8] = <char>(db & 0xff)
    p[9] = <char>((db >> 8) & 0xff)
    p += HEADER
    for i in range(n):
        arg = <object>PyList_GET_ITEM(args, i)
        length = PyBytes_GET_SIZE(arg)
        store_u32(<uint8_t*>p, <uint32_t>length)
        memcpy(p + 4, PyBytes_AS_STRING(arg), length)
        p += 4 + length
    return out


ctypedef unsigned long long uint64_t_alias


def decode_command(bytes data):
    """(now, db, args) from an entry payload; ProtocolError if malformed."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
    if size < HEADER:
        raise ProtocolError("log entry: shorter than its header")
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(data)
    cdef uint64_t_alias t = 0
    cdef int k
    for k in range(8):
        t |= (<uint64_t_alias>p[k]) << (8 * k)
    cdef int db = p[8] | (p[9] << 8)
    cdef Py_ssize_t pos = HEADER
    cdef uint32_t length
    cdef list args = []
    while pos < size:
        if size - pos < 4:
            raise ProtocolError("log entry: truncated argument length")
        length = load_u32(p + pos)
        pos += 4
        if <Py_ssize_t>length > size - pos:
            raise ProtocolError("log entry: argument runs past the end")
        args.append(PyBytes_FromStringAndSize(<const char*>(p + pos), length))
        pos += length
    if not args:
        raise ProtocolError("log entry: no command")
    return <int64_t>t, db, args
