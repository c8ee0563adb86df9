"""The dispatch table: command name as sent -> what to run, with its stats.

Built once from the declarations (`prez.kv.COMMANDS` for data commands,
`prez.server.commands.SERVER_COMMANDS` for connection and server commands),
keyed by the exact bytes clients send in lower and upper case, so the hot
path needs one dict lookup and no case folding for well-behaved clients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prez.kv.command import CommandSpec

READ, WRITE, SERVER = 0, 1, 2


class Deferred:
    """A reply that is not known yet: a write waiting to be committed.

    Lighter than an asyncio.Future: the driver resolves a whole applied batch
    by setting `value` and then drains each waiting connection once, instead
    of scheduling one callback and one socket write per reply.
    """

    __slots__ = ("value", "done", "client")

    def __init__(self, client: Any) -> None:
        self.value: Any = None
        self.done = False
        self.client = client


class CommandEntry:
    __slots__ = ("spec", "kind", "handler", "calls", "failed", "usec", "timed", "name")

    def __init__(
        self, spec: CommandSpec, kind: int, handler: Callable[..., Any]
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.kind = kind
        self.handler = handler
        self.calls = 0
        self.failed = 0
        self.usec = 0.0
        self.timed = 0

    def reset_stats(self) -> None:
        self.calls = 0
        self.failed = 0
        self.usec = 0.0
        self.timed = 0


def build_table(
    data_commands: dict[str, CommandSpec],
    server_commands: dict[str, CommandSpec],
    server_handlers: dict[str, Callable[..., Any]],
) -> tuple[dict[bytes, CommandEntry], dict[str, CommandEntry]]:
    by_name: dict[str, CommandEntry] = {}
    for name, spec in data_commands.items():
        assert spec.handler is not None, name
        by_name[name] = CommandEntry(
            spec, WRITE if spec.is_write else READ, spec.handler
        )
    for name, spec in server_commands.items():
        if name in by_name:
            raise ValueError(f"command {name!r} declared twice")
        by_name[name] = CommandEntry(spec, SERVER, server_handlers[name])
    lookup: dict[bytes, CommandEntry] = {}
    for name, entry in by_name.items():
        lookup[name.encode()] = entry
        lookup[name.upper().encode()] = entry
    return lookup, by_name
