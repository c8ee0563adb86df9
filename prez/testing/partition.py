"""Network partitions between real prez-server processes, made with iptables.

Each node of a partitionable test cluster binds its own loopback address
(127.A.B.X, see `loopback_hosts` and `Cluster(..., own_hosts=True)`) and
starts its outbound connections from it (the `source_host` keyword of
PeerBus and Forwarder), so a packet's addresses say which two nodes it runs
between. A `Partitioner` cuts a link by dropping every packet from A to B
and from B to A. Test clients connect from 127.0.0.1, which no rule names:
they still reach every node, as a client on the far side of a partition
would reach its own side.

Why iptables on per-node loopback addresses rather than network namespaces:
- the nodes stay ordinary child processes of the test on the ordinary
  loopback interface: no veth pairs, bridges or routes to set up and tear
  down, nothing to enter with `ip netns exec`, and a test client reaches
  each node as it would anywhere else;
- a partition is one rule per direction, installed and removed in
  milliseconds, so a test can isolate and heal a node many times;
- iptables only needs root, which CI has; namespaces would also need
  iproute2 and leave more state behind when a run is killed.
The cost is that the server must start its connections from its own
address (the kernel would otherwise pick 127.0.0.1 for every loopback
destination): `connection_sources` lets a test check that it does.

Loopback packets pass through the OUTPUT chain once, when they are sent (and
then INPUT on `lo`), so dropping them in OUTPUT is enough, and a dropped SYN
or segment looks like a silent network: TCP retransmits, connections hang,
nothing is refused. The rules live in a chain of their own,
PREZ-TEST-<pid>-<n>, jumped to from OUTPUT: healing flushes that chain, and
cleanup removes the jump and the chain, never touching any other rule.
Cleanup runs on `close()`, on leaving the `with` block and at interpreter
exit; chains left behind by a test process that was killed are removed by
the next Partitioner that starts (`remove_stale_chains`).
"""

from __future__ import annotations

import atexit
import ipaddress
import itertools
import os
import random
import re
import shutil
import socket
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

CHAIN_PREFIX = "PREZ-TEST-"
# Waiting for the xtables lock (seconds): another program may hold it briefly.
LOCK_WAIT = "5"
# PREZ-TEST-<pid>-<n>: the pid says whether its owner still runs.
_OUR_CHAIN = re.compile(rf"^-N ({re.escape(CHAIN_PREFIX)}(\d+)-\w+)$", re.MULTILINE)
_chain_numbers = itertools.count(1)


class PartitionUnavailable(RuntimeError):
    """iptables is missing or not permitted here; the message says why."""


class BoundNode(Protocol):
    """A node that binds one address: a ServerProcess of a Cluster."""

    @property
    def config(self) -> dict[str, str]: ...


Endpoint = str | BoundNode


def host_of(endpoint: Endpoint) -> str:
    """The loopback address of a node (its first `bind` address), or the address itself."""
    host = endpoint if isinstance(endpoint, str) else endpoint.config["bind"].split()[0]
    if not ipaddress.IPv4Address(host).is_loopback:
        raise ValueError(
            f"{host} is not a loopback address: tests only cut loopback links"
        )
    return host


def loopback_hosts(count: int, rng: random.Random | None = None) -> list[str]:
    """`count` loopback addresses 127.A.B.1..count that no other cluster is likely to use.

    A and B are random, so that concurrent test runs (whose rules match
    addresses) do not partition each other's nodes; 127.0.0.1, where
    unpartitioned clusters and test clients live, is never among them.
    """
    if not 1 <= count <= 254:
        raise ValueError(f"cannot give {count} nodes addresses in one /24")
    rng = rng or random.Random()
    a, b = rng.randrange(1, 255), rng.randrange(0, 256)
    return [f"127.{a}.{b}.{i}" for i in range(1, count + 1)]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["iptables", "-w", LOCK_WAIT, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _run(*args: str) -> None:
    result = _iptables(*args)
    if result.returncode != 0:
        raise PartitionUnavailable(
            f"iptables {' '.join(args)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


def unavailable_reason() -> str | None:
    """Why partitions cannot be made here, or None if they can.

    Tries the real thing: create and delete an empty chain of our own.
    """
    if shutil.which("iptables") is None:
        return "iptables is not installed (Debian package `iptables`)"
    probe = f"{CHAIN_PREFIX}{os.getpid()}-probe"
    try:
        created = _iptables("-N", probe)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"iptables cannot be run: {e}"
    if created.returncode != 0:
        return "iptables is not permitted here (needs root or CAP_NET_ADMIN): " + (
            created.stderr.strip() or f"exit status {created.returncode}"
        )
    _iptables("-X", probe)
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_chains() -> list[str]:
    """Remove the chains (and their jumps) of test processes that no longer exist."""
    listing = _iptables("-S")
    if listing.returncode != 0:
        return []
    removed = []
    for chain, pid in _OUR_CHAIN.findall(listing.stdout):
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        _remove_chain(chain)
        removed.append(chain)
    return removed


def _remove_chain(chain: str) -> None:
    # The jump may have been added more than once by a confused run: remove all.
    while _iptables("-D", "OUTPUT", "-j", chain).returncode == 0:
        pass
    _iptables("-F", chain)
    _iptables("-X", chain)


class Partitioner:
    """Drops packets between chosen loopback addresses, in a chain of its own.

    `isolate(node)` cuts one node from every other known node,
    `partition(group_a, group_b)` cuts every link between two groups, and
    `heal()` restores them all. Cuts add up until healed. Nodes are
    ServerProcesses (their bind address) or addresses.
    """

    def __init__(
        self, nodes: Iterable[Endpoint] = (), chain: str | None = None
    ) -> None:
        self.chain = chain or f"{CHAIN_PREFIX}{os.getpid()}-{next(_chain_numbers)}"
        self.hosts: list[str] = [host_of(n) for n in nodes]
        self.cuts: set[tuple[str, str]] = set()  # (source, destination) dropped
        self._installed = False

    def install(self) -> Partitioner:
        """Create the chain and jump to it from OUTPUT; PartitionUnavailable if impossible."""
        if self._installed:
            return self
        reason = unavailable_reason()
        if reason is not None:
            raise PartitionUnavailable(reason)
        remove_stale_chains()
        _remove_chain(self.chain)  # left by a dead process that had our pid
        _run("-N", self.chain)
        self._installed = True
        atexit.register(self.close)
        # First in OUTPUT so that no earlier ACCEPT lets the packets through.
        _run("-I", "OUTPUT", "1", "-j", self.chain)
        return self

    def close(self) -> None:
        """Heal everything and remove the chain; safe to call again."""
        if not self._installed:
            return
        self._installed = False
        self.cuts.clear()
        _remove_chain(self.chain)
        atexit.unregister(self.close)

    def __enter__(self) -> Partitioner:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cut(self, a: Endpoint, b: Endpoint) -> None:
        """Drop everything between a and b, both ways."""
        host_a, host_b = host_of(a), host_of(b)
        if host_a == host_b:
            raise ValueError(f"cannot cut {host_a} from itself")
        for src, dst in ((host_a, host_b), (host_b, host_a)):
            if (src, dst) in self.cuts:
                continue
            self._require_installed()
            _run("-A", self.chain, "-s", src, "-d", dst, "-j", "DROP")
            self.cuts.add((src, dst))

    def partition(
        self, group_a: Iterable[Endpoint], group_b: Iterable[Endpoint]
    ) -> None:
        """Cut every link between a node of group_a and a node of group_b."""
        hosts_b = [host_of(b) for b in group_b]
        for a in group_a:
            for host_b in hosts_b:
                self.cut(a, host_b)

    def isolate(self, node: Endpoint) -> None:
        """Cut node from every other node this Partitioner was given."""
        host = host_of(node)
        if host not in self.hosts:
            raise ValueError(f"{host} is not one of the nodes {self.hosts}")
        self.partition([host], [h for h in self.hosts if h != host])

    def heal(self) -> None:
        """Restore every link (flush the chain)."""
        if self._installed:
            _run("-F", self.chain)
        self.cuts.clear()

    def rules(self) -> list[str]:
        """The rules in the chain now, as `iptables -S` prints them."""
        self._require_installed()
        listing = _iptables("-S", self.chain)
        return [
            line for line in listing.stdout.splitlines() if not line.startswith("-N")
        ]

    def _require_installed(self) -> None:
        if not self._installed:
            raise RuntimeError("Partitioner.install() (or `with`) first")


def _decode_proc_address(field: str) -> tuple[str, int]:
    # /proc/net/tcp writes an IPv4 address as 8 hex digits in host byte order.
    addr_hex, port_hex = field.split(":")
    packed = int(addr_hex, 16).to_bytes(4, "little")
    return socket.inet_ntoa(packed), int(port_hex, 16)


_TCP_ESTABLISHED = "01"


def connection_sources(destination: tuple[str, int]) -> set[str]:
    """Local addresses of the established IPv4 connections to `destination`.

    Lets a test check that nodes start their connections from their own
    address, without which no rule here can tell them apart.
    """
    sources = set()
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _TCP_ESTABLISHED:
            continue
        if _decode_proc_address(fields[2]) == destination:
            sources.add(_decode_proc_address(fields[1])[0])
    return sources
