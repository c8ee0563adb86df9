"""`host:port` addresses, parsed one way everywhere.

As redis-cli and Redis Cluster's `ip:port`, the last colon separates the
port, so a bare IPv6 address needs no brackets ("::1:6379" is ("::1", 6379));
"[::1]:6379" is accepted too and the brackets are dropped. The port is
decimal digits, 1 to 65535.
"""

from __future__ import annotations


class AddressError(ValueError):
    """Not a `host:port` address."""


def split_host_port(addr: str) -> tuple[str, int]:
    """("host", port) of "host:port"; AddressError if it is not one."""
    host, sep, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (
        not sep
        or not host
        or "[" in host
        or "]" in host
        or any(c.isspace() for c in host)
        or not (port.isascii() and port.isdigit() and len(port) <= 5)
        or not 0 < int(port) < 65536
    ):
        raise AddressError(f"{addr!r} is not host:port")
    return host, int(port)
