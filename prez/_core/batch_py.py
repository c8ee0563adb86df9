"""Plain-Python twin of `prez._core.batch`: the test oracle and baseline.

Same behaviour as the compiled loop: run the leading local data commands of
a parsed batch through their handlers, stop at the first one that needs the
caller's general path, and return its index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prez.errors import CommandError

# With a clock, one call in this many (per command) is timed.
TIMING_SAMPLE = 16


class CommandSlot:
    """The per-command fields the loop reads and counts (base of the dispatch entry)."""

    __slots__ = ("handler", "kind", "arity", "calls", "failed", "timed", "nanos")

    def __init__(self, handler: Callable[..., Any], kind: int, arity: int) -> None:
        self.handler = handler
        self.kind = kind
        self.arity = arity
        self.calls = self.failed = self.timed = self.nanos = 0


def run_local(
    commands: list[list[bytes]],
    start: int,
    lookup: dict[bytes, Any],
    db: Any,
    now: int,
    append: Callable[[Any], None],
    local_kinds: int,
    clock: Callable[[], int] | None = None,
) -> int:
    """Run commands[start:] while each is a local data command; return where it stopped."""
    if start < 0:
        raise ValueError("start must not be negative")
    i = start
    count = len(commands)
    while i < count:
        args = commands[i]
        argc = len(args)
        if argc == 0:
            return i
        entry = lookup.get(args[0])
        if not isinstance(entry, CommandSlot):
            return i
        if not (local_kinds >> entry.kind) & 1:
            return i
        arity = entry.arity
        if (argc != arity) if arity > 0 else (argc < -arity):
            return i
        timing = clock is not None and entry.calls % TIMING_SAMPLE == 0
        entry.calls += 1
        started = clock() if timing and clock is not None else 0
        try:
            reply = entry.handler(db, args, now)
        except CommandError as e:
            entry.failed += 1
            reply = e.with_traceback(None)  # no frame cycle (see prez/server/app.py)
        if timing and clock is not None:
            entry.nanos += clock() - started
            entry.timed += 1
        append(reply)
        i += 1
    return i
