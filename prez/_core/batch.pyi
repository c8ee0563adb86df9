"""Type stub of the compiled command loop (prez/_core/batch.pyx); twin: batch_py.py."""

from collections.abc import Callable
from typing import Any

TIMING_SAMPLE: int

class CommandSlot:
    handler: Callable[..., Any]
    kind: int
    arity: int
    calls: int
    failed: int
    timed: int
    nanos: int
    def __init__(self, handler: Callable[..., Any], kind: int, arity: int) -> None: ...

def run_local(
    commands: list[list[bytes]],
    start: int,
    lookup: dict[bytes, Any],
    db: Any,
    now: int,
    append: Callable[[Any], None],
    local_kinds: int,
    clock: Callable[[], int] | None = ...,
) -> int: ...
