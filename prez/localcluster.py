"""`prez-cluster`: a local cluster in one command, as in the original README.

    prez-cluster start [N]   # N nodes (default 3) in ./cluster/9000, 9001, ...
    prez-cluster stop
    prez-cluster status
    prez-cluster add          # one more node, joining through cluster-join
    prez-cluster remove NODE  # RAFT.NODE REMOVE (name or port), then stop it

Each node gets a directory with its prez.conf (name node-9000, port 9000,
cluster-port 10000, ...) and a nodes.conf listing every member, and is
started in the background as `prez-server ./prez.conf` from that
directory, logging to prez.log. `start` returns once a leader is elected.
`add` makes the next port's directory with a prez.conf holding
`cluster-join` (no nodes.conf: the node asks to be added as a learner and is
promoted once caught up) and returns once it is a voter; `remove` asks the
cluster to remove a node, stops it and moves its directory under removed/.
Talks to the nodes as a RESP client (INFO raft, RAFT.NODES, RAFT.NODE
REMOVE) through `prez.respclient`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from prez import respclient
from prez.errors import CommandError, ProtocolError

HOST = "127.0.0.1"


def info(port: int, section: str = "raft", timeout: float = 1.0) -> dict[str, str]:
    """INFO <section> of the node on port, as a dict (empty if it is down)."""
    try:
        body = call(port, "INFO", section, timeout=timeout)
    except OSError:
        return {}
    if not isinstance(body, bytes):
        return {}
    fields = {}
    for line in body.decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value
    return fields


def call(port: int, *args: str, timeout: float = 30.0) -> Any:
    """One command to the node on port; an error reply is returned as a
    CommandError. A node that is down or does not speak RESP raises OSError."""
    command = [arg.encode() for arg in args]
    try:
        return asyncio.run(
            respclient.request(HOST, port, [command], reply_timeout=timeout)
        )[0]
    except ProtocolError as e:
        raise OSError(f"node on port {port}: {e}")


def members(port: int) -> dict[str, dict[str, str]]:
    """RAFT.NODES of the node on port: name -> fields (empty if it is down)."""
    try:
        rows = call(port, "RAFT.NODES", timeout=2.0)
    except OSError:
        return {}
    if not isinstance(rows, list):
        return {}
    result = {}
    for row in rows:
        fields = {
            k.decode(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in zip(row[::2], row[1::2], strict=False)
        }
        result[fields["name"]] = fields
    return result


def node_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (d for d in root.iterdir() if (d / "prez.conf").exists()), key=lambda d: d.name
    )


def read_port(directory: Path, key: str = "port") -> int:
    for line in (directory / "prez.conf").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    raise ValueError(f"no {key} in {directory / 'prez.conf'}")


def pid_of(directory: Path) -> int | None:
    try:
        pid = int((directory / "prez.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def write_node_files(
    root: Path, count: int, base_port: int, bus_base: int, timeout_ms: int
) -> None:
    names = [f"node-{base_port + i}" for i in range(count)]
    nodes_conf = "".join(
        f"{name} {HOST}:{bus_base + i}\n" for i, name in enumerate(names)
    )
    for i, name in enumerate(names):
        directory = root / str(base_port + i)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "prez.conf").write_text(
            f"name {name}\nport {base_port + i}\ncluster-port {bus_base + i}\n"
            f"cluster-config-file nodes.conf\ncluster-node-timeout {timeout_ms}\n"
            "loglevel notice\nlogfile prez.log\n"
        )
        (directory / "nodes.conf").write_text(nodes_conf)


def spawn(directory: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "prez", "./prez.conf"],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=open(directory / "prez.out", "ab"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (directory / "prez.pid").write_text(f"{proc.pid}\n")


def add(root: Path, wait: float) -> int:
    dirs = node_dirs(root)
    live = [d for d in dirs if pid_of(d) is not None]
    if not live:
        print(f"no node running under {root}; 'prez-cluster start' first")
        return 1
    port = max(read_port(d) for d in dirs) + 1
    bus = max(read_port(d, "cluster-port") for d in dirs) + 1
    through = read_port(live[0])
    timeout_line = next(
        (
            line
            for line in (live[0] / "prez.conf").read_text().splitlines()
            if line.startswith("cluster-node-timeout ")
        ),
        "cluster-node-timeout 1000",
    )
    name = f"node-{port}"
    directory = root / str(port)
    directory.mkdir(parents=True)
    (directory / "prez.conf").write_text(
        f"name {name}\nport {port}\ncluster-port {bus}\n"
        f"cluster-config-file nodes.conf\n{timeout_line}\n"
        f"cluster-join {HOST}:{through}\nloglevel notice\nlogfile prez.log\n"
    )
    spawn(directory)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if members(through).get(name, {}).get("role") == "voter":
            print(f"{name} (port {port}) joined the cluster as a voter")
            return 0
        if pid_of(directory) is None:
            print(f"{name}: prez-server exited; see {directory / 'prez.log'}")
            return 1
        time.sleep(0.1)
    print(
        f"{name} did not become a voter within {wait:.0f}s; see {directory / 'prez.log'}"
    )
    return 1


def remove(root: Path, which: str) -> int:
    dirs = node_dirs(root)
    target = next(
        (d for d in dirs if d.name == which or f"node-{d.name}" == which), None
    )
    if target is None:
        print(f"no node {which} under {root}")
        return 1
    name = f"node-{target.name}"
    for line in (target / "prez.conf").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "name":
            name = parts[1]
    others = [d for d in dirs if d != target and pid_of(d) is not None]
    if not others:
        print("no other node running to ask")
        return 1
    reply = call(read_port(others[0]), "RAFT.NODE", "REMOVE", name)
    if isinstance(reply, CommandError):
        print(f"refused: {reply}")
        return 1
    pid = pid_of(target)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and pid_of(target) is not None:
            time.sleep(0.05)
    (root / "removed").mkdir(exist_ok=True)
    target.rename(root / "removed" / f"{target.name}-{int(time.time())}")
    print(f"{name} removed from the cluster and stopped")
    return 0


def start(
    root: Path, count: int, base_port: int, bus_base: int, timeout_ms: int, wait: float
) -> int:
    dirs = node_dirs(root)
    if count and dirs and len(dirs) != count:
        print(
            f"{root} already holds a {len(dirs)}-node cluster; 'prez-cluster stop' and remove it first"
        )
        return 1
    if not dirs:
        write_node_files(root, count or 3, base_port, bus_base, timeout_ms)
        dirs = node_dirs(root)
    for directory in dirs:
        if pid_of(directory) is not None:
            print(f"{directory.name}: already running")
            continue
        spawn(directory)
    ports = [read_port(d) for d in dirs]
    deadline = time.monotonic() + wait
    leader = None
    while time.monotonic() < deadline:
        roles = {port: info(port) for port in ports}
        leaders = [p for p, f in roles.items() if f.get("raft_role") == "leader"]
        if leaders:
            leader = leaders[0]
            break
        for directory in dirs:
            if pid_of(directory) is None:
                print(
                    f"{directory.name}: prez-server exited; see {directory / 'prez.out'} and prez.log"
                )
                return 1
        time.sleep(0.1)
    if leader is None:
        print(
            f"no leader elected within {wait:.0f}s; see the prez.log files under {root}"
        )
        return 1
    print(
        f"Prez cluster of {len(dirs)} nodes running under {root}; leader: port {leader}"
    )
    print(
        f"Talk to it:  redis-cli -p {ports[0]}    (writes to a follower are forwarded)"
    )
    print("Stop it:     prez-cluster stop")
    return 0


def stop(root: Path, wait: float = 10.0) -> int:
    pids = [(d, pid_of(d)) for d in node_dirs(root)]
    running = [(d, p) for d, p in pids if p is not None]
    for _, pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    for directory, pid in running:
        while time.monotonic() < deadline and pid_of(directory) is not None:
            time.sleep(0.05)
        if pid_of(directory) is not None:
            os.kill(pid, signal.SIGKILL)
        print(f"{directory.name}: stopped")
    if not running:
        print("no node running")
    return 0


STATUS_COLUMNS = [
    # (header, INFO raft field)
    ("node", "raft_node_name"),
    ("role", "raft_role"),
    ("term", "raft_term"),
    ("leader", "raft_leader"),
    ("commit", "raft_commit_index"),
    ("applied", "raft_applied_index"),
    ("last", "raft_last_log_index"),
    ("snapshot", "raft_snapshot_index"),
    ("read-mode", "raft_read_mode"),
    ("fsyncs", "raft_fsyncs"),
    ("fsync-ms", "raft_fsync_avg_ms"),
    ("elections", "raft_elections_started"),
    ("leader-chg", "raft_leader_changes"),
    ("proposals", "raft_proposals"),
    ("reads", "raft_reads"),
    ("forwarded", "raft_forwarded"),
]


def status(root: Path) -> int:
    dirs = node_dirs(root)
    if not dirs:
        print(f"no cluster under {root}")
        return 1
    rows = [["port", *(header for header, _ in STATUS_COLUMNS)]]
    for directory in dirs:
        port = read_port(directory)
        fields = info(port)
        if not fields:
            rows.append([str(port), f"node-{directory.name}", "down"])
            continue
        rows.append(
            [str(port), *(fields.get(key, "") or "-" for _, key in STATUS_COLUMNS)]
        )
    widths = [
        max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))
    ]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="prez-cluster", description="Run a local Prez cluster."
    )
    parser.add_argument(
        "--dir",
        default="cluster",
        help="where the node directories live (default ./cluster)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="create (if needed) and start the nodes")
    # Default: the existing nodes, or 3 for a new cluster.
    p_start.add_argument("nodes", nargs="?", type=int, default=0)
    p_start.add_argument("--port", type=int, default=9000, help="first client port")
    p_start.add_argument(
        "--cluster-port", type=int, default=10000, help="first cluster-bus port"
    )
    p_start.add_argument(
        "--node-timeout", type=int, default=1000, help="cluster-node-timeout in ms"
    )
    p_start.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for a leader"
    )
    sub.add_parser("stop", help="stop every node (SIGTERM)")
    p_add = sub.add_parser("add", help="start one more node that joins the cluster")
    p_add.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait until it votes"
    )
    p_remove = sub.add_parser("remove", help="remove a node (name or port) and stop it")
    p_remove.add_argument("node")
    sub.add_parser("status", help="role, term, commit and applied index of every node")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if args.command == "start":
        if args.nodes < 0:
            parser.error("a cluster needs at least one node")
        return start(
            root, args.nodes, args.port, args.cluster_port, args.node_timeout, args.wait
        )
    if args.command == "stop":
        return stop(root)
    if args.command == "add":
        return add(root, args.wait)
    if args.command == "remove":
        return remove(root, args.node)
    return status(root)
