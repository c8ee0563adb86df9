"""`prez.netaddr.split_host_port`: the one `host:port` parser."""

from __future__ import annotations

import pytest

from prez.netaddr import AddressError, split_host_port


@pytest.mark.parametrize(
    "addr, expected",
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("localhost:1", ("localhost", 1)),
        ("node.example:65535", ("node.example", 65535)),
        # The last colon separates, as redis-cli and Redis Cluster's ip:port.
        ("::1:6379", ("::1", 6379)),
        ("fe80::1:2:10000", ("fe80::1:2", 10000)),
        ("[::1]:6379", ("::1", 6379)),
        ("[fe80::1%eth0]:7000", ("fe80::1%eth0", 7000)),
        ("h:0080", ("h", 80)),
    ],
)
def test_splits(addr: str, expected: tuple[str, int]) -> None:
    assert split_host_port(addr) == expected


@pytest.mark.parametrize(
    "addr",
    [
        "",
        "6379",
        "host",
        ":6379",
        "[]:6379",
        "host:",
        "host:0",
        "host:65536",
        "host:99999",
        "host:-1",
        "host:+80",
        "host: 80",
        "host:80 ",
        "host:8O",
        "host:١٢",  # non-ASCII digits
        "host:" + "1" * 5000,
        "[::1]",
        "[::1:6379",
        "::1]:6379",
        "a b:6379",
        "[[::1]]:6379",
    ],
)
def test_refuses(addr: str) -> None:
    with pytest.raises(AddressError):
        split_host_port(addr)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)
