"""The supervising half of SAM: what the parent process does while its application runs.

libsam's sam_parent_handler, as a class. The parent waits on the application's command
pipe (and on the quorum connection under the QUORUM policy). Every command resets the
health-check clock; once started, `interval_ms` without one makes the parent send the
warn signal, and another `interval_ms` without one sends SIGKILL. Losing quorum while
started does the same. EOF on the pipe means the application exited: before start that
is a plain quit, after start a failure (recovery). The caller (Sam.register) turns the
outcome into a restart or an exit.

One difference from libsam 3.1.7, on purpose: START under QUORUM|CMAP gets one reply
(libsam sends two and the second answers the application's next request).
"""
from __future__ import annotations

import os
import select
import signal

from coroproc.ipc.cserror import CS_ERR_LIBRARY, CS_ERR_TRY_AGAIN, CS_OK, CsError

from . import sam_wire as W
from .sam_cmap import STATE_QUORUM_WAIT, STATE_REGISTERED, STATE_STARTED

ACTION_ERROR = "error"
ACTION_RECOVERY = "recovery"
ACTION_QUIT = "quit"
ACTION_CONTINUE = "continue"


class Supervision:
    """One application instance (one child) under supervision."""

    def __init__(self, sam, fd_in: int, fd_out: int, child_pid: int):
        self.sam = sam
        self.fd_in = fd_in          # commands from the child
        self.fd_out = fd_out        # replies to the child
        self.child_pid = child_pid
        self.started = False
        self.action = ACTION_CONTINUE

    def run(self) -> str:
        sam = self.sam
        while self.action == ACTION_CONTINUE:
            poller = select.poll()
            poller.register(self.fd_in, select.POLLIN)
            quorum = sam.quorum if sam.policy & sam.POLICY_QUORUM else None
            if quorum is not None:
                poller.register(quorum.fileno(), select.POLLIN)
            timeout_ms = sam.interval_ms if self.started and sam.interval_ms else None
            try:
                ready = dict(poller.poll(timeout_ms))
            except InterruptedError:
                continue
            if not ready:
                self._kill_child()          # no health check within the interval
                continue
            if self.fd_in in ready and not self._command():
                continue
            if quorum is not None and quorum.fileno() in ready:
                err = quorum.dispatch_all()
                if self.started and (not quorum.quorate or err not in (CS_OK, CS_ERR_TRY_AGAIN)):
                    self._kill_child()
        return self.action

    # ---- commands ---------------------------------------------------------------------------
    def _command(self) -> bool:
        """Handle one command; False when the pipe ended (action is decided)."""
        sam = self.sam
        try:
            head = W.read_exact(self.fd_in, 1)
        except OSError:
            self.action = ACTION_ERROR
            return False
        if not head:
            self.action = ACTION_RECOVERY if self.started else ACTION_QUIT
            return False
        if sam.cmap is not None:
            self._cmap_quietly(sam.cmap.last_hc)
        command = head[0]
        try:
            if command == W.CMD_START:
                self._start()
            elif command == W.CMD_STOP:
                self._stop()
            elif command == W.CMD_DATA_STORE:
                data = W.read_data(self.fd_in)
                sam._store_local(data if data else None)
                W.send_reply(self.fd_out, CS_OK)
            elif command == W.CMD_WARN_SIGNAL_SET:
                sam.warn_signal = W.read_int32(self.fd_in)
                W.send_reply(self.fd_out, CS_OK)
            elif command == W.CMD_MARK_FAILED:
                self.started = True
                sam._mark_failed_policy()
                sam.term_sent = True      # straight to SIGKILL
                self._kill_child()
        except (W.PipeClosed, BrokenPipeError):
            self.action = ACTION_RECOVERY if self.started else ACTION_QUIT
            return False
        return True

    def _start(self) -> None:
        sam = self.sam
        if self.started:
            return
        needs_reply = bool(sam.policy & (sam.POLICY_QUORUM | sam.POLICY_CMAP))
        err = CS_OK
        if sam.policy & sam.POLICY_QUORUM:
            err = self._wait_for_quorum()
            if err is None:
                return                  # the child went away while we waited
        if err == CS_OK and sam.cmap is not None:
            err = self._cmap(lambda: sam.cmap.state(STATE_STARTED))
        if err != CS_OK and sam.cmap is not None:
            self._cmap_quietly(lambda: sam.cmap.state(STATE_REGISTERED))
        if needs_reply:
            W.send_reply(self.fd_out, err)
        if err == CS_OK:
            self.started = True

    def _stop(self) -> None:
        sam = self.sam
        if not self.started:
            return
        if sam.cmap is not None:
            err = self._cmap(lambda: sam.cmap.state(STATE_REGISTERED))
            W.send_reply(self.fd_out, err)
            if err != CS_OK:
                return
        self.started = False

    def _wait_for_quorum(self):
        """CS_OK once quorate, an error, or None if the child exited meanwhile."""
        sam = self.sam
        if sam.cmap is not None:
            err = self._cmap(lambda: sam.cmap.state(STATE_QUORUM_WAIT))
            if err != CS_OK:
                return err
        err = sam.quorum.dispatch_all()
        if err not in (CS_OK, CS_ERR_TRY_AGAIN):
            return err
        while not sam.quorum.quorate:
            poller = select.poll()
            poller.register(self.fd_in, 0)          # only HUP/ERR: the child is gone
            poller.register(sam.quorum.fileno(), select.POLLIN)
            try:
                ready = dict(poller.poll())
            except InterruptedError:
                continue
            if ready.get(self.fd_in, 0) & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                return None
            if sam.quorum.fileno() in ready:
                err = sam.quorum.dispatch_all()
                if err not in (CS_OK, CS_ERR_TRY_AGAIN):
                    return err
        return CS_OK

    # ---- helpers ------------------------------------------------------------------------------
    def _kill_child(self) -> None:
        sam = self.sam
        if not sam.term_sent:
            sig = sam.warn_signal
            sam.term_sent = True
        else:
            sig = signal.SIGKILL
            self.action = ACTION_RECOVERY
        try:
            os.kill(self.child_pid, sig)
        except ProcessLookupError:
            pass                           # already gone: EOF on the pipe follows

    @staticmethod
    def _cmap(fn) -> int:
        try:
            fn()
            return CS_OK
        except CsError as exc:
            return exc.code
        except OSError:
            return CS_ERR_LIBRARY

    def _cmap_quietly(self, fn) -> None:
        self._cmap(fn)     # libsam ignores failures of these updates as well
