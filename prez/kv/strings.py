"""String commands: GET, SET and its variants, counters, ranges, APPEND.

Replies and error texts follow Redis 7 (src/t_string.c). Handlers are
deterministic functions of (keyspace, args, now); expiry times are absolute
milliseconds computed from `now`, the leader's stamp, never from a clock.
Nothing here does I/O or imports from `prez.server`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from prez.errors import (
    NOT_FLOAT,
    NOT_INTEGER,
    OVERFLOW,
    SYNTAX,
    CommandError,
    wrong_arity,
)
from prez.kv.command import command
from prez.kv.keyspace import INT64_MAX, INT64_MIN, Keyspace, parse_int, wrongtype

# Redis's proto-max-bulk-len default: the largest string SETRANGE/APPEND may build.
MAX_STRING_LENGTH = 512 * 1024 * 1024

STRING_TOO_LONG = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
OFFSET_OUT_OF_RANGE = "ERR offset is out of range"
DECREMENT_OVERFLOW = "ERR decrement would overflow"
NAN_OR_INFINITY = "ERR increment would produce NaN or Infinity"

_EMPTY = b""


def _invalid_expire(name: str) -> CommandError:
    return CommandError(f"ERR invalid expire time in '{name}' command")


def _checked_string(value: object) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    raise wrongtype()


# --- expiry options shared by SET, SETEX, PSETEX and GETEX -------------------

# Option bits, as Redis's OBJ_SET_* flags.
_NX = 1
_XX = 2
_GET = 4
_KEEPTTL = 8
_PERSIST = 16
_EX = 32
_PX = 64
_EXAT = 128
_PXAT = 256
_ANY_EXPIRE = _EX | _PX | _EXAT | _PXAT
_EXPIRE_OPTIONS = {b"ex": _EX, b"px": _PX, b"exat": _EXAT, b"pxat": _PXAT}


def _parse_string_options(
    args: list[bytes], start: int, for_set: bool
) -> tuple[int, bytes | None]:
    """Flags and the expire argument, accepting what Redis's parser accepts.

    The same option may repeat (the last expire value wins), but options that
    contradict each other (NX with XX, two different expire forms, KEEPTTL or
    PERSIST with an expire) are a syntax error, as is an option of SET given
    to GETEX and the reverse.
    """
    flags = 0
    expire: bytes | None = None
    argc = len(args)
    i = start
    while i < argc:
        option = args[i].lower()
        if for_set and option == b"nx" and not flags & _XX:
            flags |= _NX
        elif for_set and option == b"xx" and not flags & _NX:
            flags |= _XX
        elif for_set and option == b"get":
            flags |= _GET
        elif for_set and option == b"keepttl" and not flags & (_PERSIST | _ANY_EXPIRE):
            flags |= _KEEPTTL
        elif (
            not for_set
            and option == b"persist"
            and not flags & (_KEEPTTL | _ANY_EXPIRE)
        ):
            flags |= _PERSIST
        else:
            kind = _EXPIRE_OPTIONS.get(option)
            # Only the same form may repeat: EX 1 EX 2 is accepted, EX 1 PX 2 is not.
            if (
                kind is None
                or i + 1 >= argc
                or flags & (_KEEPTTL | _PERSIST | (_ANY_EXPIRE & ~kind))
            ):
                raise CommandError(SYNTAX)
            flags |= kind
            i += 1
            expire = args[i]
        i += 1
    return flags, expire


def _expire_at_ms(name: str, arg: bytes, flags: int, now: int) -> int:
    """The absolute expiry in ms of an EX/PX/EXAT/PXAT argument, as Redis checks it."""
    amount = parse_int(arg)
    seconds = flags & (_EX | _EXAT)
    if amount <= 0 or (seconds and amount > INT64_MAX // 1000):
        raise _invalid_expire(name)
    when = amount * 1000 if seconds else amount
    if flags & (_EX | _PX):
        when += now
        if when > INT64_MAX:  # Redis detects the signed overflow of this sum
            raise _invalid_expire(name)
    return when


# --- GET / SET family --------------------------------------------------------


@command(
    "get",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns the string value of a key.",
    since="1.0.0",
)
def get(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    # Keyspace.get inlined: GET is the hottest read of all.
    key = args[1]
    value = db.data.get(key)
    if value is None:
        return None
    expires = db.expires
    if expires:
        when = expires.get(key)
        if when is not None and when <= now:
            return None
    if type(value) is bytes:
        return value
    raise wrongtype()


@command(
    "set",
    -3,
    "write denyoom",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Sets the string value of a key, ignoring its type. "
    "The key is created if it doesn't exist.",
    since="1.0.0",
)
def set_(db: Keyspace, args: list[bytes], now: int) -> bytes | str | None:
    key = args[1]
    if len(args) == 3:
        # Keyspace.set inlined: plain SET is the hottest write of all.
        db.data[key] = args[2]
        if db.expires:
            db.expires.pop(key, None)
        return "OK"
    flags, expire = _parse_string_options(args, 3, for_set=True)
    when = _expire_at_ms("set", expire, flags, now) if expire is not None else 0
    current = db.get_for_write(key, now)
    old = _checked_string(current) if flags & _GET else None
    if (flags & _NX and current is not None) or (flags & _XX and current is None):
        return old if flags & _GET else None
    if flags & _KEEPTTL:
        db.put(key, args[2])
    else:
        db.set(key, args[2])
    if expire is not None:
        if when <= now:  # EXAT/PXAT in the past: the key is set and expires at once
            db.delete(key)
        else:
            db.expire_at(key, when)
    return old if flags & _GET else "OK"


@command(
    "setnx",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Set the string value of a key only when the key doesn't exist.",
    since="1.0.0",
)
def setnx(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    if db.get_for_write(key, now) is not None:
        return 0
    db.set(key, args[2])
    return 1


def _set_with_expire(
    db: Keyspace, args: list[bytes], now: int, name: str, unit: int
) -> str:
    when = _expire_at_ms(name, args[2], unit, now)
    db.set(args[1], args[3])
    db.expire_at(args[1], when)
    return "OK"


@command(
    "setex",
    4,
    "write denyoom",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Sets the string value and expiration time of a key. "
    "Creates the key if it doesn't exist.",
    since="2.0.0",
)
def setex(db: Keyspace, args: list[bytes], now: int) -> str:
    return _set_with_expire(db, args, now, "setex", _EX)


@command(
    "psetex",
    4,
    "write denyoom",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Sets both string value and expiration time in milliseconds of a key. "
    "The key is created if it doesn't exist.",
    since="2.6.0",
)
def psetex(db: Keyspace, args: list[bytes], now: int) -> str:
    return _set_with_expire(db, args, now, "psetex", _PX)


@command(
    "getset",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns the previous string value of a key after setting it to a new value.",
    since="1.0.0",
)
def getset(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    old = _checked_string(db.get_for_write(args[1], now))
    db.set(args[1], args[2])
    return old


@command(
    "getdel",
    2,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns the string value of a key after deleting the key.",
    since="6.2.0",
)
def getdel(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    old = _checked_string(db.get_for_write(args[1], now))
    if old is not None:
        db.delete(args[1])
    return old


@command(
    "getex",
    -2,
    "write fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns the string value of a key after setting its expiration time.",
    since="6.2.0",
)
def getex(db: Keyspace, args: list[bytes], now: int) -> bytes | None:
    key = args[1]
    flags, expire = _parse_string_options(args, 2, for_set=False)
    value = _checked_string(db.get_for_write(key, now))
    if value is None:
        return None
    if expire is not None:
        when = _expire_at_ms("getex", expire, flags, now)
        if when <= now:
            db.delete(key)
        else:
            db.expire_at(key, when)
    elif flags & _PERSIST:
        db.expires.pop(key, None)
    return value


@command(
    "mget",
    -2,
    "readonly fast",
    first_key=1,
    last_key=-1,
    key_step=1,
    group="string",
    summary="Atomically returns the string values of one or more keys.",
    since="1.0.0",
)
def mget(db: Keyspace, args: list[bytes], now: int) -> list[bytes | None]:
    get_value = db.get
    values = []
    for key in args[1:]:
        value = get_value(key, now)
        values.append(value if type(value) is bytes else None)
    return values


@command(
    "mset",
    -3,
    "write denyoom",
    first_key=1,
    last_key=-1,
    key_step=2,
    group="string",
    summary="Atomically creates or modifies the string values of one or more keys.",
    since="1.0.1",
)
def mset(db: Keyspace, args: list[bytes], now: int) -> str:
    if len(args) % 2 == 0:
        raise wrong_arity("mset")
    store = db.set
    for i in range(1, len(args), 2):
        store(args[i], args[i + 1])
    return "OK"


@command(
    "msetnx",
    -3,
    "write denyoom",
    first_key=1,
    last_key=-1,
    key_step=2,
    group="string",
    summary="Atomically modifies the string values of one or more keys "
    "only when all keys don't exist.",
    since="1.0.1",
)
def msetnx(db: Keyspace, args: list[bytes], now: int) -> int:
    if len(args) % 2 == 0:
        raise wrong_arity("msetnx")
    for i in range(1, len(args), 2):
        if db.get_for_write(args[i], now) is not None:
            return 0
    for i in range(1, len(args), 2):
        db.set(args[i], args[i + 1])
    return 1


# --- counters ----------------------------------------------------------------


def _counter_value(value: bytes) -> int:
    """A stored counter: a canonical signed 64-bit decimal, as Redis's string2ll."""
    if len(value) <= 20:
        try:
            number = int(value)
        except ValueError:
            pass
        else:
            # The round trip rejects what int() tolerates: "+1", " 1", "01", "1_0".
            if INT64_MIN <= number <= INT64_MAX and b"%d" % number == value:
                return number
    raise CommandError(NOT_INTEGER)


def _increment(db: Keyspace, key: bytes, by: int, now: int) -> int:
    data = db.data
    value = data.get(key)
    if value is not None and db.expires:
        value = db.get_for_write(key, now)
    if value is None:
        result = by
    elif type(value) is bytes:
        result = _counter_value(value) + by
    else:
        raise wrongtype()
    if result > INT64_MAX or result < INT64_MIN:
        raise CommandError(OVERFLOW)
    # Assigning in place keeps the key's TTL, as Redis's INCR does.
    data[key] = b"%d" % result
    return result


@command(
    "incr",
    2,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Increments the integer value of a key by one. "
    "Uses 0 as initial value if the key doesn't exist.",
    since="1.0.0",
)
def incr(db: Keyspace, args: list[bytes], now: int) -> int:
    return _increment(db, args[1], 1, now)


@command(
    "decr",
    2,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Decrements the integer value of a key by one. "
    "Uses 0 as initial value if the key doesn't exist.",
    since="1.0.0",
)
def decr(db: Keyspace, args: list[bytes], now: int) -> int:
    return _increment(db, args[1], -1, now)


@command(
    "incrby",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Increments the integer value of a key by a number. "
    "Uses 0 as initial value if the key doesn't exist.",
    since="1.0.0",
)
def incrby(db: Keyspace, args: list[bytes], now: int) -> int:
    return _increment(db, args[1], parse_int(args[2]), now)


@command(
    "decrby",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Decrements a number from the integer value of a key. "
    "Uses 0 as initial value if the key doesn't exist.",
    since="1.0.0",
)
def decrby(db: Keyspace, args: list[bytes], now: int) -> int:
    by = parse_int(args[2])
    if by == INT64_MIN:  # its negation does not fit in 64 bits
        raise CommandError(DECREMENT_OVERFLOW)
    return _increment(db, args[1], -by, now)


# INCRBYFLOAT computes in C long double (x87 80-bit: 64-bit mantissa) and
# prints with "%.17Lf"; plain Python floats would give 0.30000000000000004
# where Redis gives 0.3. The arithmetic below is exact (Fraction) with the
# result rounded to a 64-bit mantissa after each step, as the FPU does.
_LD_MANTISSA_BITS = 64
_LD_MAX_EXPONENT = 16384  # values >= 2**16384 overflow to infinity
_LD_MIN_EXPONENT = -16445  # below the smallest subnormal strtold underflows
_MAX_LONG_DOUBLE_CHARS = 5 * 1024
_INFINITY = Fraction(2) ** _LD_MAX_EXPONENT  # stands for +inf; only compared against
_FRACTION_DIGITS = 10**17


def _round_to_long_double(x: Fraction) -> Fraction:
    if x == 0:
        return x
    magnitude = abs(x)
    shift = (
        magnitude.numerator.bit_length()
        - magnitude.denominator.bit_length()
        - _LD_MANTISSA_BITS
    )
    scaled = magnitude / Fraction(2) ** shift
    while scaled >= 2**_LD_MANTISSA_BITS:
        shift += 1
        scaled /= 2
    while scaled < 2 ** (_LD_MANTISSA_BITS - 1):
        shift -= 1
        scaled *= 2
    rounded = Fraction(round(scaled)) * Fraction(2) ** shift  # round half to even
    if rounded >= _INFINITY:
        rounded = _INFINITY
    return rounded if x > 0 else -rounded


def _parse_long_double(arg: bytes) -> Fraction:
    """A value as Redis's string2ld (strtold) accepts it; +-inf as +-_INFINITY."""
    if not arg or len(arg) >= _MAX_LONG_DOUBLE_CHARS:
        raise CommandError(NOT_FLOAT)
    try:
        text = arg.decode("ascii")
    except UnicodeDecodeError:
        raise CommandError(NOT_FLOAT)
    # Decimal tolerates whitespace and digit separators; strtold does not.
    if "_" in text or any(ch.isspace() for ch in text):
        raise CommandError(NOT_FLOAT)
    if text.lstrip("+-")[:2].lower() == "0x":
        try:
            return Fraction(float.fromhex(text))
        except (ValueError, OverflowError):
            raise CommandError(NOT_FLOAT)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CommandError(NOT_FLOAT)
    if number.is_nan():
        raise CommandError(NOT_FLOAT)
    if number.is_infinite():
        return _INFINITY if number > 0 else -_INFINITY
    if number.is_zero():
        return Fraction(0)
    # Reject exponents far outside long double (max ~1.19e4932, smallest
    # subnormal ~3.6e-4951) before building a huge exact Fraction.
    adjusted = number.adjusted()
    if adjusted > 4932 or adjusted < -4952:
        raise CommandError(NOT_FLOAT)
    value = _round_to_long_double(Fraction(number))
    if abs(value) >= _INFINITY or abs(value) < Fraction(2) ** _LD_MIN_EXPONENT:
        raise CommandError(NOT_FLOAT)  # strtold's ERANGE: overflow or underflow
    return value


def format_long_double(value: Fraction) -> bytes:
    """Redis's "human" long double form: "%.17Lf" without trailing zeros."""
    scaled = round(abs(value) * _FRACTION_DIGITS)
    whole, fraction = divmod(scaled, _FRACTION_DIGITS)
    text = b"%d.%017d" % (whole, fraction)
    text = text.rstrip(b"0").rstrip(b".")
    if value < 0 and text != b"0":
        text = b"-" + text
    return text


@command(
    "incrbyfloat",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Increment the floating point value of a key by a number. "
    "Uses 0 as initial value if the key doesn't exist.",
    since="2.6.0",
)
def incrbyfloat(db: Keyspace, args: list[bytes], now: int) -> bytes:
    key = args[1]
    current = _checked_string(db.get_for_write(key, now))
    value = Fraction(0) if current is None else _parse_long_double(current)
    increment = _parse_long_double(args[2])
    if abs(value) >= _INFINITY or abs(increment) >= _INFINITY:
        raise CommandError(NAN_OR_INFINITY)  # inf + x is inf, inf - inf is NaN
    result = _round_to_long_double(value + increment)
    if abs(result) >= _INFINITY:
        raise CommandError(NAN_OR_INFINITY)
    text = format_long_double(result)
    db.put(key, text)
    return text


# --- APPEND, STRLEN, ranges --------------------------------------------------


@command(
    "append",
    3,
    "write denyoom fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Appends a string to the value of a key. Creates the key if it doesn't exist.",
    since="2.0.0",
)
def append(db: Keyspace, args: list[bytes], now: int) -> int:
    key = args[1]
    current = _checked_string(db.get_for_write(key, now))
    if current is None:
        db.set(key, args[2])
        return len(args[2])
    if len(current) + len(args[2]) > MAX_STRING_LENGTH:
        raise CommandError(STRING_TOO_LONG)
    result = current + args[2]
    db.put(key, result)
    return len(result)


@command(
    "strlen",
    2,
    "readonly fast",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns the length of a string value.",
    since="2.2.0",
)
def strlen(db: Keyspace, args: list[bytes], now: int) -> int:
    value = _checked_string(db.get(args[1], now))
    return 0 if value is None else len(value)


def _getrange(db: Keyspace, args: list[bytes], now: int) -> bytes:
    start = parse_int(args[2])
    end = parse_int(args[3])
    value = _checked_string(db.get(args[1], now))
    if value is None:
        return _EMPTY
    length = len(value)
    if start < 0 and end < 0 and start > end:
        return _EMPTY
    if start < 0:
        start = max(length + start, 0)
    if end < 0:
        end = max(length + end, 0)
    end = min(end, length - 1)
    if start > end or length == 0:
        return _EMPTY
    return value[start : end + 1]


@command(
    "getrange",
    4,
    "readonly",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns a substring of the string stored at a key.",
    since="2.4.0",
)
def getrange(db: Keyspace, args: list[bytes], now: int) -> bytes:
    return _getrange(db, args, now)


@command(
    "substr",
    4,
    "readonly",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Returns a substring from a string value.",
    since="1.0.0",
)
def substr(db: Keyspace, args: list[bytes], now: int) -> bytes:
    return _getrange(db, args, now)


@command(
    "setrange",
    4,
    "write denyoom",
    first_key=1,
    last_key=1,
    key_step=1,
    group="string",
    summary="Overwrites a part of a string value with another by an offset. "
    "Creates the key if it doesn't exist.",
    since="2.2.0",
)
def setrange(db: Keyspace, args: list[bytes], now: int) -> int:
    key, patch = args[1], args[3]
    offset = parse_int(args[2])
    if offset < 0:
        raise CommandError(OFFSET_OUT_OF_RANGE)
    current = _checked_string(db.get_for_write(key, now))
    if not patch:
        return 0 if current is None else len(current)
    if offset + len(patch) > MAX_STRING_LENGTH:
        raise CommandError(STRING_TOO_LONG)
    if current is None:
        current = _EMPTY
    if len(current) < offset:
        current += b"\0" * (offset - len(current))
    result = current[:offset] + patch + current[offset + len(patch) :]
    db.put(key, result)
    return len(result)
