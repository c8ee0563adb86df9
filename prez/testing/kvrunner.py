"""In-process command runner for the key-value state machine's unit tests.

Runs commands through `prez.kv.execute` against a fresh in-memory store,
with arguments given as str, int or bytes, the way a test reads best.
"""

from __future__ import annotations

from typing import Any

import pytest

from prez.errors import CommandError
from prez.kv import KVStore, execute


def as_arg(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class Runner:
    """Runs commands against a fresh in-memory store."""

    def __init__(self) -> None:
        self.store = KVStore()

    @property
    def db(self) -> Any:
        return self.store.dbs[0]

    def __call__(self, *args: object, now: int = 1_000) -> Any:
        return execute(self.store, 0, [as_arg(a) for a in args], now)

    def error(self, *args: object, now: int = 1_000) -> str:
        with pytest.raises(CommandError) as info:
            self(*args, now=now)
        return info.value.message

    def items(self, key: str) -> list[bytes]:
        return self("LRANGE", key, 0, -1)  # type: ignore[no-any-return]
