"""Wire codec speed: encode + decode of an AppendEntries with 64 x 100-byte entries.

Compiled vs the struct-based twin, both in one table (group "wire-append64"),
plus a test that measures both in the same run and prints the speed-up
(target: >= 5x). Under `--benchmark-disable` everything runs once, small.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import pytest

from prez._core import wire as compiled_wire
from prez._core import wire_py
from prez.raft.types import Entry, Message, MessageType

IMPLS = [pytest.param(compiled_wire, id="compiled"), pytest.param(wire_py, id="twin")]


def append_64() -> Message:
    return Message(
        MessageType.APPEND,
        term=12,
        src="node-1",
        dst="node-2",
        index=1000,
        log_term=12,
        commit=998,
        entries=[Entry(1001 + k, 12, 0, bytes([k]) * 100) for k in range(64)],
    )


def round_trip(impl: ModuleType, msg: Message) -> Message:
    decoded: Message = impl.decode_message(impl.encode_message(msg))
    return decoded


def best_seconds_per_call(
    func: Callable[[], object], calls: int, repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            func()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


@pytest.mark.benchmark(group="wire-append64")
@pytest.mark.parametrize("impl", IMPLS)
def test_append64_round_trip(benchmark, impl: ModuleType) -> None:  # type: ignore[no-untyped-def]
    msg = append_64()
    assert benchmark(round_trip, impl, msg) == msg


@pytest.mark.benchmark(group="wire-ratio")
def test_append64_compiled_vs_twin_ratio(benchmark, capsys) -> None:  # type: ignore[no-untyped-def]
    msg = append_64()
    calls, repeats = (200, 3) if benchmark.disabled else (2000, 7)
    compiled = best_seconds_per_call(
        lambda: round_trip(compiled_wire, msg), calls, repeats
    )
    twin = best_seconds_per_call(lambda: round_trip(wire_py, msg), calls, repeats)
    ratio = twin / compiled
    benchmark.extra_info.update(
        compiled_us=compiled * 1e6, twin_us=twin * 1e6, ratio=ratio
    )
    with capsys.disabled():
        print(
            f"\nwire AppendEntries 64x100B encode+decode: compiled {compiled * 1e6:.2f} us, "
            f"twin {twin * 1e6:.2f} us, ratio {ratio:.1f}x (target >= 5x)"
        )
    assert benchmark(round_trip, compiled_wire, msg) == msg
