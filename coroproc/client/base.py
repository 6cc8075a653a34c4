"""What every Corosync-style client handle shares: connect, request, dispatch, finalize.

This file owns the mapping from the libqb transport (coroproc.ipc.client.IpcClient) to
the C libraries' calling conventions: every failure surfaces as CsError with the
cs_error_t libcpg/libcmap would have returned, replies are checked for their
cs_error_t, and `dispatch(flags)` runs callbacks with the four cs_dispatch_flags_t
meanings (see _dispatch_loop). Service classes (cpg.py, cmap.py) add the calls.
"""

import errno

from coroproc.ipc import cserror
from coroproc.ipc.client import IpcClient, IpcDisconnected, IpcRefused, IpcTryAgain
from coroproc.ipc.cserror import (
    CS_DISPATCH_ALL,
    CS_DISPATCH_BLOCKING,
    CS_DISPATCH_ONE,
    CS_DISPATCH_ONE_NONBLOCKING,
    CS_ERR_BAD_HANDLE,
    CS_ERR_INVALID_PARAM,
    CS_ERR_LIBRARY,
    CS_ERR_MESSAGE_ERROR,
    CS_ERR_TRY_AGAIN,
    CS_OK,
    CsError,
)
from coroproc.ipc.mar import StructError
from coroproc.ipc.wire import IpcProtocolError

IPC_REQUEST_SIZE = 8192 * 128   # what every corosync library asks qb_ipcc_connect for


class ServiceHandle:
    """One IPC connection to one Corosync service, with the common library calls."""

    service = ""     # "cpg", "cmap": the libqb service name before the suffix
    prefix = ""      # "cpg", "cmap": how calls are named in error messages

    def __init__(self, suffix: str = "", context=None):
        self.context = context
        self._finalized = False
        call = f"{self.prefix}_initialize"
        try:
            self._ipc = IpcClient(self.service, suffix=suffix, max_msg_bytes=IPC_REQUEST_SIZE)
        except IpcRefused as exc:
            raise CsError(cserror.from_errno(exc.error), call, str(exc)) from None
        except IpcDisconnected as exc:
            # qb_ipcc_connect fails with ECONNREFUSED/ENOENT; libraries turn both into this.
            raise CsError(CS_ERR_LIBRARY, call, str(exc)) from None
        except (IpcProtocolError, OSError) as exc:
            raise CsError(CS_ERR_LIBRARY, call, str(exc)) from None

    # ---- standard library calls ------------------------------------------------------------

    def fileno(self) -> int:
        """The pollable fd (`*_fd_get`): readable when an event is waiting."""
        self._check_open(f"{self.prefix}_fd_get")
        return self._ipc.fileno()

    def context_get(self):
        return self.context

    def context_set(self, context) -> None:
        self.context = context

    def finalize(self) -> None:
        """Disconnect; later calls raise CsError CS_ERR_BAD_HANDLE."""
        if self._finalized:
            raise CsError(CS_ERR_BAD_HANDLE, f"{self.prefix}_finalize", "already finalized")
        try:
            self._finalize_request()
        finally:
            self._finalized = True
            self._ipc.close()

    def _finalize_request(self) -> None:
        """Services that send a FINALIZE request override this."""

    def close(self) -> None:
        """finalize() that never raises (for `with` blocks and cleanup paths)."""
        if not self._finalized:
            try:
                self.finalize()
            except CsError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        ipc = getattr(self, "_ipc", None)
        if ipc is not None and not getattr(self, "_finalized", True):
            ipc.close()

    # ---- requests -------------------------------------------------------------------------

    def _check_open(self, call: str) -> None:
        if self._finalized:
            raise CsError(CS_ERR_BAD_HANDLE, call, "the handle was finalized")

    def _request(self, call: str, msg_id: int, payload: bytes = b"", *,
                 accept=(CS_OK,)):
        """Send a request, wait for its reply; (cs_error, body). Raises CsError unless the
        reply's error is in `accept` (transport failures always raise)."""
        self._check_open(call)
        try:
            _rid, error, body = self._ipc.request(msg_id, payload)
        except IpcTryAgain as exc:
            raise CsError(CS_ERR_TRY_AGAIN, call, str(exc)) from None
        except IpcDisconnected as exc:
            raise CsError(CS_ERR_LIBRARY, call, str(exc)) from None
        except IpcProtocolError as exc:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, str(exc)) from None
        except ValueError as exc:  # larger than the negotiated maximum
            raise CsError(cserror.CS_ERR_TOO_BIG, call, str(exc)) from None
        except OSError as exc:
            raise CsError(cserror.from_errno(exc.errno or errno.EIO), call, str(exc)) from None
        if error not in accept:
            raise CsError(error, call)
        return error, body

    def _send(self, call: str, msg_id: int, payload: bytes, fc_enable_max: int = 1) -> None:
        """Send without waiting for a reply (CPG MCAST)."""
        self._check_open(call)
        self._ipc.fc_enable_max = fc_enable_max
        try:
            self._ipc.send(msg_id, payload)
        except IpcTryAgain as exc:
            raise CsError(CS_ERR_TRY_AGAIN, call, str(exc)) from None
        except IpcDisconnected as exc:
            raise CsError(CS_ERR_LIBRARY, call, str(exc)) from None
        except ValueError as exc:
            raise CsError(cserror.CS_ERR_TOO_BIG, call, str(exc)) from None
        finally:
            self._ipc.fc_enable_max = 1

    @staticmethod
    def _decode(call: str, unpack, body):
        """Run a struct unpacker over a reply; a malformed reply is CS_ERR_MESSAGE_ERROR."""
        try:
            return unpack(body)
        except StructError as exc:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, str(exc)) from None

    # ---- dispatch ---------------------------------------------------------------------------

    def dispatch(self, flags: int = CS_DISPATCH_ALL) -> int:
        """Run callbacks for waiting events; returns how many events were handled.

        ALL: every event already waiting, then return. ONE: wait for one event.
        ONE_NONBLOCKING: one event if waiting, else CsError CS_ERR_TRY_AGAIN (as libcpg).
        BLOCKING: until finalize() is called (e.g. from a callback) or the server goes.
        """
        call = f"{self.prefix}_dispatch"
        if flags not in cserror.DISPATCH_FLAGS:
            raise CsError(CS_ERR_INVALID_PARAM, call, f"flags={flags}: allowed 1 ONE, "
                          f"2 ALL, 3 BLOCKING, 4 ONE_NONBLOCKING")
        self._check_open(call)
        timeout_ms = 0 if flags in (CS_DISPATCH_ALL, CS_DISPATCH_ONE_NONBLOCKING) else -1
        handled = 0
        while not self._finalized:
            try:
                event = self._ipc.recv_event(timeout_ms)
            except IpcDisconnected as exc:
                if handled and flags == CS_DISPATCH_BLOCKING:
                    return handled
                raise CsError(CS_ERR_LIBRARY, call, str(exc)) from None
            except IpcProtocolError as exc:
                raise CsError(CS_ERR_MESSAGE_ERROR, call, str(exc)) from None
            if event is None:
                if flags == CS_DISPATCH_ONE_NONBLOCKING:
                    raise CsError(CS_ERR_TRY_AGAIN, call, "no event is waiting")
                return handled
            msg_id, _error, body = event
            self._on_event(call, msg_id, body)
            handled += 1
            if flags in (CS_DISPATCH_ONE, CS_DISPATCH_ONE_NONBLOCKING):
                break
        return handled

    def _on_event(self, call: str, msg_id: int, body: bytes) -> None:
        raise NotImplementedError
