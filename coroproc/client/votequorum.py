"""Python libvotequorum: votes, expected votes, tracking and the quorum-device calls.

This file owns the client side of VOTEQUORUM as libvotequorum 3.1.7 behaves
(lib/votequorum.c). Callbacks run from dispatch(), with the tracking context given to
trackstart:
  quorum_fn(handle, context, quorate: bool, nodes: list[(nodeid, state)])
  nodelist_fn(handle, context, ring_id: (nodeid, seq), nodeids: list[int])
  expectedvotes_fn(handle, context, expected_votes: int)
A quorum device (corosync-qdevice's role) registers a name, then polls at least every
quorum.device.timeout with the ring id of the last nodelist notification, casting its
vote or not; master_wins lets the partition holding the device's vote win outright.
"""

from coroproc.client.base import ServiceHandle
from coroproc.ipc import votequorum_structs as V
from coroproc.ipc.cserror import (CS_ERR_MESSAGE_ERROR, CS_TRACK_CHANGES,
                                  CS_TRACK_CHANGES_ONLY, CS_TRACK_CURRENT, CsError)
from coroproc.ipc.votequorum_structs import (INFO_ALLOW_DOWNSCALE, INFO_AUTO_TIE_BREAKER,
                                             INFO_LAST_MAN_STANDING, INFO_QDEVICE_ALIVE,
                                             INFO_QDEVICE_CAST_VOTE, INFO_QDEVICE_MASTER_WINS,
                                             INFO_QDEVICE_REGISTERED, INFO_QUORATE,
                                             INFO_TWONODE, INFO_WAIT_FOR_ALL, Info)

__all__ = ["CS_TRACK_CHANGES", "CS_TRACK_CHANGES_ONLY", "CS_TRACK_CURRENT",
           "INFO_ALLOW_DOWNSCALE", "INFO_AUTO_TIE_BREAKER", "INFO_LAST_MAN_STANDING",
           "INFO_QDEVICE_ALIVE", "INFO_QDEVICE_CAST_VOTE", "INFO_QDEVICE_MASTER_WINS",
           "INFO_QDEVICE_REGISTERED", "INFO_QUORATE", "INFO_TWONODE", "INFO_WAIT_FOR_ALL",
           "Info", "Votequorum"]


class Votequorum(ServiceHandle):
    service = "votequorum"
    prefix = "votequorum"

    def __init__(self, quorum_fn=None, nodelist_fn=None, expectedvotes_fn=None, *,
                 suffix: str = "", context=None):
        self.quorum_fn = quorum_fn
        self.nodelist_fn = nodelist_fn
        self.expectedvotes_fn = expectedvotes_fn
        super().__init__(suffix=suffix, context=context)

    def getinfo(self, nodeid: int = 0) -> Info:
        _e, body = self._request("votequorum_getinfo", V.REQ_GETINFO, V.pack_req_getinfo(nodeid))
        return self._decode("votequorum_getinfo", V.unpack_res_getinfo, body)

    def setexpected(self, expected_votes: int) -> None:
        self._request("votequorum_setexpected", V.REQ_SETEXPECTED,
                      V.pack_req_setexpected(expected_votes))

    def setvotes(self, nodeid: int, votes: int) -> None:
        self._request("votequorum_setvotes", V.REQ_SETVOTES, V.pack_req_setvotes(votes, nodeid))

    def trackstart(self, context: int = 0, flags: int = CS_TRACK_CHANGES) -> None:
        self._request("votequorum_trackstart", V.REQ_TRACKSTART,
                      V.pack_req_trackstart(context, flags))

    def trackstop(self) -> None:
        self._request("votequorum_trackstop", V.REQ_TRACKSTOP)

    def qdevice_register(self, name: str) -> None:
        self._request("votequorum_qdevice_register", V.REQ_QDEVICE_REGISTER,
                      V.pack_req_qdevice_name(name))

    def qdevice_unregister(self, name: str) -> None:
        self._request("votequorum_qdevice_unregister", V.REQ_QDEVICE_UNREGISTER,
                      V.pack_req_qdevice_name(name))

    def qdevice_update(self, oldname: str, newname: str) -> None:
        self._request("votequorum_qdevice_update", V.REQ_QDEVICE_UPDATE,
                      V.pack_req_qdevice_update(oldname, newname))

    def qdevice_poll(self, name: str, cast_vote: bool, ring_id: tuple[int, int]) -> None:
        self._request("votequorum_qdevice_poll", V.REQ_QDEVICE_POLL,
                      V.pack_req_qdevice_poll(name, int(cast_vote), *ring_id))

    def qdevice_master_wins(self, name: str, allow: bool) -> None:
        self._request("votequorum_qdevice_master_wins", V.REQ_QDEVICE_MASTER_WINS,
                      V.pack_req_qdevice_master_wins(name, int(allow)))

    def _on_event(self, call, msg_id, body) -> None:
        if msg_id == V.RES_QUORUM_NOTIFICATION:
            quorate, context, nodes = self._decode(call, V.unpack_quorum_notification, body)
            if self.quorum_fn is not None:
                self.quorum_fn(self, context, bool(quorate), nodes)
        elif msg_id == V.RES_NODELIST_NOTIFICATION:
            context, rid_node, rid_seq, nodeids = self._decode(
                call, V.unpack_nodelist_notification, body)
            if self.nodelist_fn is not None:
                self.nodelist_fn(self, context, (rid_node, rid_seq), nodeids)
        elif msg_id == V.RES_EXPECTEDVOTES_NOTIFICATION:
            context, expected = self._decode(call, V.unpack_expectedvotes_notification, body)
            if self.expectedvotes_fn is not None:
                self.expectedvotes_fn(self, context, expected)
        else:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"unknown votequorum event id {msg_id}")
