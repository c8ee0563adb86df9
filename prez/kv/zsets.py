"""Sorted sets: the `ZSet` value type and the Z* commands.

A `ZSet` keeps two views of the same members: a dict member -> score for
O(1) score lookups, and a list of (score, member) tuples kept sorted with
`bisect`, which gives ranks and score/lex ranges in O(log n) plus a memmove
for updates. Tuples order by score and then by member bytes, which is
exactly Redis's skiplist order (ties broken by memcmp of the members).
NaN is never stored, so the order is total.

Replies follow Redis 7.2: scores are floats (RESP2 bulk string, RESP3
double) and WITHSCORES ranges are `PairList`s.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any

from prez._core.replytypes import NULL_ARRAY, PairList
from prez.errors import NOT_INTEGER, SYNTAX, CommandError, wrong_arity
from prez.kv.command import command
from prez.kv.keyspace import Keyspace, parse_float, parse_int, wrongtype

XX_AND_NX = "ERR XX and NX options at the same time are not compatible"
GT_LT_NX = "ERR GT, LT, and/or NX options at the same time are not compatible"
INCR_SINGLE_PAIR = "ERR INCR option supports a single increment-element pair"
SCORE_NAN = "ERR resulting score is not a number (NaN)"
MIN_MAX_NOT_FLOAT = "ERR min or max is not a float"
MIN_MAX_NOT_STRING = "ERR min or max not valid string range item"
LIMIT_NEEDS_BY = (
    "ERR syntax error, LIMIT is only supported in combination with either "
    "BYSCORE or BYLEX"
)
WITHSCORES_WITH_BYLEX = (
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
)
MUST_BE_POSITIVE = "ERR value is out of range, must be positive"
VALUE_OUT_OF_RANGE = "ERR value is out of range"

_LONG_MAX = 2**63 - 1

Entry = tuple[float, bytes]
_score_of = itemgetter(0)
_member_of = itemgetter(1)


class ZSet:
    """A sorted set: member -> score, plus the members sorted by (score, member)."""

    __slots__ = ("order", "scores")

    def __init__(self) -> None:
        self.scores: dict[bytes, float] = {}
        self.order: list[Entry] = []

    @classmethod
    def from_items(cls, items: Iterable[tuple[bytes, float]]) -> ZSet:
        """Build from (member, score) pairs (e.g. a snapshot); later pairs win."""
        zset = cls()
        zset.scores.update(items)
        zset.order = sorted((score, member) for member, score in zset.scores.items())
        return zset

    def __len__(self) -> int:
        return len(self.scores)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ZSet):
            return NotImplemented
        return self.order == other.order

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ZSet({self.items()!r})"

    def copy(self) -> ZSet:
        twin = ZSet()
        twin.scores = self.scores.copy()
        twin.order = self.order.copy()
        return twin

    def items(self) -> list[tuple[bytes, float]]:
        """(member, score) pairs in ascending order."""
        return [(member, score) for score, member in self.order]

    def score(self, member: bytes) -> float | None:
        return self.scores.get(member)

    def insert(self, member: bytes, score: float) -> None:
        """Add a member that is not present."""
        self.scores[member] = score
        insort(self.order, (score, member))

    def update(self, member: bytes, old: float, new: float) -> None:
        """Move a present member from score `old` to `new`."""
        order = self.order
        index = bisect_left(order, (old, member))
        entry = (new, member)
        self.scores[member] = new
        # A small change usually keeps the rank: overwrite in place then,
        # which spares two memmoves of the tail.
        if (index == 0 or order[index - 1] < entry) and (
            index + 1 == len(order) or entry < order[index + 1]
        ):
            order[index] = entry
            return
        del order[index]
        insort(order, entry)

    def add(self, member: bytes, score: float) -> None:
        """Insert or update."""
        old = self.scores.get(member)
        if old is None:
            self.insert(member, score)
        elif old != score:
            self.update(member, old, score)

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        order = self.order
        del order[bisect_left(order, (score, member))]
        return True

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        if score is None:
            return None
        return bisect_left(self.order, (score, member))

    def score_span(
        self, low: float, low_open: bool, high: float, high_open: bool
    ) -> tuple[int, int]:
        """Indexes [start, stop) of the members whose score is in the range."""
        order = self.order
        if low_open:
            start = bisect_right(order, low, key=_score_of)
        else:
            start = bisect_left(order, low, key=_score_of)
        if high_open:
            stop = bisect_left(order, high, start, key=_score_of)
        else:
            stop = bisect_right(order, high, start, key=_score_of)
        return start, max(start, stop)

    def lex_span(self, low: LexBound, high: LexBound) -> tuple[int, int]:
        """Indexes [start, stop) of the members in a lex range.

        Meaningful when all scores are equal, as Redis documents; otherwise
        the result is some deterministic slice, as in Redis.
        """
        order = self.order
        size = len(order)
        kind, value = low
        if kind == _LEX_MIN:
            start = 0
        elif kind == _LEX_MAX:
            start = size
        elif kind == _LEX_OPEN:
            start = bisect_right(order, value, key=_member_of)
        else:
            start = bisect_left(order, value, key=_member_of)
        kind, value = high
        if kind == _LEX_MAX:
            stop = size
        elif kind == _LEX_MIN:
            stop = 0
        elif kind == _LEX_OPEN:
            stop = bisect_left(order, value, start, key=_member_of)
        else:
            stop = bisect_right(order, value, start, key=_member_of)
        return start, max(start, stop)

    def delete_span(self, start: int, stop: int) -> int:
        """Remove order[start:stop]; returns how many were removed."""
        order = self.order
        scores = self.scores
        for _, member in order[start:stop]:
            del scores[member]
        del order[start:stop]
        return max(0, stop - start)

    def pop_lowest(self, count: int) -> list[Entry]:
        order = self.order
        taken = order[:count]
        del order[:count]
        scores = self.scores
        for _, member in taken:
            del scores[member]
        return taken

    def pop_highest(self, count: int) -> list[Entry]:
        order = self.order
        start = max(0, len(order) - count)
        taken = order[start:]
        del order[start:]
        scores = self.scores
        for _, member in taken:
            del scores[member]
        taken.reverse()
        return taken


# Lex range bounds: (kind, value).
LexBound = tuple[int, bytes]
_LEX_MIN = 0  # "-"
_LEX_MAX = 1  # "+"
_LEX_OPEN = 2  # "(value"
_LEX_CLOSED = 3  # "[value"


def _parse_lex_bound(arg: bytes) -> LexBound:
    if arg == b"-":
        return (_LEX_MIN, b"")
    if arg == b"+":
        return (_LEX_MAX, b"")
    first = arg[:1]
    if first == b"(":
        return (_LEX_OPEN, arg[1:])
    if first == b"[":
        return (_LEX_CLOSED, arg[1:])
    raise CommandError(MIN_MAX_NOT_STRING)


def _parse_score_bound(arg: bytes) -> tuple[float, bool]:
    """A ZRANGEBYSCORE bound: "1.5", "(1.5", "-inf", "+inf"; (value, open)."""
    is_open = arg[:1] == b"("
    text = arg[1:] if is_open else arg
    if not text:
        return 0.0, is_open  # strtod("") is 0 and Redis accepts it
    return parse_float(text, MIN_MAX_NOT_FLOAT), is_open


def _get_zset(db: Keyspace, key: bytes, now: int) -> ZSet | None:
    value = db.get(key, now)
    if value is None or type(value) is ZSet:
        return value
    raise wrongtype()


def _get_zset_for_write(db: Keyspace, key: bytes, now: int) -> ZSet | None:
    value = db.get_for_write(key, now)
    if value is None or type(value) is ZSet:
        return value
    raise wrongtype()


def _parse_positive(arg: bytes) -> int:
    count = parse_int(arg, MUST_BE_POSITIVE)
    if count < 0:
        raise CommandError(MUST_BE_POSITIVE)
    return count


_ZADD_FLAGS = {
    b"nx": "nx",
    b"xx": "xx",
    b"ch": "ch",
    b"incr": "incr",
    b"gt": "gt",
    b"lt": "lt",
}


@command(
    "zadd",
    -4,
    "write denyoom fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Adds one or more members to a sorted set, or updates their scores. "
    "Creates the key if it doesn't exist.",
    since="1.2.0",
)
def zadd(db: Keyspace, args: list[bytes], now: int) -> Any:
    argc = len(args)
    index = 2
    nx = xx = ch = incr = gt = lt = False
    while index < argc:
        flag = _ZADD_FLAGS.get(args[index].lower())
        if flag is None:
            break
        if flag == "nx":
            nx = True
        elif flag == "xx":
            xx = True
        elif flag == "ch":
            ch = True
        elif flag == "incr":
            incr = True
        elif flag == "gt":
            gt = True
        else:
            lt = True
        index += 1
    elements = argc - index
    if elements & 1 or not elements:
        raise CommandError(SYNTAX)
    if nx and xx:
        raise CommandError(XX_AND_NX)
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise CommandError(GT_LT_NX)
    if incr and elements > 2:
        raise CommandError(INCR_SINGLE_PAIR)
    # Every score is parsed before anything changes: the command is atomic.
    if elements == 2:
        pairs = [(parse_float(args[index]), args[index + 1])]
    else:
        pairs = [(parse_float(args[i]), args[i + 1]) for i in range(index, argc, 2)]

    key = args[1]
    zset = _get_zset_for_write(db, key, now)
    if zset is None:
        if xx:
            return None if incr else 0
        zset = ZSet()
        db.set(key, zset)
    current_scores = zset.scores
    added = updated = processed = 0
    score = 0.0
    for score, member in pairs:
        current = current_scores.get(member)
        if current is None:
            if xx:
                continue
            zset.insert(member, score)
            added += 1
            processed += 1
            continue
        if nx:
            continue
        if incr:
            score += current
            if score != score:
                raise CommandError(SCORE_NAN)
        if (lt and score >= current) or (gt and score <= current):
            continue
        processed += 1
        if score != current:
            zset.update(member, current, score)
            updated += 1
    if incr:
        return score if processed else None
    return added + updated if ch else added


@command(
    "zincrby",
    4,
    "write denyoom fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Increments the score of a member in a sorted set.",
    since="1.2.0",
)
def zincrby(db: Keyspace, args: list[bytes], now: int) -> float:
    increment = parse_float(args[2])
    key = args[1]
    member = args[3]
    zset = _get_zset_for_write(db, key, now)
    if zset is None:
        zset = ZSet()
        db.set(key, zset)
    current = zset.scores.get(member)
    if current is None:
        zset.insert(member, increment)
        return increment
    score = current + increment
    if score != score:
        raise CommandError(SCORE_NAN)
    if score != current:
        zset.update(member, current, score)
    return score


@command(
    "zrem",
    -3,
    "write fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Removes one or more members from a sorted set. Deletes the sorted set "
    "if all members were removed.",
    since="1.2.0",
)
def zrem(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    zset = _get_zset_for_write(db, key, now)
    if zset is None:
        return 0
    removed = 0
    for member in args[2:]:
        if zset.remove(member):
            removed += 1
    if not zset.scores:
        db.delete(key)
    return removed


@command(
    "zscore",
    3,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the score of a member in a sorted set.",
    since="1.2.0",
)
def zscore(db: Keyspace, args: list[bytes], now: int) -> float | None:
    zset = _get_zset(db, args[1], now)
    if zset is None:
        return None
    return zset.scores.get(args[2])


@command(
    "zmscore",
    -3,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the score of one or more members in a sorted set.",
    since="6.2.0",
)
def zmscore(db: Keyspace, args: list[bytes], now: int) -> list[float | None]:
    zset = _get_zset(db, args[1], now)
    if zset is None:
        return [None] * (len(args) - 2)
    scores = zset.scores
    return [scores.get(member) for member in args[2:]]


@command(
    "zcard",
    2,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the number of members in a sorted set.",
    since="1.2.0",
)
def zcard(db: Keyspace, args: list[bytes], now: int) -> int:
    zset = _get_zset(db, args[1], now)
    return 0 if zset is None else len(zset.scores)


@command(
    "zcount",
    4,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the count of members in a sorted set that have scores within "
    "a range.",
    since="2.0.0",
)
def zcount(db: Keyspace, args: list[bytes], now: int) -> int:
    low, low_open = _parse_score_bound(args[2])
    high, high_open = _parse_score_bound(args[3])
    zset = _get_zset(db, args[1], now)
    if zset is None:
        return 0
    start, stop = zset.score_span(low, low_open, high, high_open)
    return stop - start


@command(
    "zlexcount",
    4,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the number of members in a sorted set within a lexicographical "
    "range.",
    since="2.8.9",
)
def zlexcount(db: Keyspace, args: list[bytes], now: int) -> int:
    low = _parse_lex_bound(args[2])
    high = _parse_lex_bound(args[3])
    zset = _get_zset(db, args[1], now)
    if zset is None:
        return 0
    start, stop = zset.lex_span(low, high)
    return stop - start


def _rank_command(db: Keyspace, args: list[bytes], now: int, reverse: bool) -> Any:
    argc = len(args)
    if argc > 4:
        raise wrong_arity("zrevrank" if reverse else "zrank")
    with_score = False
    if argc == 4:
        if args[3].lower() != b"withscore":
            raise CommandError(SYNTAX)
        with_score = True
    missing = NULL_ARRAY if with_score else None
    zset = _get_zset(db, args[1], now)
    if zset is None:
        return missing
    rank = zset.rank(args[2])
    if rank is None:
        return missing
    if reverse:
        rank = len(zset.order) - 1 - rank
    if with_score:
        return [rank, zset.scores[args[2]]]
    return rank


@command(
    "zrank",
    -3,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the index of a member in a sorted set ordered by ascending "
    "scores.",
    since="2.0.0",
)
def zrank(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _rank_command(db, args, now, False)


@command(
    "zrevrank",
    -3,
    "readonly fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the index of a member in a sorted set ordered by descending "
    "scores.",
    since="2.0.0",
)
def zrevrank(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _rank_command(db, args, now, True)


# ZRANGE and its older spellings share one parser, as in Redis's
# zrangeGenericCommand: `by` and `rev` are None when the command lets the
# options choose them.
_BY_RANK = 0
_BY_SCORE = 1
_BY_LEX = 2


def _range_entries(
    args: list[bytes],
    first: int,
    by: int | None,
    rev: bool | None,
    store: bool,
    zset_of: Callable[[bytes], ZSet | None],
) -> tuple[list[Entry], bool]:
    """Parse a range request starting at args[first] (the source key) and
    return the selected (score, member) entries in reply order, and whether
    WITHSCORES was given. `zset_of(key)` looks the key up (and type-checks)."""
    argc = len(args)
    with_scores = False
    offset = 0
    limit = -1
    has_limit = False
    index = first + 3
    while index < argc:
        option = args[index].lower()
        remaining = argc - index - 1
        if not store and option == b"withscores":
            with_scores = True
        elif option == b"limit" and remaining >= 2:
            offset = parse_int(args[index + 1])
            limit = parse_int(args[index + 2])
            has_limit = True
            index += 2
        elif rev is None and option == b"rev":
            rev = True
        elif by is None and option == b"bylex":
            by = _BY_LEX
        elif by is None and option == b"byscore":
            by = _BY_SCORE
        else:
            raise CommandError(SYNTAX)
        index += 1
    if rev is None:
        rev = False
    if by is None:
        by = _BY_RANK
    if has_limit and by == _BY_RANK:
        raise CommandError(LIMIT_NEEDS_BY)
    if with_scores and by == _BY_LEX:
        raise CommandError(WITHSCORES_WITH_BYLEX)

    low_arg, high_arg = args[first + 1], args[first + 2]
    if rev and by != _BY_RANK:
        low_arg, high_arg = high_arg, low_arg  # given as max, min
    if by == _BY_RANK:
        start = parse_int(low_arg)
        end = parse_int(high_arg)
    elif by == _BY_SCORE:
        low, low_open = _parse_score_bound(low_arg)
        high, high_open = _parse_score_bound(high_arg)
    else:
        low_lex = _parse_lex_bound(low_arg)
        high_lex = _parse_lex_bound(high_arg)

    zset = zset_of(args[first])
    if zset is None:
        return [], with_scores
    order = zset.order
    size = len(order)

    if by == _BY_RANK:
        if start < 0:
            start += size
        if end < 0:
            end += size
        if start < 0:
            start = 0
        if start > end or start >= size:
            return [], with_scores
        if end >= size:
            end = size - 1
        if rev:
            entries = order[size - 1 - end : size - start]
            entries.reverse()
            return entries, with_scores
        return order[start : end + 1], with_scores

    if by == _BY_SCORE:
        span_start, span_stop = zset.score_span(low, low_open, high, high_open)
    else:
        span_start, span_stop = zset.lex_span(low_lex, high_lex)
    if offset < 0:
        return [], with_scores  # as Redis: a negative offset skips everything
    if rev:
        stop = span_stop - offset
        begin = span_start if limit < 0 else max(span_start, stop - limit)
        if stop <= begin:
            return [], with_scores
        entries = order[begin:stop]
        entries.reverse()
        return entries, with_scores
    begin = span_start + offset
    stop = span_stop if limit < 0 else min(span_stop, begin + limit)
    if stop <= begin:
        return [], with_scores
    return order[begin:stop], with_scores


def _reply(entries: list[Entry], with_scores: bool) -> Any:
    if with_scores:
        return PairList([(member, score) for score, member in entries])
    return [member for _, member in entries]


def _range_read(
    db: Keyspace, args: list[bytes], now: int, by: int | None, rev: bool | None
) -> Any:
    def lookup(key: bytes) -> ZSet | None:
        return _get_zset(db, key, now)

    entries, with_scores = _range_entries(args, 1, by, rev, False, lookup)
    return _reply(entries, with_scores)


@command(
    "zrange",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a range of indexes.",
    since="1.2.0",
)
def zrange(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, None, None)


@command(
    "zrevrange",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a range of indexes in reverse "
    "order.",
    since="1.2.0",
)
def zrevrange(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, _BY_RANK, True)


@command(
    "zrangebyscore",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a range of scores.",
    since="1.0.5",
)
def zrangebyscore(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, _BY_SCORE, False)


@command(
    "zrevrangebyscore",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a range of scores in reverse "
    "order.",
    since="2.2.0",
)
def zrevrangebyscore(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, _BY_SCORE, True)


@command(
    "zrangebylex",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a lexicographical range.",
    since="2.8.9",
)
def zrangebylex(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, _BY_LEX, False)


@command(
    "zrevrangebylex",
    -4,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns members in a sorted set within a lexicographical range in "
    "reverse order.",
    since="2.8.9",
)
def zrevrangebylex(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _range_read(db, args, now, _BY_LEX, True)


@command(
    "zrangestore",
    -5,
    "write denyoom",
    1,
    2,
    1,
    group="sorted_set",
    summary="Stores a range of members from sorted set in a key.",
    since="6.2.0",
)
def zrangestore(db: Keyspace, args: list[bytes], now: int) -> int:
    def lookup(key: bytes) -> ZSet | None:
        return _get_zset_for_write(db, key, now)

    entries, _ = _range_entries(args, 2, None, None, True, lookup)
    destination = args[1]
    if not entries:
        db.delete(destination)
        return 0
    db.set(destination, ZSet.from_items((member, s) for s, member in entries))
    return len(entries)


def _remove_range(db: Keyspace, args: list[bytes], now: int, by: int) -> int:
    if by == _BY_RANK:
        start = parse_int(args[2])
        end = parse_int(args[3])
    elif by == _BY_SCORE:
        low, low_open = _parse_score_bound(args[2])
        high, high_open = _parse_score_bound(args[3])
    else:
        low_lex = _parse_lex_bound(args[2])
        high_lex = _parse_lex_bound(args[3])
    key = args[1]
    zset = _get_zset_for_write(db, key, now)
    if zset is None:
        return 0
    size = len(zset.order)
    if by == _BY_RANK:
        if start < 0:
            start += size
        if end < 0:
            end += size
        if start < 0:
            start = 0
        if start > end or start >= size:
            return 0
        span = (start, min(end, size - 1) + 1)
    elif by == _BY_SCORE:
        span = zset.score_span(low, low_open, high, high_open)
    else:
        span = zset.lex_span(low_lex, high_lex)
    removed = zset.delete_span(*span)
    if not zset.scores:
        db.delete(key)
    return removed


@command(
    "zremrangebyrank",
    4,
    "write",
    1,
    1,
    1,
    group="sorted_set",
    summary="Removes members in a sorted set within a range of indexes. Deletes the "
    "sorted set if all members were removed.",
    since="2.0.0",
)
def zremrangebyrank(db: Keyspace, args: list[bytes], now: int) -> int:
    return _remove_range(db, args, now, _BY_RANK)


@command(
    "zremrangebyscore",
    4,
    "write",
    1,
    1,
    1,
    group="sorted_set",
    summary="Removes members in a sorted set within a range of scores. Deletes the "
    "sorted set if all members were removed.",
    since="1.2.0",
)
def zremrangebyscore(db: Keyspace, args: list[bytes], now: int) -> int:
    return _remove_range(db, args, now, _BY_SCORE)


@command(
    "zremrangebylex",
    4,
    "write",
    1,
    1,
    1,
    group="sorted_set",
    summary="Removes members in a sorted set within a lexicographical range. "
    "Deletes the sorted set if all members were removed.",
    since="2.8.9",
)
def zremrangebylex(db: Keyspace, args: list[bytes], now: int) -> int:
    return _remove_range(db, args, now, _BY_LEX)


def _pop_command(db: Keyspace, args: list[bytes], now: int, highest: bool) -> Any:
    argc = len(args)
    if argc > 3:
        raise wrong_arity("zpopmax" if highest else "zpopmin")
    count = _parse_positive(args[2]) if argc == 3 else -1
    key = args[1]
    zset = _get_zset_for_write(db, key, now)
    if zset is None or count == 0:
        return []
    entries = (
        zset.pop_highest(max(count, 1)) if highest else zset.pop_lowest(max(count, 1))
    )
    if not zset.scores:
        db.delete(key)
    if count < 0:
        # Without a count the reply is flat [member, score], in RESP3 too.
        score, member = entries[0]
        return [member, score]
    return PairList([(member, score) for score, member in entries])


@command(
    "zpopmin",
    -2,
    "write fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the lowest-scoring members from a sorted set after removing "
    "them. Deletes the sorted set if the last member was popped.",
    since="5.0.0",
)
def zpopmin(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _pop_command(db, args, now, False)


@command(
    "zpopmax",
    -2,
    "write fast",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns the highest-scoring members from a sorted set after removing "
    "them. Deletes the sorted set if the last member was popped.",
    since="5.0.0",
)
def zpopmax(db: Keyspace, args: list[bytes], now: int) -> Any:
    return _pop_command(db, args, now, True)


@command(
    "zrandmember",
    -2,
    "readonly",
    1,
    1,
    1,
    group="sorted_set",
    summary="Returns one or more random members from a sorted set.",
    since="6.2.0",
)
def zrandmember(db: Keyspace, args: list[bytes], now: int) -> Any:
    # A read: any randomness will do, replicas never need to agree on it.
    argc = len(args)
    if argc == 2:
        zset = _get_zset(db, args[1], now)
        if zset is None:
            return None
        return random.choice(zset.order)[1]
    count = parse_int(args[2], NOT_INTEGER)
    if count == -(2**63):
        raise CommandError(
            f"ERR value is out of range, value must between {-_LONG_MAX} and {_LONG_MAX}"
        )
    with_scores = False
    if argc > 4 or (argc == 4 and args[3].lower() != b"withscores"):
        raise CommandError(SYNTAX)
    if argc == 4:
        with_scores = True
        if count < -(_LONG_MAX // 2) or count > _LONG_MAX // 2:
            raise CommandError(VALUE_OUT_OF_RANGE)
    zset = _get_zset(db, args[1], now)
    if zset is None or count == 0:
        return []
    order = zset.order
    if count < 0:
        entries = random.choices(order, k=-count)
    elif count >= len(order):
        entries = order.copy()
    else:
        entries = random.sample(order, count)
    return _reply(entries, with_scores)
