"""Doorbell: the one eventfd a consumer sleeps on for all the rings it consumes.

This file owns the consumer side of the sleep/wake protocol (the producer side is
in kernels._publish): set `sleeping` on every ring, re-check every ring is empty,
only then block in poll() on the eventfd plus the caller's own fds, then drain the
eventfd and clear the flags. A producer writes the eventfd only when it flipped a
ring's flag from 1 to 0, so while the consumer is busy no syscall is made at all.

The eventfd is created non-blocking and inheritable so that processes forked after
the Doorbell exists can use `.fd` as the `wake_fd` of their rings.
"""

import os
import select

from coroproc.shm.errors import ShmError
from coroproc.shm.kernels import ring_cancel_sleep, ring_prepare_sleep

# The doorbell and one fd per link/socket: a consumer waits on a handful of fds.
MAX_EXTRA_FDS = 64


class Doorbell:
    """Doorbell() makes a new eventfd; Doorbell(fd=n) adopts an inherited one.

    Adopting matters for restarts: producers keep the fd number they were given, so a
    restarted consumer must sleep on the same eventfd (created by its parent, the
    supervisor, before the first fork) rather than a new one.
    """

    def __init__(self, fd=None):
        if fd is None:
            fd = os.eventfd(0, os.EFD_NONBLOCK)
        else:
            os.set_blocking(fd, False)
        os.set_inheritable(fd, True)
        self._fd = fd

    @property
    def fd(self):
        if self._fd is None:
            raise ShmError("Doorbell is closed")
        return self._fd

    def ring(self):
        """Wake the consumer unconditionally (e.g. to ask it to stop)."""
        os.eventfd_write(self.fd, 1)

    def wait(self, rings, timeout_s, extra_fds=()):
        """Sleep until a ring gets data, an extra fd is readable, or timeout_s passes.

        Returns the readable fds (the doorbell's own fd means "look at the rings");
        [self.fd] without sleeping if a ring is already non-empty; [] on timeout.
        `rings` are ShmRing objects this process consumes; extra_fds are ints or
        objects with fileno() (a zmq socket's FD is edge-triggered: drain it fully).
        """
        if timeout_s is not None and timeout_s < 0:
            raise ValueError(f"Doorbell.wait: timeout_s must be >= 0 or None, got {timeout_s}")
        if len(extra_fds) > MAX_EXTRA_FDS:
            raise ValueError(f"Doorbell.wait: at most {MAX_EXTRA_FDS} extra fds, got {len(extra_fds)}")
        fd = self.fd
        prepared = []
        try:
            for r in rings:
                prepared.append(r)
                if not ring_prepare_sleep(r.hdr):
                    return [fd]
            return self._poll(fd, timeout_s, extra_fds)
        finally:
            for r in prepared:
                ring_cancel_sleep(r.hdr)

    def _poll(self, fd, timeout_s, extra_fds):
        p = select.poll()
        p.register(fd, select.POLLIN)
        for x in extra_fds:
            p.register(x, select.POLLIN)
        timeout_ms = None if timeout_s is None else int(timeout_s * 1000.0 + 0.999)
        ready = [f for f, _ev in p.poll(timeout_ms)]
        if fd in ready:
            self.drain()
        return ready

    def drain(self):
        """Reset the eventfd counter (non-blocking; nothing to drain is fine)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
