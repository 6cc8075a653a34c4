"""SAM's QUORUM policy input: "is this node quorate?", pollable, kept current by dispatch.

Built on coroproc.client.quorum (Python libquorum; takes the node's IPC name suffix).
QuorumWatch does what libsam does with libquorum: connect, learn the current state,
trackstart(CHANGES), then `dispatch_all()` whenever `fileno()` is readable. Errors come
back as cs_error_t numbers, because the supervisor's rules are written in them (a failed
dispatch other than TRY_AGAIN counts as losing quorum).
"""
from __future__ import annotations

from coroproc.client.quorum import CS_TRACK_CHANGES, Quorum
from coroproc.ipc.cserror import CS_DISPATCH_ALL, CS_ERR_LIBRARY, CS_OK, CsError

from .sam_cmap import detach_inherited


class QuorumWatch:
    def __init__(self, suffix: str = ""):
        self.quorate = False
        self.ring_seq = 0
        self._quorum = Quorum(self._on_notify, suffix=suffix)
        try:
            self.quorate = self._quorum.getquorate()
            self._quorum.trackstart(CS_TRACK_CHANGES)
        except CsError:
            self._quorum.close()
            raise

    def _on_notify(self, _handle, quorate, ring_seq, _view) -> None:
        self.quorate = bool(quorate)
        self.ring_seq = ring_seq

    def fileno(self) -> int:
        return self._quorum.fileno()

    def dispatch_all(self) -> int:
        """Run waiting notifications; CS_OK or the cs_error_t that stopped them."""
        try:
            self._quorum.dispatch(CS_DISPATCH_ALL)
        except CsError as exc:
            return exc.code
        except OSError:
            return CS_ERR_LIBRARY
        return CS_OK

    def finalize(self) -> None:
        self._quorum.close()

    def detach_in_child(self) -> None:
        detach_inherited(self._quorum)


def open_quorum_watch(suffix: str = "") -> QuorumWatch:
    return QuorumWatch(suffix)
