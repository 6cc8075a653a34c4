"""The verbs objects of one carrier — context, PD, MR, CQs, completion channel, UD QP, AHs.

Everything that needs a device lives here (and in devices.py's list_devices); carrier.py
sees a small surface: post_recv / post_send / poll_recv / poll_send / take_events /
make_ah / recover_send_queue / comp_fd / close.

Completion model: one completion channel, attached to the receive CQ only. Its fd is the
carrier's wake-up fd; the channel fd is set O_NONBLOCK so take_events() can drain it with
ibv_get_cq_event without ever blocking, ack the events in one call, and re-arm the CQ
(ibv_req_notify_cq) *before* the caller polls, so a completion that lands between the
last poll and the re-arm still produces an event. The send CQ has no channel: send
completions only free send slots and are polled when slots run low.

The channel's fd: pyverbs exposes CompChannel.fd from rdma-core 61; older pyverbs (Debian
12 ships 44) does not, so we identify the fd ibv_create_comp_channel opened — the new
descriptor in /proc/self/fd whose target is 'anon_inode:[infinibandevent]'.

Create in the process that uses it (after fork): registered memory and verbs objects do
not survive fork() usefully, and libibverbs' fork support (RDMAV_FORK_SAFE) is not needed
if nothing is registered before the fork.
"""
from __future__ import annotations

import errno as _errno
import fcntl
import os

from coroproc.netproc.rdma.errors import VerbsCallFailed
from coroproc.netproc.rdma.loader import load_pyverbs
from coroproc.netproc.rdma.pools import Arena
from coroproc.netproc.rdma.spec import RdmaSpec
from coroproc.netproc.rdma.wire import gid_text

IB_EVENT_FD_TARGET = "anon_inode:[infinibandevent]"


def _fd_targets() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass                # the fd of the listdir itself, already closed
    return out


def new_event_fd(before: dict[int, str], after: dict[int, str]) -> int:
    """The one completion-channel fd that appeared between two _fd_targets() snapshots."""
    fresh = [fd for fd, target in after.items()
             if target == IB_EVENT_FD_TARGET and before.get(fd) != target]
    if len(fresh) != 1:
        raise VerbsCallFailed(f"cannot identify the completion channel fd: {len(fresh)} new "
                              f"'{IB_EVENT_FD_TARGET}' descriptors appeared (expected 1)")
    return fresh[0]


class _Failed:
    """Context manager: any pyverbs error becomes VerbsCallFailed naming the step."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None and not isinstance(exc, VerbsCallFailed) and \
                type(exc).__module__.startswith("pyverbs"):
            code = getattr(exc, "error_code", None)
            raise VerbsCallFailed(f"{self.what} failed: {exc} (errno {code})") from exc
        return False


class Verbs:
    def __init__(self, spec: RdmaSpec, device: dict, port: dict, gid: dict, arena_bytes: int):
        """Open `device`/`port` (dicts from devices.pick_device) sending from `gid`."""
        load_pyverbs()
        import pyverbs.enums as e
        from pyverbs.cq import CQ, CompChannel
        from pyverbs.device import Context
        from pyverbs.mr import MR
        from pyverbs.pd import PD
        from pyverbs.qp import QP, QPAttr, QPCap, QPInitAttr
        self.e = e
        self.device, self.port, self.gid = device, port, gid
        self.port_num = self.port["port"]
        self.spec = spec
        self._objs = []          # closed in reverse order
        self.arena = None
        try:
            with _Failed(f"opening RDMA device {self.device['name']}"):
                self.ctx = self._keep(Context(name=self.device["name"]))
            with _Failed("allocating a protection domain"):
                self.pd = self._keep(PD(self.ctx))
            self.arena = Arena(arena_bytes)
            with _Failed(f"registering {arena_bytes} bytes of buffers (ulimit -l?)"):
                self.mr = self._keep(MR(self.pd, arena_bytes, e.IBV_ACCESS_LOCAL_WRITE,
                                        address=self.arena.address))
            before = _fd_targets()
            with _Failed("creating a completion channel"):
                self.channel = self._keep(CompChannel(self.ctx))
            fd = getattr(self.channel, "fd", None)
            self.comp_fd = fd if isinstance(fd, int) else new_event_fd(before, _fd_targets())
            flags = fcntl.fcntl(self.comp_fd, fcntl.F_GETFL)
            fcntl.fcntl(self.comp_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
            with _Failed("creating the completion queues"):
                self.recv_cq = self._keep(CQ(self.ctx, spec.rx_depth, None, self.channel, 0))
                self.send_cq = self._keep(CQ(self.ctx, spec.tx_depth, None, None, 0))
            cap = QPCap(max_send_wr=spec.tx_depth, max_recv_wr=spec.rx_depth,
                        max_send_sge=1, max_recv_sge=1)
            init = QPInitAttr(qp_type=e.IBV_QPT_UD, scq=self.send_cq, rcq=self.recv_cq,
                              cap=cap, sq_sig_all=0)
            attr = QPAttr(port_num=self.port_num)
            attr.qkey = spec.qkey
            attr.pkey_index = 0
            with _Failed(f"creating the UD queue pair (send {spec.tx_depth}, receive "
                         f"{spec.rx_depth} work requests)"):
                self.qp = self._keep(QP(self.pd, init, attr))
            with _Failed("arming the receive completion queue"):
                self.recv_cq.req_notify()
            self.qpn = int(self.qp.qp_num)
            self.lkey = int(self.mr.lkey)
        except BaseException:
            self.close()
            raise

    def _keep(self, obj):
        self._objs.append(obj)
        return obj

    @property
    def roce_v2_ipv4(self) -> bool:
        return (self.port["link_layer"] == "Ethernet" and self.gid["type"] == "RoCE v2"
                and self.gid["gid"].startswith("0000:0000:0000:0000:0000:ffff:"))

    def post_recv(self, offset: int, length: int, wr_id: int) -> None:
        from pyverbs.wr import SGE, RecvWR
        with _Failed(f"posting receive buffer {wr_id}"):
            self.qp.post_recv(RecvWR(wr_id=wr_id, num_sge=1,
                                     sg=[SGE(self.arena.address + offset, length, self.lkey)]))

    def make_ah(self, gid: bytes, lid: int):
        from pyverbs.addr import AH, GID, AHAttr, GlobalRoute
        s = self.spec
        route = GlobalRoute(dgid=GID(gid_text(gid)), sgid_index=self.gid["index"],
                            hop_limit=s.hop_limit, traffic_class=s.traffic_class)
        attr = AHAttr(dlid=lid, sl=s.service_level, is_global=1, port_num=self.port_num,
                      gr=route)
        with _Failed(f"creating an address handle for GID {gid_text(gid)}"):
            return AH(self.pd, attr=attr)

    def post_send(self, offset: int, length: int, wr_id: int, signaled: bool, ah,
                  qpn: int, qkey: int) -> int:
        """0, or the errno ibv_post_send returned (ENOMEM: send queue full)."""
        from pyverbs.pyverbs_error import PyverbsRDMAError
        from pyverbs.wr import SGE, SendWR
        wr = SendWR(wr_id=wr_id, opcode=self.e.IBV_WR_SEND, num_sge=1,
                    sg=[SGE(self.arena.address + offset, length, self.lkey)],
                    send_flags=self.e.IBV_SEND_SIGNALED if signaled else 0)
        wr.set_wr_ud(ah, qpn, qkey)
        try:
            self.qp.post_send(wr)
        except PyverbsRDMAError as exc:
            return abs(int(getattr(exc, "error_code", 0) or _errno.EIO))
        return 0

    def take_events(self) -> int:
        """Drain the channel without blocking, ack, re-arm; return events seen."""
        from pyverbs.pyverbs_error import PyverbsRDMAError
        events = 0
        while True:
            try:
                self.channel.get_cq_event(self.recv_cq)
            except PyverbsRDMAError as exc:
                if getattr(exc, "error_code", None) in (_errno.EAGAIN, _errno.EWOULDBLOCK):
                    break
                raise VerbsCallFailed(f"reading the completion channel: {exc}") from exc
            events += 1
        if events:
            self.recv_cq.ack_events(events)
        self.recv_cq.req_notify()
        return events

    def poll_recv(self, max_entries: int) -> list:
        return self.recv_cq.poll(max_entries)[1]

    def poll_send(self, max_entries: int) -> list:
        return self.send_cq.poll(max_entries)[1]

    def recover_send_queue(self) -> bool:
        """After a send completion error the UD QP is in SQE; move it back to RTS."""
        from pyverbs.qp import QPAttr
        e = self.e
        try:
            if self.qp.qp_state != e.IBV_QPS_SQE:
                return self.qp.qp_state == e.IBV_QPS_RTS
            attr = QPAttr(qp_state=e.IBV_QPS_RTS, cur_qp_state=e.IBV_QPS_SQE)
            self.qp.modify(attr, e.IBV_QP_STATE | e.IBV_QP_CUR_STATE)
            return True
        except Exception:
            return False

    def close(self) -> None:
        for obj in reversed(self._objs):
            try:
                obj.close()
            except Exception:
                pass            # closing is best effort; the process is going away anyway
        self._objs.clear()
        if self.arena is not None:
            self.arena.close()        # after the MR: the HCA no longer writes into it
            self.arena = None
