"""PowerFS, the power-loss filesystem of the power-loss test (issue 11).

The first tests drive the model (`prez.testing.powerfs.PowerFS`) directly:
after a cut, exactly what was fsynced is left (file data on fsync of the
file, directory entries on fsync of the directory), nothing more and
nothing less. A property test checks the copy-on-write file blocks against
a plain bytearray. The last tests go through a real FUSE mount, to show
that the kernel delivers what the model needs: a directory fsync reaches
`fsyncdir`, O_APPEND, rename over a name, an unlinked open file, a forked
child's writes. Those skip without root, /dev/fuse or mfusepy, unless
PREZ_REQUIRE_FUSE=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prez.testing.powerfs import (
    BLOCK,
    REQUIRE_ENV,
    File,
    PowerFS,
    PowerFSMount,
    is_mounted,
    unavailable_reason,
)

W = os.O_WRONLY | os.O_CREAT


def write_file(fs: PowerFS, path: str, data: bytes, *, fsync: bool = True) -> int:
    fh = fs.create(path, 0o644, W)
    fs.write(fh, data, 0)
    if fsync:
        fs.fsync(None, fh)
    return fh


def content(fs: PowerFS, path: str) -> bytes:
    node = fs.lookup(path)
    assert isinstance(node, File)
    return node.read(node.size + 1, 0)


def exists(fs: PowerFS, path: str) -> bool:
    try:
        fs.lookup(path)
    except FileNotFoundError:
        return False
    return True


@pytest.fixture
def fs() -> PowerFS:
    fs = PowerFS()
    fs.mkdir("/d", 0o755)
    fs.fsyncdir("/")
    return fs


# -- files and their directory entries ------------------------------------------


def test_a_fsynced_file_in_a_directory_never_fsynced_vanishes(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"data")
    report = fs.cut()
    assert not exists(fs, "/d/f")
    assert report.vanished == ["/d/f"]


def test_a_fsynced_file_whose_directory_was_fsynced_is_kept(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"data")
    fs.fsyncdir("/d")
    report = fs.cut()
    assert content(fs, "/d/f") == b"data"
    assert report.vanished == [] and report.reverted == []


def test_a_file_never_fsynced_comes_back_empty(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"data", fsync=False)
    fs.fsyncdir("/d")
    fs.cut()
    assert content(fs, "/d/f") == b""


def test_data_written_after_the_last_fsync_is_lost(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"first")
    fs.fsyncdir("/d")
    fs.write(fh, b"+second", 5)
    assert content(fs, "/d/f") == b"first+second"
    report = fs.cut()
    assert content(fs, "/d/f") == b"first"
    assert report.reverted == ["/d/f"] and report.bytes_lost == len(b"+second")


def test_an_overwrite_in_place_after_the_fsync_is_undone(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"a" * (3 * BLOCK))
    fs.fsyncdir("/d")
    fs.write(fh, b"b" * 10, BLOCK - 5)  # across a block boundary
    fs.cut()
    assert content(fs, "/d/f") == b"a" * (3 * BLOCK)


def test_a_truncate_after_the_fsync_is_undone(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"0123456789")
    fs.fsyncdir("/d")
    fs.truncate(None, 3, fh)
    fs.write(fh, b"xyz", 3)
    fs.cut()
    assert content(fs, "/d/f") == b"0123456789"


def test_a_truncate_then_fsync_is_durable(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"0123456789")
    fs.fsyncdir("/d")
    fs.truncate(None, 4, fh)
    fs.fsync(None, fh)
    fs.cut()
    assert content(fs, "/d/f") == b"0123"


def test_o_trunc_makes_nothing_durable(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"old")
    fs.fsyncdir("/d")
    fh = fs.open("/d/f", os.O_WRONLY | os.O_TRUNC)
    fs.write(fh, b"new", 0)
    fs.cut()
    assert content(fs, "/d/f") == b"old"


def test_o_append_writes_at_the_end_whatever_the_offset(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"abc")
    fh = fs.open("/d/f", os.O_WRONLY | os.O_APPEND)
    fs.write(fh, b"def", 0)
    assert content(fs, "/d/f") == b"abcdef"


# -- renames, unlinks, directories --------------------------------------------------


def test_a_rename_without_a_directory_fsync_is_undone(fs: PowerFS) -> None:
    write_file(fs, "/d/f.tmp", b"new")
    fs.fsyncdir("/d")
    fs.rename("/d/f.tmp", "/d/f")
    report = fs.cut()
    assert not exists(fs, "/d/f")
    assert content(fs, "/d/f.tmp") == b"new"
    assert report.vanished == ["/d/f"] and report.reappeared == ["/d/f.tmp"]


def test_a_rename_followed_by_a_directory_fsync_is_durable(fs: PowerFS) -> None:
    write_file(fs, "/d/f.tmp", b"new")
    fs.rename("/d/f.tmp", "/d/f")
    fs.fsyncdir("/d")
    fs.cut()
    assert content(fs, "/d/f") == b"new"
    assert not exists(fs, "/d/f.tmp")


def test_a_rename_over_a_name_not_made_durable_gives_back_the_old_file(
    fs: PowerFS,
) -> None:
    write_file(fs, "/d/state", b"term 1")
    fs.fsyncdir("/d")
    write_file(fs, "/d/state.tmp", b"term 2")
    fs.rename("/d/state.tmp", "/d/state")
    assert content(fs, "/d/state") == b"term 2"
    report = fs.cut()
    assert content(fs, "/d/state") == b"term 1"
    assert report.replaced == ["/d/state"]


def test_an_unfsynced_temp_file_renamed_into_place_is_empty_after_a_cut(
    fs: PowerFS,
) -> None:
    write_file(fs, "/d/state", b"term 1")
    fs.fsyncdir("/d")
    write_file(fs, "/d/state.tmp", b"term 2", fsync=False)
    fs.rename("/d/state.tmp", "/d/state")
    fs.fsyncdir("/d")
    fs.cut()
    assert content(fs, "/d/state") == b""  # why the temp file must be fsynced


def test_rename_across_directories_is_refused(fs: PowerFS) -> None:
    fs.mkdir("/e", 0o755)
    write_file(fs, "/d/f", b"x")
    with pytest.raises(OSError) as e:
        fs.rename("/d/f", "/e/f")
    assert e.value.errno == errno.EXDEV


def test_rename_flags_are_refused(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"x")
    with pytest.raises(OSError) as e:
        fs.rename("/d/f", "/d/g", 1)
    assert e.value.errno == errno.EINVAL


def test_an_unlink_without_a_directory_fsync_is_undone(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"x")
    fs.fsyncdir("/d")
    fs.unlink("/d/f")
    report = fs.cut()
    assert content(fs, "/d/f") == b"x"
    assert report.reappeared == ["/d/f"]


def test_an_unlink_followed_by_a_directory_fsync_is_durable(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"x")
    fs.fsyncdir("/d")
    fs.unlink("/d/f")
    fs.fsyncdir("/d")
    fs.cut()
    assert not exists(fs, "/d/f")


def test_an_unlinked_open_file_keeps_its_handle_and_comes_back(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"x")
    fs.fsyncdir("/d")
    fs.unlink("/d/f")
    fs.write(fh, b"yz", 1)
    fs.fsync(None, fh)
    assert fs.read(fh, 10, 0) == b"xyz"
    fs.cut()
    assert content(fs, "/d/f") == b"xyz"  # the unlink was never durable


def test_mkdir_is_not_durable_without_an_fsync_of_the_parent(fs: PowerFS) -> None:
    fs.mkdir("/d/raft", 0o755)
    write_file(fs, "/d/raft/state", b"term 5")
    fs.fsyncdir("/d/raft")  # the directory's own entries: not its name
    report = fs.cut()
    assert not exists(fs, "/d/raft")
    assert report.vanished == ["/d/raft"]


def test_mkdir_with_both_fsyncs_is_durable(fs: PowerFS) -> None:
    fs.mkdir("/d/raft", 0o755)
    fs.fsyncdir("/d")
    write_file(fs, "/d/raft/state", b"term 5")
    fs.fsyncdir("/d/raft")
    fs.cut()
    assert content(fs, "/d/raft/state") == b"term 5"


def test_a_durable_new_directory_comes_back_empty_without_its_own_fsync(
    fs: PowerFS,
) -> None:
    fs.mkdir("/d/raft", 0o755)
    fs.fsyncdir("/d")
    write_file(fs, "/d/raft/state", b"term 5")
    fs.cut()
    assert fs.readdir("/d/raft") == [".", ".."]


def test_an_rmdir_without_a_parent_fsync_is_undone(fs: PowerFS) -> None:
    fs.mkdir("/d/s", 0o755)
    fs.fsyncdir("/d")
    fs.rmdir("/d/s")
    fs.cut()
    assert fs.readdir("/d/s") == [".", ".."]


def test_rmdir_of_a_directory_in_use_is_refused(fs: PowerFS) -> None:
    write_file(fs, "/d/f", b"x")
    with pytest.raises(OSError) as e:
        fs.rmdir("/d")
    assert e.value.errno == errno.ENOTEMPTY


def test_sync_makes_everything_durable(fs: PowerFS) -> None:
    fs.mkdir("/d/sub", 0o755)
    fh = write_file(fs, "/d/sub/f", b"abc", fsync=False)
    fs.sync()
    fs.write(fh, b"lost", 3)
    fs.cut()
    assert content(fs, "/d/sub/f") == b"abc"


def test_a_handle_from_before_a_cut_changes_nothing(fs: PowerFS) -> None:
    fh = write_file(fs, "/d/f", b"x")
    fs.fsyncdir("/d")
    fs.cut()
    for attempt in (
        lambda: fs.write(fh, b"late", 0),
        lambda: fs.fsync(None, fh),
        lambda: fs.truncate(None, 0, fh),
    ):
        with pytest.raises(OSError) as e:
            attempt()
        assert e.value.errno == errno.EIO
    assert fs.stats["late_ops"] == 3
    assert content(fs, "/d/f") == b"x"


def test_cycles_of_cuts_keep_only_what_each_fsync_saw(fs: PowerFS) -> None:
    expected = b""
    for cycle in range(5):
        fh = fs.create("/d/log", 0o644, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        fs.fsyncdir("/d")
        fs.write(fh, b"synced%d;" % cycle, 0)
        fs.fsync(None, fh)
        expected += b"synced%d;" % cycle
        fs.write(fh, b"unsynced%d;" % cycle, 0)
        fs.cut()
        assert content(fs, "/d/log") == expected


# -- the copy-on-write blocks against a plain bytearray ------------------------------

_offsets = st.integers(0, 3 * BLOCK)
_operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), _offsets, st.binary(min_size=0, max_size=BLOCK + 7)
        ),
        st.tuples(st.just("truncate"), _offsets, st.just(b"")),
        st.tuples(st.just("fsync"), st.just(0), st.just(b"")),
        st.tuples(st.just("cut"), st.just(0), st.just(b"")),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(_operations)
def test_file_blocks_behave_as_a_bytearray_with_a_durable_copy(
    operations: list[tuple[str, int, bytes]],
) -> None:
    f = File(0o644)
    current, durable = bytearray(), b""
    for op, offset, data in operations:
        if op == "write":
            if offset > len(current):
                current.extend(bytes(offset - len(current)))
            current[offset : offset + len(data)] = data
            f.write(data, offset)
        elif op == "truncate":
            del current[offset:]
            current.extend(bytes(offset - len(current)))
            f.truncate(offset)
        elif op == "fsync":
            durable = bytes(current)
            f.fsync()
        else:
            current = bytearray(durable)
            f.revert()
        assert f.size == len(current)
        assert f.read(len(current) + BLOCK, 0) == bytes(current)
    for block in f.blocks:
        assert len(block) == BLOCK


# -- through a real FUSE mount ---------------------------------------------------------


@pytest.fixture(scope="module")
def mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowerFSMount]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"FUSE required ({REQUIRE_ENV}=1) but {reason}")
        pytest.skip(f"PowerFS needs FUSE: {reason}")
    base = tmp_path_factory.mktemp("powerfs")
    m = PowerFSMount(base / "mnt", base / "work")
    m.start()
    try:
        yield m
    finally:
        m.close()
        assert not is_mounted(base / "mnt")


@pytest.fixture
def mdir(mount: PowerFSMount, request: pytest.FixtureRequest) -> Path:
    """A durable, empty directory of this test's own in the mount."""
    d: Path = mount.mountpoint / str(request.node.name)
    d.mkdir()
    mount.sync()
    return d


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_mount_a_directory_fsync_reaches_the_filesystem(
    mount: PowerFSMount, mdir: Path
) -> None:
    before = mount.stats()["fsyncdirs"]
    (mdir / "kept").write_bytes(b"k")
    fsync_path(mdir / "kept")
    fsync_path(mdir)
    (mdir / "gone").write_bytes(b"g")
    fsync_path(mdir / "gone")
    assert mount.stats()["fsyncdirs"] == before + 1
    report = mount.cut()
    assert f"/{mdir.name}/gone" in report["vanished"]
    assert sorted(os.listdir(mdir)) == ["kept"]
    assert (mdir / "kept").read_bytes() == b"k"


def test_mount_append_and_unsynced_tail(mount: PowerFSMount, mdir: Path) -> None:
    path = mdir / "wal"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"one;")
        os.fsync(fd)
        fsync_path(mdir)
        os.write(fd, b"two;")
        os.fdatasync(fd)
        os.write(fd, b"three;")
        assert path.read_bytes() == b"one;two;three;"
    finally:
        os.close(fd)
    mount.cut()
    assert path.read_bytes() == b"one;two;"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"four;")  # appends at the durable end, not a stale one
    finally:
        os.close(fd)
    assert path.read_bytes() == b"one;two;four;"


def test_mount_replace_and_its_directory_fsync(mount: PowerFSMount, mdir: Path) -> None:
    (mdir / "state").write_bytes(b"old")
    mount.sync()

    def replace_with_new(*, fsync_dir: bool) -> None:
        fd, temp = tempfile.mkstemp(dir=mdir, suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)
            os.write(fd, b"new")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, mdir / "state")
        if fsync_dir:
            fsync_path(mdir)

    replace_with_new(fsync_dir=False)
    assert (mdir / "state").read_bytes() == b"new"
    mount.cut()
    # Neither the temp file's name nor the rename was durable.
    assert sorted(os.listdir(mdir)) == ["state"]
    assert (mdir / "state").read_bytes() == b"old"
    replace_with_new(fsync_dir=True)
    mount.cut()
    assert sorted(os.listdir(mdir)) == ["state"]
    assert (mdir / "state").read_bytes() == b"new"


def test_mount_an_unlinked_open_file(mount: PowerFSMount, mdir: Path) -> None:
    path = mdir / "f"
    path.write_bytes(b"x")
    mount.sync()
    fd = os.open(path, os.O_RDWR)
    try:
        os.unlink(path)
        os.pwrite(fd, b"yz", 1)
        os.fsync(fd)
        os.ftruncate(fd, 2)  # by handle: the file has no name now
        assert os.pread(fd, 10, 0) == b"xy"
        assert not path.exists()
    finally:
        os.close(fd)
    mount.cut()
    assert path.read_bytes() == b"xyz"  # the last fsync, under its durable name


def test_mount_a_forked_child_writes_through_the_model(
    mount: PowerFSMount, mdir: Path
) -> None:
    pid = os.fork()
    if pid == 0:  # as the server's snapshot child
        code = 1
        try:
            fd = os.open(mdir / "snap.tmp", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"snapshot")
            os.fsync(fd)
            os.close(fd)
            fsync_path(mdir)
            os.replace(mdir / "snap.tmp", mdir / "snap")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (mdir / "snap").read_bytes() == b"snapshot"
    mount.cut()  # the child never fsynced the directory after the rename
    assert sorted(os.listdir(mdir)) == ["snap.tmp"]
    assert (mdir / "snap.tmp").read_bytes() == b"snapshot"


def test_mount_a_descriptor_from_before_the_cut_is_refused(
    mount: PowerFSMount, mdir: Path
) -> None:
    path = mdir / "f"
    path.write_bytes(b"x")
    mount.sync()
    fd = os.open(path, os.O_WRONLY)
    try:
        before = mount.stats()["late_ops"]
        mount.cut()
        with pytest.raises(OSError) as e:
            os.write(fd, b"late")
        assert e.value.errno == errno.EIO
        assert mount.stats()["late_ops"] == before + 1
    finally:
        os.close(fd)
    assert path.read_bytes() == b"x"
