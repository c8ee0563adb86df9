"""The prez-server process: listeners, the driver, background jobs, INFO.

Owns the event loop (uvloop), the client listener, the key-value store and
the driver that writes go through, and the periodic jobs (active expiry,
idle clients and soft output limits, used memory against maxmemory).
SIGTERM and SIGINT stop it cleanly: listeners close, clients are
disconnected, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import signal
import sys
import time
from typing import Any

import prez
from prez import kv
from prez.config import Config
from prez.errors import ConfigError, StorageError
from prez.server import logging as plog
from prez.server.client import ClientConnection
from prez.server.commands import (
    HANDLERS,
    REDIS_COMPAT_VERSION,
    SERVER_COMMANDS,
    process_stats,
)
from prez.server.dispatch import build_table
from prez.server.driver import LocalDriver
from prez.server.logging import log

# Active expiry: per database and cycle, delete at most this many keys
# (one write), and keep cycling only while a sample was mostly expired.
EXPIRE_BATCH = 64
# While maxmemory is set, used memory is sampled this often (seconds): a
# write admitted between two samples may overshoot by what arrives in one.
MEMORY_SAMPLE_INTERVAL = 0.01
# Over the limit, free heap memory is handed back to the system at most
# this often before deciding (a malloc_trim walks the whole heap).
TRIM_INTERVAL = 1.0


def _load_malloc_trim() -> Any:
    """glibc's malloc_trim, or None (another libc)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryGauge:
    """Used memory as maxmemory counts it: the process's resident set size.

    Redis counts what its allocator handed out (used_memory). CPython has
    no cheap equivalent: most small objects come from pymalloc's arenas,
    which no allocator statistic sees, and tracemalloc costs several times
    the hot path. The RSS is what the machine actually gives the process,
    and it is one pread of /proc/self/statm. It does not shrink by itself
    when keys are deleted (freed heap pages stay mapped), so before
    refusing writes the gauge asks glibc to return free pages
    (malloc_trim) and measures again: memory freed by DEL then counts as
    free. What it includes that Redis's figure would not: the interpreter
    itself (about 30 MB) and the in-memory Raft log until it is compacted.
    """

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._fd = os.open("/proc/self/statm", os.O_RDONLY)
        self._trim = _load_malloc_trim()
        self._last_trim = 0.0
        self.trims = 0

    def rss(self) -> int:
        return int(os.pread(self._fd, 128, 0).split()[1]) * self._page

    def over(self, limit: int) -> tuple[bool, int]:
        """Whether used memory is over `limit`, and the figure decided on."""
        used = self.rss()
        if used > limit and self._trim is not None:
            now = time.monotonic()
            if now - self._last_trim >= TRIM_INTERVAL:
                self._last_trim = now
                self._trim(0)
                self.trims += 1
                used = self.rss()
        return used > limit, used

    def close(self) -> None:
        os.close(self._fd)


class Stats:
    __slots__ = (
        "connections_received",
        "rejected_connections",
        "commands_processed",
        "protocol_errors",
        "unknown_commands",
        "expired_keys",
        "forwarded",
        "loop_lag_max",
        "started",
        "query_limit_disconnections",
        "output_limit_disconnections",
        "idle_disconnections",
    )

    def __init__(self) -> None:
        self.started = time.time()
        self.reset()

    def reset(self) -> None:
        self.connections_received = 0
        self.rejected_connections = 0
        self.commands_processed = 0
        self.protocol_errors = 0
        self.unknown_commands = 0
        self.expired_keys = 0
        self.forwarded = 0
        self.loop_lag_max = 0.0
        self.query_limit_disconnections = 0
        self.output_limit_disconnections = 0
        self.idle_disconnections = 0


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
        # client-output-buffer-limit for normal clients: (hard, soft, seconds).
        self.output_limits: tuple[int, int, int] = config["client-output-buffer-limit"][
            "normal"
        ]
        # Over maxmemory (sampled by _watch_memory): denyoom writes refused.
        self.oom = False
        self.used_memory = 0
        self.memory = MemoryGauge()
        self.store = kv.KVStore(config["databases"])
        self.lookup, self.commands = build_table(kv.COMMANDS, SERVER_COMMANDS, HANDLERS)
        self.exit_code = 0
        nodes_file = config["cluster-config-file"]
        # A node with cluster-join and no nodes.conf yet joins a running cluster.
        has_nodes_file = os.path.exists(nodes_file)
        self.clustered = has_nodes_file or bool(config["cluster-join"])
        if self.clustered:
            from prez.server.raftdriver import RaftDriver, load_members

            self.driver: Any = RaftDriver(
                self, load_members(nodes_file) if has_nodes_file else {}
            )
        else:
            self.driver = LocalDriver(self.store, self.commands, self.count_expired)
        self.clients: dict[int, ClientConnection] = {}
        self.stats = Stats()
        self._next_client_id = 0
        self._stop: asyncio.Event | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.expire_entry = self.commands.get("prez.expire")

    # Used by the connection and server commands.

    def next_client_id(self) -> int:
        self._next_client_id += 1
        return self._next_client_id

    def mode(self) -> str:
        return "cluster" if self.clustered else "standalone"

    def role_name(self) -> str:
        return "master" if self.driver.is_leader() else "replica"

    def loop_call_soon(self, callback: Any) -> None:
        assert self.loop is not None
        self.loop.call_soon(callback)

    def config_changed(self, name: str) -> None:
        if name == "loglevel":
            log.set_level(self.config["loglevel"])
        elif name == "proto-max-bulk-len":
            for client in self.clients.values():
                client.parser.max_bulk_len = self.config["proto-max-bulk-len"]
        elif name == "client-query-buffer-limit":
            for client in self.clients.values():
                client.parser.max_query_len = self.config["client-query-buffer-limit"]
        elif name == "client-output-buffer-limit":
            self.output_limits = self.config["client-output-buffer-limit"]["normal"]
            for client in self.clients.values():
                client.out.limit = self.output_limits[0]
                client.obuf_check = any(self.output_limits[:2])
                if not self.output_limits[1]:
                    client.soft_since = 0.0
        elif name == "maxmemory":
            limit = self.config["maxmemory"]
            if limit:
                used = self.memory.rss()
                if used > limit:
                    log.warning(
                        f"WARNING: the new maxmemory value set via CONFIG SET ({limit}) "
                        f"is smaller than the current memory usage ({used}). This will "
                        "result in the inability to accept new write commands "
                        "(maxmemory-policy noeviction)."
                    )
            else:
                self.set_oom(False)

    def set_oom(self, oom: bool) -> None:
        """Enter or leave the over-maxmemory state."""
        if oom == self.oom:
            return
        self.oom = oom
        if oom:
            log.warning(
                f"Used memory {self.used_memory} is over maxmemory "
                f"{self.config['maxmemory']}: refusing denyoom writes with -OOM"
            )
        else:
            log.notice("Used memory is under maxmemory again: writes accepted")
        # Without a log, writes run on the compiled path, which knows
        # nothing of memory: take them off it while over the limit.
        for client in self.clients.values():
            client.refresh_local_kinds()

    def reset_stats(self) -> None:
        self.stats.reset()
        for entry in self.commands.values():
            entry.reset_stats()

    def request_stop(self, reason: str, exit_code: int = 0) -> None:
        log.notice(f"Shutting down: {reason}")
        self.exit_code = max(self.exit_code, exit_code)
        if self._stop is not None:
            self._stop.set()

    # Life cycle

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(
                sig, self.request_stop, signal.Signals(sig).name
            )
        if self.clustered:
            await self.driver.start()
        else:
            log.warning(
                f"No {self.config['cluster-config-file']} found: running standalone, "
                "without replication or persistence"
            )
        port = self.config["port"]
        for host in self.config["bind"]:
            listener = await self.loop.create_server(
                lambda: ClientConnection(self),
                host,
                port,
                reuse_address=True,
                backlog=511,
            )
            self._servers.append(listener)
        log.notice(
            f"Prez {prez.__version__} ({self.config['name']}) ready to accept connections "
            f"on {' '.join(self.config['bind'])}:{port}"
        )
        tasks = [
            asyncio.create_task(job())
            for job in (
                self._active_expiry,
                self._measure_loop_lag,
                self._freeze_old_objects,
                self._watch_memory,
                self._clients_cron,
            )
        ]
        try:
            await self._stop.wait()
            if self.clustered and self.exit_code == 0:
                await self.driver.hand_off()
        finally:
            for task in tasks:
                task.cancel()
            for open_listener in self._servers:
                open_listener.close()
            for client in list(self.clients.values()):
                if client.transport is not None:
                    client.transport.close()
            for open_listener in self._servers:
                await open_listener.wait_closed()
            if self.clustered:
                await self.driver.close()
            self.memory.close()
        log.notice("Prez is now ready to exit, bye bye...")

    async def _active_expiry(self) -> None:
        """Delete expired keys in the background, through the write path.

        Deletion is a replicated write (`prez.expire`, which removes a key only
        if it is expired at the entry's time), so every replica drops the same
        keys at the same point in the log. Only the leader proposes it.
        """
        if self.expire_entry is None:
            return
        while True:
            await asyncio.sleep(1 / self.config["hz"])
            try:
                self._expire_cycle()
            except Exception as e:  # noqa: BLE001 - the sweeper must outlive a bad cycle
                log.warning(f"Active expiry cycle failed: {e!r}")

    def _expire_cycle(self) -> None:
        if not self.driver.is_leader():
            return
        now = time.time_ns() // 1_000_000
        for db in self.store.dbs:
            if db.expires:
                keys = db.expired_keys(now, EXPIRE_BATCH)
                if keys:
                    self.driver.propose_internal(db.index, [b"prez.expire", *keys], now)

    async def _watch_memory(self) -> None:
        """Sample used memory while maxmemory is set (MemoryGauge)."""
        while True:
            limit = self.config["maxmemory"]
            if not limit:
                await asyncio.sleep(1 / self.config["hz"])
                continue
            await asyncio.sleep(MEMORY_SAMPLE_INTERVAL)
            try:
                over, self.used_memory = self.memory.over(limit)
                self.set_oom(over and bool(self.config["maxmemory"]))
            except Exception as e:  # noqa: BLE001 - the gauge must outlive a bad sample
                log.warning(f"Sampling used memory failed: {e!r}")

    async def _clients_cron(self) -> None:
        """Once a second: close idle clients (timeout) and clients over the
        soft output limit for too long, as Redis's clientsCron does.

        A client waiting for a reply (a write being committed, a read being
        confirmed) is not idle, as Redis exempts blocked clients.
        """
        while True:
            await asyncio.sleep(1.0)
            timeout = self.config["timeout"]
            soft = self.output_limits[1]
            if not timeout and not soft:
                continue
            now_ms = time.time_ns() // 1_000_000
            for client in list(self.clients.values()):
                if client.closing:
                    continue
                if (
                    timeout
                    and not client.queue
                    and now_ms - client.last_active_ms > timeout * 1000
                ):
                    log.verbose(
                        f"Closing idle client id={client.id} addr={client.addr}"
                    )
                    self.stats.idle_disconnections += 1
                    client.close_now()
                    client.closing = True
                elif client.soft_since:
                    client.check_output()

    async def _freeze_old_objects(self) -> None:
        """Keep Python's full garbage collections short as the data grows.

        The keyspace and the in-memory Raft log are millions of long-lived
        container objects that never form garbage cycles; a full collection
        walks all of them (tens to hundreds of milliseconds for a million
        keys, a stall of the event loop, freeing nothing). Once a second the
        young generations are collected and everything that survived is moved
        to the permanent generation, so later collections only walk what is
        new. Objects freed by reference counting are still freed; what is
        given up is collecting cycles among frozen objects, which is why
        error replies drop their tracebacks (the one cycle the hot path made).
        """
        while True:
            await asyncio.sleep(1.0)
            gc.collect(1)
            gc.freeze()

    async def _measure_loop_lag(self) -> None:
        """How late a 2 ms timer fires: the longest the event loop was stuck.

        Shown in INFO stats (loop_lag_max_ms, reset by CONFIG RESETSTAT), so a
        stall (a fork for a snapshot, a long command) is visible and measurable.
        """
        loop = asyncio.get_running_loop()
        interval = 0.002  # a stall shorter than what is left of a sleep goes unseen
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            lag = loop.time() - expected
            if lag > self.stats.loop_lag_max:
                self.stats.loop_lag_max = lag

    def count_expired(self, deleted: int) -> None:
        """Called when a `prez.expire` entry is applied."""
        self.stats.expired_keys += deleted

    # INFO

    def info(self, sections: list[str]) -> str:
        everything = not sections or any(s in ("all", "everything") for s in sections)
        default = not sections or "default" in sections
        wanted = set(sections)
        parts = []
        for name, render in (
            ("server", self._info_server),
            ("clients", self._info_clients),
            ("memory", self._info_memory),
            ("stats", self._info_stats),
            ("cpu", self._info_cpu),
            ("replication", self._info_replication),
            ("raft", self._info_raft),
            ("cluster", self._info_cluster),
            ("commandstats", self._info_commandstats),
            ("keyspace", self._info_keyspace),
        ):
            if (
                name in wanted
                or (everything and name != "commandstats")
                or (
                    name == "commandstats"
                    and any(s in ("all", "everything") for s in sections)
                )
                or (default and name != "commandstats")
            ):
                body = render()
                parts.append(
                    f"# {name.capitalize() if name != 'cpu' else 'CPU'}\r\n{body}"
                )
        return "\r\n".join(parts)

    @staticmethod
    def _fields(fields: dict[str, Any]) -> str:
        return "".join(f"{k}:{v}\r\n" for k, v in fields.items())

    def _info_server(self) -> str:
        uptime = int(time.time() - self.stats.started)
        return self._fields(
            {
                "redis_version": REDIS_COMPAT_VERSION,
                "prez_version": prez.__version__,
                "redis_mode": self.mode(),
                "os": " ".join(os.uname()[i] for i in (0, 2, 4)),
                "process_id": os.getpid(),
                "tcp_port": self.config["port"],
                "uptime_in_seconds": uptime,
                "uptime_in_days": uptime // 86400,
                "hz": self.config["hz"],
                "executable": "prez-server",
                "config_file": self.config.path,
                "node_name": self.config["name"],
            }
        )

    def _info_clients(self) -> str:
        return self._fields(
            {
                "connected_clients": len(self.clients),
                "maxclients": self.config["maxclients"],
            }
        )

    def _info_memory(self) -> str:
        stats = process_stats()
        used = self.memory.rss()
        limit = self.config["maxmemory"]
        return self._fields(
            {
                # What maxmemory is compared with (see MemoryGauge): the RSS.
                "used_memory": used,
                "used_memory_human": _human(used),
                "used_memory_rss": stats["used_memory_rss"],
                "used_memory_peak_rss": stats["used_memory_peak_rss"],
                "maxmemory": limit,
                "maxmemory_human": _human(limit),
                "maxmemory_policy": self.config["maxmemory-policy"],
                "maxmemory_reached": int(self.oom),
                "maxmemory_trims": self.memory.trims,
            }
        )

    def _info_stats(self) -> str:
        s = self.stats
        return self._fields(
            {
                "total_connections_received": s.connections_received,
                "total_commands_processed": s.commands_processed,
                "rejected_connections": s.rejected_connections,
                "expired_keys": s.expired_keys,
                "total_error_replies": sum(e.failed for e in self.commands.values())
                + s.unknown_commands,
                "unknown_commands": s.unknown_commands,
                "protocol_errors": s.protocol_errors,
                "client_query_buffer_limit_disconnections": s.query_limit_disconnections,
                "client_output_buffer_limit_disconnections": s.output_limit_disconnections,
                "client_idle_disconnections": s.idle_disconnections,
                "loop_lag_max_ms": f"{s.loop_lag_max * 1000:.1f}",
            }
        )

    def _info_cpu(self) -> str:
        stats = process_stats()
        return self._fields(
            {
                "used_cpu_sys": stats["used_cpu_sys"],
                "used_cpu_user": stats["used_cpu_user"],
            }
        )

    def _info_replication(self) -> str:
        if not self.clustered:
            return self._fields({"role": "master", "connected_slaves": 0})
        role = self.driver.role_reply()
        if role[0] == b"master":
            fields: dict[str, Any] = {
                "role": "master",
                "connected_slaves": len(role[2]),
            }
            for i, (host, port, offset) in enumerate(role[2]):
                fields[f"slave{i}"] = (
                    f"ip={host.decode()},port={port.decode()},state=online,offset={offset.decode()},lag=0"
                )
            return self._fields(fields)
        return self._fields(
            {
                "role": "slave",
                "master_host": role[1].decode(),
                "master_port": role[2],
                "master_link_status": "up" if role[3] == b"connected" else "down",
            }
        )

    def _info_raft(self) -> str:
        if not self.clustered:
            return self._fields({"raft_role": "standalone"})
        return self._fields(self.driver.info_fields())

    def _info_cluster(self) -> str:
        return self._fields({"cluster_enabled": int(self.clustered)})

    def _info_commandstats(self) -> str:
        lines = []
        for name, e in self.commands.items():
            if e.calls:
                per_call = e.usec / e.timed if e.timed else 0.0
                lines.append(
                    f"cmdstat_{name}:calls={e.calls},usec={int(e.usec)},"
                    f"usec_per_call={per_call:.2f},rejected_calls=0,failed_calls={e.failed}\r\n"
                )
        return "".join(lines)

    def _info_keyspace(self) -> str:
        now = time.time_ns() // 1_000_000
        lines = []
        for db in self.store.dbs:
            keys = db.size(now)
            if keys:
                expires = sum(1 for w in db.expires.values() if w > now)
                lines.append(
                    f"db{db.index}:keys={keys},expires={expires},avg_ttl=0\r\n"
                )
        return "".join(lines)


def _human(n: int) -> str:
    """Redis's bytesToHuman: 1.11M."""
    value = float(n)
    for unit in ("B", "K", "M", "G", "T", "P"):
        if value < 1024 or unit == "P":
            return f"{int(value)}B" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1024
    return f"{n}B"  # pragma: no cover - the loop always returns


# What an operator can do about data on disk that start-up will not trust.
# Starting the node empty in place would be unsafe: it could vote again in a
# term it already voted in, or count towards a majority for entries it lost.
STORAGE_ADVICE = (
    "The node refuses to start rather than forget data it may have "
    "acknowledged. To recover, keep the data directory for inspection and "
    "replace the node: from a healthy member run RAFT.NODE REMOVE <name>, "
    "move the data directory aside, then start the node empty and add it back "
    "(RAFT.NODE ADD <name> <host:cluster-port> REUSE, or cluster-join); it "
    "receives the data from the leader"
)


def run(config: Config) -> int:
    plog.configure(config["loglevel"], config["logfile"])
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a declared dependency
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    try:
        server = Server(config)
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(server.serve())
    except StorageError as e:
        message = f"{e}. {STORAGE_ADVICE}"
        log.warning(f"Cannot start: {message}")
        print(f"*** FATAL *** {message}", file=sys.stderr)
        return 1
    except ConfigError as e:
        log.warning(f"Cannot start: {e}")
        print(f"*** FATAL *** {e}", file=sys.stderr)
        return 1
    except OSError as e:
        log.warning(f"Cannot start: {e}")
        print(f"*** FATAL *** {e}", file=sys.stderr)
        return 1
    return server.exit_code
