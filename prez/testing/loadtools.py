"""Helpers for benchmarks that drive real servers with redis-benchmark.

Everything targets 127.0.0.1 and every run is bounded (a fixed request
count and a timeout). A reference redis-server is started on a free port
for same-run ratios, since absolute numbers on a shared machine mean little.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prez.testing.procs import (
    HOST,
    free_port,
    ping,
    refuse_servers_in_quick_mode,
    wait_until,
)


def redis_benchmark(
    port: int,
    tests: str,
    requests: int,
    clients: int = 50,
    pipeline: int = 1,
    keyspace: int = 100_000,
    timeout: float = 600,
) -> dict[str, float]:
    """Run redis-benchmark; return requests per second by test name."""
    result = subprocess.run(
        [
            "redis-benchmark",
            "-h",
            HOST,
            "-p",
            str(port),
            "-t",
            tests,
            "-n",
            str(requests),
            "-r",
            str(keyspace),
            "-c",
            str(clients),
            "-P",
            str(pipeline),
            "--csv",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    rates: dict[str, float] = {}
    for row in csv.reader(io.StringIO(result.stdout)):
        if len(row) >= 2 and row[0] != "test":
            rates[row[0]] = float(row[1])
    if not rates:
        raise RuntimeError(
            f"redis-benchmark printed no results:\n{result.stdout}\n{result.stderr}"
        )
    return rates


@contextmanager
def redis_server(directory: Path, *extra: str) -> Iterator[int]:
    """A reference redis-server on a free loopback port."""
    refuse_servers_in_quick_mode("redis-server")
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError(
            "redis-server is not installed (Debian package redis-server)"
        )
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--dir",
            str(directory),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: ping(port), 20, what="redis-server")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
