# Compiled RESP core: the layout of the parser and reply buffer (see resp.pyx).
#
# Buffer ownership: RequestParser owns one PyMem_Malloc'd block (tracked by
# tracemalloc, so tests can check what untrusted input makes us allocate);
# ReplyBuffer owns the bytes object it writes into until take() hands it over.

from cpython.object cimport PyObject


cdef class RequestParser:
    cdef char *buf              # owned; bytes [start, end) are unconsumed
    cdef Py_ssize_t cap         # allocated size of buf
    cdef Py_ssize_t start       # read offset: everything before it is parsed
    cdef Py_ssize_t end         # write offset: fed bytes end here
    cdef Py_ssize_t args_left   # arguments still to read for the current multibulk; 0 between commands
    cdef Py_ssize_t bulk_len    # payload length of the bulk being read, -1 before its header
    cdef Py_ssize_t args_filled # arguments stored so far in `args`
    cdef list args              # the multibulk being assembled
    cdef Py_ssize_t args_bytes  # what the arguments in `args` count against max_query_len
    cdef public Py_ssize_t max_bulk_len       # CONFIG SET proto-max-bulk-len changes it at run time
    cdef public Py_ssize_t max_multibulk_len
    cdef public Py_ssize_t max_inline_len
    cdef public Py_ssize_t max_query_len      # client-query-buffer-limit
    cdef public bint noauth                   # before AUTH: Redis's 10-argument / 16 KB limits
    cdef readonly object error  # None, or the Redis error text once the stream is broken

    cdef int _append(self, const char *data, Py_ssize_t size) except -1
    cdef int _reserve(self, Py_ssize_t size) except -1
    cdef void _release(self) noexcept
    cdef int _parse(self, list commands) except -1
    cdef int _parse_inline(self, list commands, Py_ssize_t newline) except -1
    cdef int _fail(self, str message) except -1


cdef class ReplyBuffer:
    cdef PyObject *out          # owned bytes object (or NULL) being filled; handed over by take()
    cdef char *buf              # its data: bytes [0, size) are encoded replies not yet taken
    cdef Py_ssize_t size
    cdef Py_ssize_t cap         # its allocated length
    cdef public bint resp3      # HELLO 3 switches a connection to RESP3
    cdef public Py_ssize_t limit  # append raises OutputLimitExceeded past this size (0: none)

    cdef void _drop(self) noexcept
    cdef int _resize(self, Py_ssize_t new_cap) except -1
    cdef int _reserve(self, Py_ssize_t extra) except -1
    cdef int _write(self, const char *data, Py_ssize_t length) except -1
    cdef int _write_header(self, char kind, long long number) except -1
    cdef int _write_bulk(self, const char *data, Py_ssize_t length) except -1
    cdef int _write_line(self, char kind, object text) except -1
    cdef int _write_double(self, double value) except -1
    cdef int _encode(self, object value, int depth) except -1
    cdef int _encode_other(self, object value, int depth) except -1
