"""Sets: the S* commands over `set[bytes]` values.

A Python set iterates in an order that depends on the process's hash seed,
so it differs between replicas. Nothing that changes state may depend on it:
SPOP chooses its members with `random.Random` seeded from the log entry
(its time and arguments) over the members in sorted order, so every replica
pops the same ones. Replies may list members in any order (Redis promises
none), and reads such as SRANDMEMBER use any randomness.
"""

from __future__ import annotations

import random
from typing import Any

from prez.errors import NOT_INTEGER, SYNTAX, CommandError
from prez.kv.command import command
from prez.kv.keyspace import Keyspace, parse_int, wrongtype

MUST_BE_POSITIVE = "ERR value is out of range, must be positive"

_LONG_MAX = 2**63 - 1


def _get_set(db: Keyspace, key: bytes, now: int) -> set[bytes] | None:
    value = db.get(key, now)
    if value is None or type(value) is set:
        return value
    raise wrongtype()


def _get_set_for_write(db: Keyspace, key: bytes, now: int) -> set[bytes] | None:
    value = db.get_for_write(key, now)
    if value is None or type(value) is set:
        return value
    raise wrongtype()


def write_rng(args: list[bytes], now: int) -> random.Random:
    """A generator every replica seeds identically for this write.

    Seeding with bytes hashes them with SHA-512, independent of the
    process's hash seed.
    """
    return random.Random(b"%d\0" % now + b"\0".join(args))


@command(
    "sadd",
    -3,
    "write denyoom fast",
    1,
    1,
    1,
    group="set",
    summary="Adds one or more members to a set. Creates the key if it doesn't exist.",
    since="1.0.0",
)
def sadd(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None:
        value = set()
        db.set(key, value)
    elif type(value) is not set:
        raise wrongtype()
    size = len(value)
    if len(args) == 3:
        value.add(args[2])
    else:
        value.update(args[2:])
    return len(value) - size


@command(
    "srem",
    -3,
    "write fast",
    1,
    1,
    1,
    group="set",
    summary="Removes one or more members from a set. Deletes the set if the last "
    "member was removed.",
    since="1.0.0",
)
def srem(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = _get_set_for_write(db, key, now)
    if value is None:
        return 0
    size = len(value)
    value.difference_update(args[2:])
    removed = size - len(value)
    if not value:
        db.delete(key)
    return removed


@command(
    "smembers",
    2,
    "readonly",
    1,
    1,
    1,
    group="set",
    summary="Returns all members of a set.",
    since="1.0.0",
)
def smembers(db: Keyspace, args: list[bytes], now: int) -> set[bytes]:
    value = _get_set(db, args[1], now)
    # A copy: the reply may be encoded after a later write changed the set.
    return set() if value is None else value.copy()


@command(
    "sismember",
    3,
    "readonly fast",
    1,
    1,
    1,
    group="set",
    summary="Determines whether a member belongs to a set.",
    since="1.0.0",
)
def sismember(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_set(db, args[1], now)
    return 1 if value is not None and args[2] in value else 0


@command(
    "smismember",
    -3,
    "readonly fast",
    1,
    1,
    1,
    group="set",
    summary="Determines whether multiple members belong to a set.",
    since="6.2.0",
)
def smismember(db: Keyspace, args: list[bytes], now: int) -> list[int]:
    value = _get_set(db, args[1], now)
    if value is None:
        return [0] * (len(args) - 2)
    return [1 if member in value else 0 for member in args[2:]]


@command(
    "scard",
    2,
    "readonly fast",
    1,
    1,
    1,
    group="set",
    summary="Returns the number of members in a set.",
    since="1.0.0",
)
def scard(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_set(db, args[1], now)
    return 0 if value is None else len(value)


@command(
    "spop",
    -2,
    "write fast",
    1,
    1,
    1,
    group="set",
    summary="Returns one or more random members from a set after removing them. "
    "Deletes the set if the last member was popped.",
    since="1.0.0",
)
def spop(db: Keyspace, args: list[bytes], now: int) -> Any:
    argc = len(args)
    if argc > 3:
        # Redis answers a syntax error here, not an arity error.
        raise CommandError(SYNTAX)
    key = args[1]
    if argc == 2:
        value = _get_set_for_write(db, key, now)
        if value is None:
            return None
        if len(value) == 1:
            member = value.pop()
        else:
            members = sorted(value)
            member = members[write_rng(args, now).randrange(len(members))]
            value.discard(member)
        if not value:
            db.delete(key)
        return member
    count = parse_int(args[2], MUST_BE_POSITIVE)
    if count < 0:
        raise CommandError(MUST_BE_POSITIVE)
    value = _get_set_for_write(db, key, now)
    if value is None or count == 0:
        return set()
    if count >= len(value):
        db.delete(key)
        return value
    chosen = write_rng(args, now).sample(sorted(value), count)
    value.difference_update(chosen)
    return set(chosen)


@command(
    "srandmember",
    -2,
    "readonly",
    1,
    1,
    1,
    group="set",
    summary="Get one or multiple random members from a set",
    since="1.0.0",
)
def srandmember(db: Keyspace, args: list[bytes], now: int) -> Any:
    argc = len(args)
    if argc > 3:
        raise CommandError(SYNTAX)
    if argc == 2:
        value = _get_set(db, args[1], now)
        if value is None:
            return None
        return random.choice(list(value))
    count = parse_int(args[2], NOT_INTEGER)
    if count == -(2**63):
        raise CommandError(
            f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
        )
    value = _get_set(db, args[1], now)
    if value is None or count == 0:
        return []
    members = list(value)
    if count < 0:
        return random.choices(members, k=-count)
    if count >= len(members):
        return members
    return random.sample(members, count)


def _collect(
    db: Keyspace, keys: list[bytes], now: int, for_write: bool
) -> list[set[bytes] | None]:
    """The sets at keys (None where missing), every key type-checked first."""
    get = db.get_for_write if for_write else db.get
    found: list[set[bytes] | None] = []
    for key in keys:
        value = get(key, now)
        if value is not None and type(value) is not set:
            raise wrongtype()
        found.append(value)
    return found


def _inter(sets: list[set[bytes] | None]) -> set[bytes]:
    present = [s for s in sets if s is not None]
    if len(present) < len(sets):
        return set()  # a missing key is an empty set
    present.sort(key=len)
    return present[0].intersection(*present[1:])


def _union(sets: list[set[bytes] | None]) -> set[bytes]:
    return set().union(*(s for s in sets if s is not None))


def _diff(sets: list[set[bytes] | None]) -> set[bytes]:
    first = sets[0]
    if first is None:
        return set()
    return first.difference(*(s for s in sets[1:] if s is not None))


def _store(db: Keyspace, destination: bytes, result: set[bytes]) -> int:
    if result:
        db.set(destination, result)
    else:
        db.delete(destination)
    return len(result)


@command(
    "sinter",
    -2,
    "readonly",
    1,
    -1,
    1,
    group="set",
    summary="Returns the intersect of multiple sets.",
    since="1.0.0",
)
def sinter(db: Keyspace, args: list[bytes], now: int) -> set[bytes]:
    return _inter(_collect(db, args[1:], now, False))


@command(
    "sunion",
    -2,
    "readonly",
    1,
    -1,
    1,
    group="set",
    summary="Returns the union of multiple sets.",
    since="1.0.0",
)
def sunion(db: Keyspace, args: list[bytes], now: int) -> set[bytes]:
    return _union(_collect(db, args[1:], now, False))


@command(
    "sdiff",
    -2,
    "readonly",
    1,
    -1,
    1,
    group="set",
    summary="Returns the difference of multiple sets.",
    since="1.0.0",
)
def sdiff(db: Keyspace, args: list[bytes], now: int) -> set[bytes]:
    return _diff(_collect(db, args[1:], now, False))


@command(
    "sinterstore",
    -3,
    "write denyoom",
    1,
    -1,
    1,
    group="set",
    summary="Stores the intersect of multiple sets in a key.",
    since="1.0.0",
)
def sinterstore(db: Keyspace, args: list[bytes], now: int) -> int:
    return _store(db, args[1], _inter(_collect(db, args[2:], now, True)))


@command(
    "sunionstore",
    -3,
    "write denyoom",
    1,
    -1,
    1,
    group="set",
    summary="Stores the union of multiple sets in a key.",
    since="1.0.0",
)
def sunionstore(db: Keyspace, args: list[bytes], now: int) -> int:
    return _store(db, args[1], _union(_collect(db, args[2:], now, True)))


@command(
    "sdiffstore",
    -3,
    "write denyoom",
    1,
    -1,
    1,
    group="set",
    summary="Stores the difference of multiple sets in a key.",
    since="1.0.0",
)
def sdiffstore(db: Keyspace, args: list[bytes], now: int) -> int:
    return _store(db, args[1], _diff(_collect(db, args[2:], now, True)))


@command(
    "smove",
    4,
    "write fast",
    1,
    2,
    1,
    group="set",
    summary="Moves a member from one set to another.",
    since="1.0.0",
)
def smove(db: Keyspace, args: list[bytes], now: int) -> int:
    source_key, target_key, member = args[1], args[2], args[3]
    source = db.get_for_write(source_key, now)
    target = db.get_for_write(target_key, now)
    if source is None:
        return 0
    if type(source) is not set or (target is not None and type(target) is not set):
        raise wrongtype()
    if source is target:
        return 1 if member in source else 0
    if member not in source:
        return 0
    source.discard(member)
    if not source:
        db.delete(source_key)
    if target is None:
        db.set(target_key, {member})
    else:
        target.add(member)
    return 1
