"""A libcpg-shaped client over SimBus for the CPG engine tests: requests in, decoded events out.

Requests go through EngineCore exactly as the engine process routes them (flow control,
unknown ids, parse errors); replies come back as (response_id, cs_error, body). Events a
connection received are decoded with coroproc.ipc.cpg_structs into small tuples:
    ("confchg", group, members, left, joined)   lists of (nodeid, pid[, reason])
    ("deliver", group, nodeid, pid, message)
    ("partial", group, nodeid, pid, frag_type, msglen, fragment)
    ("totem", (ring nodeid, ring seq), members)
"""
from __future__ import annotations

from coroproc.engineprocs.api import SERVICE_CPG
from coroproc.engineprocs.cpg import CpgEngine
from coroproc.engineprocs.simbus import SimBus
from coroproc.ipc import cpg_structs as cs


def make_bus(nodeids=(1, 2, 3), seed=0, options=None) -> SimBus:
    bus = SimBus([CpgEngine], list(nodeids), seed=seed, options={"cpg": options or {}})
    bus.configure([list(nodeids)])
    bus.run()
    return bus


def decode(msg_id: int, body: bytes):
    if msg_id == cs.RES_CONFCHG_CALLBACK:
        c = cs.unpack_confchg_event(body)
        return ("confchg", c.group, [(a.nodeid, a.pid) for a in c.members],
                [(a.nodeid, a.pid, a.reason) for a in c.left],
                [(a.nodeid, a.pid, a.reason) for a in c.joined])
    if msg_id == cs.RES_DELIVER_CALLBACK:
        d = cs.unpack_deliver_event(body)
        return ("deliver", d.group, d.nodeid, d.pid, d.message)
    if msg_id == cs.RES_PARTIAL_DELIVER_CALLBACK:
        p = cs.unpack_partial_deliver_event(body)
        return ("partial", p.group, p.nodeid, p.pid, p.frag_type, p.msglen, p.fragment)
    if msg_id == cs.RES_TOTEM_CONFCHG_CALLBACK:
        t = cs.unpack_totem_confchg_event(body)
        return ("totem", tuple(t.ring_id), list(t.members))
    raise AssertionError(f"unexpected CPG event id {msg_id}")


class Client:
    def __init__(self, bus: SimBus, nodeid: int, pid: int, flags: int = 0,
                 event_queue_max: int = 1024):
        self.bus, self.nodeid, self.pid, self.flags = bus, nodeid, pid, flags
        self.conn = bus.connect(nodeid, SERVICE_CPG, pid, event_queue_max=event_queue_max)
        self.log: list = []          # every decoded event ever received, in order

    def request(self, msg_id: int, body: bytes):
        return self.bus.request(self.conn, msg_id, body)

    def join(self, group: bytes, pid=None) -> int:
        reply = self.request(cs.REQ_JOIN, cs.pack_req_join(group, self.pid if pid is None
                                                           else pid, self.flags))
        assert reply[0] in (cs.RES_JOIN, 0)
        return reply[1]

    def leave(self, group: bytes, pid=None) -> int:
        reply = self.request(cs.REQ_LEAVE, cs.pack_req_leave(group, self.pid if pid is None
                                                             else pid))
        return reply[1]

    def mcast(self, message: bytes):
        return self.request(cs.REQ_MCAST, cs.pack_req_mcast(2, message))

    def partial(self, msglen: int, frag_type: int, fragment: bytes):
        return self.request(cs.REQ_PARTIAL_MCAST,
                            cs.pack_req_partial_mcast(2, msglen, frag_type, fragment))

    def membership(self, group: bytes):
        msg_id, error, body = self.request(cs.REQ_MEMBERSHIP, cs.pack_req_membership_get(group))
        assert (msg_id, error) == (cs.RES_MEMBERSHIP, 1)
        return [(a.nodeid, a.pid) for a in cs.unpack_res_membership(body)]

    def iterate(self, iteration_type: int, group: bytes = b""):
        msg_id, error, body = self.request(cs.REQ_ITERATIONINITIALIZE,
                                           cs.pack_req_iterationinitialize(iteration_type, group))
        assert error == 1, error
        handle = cs.unpack_res_iterationinitialize(body)
        out = []
        while True:
            _id, error, body = self.request(cs.REQ_ITERATIONNEXT, cs.pack_req_iterationnext(handle))
            if error == 27:       # CS_ERR_NO_SECTIONS
                break
            assert error == 1, error
            d = cs.unpack_res_iterationnext(body)
            out.append((d.group, d.nodeid, d.pid))
        assert self.request(cs.REQ_ITERATIONFINALIZE,
                            cs.pack_req_iterationfinalize(handle))[1] == 1
        return out

    def events(self) -> list:
        """Decoded events since the last call (and appended to self.log)."""
        new = [decode(i, b) for i, b in self.conn.take_events()]
        self.log.extend(new)
        return new

    def close(self) -> None:
        self.bus.disconnect(self.conn)
