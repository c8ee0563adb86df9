"""The in-memory Raft log: entries after an offset, plus the persistence marks.

Pure data structure, no I/O; the same import rules as the rest of
`prez.raft` (no asyncio, socket, time, os, module-level random, server,
storage or kv).

Layout and invariants (the way etcd's `log_unstable.go` documents its own):

    index:   offset | offset+1 ... last_index
    held:    (term) | entries[0]  ... entries[-1]

- `entries[i].index == offset + 1 + i` always; the list is contiguous.
- `offset` is the index of the last entry dropped from the front, the point
  the newest snapshot covers (0 for a log that was never compacted), and
  `offset_term` its term. `term_at(offset)` answers with it, so the
  snapshot point serves as the sentinel "entry" a probe can match (at 0/0
  every log agrees on it). `compact` raises the offset over entries that
  are durable; `restore` moves it to a snapshot received from the leader.
- `unstable_from` is the first index not yet handed to the driver in a
  Ready; everything from there to `last_index` still has to be written.
- `persisted` is the last index the driver has reported durable through
  `advance()`. `persisted < unstable_from` always, and conflict truncation
  pulls both back, because a rewritten suffix is neither handed out nor
  durable any more.
"""

from __future__ import annotations

from prez.raft.types import Entry

# Per-entry framing overhead counted against max_append_bytes, so that a run
# of empty entries (no-ops) is still bounded.
ENTRY_OVERHEAD_BYTES = 16


class RaftLog:
    __slots__ = ("entries", "offset", "offset_term", "unstable_from", "persisted")

    def __init__(
        self, entries: list[Entry], offset: int = 0, offset_term: int = 0
    ) -> None:
        if entries and entries[0].index != offset + 1:
            raise ValueError(
                f"log entries start at {entries[0].index}, expected {offset + 1}"
            )
        self.entries: list[Entry] = list(entries)
        self.offset = offset
        self.offset_term = offset_term
        # Whatever the node was restarted with came from durable storage.
        self.persisted = self.last_index
        self.unstable_from = self.persisted + 1

    @property
    def first_index(self) -> int:
        return self.offset + 1

    @property
    def last_index(self) -> int:
        return self.offset + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term_at(self, index: int) -> int | None:
        """The term of the entry at `index`, or None when it is not held.

        None covers both "beyond the end" and "compacted away"; callers that
        must tell them apart compare against `offset` (the snapshot seam).
        """
        position = index - self.offset - 1
        if position < 0:
            return self.offset_term if position == -1 else None
        if position >= len(self.entries):
            return None
        return self.entries[position].term

    def matches(self, index: int, term: int) -> bool:
        """True when the log holds an entry at `index` with `term` (§5.3)."""
        return self.term_at(index) == term

    def entry_at(self, index: int) -> Entry:
        return self.entries[index - self.offset - 1]

    def slice(self, low: int, high: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries with low <= index < high, cut to about `max_bytes`.

        At least one entry is returned when the range is non-empty, so one
        oversize entry still makes progress.
        """
        start = low - self.offset - 1
        stop = high - self.offset - 1
        if start < 0:
            raise IndexError(f"entry {low} is compacted (offset {self.offset})")
        chunk = self.entries[start:stop]
        if max_bytes is None or not chunk:
            return chunk
        size = 0
        for count, entry in enumerate(chunk):
            size += len(entry.data) + ENTRY_OVERHEAD_BYTES
            if size > max_bytes and count > 0:
                return chunk[:count]
        return chunk

    def append(self, entries: list[Entry]) -> None:
        """Append entries that directly follow the last one (leader path)."""
        self.entries.extend(entries)

    def find_conflict(self, entries: list[Entry]) -> int:
        """The index of the first entry of `entries` that is not already held
        with the same term, or 0 when all of them are (§5.3: an existing entry
        that conflicts with a new one, same index but different term, is
        deleted together with all that follow it)."""
        for entry in entries:
            if self.term_at(entry.index) != entry.term:
                return entry.index
        return 0

    def truncate_and_append(self, entries: list[Entry]) -> None:
        """Replace everything from entries[0].index on with `entries`.

        Pulls `unstable_from` and `persisted` back so that the rewritten
        suffix is handed out again and is not counted durable.
        """
        first = entries[0].index
        if first <= self.offset:
            raise IndexError(f"cannot rewrite compacted entry {first}")
        if first > self.last_index + 1:
            raise IndexError(f"gap: appending {first} after {self.last_index}")
        del self.entries[first - self.offset - 1 :]
        self.entries.extend(entries)
        if first < self.unstable_from:
            self.unstable_from = first
        if first <= self.persisted:
            self.persisted = first - 1

    def compact(self, index: int) -> None:
        """Drop every entry up to `index`, which a durable snapshot now covers.

        Only durable entries may go: what is not yet written must still be
        handed out (and the caller also checks that `index` is applied).
        """
        if index <= self.offset:
            return
        if index > self.persisted:
            raise ValueError(
                f"cannot compact to {index}: entries are durable only up to "
                f"{self.persisted}"
            )
        term = self.term_at(index)
        assert term is not None  # offset < index <= persisted <= last_index
        del self.entries[: index - self.offset]
        self.offset = index
        self.offset_term = term

    def restore(self, index: int, term: int) -> bool:
        """Make the snapshot at (index, term) the start of the log.

        When the log holds that entry, the entries after it are kept (§7:
        by Log Matching the prefix is the snapshot's); otherwise the whole
        log is discarded. Either way everything kept is handed out again
        from `index + 1`, so that the driver rewrites the log behind the new
        snapshot base, and nothing after `index` counts as durable until
        then. Returns whether a suffix was kept.
        """
        keep = self.term_at(index) == term and index <= self.last_index
        if keep:
            del self.entries[: index - self.offset]
        else:
            self.entries = []
        self.offset = index
        self.offset_term = term
        self.persisted = index
        self.unstable_from = index + 1
        return keep and bool(self.entries)

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, and that term.

        This is the conflict-term hint of §5.3 as etcd implements it: a
        follower that rejects an append at (index, term) answers with this,
        and the leader, running the same search over its own log with the
        follower's term, can skip every entry of a diverging term in one round
        trip instead of one entry per round trip.
        """
        index = min(index, self.last_index)
        position = index - self.offset - 1
        entries = self.entries
        while position >= 0 and entries[position].term > term:
            position -= 1
        if position < 0:
            return self.offset, self.offset_term
        return self.offset + 1 + position, entries[position].term

    def unstable_entries(self) -> list[Entry]:
        """Entries not yet handed out for persistence, marking them handed out."""
        start = self.unstable_from - self.offset - 1
        if start >= len(self.entries):
            return []
        chunk = self.entries[start:]
        self.unstable_from = self.last_index + 1
        return chunk

    def has_unstable(self) -> bool:
        return self.unstable_from <= self.last_index

    def mark_persisted(self, index: int, term: int) -> bool:
        """Record that the entries up to (index, term) are durable.

        Ignored when the log no longer holds that entry (a conflict truncated
        it while the write was in flight): by Log Matching, equal (index,
        term) means the whole prefix written is the one we hold.
        """
        if index > self.persisted and self.term_at(index) == term:
            self.persisted = index
            return True
        return False
