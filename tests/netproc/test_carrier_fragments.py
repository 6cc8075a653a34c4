"""UdpCarrier above the path MTU, over real loopback sockets: a link frame bigger than
what reaches the peer whole leaves as fragments (GSO sends where the kernel takes them),
comes back whole through GRO trains and the reassembly table, and a lost, forged or
misattributed fragment costs only its own frame."""
import os
import select
import socket
import struct
import time

import pytest
from netproc_harness import carrier_recv as recv
from netproc_harness import free_udp_port, knet_spec

from coroproc.netproc.carrier_udp import UdpCarrier
from coroproc.netproc.fragments.wire import (FRAG_HEADER_BYTES, chunk_bytes_for,
                                             frag_count_for, write_fragment)
from coroproc.netproc.jit.link_loop import SOL_UDP, UDP_SEGMENT

PATH_MTU_BYTES = 1400
CHUNK_BYTES = chunk_bytes_for(PATH_MTU_BYTES)


def two_nodes():
    return {n: ("127.0.0.1", free_udp_port("127.0.0.1", socket.AF_INET)) for n in (1, 2)}


def drained(carrier, buf, settle_s=0.2):
    """Everything the carrier hands out within settle_s (nothing expected, usually)."""
    out = []
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        got = carrier.recv_into(buf)
        if got is not None:
            out.append(bytes(buf[:got[0]]))
        else:
            select.select(carrier.fds(), [], [], 0.02)
    return out


def fragments_of(frame: bytes, src: int, frame_id: int) -> list[bytes]:
    count = frag_count_for(len(frame), CHUNK_BYTES)
    out = []
    for i in range(count):
        b = bytearray(FRAG_HEADER_BYTES + CHUNK_BYTES)
        n = write_fragment(b, 0, frame, src, frame_id, i, count, CHUNK_BYTES)
        out.append(bytes(b[:n]))
    return out


def gso_send(sock, datagrams: list[bytes], addr) -> None:
    """One GSO send of same-size datagrams (the last may be shorter): one train for GRO."""
    sock.sendmsg(datagrams, [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(datagrams[0])))],
                 0, addr)


@pytest.fixture
def pair():
    """Node 1 a receiving carrier, node 2 a carrier that believes the path takes 1,400-byte
    datagrams (loopback takes 64 KiB: the belief is what makes it fragment)."""
    peers = two_nodes()
    made = []

    def make(nodeid, mtu_of=lambda n: PATH_MTU_BYTES, **kw):
        c = UdpCarrier(knet_spec(peers, nodeid, netmtu=65000, **kw), mtu_of)
        made.append(c)
        return c
    yield peers, make
    for c in made:
        c.close()


@pytest.fixture
def node2_raw(pair):
    """(peers, node 1's carrier, a plain socket on node 2's address): its datagrams are
    node 2's, written by hand."""
    peers, make = pair
    rx = make(1)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raw.bind(peers[2])
    yield peers, rx, raw
    raw.close()


def test_a_frame_above_the_path_mtu_leaves_as_one_gso_train_and_comes_back_whole(pair):
    peers, make = pair
    rx, tx = make(1), make(2)
    frame = os.urandom(60000)
    sent = tx.send(frame, 1)
    count = frag_count_for(len(frame), CHUNK_BYTES)
    assert sent == len(frame) + count * FRAG_HEADER_BYTES
    buf = bytearray(65536)
    n, node = recv(rx, buf)
    assert (n, node) == (len(frame), 2) and bytes(buf[:n]) == frame
    t, r = tx.counters(), rx.counters()
    assert (t["tx_fragmented_frames"], t["tx_fragments"]) == (1, count)
    assert t["tx_gso_sends"] == 1 and t["tx_gso_refused"] == 0    # 44 x 1,400 < 65,000
    assert r["gro_receive"] == 1 and r["rx_gro_trains"] == 1
    assert (r["rx_fragments"], r["reasm_frames"], r["reasm_in_progress"]) == (count, 1, 0)


def test_frames_within_the_path_mtu_or_with_it_unknown_go_whole(pair):
    peers, make = pair
    rx = make(1)
    buf = bytearray(65536)
    known = make(2)
    small = os.urandom(PATH_MTU_BYTES)
    known.send(small, 1)
    assert recv(rx, buf) == (len(small), 2) and bytes(buf[:len(small)]) == small
    known.close()                           # frees node 2's port for the next carrier
    unknown = make(2, mtu_of=lambda n: 0)   # path-MTU discovery still running
    big = os.urandom(30000)
    unknown.send(big, 1)                    # one datagram: IP fragments it, as before
    assert recv(rx, buf) == (len(big), 2) and bytes(buf[:len(big)]) == big
    assert unknown.counters()["tx_fragments"] == 0
    assert rx.counters()["rx_fragments"] == 0


def test_without_gso_fragments_go_one_send_each_and_are_reassembled_one_by_one(pair):
    peers, make = pair
    rx, tx = make(1, udp_gso=False), make(2, udp_gso=False)
    frames = [os.urandom(n) for n in (20000, 1401, 65000)]
    for f in frames:
        tx.send(f, 1)
    buf = bytearray(65536)
    for f in frames:
        n, node = recv(rx, buf)
        assert node == 2 and bytes(buf[:n]) == f
    t, r = tx.counters(), rx.counters()
    assert t["tx_gso_sends"] == 0 and t["tx_gso_segments_max"] == 0
    assert r["gro_receive"] == 0 and r["rx_gro_trains"] == 0
    assert r["reasm_frames"] == 3
    assert r["rx_fragments"] == sum(frag_count_for(len(f), CHUNK_BYTES) for f in frames)


def test_a_train_of_two_frames_falls_back_to_fragment_by_fragment(node2_raw):
    """GRO may join the last fragments of one frame and the first of the next (all full
    size): the whole-train check refuses such a train, and each fragment finds its frame."""
    peers, rx, raw = node2_raw
    a, b = os.urandom(3 * CHUNK_BYTES), os.urandom(2 * CHUNK_BYTES)
    gso_send(raw, fragments_of(a, 2, 7) + fragments_of(b, 2, 8), peers[1])
    buf = bytearray(65536)
    got = []
    for _ in range(2):
        n, node = recv(rx, buf)
        got.append((node, bytes(buf[:n])))
    assert got == [(2, a), (2, b)]
    r = rx.counters()
    assert r["rx_gro_trains"] == 1 and r["reasm_frames"] == 2 and r["rx_fragments"] == 5


def test_a_lost_fragment_costs_only_its_frame(node2_raw):
    peers, rx, raw = node2_raw
    lost, kept = os.urandom(10000), os.urandom(10000)
    frags = fragments_of(lost, 2, 1)
    gso_send(raw, frags[:3] + frags[4:], peers[1])      # fragment 3 never arrives
    gso_send(raw, fragments_of(kept, 2, 2), peers[1])
    buf = bytearray(65536)
    n, node = recv(rx, buf)
    assert (node, bytes(buf[:n])) == (2, kept)
    assert drained(rx, buf) == []
    r = rx.counters()
    assert r["reasm_frames"] == 1 and r["reasm_in_progress"] == 1


def test_bad_and_misattributed_fragments_are_counted_and_never_delivered(node2_raw):
    peers, rx, raw = node2_raw
    frag = bytearray(fragments_of(os.urandom(5000), 2, 1)[0])
    bad_version = bytearray(frag)
    bad_version[2] = 9
    raw.sendto(bytes(bad_version), peers[1])
    raw.sendto(bytes(frag[:FRAG_HEADER_BYTES - 1]), peers[1])        # header cut short
    raw.sendto(fragments_of(os.urandom(5000), 3, 1)[0], peers[1])    # node 3's, from 2
    raw.sendto(b"", peers[1])                                         # empty
    good = os.urandom(100)
    raw.sendto(good, peers[1])
    buf = bytearray(65536)
    n, node = recv(rx, buf)
    assert (node, bytes(buf[:n])) == (2, good)
    r = rx.counters()
    assert r["rx_frag_bad"] == 2 and r["rx_frag_sender_mismatch"] == 1
    assert r["rx_empty"] == 1
    assert r["reasm_frames"] == 0
