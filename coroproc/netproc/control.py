"""PipeControl: the smallest real control object a LinkProcess can run under.

The supervisor's control object speaks ZeroMQ (heartbeats, commands); tests, benchmarks and
a stand-alone link need only "stop": a pipe whose write end the owner keeps. Writing a byte
or closing the write end (the owner died) stops the loop on its next iteration; the read
end is in fds() so a sleeping loop wakes at once.
"""
from __future__ import annotations

import os


class PipeControl:
    def __init__(self, stop_fd: int, tick_s: float = 0.1):
        if tick_s <= 0:
            raise ValueError(f"PipeControl: tick_s must be > 0, got {tick_s}")
        os.set_blocking(stop_fd, False)
        self.stop_fd = stop_fd
        self.tick_s = tick_s
        self.polls = 0

    @classmethod
    def pair(cls, tick_s: float = 0.1) -> tuple[PipeControl, int]:
        """A control and the write end that stops it (write a byte, or close it)."""
        r, w = os.pipe()
        return cls(r, tick_s), w

    def fds(self) -> list[int]:
        return [self.stop_fd]

    def poll(self) -> bool:
        self.polls += 1
        try:
            os.read(self.stop_fd, 1)   # a byte (stop requested) or b"" (owner gone): stop
        except BlockingIOError:
            return True
        return False

    def close(self) -> None:
        os.close(self.stop_fd)
