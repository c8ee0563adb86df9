"""Real prez-server processes for tests and benchmarks, on 127.0.0.1 only.

`ServerProcess` writes a prez.conf into its own directory, picks free
ports, starts `python -m prez prez.conf`, waits (with a deadline) until the
node answers PING, and stops it with SIGTERM (SIGKILL if it does not exit).
On failure its log is available for the test's report.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prez

HOST = "127.0.0.1"
# The checkout (or site-packages) this prez was imported from: child
# processes import the same code whatever their working directory.
PREZ_ROOT = str(Path(prez.__file__).resolve().parent.parent)


class Fatal(Exception):
    """Raised by a wait_until condition that can never become true."""


def _outside_ephemeral_range() -> tuple[int, int]:
    """Ports the kernel never hands out as ephemeral (outgoing) ports."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    if low > 11000:
        return 10000, low - 1
    if high < 64000:
        return high + 1, 65535
    return 10000, 32767  # no room outside: the best that can be done


# Test servers listen outside the kernel's ephemeral range, so that no
# outgoing connection on the machine (a benchmark's clients, a node dialing
# a peer that is not up yet) can be given the port between the probe here
# and the server's bind.
PORT_LOW, PORT_HIGH = _outside_ephemeral_range()
_port_rng = random.Random()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago.

    All are held open together while probing, so they differ from each
    other, and all lie below the ephemeral range (see PORT_LOW).
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(100 * count):
            if len(sockets) == count:
                break
            s = socket.socket()
            try:
                s.bind((HOST, _port_rng.randint(PORT_LOW, PORT_HIGH)))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        else:
            if len(sockets) < count:
                raise RuntimeError(f"no {count} free ports in {PORT_LOW}-{PORT_HIGH}")
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    """A port that was free a moment ago (below the ephemeral range)."""
    return free_ports(1)[0]


def wait_until(
    predicate: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll predicate until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Fatal:
            raise
        except Exception as e:  # noqa: BLE001 - the condition is retried until the deadline
            last_error = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what or predicate}: {last_error!r}"
    )


# Set by `make test-quick`: the quick suite starts no server process, and a
# test that would start one without the `integration` marker fails, naming
# the marker it lacks.
NO_SERVERS_ENV = "PREZ_NO_SERVERS"


def refuse_servers_in_quick_mode(what: str) -> None:
    if os.environ.get(NO_SERVERS_ENV) == "1":
        raise RuntimeError(
            f"{what}: a test without the `integration` marker started a server "
            f"process ({NO_SERVERS_ENV}=1, as in `make test-quick`)"
        )


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child prez process: imports this same prez."""
    env = dict(os.environ, **(extra or {}))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = PREZ_ROOT + (os.pathsep + path if path else "")
    return env


def ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            # NOAUTH also proves the node is up and serving.
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class ServerProcess:
    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        config: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config: dict[str, str] = {
            "port": str(self.port),
            "bind": HOST,
            "loglevel": "verbose",
        }
        self.config.update(config or {})
        self.env = child_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "prez.log"
        # In a process group of its own, `kill()` also ends what the server
        # forked (a snapshot child outlives a SIGKILLed parent otherwise).
        self.own_group = False

    @property
    def conf_path(self) -> Path:
        return self.dir / "prez.conf"

    def write_config(self) -> None:
        lines = [f"{k} {v}" for k, v in self.config.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, wait: bool = True, timeout: float = 20.0) -> ServerProcess:
        refuse_servers_in_quick_mode("prez-server")
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prez", str(self.conf_path)],
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=self.own_group,
            )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.kill()  # never leave a process behind a failed start
                raise
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"prez-server exited with {self.proc.returncode}:\n{self.log()}"
                )
            return ping(self.port)

        wait_until(ready, timeout, what=f"prez-server on port {self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process must hear it
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL, and with `own_group` every process of its group; returns
        once all of them are gone (a zombie counts as gone: it holds no files)."""
        if self.proc is None:
            return
        if self.own_group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            wait_until(
                lambda: not group_members(self.proc.pid) if self.proc else True,
                timeout,
                what=f"process group {self.proc.pid} gone",
            )
        elif self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parens.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def free_port_block(count: int, low: int = PORT_LOW, high: int = PORT_HIGH) -> int:
    """The first of `count` consecutive ports that are free now."""
    rng = _port_rng
    for _ in range(200):
        base = rng.randrange(low, high - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind((HOST, port))
                sockets.append(s)
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError(f"no block of {count} free ports found")
