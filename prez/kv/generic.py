"""Key and database commands: DEL, EXISTS, KEYS, SCAN, RENAME, expiry, SWAPDB ...

Also the glob matcher shared by KEYS and the SCAN family (`stringmatch`, a
port of Redis's stringmatchlen) and the internal `PREZ.EXPIRE` command the
server proposes for active expiry.

Replies and error texts follow Redis 7 (src/db.c, src/expire.c). Handlers are
deterministic functions of (keyspace, args, now): absolute expiry times come
from `now`, the leader's stamp; only read-only commands (RANDOMKEY) use
randomness. Nothing here does I/O or imports from `prez.server`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from functools import partial
from itertools import islice
from zlib import crc32

from prez.errors import DB_OUT_OF_RANGE, NO_SUCH_KEY, NOT_INTEGER, SYNTAX, CommandError
from prez.kv.command import command
from prez.kv.keyspace import INT64_MAX, INT64_MIN, Keyspace, parse_int, type_name

INVALID_CURSOR = "ERR invalid cursor"
SAME_OBJECT = "ERR source and destination objects are the same"
INVALID_FIRST_DB = "ERR invalid first DB index"
INVALID_SECOND_DB = "ERR invalid second DB index"
EXPIRE_NX_CONFLICT = (
    "ERR NX and XX, GT or LT options at the same time are not compatible"
)
EXPIRE_GT_LT_CONFLICT = "ERR GT and LT options at the same time are not compatible"

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1


# --- glob patterns -------------------------------------------------------------

_STAR, _QUESTION, _OPEN, _CLOSE, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"
# Redis gives up (no match) on patterns that nest more than this many stars.
_MAX_STAR_NESTING = 1000
_GLOB_SPECIALS = frozenset(b"*?[\\")


def _signed_char(byte: int) -> int:
    # stringmatchlen compares range bounds as (signed) C chars.
    return byte - 256 if byte > 127 else byte


def _match_one(pattern: bytes, pi: int, char: int) -> tuple[bool, int]:
    """Match the single-character token at pattern[pi] against char.

    Returns whether it matched and the index of the token's last byte.
    """
    plen = len(pattern)
    token = pattern[pi]
    if token == _QUESTION:
        return True, pi
    if token == _OPEN:
        pi += 1
        negate = pi < plen and pattern[pi] == _CARET
        if negate:
            pi += 1
        matched = False
        while True:
            if pi + 1 < plen and pattern[pi] == _BACKSLASH:
                pi += 1
                if pattern[pi] == char:
                    matched = True
            elif pi < plen and pattern[pi] == _CLOSE:
                break
            elif pi >= plen:
                pi -= 1  # an unclosed class ends with the pattern
                break
            elif pi + 2 < plen and pattern[pi + 1] == _DASH:
                low, high = _signed_char(pattern[pi]), _signed_char(pattern[pi + 2])
                if low > high:
                    low, high = high, low
                if low <= _signed_char(char) <= high:
                    matched = True
                pi += 2
            elif pattern[pi] == char:
                matched = True
            pi += 1
        return matched != negate, pi
    if token == _BACKSLASH and pi + 1 < plen:
        pi += 1
    return pattern[pi] == char, pi


def stringmatch(pattern: bytes, string: bytes) -> bool:
    """Redis's glob match (stringmatchlen, case-sensitive): * ? [a-z] [^a] \\x.

    Iterative: every token but `*` consumes exactly one byte, so retrying
    only from the most recent star finds a match whenever Redis's recursive
    search does, without its exponential worst case.
    """
    plen, slen = len(pattern), len(string)
    if not slen:
        return not plen  # Redis's loop never runs: even "*" misses ""
    pi = si = 0
    resume_pi = -1  # token after the most recent star
    resume_si = 0  # where that star's match would extend to next
    stars = 0
    while True:
        if pi < plen and pattern[pi] == _STAR:
            while pi + 1 < plen and pattern[pi + 1] == _STAR:
                pi += 1
            if pi + 1 == plen:
                return True  # a trailing star matches any rest
            stars += 1
            if stars > _MAX_STAR_NESTING and si < slen:
                return False
            pi += 1
            resume_pi, resume_si = pi, si
            continue
        if si == slen:
            return pi == plen
        if pi < plen:
            matched, last = _match_one(pattern, pi, string[si])
            if matched:
                pi = last + 1
                si += 1
                continue
        if resume_pi < 0 or resume_si + 1 >= slen:
            return False
        resume_si += 1
        pi, si = resume_pi, resume_si


def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate equal to `stringmatch(pattern, ...)`, faster for common shapes.

    Patterns made of literal bytes around at most a leading and a trailing
    star ("user:*", "*:tmp", "*id*") become bytes methods; anything else
    falls back to the general matcher. Redis never matches "" (not even
    with "*"), which the shortcuts preserve.
    """
    tokens: list[bytes | None] = []  # None stands for a run of stars
    pi, plen = 0, len(pattern)
    while pi < plen:
        byte = pattern[pi]
        if byte == _STAR:
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
        elif byte in (_QUESTION, _OPEN):
            return partial(stringmatch, pattern)
        else:
            if byte == _BACKSLASH and pi + 1 < plen:
                pi += 1
            tokens.append(pattern[pi : pi + 1])
        pi += 1
    lead = bool(tokens) and tokens[0] is None
    trail = len(tokens) > int(lead) and tokens[-1] is None
    inner = tokens[int(lead) : len(tokens) - int(trail)]
    if None in inner:
        return partial(stringmatch, pattern)
    literal = b"".join(token for token in inner if token is not None)
    if lead and trail:  # a non-empty literal between: stars collapsed into one run
        return lambda key: literal in key
    if lead:
        return lambda key: key.endswith(literal) and key != b""
    if trail:
        return lambda key: key.startswith(literal) and key != b""
    return literal.__eq__


# --- keys ----------------------------------------------------------------------


@command(
    "del",
    -2,
    "write",
    first_key=1,
    last_key=-1,
    key_step=1,
    group="generic",
    summary="Deletes one or more keys.",
    since="1.0.0",
)
def del_(db: Keyspace, args: list[bytes], now: int) -> int:
    return _delete_keys(db, args, now)


def _delete_keys(db: Keyspace, args: list[bytes], now: int) -> int:
    deleted = 0
    for key in args[1:]:
        # get_for_write drops an expired key, which then does not count.
        if db.get_for_write(key, now) is not None:
            db.delete(key)
            deleted += 1
    return deleted


@command(
    "unlink",
    -2,
    "write fast",
    first_key=1,
    last_key=-1,
    key_step=1,
    group="generic",
    summary="Asynchronously deletes one or more keys.",
    since="4.0.0",
)
def unlink(db: Keyspace, args: list[bytes], now: int) -> int:
    return _delete_keys(db, args, now)


@command(
    "exists",
    -2,
    "readonly fast",
    first_key=1,
    last_key=-1,
    key_step=1,
    group="generic",
    summary="Determines whether one or more keys exist.",
    since="1.0.0",
)
def exists(db: Keyspace, args: list[bytes], now: int) -> int:
    get = db.get
    found = 0
    for key in args[1:]:
        if get(key, now) is not None:
            found += 1
    return found


@command(
    "type",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Determines the type of value stored at a key.",
    since="1.0.0",
)
def type_(db: Keyspace, args: list[bytes], now: int) -> str:
    value = db.get(args[1], now)
    return "none" if value is None else type_name(value).decode()


@command(
    "keys",
    2,
    "readonly",
    group="generic",
    summary="Returns all key names that match a pattern.",
    since="1.0.0",
)
def keys(db: Keyspace, args: list[bytes], now: int) -> list[bytes]:
    pattern = args[1]
    if pattern == b"*":
        return db.live_keys(now)
    if _GLOB_SPECIALS.isdisjoint(pattern):
        return [pattern] if db.get(pattern, now) is not None else []
    return list(filter(compile_glob(pattern), db.live_keys(now)))


def scan_hash(key: bytes) -> int:
    """The position of a key in SCAN order: same in every process and replica.

    Python's hash() of bytes is salted per process (PYTHONHASHSEED), so a
    cursor handed out by one node would mean nothing to another.
    """
    return crc32(key)


_SCAN_END = 2**32  # scan_hash values are below this


def _parse_cursor(arg: bytes) -> int:
    """An unsigned 64-bit cursor, accepted as Redis's string2ull accepts it."""
    try:
        value = parse_int(arg)
    except CommandError:
        pass
    else:
        if value < 0:
            raise CommandError(INVALID_CURSOR)
        return value
    # Redis falls back to strtoull: leading blanks, a sign, leading zeros.
    text = arg.lstrip(b" \t\n\v\f\r")
    negative = text[:1] == b"-"
    if text[:1] in (b"+", b"-"):
        text = text[1:]
    if not text.isdigit() or int(text) > UINT64_MAX:
        raise CommandError(INVALID_CURSOR)
    value = int(text)
    return (-value) % 2**64 if negative else value


@command(
    "scan",
    -2,
    "readonly",
    group="generic",
    summary="Iterates over the key names in the database.",
    since="2.8.0",
)
def scan(db: Keyspace, args: list[bytes], now: int) -> list[bytes | list[bytes]]:
    """Keys in scan_hash order; the cursor is the next hash to continue from.

    Each call returns every key whose hash lies in [cursor, next cursor), so
    a key present for the whole iteration is returned at least once however
    keys come and go in between, and a cursor from one replica is valid on
    another. Keys sharing a hash are always returned together.
    """
    cursor = _parse_cursor(args[1])
    count = 10
    pattern: bytes | None = None
    kind: bytes | None = None
    i = 2
    argc = len(args)
    while i < argc:
        option = args[i].lower()
        if i + 1 >= argc:
            raise CommandError(SYNTAX)
        if option == b"count":
            count = parse_int(args[i + 1])
            if count < 1:
                raise CommandError(SYNTAX)
        elif option == b"match":
            pattern = None if args[i + 1] == b"*" else args[i + 1]
        elif option == b"type":
            kind = args[i + 1].lower()
        else:
            raise CommandError(SYNTAX)
        i += 2
    matches = None if pattern is None else compile_glob(pattern)
    data = db.data
    if cursor >= _SCAN_END or not data:
        return [b"0", []]
    # Each call costs O(keys); COUNT is only a hint, so on a large keyspace
    # take bigger steps to bound a full iteration to about 128 such passes.
    count = max(count, len(data) >> 7)
    # crc32 is scan_hash, called directly: this loop is the cost of SCAN.
    ahead = [(h, key) for key in data if (h := crc32(key)) >= cursor]
    if len(ahead) <= count:
        batch = ahead
        next_cursor = 0
    else:
        # The batch is the whole hash interval [cursor, last]: keys sharing
        # the count-th smallest hash all go out now, none is split off.
        last = heapq.nsmallest(count, [h for h, _ in ahead])[-1]
        batch = sorted(item for item in ahead if item[0] <= last)
        next_cursor = last + 1 if len(batch) < len(ahead) else 0
    found = []
    for _, key in batch:
        value = db.get(key, now)
        if value is None:
            continue
        if matches is not None and not matches(key):
            continue
        if kind is not None and type_name(value) != kind:
            continue
        found.append(key)
    return [b"%d" % next_cursor, found]


@command(
    "randomkey",
    1,
    "readonly",
    group="generic",
    summary="Returns a random key name from the database.",
    since="1.0.0",
)
def randomkey(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    # A read: randomness is allowed, nothing is replicated.
    data = db.data
    for _ in range(16):
        if not data:
            return None
        key = next(islice(data, random.randrange(len(data)), None))
        if db.get(key, now) is not None:
            return key
    live = db.live_keys(now)  # mostly expired keys: pick among the live ones
    return random.choice(live) if live else None


def _rename(db: Keyspace, args: list[bytes], now: int, only_if_new: bool) -> bool:
    source, target = args[1], args[2]
    value = db.get_for_write(source, now)
    if value is None:
        raise CommandError(NO_SUCH_KEY)
    if source == target:
        return False
    if db.get_for_write(target, now) is not None and only_if_new:
        return False
    when = db.ttl_ms(source)
    db.delete(source)
    db.set(target, value)
    if when is not None:
        db.expire_at(target, when)
    return True


@command(
    "rename",
    3,
    "write",
    first_key=1,
    last_key=2,
    key_step=1,
    group="generic",
    summary="Renames a key and overwrites the destination.",
    since="1.0.0",
)
def rename(db: Keyspace, args: list[bytes], now: int) -> str:
    _rename(db, args, now, only_if_new=False)
    return "OK"


@command(
    "renamenx",
    3,
    "write fast",
    first_key=1,
    last_key=2,
    key_step=1,
    group="generic",
    summary="Renames a key only when the target key name doesn't exist.",
    since="1.0.0",
)
def renamenx(db: Keyspace, args: list[bytes], now: int) -> int:
    return 1 if _rename(db, args, now, only_if_new=True) else 0


# --- expiry --------------------------------------------------------------------

_EXPIRE_NX, _EXPIRE_XX, _EXPIRE_GT, _EXPIRE_LT = 1, 2, 4, 8
_EXPIRE_OPTIONS = {
    b"nx": _EXPIRE_NX,
    b"xx": _EXPIRE_XX,
    b"gt": _EXPIRE_GT,
    b"lt": _EXPIRE_LT,
}
# C's LLONG_MIN / 1000 truncates toward zero.
_MIN_SECONDS = -(-INT64_MIN // 1000)
_MAX_SECONDS = INT64_MAX // 1000


def _parse_expire_options(args: list[bytes]) -> int:
    flags = 0
    for arg in args[3:]:
        flag = _EXPIRE_OPTIONS.get(arg.lower())
        if flag is None:
            raise CommandError(
                f"ERR Unsupported option {arg.decode('utf-8', 'replace')}"
            )
        flags |= flag
    if flags & _EXPIRE_NX and flags & (_EXPIRE_XX | _EXPIRE_GT | _EXPIRE_LT):
        raise CommandError(EXPIRE_NX_CONFLICT)
    if flags & _EXPIRE_GT and flags & _EXPIRE_LT:
        raise CommandError(EXPIRE_GT_LT_CONFLICT)
    return flags


def _expire(
    db: Keyspace, args: list[bytes], now: int, name: str, base: int, seconds: bool
) -> int:
    flags = _parse_expire_options(args) if len(args) > 3 else 0
    when = parse_int(args[2])
    if seconds:
        if when > _MAX_SECONDS or when < _MIN_SECONDS:
            raise CommandError(f"ERR invalid expire time in '{name}' command")
        when *= 1000
    if when > INT64_MAX - base:
        raise CommandError(f"ERR invalid expire time in '{name}' command")
    when += base
    key = args[1]
    if db.get_for_write(key, now) is None:
        return 0
    if flags:
        current = db.ttl_ms(key)
        if flags & _EXPIRE_NX and current is not None:
            return 0
        if flags & _EXPIRE_XX and current is None:
            return 0
        # No TTL counts as an infinite one: never less than, always greater.
        if flags & _EXPIRE_GT and (current is None or when <= current):
            return 0
        if flags & _EXPIRE_LT and current is not None and when >= current:
            return 0
    if when <= now:
        db.delete(key)
    else:
        db.expire_at(key, when)
    return 1


@command(
    "expire",
    -3,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Sets the expiration time of a key in seconds.",
    since="1.0.0",
)
def expire(db: Keyspace, args: list[bytes], now: int) -> int:
    return _expire(db, args, now, "expire", now, seconds=True)


@command(
    "pexpire",
    -3,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Sets the expiration time of a key in milliseconds.",
    since="2.6.0",
)
def pexpire(db: Keyspace, args: list[bytes], now: int) -> int:
    return _expire(db, args, now, "pexpire", now, seconds=False)


@command(
    "expireat",
    -3,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Sets the expiration time of a key to a Unix timestamp.",
    since="1.2.0",
)
def expireat(db: Keyspace, args: list[bytes], now: int) -> int:
    return _expire(db, args, now, "expireat", 0, seconds=True)


@command(
    "pexpireat",
    -3,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Sets the expiration time of a key to a Unix milliseconds timestamp.",
    since="2.6.0",
)
def pexpireat(db: Keyspace, args: list[bytes], now: int) -> int:
    return _expire(db, args, now, "pexpireat", 0, seconds=False)


def _ms_to_rounded_seconds(ms: int) -> int:
    # (ms + 500) / 1000 with C's truncating division.
    total = ms + 500
    return total // 1000 if total >= 0 else -(-total // 1000)


@command(
    "ttl",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Returns the expiration time in seconds of a key.",
    since="1.0.0",
)
def ttl(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get(key, now) is None:
        return -2
    when = db.ttl_ms(key)
    return -1 if when is None else _ms_to_rounded_seconds(max(when - now, 0))


@command(
    "pttl",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Returns the expiration time in milliseconds of a key.",
    since="2.6.0",
)
def pttl(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get(key, now) is None:
        return -2
    when = db.ttl_ms(key)
    return -1 if when is None else max(when - now, 0)


@command(
    "expiretime",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Returns the expiration time of a key as a Unix timestamp.",
    since="7.0.0",
)
def expiretime(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get(key, now) is None:
        return -2
    when = db.ttl_ms(key)
    return -1 if when is None else _ms_to_rounded_seconds(max(when, 0))


@command(
    "pexpiretime",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Returns the expiration time of a key as a Unix milliseconds timestamp.",
    since="7.0.0",
)
def pexpiretime(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get(key, now) is None:
        return -2
    when = db.ttl_ms(key)
    return -1 if when is None else max(when, 0)


@command(
    "persist",
    2,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Removes the expiration time of a key.",
    since="2.2.0",
)
def persist(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get_for_write(key, now) is None:
        return 0
    return 0 if db.expires.pop(key, None) is None else 1


@command(
    "prez.expire",
    -2,
    "write fast",
    first_key=1,
    last_key=-1,
    key_step=1,
    group="generic",
    summary="Deletes those of the given keys that have expired (internal: "
    "proposed by the leader's active expiry).",
    since="0.1.0",
)
def prez_expire(db: Keyspace, args: list[bytes], now: int) -> int:
    # Deletes only keys expired at the entry's `now`, so every replica agrees
    # even if a key was rewritten between the sweep and this entry's commit.
    expires = db.expires
    deleted = 0
    for key in args[1:]:
        when = expires.get(key)
        if when is not None and when <= now:
            db.delete(key)
            deleted += 1
    return deleted


# --- databases -------------------------------------------------------------------


@command(
    "dbsize",
    1,
    "readonly fast",
    group="server",
    summary="Returns the number of keys in the database.",
    since="1.0.0",
)
def dbsize(db: Keyspace, args: list[bytes], now: int) -> int:
    return db.size(now)


def _check_flush_mode(args: list[bytes]) -> None:
    if len(args) > 2 or (len(args) == 2 and args[1].lower() not in (b"sync", b"async")):
        raise CommandError(SYNTAX)


@command(
    "flushdb",
    -1,
    "write",
    group="server",
    summary="Remove all keys from the current database.",
    since="1.0.0",
)
def flushdb(db: Keyspace, args: list[bytes], now: int) -> str:
    _check_flush_mode(args)
    db.clear()
    return "OK"


@command(
    "flushall",
    -1,
    "write",
    group="server",
    summary="Removes all keys from all databases.",
    since="1.0.0",
)
def flushall(db: Keyspace, args: list[bytes], now: int) -> str:
    _check_flush_mode(args)
    db.store.flush_all()
    return "OK"


def _parse_db_index(arg: bytes, error: str) -> int:
    index = parse_int(arg, error)
    if index < INT32_MIN or index > INT32_MAX:  # Redis reads it into a C int
        raise CommandError(error)
    return index


@command(
    "swapdb",
    3,
    "write fast",
    group="server",
    summary="Swaps two Redis databases.",
    since="4.0.0",
)
def swapdb(db: Keyspace, args: list[bytes], now: int) -> str:
    first = _parse_db_index(args[1], INVALID_FIRST_DB)
    second = _parse_db_index(args[2], INVALID_SECOND_DB)
    count = len(db.store.dbs)
    if not (0 <= first < count and 0 <= second < count):
        raise CommandError(DB_OUT_OF_RANGE)
    if first != second:
        db.store.swap(first, second)
    return "OK"


@command(
    "move",
    3,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="generic",
    summary="Moves a key to another database.",
    since="1.0.0",
)
def move(db: Keyspace, args: list[bytes], now: int) -> int:
    index = _parse_db_index(args[2], NOT_INTEGER)
    dbs = db.store.dbs
    if not 0 <= index < len(dbs):
        raise CommandError(DB_OUT_OF_RANGE)
    target = dbs[index]
    if target is db:
        raise CommandError(SAME_OBJECT)
    key = args[1]
    value = db.get_for_write(key, now)
    if value is None or target.get_for_write(key, now) is not None:
        return 0
    when = db.ttl_ms(key)
    db.delete(key)
    target.set(key, value)
    if when is not None:
        target.expire_at(key, when)
    return 1
