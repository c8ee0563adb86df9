"""Lists: the L*/R* commands over `collections.deque[bytes]` values.

A deque gives O(1) pushes and pops at both ends (the redis-benchmark hot
path); indexed access walks from the nearer end. An emptied list is deleted,
as in Redis. Blocking pops are not here: they need the server's waiting
machinery, not the state machine.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice
from typing import Any

from prez._core.replytypes import NULL_ARRAY
from prez.errors import (
    NO_SUCH_KEY,
    OUT_OF_RANGE,
    SYNTAX,
    CommandError,
    wrong_arity,
)
from prez.kv.command import command
from prez.kv.keyspace import Keyspace, parse_int, wrongtype

MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
RANK_ZERO = (
    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
    "second ... or use negative to start from the end of the list"
)
COUNT_NEGATIVE = "ERR COUNT can't be negative"
MAXLEN_NEGATIVE = "ERR MAXLEN can't be negative"

_LONG_MAX = 2**63 - 1

List = deque[bytes]


def _get_list(db: Keyspace, key: bytes, now: int) -> List | None:
    value = db.get(key, now)
    if value is None or type(value) is deque:
        return value
    raise wrongtype()


def _get_list_for_write(db: Keyspace, key: bytes, now: int) -> List | None:
    value = db.get_for_write(key, now)
    if value is None or type(value) is deque:
        return value
    raise wrongtype()


def _parse_positive(arg: bytes, error: str) -> int:
    # Redis's getPositiveLongFromObjectOrReply: one message for both a
    # non-number and a negative number.
    value = parse_int(arg, error)
    if value < 0:
        raise CommandError(error)
    return value


def _slice(items: List, start: int, stop: int) -> list[bytes]:
    """items[start:stop] for 0 <= start <= stop <= len, walking from the nearer end."""
    size = len(items)
    if start > size - stop:
        tail = list(islice(reversed(items), size - stop, size - start))
        tail.reverse()
        return tail
    return list(islice(items, start, stop))


@command(
    "lpush",
    -3,
    "write denyoom fast",
    1,
    1,
    1,
    group="list",
    summary="Prepends one or more elements to a list. Creates the key if it doesn't "
    "exist.",
    since="1.0.0",
)
def lpush(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None:
        value = deque()
        db.set(key, value)
    elif type(value) is not deque:
        raise wrongtype()
    if len(args) == 3:
        value.appendleft(args[2])
    else:
        value.extendleft(args[2:])
    return len(value)


@command(
    "rpush",
    -3,
    "write denyoom fast",
    1,
    1,
    1,
    group="list",
    summary="Appends one or more elements to a list. Creates the key if it doesn't "
    "exist.",
    since="1.0.0",
)
def rpush(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None:
        value = deque()
        db.set(key, value)
    elif type(value) is not deque:
        raise wrongtype()
    if len(args) == 3:
        value.append(args[2])
    else:
        value.extend(args[2:])
    return len(value)


@command(
    "lpushx",
    -3,
    "write denyoom fast",
    1,
    1,
    1,
    group="list",
    summary="Prepends one or more elements to a list only when the list exists.",
    since="2.2.0",
)
def lpushx(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_list_for_write(db, args[1], now)
    if value is None:
        return 0
    value.extendleft(args[2:])
    return len(value)


@command(
    "rpushx",
    -3,
    "write denyoom fast",
    1,
    1,
    1,
    group="list",
    summary="Appends an element to a list only when the list exists.",
    since="2.2.0",
)
def rpushx(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_list_for_write(db, args[1], now)
    if value is None:
        return 0
    value.extend(args[2:])
    return len(value)


def _pop(db: Keyspace, args: list[bytes], now: int, from_left: bool) -> Any:
    argc = len(args)
    key = args[1]
    if argc == 2:
        value = db.get_for_write(key, now)
        if value is None:
            return None
        if type(value) is not deque:
            raise wrongtype()
        item = value.popleft() if from_left else value.pop()
        if not value:
            db.delete(key)
        return item
    if argc > 3:
        raise wrong_arity("lpop" if from_left else "rpop")
    count = _parse_positive(args[2], MUST_BE_POSITIVE)
    value = _get_list_for_write(db, key, now)
    if value is None:
        return NULL_ARRAY
    if count == 0:
        return []
    take = value.popleft if from_left else value.pop
    items = [take() for _ in range(min(count, len(value)))]
    if not value:
        db.delete(key)
    return items


@command(
    "lpop",
    -2,
    "write fast",
    1,
    1,
    1,
    group="list",
    summary="Returns the first elements in a list after removing it. Deletes the "
    "list if the last element was popped.",
    since="1.0.0",
)
def lpop(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _pop(db, args, now, True)


@command(
    "rpop",
    -2,
    "write fast",
    1,
    1,
    1,
    group="list",
    summary="Returns and removes the last elements of a list. Deletes the list if "
    "the last element was popped.",
    since="1.0.0",
)
def rpop(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _pop(db, args, now, False)


@command(
    "llen",
    2,
    "readonly fast",
    1,
    1,
    1,
    group="list",
    summary="Returns the length of a list.",
    since="1.0.0",
)
def llen(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _get_list(db, args[1], now)
    return 0 if value is None else len(value)


@command(
    "lrange",
    4,
    "readonly",
    1,
    1,
    1,
    group="list",
    summary="Returns a range of elements from a list.",
    since="1.0.0",
)
def lrange(db: Keyspace, args: list[bytes], now: int) -> list[bytes]:
    start = parse_int(args[2])
    end = parse_int(args[3])
    value = _get_list(db, args[1], now)
    if value is None:
        return []
    size = len(value)
    if start < 0:
        start += size
    if end < 0:
        end += size
    if start < 0:
        start = 0
    if start > end or start >= size:
        return []
    if end >= size:
        end = size - 1
    return _slice(value, start, end + 1)


@command(
    "lindex",
    3,
    "readonly",
    1,
    1,
    1,
    group="list",
    summary="Returns an element from a list by its index.",
    since="1.0.0",
)
def lindex(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    index = parse_int(args[2])
    value = _get_list(db, args[1], now)
    if value is None:
        return None
    size = len(value)
    if index < 0:
        index += size
    if index < 0 or index >= size:
        return None
    return value[index]


@command(
    "lset",
    4,
    "write denyoom",
    1,
    1,
    1,
    group="list",
    summary="Sets the value of an element in a list by its index.",
    since="1.0.0",
)
def lset(db: Keyspace, args: list[bytes], now: int) -> str:
    index = parse_int(args[2])
    value = _get_list_for_write(db, args[1], now)
    if value is None:
        raise CommandError(NO_SUCH_KEY)
    size = len(value)
    if index < 0:
        index += size
    if index < 0 or index >= size:
        raise CommandError(OUT_OF_RANGE)
    value[index] = args[3]
    return "OK"


@command(
    "lrem",
    4,
    "write",
    1,
    1,
    1,
    group="list",
    summary="Removes elements from a list. Deletes the list if the last element was "
    "removed.",
    since="1.0.0",
)
def lrem(db: Keyspace, args: list[bytes], now: int) -> int:
    count = parse_int(args[2])
    key = args[1]
    value = _get_list_for_write(db, key, now)
    if value is None:
        return 0
    element = args[3]
    if count == 0:
        kept = [item for item in value if item != element]
        removed = len(value) - len(kept)
    else:
        # One pass keeping everything but the first |count| matches, from
        # the head (count > 0) or from the tail (count < 0).
        budget = abs(count)
        source: Iterable[bytes] = value if count > 0 else reversed(value)
        kept = []
        for item in source:
            if budget and item == element:
                budget -= 1
                continue
            kept.append(item)
        removed = abs(count) - budget
        if count < 0:
            kept.reverse()
    if removed:
        if kept:
            value.clear()
            value.extend(kept)
        else:
            db.delete(key)
    return removed


@command(
    "ltrim",
    4,
    "write",
    1,
    1,
    1,
    group="list",
    summary="Removes elements from both ends a list. Deletes the list if all "
    "elements were trimmed.",
    since="1.0.0",
)
def ltrim(db: Keyspace, args: list[bytes], now: int) -> str:
    start = parse_int(args[2])
    end = parse_int(args[3])
    key = args[1]
    value = _get_list_for_write(db, key, now)
    if value is None:
        return "OK"
    size = len(value)
    if start < 0:
        start += size
    if end < 0:
        end += size
    if start < 0:
        start = 0
    if start > end or start >= size:
        db.delete(key)
        return "OK"
    if end >= size:
        end = size - 1
    keep = end + 1 - start
    if keep < size - keep:
        kept = _slice(value, start, end + 1)
        value.clear()
        value.extend(kept)
    else:
        for _ in range(start):
            value.popleft()
        for _ in range(size - 1 - end):
            value.pop()
    return "OK"


@command(
    "linsert",
    5,
    "write denyoom",
    1,
    1,
    1,
    group="list",
    summary="Inserts an element before or after another element in a list.",
    since="2.2.0",
)
def linsert(db: Keyspace, args: list[bytes], now: int) -> int:
    where = args[2].lower()
    if where == b"after":
        after = True
    elif where == b"before":
        after = False
    else:
        raise CommandError(SYNTAX)
    value = _get_list_for_write(db, args[1], now)
    if value is None:
        return 0
    try:
        index = value.index(args[3])
    except ValueError:
        return -1
    value.insert(index + 1 if after else index, args[4])
    return len(value)


@command(
    "lpos",
    -3,
    "readonly",
    1,
    1,
    1,
    group="list",
    summary="Returns the index of matching elements in a list.",
    since="6.0.6",
)
def lpos(db: Keyspace, args: list[bytes], now: int) -> Any:
    rank = 1
    count = -1  # -1: no COUNT option, reply with one index (or null)
    maxlen = 0
    argc = len(args)
    index = 3
    while index < argc:
        option = args[index].lower()
        has_value = index + 1 < argc
        if option == b"rank" and has_value:
            rank = parse_int(args[index + 1])
            if rank == -(2**63):
                raise CommandError(
                    "ERR value is out of range, value must between "
                    f"{-_LONG_MAX} and {_LONG_MAX}"
                )
            if rank == 0:
                raise CommandError(RANK_ZERO)
        elif option == b"count" and has_value:
            count = _parse_positive(args[index + 1], COUNT_NEGATIVE)
        elif option == b"maxlen" and has_value:
            maxlen = _parse_positive(args[index + 1], MAXLEN_NEGATIVE)
        else:
            raise CommandError(SYNTAX)
        index += 2
    value = _get_list(db, args[1], now)
    if value is None:
        return [] if count != -1 else None
    element = args[2]
    size = len(value)
    from_tail = rank < 0
    skip = abs(rank) - 1
    source: Iterable[bytes] = reversed(value) if from_tail else value
    if maxlen:
        source = islice(source, maxlen)
    found: list[int] = []
    for position, item in enumerate(source):
        if item != element:
            continue
        if skip:
            skip -= 1
            continue
        found.append(size - 1 - position if from_tail else position)
        if count == -1 or (count and len(found) >= count):
            break
    if count == -1:
        return found[0] if found else None
    return found


def _pop_push(
    db: Keyspace,
    args: list[bytes],
    now: int,
    from_left: bool,
    to_left: bool,
) -> bytes | None:
    source_key, target_key = args[1], args[2]
    source = _get_list_for_write(db, source_key, now)
    if source is None:
        return None
    target = _get_list_for_write(db, target_key, now)
    item = source.popleft() if from_left else source.pop()
    if target is None:
        target = deque()
        db.set(target_key, target)
    if to_left:
        target.appendleft(item)
    else:
        target.append(item)
    if not source:
        db.delete(source_key)
    return item


def _parse_side(arg: bytes) -> bool:
    """LEFT -> True, RIGHT -> False."""
    side = arg.lower()
    if side == b"left":
        return True
    if side == b"right":
        return False
    raise CommandError(SYNTAX)


@command(
    "lmove",
    5,
    "write denyoom",
    1,
    2,
    1,
    group="list",
    summary="Returns an element after popping it from one list and pushing it to "
    "another. Deletes the list if the last element was moved.",
    since="6.2.0",
)
def lmove(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    from_left = _parse_side(args[3])
    to_left = _parse_side(args[4])
    return _pop_push(db, args, now, from_left, to_left)


@command(
    "rpoplpush",
    3,
    "write denyoom",
    1,
    2,
    1,
    group="list",
    summary="Returns the last element of a list after removing and pushing it to "
    "another list. Deletes the list if the last element was popped.",
    since="1.2.0",
)
def rpoplpush(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    return _pop_push(db, args, now, False, True)
