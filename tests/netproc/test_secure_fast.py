"""The jitted data path of a secure link against the Python path it stands in for, with
frames in clear, with AES-GCM and with HMAC.

One real SecureLinkProcess (node 2 on loopback, its own link table, shm rings and
doorbell) runs under a control that stops it after a number of loop turns, once with the
jitted path (jit/secure_loop.py) and once without. Real sockets play nodes 1 and 3 and a
stranger, and send the same datagrams to both runs: valid frames, a replay, frames for
another node or link, a ping, Totem runts and foreign frames, a truncated header, a
node-1 frame from node 3's address, an unlisted source, an old and a new session, and a
frame fragmented into a GSO train; with crypto on also a frame sealed under another
authkey and one altered on the way. Both runs must push the same frames into the rx
ring and count the same refusals under the same names, and the jitted run must have opened
most DATA frames itself. On the send side both must deliver the same frames to the same
peers, a frame above the fixed knet_mtu fragmented by the carrier. A corrupt tx ring
stops the jitted link with the record's position, offset and length.
"""
from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from netproc_harness import frame, unique_tag

from coroproc.netproc.carrier_udp import UdpCarrier
from coroproc.netproc.fragments.wire import write_fragment
from coroproc.netproc.jit.link_loop import SOL_UDP, UDP_SEGMENT
from coroproc.netproc.jit import secure_loop as S
from coroproc.netproc.linktable import LinkTable
from coroproc.netproc.secure import CryptoSuite, KeyRing, LinkCodec
from coroproc.netproc.secure.frame import FTYPE_DATA, FTYPE_PING
from coroproc.netproc.secure_link import SecureLinkProcess
from coroproc.netproc.secure_spec import SecureSettings
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.errors import ShmError
from coroproc.shm.ring import ShmRing

LOCAL = 2
TURNS = 40
COMPARED = ("rx_frames", "rx_bytes", "rx_runt", "rx_oversize", "rx_foreign", "rx_ring_full",
            "rx_ok", "rx_replayed", "rx_old_session", "rx_wrong_dest", "rx_wrong_link",
            "rx_truncated", "rx_bad_magic", "rx_unknown_sender", "rx_sender_mismatch",
            "rx_unlisted", "rx_control", "pongs_sent", "rx_fragments", "tx_frames",
            "tx_unknown_dest", "tx_fragmented_frames", "rx_auth_failed", "rx_unknown_key",
            "rx_clear_refused")
AUTHKEY = bytes(range(128))
SUITES = {"clear": ("none", "none", None), "aes-gcm": ("aes256", "sha256", AUTHKEY),
          "hmac-sha256": ("none", "sha256", AUTHKEY), "hmac-md5": ("none", "md5", AUTHKEY)}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Turns:
    """Control that lets the link loop run `turns` times (tick 0: each turn is one pass
    of the jitted loop), calling phases[i]() before turn i (what arrives between
    turns), then takes the link's counters and stops it."""

    def __init__(self, link, turns: int, phases=()):
        self.link, self.left, self.tick_s = link, turns, 0.0
        self.phases, self.turn = list(phases), 0
        self.counters = None

    def fds(self):
        return []

    def poll(self) -> bool:
        if self.turn < len(self.phases):
            self.phases[self.turn]()
            time.sleep(0.01)            # loopback delivers at once; be generous
        self.turn += 1
        self.left -= 1
        if self.left < 0:
            self.counters = self.link.counters()
            return False
        return True


@pytest.fixture(params=sorted(SUITES))
def suite(request):
    """(cipher, hash, authkey) of every link in the test."""
    return SUITES[request.param]


@pytest.fixture
def peers():
    """Nodes 1 and 3 as UDP carriers on their nodelist addresses (mtu 1,200: they
    fragment above it), a stranger's socket, and the nodelist (node 2: the link tested)."""
    ports = {n: _free_port() for n in (1, LOCAL, 3)}
    nodelist = {n: ("127.0.0.1", p) for n, p in ports.items()}
    carriers = {}
    for n in (1, 3):
        spec = LinkSpec(linknumber=0, transport="knet", family=socket.AF_INET,
                        local_nodeid=n, bind_addr="127.0.0.1", port=ports[n],
                        peers=nodelist, netmtu=8000)
        carriers[n] = UdpCarrier(spec, mtu_of=lambda _n: 1200)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))        # an address no node has
    yield nodelist, carriers, stranger
    for c in carriers.values():
        c.close()
    stranger.close()


def _run_link(nodelist: dict, suite, jit: bool, before_run, mtu_bytes: int = 0, phases=()):
    """Build node 2's link, call before_run(link, tx_ring) (push tx records), run it for
    TURNS turns with `phases` (Turns); returns (counters, rx frames, the jitted
    counters)."""
    tag = unique_tag()
    spec = LinkSpec(linknumber=0, transport="knet", family=socket.AF_INET,
                    local_nodeid=LOCAL, bind_addr="127.0.0.1", port=nodelist[LOCAL][1],
                    peers=nodelist, netmtu=8000)
    table = LinkTable.create(f"/coroproc-test.sfast.{tag}.links", sorted(nodelist), LOCAL)
    cipher, hash_, authkey = suite
    settings = SecureSettings(cluster_name="sfast", link_mode="passive", cipher=cipher,
                              hash=hash_, authkey=authkey, table_name=table.name,
                              mtu_bytes=mtu_bytes, jit_data_path=jit)
    bell = Doorbell()
    rx = ShmRing.create(f"/coroproc-test.sfast.{tag}.rx", 1 << 20, role="consumer")
    tx = ShmRing.create(f"/coroproc-test.sfast.{tag}.tx", 1 << 20, wake_fd=bell.fd,
                        role="producer")
    try:
        link = SecureLinkProcess(spec, settings, rx, tx, bell)
        assert (link._fast is not None) == jit
        before_run(link, tx)
        time.sleep(0.05)                    # loopback delivery is immediate; be generous
        jitted = None
        control = Turns(link, TURNS, phases)
        if jit:
            fast = link._fast
            link.run(control)
            jitted = dict(zip(S.SC_NAMES, (int(v) for v in fast.sc)))
        else:
            link.run(control)
        frames = [bytes(p) for _rtype, _flags, p in rx.pop_batch(4096)]
        return control.counters, frames, jitted
    finally:
        for r in (rx, tx):
            r.unlink()
            r.close()
        bell.close()
        table.unlink()
        table.close()


def _codec(node: int, session: int, suite, authkey: bytes | None = None) -> LinkCodec:
    cipher, hash_, key = suite
    return LinkCodec(KeyRing(CryptoSuite(cipher, hash_), authkey or key, "sfast"), node, 0,
                     session, (1, LOCAL, 3))


def _hostile_script(carriers, stranger, suite):
    """What node 2 is sent, in phases that arrive between loop turns (the same bytes
    for both runs). Each phase starts with frames the jitted path may open, then ones it
    must hand back (the Python path then takes the rest of the socket's queue)."""
    n1, n1_old, n1_new, n3 = (_codec(1, 5000, suite), _codec(1, 4000, suite),
                              _codec(1, 6000, suite), _codec(3, 7000, suite))
    s1, s3 = carriers[1]._sock, carriers[3]._sock

    def data(c, tag, size=200, dest=LOCAL):
        return c.seal(FTYPE_DATA, dest, frame(tag, size))

    replayed = data(n1, 6)
    wrong_link = bytearray(data(n1, 8))
    wrong_link[6] = 1
    phases = [
        [(s1, data(n1, 1)), (s3, data(n3, 19))],              # each session's start
        [(s1, data(n1, i)) for i in range(2, 6)] + [
            (s1, replayed), (s1, replayed),                   # the second is a replay
            (s1, data(n1, 7, dest=3)),                        # for another node
            (s1, bytes(wrong_link)),
            (s1, n1.seal(FTYPE_PING, LOCAL, b"\x00" * 24))],  # control: Python path
        [(s1, n1.seal(FTYPE_DATA, LOCAL, frame(9, 13)[:5])),   # Totem runt
         (s1, n1.seal(FTYPE_DATA, LOCAL, b"\xff\xff" + bytes(40))),   # foreign
         (s1, data(n1, 10)[:20])],                            # truncated link header
        [(s3, data(n3, i, size=100 + i)) for i in range(20, 40)] + [
            (s3, data(n1, 11)),                               # node 1's frame, 3's port
            (stranger, data(n1, 12))],                        # unlisted source
        [(s1, data(n1_old, 13))],                             # an older session
        [(s1, data(n1_new, i)) for i in range(14, 18)],       # the sender restarted
        [(s1, data(n1, 18))],                                 # the replaced session
    ]
    bad_magic = bytearray(data(n3, 40))
    bad_magic[0] ^= 0xFF
    phases.append([(s3, data(n3, i)) for i in range(41, 45)] + [(s3, bytes(bad_magic))])
    if suite[2] is not None:
        # another cluster's key, and a frame altered on the way: both fail authentication
        # (the first would carry another key id: seal it under ours' id to reach the tag)
        forged = bytearray(data(_codec(3, 7000, suite, authkey=b"x" * 128), 45))
        forged[5] = n3.keyring.tx.key_id
        altered = bytearray(data(n3, 46))
        altered[-20] ^= 0x01
        phases.append([(s3, data(n3, 47)), (s3, bytes(forged)), (s3, bytes(altered)),
                       (s3, data(n3, 48))])
    return phases, n1_new


def test_receive_path_matches_the_python_path(peers, suite):
    nodelist, carriers, stranger = peers
    to2 = nodelist[LOCAL]
    results = {}
    for jit in (False, True):
        script, n1 = _hostile_script(carriers, stranger, suite)
        phases = [lambda batch=batch: [sock.sendto(d, to2) for sock, d in batch]
                  for batch in script]
        # a frame above node 1's path: its carrier fragments it (one GSO train)
        big = n1.seal(FTYPE_DATA, LOCAL, frame(99, 5000))
        phases.append(lambda big=big: carriers[1].send(big, LOCAL))
        results[jit] = _run_link(nodelist, suite, jit, lambda _link, _tx: None,
                                 phases=phases)
    (slow_c, slow_frames, _), (fast_c, fast_frames, jitted) = results[False], results[True]
    assert fast_frames == slow_frames
    crypto = suite[2] is not None
    assert len(slow_frames) == 5 + 1 + 4 + 21 + 4 + 1 + 2 * crypto     # what must get through
    assert max(len(f) for f in slow_frames) == 5000         # the reassembled one
    assert {k: fast_c.get(k, 0) for k in COMPARED} == {k: slow_c.get(k, 0) for k in COMPARED}
    for node in ("1", "3"):
        assert fast_c["knet_peers"][node]["rx_data_packets"] == \
            slow_c["knet_peers"][node]["rx_data_packets"]
    # the refusals happened, and the jitted path did the bulk of the opening
    assert slow_c["rx_replayed"] == 1 and slow_c["rx_runt"] == 1
    assert slow_c["rx_foreign"] == 1 and slow_c["rx_old_session"] == 2
    assert slow_c["rx_wrong_dest"] == 1 and slow_c["rx_wrong_link"] == 1
    assert slow_c["rx_unlisted"] == 1 and slow_c["rx_sender_mismatch"] == 1
    assert slow_c["rx_truncated"] == 1 and slow_c["rx_bad_magic"] == 1
    assert fast_c["jit_data_path"] == 1 and slow_c["jit_data_path"] == 0
    assert jitted["rx_ok"] >= 28 and jitted["rx_replayed"] == 1
    assert slow_c["rx_auth_failed"] == 2 * crypto


def test_send_path_matches_the_python_path(peers, suite):
    nodelist, carriers, _stranger = peers
    got = {}
    for jit in (False, True):
        tx_rings = []

        def push(records):
            for dest, size in records:
                tx_rings[0].push(1, dest.to_bytes(4, "little") + frame(100 + size, size))
        # records in phases: ones the jitted path sends, then ones it hands back
        phases = [lambda r=r: push(r) for r in (
            [(0, 300), (1, 200)], [(3, 3000)], [(0, 2500)], [(9, 100), (LOCAL, 120), (0, 64)])]
        counters, _frames, jitted = _run_link(
            nodelist, suite, jit, lambda _link, tx: tx_rings.append(tx), mtu_bytes=1200,
            phases=phases)
        time.sleep(0.05)
        got[jit] = (counters, {n: _data_frames(carriers[n], n, suite) for n in (1, 3)},
                    jitted)
    (slow_c, slow_rx, _), (fast_c, fast_rx, jitted) = got[False], got[True]
    assert fast_rx == slow_rx
    assert {k: fast_c.get(k, 0) for k in COMPARED} == {k: slow_c.get(k, 0) for k in COMPARED}
    # the multicasts reach both; the 2,500- and 3,000-byte frames went as fragments
    assert [len(f) for f in slow_rx[1]] == [300, 200, 2500, 64]
    assert [len(f) for f in slow_rx[3]] == [300, 3000, 2500, 64]
    assert slow_c["tx_unknown_dest"] == 1
    assert fast_c["knet_peers"]["1"]["tx_data_packets"] >= 3
    assert jitted["tx_sealed"] >= 5


def _data_frames(carrier: UdpCarrier, node: int, suite) -> list[bytes]:
    """The DATA frames a node got from node 2 (its carrier reassembles fragments)."""
    opener = _codec(node, 1, suite)
    buf = bytearray(70000)
    out = []
    while (got := carrier.recv_into(buf)) is not None:
        opened = opener.open(bytes(buf[:got[0]]))
        if opened is not None and opened[0] == FTYPE_DATA:
            out.append(bytes(opened[2]))
    return out


def test_a_corrupt_tx_ring_stops_the_jitted_link_with_the_position(peers, suite):
    nodelist, _carriers, _stranger = peers

    def corrupt(_link, tx):
        assert tx.push(1, (1).to_bytes(4, "little") + frame(7, 64))
        # a record header whose length runs past the head: nothing a producer writes
        tx.data[:4] = np.frombuffer((1 << 15).to_bytes(4, "little"), np.uint8)
    with pytest.raises(ShmError, match=r"corrupt record at position 0 \(offset 0, length "
                                       r"32768\)"):
        _run_link(nodelist, suite, True, corrupt)


def test_frames_above_the_path_mtu_stay_on_the_jitted_path(peers, suite):
    """Fragments both ways without Python: node 2 (path MTU 1,200 to every peer) sends a
    3,000-byte frame to node 1 and a 2,500-byte multicast as GSO trains of fragments,
    and reassembles and opens node 1's 5,000-byte frame itself. Only node 1's first
    frame (a session not yet accepted) goes to the Python path."""
    nodelist, carriers, _stranger = peers
    to2 = nodelist[LOCAL]
    n1 = _codec(1, 5000, suite)
    big = n1.seal(FTYPE_DATA, LOCAL, frame(2, 5000))
    phases = [lambda: carriers[1]._sock.sendto(n1.seal(FTYPE_DATA, LOCAL, frame(1, 200)), to2),
              lambda: carriers[1].send(big, LOCAL)]

    def push(_link, tx):
        for dest, size in ((1, 3000), (0, 2500)):
            tx.push(1, dest.to_bytes(4, "little") + frame(100 + size, size))
    counters, frames, jitted = _run_link(nodelist, suite, True, push, mtu_bytes=1200,
                                         phases=phases)
    time.sleep(0.05)
    assert [len(f) for f in frames] == [200, 5000] and frames[1] == frame(2, 5000)
    assert [len(f) for f in _data_frames(carriers[1], 1, suite)] == [3000, 2500]
    assert [len(f) for f in _data_frames(carriers[3], 3, suite)] == [2500]
    assert jitted["rx_handed_back"] == 1 and jitted["tx_handed_back"] == 0
    assert jitted["rx_ok"] == 1 and jitted["tx_sealed"] == 3
    chunk = 1200 - 20
    assert counters["tx_fragmented_frames"] == 3
    assert counters["rx_fragments"] == -(-len(big) // chunk)
    assert counters["reasm_frames"] == 1 and counters["reasm_in_progress"] == 0


def test_a_reassembled_frame_the_jitted_path_cannot_open_goes_to_python_mid_train(peers,
                                                                                   suite):
    """One GSO train from node 1 carries the fragments of two frames: the first of a new
    session (the Python path must accept it) and one more. The jitted path completes
    the first, hands it over (RET_SLOW_FRAME), the Python path opens it and the rest of
    the train, and the next frame of the session is the jitted path's again."""
    nodelist, carriers, _stranger = peers
    to2 = nodelist[LOCAL]
    n1 = _codec(1, 5000, suite)
    chunk = 1200 - 20
    overhead = len(n1.seal(FTYPE_DATA, LOCAL, frame(0, 100))) - 100
    first = n1.seal(FTYPE_DATA, LOCAL, frame(1, 3 * chunk - overhead))   # 3 whole chunks
    second = n1.seal(FTYPE_DATA, LOCAL, frame(2, 2500))
    assert len(first) == 3 * chunk

    def fragments(link_frame: bytes, frame_id: int) -> list[bytes]:
        count = -(-len(link_frame) // chunk)
        out = []
        for i in range(count):
            b = bytearray(1200)
            n = write_fragment(b, 0, link_frame, 1, frame_id, i, count, chunk)
            out.append(bytes(b[:n]))
        return out

    def one_train():
        datagrams = fragments(first, 70) + fragments(second, 71)
        carriers[1]._sock.sendmsg(datagrams, [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 1200))],
                                  0, to2)
    third = n1.seal(FTYPE_DATA, LOCAL, frame(3, 4000))
    adopted = []

    def watch(link, _tx):
        adopt = link.carrier.adopt_frame
        link.carrier.adopt_frame = lambda slot: (adopted.append(slot), adopt(slot))
    counters, frames, jitted = _run_link(
        nodelist, suite, True, watch, mtu_bytes=1200,
        phases=[one_train, lambda: carriers[1].send(third, LOCAL)])
    assert frames == [frame(1, 3 * chunk - overhead), frame(2, 2500), frame(3, 4000)]
    assert len(adopted) == 1            # the first frame, reassembled by the jitted path
    assert jitted["rx_handed_back"] == 1 and jitted["rx_ok"] == 1
    assert counters["reasm_frames"] == 3 and counters["reasm_in_progress"] == 0
    assert counters["rx_gro_trains"] >= 1
