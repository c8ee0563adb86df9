"""Hashes: the H* commands over `dict[bytes, bytes]` values.

A hash is a plain dict, so fields iterate in insertion order, which is the
same on every replica (HGETALL, HKEYS and HVALS replies agree everywhere).
An emptied hash is deleted, as in Redis.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from prez._core.replytypes import PairList
from prez.errors import NOT_INTEGER, OVERFLOW, SYNTAX, CommandError, wrong_arity
from prez.kv.command import command
from prez.kv.keyspace import (
    INT64_MAX,
    INT64_MIN,
    Keyspace,
    parse_float,
    parse_int,
    wrongtype,
)

HASH_NOT_INTEGER = "ERR hash value is not an integer"
HASH_NOT_FLOAT = "ERR hash value is not a float"
INCR_NAN_OR_INF = "ERR increment would produce NaN or Infinity"
VALUE_NAN_OR_INF = "ERR value is NaN or Infinity"
VALUE_OUT_OF_RANGE = "ERR value is out of range"

_LONG_MAX = 2**63 - 1


def _get_hash(db: Keyspace, key: bytes, now: int) -> dict[bytes, bytes] | None:
    value = db.get(key, now)
    if value is None or type(value) is dict:
        return value
    raise wrongtype()


def _get_hash_for_write(
    db: Keyspace, key: bytes, now: int
) -> dict[bytes, bytes] | None:
    value = db.get_for_write(key, now)
    if value is None or type(value) is dict:
        return value
    raise wrongtype()


def format_human_double(value: float) -> bytes:
    """A float as Redis prints HINCRBYFLOAT/INCRBYFLOAT results.

    Redis uses "%.17Lf" on a long double and strips trailing zeros: never an
    exponent, at most 17 decimals. With a double, the shortest round-trip
    digits give the text a user expects ("10.6", not "10.59999...").
    """
    text = format(Decimal(repr(value)), "f")
    point = text.find(".")
    if point >= 0 and len(text) - point - 1 > 17:
        text = f"{value:.17f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return text.encode()


@command(
    "hset",
    -4,
    "write denyoom fast",
    1,
    1,
    1,
    group="hash",
    summary="Creates or modifies the value of a field in a hash.",
    since="2.0.0",
)
def hset(db: Keyspace, args: list[bytes], now: int) -> int:
    argc = len(args)
    if argc & 1:
        raise wrong_arity("hset")
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None:
        value = {}
        db.set(key, value)
    elif type(value) is not dict:
        raise wrongtype()
    size = len(value)
    if argc == 4:
        value[args[2]] = args[3]
    else:
        value.update(zip(args[2::2], args[3::2], strict=True))
    return len(value) - size


@command(
    "hmset",
    -4,
    "write denyoom fast",
    1,
    1,
    1,
    group="hash",
    summary="Sets the values of multiple fields.",
    since="2.0.0",
)
def hmset(db: Keyspace, args: list[bytes], now: int) -> str:
    if len(args) & 1:
        raise wrong_arity("hmset")
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None:
        value = {}
        db.set(key, value)
    elif type(value) is not dict:
        raise wrongtype()
    value.update(zip(args[2::2], args[3::2], strict=True))
    return "OK"


@command(
    "hsetnx",
    4,
    "write denyoom fast",
    1,
    1,
    1,
    group="hash",
    summary="Sets the value of a field in a hash only when the field doesn't exist.",
    since="2.0.0",
)
def hsetnx(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = _get_hash_for_write(db, key, now)
    if value is None:
        db.set(key, {args[2]: args[3]})
        return 1
    if args[2] in value:
        return 0
    value[args[2]] = args[3]
    return 1


@command(
    "hget",
    3,
    "readonly fast",
    1,
    1,
    1,
    group="hash",
    summary="Returns the value of a field in a hash.",
    since="2.0.0",
)
def hget(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    value = db.get(args[1], now)
    if value is None:
        return None
    if type(value) is not dict:
        raise wrongtype()
    return value.get(args[2])


@command(
    "hmget",
    -3,
    "readonly fast",
    1,
    1,
    1,
    group="hash",
    summary="Returns the values of all fields in a hash.",
    since="2.0.0",
)
def hmget(db: Keyspace, args: list[bytes], now: int) -> list[bytes | None]:
    value = _get_hash(db, args[1], now)
    if value is None:
        return [None] * (len(args) - 2)
    return [value.get(field) for field in args[2:]]


@command(
    "hgetall",
    2,
    "readonly",
    1,
    1,
    1,
    group="hash",
    summary="Returns all fields and values in a hash.",
    since="2.0.0",
)
def hgetall(db: Keyspace, args: list[bytes], now: int) -> dict[bytes, bytes]:
    value = _get_hash(db, args[1], now)
    # A copy: the reply may be encoded after a later write changed the hash.
    return {} if value is None else value.copy()


@command(
    "hkeys",
    2,
    "readonly",
    1,
    1,
    1,
    group="hash",
    summary="Returns all fields in a hash.",
    since="2.0.0",
)
def hkeys(db: Keyspace, args: list[bytes], now: int) -> list[bytes]:
    value = _get_hash(db, args[1], now)
    return [] if value is None else list(value)


@command(
    "hvals",
    2,
    "readonly",
    1,
    1,
    1,
    group="hash",
    summary="Returns all values in a hash.",
    since="2.0.0",
)
def hvals(db: Keyspace, args: list[bytes], now: int) -> list[bytes]:
    value = _get_hash(db, args[1], now)
    return [] if value is None else list(value.values())


@command(
    "hdel",
    -3,
    "write fast",
    1,
    1,
    1,
    group="hash",
    summary="Deletes one or more fields and their values from a hash. Deletes the "
    "hash if no fields remain.",
    since="2.0.0",
)
def hdel(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = _get_hash_for_write(db, key, now)
    if value is None:
        return 0
    deleted = 0
    for field in args[2:]:
        if value.pop(field, None) is not None:
            deleted += 1
    if not value:
        db.delete(key)
    return deleted


@command(
    "hlen",
    2,
    "readonly fast",
    1,
    1,
    1,
    group="hash",
    summary="Returns the number of fields in a hash.",
    since="2.0.0",
)
def hlen(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_hash(db, args[1], now)
    return 0 if value is None else len(value)


@command(
    "hexists",
    3,
    "readonly fast",
    1,
    1,
    1,
    group="hash",
    summary="Determines whether a field exists in a hash.",
    since="2.0.0",
)
def hexists(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_hash(db, args[1], now)
    return 1 if value is not None and args[2] in value else 0


@command(
    "hstrlen",
    3,
    "readonly fast",
    1,
    1,
    1,
    group="hash",
    summary="Returns the length of the value of a field.",
    since="3.2.0",
)
def hstrlen(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_hash(db, args[1], now)
    if value is None:
        return 0
    field = value.get(args[2])
    return 0 if field is None else len(field)


@command(
    "hincrby",
    4,
    "write denyoom fast",
    1,
    1,
    1,
    group="hash",
    summary="Increments the integer value of a field in a hash by a number. Uses 0 "
    "as initial value if the field doesn't exist.",
    since="2.0.0",
)
def hincrby(db: Keyspace, args: list[bytes], now: int) -> int:
    increment = parse_int(args[3], NOT_INTEGER)
    key = args[1]
    value = _get_hash_for_write(db, key, now)
    field = args[2]
    current = None if value is None else value.get(field)
    old = 0 if current is None else parse_int(current, HASH_NOT_INTEGER)
    result = old + increment
    if result > INT64_MAX or result < INT64_MIN:
        raise CommandError(OVERFLOW)
    if value is None:
        value = {}
        db.set(key, value)
    value[field] = b"%d" % result
    return result


@command(
    "hincrbyfloat",
    4,
    "write denyoom fast",
    1,
    1,
    1,
    group="hash",
    summary="Increments the floating point value of a field by a number. Uses 0 as "
    "initial value if the field doesn't exist.",
    since="2.6.0",
)
def hincrbyfloat(db: Keyspace, args: list[bytes], now: int) -> bytes:
    increment = parse_float(args[3])
    if increment in (float("inf"), float("-inf")):
        raise CommandError(VALUE_NAN_OR_INF)
    key = args[1]
    value = _get_hash_for_write(db, key, now)
    field = args[2]
    current = None if value is None else value.get(field)
    old = 0.0 if current is None else parse_float(current, HASH_NOT_FLOAT)
    result = old + increment
    if result != result or result in (float("inf"), float("-inf")):
        raise CommandError(INCR_NAN_OR_INF)
    text = format_human_double(result)
    if value is None:
        value = {}
        db.set(key, value)
    value[field] = text
    return text


@command(
    "hrandfield",
    -2,
    "readonly",
    1,
    1,
    1,
    group="hash",
    summary="Returns one or more random fields from a hash.",
    since="6.2.0",
)
def hrandfield(db: Keyspace, args: list[bytes], now: int) -> Any:
    # A read: any randomness will do, replicas never need to agree on it.
    argc = len(args)
    if argc == 2:
        value = _get_hash(db, args[1], now)
        if value is None:
            return None
        return random.choice(list(value))
    count = parse_int(args[2], NOT_INTEGER)
    if count == -(2**63):
        raise CommandError(
            f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
        )
    if argc > 4 or (argc == 4 and args[3].lower() != b"withvalues"):
        raise CommandError(SYNTAX)
    with_values = argc == 4
    if with_values and (count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2):
        raise CommandError(VALUE_OUT_OF_RANGE)
    value = _get_hash(db, args[1], now)
    if value is None or count == 0:
        return []
    fields = list(value)
    if count < 0:
        chosen = random.choices(fields, k=-count)
    elif count >= len(fields):
        chosen = fields
    else:
        chosen = random.sample(fields, count)
    if with_values:
        # RESP2: a flat field, value, ... array; RESP3: [field, value] pairs.
        return PairList((field, value[field]) for field in chosen)
    return chosen
