"""ShmRing: one named POSIX shared-memory segment holding one SPSC record ring.

This file owns the segment's life cycle (create / attach with validation / close /
unlink) and a Python-level push/pop for callers that are not jitted. The hot-path
operations are the @njit kernels in kernels.py, re-exported here so that jitted
code can do `from coroproc.shm.ring import ring_push` and call them on `.hdr` and
`.data` directly.
"""

import mmap
import os

import numpy as np
import posix_ipc
from coroproc.njit import njit

from coroproc.shm import layout as L
from coroproc.shm.atomics import load_acquire, store_release
from coroproc.shm.errors import ShmError
from coroproc.shm.kernels import (  # noqa: F401  (re-exported API)
    PEEK_CORRUPT,
    PEEK_EMPTY,
    PEEK_RECORD,
    PUSH_FULL,
    PUSH_OK,
    PUSH_OK_WAKE,
    PUSH_TOO_LARGE,
    RESERVE_FULL,
    RESERVE_TOO_LARGE,
    ring_cancel_sleep,
    ring_commit,
    ring_empty,
    ring_head,
    ring_peek,
    ring_prepare_sleep,
    ring_push,
    ring_release,
    ring_reserve,
    ring_tail,
)

_ROLES = (None, "producer", "consumer")


@njit(cache=True)
def _load_word(hdr, word):
    return load_acquire(hdr, word)


@njit(cache=True)
def _store_word(hdr, word, value):
    store_release(hdr, word, value)


def load_kernels() -> None:
    """Compile (or load from the cache) the kernels create() and attach() run, on scratch
    memory. The supervisor calls it from a worker thread before its first segment exists:
    compiled on the main thread inside create(), a stop signal landing in LLVM's callbacks
    into Python was printed and dropped, and the node went on starting."""
    scratch = np.zeros(L.HEADER_WORDS, np.int64)
    _store_word(scratch, L.W_MAGIC, L.RING_MAGIC)
    _load_word(scratch, L.W_MAGIC)


class ShmRing:
    """A mapped ring segment. Use ShmRing.create() or ShmRing.attach(), not the constructor."""

    def __init__(self, name, shm_size_bytes, mm, wake_fd):
        self._name = name
        self._mm = mm
        self._size_bytes = shm_size_bytes
        self.hdr = np.frombuffer(mm, np.int64, L.HEADER_WORDS, 0)
        self.data = None  # set once the header is validated
        self.wake_fd = wake_fd

    # ---- life cycle -------------------------------------------------------------

    @classmethod
    def create(cls, name, capacity_bytes, wake_fd=None, role=None):
        """Create a new segment (fails if one of that name exists: a stale run, or a name clash)."""
        try:
            L.check_capacity(capacity_bytes, name)
        except ValueError as e:
            raise ShmError(str(e)) from None
        _check_role(role, name)
        size = L.segment_bytes(capacity_bytes)
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError:
            raise ShmError(
                f"shm ring {name!r} already exists (/dev/shm{name}); a previous run did not "
                f"clean up or another node uses the same cluster name and nodeid. Remove it "
                f"with coroproc.shm.names.remove_node_segments() or unlink it by hand"
            ) from None
        except (ValueError, posix_ipc.Error) as e:
            raise ShmError(f"shm ring {name!r}: cannot create a segment of {size} bytes: {e}") from None
        try:
            mm = mmap.mmap(shm.fd, size)
        finally:
            shm.close_fd()
        ring = cls(name, size, mm, wake_fd)
        h = ring.hdr
        h[:] = 0  # ftruncate zero-fills; be explicit so the layout does not depend on it
        h[L.W_VERSION] = L.LAYOUT_VERSION
        h[L.W_CAPACITY_BYTES] = capacity_bytes
        h[L.W_HEADER_BYTES] = L.HEADER_BYTES
        # magic last, with release: an attacher that sees it sees a complete header
        _store_word(h, L.W_MAGIC, L.RING_MAGIC)
        ring._map_data(capacity_bytes)
        ring._claim(role)
        return ring

    @classmethod
    def attach(cls, name, wake_fd=None, role=None):
        """Map an existing ring after checking it is one, of this layout version, of a sane size."""
        _check_role(role, name)
        try:
            shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError:
            raise ShmError(f"shm ring {name!r} does not exist (no /dev/shm{name}); was it created?") from None
        size = shm.size
        if size < L.HEADER_BYTES:
            shm.close_fd()
            raise ShmError(
                f"shm ring {name!r} is {size} bytes, smaller than a ring header "
                f"({L.HEADER_BYTES} bytes): not a coroproc ring"
            )
        try:
            mm = mmap.mmap(shm.fd, size)
        finally:
            shm.close_fd()
        ring = cls(name, size, mm, wake_fd)
        capacity, problem = ring._validate()
        if problem is not None:
            # raised here, not inside _validate: a traceback holding its frame would
            # keep a header view alive and make the unmap fail
            ring.close()
            raise ShmError(problem)
        ring._map_data(capacity)
        ring._claim(role)
        return ring

    def _validate(self):
        """(capacity_bytes, None) for a good header, else (0, message naming the segment)."""
        h, name = self.hdr, self._name
        magic = int(_load_word(h, L.W_MAGIC))
        if magic != L.RING_MAGIC:
            return 0, (
                f"shm ring {name!r}: bad magic {magic & 0xFFFFFFFFFFFFFFFF:#018x} "
                f"(expected {L.RING_MAGIC:#018x}); not a coroproc ring, or not yet initialised"
            )
        version = int(h[L.W_VERSION])
        if version != L.LAYOUT_VERSION:
            return 0, (
                f"shm ring {name!r}: layout version {version}, this build reads version "
                f"{L.LAYOUT_VERSION}; stop every process of the node and restart them from one build"
            )
        capacity = int(h[L.W_CAPACITY_BYTES])
        try:
            L.check_capacity(capacity, name)
        except ValueError as e:
            return 0, f"{e} (read from the header)"
        hdr_bytes = int(h[L.W_HEADER_BYTES])
        if hdr_bytes != L.HEADER_BYTES or self._size_bytes != L.segment_bytes(capacity):
            return 0, (
                f"shm ring {name!r}: segment is {self._size_bytes} bytes with header {hdr_bytes} bytes, "
                f"but capacity {capacity} needs {L.segment_bytes(capacity)} with header {L.HEADER_BYTES}"
            )
        return capacity, None

    def _map_data(self, capacity_bytes):
        self.data = np.frombuffer(self._mm, np.uint8, capacity_bytes, L.HEADER_BYTES)

    def _claim(self, role):
        if role == "producer":
            _store_word(self.hdr, L.W_PRODUCER_PID, os.getpid())
        elif role == "consumer":
            _store_word(self.hdr, L.W_CONSUMER_PID, os.getpid())

    def close(self):
        """Unmap. Every numpy view of .hdr/.data taken by the caller must be dropped first."""
        if self._mm is None:
            return
        self.hdr = None
        self.data = None
        try:
            self._mm.close()
        except BufferError:
            raise ShmError(
                f"shm ring {self._name!r}: cannot unmap, numpy views of .hdr/.data are still "
                f"alive; delete them before close()"
            ) from None
        self._mm = None

    def unlink(self):
        """Remove the name from /dev/shm (mappings stay valid until closed). Idempotent."""
        try:
            posix_ipc.unlink_shared_memory(self._name)
        except posix_ipc.ExistentialError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- properties -------------------------------------------------------------

    @property
    def name(self):
        return self._name

    @property
    def capacity_bytes(self):
        return int(self.data.shape[0])

    @property
    def max_payload_bytes(self):
        return L.max_payload_bytes(self.capacity_bytes)

    # ---- Python-level producer/consumer -----------------------------------------

    def push(self, rtype, payload, flags=0):
        """Append one record. False if the ring is full (back-pressure, counted in push_full).

        Raises ShmError if the record can never fit or rtype/flags are out of range.
        Rings the consumer's eventfd (self.wake_fd) only if the consumer is asleep.
        """
        src = payload if isinstance(payload, np.ndarray) else np.frombuffer(payload, np.uint8)
        if src.dtype != np.uint8 or src.ndim != 1:
            src = np.ascontiguousarray(src).view(np.uint8).reshape(-1)
        n = int(src.shape[0])
        rc = ring_push(self.hdr, self.data, rtype, flags, src, 0, n)
        if rc == PUSH_TOO_LARGE:
            raise ShmError(
                f"shm ring {self._name!r}: refused record rtype={rtype} flags={flags} of {n} bytes; "
                f"allowed: rtype 1..65535, flags 0..65535, payload <= {self.max_payload_bytes} bytes"
            )
        if rc == PUSH_OK_WAKE and self.wake_fd is not None:
            os.eventfd_write(self.wake_fd, 1)
        return rc != PUSH_FULL

    def pop_batch(self, max_records=1024):
        """Copy out up to max_records records from tail, then release them. [(rtype, flags, bytes)]."""
        if max_records < 1:
            raise ValueError(f"shm ring {self._name!r}: max_records must be >= 1, got {max_records}")
        hdr, data = self.hdr, self.data
        pos = int(hdr[L.W_TAIL])
        out = []
        nbytes = 0
        while len(out) < max_records:
            st, off, n, rtype, flags, nxt = ring_peek(hdr, data, pos)
            if st == PEEK_EMPTY:
                break
            if st == PEEK_CORRUPT:
                msg = (
                    f"shm ring {self._name!r}: corrupt record at position {pos} "
                    f"(offset {off}, length {n}, head {ring_head(hdr)})"
                )
                del hdr, data  # a traceback must not pin views of the mapping
                raise ShmError(msg)
            out.append((int(rtype), int(flags), data[off : off + n].tobytes()))
            nbytes += n
            pos = nxt
        if out:
            ring_release(hdr, pos, len(out), nbytes)
        return out

    def empty(self):
        return bool(ring_empty(self.hdr))

    def counters(self):
        h = self.hdr
        c = {k: int(h[w]) for k, w in L.COUNTER_WORDS.items()}
        c.update(
            head=int(ring_head(h)),
            tail=int(ring_tail(h)),
            capacity_bytes=self.capacity_bytes,
            sleeping=int(h[L.W_SLEEPING]),
            producer_pid=int(h[L.W_PRODUCER_PID]),
            consumer_pid=int(h[L.W_CONSUMER_PID]),
        )
        return c

    def __repr__(self):
        if self._mm is None:
            return f"ShmRing({self._name!r}, closed)"
        return f"ShmRing({self._name!r}, capacity_bytes={self.capacity_bytes})"


def _check_role(role, name):
    if role not in _ROLES:
        raise ShmError(f"shm ring {name!r}: role must be 'producer', 'consumer' or None, got {role!r}")
