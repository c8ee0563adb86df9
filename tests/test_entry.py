"""The log entry payload codec: compiled module and its twin agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prez._core import entry, entry_py
from prez.errors import ProtocolError

IMPLS = [entry, entry_py]
args_strategy = st.lists(st.binary(max_size=300), min_size=1, max_size=20)


@given(
    now=st.integers(-(2**63), 2**63 - 1), db=st.integers(0, 65535), args=args_strategy
)
def test_round_trip_and_twins_agree(now: int, db: int, args: list[bytes]) -> None:
    data = entry.encode_command(now, db, args)
    assert data == entry_py.encode_command(now, db, args)
    for impl in IMPLS:
        assert impl.decode_command(data) == (now, db, args)


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_every_truncation_is_refused_or_a_shorter_command(impl: object) -> None:
    data = entry.encode_command(1, 2, [b"SET", b"key", b"value"])
    for cut in range(len(data)):
        try:
            now, db, args = impl.decode_command(data[:cut])  # type: ignore[attr-defined]
        except ProtocolError:
            continue
        # A cut exactly between arguments decodes to a prefix of them.
        assert args == [b"SET", b"key", b"value"][: len(args)]


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_malformed_payloads(impl: object) -> None:
    decode = impl.decode_command  # type: ignore[attr-defined]
    with pytest.raises(ProtocolError):
        decode(b"")
    with pytest.raises(ProtocolError):
        decode(entry.encode_command(1, 0, [b"x"])[:10])  # header only: no command
    with pytest.raises(ProtocolError):
        decode(entry.encode_command(1, 0, [b"x"])[:10] + b"\xff\xff\xff\x7fabc")


@pytest.mark.parametrize("impl", IMPLS, ids=["compiled", "twin"])
def test_non_bytes_arguments_are_a_type_error(impl: object) -> None:
    with pytest.raises(TypeError):
        impl.encode_command(1, 0, ["SET"])  # type: ignore[attr-defined]
