"""The hard-state file `raft/state`: term, vote and commit, replaced atomically.

Layout (little-endian): `u32 CRC32C of the rest | "PRZS" | u8 version |
u64 term | u64 commit | u16 vote length | vote (UTF-8)`. A new state is
written to `state.tmp`, fsynced, renamed over `state`, and the directory is
fsynced, so after a crash the file holds either the old or the new state in
full. A file that fails its checksum is an error naming the file: a node
must not forget its vote.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from prez._core import select
from prez.errors import StorageError
from prez.raft.types import HardState
from prez.storage.durable import write_file_atomically

if TYPE_CHECKING:
    from prez._core import log as _log
else:
    _log = select("log")

crc32c = _log.crc32c

STATE_FILE = "state"
STATE_TMP_FILE = "state.tmp"

_MAGIC = b"PRZS"
_VERSION = 1
_CHECKSUM = struct.Struct("<I")
_FIXED = struct.Struct("<4sBQQH")  # magic, version, term, commit, vote length


def encode_hard_state(state: HardState) -> bytes:
    vote = state.vote.encode()
    if len(vote) > 0xFFFF:
        raise ValueError(f"vote name too long ({len(vote)} bytes)")
    body = _FIXED.pack(_MAGIC, _VERSION, state.term, state.commit, len(vote)) + vote
    return _CHECKSUM.pack(crc32c(body)) + body


def decode_hard_state(data: bytes, path: str) -> HardState:
    """Parse a state file's bytes; any damage raises StorageError naming `path`."""
    if len(data) < _CHECKSUM.size + _FIXED.size:
        raise StorageError(f"{path}: hard-state file is truncated ({len(data)} bytes)")
    (checksum,) = _CHECKSUM.unpack_from(data)
    body = data[_CHECKSUM.size :]
    if crc32c(body) != checksum:
        raise StorageError(f"{path}: hard-state file fails its checksum")
    magic, version, term, commit, vote_len = _FIXED.unpack_from(body)
    if magic != _MAGIC or version != _VERSION:
        raise StorageError(
            f"{path}: not a hard-state file (magic {magic!r}, version {version})"
        )
    vote = body[_FIXED.size :]
    if len(vote) != vote_len:
        raise StorageError(
            f"{path}: vote length {vote_len} does not match the file size"
        )
    try:
        return HardState(term=term, vote=vote.decode(), commit=commit)
    except UnicodeDecodeError:
        raise StorageError(f"{path}: vote is not valid UTF-8")


def load_hard_state(raft_dir: str) -> HardState:
    """The saved hard state, or the initial one when no state file exists yet.

    A leftover `state.tmp` is an interrupted replacement: the old `state` is
    still whole, so the temp file is removed.
    """
    tmp_path = os.path.join(raft_dir, STATE_TMP_FILE)
    if os.path.exists(tmp_path):
        os.unlink(tmp_path)
    path = os.path.join(raft_dir, STATE_FILE)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return HardState()
    return decode_hard_state(data, path)


def save_hard_state(raft_dir: str, state: HardState, *, fsync: bool = True) -> None:
    """Replace `raft_dir/state` atomically (durably too when `fsync`)."""
    write_file_atomically(
        os.path.join(raft_dir, STATE_FILE),
        encode_hard_state(state),
        fsync=fsync,
        temp_path=os.path.join(raft_dir, STATE_TMP_FILE),
    )
