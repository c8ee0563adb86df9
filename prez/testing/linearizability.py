"""Linearizability checking for histories of single-key registers.

Tests record what clients did (`Operation`: invoke time, completion time,
kind, value, outcome), often through `History`, and `check_history` decides
whether some total order of the operations respects real time and the
sequential semantics of a register (`read`, `write`, and `cas`).

The search is Wing & Gong's, with Lowe's memoization, as in Knossos and
Porcupine: walk the call and return events in time order, try each
operation that may take effect next, and backtrack when the earliest
pending return finds its operation not yet linearizable; a cache of
(set of linearized operations, register value) prunes states already seen.
Keys are independent (a register each), so each key is checked on its own.
Without cas, sound shortcuts (see `_Search.run`) keep the search close to
linear for correct histories: 3,000 operations from 10 fully concurrent
clients check in about 0.1-0.3 s, and an injected stale read is found as
fast. Distinct written values (client id plus a counter) help most; cas
histories get the plain search. A search past the timeout answers "unknown".

Outcomes:
- `ok=True`: completed and the result is known.
- `ok=False`: definitely did not happen (e.g. CLUSTERDOWN); dropped.
- `ok=None` or `complete=None`: outcome unknown (timeout, lost connection,
  "outcome unknown" error). A write or cas may have taken effect at any time
  after its invoke, or never; an unknown read constrains nothing: dropped.

Operations that touch the same real-time instant (one completes exactly when
another is invoked) count as concurrent, so coarse clocks never produce a
false "not linearizable".

Test support only: no imports from the rest of Prez.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "CheckResult",
    "History",
    "KeyResult",
    "Operation",
    "OperationKind",
    "check_history",
]

OperationKind = Literal["read", "write", "cas"]

_KINDS = ("read", "write", "cas")


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one register.

    `value` is what a write wrote, what a read returned (None: the key was
    absent), or for a cas the pair `(expected, new)`; `swapped` says whether
    a completed cas found `expected` and wrote `new`.
    """

    client: int | str
    key: bytes | str
    kind: OperationKind
    value: Any
    invoke: float
    complete: float | None
    ok: bool | None
    swapped: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown operation kind {self.kind!r}")
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(f"operation completes before it is invoked: {self}")
        if self.kind == "cas":
            if not (isinstance(self.value, tuple) and len(self.value) == 2):
                raise ValueError("a cas takes value=(expected, new)")
            if self.outcome_known and self.swapped is None:
                raise ValueError("a completed cas needs swapped=True or False")

    @property
    def outcome_known(self) -> bool:
        return self.ok is True and self.complete is not None

    @property
    def failed(self) -> bool:
        return self.ok is False

    def describe(self) -> str:
        if self.kind == "read":
            what = f"read -> {self.value!r}"
        elif self.kind == "write":
            what = f"write {self.value!r}"
        else:
            expected, new = self.value
            what = f"cas {expected!r} -> {new!r}"
            if self.outcome_known:
                what += " (swapped)" if self.swapped else " (not swapped)"
        end = "?" if self.complete is None else f"{self.complete:.6f}"
        if self.failed:
            outcome = "  FAILED (ignored)"
        elif not self.outcome_known:
            outcome = "  outcome unknown"
        else:
            outcome = ""
        return f"client {self.client!s:>4} {what}  [{self.invoke:.6f}, {end}]{outcome}"


@dataclass(slots=True)
class KeyResult:
    """The verdict for one key, with the evidence on failure."""

    key: Any
    ok: bool | None
    operations: int
    elapsed: float = 0.0
    explored: int = 0
    explanation: str = ""
    # The operation the search could not place (on failure): usually the
    # read whose value nothing justifies.
    culprit: Operation | None = None
    # The writes around the culprit, in invoke order.
    window: list[Operation] = field(default_factory=list)
    # Register values the search could reach where the culprit had to
    # take effect.
    possible_values: list[Any] = field(default_factory=list)
    # One valid order (on success), unknown-outcome operations that never
    # needed to happen left out.
    linearization: list[Operation] | None = None

    def describe(self) -> str:
        verdict = {True: "linearizable", False: "NOT linearizable", None: "UNKNOWN"}
        head = (
            f"key {self.key!r}: {verdict[self.ok]} "
            f"({self.operations} operations, {self.explored} states, "
            f"{self.elapsed:.3f}s)"
        )
        return head + ("\n" + self.explanation if self.explanation else "")


@dataclass(slots=True)
class CheckResult:
    """`ok` is True when every key is linearizable, False when some key is
    not, None when the search ran out of time before deciding."""

    ok: bool | None
    keys: dict[Any, KeyResult]
    elapsed: float

    @property
    def failures(self) -> list[KeyResult]:
        return [result for result in self.keys.values() if result.ok is False]

    @property
    def undecided(self) -> list[KeyResult]:
        return [result for result in self.keys.values() if result.ok is None]

    def describe(self) -> str:
        verdict = {True: "linearizable", False: "NOT linearizable", None: "UNKNOWN"}
        lines = [
            f"history {verdict[self.ok]}: {len(self.keys)} keys, "
            f"{len(self.failures)} failing, {len(self.undecided)} undecided, "
            f"{self.elapsed:.3f}s"
        ]
        lines.extend(result.describe() for result in self.failures)
        lines.extend(result.describe() for result in self.undecided)
        return "\n".join(lines)

    __str__ = describe


def check_history(
    ops: Iterable[Operation], initial: Any = None, timeout: float = 10.0
) -> CheckResult:
    """Check every key's register history; `initial` is each key's value
    before the history (None: absent). Values must be hashable.

    `timeout` bounds the whole check: keys not decided by then are
    reported `ok=None`, never guessed.
    """
    started = time.perf_counter()
    deadline = started + timeout
    by_key: dict[Any, list[Operation]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    results: dict[Any, KeyResult] = {}
    for key, key_ops in by_key.items():
        results[key] = _check_key(key, key_ops, initial, deadline)
    verdicts = [result.ok for result in results.values()]
    if False in verdicts:
        ok: bool | None = False
    elif None in verdicts:
        ok = None
    else:
        ok = True
    return CheckResult(ok=ok, keys=results, elapsed=time.perf_counter() - started)


class History:
    """Records operations as a test issues them, for `check_history`.

    `invoke` stamps the start and returns a handle; then exactly one of
    `complete` (result known), `fail` (definitely did not happen) or
    `unknown` (may or may not have happened). An operation left open when
    `operations()` is called counts as unknown. Thread-safe.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[int, Operation] = {}
        self._done: list[Operation] = []
        self._next_handle = 0

    def invoke(
        self,
        client: int | str,
        key: bytes | str,
        kind: OperationKind,
        value: Any = None,
    ) -> int:
        """`value`: what a write writes, `(expected, new)` for a cas; a
        read's value comes with `complete`."""
        op = Operation(client, key, kind, value, self._clock(), None, None)
        with self._lock:
            handle = self._next_handle
            self._next_handle += 1
            self._open[handle] = op
        return handle

    def complete(self, handle: int, result: Any = None) -> None:
        """`result`: the value a read returned, or whether a cas swapped."""
        now = self._clock()
        with self._lock:
            op = self._open.pop(handle)
            if op.kind == "read":
                done = Operation(
                    op.client, op.key, "read", result, op.invoke, now, True
                )
            elif op.kind == "cas":
                done = Operation(
                    op.client,
                    op.key,
                    "cas",
                    op.value,
                    op.invoke,
                    now,
                    True,
                    bool(result),
                )
            else:
                done = Operation(
                    op.client, op.key, op.kind, op.value, op.invoke, now, True
                )
            self._done.append(done)

    def fail(self, handle: int) -> None:
        now = self._clock()
        with self._lock:
            op = self._open.pop(handle)
            self._done.append(
                Operation(op.client, op.key, op.kind, op.value, op.invoke, now, False)
            )

    def unknown(self, handle: int) -> None:
        with self._lock:
            self._done.append(self._open.pop(handle))

    def operations(self) -> list[Operation]:
        with self._lock:
            return self._done + list(self._open.values())


# Operation codes for the search's inner loop.
_READ = 0
_WRITE = 1
_CAS_SWAPPED = 2
_CAS_NOT_SWAPPED = 3
_CAS_UNKNOWN = 4

# The cache's stand-in for any current value no read may return next.
_UNOBSERVED = object()

_WINDOW_LIMIT = 24
_POSSIBLE_VALUES_LIMIT = 8
_CLOCK_CHECK_EVERY = 2048


def _check_key(
    key: Any, ops: list[Operation], initial: Any, deadline: float
) -> KeyResult:
    started = time.perf_counter()
    known = sorted((op for op in ops if op.outcome_known), key=lambda op: op.invoke)
    # An unknown read constrains nothing; an unknown write or cas may happen.
    unknown = sorted(
        (
            op
            for op in ops
            if not op.failed and not op.outcome_known and op.kind != "read"
        ),
        key=lambda op: op.invoke,
    )
    for op in ops:
        hash(op.value)  # the search caches register values: fail early

    considered = len(known) + len(unknown)
    never_written = _read_of_unwritten_value(known, unknown, initial)
    if never_written is not None:
        window = _writes_around(never_written, ops)
        result = KeyResult(
            key=key,
            ok=False,
            operations=considered,
            culprit=never_written,
            window=window,
            explanation=_explain(
                never_written,
                "it returned a value no write could have written before it completed",
                [],
                window,
            ),
        )
        result.elapsed = time.perf_counter() - started
        return result

    search = _Search(known, unknown, initial, deadline)
    verdict = search.run()
    result = KeyResult(
        key=key, ok=verdict, operations=considered, explored=search.explored
    )
    if verdict is True:
        result.linearization = search.linearization
    elif verdict is False:
        culprit = search.culprit
        assert culprit is not None
        result.culprit = culprit
        result.window = _writes_around(culprit, ops)
        result.possible_values = search.culprit_values
        result.explanation = _explain(
            culprit,
            "no order of the operations before it lets it take effect",
            result.possible_values,
            result.window,
        ) + _describe_prefix(search.deepest_prefix)
    else:
        result.explanation = (
            f"search stopped at the deadline after {search.explored} states; "
            f"at most {search.deepest} of {len(known)} completed operations "
            "could be ordered so far"
        )
    result.elapsed = time.perf_counter() - started
    return result


def _read_of_unwritten_value(
    known: list[Operation], unknown: list[Operation], initial: Any
) -> Operation | None:
    """A completed read of a value that no write or cas invoked before the
    read completed could have written: the plainest violation, reported
    without searching."""
    first_written: dict[Any, float] = {}
    for op in (*known, *unknown):
        if op.kind == "write":
            written = op.value
        elif op.kind == "cas" and not (op.outcome_known and not op.swapped):
            written = op.value[1]
        else:
            continue
        if written not in first_written or op.invoke < first_written[written]:
            first_written[written] = op.invoke
    for op in known:
        if op.kind != "read" or op.value == initial:
            continue
        assert op.complete is not None
        invoked = first_written.get(op.value)
        if invoked is None or invoked > op.complete:
            return op
    return None


def _writes_around(culprit: Operation, ops: list[Operation]) -> list[Operation]:
    """The writes that could matter to `culprit`: from the last write known
    to have completed before it was invoked, up to those invoked before it
    completed (failed ones included, marked, since they often explain the
    bug), nearest first when there are too many."""
    end = float("inf") if culprit.complete is None else culprit.complete
    writes = [op for op in ops if op.kind != "read" and op is not culprit]
    finished_before = [
        op.complete
        for op in writes
        if op.outcome_known and op.complete is not None and op.complete < culprit.invoke
    ]
    since = max(finished_before, default=float("-inf"))
    window = [
        op
        for op in writes
        if op.invoke <= end
        and (op.complete is None or op.complete >= since or not op.outcome_known)
    ]
    if len(window) > _WINDOW_LIMIT:
        window.sort(key=lambda op: abs(op.invoke - culprit.invoke))
        del window[_WINDOW_LIMIT:]
    if culprit.kind == "read":
        # A stale read's value was written before the window: show where.
        shown = {id(op) for op in window}
        sources = [
            op
            for op in writes
            if op.invoke <= end
            and (op.value[1] if op.kind == "cas" else op.value) == culprit.value
            and id(op) not in shown
        ]
        sources.sort(key=lambda op: op.invoke)
        window.extend(sources[-2:])
    window.sort(key=lambda op: op.invoke)
    return window


def _explain(
    culprit: Operation, reason: str, possible: list[Any], window: list[Operation]
) -> str:
    lines = [f"  cannot linearize: {culprit.describe()}", f"  because {reason}"]
    if possible:
        values = ", ".join(repr(value) for value in possible)
        lines.append(f"  where it had to take effect the register could hold: {values}")
    if window:
        lines.append("  writes around it:")
        lines.extend(f"    {op.describe()}" for op in window)
    else:
        lines.append("  no writes around it")
    return "\n".join(lines)


def _describe_prefix(prefix: list[Operation]) -> str:
    if not prefix:
        return ""
    lines = ["", "  last operations of the longest order found:"]
    lines.extend(f"    {op.describe()}" for op in prefix)
    return "\n".join(lines)


class _Search:
    """One key's Wing & Gong search with Lowe's cache.

    Completed operations are indexed 0..K-1 by invoke time and have a call
    and a return event in a doubly linked list (removed while linearized,
    restored in LIFO order on backtrack: dancing links). Unknown-outcome
    operations, indexed K.., have no return: they may be linearized at any
    point after their invoke, or never, so the search succeeds once all
    completed operations are placed.
    """

    def __init__(
        self,
        known: list[Operation],
        unknown: list[Operation],
        initial: Any,
        deadline: float,
    ) -> None:
        self.ops = known + unknown
        self.known_count = len(known)
        self.unknown_count = len(unknown)
        self.initial = initial
        self.deadline = deadline
        self.explored = 0
        self.deepest = 0
        self.linearization: list[Operation] | None = None
        self.culprit: Operation | None = None
        self.culprit_values: list[Any] = []
        self.deepest_prefix: list[Operation] = []

        codes: list[int] = []
        first: list[Any] = []
        second: list[Any] = []
        for op in self.ops:
            if op.kind == "read":
                codes.append(_READ)
                first.append(op.value)
                second.append(None)
            elif op.kind == "write":
                codes.append(_WRITE)
                first.append(op.value)
                second.append(None)
            else:
                if not op.outcome_known:
                    codes.append(_CAS_UNKNOWN)
                elif op.swapped:
                    codes.append(_CAS_SWAPPED)
                else:
                    codes.append(_CAS_NOT_SWAPPED)
                first.append(op.value[0])
                second.append(op.value[1])
        self.codes = codes
        self.first = first
        self.second = second

    def run(self) -> bool | None:
        known_count = self.known_count
        if known_count == 0:
            self.linearization = []
            return True
        ops = self.ops
        codes = self.codes
        first = self.first
        second = self.second

        # Events: call before return at equal times, so touching intervals
        # are concurrent.
        events: list[tuple[float, int, int]] = []
        complete_of: list[float] = []
        for index in range(known_count):
            op = ops[index]
            assert op.complete is not None
            complete_of.append(op.complete)
            events.append((op.invoke, 0, index))
            events.append((op.complete, 1, index))
        events.sort()
        event_count = len(events)
        head = event_count  # sentinel of the circular list
        next_event = list(range(1, event_count + 1)) + [0]
        prev_event = [head] + list(range(event_count))
        event_op = [index for _, _, index in events]
        event_is_return = [kind == 1 for _, kind, _ in events]
        call_of = [0] * known_count
        return_of = [0] * known_count
        for position, (_, kind, index) in enumerate(events):
            if kind:
                return_of[index] = position
            else:
                call_of[index] = position

        unknown_ids = list(range(known_count, len(ops)))
        unknown_invoke = [ops[index].invoke for index in unknown_ids]
        # Without cas only reads observe the register, which allows some
        # shortcuts, each keeping some valid order if there is one. When no
        # read that may come next returns the current value, every valid
        # way on starts with a write, so
        # - the cache keys all such values as one state;
        # - a write whose value no read still to be placed returns
        #   ("blind") is the only child tried (see `explore`);
        # - an unknown-outcome write is placed only when a read of its
        #   value may come next (and that read is then placed at once):
        #   followed by a write instead, it could be left out.
        only_reads_observe = not any(code >= _CAS_SWAPPED for code in codes)
        collect_readable = only_reads_observe and bool(unknown_ids)
        pending_reads: dict[Any, int] = {}
        for index in range(known_count):
            if codes[index] == _READ:
                pending_reads[first[index]] = pending_reads.get(first[index], 0) + 1

        def explore(linearized: int, state: Any) -> tuple[list[int], int, bool]:
            """The operations that may take effect next (completed ones
            first: unknown ones rarely need to), the completed operation
            whose return bounds them, and whether the current value may be
            read next.

            An operation that leaves the register as it is (a read of the
            current value, a cas whose compare fails) is the only child
            when there is one: moving it to the front of any valid order
            keeps the order valid, as nothing before it has to wait for it
            and it changes nothing after it. Likewise a blind write when
            nothing may read the current value next: the operations it
            jumps over start with a write anyway, and nothing after its old
            place read what it wrote.
            """
            found: list[int] = []
            unchanging = -1
            blind_write = -1
            # Values of the reads that may come next: the only values worth
            # an unknown-outcome write now.
            readable: set[Any] = set()
            event = next_event[head]
            while not event_is_return[event]:
                index = event_op[event]
                found.append(index)
                code = codes[index]
                if code == _READ:
                    if state == first[index]:
                        unchanging = index
                    elif collect_readable:
                        readable.add(first[index])
                elif code == _CAS_NOT_SWAPPED:
                    if unchanging < 0 and state != first[index]:
                        unchanging = index
                elif (
                    blind_write < 0
                    and only_reads_observe
                    and not pending_reads.get(first[index])
                ):
                    blind_write = index
                event = next_event[event]
            blocker = event_op[event]
            if unchanging >= 0:
                return [unchanging], blocker, True
            if blind_write >= 0:
                return [blind_write], blocker, False
            bound = complete_of[blocker]
            for position, index in enumerate(unknown_ids):
                if unknown_invoke[position] > bound:
                    break
                if linearized >> index & 1:
                    continue
                if collect_readable and first[index] not in readable:
                    continue
                found.append(index)
            return found, blocker, not only_reads_observe

        def place(index: int) -> None:
            if index < known_count:
                call_event = call_of[index]
                return_event = return_of[index]
                next_event[prev_event[call_event]] = next_event[call_event]
                prev_event[next_event[call_event]] = prev_event[call_event]
                next_event[prev_event[return_event]] = next_event[return_event]
                prev_event[next_event[return_event]] = prev_event[return_event]
                if codes[index] == _READ:
                    pending_reads[first[index]] -= 1

        def unplace(index: int) -> None:
            if index < known_count:
                # Restore in the reverse order of removal (dancing links).
                call_event = call_of[index]
                return_event = return_of[index]
                next_event[prev_event[return_event]] = return_event
                prev_event[next_event[return_event]] = return_event
                next_event[prev_event[call_event]] = call_event
                prev_event[next_event[call_event]] = call_event
                if codes[index] == _READ:
                    pending_reads[first[index]] += 1

        cache: set[tuple[int, int, Any]] = set()
        linearized = 0
        state = self.initial
        remaining = known_count
        path: list[tuple[int, Any]] = []  # (operation, state before it)
        found, blocker, _ = explore(0, state)
        frames: list[list[Any]] = [[found, 0, blocker]]
        # Failure evidence: the blocker of the deepest dead end, and the
        # values at the dead ends it caused.
        deepest = -1
        culprit = -1
        culprit_values: list[Any] = []
        deepest_prefix: list[int] = []
        clock_countdown = _CLOCK_CHECK_EVERY
        explored = 0

        while frames:
            frame = frames[-1]
            found = frame[0]
            position = frame[1]
            descended = False
            while position < len(found):
                index = found[position]
                position += 1
                code = codes[index]
                if code == _READ:
                    if state != first[index]:
                        continue
                    new_state = state
                elif code == _WRITE:
                    new_state = first[index]
                elif code == _CAS_SWAPPED:
                    if state != first[index]:
                        continue
                    new_state = second[index]
                elif code == _CAS_NOT_SWAPPED:
                    if state == first[index]:
                        continue
                    new_state = state
                else:
                    new_state = second[index] if state == first[index] else state
                place(index)
                linearized |= 1 << index
                if index < known_count:
                    remaining -= 1
                    if remaining == 0:
                        path.append((index, state))
                        self.explored = explored + 1
                        self.deepest = known_count
                        self.linearization = [ops[step] for step, _ in path]
                        return True
                next_found, next_blocker, observed = explore(linearized, new_state)
                # Below the first unlinearized operation every bit is set:
                # keep only the part above it, so cached keys stay small.
                lowest_zero = (linearized + 1) & -(linearized + 1)
                frontier = lowest_zero.bit_length() - 1
                cache_key = (
                    linearized >> frontier,
                    frontier,
                    new_state if observed else _UNOBSERVED,
                )
                if cache_key in cache:
                    unplace(index)
                    linearized &= ~(1 << index)
                    if index < known_count:
                        remaining += 1
                    continue
                cache.add(cache_key)
                frame[1] = position
                path.append((index, state))
                state = new_state
                frames.append([next_found, 0, next_blocker])
                explored += 1
                descended = True
                break
            if descended:
                clock_countdown -= 1
                if clock_countdown == 0:
                    clock_countdown = _CLOCK_CHECK_EVERY
                    if time.perf_counter() > self.deadline:
                        self.explored = explored
                        self.deepest = max(deepest, 0)
                        return None
                continue

            # Every way on from here failed: the blocker could not be
            # placed. Keep the deepest such dead end as the evidence.
            depth = known_count - remaining
            blocked = frame[2]
            if depth > deepest:
                deepest = depth
                culprit = blocked
                culprit_values = [state]
                deepest_prefix = [step for step, _ in path[-5:]]
            elif (
                blocked == culprit
                and state not in culprit_values
                and len(culprit_values) < _POSSIBLE_VALUES_LIMIT
            ):
                culprit_values.append(state)
            frames.pop()
            if not path:
                break
            index, state = path.pop()
            unplace(index)
            linearized &= ~(1 << index)
            if index < known_count:
                remaining += 1

        self.explored = explored
        self.deepest = max(deepest, 0)
        self.culprit = ops[culprit]
        self.culprit_values = culprit_values
        self.deepest_prefix = [ops[step] for step in deepest_prefix]
        return False
