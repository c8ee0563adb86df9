"""WATCH's other half: which keys were written after a given point.

A transaction's EXEC must do nothing if a key it WATCHed was written after
WATCH read it (Redis's optimistic locking). WATCH records the applied index
of its read (`Watch.since`); the node that puts the transaction into the
log, the leader (or a node without a log), knows every write appended
before it, so it answers there: a key was "written since" if a write
naming it was appended after that index. The transaction is then proposed
right away, behind every write it was checked against.

`WriteTracker` keeps the index of the last write appended per (db, key),
only once some EXEC with watches has needed it (`enable`), so that nodes
nobody WATCHes on pay nothing. What it cannot vouch for counts as written,
which only aborts a transaction the client then retries: entries before
tracking began (or before this term of leadership), writes that name no keys or keys
of other databases (FLUSHDB, FLUSHALL, SWAPDB, MOVE, COPY), and everything
before a reset when the table grew too large.
"""

from __future__ import annotations

from typing import Any

from prez.kv.command import COMMANDS, CommandSpec
from prez.kv.transaction import EXEC_COMMAND, Watch, split_exec_args

# Writes that may change keys they do not name, or keys in another database.
_WIDE_WRITES = frozenset({"move", "copy", "swapdb", "flushdb", "flushall"})
# Past this many keys the table starts over (everything before counts as
# written), so that memory stays bounded (some 10 MB) however many keys
# are written.
MAX_TRACKED_KEYS = 100_000


class WriteTracker:
    __slots__ = ("enabled", "changed", "tracked_from", "term")

    def __init__(self) -> None:
        self.enabled = False
        self.changed: dict[tuple[int, bytes], int] = {}
        # Every write at this index or later is in `changed`.
        self.tracked_from = 0
        # The leader's term the table belongs to (a node may lose and win
        # leadership between two looks of its driver at the core).
        self.term = 0

    def for_term(self, term: int, next_index: int) -> None:
        """Start over if the table is from another term of leadership."""
        if term != self.term:
            self.term = term
            self.restart(next_index)

    def enable(self, next_index: int) -> None:
        """Start tracking with the write that will get `next_index`."""
        if not self.enabled:
            self.enabled = True
            self.restart(next_index)

    def restart(self, next_index: int) -> None:
        """Forget everything: writes before `next_index` count as written
        (a new leader does not know what its predecessors' entries wrote)."""
        self.changed = {}
        self.tracked_from = next_index

    def written_since(self, watches: list[Watch]) -> bool:
        """Whether a write may have touched one of `watches` after it was
        read."""
        changed = self.changed
        for watch in watches:
            if watch.since + 1 < self.tracked_from:
                return True  # writes after it went by untracked
            if changed.get((watch.db, watch.key), 0) > watch.since:
                return True
        return False

    def note(self, spec: CommandSpec, db: int, args: list[Any], index: int) -> None:
        """Record the write `args` (of command `spec`), appended at `index`."""
        if spec.name == EXEC_COMMAND.decode():
            _, commands = split_exec_args(args)
            for cmd in commands:
                sub = COMMANDS.get(cmd[0].decode("ascii", "replace").lower())
                if sub is not None and sub.is_write:
                    self._note_keys(sub, db, cmd, index)
            return
        self._note_keys(spec, db, args, index)

    def _note_keys(
        self, spec: CommandSpec, db: int, args: list[Any], index: int
    ) -> None:
        keys = spec.keys(args)
        if not keys or spec.name in _WIDE_WRITES:
            self.restart(index + 1)
            return
        changed = self.changed
        if len(changed) >= MAX_TRACKED_KEYS:
            self.restart(index + 1)
            return
        for key in keys:
            changed[(db, key)] = index
