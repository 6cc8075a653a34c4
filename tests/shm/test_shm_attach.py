"""create/attach refuse what is not a ring of this layout, naming the segment."""

import mmap

import numpy as np
import posix_ipc
import pytest

from coroproc.shm import ShmError, ShmRing
from coroproc.shm import layout as L


def _poke(name, word, value):
    """Overwrite one header word through a raw mapping, as a foreign writer would."""
    shm = posix_ipc.SharedMemory(name)
    mm = mmap.mmap(shm.fd, shm.size)
    shm.close_fd()
    h = np.frombuffer(mm, np.int64, L.HEADER_WORDS)
    h[word] = value
    del h
    mm.close()


@pytest.fixture
def made(ring_name):
    ShmRing.create(ring_name, 8192).close()
    return ring_name


def test_attach_sees_what_create_wrote(made):
    r = ShmRing.attach(made, role="consumer")
    try:
        assert r.capacity_bytes == 8192 and r.name == made and r.empty()
        assert r.counters()["consumer_pid"] > 0
    finally:
        r.close()


def test_bad_magic(made):
    _poke(made, L.W_MAGIC, 0x1234)
    with pytest.raises(ShmError, match=rf"{made}.*bad magic"):
        ShmRing.attach(made)


def test_bad_version(made):
    _poke(made, L.W_VERSION, L.LAYOUT_VERSION + 1)
    with pytest.raises(ShmError, match=rf"{made}.*layout version {L.LAYOUT_VERSION + 1}"):
        ShmRing.attach(made)


@pytest.mark.parametrize("capacity", [4096, 16384, 5000, 0, -8])
def test_capacity_word_disagreeing_with_segment_size(made, capacity):
    _poke(made, L.W_CAPACITY_BYTES, capacity)
    with pytest.raises(ShmError, match=rf"{made}.*capacity"):
        ShmRing.attach(made)


def test_segment_smaller_than_header(ring_name):
    posix_ipc.SharedMemory(ring_name, posix_ipc.O_CREX, size=100).close_fd()
    with pytest.raises(ShmError, match=rf"{ring_name}.*100 bytes, smaller than a ring header"):
        ShmRing.attach(ring_name)


def test_missing_segment(ring_name):
    with pytest.raises(ShmError, match=rf"{ring_name}.*does not exist"):
        ShmRing.attach(ring_name)


def test_create_refuses_stale_segment(made):
    with pytest.raises(ShmError, match=rf"{made}.*already exists"):
        ShmRing.create(made, 8192)


@pytest.mark.parametrize("capacity", [0, 1000, 4095, 6144, 2**31])
def test_create_refuses_bad_capacity(ring_name, capacity):
    with pytest.raises(ShmError, match=rf"{ring_name}.*capacity_bytes={capacity}.*power of two"):
        ShmRing.create(ring_name, capacity)


def test_close_with_live_view_is_explained(ring_name):
    r = ShmRing.create(ring_name, 4096)
    view = r.data[:10]
    with pytest.raises(ShmError, match="views"):
        r.close()
    del view
    r.close()
