"""Tests of the register linearizability checker (prez.testing.linearizability).

Hand-written histories pin down each rule (real-time order, unknown and
failed outcomes, cas); histories generated from a correct simulated register
must always pass and must fail once a stale read is injected; hypothesis
compares the checker with a brute-force enumeration of orders on small
histories; a 3,000-operation history shows the search scales.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prez.testing.linearizability import (
    CheckResult,
    History,
    Operation,
    check_history,
)

KEY = b"k"


def write(
    client: int,
    value: Any,
    invoke: float,
    complete: float | None,
    ok: bool | None = True,
) -> Operation:
    return Operation(client, KEY, "write", value, invoke, complete, ok)


def read(client: int, value: Any, invoke: float, complete: float) -> Operation:
    return Operation(client, KEY, "read", value, invoke, complete, True)


def cas(
    client: int,
    expected: Any,
    new: Any,
    invoke: float,
    complete: float | None,
    swapped: bool | None,
) -> Operation:
    ok = None if complete is None else True
    return Operation(client, KEY, "cas", (expected, new), invoke, complete, ok, swapped)


def assert_valid_linearization(result: CheckResult, ops: list[Operation]) -> None:
    """The witness order the checker returns must itself be a legal
    sequential register history that respects real time and holds every
    completed operation: checked here independently of the search."""
    for key, key_result in result.keys.items():
        order = key_result.linearization
        assert order is not None
        completed = [op for op in ops if op.key == key and op.outcome_known]
        assert sorted(map(id, completed)) == sorted(
            id(op) for op in order if op.outcome_known
        )
        assert all(
            not op.failed and op.kind != "read" or op.outcome_known for op in order
        )
        # Real time: nothing placed later may have completed before an
        # earlier-placed operation was invoked.
        earliest_later_complete = float("inf")
        for op in reversed(order):
            assert op.invoke <= earliest_later_complete, op
            if op.complete is not None and op.outcome_known:
                earliest_later_complete = min(earliest_later_complete, op.complete)
        state: Any = None
        for op in order:
            accepted, state = apply(state, op)
            assert accepted, op


def apply(state: Any, op: Operation) -> tuple[bool, Any]:
    """Sequential register semantics, written out for the oracle."""
    if op.kind == "write":
        return True, op.value
    if op.kind == "read":
        return op.value == state, state
    expected, new = op.value
    if not op.outcome_known:
        return True, new if state == expected else state
    if op.swapped:
        return state == expected, new
    return state != expected, state


def brute_force_linearizable(ops: list[Operation], initial: Any = None) -> bool:
    """Try every order: completed operations must all be placed, unknown
    writes and cas may be placed or left out, failed operations and unknown
    reads are ignored; an operation may go next only if no unplaced
    completed operation finished before it was invoked. Memoized on (placed
    set, value) only, with none of the checker's shortcuts."""
    completed = [op for op in ops if op.outcome_known]
    candidates = completed + [
        op for op in ops if not op.outcome_known and not op.failed and op.kind != "read"
    ]
    all_completed = (1 << len(completed)) - 1

    @functools.cache
    def search(placed: int, state: Any) -> bool:
        if placed & all_completed == all_completed:
            return True
        for index, op in enumerate(candidates):
            if placed >> index & 1:
                continue
            if any(
                not placed >> other & 1
                and other != index
                and completed[other].complete < op.invoke  # type: ignore[operator]
                for other in range(len(completed))
            ):
                continue
            accepted, new_state = apply(state, op)
            if accepted and search(placed | 1 << index, new_state):
                return True
        return False

    return search(0, initial)


def key_result(result: CheckResult):  # type: ignore[no-untyped-def]
    assert list(result.keys) == [KEY]
    return result.keys[KEY]


# Hand-written histories


def test_empty_history_is_linearizable() -> None:
    result = check_history([])
    assert result.ok is True
    assert result.keys == {}


def test_sequential_history() -> None:
    ops = [
        read(1, None, 0, 1),
        write(1, "a", 2, 3),
        read(2, "a", 4, 5),
        write(2, "b", 6, 7),
        read(1, "b", 8, 9),
    ]
    result = check_history(ops)
    assert result.ok is True, result
    assert key_result(result).linearization == ops
    assert_valid_linearization(result, ops)


def test_sequential_history_with_wrong_read_fails() -> None:
    ops = [write(1, "a", 0, 1), write(1, "b", 2, 3), read(2, "c", 4, 5)]
    result = check_history(ops)
    assert result.ok is False
    assert key_result(result).culprit is ops[2]


def test_initial_value_is_respected() -> None:
    ops = [read(1, "x", 0, 1)]
    assert check_history(ops, initial="x").ok is True
    assert check_history(ops).ok is False


@pytest.mark.parametrize("first_seen", ["a", "b"])
def test_concurrent_writes_may_take_effect_in_either_order(first_seen: str) -> None:
    last_seen = "b" if first_seen == "a" else "a"
    ops = [
        write(1, "a", 0, 10),
        write(2, "b", 1, 9),
        read(3, first_seen, 2, 8),
        read(3, last_seen, 11, 12),
        read(4, last_seen, 13, 14),
    ]
    result = check_history(ops)
    assert result.ok is True, result
    assert_valid_linearization(result, ops)


def test_concurrent_read_sees_old_or_new_value() -> None:
    for seen in (None, "a"):
        ops = [write(1, "a", 0, 10), read(2, seen, 1, 2)]
        assert check_history(ops).ok is True, seen


def test_reads_must_agree_on_order_of_concurrent_writes() -> None:
    # Both writes overlap both reads' predecessors, but once one reader saw
    # a then b, another reader cannot later see a again.
    ops = [
        write(1, "a", 0, 10),
        write(2, "b", 0, 10),
        read(3, "a", 11, 12),
        read(4, "b", 13, 14),
    ]
    assert check_history(ops).ok is False


def test_stale_read_after_completed_write_is_not_linearizable() -> None:
    stale = read(3, "a", 4, 5)
    ops = [write(1, "a", 0, 1), write(2, "b", 2, 3), stale]
    result = check_history(ops)
    assert result.ok is False
    detail = key_result(result)
    assert detail.culprit is stale
    assert detail.possible_values == ["b"]
    # The explanation shows the read, the write that overwrote the value
    # and the write it came from.
    assert {op.value for op in detail.window} == {"a", "b"}
    text = str(result)
    assert "NOT linearizable" in text
    assert "read -> 'a'" in text and "write 'b'" in text


def test_touching_intervals_are_concurrent() -> None:
    # The write completes exactly when the read is invoked: with a coarse
    # clock either order is possible, so the old value is acceptable.
    ops = [write(1, "a", 0, 5), read(2, None, 5, 6)]
    assert check_history(ops).ok is True
    ops = [write(1, "a", 0, 5), read(2, None, 5.001, 6)]
    assert check_history(ops).ok is False
    # Same for a write of unknown outcome invoked as the read completes.
    ops = [write(1, "a", 0, 1), read(2, "b", 3, 5), write(3, "b", 5, None, ok=None)]
    assert check_history(ops).ok is True


def test_read_of_value_never_written_is_not_linearizable() -> None:
    ghost = read(2, "ghost", 2, 3)
    ops = [write(1, "a", 0, 1), ghost, read(1, "a", 4, 5)]
    result = check_history(ops)
    assert result.ok is False
    assert key_result(result).culprit is ghost
    assert "no write could have written" in str(result)


def test_read_of_value_written_only_after_read_completed_fails() -> None:
    ops = [read(2, "a", 0, 1), write(1, "a", 2, 3)]
    assert check_history(ops).ok is False


@pytest.mark.parametrize("observed", [True, False])
def test_unknown_write_may_take_effect_later_or_never(observed: bool) -> None:
    ops = [
        write(1, "a", 0, 1),
        write(2, "b", 2, None, ok=None),  # e.g. timed out
        read(3, "a", 3, 4),
        read(3, "a", 5, 6),
    ]
    if observed:
        ops += [read(3, "b", 100, 101), read(4, "b", 102, 103)]
    result = check_history(ops)
    assert result.ok is True, result
    assert_valid_linearization(result, ops)
    placed = [op.value for op in key_result(result).linearization or []]
    assert ("b" in placed) is observed


def test_unknown_write_cannot_take_effect_before_its_invoke() -> None:
    ops = [read(3, "b", 0, 1), write(2, "b", 2, None, ok=None)]
    assert check_history(ops).ok is False


def test_unknown_write_happens_at_most_once() -> None:
    ops = [
        write(2, "b", 0, None, ok=None),
        read(3, "b", 1, 2),
        write(1, "a", 3, 4),
        read(3, "b", 5, 6),
    ]
    assert check_history(ops).ok is False


def test_outcome_unknown_when_only_ok_is_none() -> None:
    ops = [write(1, "a", 0, 1, ok=None), read(2, None, 2, 3)]
    assert check_history(ops).ok is True


def test_unknown_read_is_ignored() -> None:
    ops = [
        write(1, "a", 0, 1),
        Operation(2, KEY, "read", "nonsense", 2, None, None),
        read(3, "a", 4, 5),
    ]
    result = check_history(ops)
    assert result.ok is True
    assert key_result(result).operations == 2


def test_failed_write_whose_value_is_read_is_not_linearizable() -> None:
    failed = write(2, "b", 2, 3, ok=False)
    ops = [write(1, "a", 0, 1), failed, read(3, "b", 4, 5)]
    result = check_history(ops)
    assert result.ok is False
    assert failed in key_result(result).window
    assert "FAILED (ignored)" in str(result)


def test_failed_write_must_not_be_assumed_to_happen_once_more() -> None:
    # b was written successfully once; the failed retry cannot explain a
    # second b after c.
    ops = [
        write(1, "b", 0, 1),
        write(1, "c", 2, 3),
        write(2, "b", 2.5, 3.5, ok=False),
        read(3, "b", 4, 5),
    ]
    assert check_history(ops).ok is False
    ops[2] = replace(ops[2], ok=True)
    assert check_history(ops).ok is True


def test_cas_semantics() -> None:
    ops = [
        write(1, "a", 0, 1),
        cas(2, "a", "b", 2, 3, swapped=True),
        cas(3, "a", "c", 4, 5, swapped=False),
        read(1, "b", 6, 7),
    ]
    assert check_history(ops).ok is True
    wrong = ops[:2] + [cas(3, "b", "c", 4, 5, swapped=False), ops[3]]
    assert check_history(wrong).ok is False
    lied = [ops[0], cas(2, "x", "b", 2, 3, swapped=True), read(1, "b", 6, 7)]
    assert check_history(lied).ok is False


def test_unknown_cas_may_or_may_not_happen() -> None:
    base = [write(1, "a", 0, 1), cas(2, "a", "b", 2, None, swapped=None)]
    assert check_history([*base, read(3, "b", 3, 4)]).ok is True
    assert check_history([*base, read(3, "a", 3, 4)]).ok is True
    # b seen after a later write: the cas must have run after it, which
    # works only if that write put back the value the cas expects.
    for later, ok in (("a", True), ("z", False)):
        late = [*base, write(1, later, 3, 4), read(3, later, 5, 6), read(3, "b", 7, 8)]
        assert check_history(late).ok is ok, later


def test_keys_are_checked_independently() -> None:
    ops = [
        Operation(1, b"x", "write", 1, 0, 1, True),
        Operation(1, b"y", "write", 2, 0, 1, True),
        Operation(2, b"x", "read", 1, 2, 3, True),
        Operation(2, b"y", "read", 1, 2, 3, True),  # 1 was written to x
    ]
    result = check_history(ops)
    assert result.ok is False
    assert result.keys[b"x"].ok is True
    assert result.keys[b"y"].ok is False
    assert [failure.key for failure in result.failures] == [b"y"]


def test_invalid_operations_are_rejected() -> None:
    with pytest.raises(ValueError):
        Operation(1, KEY, "incr", 1, 0, 1, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Operation(1, KEY, "write", 1, 2, 1, True)
    with pytest.raises(ValueError):
        Operation(1, KEY, "cas", "a", 0, 1, True, True)
    with pytest.raises(ValueError):
        Operation(1, KEY, "cas", ("a", "b"), 0, 1, True)


def test_timeout_gives_unknown_not_a_guess() -> None:
    def history(writers: int) -> list[Operation]:
        # Concurrent writes, each value read once meanwhile, then two reads
        # with no write between them disagree: impossible, but proving it
        # means trying the writes' orders (subsets of them, with the cache).
        values = range(writers)
        ops = [write(1, value, 0, 100) for value in values]
        ops += [read(2, value, 0, 100) for value in values]
        return [*ops, read(3, 0, 200, 201), read(3, 1, 202, 203)]

    result = check_history(history(16), timeout=0.0)
    assert result.ok is None
    assert [undecided.key for undecided in result.undecided] == [KEY]
    assert "deadline" in str(result)
    assert check_history(history(5)).ok is False


def test_history_recorder() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    history = History(clock=clock)
    written = history.invoke(1, KEY, "write", "a")
    history.complete(written)
    read_back = history.invoke(2, KEY, "read")
    history.complete(read_back, "a")
    swap = history.invoke(3, KEY, "cas", ("a", "b"))
    history.complete(swap, True)
    lost = history.invoke(1, KEY, "write", "c")
    history.unknown(lost)
    rejected = history.invoke(2, KEY, "write", "d")
    history.fail(rejected)
    history.invoke(3, KEY, "write", "e")  # never answered: unknown
    ops = history.operations()
    assert [(op.kind, op.value, op.ok) for op in ops] == [
        ("write", "a", True),
        ("read", "a", True),
        ("cas", ("a", "b"), True),
        ("write", "c", None),
        ("write", "d", False),
        ("write", "e", None),
    ]
    assert ops[2].swapped is True
    assert (
        all(op.complete is None or op.invoke < op.complete for op in ops)
        and ops[0].complete == ops[0].invoke + 1
    )
    assert check_history([*ops, read(1, "b", 100, 101)]).ok is True
    assert check_history([*ops, read(1, "d", 100, 101)]).ok is False


# Generated histories


def simulate_register(
    seed: int,
    *,
    clients: int = 8,
    operations: int = 400,
    keys: tuple[bytes, ...] = (KEY,),
    read_share: float = 0.5,
    unknown_share: float = 0.0,
    failed_share: float = 0.0,
    values: int = 0,
) -> list[Operation]:
    """A history of a correct register: each client runs one operation at
    a time, and each operation takes effect at a random instant inside its
    interval. Unknown-outcome writes take effect or not, possibly well after
    the client gave up; failed ones never. Written values are unique, or
    drawn from `values` distinct ones when that is not 0."""
    rng = random.Random(seed)
    clock = [rng.uniform(0, 1) for _ in range(clients)]
    planned: list[dict[str, Any]] = []
    for number in range(operations):
        client = min(range(clients), key=clock.__getitem__)
        invoke = clock[client]
        duration = rng.uniform(0.05, 2.0)
        entry: dict[str, Any] = {
            "client": client,
            "key": rng.choice(keys),
            "kind": "read" if rng.random() < read_share else "write",
            "value": f"v{rng.randrange(values) if values else number}",
            "invoke": invoke,
            "complete": invoke + duration,
            "ok": True,
            "effect": rng.uniform(invoke, invoke + duration),
        }
        roll = rng.random()
        if roll < unknown_share:
            entry["ok"] = None
            entry["complete"] = None
            if rng.random() < 0.5:
                entry["effect"] = rng.uniform(invoke, invoke + 4 * duration)
            else:
                entry["effect"] = None
        elif roll < unknown_share + failed_share:
            entry["ok"] = False
            entry["effect"] = None
        planned.append(entry)
        clock[client] = invoke + duration + rng.uniform(0, 0.3)

    registers: dict[bytes, Any] = {}
    for entry in sorted(
        (entry for entry in planned if entry["effect"] is not None),
        key=lambda entry: entry["effect"],
    ):
        if entry["kind"] == "write":
            registers[entry["key"]] = entry["value"]
        else:
            entry["value"] = registers.get(entry["key"])
    return [
        Operation(
            entry["client"],
            entry["key"],
            entry["kind"],
            entry["value"],
            entry["invoke"],
            entry["complete"],
            entry["ok"],
        )
        for entry in planned
    ]


def inject_stale_read(
    ops: list[Operation], rng: random.Random
) -> tuple[list[Operation], Operation] | None:
    """Make one completed read return a value that a completed write
    overwrote before the read was invoked (old write finished before the
    new one started, which finished before the read started)."""
    writes = [op for op in ops if op.kind == "write" and op.outcome_known]
    reads = [op for op in ops if op.kind == "read" and op.outcome_known]
    rng.shuffle(reads)
    for victim in reads:
        newer = [
            op
            for op in writes
            if op.key == victim.key and op.complete < victim.invoke  # type: ignore[operator]
        ]
        older = [
            op
            for op in writes
            if op.key == victim.key and any(op.complete < new.invoke for new in newer)  # type: ignore[operator]
        ]
        if older:
            stale = replace(victim, value=rng.choice(older).value)
            return [stale if op is victim else op for op in ops], stale
    return None


@pytest.mark.parametrize("seed", range(40))
def test_correct_register_histories_are_linearizable(seed: int) -> None:
    ops = simulate_register(
        seed,
        clients=1 + seed % 10,
        operations=300,
        keys=(b"a", b"b", b"c") if seed % 2 else (KEY,),
        read_share=[0.2, 0.5, 0.8][seed % 3],
        unknown_share=0.05 if seed % 4 == 1 else 0.0,
        failed_share=0.05 if seed % 4 == 2 else 0.0,
        values=[0, 3, 20][seed // 3 % 3],
    )
    result = check_history(ops)
    assert result.ok is True, result
    assert_valid_linearization(result, ops)


@pytest.mark.parametrize("seed", range(150))
def test_agrees_with_brute_force_on_generated_histories(seed: int) -> None:
    """Mid-sized histories with few values and unknown outcomes, half of
    them with one read's value changed: the cases where the checker's
    shortcuts (greedy reads, unobserved values, unknown writes placed only
    before a read of their value) could go wrong."""
    rng = random.Random(seed)
    ops = simulate_register(
        seed,
        clients=rng.randint(2, 4),
        operations=rng.randint(10, 22),
        read_share=rng.choice([0.3, 0.5, 0.7]),
        unknown_share=rng.choice([0.0, 0.1, 0.2]),
        failed_share=rng.choice([0.0, 0.1]),
        values=rng.randint(1, 4),
    )
    reads = [i for i, op in enumerate(ops) if op.kind == "read" and op.outcome_known]
    if reads and seed % 2:
        changed = rng.choice(reads)
        ops[changed] = replace(ops[changed], value=rng.choice([None, "v0", "v1"]))
    result = check_history(ops)
    assert result.ok is brute_force_linearizable(ops), result
    if result.ok:
        assert_valid_linearization(result, ops)


@pytest.mark.parametrize("seed", range(40))
def test_injected_stale_read_is_detected(seed: int) -> None:
    ops = simulate_register(
        seed,
        clients=2 + seed % 9,
        operations=300,
        unknown_share=0.05 if seed % 2 else 0.0,
        failed_share=0.05 if seed % 3 == 1 else 0.0,
    )
    injected = inject_stale_read(ops, random.Random(seed))
    assert injected is not None
    broken, stale = injected
    result = check_history(broken)
    assert result.ok is False, result
    detail = key_result(result)
    assert detail.culprit is stale, result
    assert stale.value in [op.value for op in detail.window]


operation_strategy = st.builds(
    lambda client, kind, value, old, invoke, duration, outcome, swapped: Operation(
        client,
        KEY,
        kind,
        (old, value) if kind == "cas" else value,
        invoke,
        None if outcome == "unknown" else invoke + duration,
        {"ok": True, "unknown": None, "failed": False}[outcome],
        swapped if kind == "cas" and outcome == "ok" else None,
    ),
    client=st.integers(0, 3),
    kind=st.sampled_from(["read", "read", "write", "write", "cas"]),
    value=st.sampled_from([None, "a", "b", "c"]),
    old=st.sampled_from([None, "a", "b"]),
    invoke=st.integers(0, 12),
    duration=st.integers(0, 6),
    outcome=st.sampled_from(["ok", "ok", "ok", "unknown", "failed"]),
    swapped=st.booleans(),
)


@settings(max_examples=600, deadline=None)
@given(ops=st.lists(operation_strategy, max_size=7))
def test_agrees_with_brute_force(ops: list[Operation]) -> None:
    result = check_history(ops)
    assert result.ok is brute_force_linearizable(ops), result
    if result.ok:
        assert_valid_linearization(result, ops)
    else:
        assert key_result(result).culprit in ops


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    clients=st.integers(1, 10),
    unknown_share=st.sampled_from([0.0, 0.03, 0.1]),
)
def test_simulated_histories_always_pass(
    seed: int, clients: int, unknown_share: float
) -> None:
    ops = simulate_register(
        seed, clients=clients, operations=120, unknown_share=unknown_share
    )
    result = check_history(ops)
    assert result.ok is True, result


def test_large_history_is_checked_quickly() -> None:
    ops = simulate_register(2024, clients=8, operations=3000)
    started = time.perf_counter()
    result = check_history(ops)
    passed = time.perf_counter() - started
    assert result.ok is True, result
    assert_valid_linearization(result, ops)

    broken, stale = inject_stale_read(ops, random.Random(7)) or ([], None)
    started = time.perf_counter()
    result = check_history(broken)
    failed = time.perf_counter() - started
    assert result.ok is False
    assert key_result(result).culprit is stale
    print(
        f"3000 ops, 8 clients: linearizable in {passed:.3f}s "
        f"({key_result(check_history(ops)).explored} states); "
        f"stale read found in {failed:.3f}s"
    )
