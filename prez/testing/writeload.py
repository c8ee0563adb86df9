"""A background write load for integration tests: redis-py clients writing
unique keys to a cluster's live members, recording every acknowledged write
so that a test can check afterwards that none of them was lost.

Every request goes to 127.0.0.1 and every client loop is bounded in time.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from prez.testing.cluster import Cluster
from prez.testing.procs import HOST, ServerProcess, wait_until


class WriteLoad:
    """`clients` threads, each writing keys <prefix>w<worker>:<n> = v<n> to a random
    live member: of `nodes` when given, else of `cluster.nodes` as it is at
    each write (so members that come and go are followed)."""

    def __init__(
        self,
        cluster: Cluster,
        clients: int = 3,
        nodes: list[ServerProcess] | None = None,
        seconds: float = 120,
        prefix: str = "",
    ) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.nodes = nodes
        self.seconds = seconds
        self.acked: dict[bytes, bytes] = {}
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True)
            for i in range(clients)
        ]

    def run(self, worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        deadline = time.monotonic() + self.seconds
        conns: dict[int, redis.Redis] = {}
        while not self.stop.is_set() and time.monotonic() < deadline:
            members = self.nodes if self.nodes is not None else self.cluster.nodes
            live = [x for x in list(members) if x.alive()]
            if not live:
                time.sleep(0.01)
                continue
            node = rng.choice(live)
            conn = conns.get(node.port)
            if conn is None:
                # No retries: a write to a dead or paused node fails after
                # one timeout and the worker moves on to another member.
                conn = conns[node.port] = redis.Redis(
                    host=HOST,
                    port=node.port,
                    socket_timeout=2,
                    retry=Retry(NoBackoff(), 0),
                )
            key = f"{self.prefix}w{worker}:{n}".encode()
            value = f"v{n}".encode()
            n += 1
            try:
                if conn.set(key, value):
                    with self.lock:
                        self.acked[key] = value
            except redis.RedisError:
                # Not acknowledged: it may or may not have been applied,
                # and the checks only ever look for acknowledged writes.
                with self.lock:
                    self.errors += 1
                conns.pop(node.port, None)
                time.sleep(0.01)
        for conn in conns.values():
            conn.close()

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def wait_more(self, more: int, what: str, timeout: float = 30) -> None:
        """Wait until `more` further writes were acknowledged."""
        target = self.count() + more
        wait_until(lambda: self.count() >= target, timeout, what=what)

    @contextmanager
    def running(self) -> Iterator[WriteLoad]:
        for t in self.threads:
            t.start()
        try:
            yield self
        finally:
            self.stop.set()
            for t in self.threads:
                t.join(30)
