"""Reply value types understood by the RESP encoder, beyond plain Python ones.

The encoder (`prez._core.resp`) maps Python values to RESP:

    bytes                 bulk string
    str                   simple string (+OK)
    int                   integer (bool: RESP3 boolean, RESP2 integer 1/0)
    float                 RESP3 double; RESP2 bulk string in Redis's form
    None                  null bulk ($-1) / RESP3 null (_)
    NULL_ARRAY            null array (*-1) / RESP3 null (_)
    list, tuple           array
    dict                  RESP3 map; RESP2 flat array of key, value, ...
    set, frozenset        RESP3 set; RESP2 array
    PairList              list of (member, score) pairs: RESP3 array of
                          2-element arrays [member, double]; RESP2 flat array
                          member, score-as-bulk, ... (ZRANGE WITHSCORES); a
                          bytes second element is a bulk string (HRANDFIELD
                          WITHVALUES)
    CommandError          error reply (-ERR ...)
    Raw                   bytes already in RESP form, written as they are
"""

from __future__ import annotations


class NullArray:
    """The null array reply (*-1 in RESP2)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY = NullArray()


class PairList(list):  # type: ignore[type-arg]
    """[(member: bytes, score: float), ...] with the RESP2/RESP3 shapes of ZRANGE WITHSCORES."""

    __slots__ = ()


class Raw(bytes):
    """A reply already encoded as RESP, written unchanged."""

    __slots__ = ()
