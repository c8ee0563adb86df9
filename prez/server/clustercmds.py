"""Redis Cluster compatibility: CLUSTER, ASKING, READONLY and READWRITE.

Prez is one Raft group, so to the Redis Cluster ecosystem (redis-py's
`RedisCluster`, `redis-cli -c`, other cluster clients) it describes itself
as a cluster of ONE shard that owns all 16384 hash slots: its master is the
current Raft leader, its replicas are the followers whose client address is
known. A cluster-aware client pointed at any member reads CLUSTER SLOTS (or
SHARDS), finds the leader and sends its writes there; after a failover a
MOVED, CLUSTERDOWN or connection error makes it read the topology again.

Identifiers. Redis gives every node a random 40-hex-character id; Prez
derives a stable one instead: `node_id(name)` is the SHA-1 of the member's
name (its `name` in prez.conf, the first field of its nodes.conf line), so
every member computes the same id for a member without exchanging it, and
the id survives restarts. The shard id (CLUSTER MYSHARDID) is the SHA-1 of
"shard:" and the sorted member names, the same on every member.

When no leader is known (an election is under way, or this node is cut off
from the leader), the node names ITSELF as the master: a client that
routes there gets `-CLUSTERDOWN No leader elected`, which cluster clients
treat as "wait, re-read the topology, retry", instead of a connection
error against a dead leader. CLUSTER INFO then says cluster_state:fail.

Replies follow Redis 7 field by field: CLUSTER NODES and CLUSTER INFO are
bulk strings in RESP2 and verbatim strings ("txt") in RESP3, as Redis sends
them. On a standalone prez-server (no nodes.conf) every command here answers
`-ERR This instance has cluster support disabled`, as Redis does.

Nothing here changes what a read or a write does: READONLY only records the
connection's wish (see `is_readonly`), for the read path to honour later.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prez._core.replytypes import Raw
from prez.errors import NOT_INTEGER, CommandError, unknown_subcommand, wrong_arity
from prez.netaddr import split_host_port
from prez.server.commands import server_command

if TYPE_CHECKING:
    from prez.server.client import ClientConnection
    from prez.server.raftdriver import RaftDriver

CLUSTER_SLOTS = 16384
LAST_SLOT = CLUSTER_SLOTS - 1
CLUSTER_DISABLED = "ERR This instance has cluster support disabled"
INVALID_SLOT = "ERR Invalid slot"

# -- hash slots ----------------------------------------------------------------


def _crc16_table() -> tuple[int, ...]:
    # CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, no reflection;
    # the variant Redis Cluster uses for key slots.
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_TABLE = _crc16_table()


def crc16(data: bytes) -> int:
    """CRC16-CCITT (XMODEM) of `data`, as Redis's crc16()."""
    crc = 0
    table = _CRC16_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


def key_slot(key: bytes) -> int:
    """The hash slot of `key`, hash tags included, exactly as Redis Cluster.

    If the key holds a "{...}" with at least one byte between the first "{"
    and the first "}" after it, only those bytes are hashed, so that keys
    sharing a tag share a slot.
    """
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc16(key) & LAST_SLOT


# -- identities ----------------------------------------------------------------


def node_id(name: str) -> str:
    """The 40-hex-character Redis node id of member `name` (SHA-1 of the name)."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()


def shard_id(member_names: list[str]) -> str:
    """The shard id shared by every member: SHA-1 of "shard:" + sorted names."""
    joined = ",".join(sorted(member_names))
    return hashlib.sha1(f"shard:{joined}".encode()).hexdigest()


# -- the topology as this node sees it ------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberView:
    """One member as the CLUSTER replies describe it."""

    name: str
    id: str
    host: str | None  # None: its client address is not known yet
    port: int
    bus_host: str
    bus_port: int
    is_master: bool
    myself: bool
    link_up: bool  # the peer connection is up (always true for myself)
    offset: int  # how far its log is known to reach (Raft index)


@dataclass(frozen=True, slots=True)
class Topology:
    leader_known: bool
    term: int
    master: MemberView
    members: list[MemberView]  # master first, then the others in nodes.conf order

    @property
    def replicas(self) -> list[MemberView]:
        """The followers a client can be sent to: address known, link up."""
        return [
            m
            for m in self.members
            if not m.is_master and m.host is not None and m.link_up
        ]


def topology(driver: RaftDriver) -> Topology:
    """Who is master and who are replicas, from this node's Raft state.

    The master is the leader when it is known and this node knows where it
    serves clients; otherwise this node itself (see the module docstring).
    """
    node = driver.node
    leader = driver.leader
    leader_addr = driver.member_client_addr(leader) if leader is not None else None
    leader_known = leader is not None and leader_addr is not None
    master_name = leader if leader_known and leader is not None else driver.name
    i_lead = driver.is_leader()
    views: list[MemberView] = []
    for name, (bus_host, bus_port) in driver.members.items():
        myself = name == driver.name
        addr = driver.member_client_addr(name)
        host, port = split_host_port(addr) if addr is not None else (None, 0)
        if myself:
            offset = driver.applied
        elif i_lead and node is not None:
            progress = node.progress_of(name)
            offset = progress.match if progress is not None else 0
        elif name == master_name and node is not None:
            # A follower cannot see the leader's log end; what the leader
            # has told it is committed is the best lower bound it has.
            offset = node.commit_index
        else:
            offset = 0
        views.append(
            MemberView(
                name=name,
                id=node_id(name),
                host=host,
                port=port,
                bus_host=bus_host,
                bus_port=bus_port,
                is_master=name == master_name,
                myself=myself,
                link_up=myself or driver.bus.connected(name),
                offset=offset,
            )
        )
    views.sort(key=lambda m: not m.is_master)  # stable: keeps nodes.conf order
    return Topology(
        leader_known=leader_known,
        term=node.term if node is not None else driver.term,
        master=views[0],
        members=views,
    )


# -- replies -------------------------------------------------------------------


def _text_reply(conn: ClientConnection, text: str) -> Any:
    """A bulk string in RESP2, a verbatim "txt" string in RESP3 (as Redis)."""
    data = text.encode()
    if conn.resp == 3:
        return Raw(b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data))
    return data


def slots_reply(topo: Topology) -> list[Any]:
    def endpoint(m: MemberView) -> list[Any]:
        # The fourth element is Redis 7's map of extra networking metadata
        # (hostname, ...): empty here; {} encodes as *0 in RESP2, %0 in RESP3.
        return [(m.host or "").encode(), m.port, m.id.encode(), {}]

    return [[0, LAST_SLOT, endpoint(topo.master), *map(endpoint, topo.replicas)]]


def shards_reply(topo: Topology) -> list[Any]:
    nodes = []
    for m in topo.members:
        if m.host is None:
            continue  # a client could not reach it: Redis lists no such node
        nodes.append(
            {
                b"id": m.id.encode(),
                b"port": m.port,
                b"ip": m.host.encode(),
                b"endpoint": m.host.encode(),
                b"role": b"master" if m.is_master else b"replica",
                b"replication-offset": m.offset,
                b"health": b"online" if m.link_up else b"failed",
            }
        )
    return [{b"slots": [0, LAST_SLOT], b"nodes": nodes}]


def _node_line(m: MemberView, topo: Topology, now_ms: int) -> str:
    flags = []
    if m.myself:
        flags.append("myself")
    flags.append("master" if m.is_master else "slave")
    if not m.link_up:
        flags.append("fail?")
    if m.host is None:
        flags.append("noaddr")
        addr = f":0@{m.bus_port}"
    else:
        addr = f"{m.host}:{m.port}@{m.bus_port}"
    master = "-" if m.is_master else topo.master.id
    # Prez does not ping in Redis's way: a live link counts as a pong just now.
    pong = now_ms if m.link_up and not m.myself else 0
    link = "connected" if m.link_up else "disconnected"
    line = f"{m.id} {addr} {','.join(flags)} {master} 0 {pong} {topo.term} {link}"
    if m.is_master:
        line += f" 0-{LAST_SLOT}"
    return line + "\n"


def nodes_text(topo: Topology, members: list[MemberView] | None = None) -> str:
    now_ms = time.time_ns() // 1_000_000
    return "".join(
        _node_line(m, topo, now_ms)
        for m in (members if members is not None else topo.members)
    )


def info_text(topo: Topology, driver: RaftDriver) -> str:
    ok = topo.leader_known
    fields: dict[str, Any] = {
        "cluster_state": "ok" if ok else "fail",
        "cluster_slots_assigned": CLUSTER_SLOTS,
        "cluster_slots_ok": CLUSTER_SLOTS if ok else 0,
        "cluster_slots_pfail": 0,
        "cluster_slots_fail": 0 if ok else CLUSTER_SLOTS,
        "cluster_known_nodes": len(topo.members),
        "cluster_size": 1,
        "cluster_current_epoch": topo.term,
        "cluster_my_epoch": topo.term,
        "cluster_stats_messages_sent": driver.bus.frames_sent,
        "cluster_stats_messages_received": driver.bus.frames_received,
        "total_cluster_links_buffer_limit_exceeded": 0,
    }
    return "".join(f"{k}:{v}\r\n" for k, v in fields.items())


def _parse_slot(arg: bytes) -> int:
    try:
        slot = int(arg)
    except ValueError:
        raise CommandError(NOT_INTEGER)
    if not 0 <= slot <= LAST_SLOT:
        raise CommandError(INVALID_SLOT)
    return slot


def _keys_in_slot(conn: ClientConnection, slot: int) -> list[bytes]:
    # A scan of the whole database: Prez keeps no per-slot index, since a
    # single shard never migrates slots; these commands are for tools.
    now = time.time_ns() // 1_000_000
    db = conn.server.store.dbs[conn.db]
    return [k for k in db.live_keys(now) if key_slot(k) == slot]


# -- CLUSTER -------------------------------------------------------------------

# Subcommand -> Redis arity (counting CLUSTER and the subcommand).
_ARITY = {
    b"slots": 2,
    b"shards": 2,
    b"nodes": 2,
    b"info": 2,
    b"myid": 2,
    b"myshardid": 2,
    b"keyslot": 3,
    b"countkeysinslot": 3,
    b"getkeysinslot": 4,
    b"replicas": 3,
    b"slaves": 3,
    b"help": 2,
}

_HELP = [
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot>.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored by current node in a slot.",
    "INFO",
    "    Return information about the cluster.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "MYID",
    "    Return the node id.",
    "MYSHARDID",
    "    Return the node's shard id.",
    "NODES",
    "    Return cluster configuration seen by node. Output format:",
    "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
    "REPLICAS <node-id>",
    "    Return <node-id> replicas.",
    "SLOTS",
    "    Return information about slots range mappings. Each range is made of:",
    "    start, end, master and replicas IP addresses, ports and ids",
    "SHARDS",
    "    Return information about slot range mappings and the nodes associated with them.",
    "HELP",
    "    Prints this help.",
]


def _driver(conn: ClientConnection) -> RaftDriver:
    server = conn.server
    if not server.clustered:
        raise CommandError(CLUSTER_DISABLED)
    driver: RaftDriver = server.driver
    return driver


@server_command(
    "cluster",
    -2,
    "stale",
    group="cluster",
    summary="A container for Redis Cluster commands.",
    since="3.0.0",
)
def cluster(conn: ClientConnection, args: list[bytes]) -> Any:
    sub = args[1].lower()
    arity = _ARITY.get(sub)
    if arity is None:
        raise unknown_subcommand(args[1], "cluster")
    if len(args) != arity:
        raise wrong_arity(f"cluster|{sub.decode()}")
    driver = _driver(conn)
    if sub == b"keyslot":
        return key_slot(args[2])
    if sub == b"countkeysinslot":
        return len(_keys_in_slot(conn, _parse_slot(args[2])))
    if sub == b"getkeysinslot":
        try:
            slot, count = int(args[2]), int(args[3])
        except ValueError:
            raise CommandError(NOT_INTEGER)
        if not 0 <= slot <= LAST_SLOT or count < 0:
            raise CommandError("ERR Invalid slot or number of keys")
        return _keys_in_slot(conn, slot)[:count]
    if sub == b"myid":
        return node_id(driver.name).encode()
    if sub == b"myshardid":
        return shard_id(list(driver.members)).encode()
    if sub == b"help":
        return _HELP
    topo = topology(driver)
    if sub == b"slots":
        return slots_reply(topo)
    if sub == b"shards":
        return shards_reply(topo)
    if sub == b"nodes":
        return _text_reply(conn, nodes_text(topo))
    if sub == b"info":
        return _text_reply(conn, info_text(topo, driver))
    # REPLICAS / SLAVES <node-id>
    wanted = args[2].decode("utf-8", "replace")
    if not any(m.id == wanted for m in topo.members):
        raise CommandError(f"ERR Unknown node {wanted}")
    if topo.master.id != wanted:
        raise CommandError("ERR The specified node is not a master")
    replicas = [m for m in topo.members if not m.is_master]
    return [line.encode() for line in nodes_text(topo, replicas).splitlines()]


# -- per-connection cluster state ---------------------------------------------

# Connections that sent READONLY (by client id). Kept here rather than on the
# connection: the read path has no use for it yet. Ids of closed connections
# are dropped whenever the set changes, so it never outgrows the client table.
_readonly_clients: set[int] = set()


def is_readonly(conn: ClientConnection) -> bool:
    """Whether the connection asked, with READONLY, to read from replicas."""
    return conn.id in _readonly_clients


def _set_readonly(conn: ClientConnection, readonly: bool) -> None:
    live = conn.server.clients
    _readonly_clients.intersection_update(live)
    if readonly:
        _readonly_clients.add(conn.id)
    else:
        _readonly_clients.discard(conn.id)


@server_command(
    "asking",
    1,
    "fast",
    group="cluster",
    summary="Signals that a cluster client is following an -ASK redirect.",
    since="3.0.0",
)
def asking(conn: ClientConnection, args: list[bytes]) -> Any:
    # Every slot lives on the leader and none is ever migrating, so the
    # command the redirect is for needs no special permission: just accept.
    _driver(conn)
    return "OK"


@server_command(
    "readonly",
    1,
    "fast",
    group="cluster",
    summary="Enables read-only queries for a connection to a Redis Cluster replica node.",
    since="3.0.0",
)
def readonly(conn: ClientConnection, args: list[bytes]) -> Any:
    _driver(conn)
    _set_readonly(conn, True)
    return "OK"


@server_command(
    "readwrite",
    1,
    "fast",
    group="cluster",
    summary="Enables read-write queries for a connection to a Redis Cluster replica node.",
    since="3.0.0",
)
def readwrite(conn: ClientConnection, args: list[bytes]) -> Any:
    _driver(conn)
    _set_readonly(conn, False)
    return "OK"
