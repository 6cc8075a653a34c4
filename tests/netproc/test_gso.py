"""UDP GSO on the plain link's send path (netproc/jit/link_loop.py _drain_tx): a run of
equal-length frames to one destination (the last may be shorter) goes to the kernel as
one send, and the peers still receive exactly the datagrams, in the order, that one send
per frame gives. A real LinkProcess on loopback, real shm rings, real receiving sockets;
one turn of the jitted loop (deadline 0) drains one tx batch, so which frames form a
group depends only on the records, never on timing."""
from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from netproc_harness import frame, free_udp_port, unique_tag

from coroproc.netproc.jit import link_loop as L
from coroproc.netproc.link import LinkProcess, enable_udp_gro, udp_gso_segments
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.ring import ShmRing

SO_NO_CHECK = 11          # UDP without checksums: the kernel refuses GSO for the socket
RECV_TIMEOUT_S = 5.0      # only guards against a lost datagram; no test depends on speed


class Sender:
    """Node 1's LinkProcess in this process; nodes 2.. are plain sockets that receive."""

    def __init__(self, n_peers: int = 2, **spec_kw):
        self.peers = []
        for i in range(n_peers):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            s.bind((f"127.0.0.{i + 2}", 0))
            s.settimeout(RECV_TIMEOUT_S)
            self.peers.append(s)
        port = free_udp_port()
        peers = {1: ("127.0.0.1", port)}
        peers.update({i + 2: s.getsockname() for i, s in enumerate(self.peers)})
        spec = LinkSpec(linknumber=0, transport="udpu", family=socket.AF_INET,
                        local_nodeid=1, bind_addr="127.0.0.1", port=port, peers=peers,
                        **spec_kw)
        tag = unique_tag()
        self.bell = Doorbell()
        self.rx = ShmRing.create(f"/coroproc-test.gso.{tag}.rx", 1 << 20, role="producer")
        self.tx = ShmRing.create(f"/coroproc-test.gso.{tag}.tx", 1 << 20,
                                 wake_fd=self.bell.fd, role="producer")
        self.proc = LinkProcess(spec, self.rx, self.tx, self.bell)

    def queue(self, dest_nodeid: int, payload: bytes) -> None:
        assert self.tx.push(1, struct.pack("<I", dest_nodeid) + payload)

    def turn(self) -> dict:
        """One turn of the jitted loop: drains one tx batch; the link's counters after it."""
        assert L.run_link(*self.proc.loop_args([]), 0) == L.RET_DEADLINE
        return self.proc.counters()

    def received(self, nodeid: int, count: int) -> list[bytes]:
        sock = self.peers[nodeid - 2]
        out = [sock.recv(70000) for _ in range(count)]
        sock.settimeout(0.05)
        try:
            extra = sock.recv(70000)
        except (TimeoutError, BlockingIOError):
            extra = None
        sock.settimeout(RECV_TIMEOUT_S)
        assert extra is None, f"node {nodeid} got a datagram more than {count}: {extra[:32]!r}"
        return out

    def close(self) -> None:
        self.proc.close()
        for s in self.peers:
            s.close()
        for r in (self.rx, self.tx):
            r.unlink()
            r.close()
        self.bell.close()


@pytest.fixture
def sender_factory():
    made = []

    def make(**kw):
        s = Sender(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def _needs_gso(sender: Sender) -> None:
    if udp_gso_segments(sender.proc._socks.sender) == 0:
        pytest.skip("this kernel has no UDP GSO (UDP_SEGMENT, Linux >= 4.18)")


def _clean(c: dict) -> None:
    assert c["tx_errors"] == 0 and c["tx_unknown_dest"] == 0 and c["tx_bad_record"] == 0


def _send_to_2(s: Sender, sent: list[bytes]) -> dict:
    """Queue the frames for node 2, run a turn, check node 2 got exactly them; counters."""
    for f in sent:
        s.queue(2, f)
    c = s.turn()
    assert s.received(2, len(sent)) == sent
    _clean(c)
    return c


def test_a_run_of_full_frames_is_one_send_and_arrives_as_the_same_datagrams(sender_factory):
    s = sender_factory()
    _needs_gso(s)
    sent = [frame(i, 1400) for i in range(20)] + [frame(99, 300)]
    c = _send_to_2(s, sent)
    assert (c["tx_gso_sends"], c["tx_datagrams"], c["tx_frames"]) == (1, 21, 21)
    assert c["tx_bytes"] == sum(map(len, sent))
    assert c["tx_gso_segments_max"] == L.GSO_SEGS_MAX and c["tx_gso_refused"] == 0


def test_a_multicast_run_is_one_send_per_member(sender_factory):
    s = sender_factory(n_peers=3)
    _needs_gso(s)
    sent = [frame(i, 1000) for i in range(10)]
    for f in sent:
        s.queue(0, f)
    c = s.turn()
    for node in (2, 3, 4):
        assert s.received(node, len(sent)) == sent
    _clean(c)
    assert (c["tx_gso_sends"], c["tx_datagrams"]) == (3, 30)


def test_groups_break_at_a_new_destination_a_longer_frame_and_after_a_shorter_one(
        sender_factory):
    s = sender_factory()
    _needs_gso(s)
    plan = [(2, frame(1, 800)), (2, frame(2, 800)),      # group 1 (to 2)
            (3, frame(3, 800)), (3, frame(4, 800)),      # group 2 (to 3): new destination
            (2, frame(5, 800)), (2, frame(6, 200)),      # group 3: the shorter one ends it
            (2, frame(7, 200)),                          # group 4: alone, a plain send
            (2, frame(8, 500)), (2, frame(9, 900)),      # longer: 500 alone, then 900 ...
            (2, frame(10, 900)), (0, frame(11, 900))]    # ... with 10; dest 0 is another
    for dest, f in plan:
        s.queue(dest, f)
    c = s.turn()
    to = {n: [f for d, f in plan if d in (n, 0)] for n in (2, 3)}
    assert s.received(2, len(to[2])) == to[2]
    assert s.received(3, len(to[3])) == to[3]
    _clean(c)
    # several-frame groups: (1,2) (3,4) (5,6) (9,10); frames 7, 8 and the fan-out of 11
    # (one frame, to two members) are plain sends
    assert c["tx_gso_sends"] == 4
    assert c["tx_datagrams"] == len(to[2]) + len(to[3])


@pytest.mark.parametrize("size,per_send", [(500, L.GSO_SEGS_MAX),
                                           (1400, L.GSO_BYTES_MAX // 1400)])
def test_a_long_run_is_cut_at_the_segment_and_byte_bounds(sender_factory, size, per_send):
    s = sender_factory()
    _needs_gso(s)
    c = _send_to_2(s, [frame(i, size) for i in range(150)])
    assert c["tx_gso_sends"] == -(-150 // per_send)


def test_a_refused_gso_send_falls_back_to_one_send_per_frame_and_loses_nothing(
        sender_factory):
    s = sender_factory()
    _needs_gso(s)
    # a socket without UDP checksums cannot be segmented by the kernel (EINVAL)
    s.proc._socks.sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    first = [frame(i, 1200) for i in range(8)]
    for f in first:
        s.queue(0, f)
    c = s.turn()
    for node in (2, 3):
        assert s.received(node, len(first)) == first
    _clean(c)
    assert (c["tx_gso_refused"], c["tx_gso_sends"], c["tx_gso_segments_max"]) == (1, 0, 0)
    assert c["tx_gso_refused_errno"] == "EINVAL"
    assert c["tx_datagrams"] == 2 * len(first)
    c = _send_to_2(s, [frame(50 + i, 1200) for i in range(5)])   # GSO stays off: no
    assert (c["tx_gso_refused"], c["tx_gso_sends"]) == (1, 0)       # second refusal


def test_udp_gso_off_sends_one_datagram_per_frame(sender_factory):
    s = sender_factory(udp_gso=False)
    c = _send_to_2(s, [frame(i, 1400) for i in range(12)])
    assert (c["tx_gso_sends"], c["tx_datagrams"], c["tx_gso_segments_max"]) == (0, 12, 0)


def test_the_iovecs_point_into_the_tx_ring_mapping(sender_factory):
    """The GSO send reads the frames where the ring process wrote them (no staging copy):
    after a turn the scratch's iovecs lie inside the tx ring's data area."""
    s = sender_factory()
    _needs_gso(s)
    for i in range(3):
        s.queue(2, frame(i, 700))
    s.turn()
    s.received(2, 3)
    gso = s.proc._gso
    lo = s.tx.data.ctypes.data
    hi = lo + s.tx.data.shape[0]
    bases = gso[L.GSO_IOV:L.GSO_IOV + 6:2]
    assert np.all((bases >= lo) & (bases + 700 <= hi))
    assert list(gso[L.GSO_IOV + 1:L.GSO_IOV + 6:2]) == [700, 700, 700]


# ---- receive: UDP GRO ------------------------------------------------------------------

def _gso_send(sock: socket.socket, frames: list[bytes], dest) -> None:
    """What a peer's GSO send puts on the wire: the frames as one train."""
    seg = len(frames[0])
    sock.sendmsg([b"".join(frames)], [(socket.SOL_UDP, L.UDP_SEGMENT,
                                       seg.to_bytes(2, "little"))], 0, dest)


def _pushed(s: Sender) -> list[bytes]:
    out = []
    for rtype, flags, payload in s.rx.pop_batch(1000):
        assert (rtype, flags) == (1, 0)
        out.append(payload)
    return out


def test_a_gro_train_is_split_into_its_frames(sender_factory):
    s = sender_factory()
    _needs_gso(s)
    c = s.proc.counters()
    if not c["gro_receive"]:
        pytest.skip("this kernel has no UDP GRO for sockets (UDP_GRO, Linux >= 5.0)")
    train = [frame(i, 1000) for i in range(10)] + [frame(10, 300)]
    _gso_send(s.peers[0], train, ("127.0.0.1", s.proc.spec.port))
    s.peers[0].sendto(frame(77, 500), ("127.0.0.1", s.proc.spec.port))   # a lone one too
    c = s.turn()
    assert _pushed(s) == train + [frame(77, 500)]
    assert (c["rx_gro_trains"], c["rx_frames"]) == (1, 12)
    assert c["rx_bytes"] == sum(map(len, train)) + 500


def test_each_frame_of_a_train_gets_the_checks(sender_factory):
    s = sender_factory()
    _needs_gso(s)
    if not s.proc.counters()["gro_receive"]:
        pytest.skip("this kernel has no UDP GRO for sockets (UDP_GRO, Linux >= 5.0)")
    good = [frame(i, 400) for i in range(4)]
    foreign = b"\x00\x00" + good[0][2:]
    runt = frame(9, 13)[:8]                   # the last segment, shorter than a header
    _gso_send(s.peers[0], [good[0], foreign, good[1], good[2], runt],
              ("127.0.0.1", s.proc.spec.port))
    c = s.turn()
    assert _pushed(s) == good[:3]
    assert (c["rx_foreign"], c["rx_runt"], c["rx_frames"], c["rx_gro_trains"]) == (1, 1, 3, 1)


def test_a_train_from_an_unlisted_source_counts_every_frame(sender_factory):
    s = sender_factory()
    _needs_gso(s)
    if not s.proc.counters()["gro_receive"]:
        pytest.skip("this kernel has no UDP GRO for sockets (UDP_GRO, Linux >= 5.0)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.9", 0))
        _gso_send(stranger, [frame(i, 600) for i in range(6)], ("127.0.0.1", s.proc.spec.port))
        c = s.turn()
    assert _pushed(s) == []
    assert (c["rx_unlisted"], c["rx_frames"]) == (6, 0)


def test_without_gro_the_kernel_hands_over_a_train_datagram_by_datagram(sender_factory):
    s = sender_factory(udp_gso=False)
    assert s.proc.counters()["gro_receive"] == 0
    _needs_gso(s)
    train = [frame(i, 900) for i in range(7)] + [frame(7, 100)]
    _gso_send(s.peers[0], train, ("127.0.0.1", s.proc.spec.port))
    c = s.turn()
    assert _pushed(s) == train
    assert (c["rx_gro_trains"], c["rx_frames"]) == (0, 8)


def test_gro_is_on_for_every_receive_socket_or_none():
    """The loop has one receive buffer, sized for trains only when every socket may get
    them: a socket that refuses UDP_GRO (here a TCP socket) turns the others back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        if not enable_udp_gro([a, b]):
            pytest.skip("this kernel has no UDP GRO for sockets (UDP_GRO, Linux >= 5.0)")
        assert a.getsockopt(L.SOL_UDP, L.UDP_GRO) == 1
        assert enable_udp_gro([a, b, tcp]) is False
        assert (a.getsockopt(L.SOL_UDP, L.UDP_GRO), b.getsockopt(L.SOL_UDP, L.UDP_GRO)) == (0, 0)
