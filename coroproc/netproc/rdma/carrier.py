"""RdmaCarrier: link frames over one RDMA UD queue pair (the `knet_transport: rdma` carrier).

Same interface as the UDP carrier: fds / recv_into / send / counters / close.

Why UD and not RC: Totem expects lossy datagrams and retransmits itself. One UD QP talks
to every peer (RC needs a connected QP per peer, a connection handshake per membership
change, and turns a dead peer into retry timeouts and a QP in the error state that must be
rebuilt). RC's own retransmission would also delay a frame Totem has already given up on.
What UD costs: messages are limited to the path MTU (256..4096 bytes), hence the carrier's
fragmentation (fragments/: wire.py, reassembly.py).

Flow. send(): frame -> ceil(len / chunk) fragments, each written into a registered send
slot (pools.SendSlots) and posted to the peer's address handle, QPN and QKey (learned by
resolve.SideChannel). recv_into(): poll the receive CQ; each completion's buffer holds the
40-byte GRH area, then a fragment; a one-fragment frame is copied straight to the caller,
others go through the Reassembler; the receive buffer is reposted as soon as its bytes are
copied. When the CQ is empty: drain the completion channel (non-blocking), re-arm, poll once
more (closes the race with the re-arm), then serve the side channel and return None.
"""
from __future__ import annotations

import errno as _errno
import time
from collections import deque

from coroproc.netproc.fragments.reassembly import Reassembler
from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, FragmentError, chunk_bytes_for,
                                             frag_count_for, fragment_span, unpack_header,
                                             write_fragment)
from coroproc.netproc.rdma.counters import Counters
from coroproc.netproc.rdma.devices import pick_device, pick_gid
from coroproc.netproc.rdma.pools import RecvSlots, SendSlots
from coroproc.netproc.rdma.resolve import PeerAddress, SideChannel, new_incarnation
from coroproc.netproc.rdma.spec import RdmaSpec
from coroproc.netproc.rdma.verbs import Verbs
from coroproc.netproc.rdma.wire import GRH_BYTES, gid_from_text, grh_source_gid

POLL_BATCH = 32          # completions taken per poll; bounds the pending deque


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class RdmaCarrier:
    def __init__(self, spec: RdmaSpec, devices: list[dict] | None = None):
        """Open the device and QP, post every receive buffer, announce us to the peers.

        `devices` (list_devices() output) is for callers that already listed them."""
        self.spec = spec
        self.max_datagram_bytes = spec.max_datagram_bytes
        device, port = pick_device(spec.device, spec.port_num, devices)
        gid = pick_gid(device, port, spec.local_ip, spec.gid_index)
        self.ud_mtu_bytes = min(port["active_mtu"], spec.ud_mtu_cap_bytes or 4096)
        self.rx = RecvSlots(spec.rx_depth, GRH_BYTES + self.ud_mtu_bytes, 0)
        self.tx = SendSlots(spec.tx_depth, self.ud_mtu_bytes, self.rx.span_bytes,
                            spec.signal_every)
        self.c = Counters()
        self.reasm = Reassembler(spec.reasm_entries, spec.max_datagram_bytes,
                                 spec.reasm_timeout_ms)
        self._wcs: deque = deque()
        self._ahs: dict[int, object] = {}
        self._next_frame_id = 0
        self.side = None
        self.verbs = Verbs(spec, device, port, gid, self.rx.span_bytes + self.tx.span_bytes)
        try:
            self._view = self.verbs.arena.view
            for slot in range(self.rx.capacity):
                self._post_recv(slot)
            me = PeerAddress(spec.local_nodeid, gid_from_text(gid["gid"]), self.verbs.qpn,
                             spec.qkey, int(port["lid"]), self.ud_mtu_bytes, new_incarnation())
            self._on_peer(me)
            self.side = SideChannel(spec.linknumber, me, spec.local_ip, spec.side_port,
                                    spec.peers, spec.hello_interval_ms, self._on_peer)
            self.side.announce(_now_ms())
        except BaseException:
            self.close()
            raise

    # ---- Carrier interface ------------------------------------------------------------

    def fds(self) -> list[int]:
        return [self.verbs.comp_fd, self.side.fileno()]

    def recv_into(self, buf: bytearray) -> tuple[int, int] | None:
        now_ms = _now_ms()
        while True:
            if not self._wcs and not self._refill():
                self.side.drain(now_ms)
                self.side.maintain(now_ms)
                self.reasm.expire(now_ms)
                return None
            got = self._consume(self._wcs.popleft(), buf, now_ms)
            if got is not None:
                return got

    def send(self, data, nodeid: int) -> int:
        frame_bytes = len(data)
        if frame_bytes > self.max_datagram_bytes:
            self._raise(_errno.EMSGSIZE, f"frame of {frame_bytes} bytes exceeds "
                        f"max_datagram_bytes {self.max_datagram_bytes}")
        if nodeid not in self.spec.peers:
            self._raise(_errno.EINVAL, f"nodeid {nodeid} is not in the nodelist")
        peer = self.side.resolved.get(nodeid)
        if peer is None:
            self.c.tx_unresolved += 1
            self.side.request(nodeid, _now_ms())
            self._raise(_errno.EHOSTUNREACH, f"peer {nodeid} has not answered the address "
                        f"exchange yet (HELLO to {self.spec.peers[nodeid]})")
        chunk = chunk_bytes_for(min(self.ud_mtu_bytes, peer.mtu_bytes))
        count = frag_count_for(frame_bytes, chunk)
        if self.tx.free() < max(count, self.tx.capacity // 2):
            self._reap_sends()
        if self.tx.free() < count:
            self.c.tx_slots_exhausted += 1
            self._raise(_errno.ENOBUFS, f"{count} send slots needed, {self.tx.free()} free "
                        f"of {self.tx.capacity} (tx_depth); the HCA is behind")
        frame_id = self._next_frame_id
        self._next_frame_id = (frame_id + 1) & 0xFFFFFFFF
        for index in range(count):
            self._post_fragment(data, peer, frame_id, index, count, chunk)
        self.c.tx_datagrams += 1
        self.c.tx_bytes += frame_bytes
        return frame_bytes

    def counters(self) -> dict[str, int]:
        out = self.c.as_dict()
        out.update(self.reasm.counters())
        if self.side is not None:
            out.update(self.side.counters())
        out["rx_posted"] = self.rx.posted
        out["tx_in_flight"] = self.tx.in_flight()
        out["ud_mtu_bytes"] = self.ud_mtu_bytes
        return out

    def describe(self) -> dict:
        """For status output: which device/port/GID/QP this link uses and who is resolved."""
        v = self.verbs
        return {"device": v.device["name"], "port": v.port_num, "gid": v.gid["gid"],
                "gid_index": v.gid["index"], "gid_type": v.gid["type"],
                "link_layer": v.port["link_layer"], "qpn": v.qpn, "qkey": self.spec.qkey,
                "ud_mtu_bytes": self.ud_mtu_bytes,
                "peers": {n: {"qpn": p.qpn, "mtu_bytes": p.mtu_bytes}
                          for n, p in (self.side.resolved.items() if self.side else [])}}

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None
        self._ahs.clear()
        self._wcs.clear()
        self._view = None
        if getattr(self, "verbs", None) is not None:
            self.verbs.close()      # QP, CQs, MR first, then the arena (inside Verbs.close)
            self.verbs = None
        self.reasm.close()

    # ---- internals --------------------------------------------------------------------

    def _raise(self, err: int, why: str):
        self.c.count_tx_errno(err)
        raise OSError(err, f"link {self.spec.linknumber} rdma: {why}")

    def _on_peer(self, peer: PeerAddress) -> None:
        """New or changed peer address (also ourselves, for frames to our own nodeid)."""
        self._ahs[peer.nodeid] = self.verbs.make_ah(peer.gid, peer.lid)

    def _post_recv(self, slot: int) -> None:
        try:
            self.verbs.post_recv(self.rx.offset(slot), self.rx.slot_bytes, slot)
        except Exception:
            self.c.rx_post_errors += 1
            return
        self.rx.mark_posted(slot)

    def _post_fragment(self, data, peer: PeerAddress, frame_id, index, count, chunk) -> None:
        slot = self.tx.acquire()
        assert slot is not None          # send() checked free() >= count
        offset = self.tx.offset(slot)
        length = write_fragment(self._view, offset, data, self.spec.local_nodeid, frame_id,
                                index, count, chunk)
        wr_id, signaled = self.tx.next_wr()
        err = self.verbs.post_send(offset, length, wr_id, signaled, self._ahs[peer.nodeid],
                                   peer.qpn, peer.qkey)
        if err:
            self.tx.unacquire(slot)
            if index:
                self.c.tx_partial_frames += 1
            self._raise(err, f"ibv_post_send to node {peer.nodeid} failed "
                        f"(fragment {index + 1} of {count})")
        self.tx.posted(slot, wr_id)
        self.c.tx_fragments += 1

    def _reap_sends(self) -> None:
        success = self.verbs.e.IBV_WC_SUCCESS
        recover = False
        for _ in range(self.tx.capacity // POLL_BATCH + 1):
            wcs = self.verbs.poll_send(POLL_BATCH)
            for wc in wcs:
                self.tx.completed(wc.wr_id)
                self.c.tx_completions += 1
                if wc.status != success:
                    self.c.bump(f"tx_wc_{self.verbs.e.ibv_wc_status(wc.status).name}")
                    recover = True
            if len(wcs) < POLL_BATCH:
                break
        if recover and self.verbs.recover_send_queue():
            self.c.tx_sq_recovered += 1

    def _refill(self) -> bool:
        self._wcs.extend(self.verbs.poll_recv(POLL_BATCH))
        if self._wcs:
            return True
        self.c.cq_events += self.verbs.take_events()
        self._wcs.extend(self.verbs.poll_recv(POLL_BATCH))
        return bool(self._wcs)

    def _consume(self, wc, buf: bytearray, now_ms: int) -> tuple[int, int] | None:
        slot = wc.wr_id
        self.rx.mark_completed(slot)
        try:
            if wc.status != self.verbs.e.IBV_WC_SUCCESS:
                self.c.bump(f"rx_wc_{self.verbs.e.ibv_wc_status(wc.status).name}")
                return None
            return self._deliver(wc, self.rx.offset(slot), buf, now_ms)
        finally:
            self._post_recv(slot)       # the bytes are copied out by now

    def _deliver(self, wc, offset: int, buf: bytearray, now_ms: int):
        length = int(wc.byte_len) - GRH_BYTES
        body = offset + GRH_BYTES
        try:
            src, frame_id, index, count, chunk, total = unpack_header(self._view, body, length)
        except FragmentError:
            self.c.rx_frag_bad += 1
            return None
        self.c.rx_fragments += 1
        nodeid = self._source(wc, offset, src, now_ms)
        start, stop = fragment_span(index, chunk, total)
        data = self._view[body + FRAG_HEADER_BYTES:body + FRAG_HEADER_BYTES + stop - start]
        if count > 1:
            data = self.reasm.add((src, int(wc.src_qp), frame_id), index, count, chunk,
                                  total, data, now_ms)
            if data is None:
                return None
        if len(data) > len(buf):
            self.c.rx_truncated += 1
            return None
        buf[:len(data)] = data
        self.c.rx_frames += 1
        self.c.rx_bytes += len(data)
        return len(data), nodeid

    def _source(self, wc, offset: int, claimed: int, now_ms: int) -> int:
        """The sender's nodeid if its QPN (and GRH source GID) match what it announced."""
        peer = self.side.resolved.get(claimed)
        ok = peer is not None and peer.qpn == int(wc.src_qp)
        if ok and int(wc.wc_flags) & int(self.verbs.e.IBV_WC_GRH):
            grh = self._view[offset:offset + GRH_BYTES]
            ok = grh_source_gid(grh, self.verbs.roce_v2_ipv4) == peer.gid
        if ok:
            return claimed
        self.c.rx_unknown_source += 1
        self.side.request(claimed, now_ms)      # a restarted peer: ask for its new QPN
        return 0
