"""Python libcpg: Closed Process Group calls and callbacks over libqb socket-mode IPC.

This file owns the client side of CPG as libcpg 3.1.7 behaves (lib/cpg.c): one
connection per handle, one joined group per handle, fire-and-forget multicast that
honours the shared flow-control flag at level 2, fragmentation of messages larger than
cpg_max_atomic_msgsize into PARTIAL_MCAST requests (each answered by PARTIAL_SEND),
and reassembly of PARTIAL_DELIVER events per (nodeid, pid) before deliver_fn runs.

Callbacks receive the handle first, like the C ones:
  deliver_fn(cpg, group: bytes, nodeid, pid, message: bytes)
  confchg_fn(cpg, group: bytes, members, left, joined)   # lists of CpgAddress
  totem_confchg_fn(cpg, ring_id: RingId, members: list[int])
"""

import os
import time

from coroproc.client.base import ServiceHandle
from coroproc.ipc import cpg_structs as S
from coroproc.ipc.cpg_structs import (  # re-exported for users of this module
    ITERATION_ALL,
    ITERATION_NAME_ONLY,
    ITERATION_ONE_GROUP,
    MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
    TYPE_AGREED,
    TYPE_FIFO,
    TYPE_SAFE,
    TYPE_UNORDERED,
    CpgAddress,
    IterationDescription,
    RingId,
)
from coroproc.ipc.cserror import (
    CS_ERR_BUSY,
    CS_ERR_INVALID_PARAM,
    CS_ERR_MESSAGE_ERROR,
    CS_ERR_NAME_TOO_LONG,
    CS_ERR_NO_SECTIONS,
    CS_ERR_TRY_AGAIN,
    CS_OK,
    CsError,
)

__all__ = [
    "ITERATION_ALL",
    "ITERATION_NAME_ONLY",
    "ITERATION_ONE_GROUP",
    "MODEL_V1_DELIVER_INITIAL_TOTEM_CONF",
    "TYPE_AGREED",
    "TYPE_FIFO",
    "TYPE_SAFE",
    "TYPE_UNORDERED",
    "Cpg",
    "CpgAddress",
    "IterationDescription",
    "RingId",
]

PARTIAL_RETRIES_MAX = 100     # libcpg MAX_RETRIES for a fragment refused with TRY_AGAIN
PARTIAL_RETRY_SLEEP_S = 0.010  # libcpg usleep(10000) between those retries
ASSEMBLIES_MAX = 4096          # concurrent half-received big messages kept per handle


def _group_bytes(group, call):
    raw = group.encode() if isinstance(group, str) else bytes(group)
    if len(raw) > S.CPG_MAX_NAME_LENGTH:
        raise CsError(CS_ERR_NAME_TOO_LONG, call, f"group name of {len(raw)} bytes, at most "
                      f"{S.CPG_MAX_NAME_LENGTH} allowed")
    return raw


class Cpg(ServiceHandle):
    """cpg_model_initialize(CPG_MODEL_V1, …) and the calls on the handle it returns."""

    service = "cpg"
    prefix = "cpg"

    def __init__(self, deliver_fn=None, confchg_fn=None, totem_confchg_fn=None,
                 model_v1_flags: int = 0, suffix: str = "", context=None):
        if model_v1_flags & ~S.MODEL_V1_DELIVER_INITIAL_TOTEM_CONF:
            raise CsError(CS_ERR_INVALID_PARAM, "cpg_model_initialize",
                          f"model_v1_flags={model_v1_flags}: only "
                          f"CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF (1) is defined")
        self.deliver_fn = deliver_fn
        self.confchg_fn = confchg_fn
        self.totem_confchg_fn = totem_confchg_fn
        self.model_v1_flags = model_v1_flags
        self._assemblies = {}   # (nodeid, pid) -> (msglen, bytearray)
        super().__init__(suffix=suffix, context=context)

    # ---- membership -------------------------------------------------------------------------

    def join(self, group) -> None:
        """Ask to join `group`; the own confchg arrives later through dispatch()."""
        call = f"cpg_join({group!r})"
        payload = S.pack_req_join(_group_bytes(group, call), os.getpid(), self.model_v1_flags)
        while True:  # libcpg repeats while the daemon answers BUSY (a leave in progress)
            error, _ = self._request(call, S.REQ_JOIN, payload, accept=(CS_OK, CS_ERR_BUSY))
            if error == CS_OK:
                return

    def leave(self, group) -> None:
        call = f"cpg_leave({group!r})"
        payload = S.pack_req_leave(_group_bytes(group, call), os.getpid())
        while True:
            error, _ = self._request(call, S.REQ_LEAVE, payload, accept=(CS_OK, CS_ERR_BUSY))
            if error == CS_OK:
                return

    def membership_get(self, group) -> list:
        """[CpgAddress] of `group` as this node's daemon knows it (reason is undefined)."""
        call = f"cpg_membership_get({group!r})"
        payload = S.pack_req_membership_get(_group_bytes(group, call))
        _, body = self._request(call, S.REQ_MEMBERSHIP, payload)
        return self._decode(call, S.unpack_res_membership, body)

    def local_get(self) -> int:
        _, body = self._request("cpg_local_get", S.REQ_LOCAL_GET)
        return self._decode("cpg_local_get", S.unpack_res_local_get, body)

    def iteration(self, iteration_type: int, group=None):
        """Generator of IterationDescription(group, nodeid, pid) over the whole cluster.

        NAME_ONLY and ALL take no group; ONE_GROUP needs one (as libcpg checks)."""
        call = "cpg_iteration_initialize"
        if iteration_type not in (ITERATION_NAME_ONLY, ITERATION_ONE_GROUP, ITERATION_ALL):
            raise CsError(CS_ERR_INVALID_PARAM, call, f"iteration_type={iteration_type}: "
                          f"allowed 1 NAME_ONLY, 2 ONE_GROUP, 3 ALL")
        if (iteration_type == ITERATION_ONE_GROUP) != (group is not None):
            raise CsError(CS_ERR_INVALID_PARAM, call, "a group is required for ONE_GROUP "
                          "and not allowed otherwise")
        raw = _group_bytes(group, call) if group is not None else None
        _, body = self._request(call, S.REQ_ITERATIONINITIALIZE,
                                S.pack_req_iterationinitialize(iteration_type, raw))
        handle = self._decode(call, S.unpack_res_iterationinitialize, body)
        try:
            while True:
                error, body = self._request("cpg_iteration_next", S.REQ_ITERATIONNEXT,
                                            S.pack_req_iterationnext(handle),
                                            accept=(CS_OK, CS_ERR_NO_SECTIONS))
                if error == CS_ERR_NO_SECTIONS:
                    return
                yield self._decode("cpg_iteration_next", S.unpack_res_iterationnext, body)
        finally:
            if not self._finalized:
                self._request("cpg_iteration_finalize", S.REQ_ITERATIONFINALIZE,
                              S.pack_req_iterationfinalize(handle))

    # ---- messages ---------------------------------------------------------------------------

    def max_atomic_msgsize_get(self) -> int:
        """Largest message sent as one MCAST; larger ones are fragmented (1 047 552)."""
        return S.MAX_ATOMIC_MSG_BYTES

    def flow_control_state_get(self) -> int:
        """Always CPG_FLOW_CONTROL_DISABLED (0): a stub in libcpg 3.1 too."""
        self._check_open("cpg_flow_control_state_get")
        return S.FLOW_CONTROL_DISABLED

    def mcast_joined(self, guarantee: int, *buffers) -> None:
        """Multicast the concatenation of `buffers` to the joined group.

        Raises CsError CS_ERR_TRY_AGAIN while the daemon's flow-control flag is 1 or 2."""
        call = "cpg_mcast_joined"
        views = [memoryview(b).cast("B") for b in buffers]
        total = sum(len(v) for v in views)
        if total > S.MAX_ATOMIC_MSG_BYTES:
            self._send_fragments(guarantee, total, views)
            return
        self._send(call, S.REQ_MCAST, S.pack_req_mcast(guarantee, b"".join(views)),
                   fc_enable_max=2)

    def _send_fragments(self, guarantee, total, views) -> None:
        """libcpg send_fragments(): fragments never span two buffers, each is answered."""
        call = "cpg_mcast_joined (partial)"
        sent = 0
        self._ipc.fc_enable_max = 2
        try:
            for view in views:
                offset = 0
                while offset < len(view):  # empty buffers add nothing (libcpg would
                    # send an empty fragment, which is harmless but pointless)
                    piece = view[offset:offset + S.MAX_ATOMIC_MSG_BYTES]
                    frag_type = (S.PARTIAL_FIRST if sent == 0 else
                                 S.PARTIAL_LAST if sent + len(piece) == total else
                                 S.PARTIAL_CONTINUED)
                    payload = S.pack_req_partial_mcast(guarantee, total, frag_type, piece)
                    self._request_fragment(call, payload)
                    offset += len(piece)
                    sent += len(piece)
        finally:
            self._ipc.fc_enable_max = 1

    def _request_fragment(self, call, payload) -> None:
        for attempt in range(PARTIAL_RETRIES_MAX + 1):
            try:
                self._request(call, S.REQ_PARTIAL_MCAST, payload)
                return
            except CsError as exc:
                if exc.code != CS_ERR_TRY_AGAIN or attempt == PARTIAL_RETRIES_MAX:
                    raise
            time.sleep(PARTIAL_RETRY_SLEEP_S)

    # ---- finalize & events ----------------------------------------------------------------

    def _finalize_request(self) -> None:
        try:
            self._request("cpg_finalize", S.REQ_FINALIZE)
        finally:
            self._assemblies.clear()

    def _on_event(self, call, msg_id, body) -> None:
        if msg_id == S.RES_DELIVER_CALLBACK:
            ev = self._decode(call, S.unpack_deliver_event, body)
            if self.deliver_fn is not None:
                self.deliver_fn(self, ev.group, ev.nodeid, ev.pid, ev.message)
        elif msg_id == S.RES_PARTIAL_DELIVER_CALLBACK:
            self._on_partial(call, self._decode(call, S.unpack_partial_deliver_event, body))
        elif msg_id == S.RES_CONFCHG_CALLBACK:
            ev = self._decode(call, S.unpack_confchg_event, body)
            if self.confchg_fn is not None:
                self.confchg_fn(self, ev.group, ev.members, ev.left, ev.joined)
            for gone in ev.left:  # a sender that left never finishes its message
                self._assemblies.pop((gone.nodeid, gone.pid), None)
        elif msg_id == S.RES_TOTEM_CONFCHG_CALLBACK:
            ev = self._decode(call, S.unpack_totem_confchg_event, body)
            if self.totem_confchg_fn is not None:
                self.totem_confchg_fn(self, ev.ring_id, ev.members)
        else:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"unknown CPG event id {msg_id}")

    def _on_partial(self, call, ev) -> None:
        key = (ev.nodeid, ev.pid)
        if ev.frag_type == S.PARTIAL_FIRST:
            # A new FIRST replaces an unfinished message from the same sender: its
            # sender was told of the failure (libcpg does the same).
            self._assemblies.pop(key, None)
            if len(self._assemblies) >= ASSEMBLIES_MAX:
                raise CsError(CS_ERR_MESSAGE_ERROR, call, f"more than {ASSEMBLIES_MAX} "
                              f"fragmented messages in flight")
            self._assemblies[key] = (ev.msglen, bytearray())
        if key not in self._assemblies:
            return  # continuation of a message whose start we never saw: dropped
        msglen, buf = self._assemblies[key]
        if len(buf) + len(ev.fragment) > msglen or ev.msglen != msglen:
            del self._assemblies[key]
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"fragment from nodeid {ev.nodeid} "
                          f"pid {ev.pid} overflows its message of {msglen} bytes")
        buf += ev.fragment
        if ev.frag_type == S.PARTIAL_LAST:
            del self._assemblies[key]
            if len(buf) != msglen:
                raise CsError(CS_ERR_MESSAGE_ERROR, call, f"message from nodeid {ev.nodeid} "
                              f"pid {ev.pid} ended at {len(buf)} of {msglen} bytes")
            if self.deliver_fn is not None:
                self.deliver_fn(self, ev.group, ev.nodeid, ev.pid, bytes(buf))
