"""The dispatch table: command name as sent -> what to run, with its stats.

Built once from the declarations (`prez.kv.COMMANDS` for data commands,
`prez.server.commands.SERVER_COMMANDS` for connection and server commands),
keyed by the exact bytes clients send in lower and upper case, so the hot
path needs one dict lookup and no case folding for well-behaved clients.

An entry's base, `CommandSlot`, comes from the compiled command loop
(`prez._core.batch`), so that loop reads the handler, kind, arity and
counters as C fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prez._core import select
from prez.kv.command import CommandSpec

if TYPE_CHECKING:
    from prez._core import batch as _batch
else:
    _batch = select("batch")

CommandSlot = _batch.CommandSlot

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


class CommandEntry(CommandSlot):
    """One command: its declaration, how to run it, and its INFO commandstats.

    `handler`, `kind`, `arity` (copied from the spec, so the hot path reads
    one field), and the counters `calls`, `failed`, `timed` and `nanos` live
    in the compiled base, where the command loop updates them.
    """

    __slots__ = ("spec", "name", "denyoom")

    def __init__(
        self, spec: CommandSpec, kind: int, handler: Callable[..., Any]
    ) -> None:
        super().__init__(handler, kind, spec.arity)
        self.spec = spec
        self.name = spec.name
        # Refused while used memory is over maxmemory (Redis's flag).
        self.denyoom = "denyoom" in spec.flags

    @property
    def usec(self) -> float:
        """Microseconds spent in the timed calls (INFO commandstats)."""
        return self.nanos / 1000

    def reset_stats(self) -> None:
        self.calls = self.failed = self.timed = self.nanos = 0


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
