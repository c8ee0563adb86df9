"""Durable storage of one node: the Raft WAL and the hard-state file.

Files live under `<dir>/raft/`. `WAL` (prez.storage.wal) owns segment files
and recovery; `prez.storage.state` owns the atomically replaced state file.
Errors that must stop start-up are `prez.errors.StorageError`.
"""

from prez.storage.state import load_hard_state, save_hard_state
from prez.storage.wal import DEFAULT_SEGMENT_BYTES, WAL

__all__ = ["DEFAULT_SEGMENT_BYTES", "WAL", "load_hard_state", "save_hard_state"]
