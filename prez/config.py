"""prez.conf: Redis's configuration format, the known keys and their values.

A line is `key value...`; `#` starts a comment line; arguments may be quoted
as Redis's sdssplitargs allows ("double" with escapes, 'single'). The
original Prez's keys (name, port, cluster-port, cluster-config-file,
cluster-node-timeout, loglevel) are accepted unchanged. Any problem, be it
an unknown key, a bad value or a missing file, raises `ConfigError`
naming the file, the line and the key.

`CONFIG GET`/`CONFIG SET` work on the same table: `Config.get_text()` renders
a value as CONFIG GET shows it, `Config.set_text()` parses and checks one.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prez.errors import ConfigError
from prez.netaddr import AddressError, split_host_port

LOGLEVELS = ("debug", "verbose", "notice", "warning", "nothing")


class BadValue(ValueError):
    """A value that does not parse; the message says what was expected."""


def split_args(line: str) -> list[str]:
    """Split a config line into arguments as Redis's sdssplitargs does."""
    args: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t\r\n\v\f":
            i += 1
        if i >= n:
            return args
        current: list[str] = []
        if line[i] == '"':
            i += 1
            while True:
                if i >= n:
                    raise BadValue("unbalanced quotes")
                c = line[i]
                if c == "\\" and i + 1 < n:
                    nxt = line[i + 1]
                    if nxt == "x" and i + 3 < n and _is_hex(line[i + 2 : i + 4]):
                        current.append(chr(int(line[i + 2 : i + 4], 16)))
                        i += 4
                        continue
                    current.append(
                        {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}.get(
                            nxt, nxt
                        )
                    )
                    i += 2
                    continue
                if c == '"':
                    if i + 1 < n and line[i + 1] not in " \t\r\n\v\f":
                        raise BadValue("closing quote must be followed by a space")
                    i += 1
                    break
                current.append(c)
                i += 1
        elif line[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise BadValue("unbalanced quotes")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    current.append("'")
                    i += 2
                    continue
                if c == "'":
                    if i + 1 < n and line[i + 1] not in " \t\r\n\v\f":
                        raise BadValue("closing quote must be followed by a space")
                    i += 1
                    break
                current.append(c)
                i += 1
        else:
            while i < n and line[i] not in " \t\r\n\v\f":
                current.append(line[i])
                i += 1
        args.append("".join(current))


def _is_hex(s: str) -> bool:
    return len(s) == 2 and all(c in "0123456789abcdefABCDEF" for c in s)


# Value parsers: text -> value, raising BadValue with what was expected.


def parse_bool(text: str) -> bool:
    low = text.lower()
    if low == "yes":
        return True
    if low == "no":
        return False
    raise BadValue("argument must be 'yes' or 'no'")


def parse_memory(text: str) -> int:
    """Redis's memtoll: 1k=1000, 1kb=1024, 1m, 1mb, 1g, 1gb."""
    low = text.lower()
    units = {
        "k": 1000,
        "kb": 1024,
        "m": 1000**2,
        "mb": 1024**2,
        "g": 1000**3,
        "gb": 1024**3,
    }
    for suffix in ("kb", "mb", "gb", "k", "m", "g"):
        if low.endswith(suffix):
            number, mul = low[: -len(suffix)], units[suffix]
            break
    else:
        number, mul = low, 1
    if not number.isdigit():
        raise BadValue("argument must be a memory value")
    return int(number) * mul


def memory_range(lo: int, hi: int) -> Callable[[str], int]:
    """A memory value (parse_memory) between lo and hi, as Redis checks one."""

    def parse(text: str) -> int:
        value = parse_memory(text)
        if not lo <= value <= hi:
            raise BadValue(f"argument must be between {lo} and {hi} inclusive")
        return value

    return parse


LLONG_MAX = 2**63 - 1
MAXMEMORY_POLICIES = (
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
)


def parse_maxmemory_policy(text: str) -> str:
    """Redis's policy names; only noeviction is implemented (README: maxmemory)."""
    low = text.lower()
    if low not in MAXMEMORY_POLICIES:
        raise BadValue(
            "argument(s) must be one of the following: " + ", ".join(MAXMEMORY_POLICIES)
        )
    if low != "noeviction":
        # Evicting would be a replicated delete chosen by the leader; until
        # that exists, refusing is better than silently not evicting.
        raise BadValue(
            f"'{low}' is not supported: Prez does not evict keys, only "
            "noeviction (writes refused with -OOM) is implemented"
        )
    return low


# client-output-buffer-limit: class -> (hard bytes, soft bytes, soft seconds).
OutputLimits = dict[str, tuple[int, int, int]]
OUTPUT_LIMIT_CLASSES = ("normal", "replica", "pubsub")
OUTPUT_LIMIT_DEFAULT: OutputLimits = {
    "normal": (0, 0, 0),
    "replica": (256 * 1024 * 1024, 64 * 1024 * 1024, 60),
    "pubsub": (32 * 1024 * 1024, 8 * 1024 * 1024, 60),
}


def parse_output_limits(text: str) -> OutputLimits:
    """`<class> <hard> <soft> <soft seconds>`, repeated; the classes given
    replace theirs, the others keep their values (Redis's texts)."""
    args = text.split()
    if not args or len(args) % 4:
        raise BadValue("Wrong number of arguments in buffer limit configuration.")
    limits: OutputLimits = {}
    for i in range(0, len(args), 4):
        name = args[i].lower()
        if name == "slave":
            name = "replica"
        if name not in OUTPUT_LIMIT_CLASSES:
            raise BadValue(
                "Invalid client class specified in buffer limit configuration."
            )
        try:
            hard = parse_memory(args[i + 1])
            soft = parse_memory(args[i + 2])
            seconds = int(args[i + 3])
        except (BadValue, ValueError):
            seconds = -1
        if seconds < 0:
            raise BadValue(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        limits[name] = (hard, soft, seconds)
    return limits


def _render_output_limits(value: Any) -> str:
    return " ".join(
        f"{'slave' if name == 'replica' else name} {hard} {soft} {seconds}"
        for name, (hard, soft, seconds) in value.items()
    )


def int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise BadValue("argument couldn't be parsed into an integer")
        if not lo <= value <= hi:
            raise BadValue(f"argument must be between {lo} and {hi} inclusive")
        return value

    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.lower()
        if low not in choices:
            raise BadValue(f"argument must be one of: {', '.join(choices)}")
        return low

    return parse


def any_text(text: str) -> str:
    return text


def host_port(text: str) -> str:
    try:
        split_host_port(text)
    except AddressError:
        raise BadValue("argument must be host:port")
    return text


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Any
    parse: Callable[[str], Any]
    mutable: bool = False  # CONFIG SET allowed at run time
    multi: bool = False  # takes several arguments (bind)
    render: Callable[[Any], str] | None = None
    # The arguments are parsed together, and the result (a dict) updates
    # the current value rather than replacing it (client-output-buffer-limit).
    merge: bool = False


def _render_bool(value: Any) -> str:
    return "yes" if value else "no"


PARAMS: dict[str, Param] = {
    p.name: p
    for p in [
        Param("name", "", any_text),
        Param("bind", ["127.0.0.1"], any_text, multi=True, render=" ".join),
        Param("port", 9000, int_range(0, 65535)),
        Param("cluster-port", 0, int_range(0, 65535)),  # 0: port + 1000
        Param("cluster-config-file", "nodes.conf", any_text),
        Param("cluster-node-timeout", 5000, int_range(10, 3_600_000), mutable=False),
        Param(
            "cluster-election-timeout", 0, int_range(0, 3_600_000)
        ),  # the original's alias
        Param("cluster-heartbeat-interval", 0, int_range(0, 3_600_000)),
        Param("cluster-join", "", host_port),
        Param(
            "follower-writes",
            "forward",
            one_of("forward", "ask", "moved"),
            mutable=True,
        ),
        Param(
            "read-mode",
            "linearizable",
            one_of("linearizable", "lease", "stale"),
            # Fixed at start-up: the Raft core confirms reads in one mode.
            # A connection may still choose stale reads (READMODE stale).
            mutable=False,
        ),
        Param("raft-log-fsync", True, parse_bool, render=_render_bool),
        Param("raft-log-max-size", 64 * 1024 * 1024, parse_memory, mutable=True),
        Param("raft-snapshot-entries", 0, int_range(0, 2**62), mutable=True),
        Param("loglevel", "notice", one_of(*LOGLEVELS), mutable=True),
        Param("logfile", "", any_text),
        Param("dir", ".", any_text),
        Param("maxclients", 10000, int_range(1, 2**32 - 1), mutable=True),
        Param("requirepass", "", any_text, mutable=True),
        Param("databases", 16, int_range(1, 1_000_000)),
        Param(
            "proto-max-bulk-len",
            512 * 1024 * 1024,
            memory_range(1024 * 1024, LLONG_MAX),
            mutable=True,
        ),
        Param(
            "client-query-buffer-limit",
            1024 * 1024 * 1024,
            memory_range(1024 * 1024, LLONG_MAX),
            mutable=True,
        ),
        Param(
            "client-output-buffer-limit",
            OUTPUT_LIMIT_DEFAULT,
            parse_output_limits,
            mutable=True,
            multi=True,
            merge=True,
            render=_render_output_limits,
        ),
        Param("maxmemory", 0, memory_range(0, LLONG_MAX), mutable=True),
        Param("maxmemory-policy", "noeviction", parse_maxmemory_policy, mutable=True),
        Param("timeout", 0, int_range(0, 2**31 - 1), mutable=True),
        Param("hz", 10, int_range(1, 500), mutable=True),
        Param("pidfile", "", any_text),
        Param("daemonize", False, parse_bool, render=_render_bool),
        # Read by redis-benchmark and redis-cli at start-up; Prez's durability
        # is the Raft log, so these only report that Redis persistence is off.
        Param("save", "", any_text),
        Param("appendonly", False, parse_bool, render=_render_bool),
    ]
}


class Config:
    """The effective configuration of one node."""

    def __init__(self, path: str = "") -> None:
        self.path = path
        self.values: dict[str, Any] = {
            name: _copy(p.default) for name, p in PARAMS.items()
        }

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @classmethod
    def load(cls, path: str) -> Config:
        config = cls(os.path.abspath(path))
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise ConfigError(path, None, None, f"cannot read the file: {e.strerror}")
        except UnicodeDecodeError:
            raise ConfigError(path, None, None, "the file is not UTF-8 text")
        for number, line in enumerate(lines, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                args = split_args(stripped)
            except BadValue as e:
                raise ConfigError(path, number, None, str(e))
            key = args[0].lower()
            param = PARAMS.get(key)
            if param is None:
                raise ConfigError(path, number, args[0], "unknown configuration key")
            if len(args) < 2 and key not in ("save", "requirepass", "logfile"):
                raise ConfigError(path, number, key, "missing value")
            if len(args) > 2 and not param.multi:
                raise ConfigError(path, number, key, "too many arguments")
            value: Any
            try:
                if param.merge:
                    value = {**config.values[key], **param.parse(" ".join(args[1:]))}
                elif param.multi:
                    value = [param.parse(a) for a in args[1:]]
                else:
                    value = param.parse(args[1] if len(args) > 1 else "")
            except BadValue as e:
                raise ConfigError(
                    path, number, key, f"bad value '{' '.join(args[1:])}': {e}"
                )
            config.values[key] = value
        config.finish()
        return config

    def finish(self) -> None:
        """Fill in values derived from others."""
        if not self.values["cluster-port"]:
            self.values["cluster-port"] = self.values["port"] + 1000
        if not self.values["name"]:
            self.values["name"] = f"node-{self.values['port']}"
        if (
            self.values["cluster-election-timeout"]
            and self.values["cluster-node-timeout"] == 5000
        ):
            self.values["cluster-node-timeout"] = self.values[
                "cluster-election-timeout"
            ]

    # CONFIG GET / SET

    def get_text(self, name: str) -> str:
        param = PARAMS[name]
        value = self.values[name]
        if param.render is not None:
            return param.render(value)
        return str(value)

    def matching(self, pattern: str) -> list[str]:
        pattern = pattern.lower()
        if pattern in PARAMS:
            return [pattern]
        return [name for name in PARAMS if fnmatch.fnmatchcase(name, pattern)]

    def set_text(self, name: str, text: str) -> None:
        """CONFIG SET one value; raises KeyError (unknown), PermissionError
        (immutable) or BadValue."""
        param = PARAMS[name.lower()]
        if not param.mutable:
            raise PermissionError(name)
        value = param.parse(text)
        if param.merge:
            value = {**self.values[param.name], **value}
        self.values[param.name] = value


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def read_nodes_file(path: str) -> list[tuple[str, str, int]]:
    """nodes.conf: one `node-name host:cluster-port` per line -> [(name, host, port)]."""
    members: list[tuple[str, str, int]] = []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(path, None, None, f"cannot read the file: {e.strerror}")
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if len(parts) != 2:
            raise ConfigError(
                path, number, parts[0], "expected 'node-name host:cluster-port'"
            )
        name, addr = parts
        try:
            host, port = split_host_port(addr)
        except AddressError:
            raise ConfigError(path, number, name, "argument must be host:port")
        if name in seen:
            raise ConfigError(path, number, name, "node name listed twice")
        seen.add(name)
        members.append((name, host, port))
    if not members:
        raise ConfigError(path, None, None, "no members listed")
    return members
