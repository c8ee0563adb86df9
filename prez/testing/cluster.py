"""A cluster of real prez-server processes on loopback addresses, for tests.

Each node has its own directory with prez.conf and nodes.conf, free client
and cluster ports, and short timeouts (cluster-node-timeout 500 by default)
so that elections take a fraction of a second. Helpers wait on conditions
with deadlines; `stop()` always ends every process.

Nodes bind 127.0.0.1 by default. With `own_hosts=True` each node binds an
address of its own (127.A.B.1, 127.A.B.2, ...; see
prez.testing.partition.loopback_hosts) for clients and the cluster bus alike,
so that prez.testing.partition can cut the links between nodes.

Membership changes: `new_node()` makes a node that joins the running cluster
through `cluster-join` (no nodes.conf), `add_node()` one added by RAFT.NODE
ADD and then started, `remove_node()` sends RAFT.NODE REMOVE and stops
tracking the node (the process is left to the test).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import redis

from prez.testing.partition import loopback_hosts
from prez.testing.procs import HOST, ServerProcess, free_ports, wait_until


def ping_at(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a node answers PING at host:port (NOAUTH counts: it serves)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class OwnHostServer(ServerProcess):
    """A ServerProcess that binds only its own loopback address `host`."""

    def __init__(
        self, directory: Path, host: str, port: int, config: dict[str, str]
    ) -> None:
        super().__init__(directory, port=port, config={**config, "bind": host})
        self.host = host

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"prez-server exited with {self.proc.returncode}:\n{self.log()}"
                )
            return ping_at(self.host, self.port)

        wait_until(ready, timeout, what=f"prez-server on {self.host}:{self.port}")


class Cluster:
    def __init__(
        self,
        base: Path,
        size: int = 3,
        node_timeout: int = 500,
        config: dict[str, str] | None = None,
        own_hosts: bool = False,
    ) -> None:
        self.base = Path(base)
        self.node_timeout = node_timeout
        self.extra_config = dict(config or {})
        self.removed: list[ServerProcess] = []
        self.nodes: list[ServerProcess] = []
        hosts = loopback_hosts(size) if own_hosts else [HOST] * size
        drawn = free_ports(2 * size)
        ports = list(zip(drawn[::2], drawn[1::2], strict=True))
        members = [(f"node-{port}", bus) for port, bus in ports]
        nodes_conf = "".join(
            f"{name} {host}:{bus}\n"
            for (name, bus), host in zip(members, hosts, strict=True)
        )
        for (port, bus), (name, _), host in zip(ports, members, hosts, strict=True):
            node_config = {
                "name": name,
                "cluster-port": str(bus),
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(node_timeout),
                "loglevel": "verbose",
                **(config or {}),
            }
            node: ServerProcess
            if own_hosts:
                node = OwnHostServer(self.base / name, host, port, node_config)
            else:
                node = ServerProcess(self.base / name, port=port, config=node_config)
            (node.dir / "nodes.conf").write_text(nodes_conf)
            self.nodes.append(node)

    def start(self, timeout: float = 30.0) -> Cluster:
        for node in self.nodes:
            node.start(wait=False)
        for node in self.nodes:
            node.wait_ready(timeout)
        return self

    def stop(self) -> None:
        # Removed nodes too: every process a test started ends with it.
        for node in self.nodes + self.removed:
            node.stop()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def host(self, node: ServerProcess) -> str:
        """The address node serves clients (and the cluster bus) on."""
        return node.config["bind"].split()[0]

    def client(self, node: ServerProcess, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host(node), port=node.port, **kwargs)

    def raft_info(self, node: ServerProcess) -> dict[str, Any]:
        with self.client(node, socket_timeout=2) as c:
            return dict(c.info("raft"))

    def leader(
        self, timeout: float = 10.0, among: list[ServerProcess] | None = None
    ) -> ServerProcess:
        """The node that says it leads, once the live ones agree on it."""
        candidates = among if among is not None else self.nodes

        def find() -> ServerProcess | None:
            live = [n for n in candidates if n.alive()]
            infos = {}
            for n in live:
                try:
                    infos[n.port] = self.raft_info(n)
                except redis.RedisError:
                    continue
            leaders = [
                n for n in live if infos.get(n.port, {}).get("raft_role") == "leader"
            ]
            if len(leaders) != 1:
                return None
            name = infos[leaders[0].port]["raft_node_name"]
            agreeing = [
                n for n in live if infos.get(n.port, {}).get("raft_leader") == name
            ]
            # A majority of the whole cluster must follow it.
            return leaders[0] if len(agreeing) * 2 > len(self.nodes) else None

        result: ServerProcess = wait_until(
            find, timeout, interval=0.05, what="a leader"
        )
        return result

    def followers(self, leader: ServerProcess) -> list[ServerProcess]:
        return [n for n in self.nodes if n is not leader]

    def name(self, node: ServerProcess) -> str:
        return node.config["name"]

    def wait_applied(
        self,
        index: int,
        nodes: list[ServerProcess] | None = None,
        timeout: float = 20.0,
    ) -> None:
        for node in nodes or [n for n in self.nodes if n.alive()]:

            def caught_up(node: ServerProcess = node) -> bool:
                return int(self.raft_info(node)["raft_applied_index"]) >= index

            wait_until(caught_up, timeout, what=f"{self.name(node)} applied {index}")

    def logs(self) -> str:
        return "\n".join(
            f"===== {self.name(n)} =====\n{n.log()[-20000:]}"
            for n in self.nodes + self.removed
        )

    # -- membership changes -------------------------------------------------

    def new_node(self, join_through: ServerProcess | None = None) -> ServerProcess:
        """A node not yet started, with its own name, ports and empty directory.
        With `join_through`, its prez.conf has `cluster-join` naming that
        node's client address and it writes no nodes.conf: started, it asks
        to be added. Tracked in `nodes` only once added (see add_node/join)."""
        port, bus = free_ports(2)
        name = f"node-{port}"
        node_config = {
            "name": name,
            "cluster-port": str(bus),
            "cluster-config-file": "nodes.conf",
            "cluster-node-timeout": str(self.node_timeout),
            "loglevel": "verbose",
            **self.extra_config,
        }
        if join_through is not None:
            node_config["cluster-join"] = f"{HOST}:{join_through.port}"
        return ServerProcess(self.base / name, port=port, config=node_config)

    def bus_addr(self, node: ServerProcess) -> str:
        return f"{HOST}:{node.config['cluster-port']}"

    def join(self, via: ServerProcess | None = None) -> ServerProcess:
        """Start a node that joins through cluster-join; returns it once started."""
        node = self.new_node(join_through=via or self.nodes[0])
        node.start(wait=True, timeout=60)
        self.nodes.append(node)
        return node

    def add_node(
        self, via: ServerProcess | None = None, learner: bool = False
    ) -> ServerProcess:
        """RAFT.NODE ADD a fresh node (sent to `via`, forwarded to the
        leader), then start it with a nodes.conf listing the members."""
        node = self.new_node()
        via = via or self.nodes[0]
        args = ["RAFT.NODE", "ADD", self.name(node), self.bus_addr(node)]
        if learner:
            args.append("LEARNER")
        with self.client(via, socket_timeout=30) as c:
            assert c.execute_command(*args) in (b"OK", "OK")
            rows = c.execute_command("RAFT.NODES")
        lines = []
        for row in rows:
            fields = dict(zip(row[::2], row[1::2], strict=False))
            lines.append(f"{fields[b'name'].decode()} {fields[b'addr'].decode()}\n")
        (node.dir / "nodes.conf").write_text("".join(lines))
        node.start(wait=True)
        self.nodes.append(node)
        return node

    def remove_node(
        self, node: ServerProcess, via: ServerProcess | None = None
    ) -> None:
        """RAFT.NODE REMOVE `node` (through `via`, default any other live node)."""
        via = via or next(n for n in self.nodes if n is not node and n.alive())
        with self.client(via, socket_timeout=30) as c:
            assert c.execute_command("RAFT.NODE", "REMOVE", self.name(node)) in (
                b"OK",
                "OK",
            )
        self.nodes.remove(node)
        self.removed.append(node)

    def members(self, node: ServerProcess) -> dict[str, dict[bytes, Any]]:
        """RAFT.NODES of `node`: name -> its fields."""
        with self.client(node, socket_timeout=5) as c:
            rows = c.execute_command("RAFT.NODES")
        result = {}
        for row in rows:
            fields = dict(zip(row[::2], row[1::2], strict=False))
            result[fields[b"name"].decode()] = fields
        return result

    def wait_voter(self, node: ServerProcess, timeout: float = 30.0) -> None:
        """Until every tracked live node lists `node` as a voter."""
        name = self.name(node)

        def voter_everywhere() -> bool:
            for n in self.nodes:
                if not n.alive():
                    continue
                try:
                    row = self.members(n).get(name)
                except redis.RedisError:
                    return False
                if row is None or row[b"role"] != b"voter":
                    return False
            return True

        wait_until(voter_everywhere, timeout, what=f"{name} a voter on every node")
