"""Try-shutdown with client veto: the trackers, the vote and its timeout (exec/cfg.c rules).

A libcfg client that called corosync_cfg_trackstart is a *tracker*. When a client asks
corosync_cfg_try_shutdown(flags):
* IMMEDIATE: the answer is CS_OK and the node goes down; nobody is asked.
* another try-shutdown is already waiting for votes: CS_ERR_EXIST.
* no other tracker: CS_OK and the node goes down.
* otherwise every other tracker gets the TESTSHUTDOWN event {flags} and the requester's
  answer waits until every asked tracker replied (corosync_cfg_replyto_shutdown) or
  cfg.shutdown_timeout ms passed (undecided = NO). All YES, or flags REGARDLESS: CS_OK
  and the node goes down; otherwise CS_ERR_BUSY. After a timeout the trackers get
  TESTSHUTDOWN again with error CS_ERR_TIMEOUT — in Corosync 3.1.7 only those that once
  asked for a shutdown themselves (cfg.c skips every tracker whose `conn` was never set,
  because it excludes conn == NULL); the same client sees the same here.
A tracker that stops tracking or disconnects counts as YES; a tracker that starts during
a vote is asked too; the requester disconnecting cancels the vote. Counting quirks are
Corosync's on purpose (a reply from a non-tracker is counted; a repeated reply counts
twice), so the same client sequence gets the same answers from both daemons.

The object is pure state + callbacks (no engine, no clock), so the rules are tested
directly; the engine supplies the effects.
"""
from __future__ import annotations

from collections.abc import Callable

from coroproc.ipc.cfg_structs import SHUTDOWN_FLAG_IMMEDIATE, SHUTDOWN_FLAG_REGARDLESS
from coroproc.ipc.cserror import (
    CS_ERR_ACCESS,
    CS_ERR_BUSY,
    CS_ERR_EXIST,
    CS_ERR_TIMEOUT,
    CS_ERR_TRY_AGAIN,
    CS_OK,
)

UNKNOWN, YES, NO = 0, 1, 2
TRACKERS_MAX = 4096          # one per IPC connection; the IPC server bounds connections too


class ShutdownVote:
    def __init__(self, *, send_test: Callable[[object, int, int], None],
                 answer: Callable[[object, int], None], go_down: Callable[[], bool],
                 start_timer: Callable[[float, Callable[[], None]], object],
                 log: Callable[[str, str], None]):
        self._send_test = send_test          # (conn, cs_error, flags): TESTSHUTDOWN event
        self._answer = answer                # (conn, cs_error): the deferred TRYSHUTDOWN reply
        self._go_down = go_down              # multicast SHUTDOWN; False: not sent (ring full)
        self._start_timer = start_timer      # (delay_ms, callback) -> Timer
        self._log = log
        self.trackers: dict = {}             # conn -> UNKNOWN | YES | NO, in trackstart order
        self.asked_before: set = set()       # conns that called try_shutdown (cfg.c ci->conn)
        self.requester = None
        self.flags = 0
        self.yes = self.no = self.expected = 0
        self._timer = None

    # ---- tracking ---------------------------------------------------------------------
    def track_start(self, conn) -> None:
        if conn in self.trackers:
            return
        if len(self.trackers) >= TRACKERS_MAX:
            raise ValueError(f"cfg trackstart: {TRACKERS_MAX} trackers already")
        self.trackers[conn] = UNKNOWN
        if self.requester is not None:       # a vote is running: ask the newcomer too
            self.expected += 1
            self._send_test(conn, CS_OK, self.flags)

    def forget(self, conn) -> None:
        """The client disconnected."""
        self.track_stop(conn)
        self.asked_before.discard(conn)

    def track_stop(self, conn) -> None:
        """trackstop and disconnect (Corosync's remove_ci_from_shutdown)."""
        if conn is self.requester:
            self.requester = None
            self._cancel_timer()
        if conn not in self.trackers:
            return
        previous = self.trackers.pop(conn)
        if self.requester is not None:
            if previous == YES:
                self.yes -= 1
            elif previous == NO:
                self.no -= 1
        self.yes += 1                        # leaving is an implicit YES
        self._check()

    # ---- the vote ---------------------------------------------------------------------
    def try_shutdown(self, conn, flags: int, timeout_ms: float) -> int | None:
        """The immediate answer, or None when the answer waits for the trackers' votes."""
        if flags == SHUTDOWN_FLAG_IMMEDIATE:
            return CS_OK if self._go_down() else CS_ERR_TRY_AGAIN
        if self.requester is not None:
            return CS_ERR_EXIST
        if len(self.asked_before) >= TRACKERS_MAX:
            self.asked_before.clear()        # only a hint for the timeout notice: bounded
        self.asked_before.add(conn)
        self.requester, self.flags = conn, flags
        self.yes = self.no = 0
        asked = [c for c in self.trackers if c is not conn]
        for c in asked:
            self.trackers[c] = UNKNOWN
        self.expected = len(asked)
        if not asked:
            self.requester = None
            return CS_OK if self._go_down() else CS_ERR_TRY_AGAIN
        self._timer = self._start_timer(timeout_ms, self._timed_out)
        for c in asked:
            self._send_test(c, CS_OK, flags)
        return None

    def reply(self, conn, yes: bool) -> int:
        """corosync_cfg_replyto_shutdown: the cs_error of its own reply."""
        if self.requester is None:
            return CS_ERR_ACCESS
        if yes:
            self.yes += 1
        else:
            self.no += 1
        if conn in self.trackers:
            self.trackers[conn] = YES if yes else NO
        self._check()
        return CS_OK

    def _timed_out(self) -> None:
        self._timer = None
        self.no = self.expected              # the undecided are NO
        self._check()
        for c in [c for c in self.trackers if c in self.asked_before]:
            self._send_test(c, CS_ERR_TIMEOUT, self.flags)

    def _check(self) -> None:
        if self.requester is None or self.yes + self.no < self.expected:
            return
        self._cancel_timer()
        requester, self.requester = self.requester, None
        if self.yes >= self.expected or self.flags == SHUTDOWN_FLAG_REGARDLESS:
            self._answer(requester, CS_OK)
            if not self._go_down():
                self._log("error", "shutdown confirmed but the SHUTDOWN message could not be "
                                   "sent (submit ring full); ask again")
        else:
            self._answer(requester, CS_ERR_BUSY)
        self._log("debug", f"shutdown decision is: (yes count: {self.yes}, no count: "
                           f"{self.no}) flags={self.flags:x}")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
