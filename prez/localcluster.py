"""`prez-cluster`: a local cluster in one command, as in the original README.

    prez-cluster start [N]   # N nodes (default 3) in ./cluster/9000, 9001, ...
    prez-cluster stop
    prez-cluster status

Each node gets a directory with its prez.conf (name node-9000, port 9000,
cluster-port 10000, ...) and a nodes.conf listing every member, and is
started in the background as `prez-server ./prez.conf` from that
directory, logging to prez.log. `start` returns once a leader is elected.
Talks to the nodes over plain sockets (INFO raft), so it needs nothing but
the standard library.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


def info(port: int, section: str = "raft", timeout: float = 1.0) -> dict[str, str]:
    """INFO <section> of the node on port, as a dict (empty if it is down)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(f"INFO {section}\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    return {}
                data += chunk
            header, _, body = data.partition(b"\r\n")
            if not header.startswith(b"$"):
                return {}
            size = int(header[1:])
            while len(body) < size + 2:
                chunk = s.recv(65536)
                if not chunk:
                    return {}
                body += chunk
    except OSError:
        return {}
    fields = {}
    for line in body[:size].decode(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key] = value
    return fields


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


def start(
    root: Path, count: int, base_port: int, bus_base: int, timeout_ms: int, wait: float
) -> int:
    dirs = node_dirs(root)
    if dirs and len(dirs) != count:
        print(
            f"{root} already holds a {len(dirs)}-node cluster; 'prez-cluster stop' and remove it first"
        )
        return 1
    if not dirs:
        write_node_files(root, count, base_port, bus_base, timeout_ms)
        dirs = node_dirs(root)
    for directory in dirs:
        if pid_of(directory) is not None:
            print(f"{directory.name}: already running")
            continue
        proc = subprocess.Popen(
            [sys.executable, "-m", "prez", "./prez.conf"],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=open(directory / "prez.out", "ab"),  # noqa: SIM115 - owned by the child
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (directory / "prez.pid").write_text(f"{proc.pid}\n")
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
    p_start.add_argument("nodes", nargs="?", type=int, default=3)
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
    sub.add_parser("status", help="role, term, commit and applied index of every node")
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if args.command == "start":
        if args.nodes < 1:
            parser.error("a cluster needs at least one node")
        return start(
            root, args.nodes, args.port, args.cluster_port, args.node_timeout, args.wait
        )
    if args.command == "stop":
        return stop(root)
    return status(root)
