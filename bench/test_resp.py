"""Benchmarks of the RESP core against its twin and hiredis.

Groups: "resp-parse" (100,000 pipelined SET requests fed in 16 KiB chunks),
"resp-parse-one-read" (the same requests as one 4 MB feed), "resp-reply"
(100,000 bulk replies appended one by one) and "resp-reply-array" (one
array reply of 100,000 bulks). Each group also has a ratio test that times
every contender with its own best-of loop, so the ratios are printed even
under --benchmark-disable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType

import hiredis
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from prez._core import resp as compiled
from prez._core import resp_py as twin

COMMANDS = 100_000
CHUNK = 16 * 1024
STREAM = b"".join(
    b"*3\r\n$3\r\nSET\r\n$10\r\nkey:%06d\r\n$16\r\n%s\r\n" % (i, b"%016d" % i)
    for i in range(COMMANDS)
)
CHUNKS = [STREAM[i : i + CHUNK] for i in range(0, len(STREAM), CHUNK)]
ONE_READ = [STREAM]
REPLIES = [b"value:%010d" % i for i in range(COMMANDS)]


def parse_with(module: ModuleType, chunks: list[bytes]) -> int:
    parser = module.RequestParser()
    parsed = 0
    for chunk in chunks:
        parsed += len(parser.feed(chunk))
    return parsed


def parse_keeping(module: ModuleType, chunks: list[bytes]) -> int:
    """Like parse_with, but every command stays alive, as one big feed forces."""
    parser = module.RequestParser()
    commands: list[list[bytes]] = []
    for chunk in chunks:
        commands += parser.feed(chunk)
    return len(commands)


def parse_with_hiredis(chunks: list[bytes]) -> int:
    reader = hiredis.Reader()
    parsed = 0
    for chunk in chunks:
        reader.feed(chunk)
        while reader.gets() is not False:
            parsed += 1
    return parsed


def append_replies(module: ModuleType) -> int:
    buffer = module.ReplyBuffer()
    append = buffer.append
    for reply in REPLIES:
        append(reply)
    return len(buffer.take())


def encode_array(module: ModuleType) -> int:
    return len(module.encode(REPLIES))


def best_seconds(run: Callable[[], int], expected: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
        assert result == expected
    return best


def report_ratios(
    ratio_report: list[str], group: str, timings: dict[str, float], count: int
) -> None:
    rates = {name: count / seconds for name, seconds in timings.items()}
    base = rates["compiled"]
    parts = [f"{name} {rate / 1e6:.2f}M/s" for name, rate in rates.items()]
    ratios = [
        f"{base / rate:.2f}x {name}"
        for name, rate in rates.items()
        if name != "compiled"
    ]
    ratio_report.append(
        f"{group}: compiled = {', '.join(ratios)}  ({'; '.join(parts)})"
    )


# --- resp-parse ------------------------------------------------------------------


@pytest.mark.benchmark(group="resp-parse")
def test_parse_chunks_compiled(benchmark: BenchmarkFixture) -> None:
    assert benchmark(parse_with, compiled, CHUNKS) == COMMANDS


@pytest.mark.benchmark(group="resp-parse")
def test_parse_chunks_twin(benchmark: BenchmarkFixture) -> None:
    result = benchmark(parse_with, twin, CHUNKS)
    assert result == COMMANDS


@pytest.mark.benchmark(group="resp-parse")
def test_parse_chunks_hiredis(benchmark: BenchmarkFixture) -> None:
    assert benchmark(parse_with_hiredis, CHUNKS) == COMMANDS


@pytest.mark.benchmark(group="resp-parse")
def test_parse_chunks_ratios(ratio_report: list[str]) -> None:
    timings = {
        "compiled": best_seconds(lambda: parse_with(compiled, CHUNKS), COMMANDS, 7),
        "hiredis": best_seconds(lambda: parse_with_hiredis(CHUNKS), COMMANDS, 7),
        "twin": best_seconds(lambda: parse_with(twin, CHUNKS), COMMANDS, 2),
    }
    report_ratios(ratio_report, "resp-parse (16 KiB chunks)", timings, COMMANDS)
    # A loose floor only: the real targets are read from the printed ratios,
    # since a shared machine makes tight timing assertions flaky.
    assert timings["compiled"] * 3 < timings["twin"]


# --- resp-parse-one-read ---------------------------------------------------------------


@pytest.mark.benchmark(group="resp-parse-one-read")
def test_parse_one_read_compiled(benchmark: BenchmarkFixture) -> None:
    assert benchmark(parse_with, compiled, ONE_READ) == COMMANDS


@pytest.mark.benchmark(group="resp-parse-one-read")
def test_parse_one_read_twin(benchmark: BenchmarkFixture) -> None:
    result = benchmark(parse_with, twin, ONE_READ)
    assert result == COMMANDS


@pytest.mark.benchmark(group="resp-parse-one-read")
def test_parse_one_read_hiredis(benchmark: BenchmarkFixture) -> None:
    result = benchmark(parse_with_hiredis, ONE_READ)
    assert result == COMMANDS


@pytest.mark.benchmark(group="resp-parse-one-read")
def test_parse_one_read_ratios(ratio_report: list[str]) -> None:
    timings = {
        "compiled": best_seconds(lambda: parse_with(compiled, ONE_READ), COMMANDS, 7),
        "hiredis": best_seconds(lambda: parse_with_hiredis(ONE_READ), COMMANDS, 2),
        "twin": best_seconds(lambda: parse_with(twin, ONE_READ), COMMANDS, 2),
        # The fair per-command reference: chunks whose commands are all kept
        # alive too (a 4 MB feed returns 100,000 live commands at once).
        "compiled in chunks, commands kept": best_seconds(
            lambda: parse_keeping(compiled, CHUNKS), COMMANDS, 7
        ),
    }
    report_ratios(
        ratio_report, "resp-parse-one-read (one 4 MB feed)", timings, COMMANDS
    )
    assert timings["compiled"] * 3 < timings["twin"]


# --- resp-reply ------------------------------------------------------------------------


@pytest.mark.benchmark(group="resp-reply")
def test_reply_append_compiled(benchmark: BenchmarkFixture) -> None:
    assert benchmark(append_replies, compiled) > 0


@pytest.mark.benchmark(group="resp-reply")
def test_reply_append_twin(benchmark: BenchmarkFixture) -> None:
    assert benchmark(append_replies, twin) > 0


@pytest.mark.benchmark(group="resp-reply")
def test_reply_append_ratios(ratio_report: list[str]) -> None:
    size = len(twin.encode(REPLIES)) - len(b"*100000\r\n")
    timings = {
        "compiled": best_seconds(lambda: append_replies(compiled), size, 9),
        "twin": best_seconds(lambda: append_replies(twin), size, 3),
    }
    report_ratios(ratio_report, "resp-reply (100,000 appends)", timings, COMMANDS)
    assert timings["compiled"] * 3 < timings["twin"]


@pytest.mark.benchmark(group="resp-reply-array")
def test_reply_array_compiled(benchmark: BenchmarkFixture) -> None:
    assert benchmark(encode_array, compiled) > 0


@pytest.mark.benchmark(group="resp-reply-array")
def test_reply_array_twin(benchmark: BenchmarkFixture) -> None:
    assert benchmark(encode_array, twin) > 0


@pytest.mark.benchmark(group="resp-reply-array")
def test_reply_array_ratios(ratio_report: list[str]) -> None:
    size = len(twin.encode(REPLIES))
    timings = {
        "compiled": best_seconds(lambda: encode_array(compiled), size, 9),
        "twin": best_seconds(lambda: encode_array(twin), size, 3),
    }
    report_ratios(
        ratio_report, "resp-reply-array (one 100,000-bulk array)", timings, COMMANDS
    )
    assert timings["compiled"] * 3 < timings["twin"]
