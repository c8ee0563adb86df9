"""A digest of the whole keyspace, for comparing replicas (DEBUG DIGEST).

Order-independent like Redis's: the XOR of one SHA-1 per key, each over the
database index, key, type, canonical value (sets and hashes sorted, so the
result does not depend on PYTHONHASHSEED) and expiry time. Equal data gives
an equal digest on every node; an empty keyspace gives 40 zeros.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque
from typing import Any

from prez.kv.keyspace import Keyspace, KVStore

_PACK_LEN = struct.Struct("<Q").pack
_PACK_SCORE = struct.Struct("<d").pack


def _value_bytes(value: Any) -> list[bytes]:
    kind = type(value)
    if kind is bytes:
        return [b"s", value]
    if kind is dict:
        return [
            b"h",
            *(part for field in sorted(value) for part in (field, value[field])),
        ]
    if kind is deque:
        return [b"l", *value]
    if kind is set:
        return [b"S", *sorted(value)]
    pairs = sorted(value.items())
    return [
        b"z",
        *(part for member, score in pairs for part in (member, _PACK_SCORE(score))),
    ]


def key_digest(db: Keyspace, key: bytes, value: Any) -> bytes:
    h = hashlib.sha1()
    h.update(_PACK_LEN(db.index))
    for part in (key, *_value_bytes(value)):
        h.update(_PACK_LEN(len(part)))
        h.update(part)
    expires = db.expires.get(key)
    h.update(b"-" if expires is None else _PACK_LEN(expires))
    return h.digest()


def digest(store: KVStore) -> str:
    total = 0
    for db in store.dbs:
        for key, value in db.data.items():
            total ^= int.from_bytes(key_digest(db, key, value), "big")
    return f"{total:040x}"
