"""Redis Cluster compatibility: CLUSTER, ASKING, READONLY, READWRITE.

Prez presents its Raft group as one shard owning every slot, whose master
is the leader. These tests start real 3-node clusters on 127.0.0.1 and check
that every member tells the same story, that redis-py's RedisCluster and
`redis-cli -c` find the leader by themselves (also across a failover), and,
where a redis-server binary is installed, that the replies have the shape
and the error texts of a real Redis Cluster node.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.exceptions import MovedError, RedisClusterException

from prez.server.clustercmds import LAST_SLOT, crc16, key_slot, node_id
from prez.testing.cluster import Cluster
from prez.testing.procs import (
    HOST,
    Fatal,
    ServerProcess,
    free_ports,
    refuse_servers_in_quick_mode,
    wait_until,
)

pytestmark = pytest.mark.integration

TIMEOUT_MS = 500
DISABLED = "This instance has cluster support disabled"


def cmd(node: ServerProcess, *args: Any, protocol: int = 2) -> Any:
    with redis.Redis(
        host=HOST, port=node.port, protocol=protocol, socket_timeout=5
    ) as c:
        return c.execute_command(*args)


def raw(port: int, *commands: bytes) -> bytes:
    """What the server sends back for these inline commands, unparsed.

    A PING goes last; its +PONG marks the end of the replies wanted.
    """
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(b"".join(c + b"\r\n" for c in commands) + b"PING\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while not data.endswith(b"+PONG\r\n") and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.endswith(b"+PONG\r\n"), data
        return data[: -len(b"+PONG\r\n")]


def nodes_lines(text: str | bytes) -> list[list[str]]:
    if isinstance(text, bytes):
        text = text.decode()
    return [line.split(" ") for line in text.splitlines() if line]


def info_fields(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def name_of(node: ServerProcess) -> str:
    return node.config["name"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(
        tmp_path_factory.mktemp("compat"),
        size=3,
        node_timeout=TIMEOUT_MS,
        config={"follower-writes": "moved"},
    )
    with c:
        yield c


def settled_leader(cluster: Cluster) -> ServerProcess:
    """The leader, once every member's CLUSTER SLOTS names it and all links are up."""
    leader = cluster.leader()
    followers = {f.port for f in cluster.followers(leader)}

    def agreed() -> bool:
        for node in cluster.nodes:
            (entry,) = cmd(node, "CLUSTER", "SLOTS")
            if entry[2][1] != leader.port:
                return False
            if {r[1] for r in entry[3:]} != followers:
                return False
        return True

    wait_until(agreed, 10, what="every member naming the leader in CLUSTER SLOTS")
    return leader


# -- pure functions ---------------------------------------------------------------


def test_crc16_is_xmodem() -> None:
    # The CRC-16/XMODEM check value (the CRC of "123456789"), which Redis's
    # cluster specification quotes for its crc16.
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0


def test_key_slot_hash_tags_follow_the_specification() -> None:
    # Only the part between the first "{" and the next "}" counts...
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers")
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")
    assert key_slot(b"foo{bar}{zap}") == key_slot(b"bar")
    assert key_slot(b"foo{{bar}}zap") == key_slot(b"{bar")
    # ...and an empty or unclosed tag means the whole key is hashed.
    assert key_slot(b"foo{}{bar}") == crc16(b"foo{}{bar}") % 16384
    assert key_slot(b"foo{bar") == crc16(b"foo{bar") % 16384
    rng = random.Random(5)
    for _ in range(200):
        key = bytes(rng.randrange(256) for _ in range(rng.randrange(20)))
        assert 0 <= key_slot(key) <= LAST_SLOT


def test_node_ids_are_stable_40_hex_digests() -> None:
    ids = {node_id(f"node-{i}") for i in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{40}", i) for i in ids)
    assert node_id("node-7") == node_id("node-7")


# -- a standalone server answers as a Redis without cluster support -------------


@pytest.mark.parametrize(
    "args",
    [
        ("CLUSTER", "INFO"),
        ("CLUSTER", "SLOTS"),
        ("CLUSTER", "KEYSLOT", "a"),
        ("CLUSTER", "HELP"),
        ("READONLY",),
        ("READWRITE",),
        ("ASKING",),
    ],
)
def test_standalone_has_cluster_support_disabled(
    r: redis.Redis, args: tuple[str, ...]
) -> None:
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command(*args)
    assert str(info.value) == DISABLED


def test_standalone_checks_the_subcommand_first(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("CLUSTER", "FOO")
    assert str(info.value) == "unknown subcommand 'FOO'. Try CLUSTER HELP."
    with pytest.raises(redis.ResponseError) as info:
        r.execute_command("CLUSTER", "KEYSLOT")
    assert str(info.value) == "wrong number of arguments for 'cluster|keyslot' command"


# -- what the members report ----------------------------------------------------


def test_slots_name_the_leader_as_master_on_every_member(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    followers = cluster.followers(leader)
    for node in cluster.nodes:
        for protocol in (2, 3):
            (entry,) = cmd(node, "CLUSTER", "SLOTS", protocol=protocol)
            start, end, master, *replicas = entry
            assert (start, end) == (0, 16383)
            empty_metadata: dict[Any, Any] | list[Any] = {} if protocol == 3 else []
            assert master == [
                HOST.encode(),
                leader.port,
                node_id(name_of(leader)).encode(),
                empty_metadata,
            ]
            assert sorted(replicas) == sorted(
                [HOST.encode(), f.port, node_id(name_of(f)).encode(), empty_metadata]
                for f in followers
            )


def test_myid_is_the_sha1_of_the_node_name(cluster: Cluster) -> None:
    ids = set()
    for node in cluster.nodes:
        got = cmd(node, "CLUSTER", "MYID").decode()
        assert got == hashlib.sha1(name_of(node).encode()).hexdigest()
        ids.add(got)
    assert len(ids) == len(cluster.nodes)
    shard_ids = {cmd(node, "CLUSTER", "MYSHARDID") for node in cluster.nodes}
    assert len(shard_ids) == 1
    assert re.fullmatch(rb"[0-9a-f]{40}", shard_ids.pop())


def test_nodes_lines_agree_on_the_master(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    leader_id = node_id(name_of(leader))
    bus_ports = {n.port: int(n.config["cluster-port"]) for n in cluster.nodes}
    for node in cluster.nodes:
        lines = nodes_lines(cmd(node, "CLUSTER", "NODES"))
        assert len(lines) == len(cluster.nodes)
        by_id = {fields[0]: fields for fields in lines}
        for member in cluster.nodes:
            fields = by_id[node_id(name_of(member))]
            ident, addr, flags, master, ping, pong, epoch, link, *slots = fields
            assert addr == f"{HOST}:{member.port}@{bus_ports[member.port]}"
            flag_set = set(flags.split(","))
            assert ("myself" in flag_set) == (member is node)
            assert link == "connected"
            assert int(ping) == 0 and int(pong) >= 0 and int(epoch) >= 1
            if member is leader:
                assert "master" in flag_set and master == "-"
                assert slots == ["0-16383"]
            else:
                assert "slave" in flag_set and master == leader_id
                assert slots == []


def test_shards_describe_one_shard_with_the_leader_as_master(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    for node in cluster.nodes:
        (shard,) = cmd(node, "CLUSTER", "SHARDS", protocol=3)
        assert shard[b"slots"] == [0, 16383]
        roles = {n[b"port"]: n[b"role"] for n in shard[b"nodes"]}
        assert roles == {
            n.port: b"master" if n is leader else b"replica" for n in cluster.nodes
        }
        for n in shard[b"nodes"]:
            assert n[b"ip"] == n[b"endpoint"] == HOST.encode()
            assert n[b"health"] == b"online"
            assert n[b"replication-offset"] >= 0
        # RESP2 carries the same, flattened.
        (flat,) = cmd(node, "CLUSTER", "SHARDS")
        assert flat[0] == b"slots" and flat[2] == b"nodes"
        assert len(flat[3]) == len(cluster.nodes)


def test_info_reports_state_epoch_and_size(cluster: Cluster) -> None:
    settled_leader(cluster)
    for node in cluster.nodes:
        fields = info_fields(cmd(node, "CLUSTER", "INFO"))
        assert fields["cluster_state"] == "ok"
        assert fields["cluster_slots_assigned"] == "16384"
        assert fields["cluster_slots_ok"] == "16384"
        assert fields["cluster_known_nodes"] == "3"
        assert fields["cluster_size"] == "1"
        term = int(cluster.raft_info(node)["raft_term"])
        assert int(fields["cluster_current_epoch"]) == term


def test_nodes_and_info_are_verbatim_strings_in_resp3(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    for sub in (b"NODES", b"INFO"):
        resp2 = raw(node.port, b"CLUSTER " + sub)
        assert resp2.startswith(b"$")
        resp3 = raw(node.port, b"HELLO 3", b"CLUSTER " + sub)
        verbatim = resp3[resp3.index(b"\r\n=") + 2 :]
        header, _, rest = verbatim.partition(b"\r\n")
        assert rest.startswith(b"txt:")
        assert int(header[1:]) == len(rest) - 2


def test_keyslot_and_keys_in_slot(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    keys = [f"{{tag}}:{i}".encode() for i in range(7)]
    with cluster.client(leader) as c:
        for k in keys:
            c.set(k, b"x")
        c.set(b"other-key", b"x")
        commit = int(cluster.raft_info(leader)["raft_commit_index"])
    cluster.wait_applied(commit, nodes=[follower])
    slot = cmd(follower, "CLUSTER", "KEYSLOT", keys[0])
    assert slot == key_slot(b"tag")
    assert {cmd(follower, "CLUSTER", "KEYSLOT", k) for k in keys} == {slot}
    expected = len(keys) + (key_slot(b"other-key") == slot)
    assert cmd(follower, "CLUSTER", "COUNTKEYSINSLOT", slot) == expected
    got = cmd(follower, "CLUSTER", "GETKEYSINSLOT", slot, 100)
    assert set(keys) <= set(got) and len(got) == expected
    assert len(cmd(follower, "CLUSTER", "GETKEYSINSLOT", slot, 3)) == 3


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("CLUSTER", "FOO"), "unknown subcommand 'FOO'. Try CLUSTER HELP."),
        (
            ("CLUSTER", "MYID", "x"),
            "wrong number of arguments for 'cluster|myid' command",
        ),
        (("CLUSTER", "COUNTKEYSINSLOT", "16384"), "Invalid slot"),
        (("CLUSTER", "COUNTKEYSINSLOT", "-1"), "Invalid slot"),
        (
            ("CLUSTER", "COUNTKEYSINSLOT", "x"),
            "value is not an integer or out of range",
        ),
        (("ASKING", "x"), "wrong number of arguments for 'asking' command"),
    ],
)
def test_cluster_errors(cluster: Cluster, args: tuple[str, ...], error: str) -> None:
    with pytest.raises(redis.ResponseError) as info:
        cmd(cluster.nodes[0], *args)
    assert str(info.value) == error


def test_replicas_lists_the_followers(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    lines = cmd(cluster.nodes[0], "CLUSTER", "REPLICAS", node_id(name_of(leader)))
    ids = {line.split(b" ")[0].decode() for line in lines}
    assert ids == {node_id(name_of(f)) for f in cluster.followers(leader)}
    follower_id = node_id(name_of(cluster.followers(leader)[0]))
    with pytest.raises(redis.ResponseError, match="not a master"):
        cmd(cluster.nodes[0], "CLUSTER", "REPLICAS", follower_id)
    with pytest.raises(redis.ResponseError, match="Unknown node"):
        cmd(cluster.nodes[0], "CLUSTER", "REPLICAS", "0" * 40)


def test_asking_readonly_readwrite_are_accepted(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    with cluster.client(follower) as c:
        assert c.execute_command("READONLY") in (b"OK", True, "OK")
        assert c.execute_command("READWRITE") in (b"OK", True, "OK")
        assert c.execute_command("ASKING") in (b"OK", True, "OK")
    # ASKING then a write on the leader: the redirected command goes through.
    assert raw(leader.port, b"ASKING", b"SET asked 1") == b"+OK\r\n+OK\r\n"


# -- cluster clients ------------------------------------------------------------


def test_redis_cli_c_follows_moved_to_the_leader(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    out = subprocess.run(
        ["redis-cli", "-c", "-p", str(follower.port), "set", "cli-key", "cli-value"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.strip() == "OK"
    assert cmd(leader, "GET", "cli-key") == b"cli-value"


def test_redis_cluster_client_started_on_a_follower(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    rc = RedisCluster(host=HOST, port=follower.port, socket_timeout=5)
    try:
        assert rc.get_default_node().port == leader.port
        for i in range(20):
            assert rc.set(f"rc:{i}", i)
        assert [rc.get(f"rc:{i}") for i in range(20)] == [
            str(i).encode() for i in range(20)
        ]
        assert {n.port for n in rc.get_replicas()} == {
            f.port for f in cluster.followers(leader)
        }
    finally:
        rc.close()


def test_redis_cluster_client_follows_a_moved_from_a_follower(
    cluster: Cluster,
) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    rc = RedisCluster(host=HOST, port=leader.port, socket_timeout=5)
    try:
        # Sent to a follower on purpose: follower-writes moved answers MOVED,
        # and the client must take the write to the leader.
        target = rc.get_node(host=HOST, port=follower.port)
        assert target is not None
        assert rc.execute_command("SET", "moved-key", "1", target_nodes=target)
        assert cmd(leader, "GET", "moved-key") == b"1"
    finally:
        rc.close()


def test_redis_cluster_client_survives_the_leader_being_killed(
    tmp_path: Path,
) -> None:
    with Cluster(
        tmp_path, size=3, node_timeout=TIMEOUT_MS, config={"follower-writes": "moved"}
    ) as cluster:
        old = settled_leader(cluster)
        follower = cluster.followers(old)[0]
        rc = RedisCluster(host=HOST, port=follower.port, socket_timeout=5)
        try:
            acked = {}
            for i in range(20):
                assert rc.set(f"before:{i}", i)
                acked[f"before:{i}"] = str(i).encode()
            old.kill()
            errors: list[str] = []
            deadline = time.monotonic() + 20
            written = False
            while time.monotonic() < deadline:
                try:
                    written = bool(rc.set("after", "1"))
                    break
                except (redis.RedisError, RedisClusterException) as e:
                    # The client has retried on its own already; it keeps
                    # its topology and is used again after a short pause.
                    errors.append(type(e).__name__)
                    time.sleep(0.05)
            assert written, f"no write accepted after the kill: {errors[-5:]}"
            new = cluster.leader(among=cluster.followers(old))
            # Writes now go to the new leader, whatever the key's slot.
            for key in ("after", *acked):
                assert rc.get_node_from_key(key).port == new.port
            assert rc.get("after") == b"1"
            for key, value in acked.items():
                assert rc.get(key) == value
            assert set(errors) <= {
                "ConnectionError",
                "ClusterDownError",
                "TimeoutError",
            }
        finally:
            rc.close()


# -- redirects and modes as Redis Cluster clients expect them ---------------------


def test_moved_names_the_slot_of_the_key(cluster: Cluster) -> None:
    leader = settled_leader(cluster)
    follower = cluster.followers(leader)[0]
    with pytest.raises(MovedError) as info:
        cmd(follower, "SET", "foo", "1")
    assert info.value.node_addr == (HOST, leader.port)
    assert info.value.slot_id == key_slot(b"foo")


def test_info_and_hello_say_cluster_mode(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    with cluster.client(node) as c:
        assert c.info("server")["redis_mode"] == "cluster"
        assert c.info("cluster")["cluster_enabled"] == 1
    assert cmd(node, "HELLO", "3", protocol=3)[b"mode"] == b"cluster"


# -- side by side with a real Redis Cluster node --------------------------------


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server in cluster mode owning every slot, if installed."""
    refuse_servers_in_quick_mode("redis-server")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    directory = tmp_path_factory.mktemp("real-redis")
    port, bus = free_ports(2)
    options = {
        "port": str(port),
        # Its own bus port: the default, port + 10000, may not exist.
        "cluster-port": str(bus),
        "bind": HOST,
        "cluster-enabled": "yes",
        "cluster-config-file": str(directory / "nodes.conf"),
        "dir": str(directory),
        "save": "",
        "appendonly": "no",
    }
    arguments = [part for k, v in options.items() for part in (f"--{k}", v)]
    log = directory / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, *arguments], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        client = redis.Redis(host=HOST, port=port, socket_timeout=5)

        def up() -> bool:
            if proc.poll() is not None:
                raise Fatal(f"redis-server exited: {log.read_text()[-2000:]}")
            return bool(client.ping())

        wait_until(up, 10, what="redis-server")
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        wait_until(
            lambda: (
                info_fields(client.execute_command("CLUSTER", "INFO"))["cluster_state"]
                == "ok"
            ),
            10,
            what="redis-server cluster_state:ok",
        )
        client.close()
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def shape(value: Any) -> Any:
    """The reply's structure: types, map keys and list lengths, no values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def real(port: int, *args: Any, protocol: int = 2) -> Any:
    with redis.Redis(host=HOST, port=port, protocol=protocol, socket_timeout=5) as c:
        return c.execute_command(*args)


def test_key_slots_match_real_redis(real_redis: int) -> None:
    rng = random.Random(11)
    alphabet = b"ab{}{}x"
    keys = [
        bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 12)))
        for _ in range(300)
    ]
    with redis.Redis(host=HOST, port=real_redis, socket_timeout=5) as c:
        pipe = c.pipeline(transaction=False)
        for k in keys:
            pipe.execute_command("CLUSTER", "KEYSLOT", k)
        expected = pipe.execute()
    assert [key_slot(k) for k in keys] == expected


@pytest.mark.parametrize("protocol", [2, 3])
def test_reply_shapes_match_real_redis(
    cluster: Cluster, real_redis: int, protocol: int
) -> None:
    leader = settled_leader(cluster)
    (theirs,) = real(real_redis, "CLUSTER", "SLOTS", protocol=protocol)
    for node in (leader, cluster.followers(leader)[0]):
        (ours,) = cmd(node, "CLUSTER", "SLOTS", protocol=protocol)
        assert shape(ours[:3]) == shape(theirs)
        assert all(shape(r) == shape(theirs[2]) for r in ours[3:])
        (their_shard,) = real(real_redis, "CLUSTER", "SHARDS", protocol=protocol)
        (our_shard,) = cmd(node, "CLUSTER", "SHARDS", protocol=protocol)
        their_master = their_shard[b"nodes" if protocol == 3 else 3][0]
        for our_node in our_shard[b"nodes" if protocol == 3 else 3]:
            assert shape(our_node) == shape(their_master)
        assert cmd(node, "CLUSTER", "MYID").isalnum()
    our_info = info_fields(cmd(leader, "CLUSTER", "INFO"))
    their_info = info_fields(real(real_redis, "CLUSTER", "INFO"))
    assert set(our_info) <= set(their_info)
    # Every field Redis always sends (per-message-type counters only appear
    # once such messages exist, which Prez's bus does not have).
    always = {k for k in their_info if not re.match(r"cluster_stats_messages_\w+_", k)}
    assert always <= set(our_info)


def test_nodes_line_matches_real_redis(cluster: Cluster, real_redis: int) -> None:
    leader = settled_leader(cluster)
    (theirs,) = nodes_lines(real(real_redis, "CLUSTER", "NODES"))
    ours = {f[0]: f for f in nodes_lines(cmd(leader, "CLUSTER", "NODES"))}
    mine = ours[node_id(name_of(leader))]
    assert len(mine) == len(theirs)
    assert mine[2] == theirs[2] == "myself,master"
    assert mine[3] == theirs[3] == "-"
    assert mine[7] == theirs[7] == "connected"
    assert mine[8] == theirs[8] == "0-16383"
    # A lone Redis node does not know its own IP until another node meets it.
    assert re.fullmatch(r"[\d.]*:\d+@\d+", theirs[1])
    assert re.fullmatch(r"[\d.]+:\d+@\d+", mine[1])


@pytest.mark.parametrize(
    "args",
    [
        ("CLUSTER", "FOO"),
        ("CLUSTER", "KEYSLOT"),
        ("CLUSTER", "MYID", "x"),
        ("CLUSTER", "INFO", "x"),
        ("CLUSTER", "COUNTKEYSINSLOT", "16384"),
        ("CLUSTER", "COUNTKEYSINSLOT", "x"),
        ("CLUSTER", "GETKEYSINSLOT", "0", "-1"),
        ("CLUSTER", "GETKEYSINSLOT", "16384", "1"),
        ("ASKING", "x"),
        ("READONLY", "x"),
    ],
)
def test_error_texts_match_real_redis(
    cluster: Cluster, real_redis: int, args: tuple[str, ...]
) -> None:
    with pytest.raises(redis.ResponseError) as theirs:
        real(real_redis, *args)
    with pytest.raises(redis.ResponseError) as ours:
        cmd(cluster.nodes[0], *args)
    assert str(ours.value) == str(theirs.value)


def test_help_and_verbatim_replies_match_real_redis(
    cluster: Cluster, real_redis: int
) -> None:
    their_help = real(real_redis, "CLUSTER", "HELP")
    our_help = cmd(cluster.nodes[0], "CLUSTER", "HELP")
    assert our_help[0] == their_help[0]
    assert set(our_help) - {b"MYSHARDID", b"    Return the node's shard id."} <= set(
        their_help
    )
    for sub in (b"NODES", b"INFO"):
        theirs = raw(real_redis, b"HELLO 3", b"CLUSTER " + sub)
        ours = raw(cluster.nodes[0].port, b"HELLO 3", b"CLUSTER " + sub)
        assert theirs[theirs.index(b"\r\n=") + 2 :].split(b"\r\n")[1][:4] == b"txt:"
        assert ours[ours.index(b"\r\n=") + 2 :].split(b"\r\n")[1][:4] == b"txt:"
