"""A small asyncio RESP client: a few commands to one node, then hang up.

Used where Prez talks to another node as an ordinary client outside the hot
path: a joining node asking its `cluster-join` address (server/raftdriver)
and `prez-cluster` (localcluster). The forwarder, which keeps a pipelined
connection to the leader and passes replies through undecoded, has its own
protocol in server/forward.py; it shares this module's request encoder.

Replies are RESP2, decoded: simple strings as str, bulk strings as bytes,
integers, arrays as lists, nil as None, and an error reply as a
`CommandError` value (returned, not raised, so a pipeline's later replies
are still read).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prez._core import select
from prez.errors import CommandError, ProtocolError

if TYPE_CHECKING:
    from prez._core import resp as _resp
else:
    _resp = select("resp")

# The reply encoder writes a list of bytes as an array of bulk strings: that
# is exactly a RESP multibulk request.
encode_request = _resp.encode

# Deeper nesting than any reply these callers read means a broken stream.
MAX_DEPTH = 16


async def request(
    host: str,
    port: int,
    commands: Sequence[Sequence[bytes]],
    *,
    reply_timeout: float,
    connect_timeout: float | None = None,
) -> list[Any]:
    """Send `commands` pipelined on a new connection; their replies, in order.

    `reply_timeout` bounds each reply (and the connect, unless `connect_timeout`
    is given). A closed connection or a stream that is not RESP raises
    ConnectionError or ProtocolError; timeouts raise TimeoutError.
    """
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port),
        reply_timeout if connect_timeout is None else connect_timeout,
    )
    try:
        writer.write(b"".join(encode_request(list(command)) for command in commands))
        return [
            await asyncio.wait_for(read_reply(reader), reply_timeout) for _ in commands
        ]
    finally:
        writer.close()


async def read_reply(reader: asyncio.StreamReader, depth: int = 0) -> Any:
    """One RESP2 reply from `reader`, decoded (see the module docstring)."""
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise ConnectionError("connection closed")
    except asyncio.LimitOverrunError:
        raise ProtocolError("reply line too long")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode("utf-8", "replace")
    if kind == b"-":
        return CommandError(body.decode("utf-8", "replace"))
    try:
        if kind == b":":
            return int(body)
        if kind == b"$":
            size = int(body)
            if size < 0:
                return None
            try:
                return (await reader.readexactly(size + 2))[:-2]
            except asyncio.IncompleteReadError:
                raise ConnectionError("connection closed")
        if kind == b"*" and depth < MAX_DEPTH:
            count = int(body)
            if count < 0:
                return None
            return [await read_reply(reader, depth + 1) for _ in range(count)]
    except ValueError:
        pass
    raise ProtocolError(f"unexpected reply {line[:100]!r}")
