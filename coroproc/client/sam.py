"""Python libsam: the Simple Availability Manager (Corosync's lib/sam.c, include/sam.h).

SAM keeps one application process alive. `register()` forks: the parent becomes the
application's supervisor and never returns from it; the child returns the instance id
(1, 2, … — one more on each restart) and is the application. Once the application has
called `start()`, it must send a health check (`hc_send()`, or let a library thread do
it with `hc_callback_register`) at least every `interval_ms`; otherwise, or when it dies
after start, the supervisor sends the warn signal (SIGTERM unless `warn_signal_set`),
then SIGKILL one interval later, and applies the policy:
  QUIT     the supervisor exits with the application's exit status
  RESTART  a new application instance is forked (instance id + 1)
  | QUORUM start() waits until the node is quorate; losing quorum counts as a failure
  | CMAP   the state is published under resources.process.<pid>.* for the WD engine;
           `mark_failed()` ends the application and leaves state "failed"
`data_store(bytes)` hands a blob to the supervisor, so a restarted instance finds it
with `data_restore()`.

API: the `Sam` class (methods raise CsError with libsam's cs_error_t), and the libsam
function names on a process-wide instance (sam_initialize … sam_finalize). The parent
leaves register() through os._exit(status) after flushing stdio, as libsam's exit():
code after register() runs only in the application.

    sam = Sam(2000, RESTART)
    instance = sam.register()            # child from here on
    data = sam.data_restore()
    sam.start()
    while work(): sam.hc_send()
"""
from __future__ import annotations

import os
import select
import signal
import sys
import threading

from coroproc.ipc.cserror import (
    CS_ERR_BAD_HANDLE,
    CS_ERR_INVALID_PARAM,
    CS_ERR_LIBRARY,
    CS_OK,
    CsError,
)

from . import sam_wire as W
from .sam_cmap import STATE_FAILED, STATE_REGISTERED, CmapPublisher
from .sam_quorum import open_quorum_watch
from .sam_supervisor import ACTION_ERROR, ACTION_QUIT, ACTION_RECOVERY, Supervision

RECOVERY_POLICY_QUIT = 1
RECOVERY_POLICY_RESTART = 2
RECOVERY_POLICY_QUORUM = 0x08
RECOVERY_POLICY_QUORUM_QUIT = RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_QUIT
RECOVERY_POLICY_QUORUM_RESTART = RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_RESTART
RECOVERY_POLICY_CMAP = 0x10
RECOVERY_POLICY_CONFDB = 0x10
QUIT, RESTART, QUORUM, CMAP = (RECOVERY_POLICY_QUIT, RECOVERY_POLICY_RESTART,
                              RECOVERY_POLICY_QUORUM, RECOVERY_POLICY_CMAP)

NOT_INITIALIZED, INITIALIZED, REGISTERED, STARTED, FINALIZED = range(5)
_STATUS_NAMES = ("not initialized", "initialized", "registered", "started", "finalized")
HC_THREAD_SENDS_PER_CALLBACK = 4      # the hc thread sends every interval/4, calls cb every 4


def _base_policy(policy: int) -> int:
    return policy & ~(RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_CMAP)


class Sam:
    POLICY_QUORUM = RECOVERY_POLICY_QUORUM
    POLICY_CMAP = RECOVERY_POLICY_CMAP

    def __init__(self, interval_ms: int, policy: int, *, suffix: str = ""):
        """sam_initialize. interval_ms 0 = no time limit (only the application's death is
        a failure). `suffix` = the node's IPC name suffix for the CMAP policy."""
        call = "sam_initialize"
        if not isinstance(interval_ms, int) or interval_ms < 0:
            raise CsError(CS_ERR_INVALID_PARAM, call,
                          f"time interval {interval_ms!r}: must be an int >= 0 (ms)")
        if _base_policy(policy) not in (RECOVERY_POLICY_QUIT, RECOVERY_POLICY_RESTART) or \
                policy & ~(RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_CMAP | 3):
            raise CsError(CS_ERR_INVALID_PARAM, call,
                          f"recovery policy {policy:#x}: allowed QUIT (1) or RESTART (2), "
                          f"optionally | QUORUM (0x08) | CMAP (0x10)")
        self.interval_ms = interval_ms
        self.policy = policy
        self.suffix = suffix
        self.warn_signal = signal.SIGTERM
        self.instance_id = 0
        self.term_sent = False
        self.am_child = False
        self.status = INITIALIZED
        self.cmap: CmapPublisher | None = None
        self.quorum = open_quorum_watch(suffix) if policy & RECOVERY_POLICY_QUORUM else None
        self._data: bytes | None = None
        self._lock = threading.Lock()
        self._fd_out = self._fd_in = -1       # child: commands out, replies in
        self._hc_callback = None
        self._hc_pipe_w = -1

    # ---- state checks ---------------------------------------------------------------------
    def _require(self, call: str, *allowed: int) -> None:
        if self.status not in allowed:
            want = " or ".join(_STATUS_NAMES[s] for s in allowed)
            raise CsError(CS_ERR_BAD_HANDLE, call,
                          f"SAM is {_STATUS_NAMES[self.status]}; this call needs {want}")

    def _send(self, call: str, command: int, payload: bytes = b"", reply: bool = False):
        try:
            W.send_command(self._fd_out, command, payload)
            if reply:
                err = W.read_reply(self._fd_in)
                if err != CS_OK:
                    raise CsError(err, call, "the SAM supervisor refused")
        except OSError as exc:
            raise CsError(CS_ERR_LIBRARY, call, f"supervisor pipe: {exc}") from None

    # ---- register: the fork -----------------------------------------------------------------
    def register(self) -> int:
        """Fork the application; returns its instance id (in the application only)."""
        call = "sam_register"
        self._require(call, INITIALIZED)
        if self.policy & RECOVERY_POLICY_CMAP and self.cmap is None:
            recovery = "quit" if _base_policy(self.policy) == RECOVERY_POLICY_QUIT else "restart"
            self.cmap = CmapPublisher(recovery, self.interval_ms, self.suffix)
        while True:
            cmd_r, cmd_w = os.pipe()
            rep_r, rep_w = os.pipe()
            if self.cmap is not None:
                try:
                    self.cmap.state(STATE_REGISTERED)
                except CsError:
                    if self.instance_id == 0:
                        raise           # first registration: the caller learns cmap is down
                    # a restart: keep the application alive even if cmap is not
            self.instance_id += 1
            self.term_sent = False
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.close(cmd_r)
                os.close(rep_w)
                return self._become_child(cmd_w, rep_r)
            os.close(cmd_w)
            os.close(rep_r)
            action = Supervision(self, cmd_r, rep_w, pid).run()
            os.close(cmd_r)
            os.close(rep_w)
            if action == ACTION_ERROR:
                raise CsError(CS_ERR_LIBRARY, call, "reading the application's pipe failed")
            _, wait_status = os.waitpid(pid, 0)
            if action == ACTION_RECOVERY and _base_policy(self.policy) == RECOVERY_POLICY_QUIT:
                self._parent_exit(wait_status, failed=True)
            if action == ACTION_QUIT:
                self._parent_exit(wait_status, failed=False)

    def _become_child(self, fd_out: int, fd_in: int) -> int:
        self._fd_out, self._fd_in = fd_out, fd_in
        self.am_child = True
        self.status = REGISTERED
        self._lock = threading.Lock()
        # the supervisor's connections are not the application's: closing them the
        # normal way (e.g. at interpreter exit) would end them for the supervisor too
        if self.cmap is not None:
            self.cmap.detach_in_child()
            self.cmap = None
        if self.quorum is not None:
            self.quorum.detach_in_child()
            self.quorum = None
        return self.instance_id

    def _parent_exit(self, wait_status: int, failed: bool):
        if self.quorum is not None:
            self.quorum.finalize()
        if self.cmap is not None:
            try:
                if failed:
                    self.cmap.state(STATE_FAILED)
                else:
                    self.cmap.destroy()
                self.cmap.close()
            except CsError:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        # libsam: exit(WEXITSTATUS(status)) — 0 for an application ended by a signal
        os._exit((wait_status >> 8) & 0xFF)

    def _mark_failed_policy(self) -> None:
        """Parent side of mark_failed: from now on the policy is QUIT (flags kept)."""
        self.policy = RECOVERY_POLICY_QUIT | (self.policy & (RECOVERY_POLICY_QUORUM |
                                                             RECOVERY_POLICY_CMAP))

    # ---- the application's calls ------------------------------------------------------------
    def start(self) -> None:
        """Health checking on: from now, a check every interval_ms (waits for quorum under
        the QUORUM policy)."""
        call = "sam_start"
        self._require(call, REGISTERED)
        needs_reply = bool(self.policy & (RECOVERY_POLICY_QUORUM | RECOVERY_POLICY_CMAP))
        with self._lock:
            self._send(call, W.CMD_START, reply=needs_reply)
        self._hc_thread_command(W.CMD_START)
        self.status = STARTED

    def stop(self) -> None:
        call = "sam_stop"
        self._require(call, STARTED)
        with self._lock:
            self._send(call, W.CMD_STOP, reply=bool(self.policy & RECOVERY_POLICY_CMAP))
        self._hc_thread_command(W.CMD_STOP)
        self.status = REGISTERED

    def hc_send(self) -> None:
        call = "sam_hc_send"
        self._require(call, STARTED)
        with self._lock:          # not interleaved with a multi-byte command of another thread
            self._send(call, W.CMD_HB)

    def mark_failed(self) -> None:
        """CMAP policy only: end the application now, supervisor quits with state failed."""
        call = "sam_mark_failed"
        self._require(call, STARTED, REGISTERED)
        if not self.policy & RECOVERY_POLICY_CMAP:
            raise CsError(CS_ERR_INVALID_PARAM, call, "needs the CMAP recovery policy")
        with self._lock:
            self._send(call, W.CMD_MARK_FAILED)

    def warn_signal_set(self, warn_signal: int) -> None:
        call = "sam_warn_signal_set"
        self._require(call, INITIALIZED, REGISTERED, STARTED)
        if not 0 < int(warn_signal) < signal.NSIG:
            raise CsError(CS_ERR_INVALID_PARAM, call, f"signal {warn_signal}: 1..{signal.NSIG - 1}")
        with self._lock:
            if self.am_child:
                self._send(call, W.CMD_WARN_SIGNAL_SET, W.INT32.pack(int(warn_signal)),
                           reply=True)
            self.warn_signal = int(warn_signal)

    def data_store(self, data: bytes | None) -> None:
        """Keep `data` (None or b"" clears) with the supervisor, for later instances."""
        call = "sam_data_store"
        self._require(call, INITIALIZED, REGISTERED, STARTED)
        blob = bytes(data) if data else None
        with self._lock:
            if self.am_child:
                self._send(call, W.CMD_DATA_STORE, W.pack_data(blob), reply=True)
            self._data = blob

    def _store_local(self, data: bytes | None) -> None:
        with self._lock:
            self._data = data

    def data_restore(self) -> bytes:
        self._require("sam_data_restore", INITIALIZED, REGISTERED, STARTED)
        with self._lock:
            return self._data or b""

    def data_getsize(self) -> int:
        self._require("sam_data_getsize", INITIALIZED, REGISTERED, STARTED)
        with self._lock:
            return len(self._data or b"")

    def finalize(self) -> None:
        """Stop checking (if started); no further start is possible."""
        self._require("sam_finalize", INITIALIZED, REGISTERED, STARTED)
        if self.status == STARTED:
            self.stop()
        self.status = FINALIZED
        self._data = None

    # ---- health checks from a library thread ------------------------------------------------
    def hc_callback_register(self, callback) -> None:
        """A thread sends a health check every interval/4 while started and calls
        `callback()` every 4th time; a callback returning non-zero (or raising) stops the
        checks, so the supervisor's recovery follows."""
        call = "sam_hc_callback_register"
        self._require(call, REGISTERED)
        if self.interval_ms == 0:
            raise CsError(CS_ERR_INVALID_PARAM, call, "needs a time interval > 0")
        if self._hc_pipe_w >= 0:
            if callback is not None:
                self._hc_callback = callback
            return
        if callback is None:
            raise CsError(CS_ERR_INVALID_PARAM, call, "a callback is required")
        read_fd, self._hc_pipe_w = os.pipe()
        self._hc_callback = callback
        threading.Thread(target=self._hc_thread, args=(read_fd,), name="sam-hc",
                         daemon=True).start()

    def _hc_thread_command(self, command: int) -> None:
        if self._hc_pipe_w >= 0:
            W.write_all(self._hc_pipe_w, bytes((command,)))

    def _hc_thread(self, read_fd: int) -> None:
        running = False
        given_up = False
        sends = 0
        period_ms = max(self.interval_ms >> 2, 1)
        poller = select.poll()
        poller.register(read_fd, select.POLLIN)
        while True:
            ready = poller.poll(period_ms if running and not given_up else None)
            if ready:
                command = W.read_exact(read_fd, 1)
                if not command:
                    return
                running = command[0] == W.CMD_START
                continue
            try:
                self.hc_send()
                sends += 1
            except CsError:
                pass
            if sends >= HC_THREAD_SENDS_PER_CALLBACK:
                sends = 0
                try:
                    given_up = self._hc_callback() != 0
                except Exception:       # noqa: BLE001 — the application's bug = failed check
                    given_up = True


# ---- the libsam function names, on one process-wide instance -------------------------------
_sam: Sam | None = None


def _instance(call: str) -> Sam:
    if _sam is None:
        raise CsError(CS_ERR_BAD_HANDLE, call, "sam_initialize was not called")
    return _sam


def sam_initialize(interval_ms: int, policy: int, suffix: str = "") -> None:
    global _sam
    if _sam is not None and _sam.status != NOT_INITIALIZED:
        raise CsError(CS_ERR_BAD_HANDLE, "sam_initialize", "already initialized")
    _sam = Sam(interval_ms, policy, suffix=suffix)


def sam_register() -> int:
    return _instance("sam_register").register()


def sam_start() -> None:
    _instance("sam_start").start()


def sam_stop() -> None:
    _instance("sam_stop").stop()


def sam_hc_send() -> None:
    _instance("sam_hc_send").hc_send()


def sam_hc_callback_register(callback) -> None:
    _instance("sam_hc_callback_register").hc_callback_register(callback)


def sam_warn_signal_set(warn_signal: int) -> None:
    _instance("sam_warn_signal_set").warn_signal_set(warn_signal)


def sam_data_store(data: bytes | None) -> None:
    _instance("sam_data_store").data_store(data)


def sam_data_restore() -> bytes:
    return _instance("sam_data_restore").data_restore()


def sam_data_getsize() -> int:
    return _instance("sam_data_getsize").data_getsize()


def sam_mark_failed() -> None:
    _instance("sam_mark_failed").mark_failed()


def sam_finalize() -> None:
    _instance("sam_finalize").finalize()


__all__ = [name for name in dir() if name.startswith(("sam_", "RECOVERY_POLICY_"))] + [
    "Sam", "QUIT", "RESTART", "QUORUM", "CMAP"]
