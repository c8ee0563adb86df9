"""The command table: one declaration per command, the single source of truth.

Each command is declared once, with Redis's arity convention (positive: exact
count including the name; negative: at least that many), its flags (`write`,
`readonly`, `fast`, `admin`, ...), its key positions and its handler.
Dispatch, argument-count checks and the `COMMAND` reply are all derived from
these declarations.

Handlers of data commands have the signature `handler(db, args, now)`:
`db` is the selected `Keyspace`, `args` the full argument list (args[0] is
the command name as sent), `now` the time in milliseconds the command
executes at (for writes, stamped by the leader into the log entry, so every
replica computes the same result). They return a reply value (see
`prez._core.resp` for the mapping of Python values to RESP) or raise
`CommandError`.

Commands that belong to the connection or the server (PING, CLIENT, CONFIG,
INFO, ...) are declared with the same decorator in `prez.server.commands`
with `handler=None` here; the server supplies their behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[..., Any]


@dataclass(slots=True, eq=False)
class CommandSpec:
    name: str  # lower case, e.g. "set"; subcommands are handled by the parent
    arity: int
    flags: frozenset[str]
    first_key: int
    last_key: int
    key_step: int
    handler: Handler | None
    group: str
    summary: str = ""
    since: str = "1.0.0"
    is_write: bool = field(init=False)
    acl_categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.is_write = "write" in self.flags

    def arity_ok(self, argc: int) -> bool:
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity

    def keys(self, args: list[bytes]) -> list[bytes]:
        """The key arguments of a call, from the declared positions."""
        if self.first_key <= 0:
            return []
        last = self.last_key if self.last_key >= 0 else len(args) + self.last_key
        return args[self.first_key : last + 1 : self.key_step]


COMMANDS: dict[str, CommandSpec] = {}


def command(
    name: str,
    arity: int,
    flags: str,
    first_key: int = 0,
    last_key: int = 0,
    key_step: int = 0,
    *,
    group: str,
    summary: str = "",
    since: str = "1.0.0",
    table: dict[str, CommandSpec] | None = None,
) -> Callable[[Handler], Handler]:
    """Declare a command; decorates its handler and registers it in `table`."""

    def register(handler: Handler) -> Handler:
        declare(
            name,
            arity,
            flags,
            first_key,
            last_key,
            key_step,
            group=group,
            summary=summary,
            since=since,
            table=COMMANDS if table is None else table,
            handler=handler,
        )
        return handler

    return register


def declare(
    name: str,
    arity: int,
    flags: str,
    first_key: int = 0,
    last_key: int = 0,
    key_step: int = 0,
    *,
    group: str,
    summary: str = "",
    since: str = "1.0.0",
    table: dict[str, CommandSpec],
    handler: Handler | None = None,
) -> CommandSpec:
    """Declare a command in `table`; `handler` None when its behaviour lives
    outside kv (connection and server commands)."""
    if name in table:
        raise ValueError(f"command {name!r} declared twice")
    spec = CommandSpec(
        name=name,
        arity=arity,
        flags=frozenset(flags.split()),
        first_key=first_key,
        last_key=last_key,
        key_step=key_step,
        handler=handler,
        group=group,
        summary=summary,
        since=since,
    )
    table[name] = spec
    return spec
