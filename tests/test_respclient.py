"""`prez.respclient`: the small RESP client of joining and prez-cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from prez.errors import CommandError, ProtocolError
from prez.respclient import encode_request, request
from prez.testing.procs import HOST, ServerProcess


def test_encode_request_is_a_multibulk() -> None:
    assert (
        encode_request([b"SET", b"k", b""])
        == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
    )


def test_against_a_real_server(prez_server: ServerProcess) -> None:
    replies = asyncio.run(
        request(
            HOST,
            prez_server.port,
            [
                [b"SET", b"respclient", b"v"],
                [b"GET", b"respclient"],
                [b"GET", b"respclient-missing"],
                [b"INCR", b"respclient"],
                [b"ECHO", b"a\r\nb"],
            ],
            reply_timeout=5.0,
        )
    )
    assert replies[:3] == ["OK", b"v", None]
    assert isinstance(replies[3], CommandError)
    assert str(replies[3]).startswith("ERR")
    assert replies[4] == b"a\r\nb"


def serve(data: bytes) -> Callable[[], Awaitable[Any]]:
    """A server that answers any connection with `data` and hangs up."""

    async def main() -> Any:
        async def answer(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> None:
            await reader.read(1)
            writer.write(data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await request(HOST, port, [[b"X"]], reply_timeout=5.0)
        finally:
            server.close()

    return main


def test_decodes_nested_arrays_and_integers() -> None:
    reply = b"*3\r\n:-7\r\n*2\r\n$1\r\na\r\n*-1\r\n+x\r\n"
    assert asyncio.run(serve(reply)()) == [[-7, [b"a", None], "x"]]


@pytest.mark.parametrize(
    "reply, error",
    [
        (b"", ConnectionError),
        (b"$5\r\nab", ConnectionError),
        (b"*2\r\n:1\r\n", ConnectionError),
        (b"!3\r\nabc\r\n", ProtocolError),
        (b":x\r\n", ProtocolError),
        (b"*1\r\n" * 20 + b":1\r\n", ProtocolError),
    ],
)
def test_a_broken_stream_raises(reply: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        asyncio.run(serve(reply)())
