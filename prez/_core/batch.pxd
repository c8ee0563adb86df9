# Compiled command loop: the layout of a command's slot (see batch.pyx).
#
# The dispatch table's entries (prez.server.dispatch.CommandEntry) subclass
# CommandSlot in Python, so the loop reads these fields at C speed while the
# rest of the server sees ordinary attributes.


cdef class CommandSlot:
    cdef public object handler      # handler(db, args, now) for data commands
    cdef public int kind            # the caller's kind number; bit `1 << kind` of local_kinds
    cdef public Py_ssize_t arity    # Redis's convention: exact if > 0, at least -arity if < 0
    cdef public long long calls
    cdef public long long failed
    cdef public long long timed     # calls whose duration is in `nanos`
    cdef public long long nanos
