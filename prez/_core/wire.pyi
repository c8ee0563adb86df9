"""Type stub for the compiled peer wire codec (`prez/_core/wire.pyx`)."""

from typing import NamedTuple

from prez.raft.types import Message

WIRE_VERSION: int
HELLO_TYPE: int
DEFAULT_MAX_FRAME_SIZE: int
MESSAGE_FIELDS: tuple[str, ...]

class Hello(NamedTuple):
    name: str
    client_addr: str
    cluster_id: str

def encode_message(msg: Message) -> bytes: ...
def decode_message(frame: bytes | bytearray | memoryview) -> Message: ...
def encode_hello(name: str, client_addr: str, cluster_id: str = "") -> bytes: ...
def decode_hello(frame: bytes | bytearray | memoryview) -> Hello: ...
def frame_type(frame: bytes | bytearray | memoryview) -> int: ...

class FrameReader:
    max_frame_size: int
    def __init__(self, max_frame_size: int = ...) -> None: ...
    @property
    def buffered(self) -> int: ...
    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]: ...
