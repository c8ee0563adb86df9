"""Compiled command loop: run the leading commands of a parsed batch on local state.

`run_local` executes pipelined commands straight through their handlers for
as long as each one is an ordinary data command the caller may run on local
state (a read or a write whose kind is in `local_kinds`, with a valid
argument count), and stops at the first one that needs the caller's general
path (unknown name, wrong arity, a server command, a write that goes through
the log). `CommandSlot` holds what that loop reads per command, as C fields.

Everything the loop touches is handed to it by the caller: the lookup
table, the selected keyspace, the time, the reply sink, and the clock for
timing calls (if any). Pure computation: no I/O, no clock of its own, and
nothing from prez.server, prez.kv or prez.raft is imported here. The
plain-Python twin `prez._core.batch_py` defines the same behaviour; the
tests run both.
"""

cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject

from prez.errors import CommandError

cdef enum:
    # With a clock, one call in this many (per command) is timed: reading
    # the clock twice costs about as much as running a GET, and the mean of
    # a steady sample is what INFO commandstats reports.
    BATCH_TIMING_SAMPLE = 16

TIMING_SAMPLE = BATCH_TIMING_SAMPLE


cdef class CommandSlot:
    """The per-command fields the loop reads and counts (base of the dispatch entry)."""

    def __init__(self, handler, int kind, Py_ssize_t arity):
        self.handler = handler
        self.kind = kind
        self.arity = arity
        self.calls = self.failed = self.timed = self.nanos = 0


@cython.boundscheck(False)
@cython.wraparound(False)
def run_local(
    list commands not None,
    Py_ssize_t start,
    dict lookup not None,
    object db,
    object now,
    object append,
    int local_kinds,
    object clock=None,
):
    """Run commands[start:] while each is a local data command; return where it stopped.

    A command's reply (or its CommandError, counted in `failed`) is passed
    to `append` in order. Handlers of local kinds must return plain reply
    values (never a Future). Any other exception propagates; the commands
    before it have been run and their replies appended. With `clock` (a
    callable returning integer nanoseconds) every TIMING_SAMPLE-th call of
    each command (by its `calls` count) is timed into the entry's `timed`
    and `nanos`.
    """
    cdef Py_ssize_t count = PyList_GET_SIZE(commands)
    cdef Py_ssize_t i = start
    cdef Py_ssize_t argc, arity
    cdef PyObject *found
    cdef CommandSlot entry
    cdef list args
    cdef object reply
    cdef long long started = 0
    cdef bint timing
    if start < 0:
        raise ValueError("start must not be negative")
    while i < count:
        args = commands[i]  # type-checked: anything but a list raises TypeError
        argc = len(args)  # and None raises TypeError here
        if argc == 0:
            return i
        found = PyDict_GetItem(lookup, args[0])
        if found == NULL or not isinstance(<object>found, CommandSlot):
            return i
        entry = <CommandSlot>found
        if <unsigned int>entry.kind >= 32 or not (local_kinds >> entry.kind) & 1:
            return i
        arity = entry.arity
        if (argc != arity) if arity > 0 else (argc < -arity):
            return i
        timing = clock is not None and entry.calls % BATCH_TIMING_SAMPLE == 0
        entry.calls += 1
        if timing:
            started = clock()
        try:
            reply = entry.handler(db, args, now)
        except CommandError as e:
            entry.failed += 1
            reply = e.with_traceback(None)  # no frame cycle (see prez/server/app.py)
        if timing:
            entry.nanos += <long long>clock() - started
            entry.timed += 1
        append(reply)
        i += 1
    return i
