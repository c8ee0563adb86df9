"""The keyspace: numbered databases of keys, their values and expiry times.

Values are plain Python objects, one type per Redis type:

    string      bytes
    hash        dict[bytes, bytes]
    list        collections.deque[bytes]
    set         set[bytes]
    sorted set  prez.kv.zsets.ZSet

Expiry times are absolute milliseconds in `Keyspace.expires`. Nothing here
reads a clock: callers pass `now`. Reads never modify the keyspace (an expired
key is simply invisible to them), writes delete an expired key they touch.
That keeps every replica's state a function of the log alone, since only
writes carry the leader's timestamp.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from prez.errors import NOT_FLOAT, NOT_INTEGER, WRONGTYPE, CommandError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class Keyspace:
    """One numbered database (SELECT n)."""

    __slots__ = ("data", "expires", "index", "store")

    def __init__(self, index: int, store: KVStore) -> None:
        self.data: dict[bytes, Any] = {}
        self.expires: dict[bytes, int] = {}
        self.index = index
        self.store = store

    def get(self, key: bytes, now: int) -> Any:
        """The live value of key, or None; never modifies (safe for reads)."""
        value = self.data.get(key)
        if value is not None and self.expires:
            when = self.expires.get(key)
            if when is not None and when <= now:
                return None
        return value

    def get_for_write(self, key: bytes, now: int) -> Any:
        """The live value of key, or None, deleting it first if it expired."""
        value = self.data.get(key)
        if value is not None and self.expires:
            when = self.expires.get(key)
            if when is not None and when <= now:
                del self.data[key]
                del self.expires[key]
                return None
        return value

    def set(self, key: bytes, value: Any) -> None:
        """Store value and clear any expiry (as Redis's SET without KEEPTTL)."""
        self.data[key] = value
        if self.expires:
            self.expires.pop(key, None)

    def put(self, key: bytes, value: Any) -> None:
        """Store value, keeping the key's expiry."""
        self.data[key] = value

    def delete(self, key: bytes) -> bool:
        if self.data.pop(key, None) is None:
            return False
        if self.expires:
            self.expires.pop(key, None)
        return True

    def expire_at(self, key: bytes, when: int) -> None:
        self.expires[key] = when

    def ttl_ms(self, key: bytes) -> int | None:
        return self.expires.get(key)

    def clear(self) -> None:
        self.data.clear()
        self.expires.clear()

    def live_keys(self, now: int) -> list[bytes]:
        if not self.expires:
            return list(self.data)
        expires = self.expires
        return [k for k in self.data if (w := expires.get(k)) is None or w > now]

    def size(self, now: int) -> int:
        if not self.expires:
            return len(self.data)
        return len(self.data) - sum(1 for w in self.expires.values() if w <= now)

    def expired_keys(self, now: int, limit: int) -> list[bytes]:
        """Up to `limit` keys whose time has passed (for active expiry)."""
        found = []
        for key, when in self.expires.items():
            if when <= now:
                found.append(key)
                if len(found) >= limit:
                    break
        return found


class KVStore:
    """All databases of one node: the replicated state machine's state."""

    __slots__ = ("dbs",)

    def __init__(self, databases: int = 16) -> None:
        self.dbs = [Keyspace(i, self) for i in range(databases)]

    def swap(self, a: int, b: int) -> None:
        """SWAPDB: exchange contents; connections keep their index."""
        da, db = self.dbs[a], self.dbs[b]
        da.data, db.data = db.data, da.data
        da.expires, db.expires = db.expires, da.expires

    def flush_all(self) -> None:
        for db in self.dbs:
            db.clear()


# Shared argument parsing, with Redis's error texts.


def type_name(value: Any) -> bytes:
    kind = type(value)
    if kind is bytes:
        return b"string"
    if kind is dict:
        return b"hash"
    if kind is deque:
        return b"list"
    if kind is set:
        return b"set"
    return b"zset"


def wrongtype() -> CommandError:
    return CommandError(WRONGTYPE)


def parse_int(arg: bytes, error: str = NOT_INTEGER) -> int:
    """A signed 64-bit integer in Redis's strict decimal form."""
    # int() accepts "+1", " 1", "1_0"; Redis does not.
    if (
        not arg
        or len(arg) > 20
        or not (arg.isdigit() or (arg[0] == 45 and arg[1:].isdigit()))
    ):
        raise CommandError(error)
    if len(arg) > 1 and (arg[0] == 48 or (arg[0] == 45 and arg[1] == 48)):
        raise CommandError(error)  # leading zeros and "-0" are not canonical
    value = int(arg)
    if value < INT64_MIN or value > INT64_MAX:
        raise CommandError(error)
    return value


def parse_float(arg: bytes, error: str = NOT_FLOAT) -> float:
    """A double as Redis accepts it: decimal or exponent, inf, no NaN."""
    try:
        text = arg.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(error)
    if not text or text != text.strip() or "_" in text:
        raise CommandError(error)
    try:
        value = float(text)
    except ValueError:
        raise CommandError(error)
    if math.isnan(value):
        raise CommandError(error)
    return value


def format_double(value: float) -> bytes:
    """Redis's shortest round-trip form: 3 not 3.0, inf and -inf."""
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value.is_integer() and abs(value) < 1e17:
        return b"%d" % int(value)
    return repr(value).encode()
