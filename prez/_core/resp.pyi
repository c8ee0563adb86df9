"""Type stub of the compiled RESP core (prez/_core/resp.pyx); twin: resp_py.py."""

HEADER_LINE_MAX: int
ERR_MBULK_LEN: str
ERR_BULK_LEN: str
ERR_UNBALANCED: str
ERR_BIG_INLINE: str
ERR_BIG_MBULK: str
ERR_BIG_BULK: str
ERR_NOAUTH_MBULK: str
ERR_NOAUTH_BULK: str
ERR_QUERY_LIMIT: str
NOAUTH_MAX_ARGS: int
NOAUTH_MAX_BULK: int
ARG_OVERHEAD: int

class OutputLimitExceeded(Exception):
    """Raised by ReplyBuffer.append once the buffer holds more than its limit."""

class RequestParser:
    """Incremental parser of client requests (multibulk and inline).

    The argument lists it returns are not tracked by the cycle collector
    (they hold only bytes): never store containers in them.
    """

    max_bulk_len: int
    max_multibulk_len: int
    max_inline_len: int
    max_query_len: int
    noauth: bool
    @property
    def error(self) -> str | None: ...
    @property
    def buffered(self) -> int: ...
    @property
    def pending(self) -> int: ...
    def __init__(
        self,
        max_bulk_len: int = ...,
        max_multibulk_len: int = ...,
        max_inline_len: int = ...,
        max_query_len: int = ...,
        noauth: bool = ...,
    ) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, /) -> list[list[bytes]]: ...

class ReplyBuffer:
    resp3: bool
    limit: int
    def __init__(self, resp3: bool = False, limit: int = 0) -> None: ...
    def __len__(self) -> int: ...
    def append(self, value: object, /) -> None: ...
    def take(self) -> bytes: ...

def encode(value: object, resp3: bool = False) -> bytes: ...
