"""Test-only CPG service on coroproc's IpcServer that plays scripted event sequences.

Usage: python scripted_cpg_service.py <suffix> (serves "cpg" + suffix). Prints "READY <pid>", serves
until SIGTERM. It answers like Corosync's CPG engine where the client library only
needs the reply shape, and lets a test provoke what a real daemon does only under
rare timing: interleaved fragments from two senders, a sender leaving half-way,
a fragment that overflows its message, the shared flow-control flag, BUSY answers.

Requests (ids from cpg_structs): LOCAL_GET -> nodeid 1; JOIN -> BUSY twice, then OK;
MCAST -> recorded; FINALIZE -> OK. Test-only ids: SCRIPT_ID (payload = script name)
sends that script's events; FLOW_ID (payload = b"0"/b"1"/b"2") sets the flag;
MCAST_COUNT_ID answers with the number of MCAST requests received (ASCII).
"""

import signal
import sys

from coroproc.ipc import cpg_structs as S
from coroproc.ipc.cserror import CS_ERR_BUSY, CS_OK
from coroproc.ipc.server import IpcHandler, IpcServer

SCRIPT_ID = 9001
FLOW_ID = 9002
MCAST_COUNT_ID = 9003
GROUP = b"scripted"
A, B = (1, 100), (2, 200)   # (nodeid, pid) of two remote senders


def _partial(sender, msglen, frag_type, fragment):
    return (S.RES_PARTIAL_DELIVER_CALLBACK,
            S.pack_partial_deliver_event(GROUP, msglen, sender[0], sender[1], frag_type,
                                         fragment))


SCRIPTS = {
    # A and B each send a 6-byte message in 3 fragments, interleaved; then a plain one.
    "interleaved": [
        _partial(A, 6, S.PARTIAL_FIRST, b"aa"), _partial(B, 6, S.PARTIAL_FIRST, b"BB"),
        _partial(A, 6, S.PARTIAL_CONTINUED, b"bb"), _partial(B, 6, S.PARTIAL_CONTINUED, b"CC"),
        _partial(B, 6, S.PARTIAL_LAST, b"DD"), _partial(A, 6, S.PARTIAL_LAST, b"cc"),
        (S.RES_DELIVER_CALLBACK, S.pack_deliver_event(GROUP, 1, 100, b"whole")),
    ],
    # A starts a message and leaves; its LAST (if any ever came) must not deliver.
    "sender_left": [
        _partial(A, 4, S.PARTIAL_FIRST, b"xx"),
        (S.RES_CONFCHG_CALLBACK, S.pack_confchg_event(GROUP, [B], [(*A, S.REASON_PROCDOWN)], [])),
        _partial(A, 4, S.PARTIAL_LAST, b"yy"),
        (S.RES_DELIVER_CALLBACK, S.pack_deliver_event(GROUP, 2, 200, b"after")),
    ],
    # A FIRST that restarts an unfinished message replaces it (libcpg drops the old one).
    "restarted": [
        _partial(A, 4, S.PARTIAL_FIRST, b"ol"), _partial(A, 4, S.PARTIAL_FIRST, b"ne"),
        _partial(A, 4, S.PARTIAL_LAST, b"w!"),
    ],
    "overflow": [_partial(A, 3, S.PARTIAL_FIRST, b"ab"), _partial(A, 3, S.PARTIAL_LAST, b"cd")],
    "totem": [(S.RES_TOTEM_CONFCHG_CALLBACK, S.pack_totem_confchg_event((1, 42), [1, 2, 3]))],
    "unknown": [(77, b"")],
}


class ScriptedCpg(IpcHandler):
    def __init__(self):
        self.joins = 0
        self.mcasts = 0

    def on_request(self, conn, msg_id, payload):
        data = bytes(payload)
        if msg_id == S.REQ_LOCAL_GET:
            return (S.RES_LOCAL_GET, CS_OK, S.pack_res_local_get(1))
        if msg_id == S.REQ_JOIN:
            S.unpack_req_join(data)
            self.joins += 1
            return (S.RES_JOIN, CS_ERR_BUSY if self.joins % 3 else CS_OK, b"")
        if msg_id == S.REQ_MCAST:
            S.unpack_req_mcast(data)
            self.mcasts += 1
            return None  # Corosync never answers MCAST
        if msg_id == S.REQ_FINALIZE:
            return (S.RES_FINALIZE, CS_OK, b"")
        if msg_id == SCRIPT_ID:
            for event_id, body in SCRIPTS[data.decode()]:
                conn.send_event(event_id, body, CS_OK)
            return (SCRIPT_ID, CS_OK, b"")
        if msg_id == FLOW_ID:
            conn.set_flow_control(int(data))
            return (FLOW_ID, CS_OK, b"")
        if msg_id == MCAST_COUNT_ID:
            return (MCAST_COUNT_ID, CS_OK, str(self.mcasts).encode())
        return (0, 7, b"")  # CS_ERR_INVALID_PARAM, as Corosync answers unknown ids


def main():
    server = IpcServer("cpg", ScriptedCpg(), suffix=sys.argv[1])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("READY", server.pid, flush=True)
    while not stop:
        server.process(200)
    server.close()


if __name__ == "__main__":
    main()
