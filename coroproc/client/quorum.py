"""Python libquorum: the provider-neutral quorate flag and membership view.

This file owns the client side of QUORUM as libquorum 3.1.7 behaves (lib/quorum.c):
initialize asks for the quorum type (model V0) or sets the model and asks (V1),
getquorate, trackstart/trackstop, and notifications run from dispatch():
  V0: notify_fn(handle, quorate: bool, ring_seq: int, view_list: list[int])
  V1: notify_fn(handle, quorate: bool, ring_id: (nodeid, seq), view_list: list[int])
      nodelist_fn(handle, ring_id: (nodeid, seq), members, joined, left)
"""

from coroproc.client.base import ServiceHandle
from coroproc.ipc import quorum_structs as Q
from coroproc.ipc.cserror import (CS_ERR_MESSAGE_ERROR, CS_TRACK_CHANGES,
                                  CS_TRACK_CHANGES_ONLY, CS_TRACK_CURRENT, CsError)
from coroproc.ipc.quorum_structs import MODEL_V0, MODEL_V1, QUORUM_FREE, QUORUM_SET

__all__ = ["CS_TRACK_CHANGES", "CS_TRACK_CHANGES_ONLY", "CS_TRACK_CURRENT", "MODEL_V0",
           "MODEL_V1", "QUORUM_FREE", "QUORUM_SET", "Quorum"]


class Quorum(ServiceHandle):
    """quorum_initialize / quorum_model_initialize and the calls on the handle."""

    service = "quorum"
    prefix = "quorum"

    def __init__(self, notify_fn=None, nodelist_fn=None, *, model: int = MODEL_V0,
                 suffix: str = "", context=None):
        self.notify_fn = notify_fn
        self.nodelist_fn = nodelist_fn
        self.model = model
        super().__init__(suffix=suffix, context=context)
        try:
            if model == MODEL_V0:
                _e, body = self._request("quorum_initialize", Q.REQ_GETTYPE)
            else:
                _e, body = self._request("quorum_model_initialize", Q.REQ_MODEL_GETTYPE,
                                         Q.pack_u32_slot(model))
            self.quorum_type = self._decode("quorum_initialize",
                                            lambda b: Q.unpack_u32(b, "res_lib_quorum_gettype"),
                                            body)
        except BaseException:
            self._finalized = True
            self._ipc.close()
            raise

    def getquorate(self) -> bool:
        _e, body = self._request("quorum_getquorate", Q.REQ_GETQUORATE)
        return bool(self._decode("quorum_getquorate",
                                 lambda b: Q.unpack_u32(b, "res_lib_quorum_getquorate"), body))

    def trackstart(self, flags: int = CS_TRACK_CHANGES) -> None:
        self._request("quorum_trackstart", Q.REQ_TRACKSTART, Q.pack_u32_slot(flags))

    def trackstop(self) -> None:
        self._request("quorum_trackstop", Q.REQ_TRACKSTOP)

    def _on_event(self, call, msg_id, body) -> None:
        if msg_id == Q.RES_NOTIFICATION:
            quorate, seq, view = self._decode(call, Q.unpack_notification_v0, body)
            if self.notify_fn is not None:
                self.notify_fn(self, bool(quorate), seq, view)
        elif msg_id == Q.RES_V1_QUORUM_NOTIFICATION:
            quorate, rid_node, rid_seq, view = self._decode(call, Q.unpack_notification_v1, body)
            if self.notify_fn is not None:
                self.notify_fn(self, bool(quorate), (rid_node, rid_seq), view)
        elif msg_id == Q.RES_V1_NODELIST_NOTIFICATION:
            rid_node, rid_seq, members, joined, left = self._decode(call, Q.unpack_nodelist_v1,
                                                                   body)
            if self.nodelist_fn is not None:
                self.nodelist_fn(self, (rid_node, rid_seq), members, joined, left)
        else:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"unknown quorum event id {msg_id}")
