"""asyncio integration for Cpg/Cmap handles: fd readers and bounded async event streams.

This file owns how a handle's pollable fd joins an event loop. Two styles:

* `attach(handle)`: loop.add_reader on handle.fileno(); each wake-up runs
  dispatch(CS_DISPATCH_ALL), so the handle's own callbacks run in the loop thread.
* `EventStream`: callbacks push event tuples into a bounded queue that an
  `async for` drains. When the queue is full the stream stops reading the fd (the
  daemon's queues then apply back-pressure) instead of dropping events, and resumes
  once the consumer has made room. `cpg_events(cpg)` wires a Cpg's callbacks;
  `stream.cmap_callback` is a ready-made cmap track callback.

Dispatch errors (e.g. the daemon went away) end the stream by raising the CsError
from `__anext__`, and `attach(...).done` is a future holding it.
"""

import asyncio
from collections import deque
from typing import NamedTuple

from coroproc.ipc import cpg_structs
from coroproc.ipc.cserror import (
    CS_DISPATCH_ALL,
    CS_DISPATCH_ONE_NONBLOCKING,
    CS_ERR_TRY_AGAIN,
    CsError,
)

STREAM_EVENTS_MAX = 1024   # default queue bound of an EventStream


class CmapNotify(NamedTuple):
    track_handle: int
    event: int
    key: str
    new: object      # coroproc.client.cmap.NotifyValue
    old: object
    user_data: object


class Reader:
    """A handle's fd registered with the loop; dispatch(ALL) on every wake-up."""

    def __init__(self, handle, loop=None):
        self.handle = handle
        self.loop = loop or asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self._fd = handle.fileno()
        self.loop.add_reader(self._fd, self._readable)

    def _readable(self):
        try:
            self.handle.dispatch(CS_DISPATCH_ALL)
        except CsError as exc:
            self._finish(exc)

    def _finish(self, exc=None):
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self._fd = None
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    def close(self):
        """Unregister the fd (the handle stays open)."""
        self._finish()


def attach(handle, loop=None) -> Reader:
    """Run `handle`'s callbacks from the running loop whenever its fd is readable."""
    return Reader(handle, loop)


class EventStream:
    """Bounded async iterator over events pushed by a handle's callbacks."""

    def __init__(self, handle, events_max: int = STREAM_EVENTS_MAX, loop=None):
        if events_max < 1:
            raise ValueError(f"events_max={events_max}: must be at least 1")
        self.handle = handle
        self.events_max = events_max
        self.loop = loop or asyncio.get_running_loop()
        self._items = deque()       # bounded by events_max via _pause/_resume
        self._waiter = None
        self._error = None
        self._fd = handle.fileno()
        self._reading = False
        self._resume()

    # callbacks call this
    def push(self, item) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def cmap_callback(self, cmap, track_handle, event, key, new, old, user_data):
        """Pass as `callback` to Cmap.track_add to stream its notifications."""
        self.push(CmapNotify(track_handle, event, key, new, old, user_data))

    def _resume(self):
        if not self._reading and self._fd is not None and len(self._items) < self.events_max:
            self.loop.add_reader(self._fd, self._readable)
            self._reading = True

    def _pause(self):
        if self._reading:
            self.loop.remove_reader(self._fd)
            self._reading = False

    def _readable(self):
        # One event per dispatch so the queue bound holds (a partial-mcast fragment may
        # produce no item, a confchg exactly one).
        try:
            while len(self._items) < self.events_max:
                self.handle.dispatch(CS_DISPATCH_ONE_NONBLOCKING)
        except CsError as exc:
            if exc.code != CS_ERR_TRY_AGAIN:
                self._error = exc
                self.close()
                self.push(None)
                return
        if len(self._items) >= self.events_max:
            self._pause()

    def close(self):
        """Stop reading the fd; events already queued can still be taken."""
        self._pause()
        self._fd = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        while not self._items:
            if self._fd is None:
                raise StopAsyncIteration
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if item is None:  # sentinel pushed on a dispatch error
            raise self._error
        self._resume()
        return item

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()


def cpg_events(cpg, events_max: int = STREAM_EVENTS_MAX, loop=None) -> EventStream:
    """An EventStream of cpg_structs.Deliver / Confchg / TotemConfchg for `cpg`.

    Replaces the handle's callbacks; call it right after creating the Cpg."""
    stream = EventStream(cpg, events_max, loop)
    cpg.deliver_fn = lambda h, group, nodeid, pid, msg: stream.push(
        cpg_structs.Deliver(group, nodeid, pid, msg))
    cpg.confchg_fn = lambda h, group, members, left, joined: stream.push(
        cpg_structs.Confchg(group, members, left, joined))
    cpg.totem_confchg_fn = lambda h, ring_id, members: stream.push(
        cpg_structs.TotemConfchg(ring_id, members))
    return stream
