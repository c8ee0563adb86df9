"""Type stub for the compiled WAL record framing (`prez/_core/log.pyx`)."""

from enum import IntEnum

from prez.raft.types import Entry

RECORD_HEADER_SIZE: int
RECORD_OVERHEAD: int

class ScanStatus(IntEnum):
    CLEAN = 0
    TORN = 1
    CORRUPT = 2

class ScanResult:
    @property
    def entries(self) -> list[Entry]: ...
    @property
    def offsets(self) -> list[int]: ...
    @property
    def end(self) -> int: ...
    @property
    def status(self) -> ScanStatus: ...
    @property
    def bad_offset(self) -> int: ...
    @property
    def reason(self) -> str: ...

def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int: ...
def frame_entries(
    entries: list[Entry], base_offset: int = 0, offsets_out: list[int] | None = None
) -> bytes: ...
def scan_records(buf: bytes | bytearray | memoryview, start: int = 0) -> ScanResult: ...
