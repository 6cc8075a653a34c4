"""Fuzzing the whole receive path of the Totem core: bytes -> check_frame -> handlers.

A small in-process network (``Net``) drives three TotemNodes: every ("send", dest, frame)
output goes to the addressed node (dest 0 = every other node), and a simple clock fires
``on_timer`` at ``next_deadline_us()``. Frames of every type are captured from real rings
(boot, messages, hold cancel, merge detect, a partition whose recovery re-multicasts old
frames encapsulated) and from the hand-built frames of test_wire.py, then mutated.

Properties:

* every frame the core sends is valid (check_frame); only a lone ring's tokens go to itself;
* arbitrary bytes never raise; ``on_frame`` returns exactly what ``check_frame`` says (or
  R_OVERSIZE), and every reject is counted under its name and nothing else;
* mutated frames (bit flips, truncation, extension, counts/ids/seqs overwritten with
  extreme values) fed to nodes of a formed ring never raise, the core answers only with
  valid frames, no message is delivered twice, and nodes that deliver in the same ring
  agree on the order;
* after such garbage (except forged copies of the current ring's own token/messages, which
  no unauthenticated Totem survives, see impersonates_ring_traffic) the three nodes come
  back into one ring that orders a new message to all of them, and the message submitted
  right after the garbage is delivered by its sender;
* replaying every recorded frame of earlier rings (duplicated, shuffled) to the nodes of a
  later ring never makes a node deliver a message twice, and the ring keeps working.

Hypothesis runs derandomized (fixed examples, no database), so failures reproduce. The
two big fuzz runs are the last tests of the file, so ``-x`` checks everything else first.
"""
from __future__ import annotations

import collections
import copy
import random
import struct

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coroproc.ringproc import wire as W
from coroproc.ringproc.config import TotemConfig
from coroproc.ringproc.node import TotemNode
from coroproc.ringproc.state import OPERATIONAL, S_OLD_REP, S_OLD_SEQ

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for any pytest import mode
import test_wire as TW  # noqa: E402  (the hand-built frames)

CFG = TotemConfig(token_ms=300, nodelist=(1, 2, 3), queue_slots=256,
                  new_message_queue_bytes=1 << 20, max_message_bytes=65536)
IDS = (1, 2, 3)
EXTREMES_U32 = (0, 1, 384, 385, 2**31 - 1, 2**32 - 1)
EXTREMES_U64 = (0, 1, 4, 2**32 - 1, 2**32, 2**62, 2**63 - 5, 2**63 - 1, 2**63, 2**64 - 1)
LIVENESS_US = 30_000_000  # simulated time allowed for the ring to order a message


def check(frame: bytes) -> tuple[int, int]:
    r, t = W.check_frame(np.frombuffer(frame, np.uint8), len(frame))
    return int(r), int(t)


class InvalidOutput(AssertionError):
    pass


class Net:
    """Three TotemNodes wired together in-process (zero latency, optional drop filter)."""

    def __init__(self, ids=IDS, cfg=CFG):
        self.cfg = cfg
        self.nodes = {i: TotemNode(cfg, i) for i in ids}
        self.now = 0
        self.q: collections.deque = collections.deque()
        self.frames: list[tuple[int, int, bytes]] = []   # (src, dest, frame) as sent
        self.outs: dict[int, list] = {i: [] for i in ids}
        self.drop = None                                  # (src, dst, frame) -> bool
        self.record = True
        self.self_sends: list[tuple[int, bytes]] = []     # contract violations, see pump

    def start(self):
        for i in self.nodes:
            self.nodes[i].start(self.now)
            self.pump(i)

    def pump(self, i):
        for o in self.nodes[i].take_outputs():
            if o[0] != "send":
                self.outs[i].append(o)
                continue
            _, dest, frame = o
            # whatever the core received, what it sends must be a valid frame
            reason, _t = check(frame)
            if reason != W.R_OK:
                raise InvalidOutput(f"node {i} sent an invalid frame (reason {reason}): "
                                    f"{frame.hex()}")
            if dest != 0 and dest not in self.cfg.nodelist:
                raise InvalidOutput(f"node {i} sent to {dest}, not in the nodelist")
            if dest == i:
                # docs/core-api.md: only a lone ring's tokens. Recorded (and checked by
                # test_core_never_addresses_a_frame_to_itself), then delivered locally so
                # the other properties can still be checked.
                self.self_sends.append((i, frame))
            if self.record:
                self.frames.append((i, dest, frame))
            for d in ([x for x in self.nodes if x != i] if dest == 0 else [dest]):
                if d in self.nodes and not (self.drop and self.drop(i, d, frame)):
                    self.q.append((d, frame))

    def feed(self, i, frame) -> int:
        r = self.nodes[i].on_frame(self.now, frame)
        self.pump(i)
        return r

    def drain(self):
        n = 0
        while self.q:
            d, f = self.q.popleft()
            self.feed(d, f)
            n += 1
            assert n < 200_000, "frames ping-pong without time passing"

    def run(self, pred, limit_us) -> bool:
        end = self.now + limit_us
        while True:
            self.drain()
            if pred():
                return True
            dl = [x for x in (n.next_deadline_us() for n in self.nodes.values()) if x >= 0]
            if not dl:
                return False
            t = max(min(dl), self.now)
            if t > end:
                return False
            self.now = t
            for i, n in self.nodes.items():
                d = n.next_deadline_us()
                if 0 <= d <= self.now:
                    n.on_timer(self.now)
                    self.pump(i)

    def formed(self, ids=None) -> bool:
        ids = list(ids or self.nodes)
        ring = self.nodes[ids[0]].ring_id
        for i in ids:
            n = self.nodes[i]
            if n.state != OPERATIONAL or n.ring_id != ring:
                return False
            configs = [o for o in self.outs[i] if o[0] == "config"]
            if not configs or configs[-1][1] != "regular" or configs[-1][3] != tuple(sorted(ids)):
                return False
        return not self.q

    def delivered(self, i, payload) -> int:
        return sum(1 for o in self.outs[i] if o[0] == "deliver" and o[5] == payload)

    def deliveries(self, i) -> list:
        return [o for o in self.outs[i] if o[0] == "deliver"]


def _kind(frame: bytes):
    t = frame[W.O_TYPE]
    return ("mcast_encapsulated" if frame[W.O_ENCAP] == W.ENCAPSULATED else "mcast") \
        if t == W.T_MCAST else {0: "orf_token", 2: "merge_detect", 3: "memb_join",
                                4: "commit_token", 5: "token_hold_cancel"}[t]


_CACHE: dict = {}


def formed_ring() -> Net:
    """A booted 3-node ring that has ordered some messages (built once, copied per use)."""
    if "ring" not in _CACHE:
        net = Net()
        net.start()
        assert net.run(net.formed, 10_000_000), "3 nodes did not form a ring at boot"
        for k in range(6):
            assert net.nodes[1 + k % 3].submit(b"warm-%d" % k, safe=bool(k % 2))
        assert net.run(lambda: all(net.delivered(i, b"warm-5") for i in IDS), 5_000_000)
        # idle long enough for the representative to hold the token and probe for merges
        net.run(lambda: False, 1_000_000)
        net.nodes[2].submit(b"warm-hold-cancel")
        assert net.run(lambda: all(net.delivered(i, b"warm-hold-cancel") for i in IDS),
                       5_000_000)
        net.q.clear()
        _CACHE["ring"] = net
    return copy.deepcopy(_CACHE["ring"])


def recovery_frames() -> list[bytes]:
    """Frames of a partition: node 1 misses node 3's messages, {1,2} re-form and node 2
    re-multicasts them encapsulated during recovery."""
    if "recovery" not in _CACHE:
        net = formed_ring()
        net.frames.clear()
        for k in range(4):
            net.nodes[3].submit(b"part-%d" % k)
        net.drop = lambda s, d, f: s == 3 and d == 1
        assert net.run(lambda: net.formed([1, 2]), 20_000_000)
        _CACHE["recovery"] = [f for _, _, f in net.frames]
        _CACHE["recovery_self_sends"] = list(net.self_sends)
    return _CACHE["recovery"]


def seed_frames() -> list[tuple[str, bytes]]:
    """Valid frames of every type: captured from rings, plus hand-built ones."""
    if "seeds" not in _CACHE:
        net = formed_ring()
        captured = [f for _, _, f in net.frames] + recovery_frames()
        rep, seq = net.nodes[1].ring_id
        by_kind: dict[str, list[bytes]] = collections.defaultdict(list)
        for f in captured:
            if f not in by_kind[_kind(f)]:
                by_kind[_kind(f)].append(f)
        current_mcast = next(f for f in captured if f[W.O_TYPE] == W.T_MCAST
                             and W.rd_u64(np.frombuffer(f, np.uint8), W.O_MC_RING_SEQ) == seq)
        seeds = []
        for kind in sorted(by_kind):
            fs = by_kind[kind]
            # a few of each kind, spread over the capture (boot, steady state, recovery)
            for j in sorted({0, len(fs) // 2, len(fs) - 1}):
                seeds.append(("captured " + kind, fs[j]))
        hand = TW.valid_frames()
        for name, f in sorted(hand.items()):
            seeds.append(("hand " + name, f))
        # hand-built frames aimed at the current ring, so they are processed, not ignored
        seeds += [
            ("ring token", TW.orf_token(nodeid=3, seq=50, token_seq=10**6, aru=40, aru_addr=3,
                                        rep=rep, ring_seq=seq, rtr=[(rep, seq, 45)])),
            ("ring mcast", TW.mcast(nodeid=2, seq=60, this_seqno=60, rep=rep, ring_seq=seq,
                                    payload=current_mcast[W.MCAST_BYTES:])),
            ("ring encapsulated", TW.encapsulate(current_mcast, nodeid=2, seq=61, rep=rep,
                                                 ring_seq=seq)),
            ("ring hold cancel", TW.hold_cancel(nodeid=2, rep=rep, ring_seq=seq)),
            ("ring merge detect", TW.merge_detect(nodeid=2, rep=7, ring_seq=seq)),
            ("ring join", TW.memb_join(nodeid=2, procs=(1, 2, 3), ring_seq=seq)),
            ("ring join foreign", TW.memb_join(nodeid=9, procs=(1, 2, 3, 9), failed=(3,),
                                               ring_seq=seq + 4)),
            ("ring leave", TW.memb_join(nodeid=0, system_from=3, procs=(1, 2), failed=(3,),
                                        ring_seq=seq)),
            ("ring commit", TW.commit_token(nodeid=2, rep=2, ring_seq=seq + 4,
                                            addrs=(1, 2, 3), memb_index=1)),
        ]
        for name, f in seeds:
            assert check(f)[0] == W.R_OK, name
        _CACHE["seeds"] = seeds
    return _CACHE["seeds"]


def test_captured_frames_cover_every_type_and_are_valid():
    net = formed_ring()
    frames = [f for _, _, f in net.frames] + recovery_frames()
    kinds = collections.Counter(_kind(f) for f in frames)
    assert set(kinds) == {"orf_token", "mcast", "mcast_encapsulated", "merge_detect",
                          "memb_join", "commit_token", "token_hold_cancel"}, kinds
    for f in frames:
        assert check(f)[0] == W.R_OK
    # the joins of the boot ring list all three nodes, laid out as Corosync does
    joins = [TW._decode_join(f) for f in frames if _kind(f) == "memb_join"]
    assert any(j["procs"] == [1, 2, 3] and j["failed"] == [] for j in joins)
    assert all(j["len"] == j["expected_len"] for j in joins)
    assert all(j["nodeid"] == j["from"] or j["nodeid"] == 0 for j in joins)
    # the encapsulated frames carry a valid old-ring mcast of node 3
    enc = [f for f in frames if _kind(f) == "mcast_encapsulated"]
    inner = enc[0][W.MCAST_BYTES:]
    assert check(inner) == (W.R_OK, W.T_MCAST) and inner[W.O_ENCAP] != W.ENCAPSULATED


# ---------------------------------------------------------------------------------------
# (a) arbitrary bytes
# ---------------------------------------------------------------------------------------

_REJECT_KEYS = ["rx_rejected_" + n for n in W.REJECT_NAMES[1:]]


def _expected_reason(frame: bytes) -> int:
    r, _ = check(frame)
    if r == W.R_OK and len(frame) > CFG.frame_bytes:
        return W.R_OVERSIZE
    return r


def _feed_and_check_counted(net: Net, i: int, frame: bytes) -> int:
    node = net.nodes[i]
    before = node.counters()
    r = net.feed(i, frame)
    after = node.counters()
    assert r == _expected_reason(frame)
    delta = {k: after[k] - before[k] for k in _REJECT_KEYS if after[k] != before[k]}
    if r == W.R_OK:
        assert delta == {}
        assert after["frames_rejected"] == before["frames_rejected"]
    else:
        assert delta == {"rx_rejected_" + W.REJECT_NAMES[r]: 1}
        assert after["frames_rejected"] == before["frames_rejected"] + 1
    return r


_HEADERED = st.builds(
    lambda t, enc, nodeid, rest: struct.pack("<HBBBII", W.MAGIC, W.VERSION, t, enc, nodeid, 0)
    + rest,
    st.integers(0, 7), st.sampled_from((0, 1, 2, 3)), st.sampled_from((0, 1, 2, 3, 2**32 - 1)),
    st.binary(min_size=0, max_size=2000))


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.one_of(st.binary(min_size=0, max_size=2000), _HEADERED), target=st.sampled_from(IDS))
def test_arbitrary_bytes_never_raise_and_rejects_are_counted(frame, target):
    net = _CACHE.setdefault("bytes_net", formed_ring())
    _feed_and_check_counted(net, target, frame)
    # the node's responses (if any) reach the others without breaking anything
    net.drain()


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(frame=st.binary(min_size=0, max_size=2000))
def test_arbitrary_bytes_into_a_booting_node(frame):
    node = _CACHE.get("boot_node")
    if node is None:
        node = _CACHE["boot_node"] = TotemNode(CFG, 2)
        node.start(0)
        node.take_outputs()
    r = node.on_frame(1000, frame)
    assert r == _expected_reason(frame)
    for o in node.take_outputs():
        if o[0] == "send":
            assert check(o[2])[0] == W.R_OK


def test_every_reject_reason_is_counted_by_name():
    net = formed_ring()
    rep, seq = net.nodes[1].ring_id
    cases = {
        W.R_SHORT: b"\x70\xc0\x03",
        W.R_MAGIC: b"\x00" * 40,
        W.R_ENDIAN: TW.memb_join(endian=">"),
        W.R_VERSION: TW.set_u8(TW.memb_join(), W.O_VERSION, 2),
        W.R_TYPE: TW.set_u8(TW.memb_join(), W.O_TYPE, 6),
        W.R_COUNT: TW.orf_token(rtr_n=31),
        W.R_LENGTH: TW.memb_join(procs=(1, 2))[:-1],
        W.R_NODEID: TW.memb_join(procs=(1, 0)),
        W.R_DUPLICATE: TW.memb_join(procs=(1, 2, 1)),
        W.R_FIELD: TW.set_u32(TW.commit_token(), W.O_CT_MEMB_INDEX, 4),
        W.R_INNER: TW.encapsulate(b"\x00" * 45, rep=rep, ring_seq=seq),
        W.R_OVERSIZE: TW.mcast(rep=rep, ring_seq=seq, payload=b"\x00" * CFG.frame_bytes),
    }
    assert sorted(cases) == list(range(1, W.R_COUNT_MAX))
    for reason, frame in cases.items():
        assert _feed_and_check_counted(net, 2, frame) == reason
    c = net.nodes[2].counters()
    assert all(c[k] == 1 for k in _REJECT_KEYS)
    assert c["frames_rejected"] == len(cases)
    assert not net.q  # nothing rejected made the node send anything
    # and the ring is untouched
    net.nodes[3].submit(b"still-here")
    assert net.run(lambda: all(net.delivered(i, b"still-here") for i in IDS), 2_000_000)
    assert net.nodes[2].ring_id == (rep, seq)


# ---------------------------------------------------------------------------------------
# (b) structure-aware fuzzing against a formed ring
# ---------------------------------------------------------------------------------------

def _fields(frame: bytes) -> tuple[list[int], list[int]]:
    """Offsets of the u32 fields and u64 ring seqs of a frame (ids, counts, seqs)."""
    t = frame[W.O_TYPE] if len(frame) > W.O_TYPE else 0xFF
    n = len(frame)
    u32 = [W.O_NODEID, W.O_TARGET]
    u64: list[int] = []
    if t == W.T_ORF_TOKEN:
        u32 += [W.O_TK_SEQ, W.O_TK_TOKEN_SEQ, W.O_TK_ARU, W.O_TK_ARU_ADDR, W.O_TK_RING_REP,
                W.O_TK_BACKLOG, W.O_TK_FCC, W.O_TK_RETRANS_FLG, W.O_TK_RTR_N]
        u64 += [W.O_TK_RING_SEQ]
        for o in range(W.TOKEN_BYTES, n - 15, W.RTR_ITEM_BYTES):
            u32 += [o, o + 12]
            u64 += [o + 4]
    elif t == W.T_MCAST:
        for base in (0, W.MCAST_BYTES):
            u32 += [base + o for o in (W.O_NODEID, W.O_MC_FROM, W.O_MC_SEQ, W.O_MC_THIS_SEQNO,
                                       W.O_MC_RING_REP, W.O_MC_NODE_ID, W.O_MC_GUARANTEE)]
            u64 += [base + W.O_MC_RING_SEQ]
    elif t == W.T_MERGE_DETECT:
        u32 += [W.O_MD_FROM, W.O_MD_RING_REP]
        u64 += [W.O_MD_RING_SEQ]
    elif t == W.T_MEMB_JOIN:
        u32 += [W.O_JN_FROM, W.O_JN_PROC_N, W.O_JN_FAILED_N]
        u32 += list(range(W.JOIN_BYTES, n - 3, 4))
        u64 += [W.O_JN_RING_SEQ]
    elif t == W.T_COMMIT_TOKEN:
        u32 += [W.O_CT_TOKEN_SEQ, W.O_CT_RING_REP, W.O_CT_RETRANS_FLG, W.O_CT_MEMB_INDEX,
                W.O_CT_ADDR_N]
        u64 += [W.O_CT_RING_SEQ]
        cnt = struct.unpack_from("<i", frame, W.O_CT_ADDR_N)[0] if n >= 41 else 0
        if 0 < cnt <= 384:
            u32 += [W.COMMIT_BYTES + 4 * i for i in range(cnt)]
            for i in range(cnt):
                e = W.COMMIT_BYTES + 4 * cnt + W.COMMIT_ENTRY_BYTES * i
                u32 += [e + W.O_ME_RING_REP, e + W.O_ME_ARU, e + W.O_ME_HIGH_DELIVERED,
                        e + W.O_ME_RECEIVED_FLG]
                u64 += [e + W.O_ME_RING_SEQ]
    elif t == W.T_TOKEN_HOLD_CANCEL:
        u32 += [W.O_HC_RING_REP]
        u64 += [W.O_HC_RING_SEQ]
    return [o for o in u32 if o + 4 <= n], [o for o in u64 if o + 8 <= n]


def _ring_value(ring, which):
    rep, seq = ring
    return {"rep": rep, "seq": seq, "seq+4": seq + 4, "seq-4": max(seq - 4, 0)}[which]


_OP = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 2**20)),
    st.tuples(st.just("truncate"), st.integers(0, 2**20)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("u32"), st.integers(0, 2**20), st.sampled_from(EXTREMES_U32)),
    st.tuples(st.just("u32ring"), st.integers(0, 2**20), st.sampled_from(("rep", "seq"))),
    st.tuples(st.just("u64"), st.integers(0, 2**20), st.sampled_from(EXTREMES_U64)),
    st.tuples(st.just("u64ring"), st.integers(0, 2**20),
              st.sampled_from(("seq", "seq+4", "seq-4"))),
    st.tuples(st.just("byte"), st.integers(0, 2**20), st.integers(0, 255)),
)


def mutate(frame: bytes, ops, ring) -> bytes:
    b = bytearray(frame)
    for op in ops:
        kind = op[0]
        u32, u64 = _fields(bytes(b))
        if kind == "flip" and b:
            pos = op[1] % (8 * len(b))
            b[pos // 8] ^= 1 << (pos % 8)
        elif kind == "truncate":
            del b[op[1] % (len(b) + 1):]
        elif kind == "extend":
            b += op[1]
        elif kind in ("u32", "u32ring") and u32:
            v = op[2] if kind == "u32" else _ring_value(ring, op[2])
            struct.pack_into("<I", b, u32[op[1] % len(u32)], v & 0xFFFFFFFF)
        elif kind in ("u64", "u64ring") and u64:
            v = op[2] if kind == "u64" else _ring_value(ring, op[2])
            struct.pack_into("<Q", b, u64[op[1] % len(u64)], v & 0xFFFFFFFFFFFFFFFF)
        elif kind == "byte" and b:
            b[op[1] % len(b)] = op[2]
    return bytes(b)


_GARBAGE = st.lists(
    st.tuples(st.integers(0, 10**6),                 # which seed frame
              st.lists(_OP, min_size=1, max_size=4),  # its mutations
              st.sampled_from(IDS)),                  # which node receives it
    min_size=1, max_size=6)


def impersonates_ring_traffic(node: TotemNode, frame: bytes) -> bool:
    """A valid token or mcast carrying this node's current (or previous) ring id.

    Totem has no authentication of its own (Corosync relies on knet's crypto): a forged
    frame that passes for the current ring's token or for one of its messages is, to every
    node, that token or message. A forged mcast that takes a sequence number the ring has
    not used yet makes that node deliver it instead of the real one; a forged token with a
    higher token_seq duplicates the token. No implementation can keep agreement then, so
    the agreement and liveness properties below exclude such frames (they are still fed in
    the no-exception / valid-output test).
    """
    if check(frame)[0] != W.R_OK or frame[W.O_TYPE] not in (W.T_ORF_TOKEN, W.T_MCAST):
        return False
    o_rep, o_seq = ((W.O_TK_RING_REP, W.O_TK_RING_SEQ) if frame[W.O_TYPE] == W.T_ORF_TOKEN
                    else (W.O_MC_RING_REP, W.O_MC_RING_SEQ))
    ring = struct.unpack_from("<I", frame, o_rep)[0], struct.unpack_from("<Q", frame, o_seq)[0]
    old = int(node.st.s[S_OLD_REP]), int(node.st.s[S_OLD_SEQ])
    return ring == node.ring_id or ring == old


def _feed_garbage(net: Net, garbage, skip_impersonation: bool):
    seeds = seed_frames()
    ring = net.nodes[1].ring_id
    fed = []
    impersonated = False
    for idx, ops, target in garbage:
        name, base = seeds[idx % len(seeds)]
        frame = mutate(base, ops, ring)
        imp = impersonates_ring_traffic(net.nodes[target], frame)
        impersonated |= imp
        if imp and skip_impersonation:
            continue
        r = _feed_and_check_counted(net, target, frame)
        fed.append((name, ops, target, r, frame.hex()))
    return fed, impersonated


def _garbage_then_submit(garbage, submitter, skip_impersonation):
    """Feed the garbage, then submit b"early" at once; returns what the run needs."""
    net = formed_ring()
    before = {i: len(net.deliveries(i)) for i in IDS}
    fed, impersonated = _feed_garbage(net, garbage, skip_impersonation)
    net.drain()
    assert net.nodes[submitter].submit(b"early"), "the new-message queue refused a message"
    return net, fed, impersonated, before


def ring_orders_a_message(net: Net, submitter: int, limit_us: int = LIVENESS_US,
                          ids=IDS) -> bool:
    """Once all three nodes share a regular ring, a message submitted then reaches all.

    A message ordered in a ring that excludes a node is rightly never delivered to it
    (extended virtual synchrony), so a reconfiguration that starts after the submit (a
    phantom member timing out, a forged leave) earns another try, within limit_us.
    """
    end = net.now + limit_us
    for k in range(20):
        if not net.run(lambda: net.formed(ids), end - net.now):
            return False
        ring = net.nodes[ids[0]].ring_id
        payload = b"after-%d" % k
        assert net.nodes[submitter].submit(payload)
        if net.run(lambda: all(net.delivered(i, payload) for i in ids)
                   or any(net.nodes[i].ring_id != ring for i in ids), end - net.now):
            if all(net.delivered(i, payload) == 1 for i in ids):
                return True
        else:
            return False
    return False


def test_mutation_helper_hits_every_field_kind():
    # guard against a fuzzer that silently mutates nothing
    seeds = seed_frames()
    for name, f in seeds:
        u32, u64 = _fields(f)
        assert u32 and u64, name
        m = mutate(f, [("u32", len(u32) - 1, 2**32 - 1)], (1, 5))
        assert m[u32[-1]:u32[-1] + 4] == b"\xff\xff\xff\xff" and len(m) == len(f), name
        m = mutate(f, [("u64ring", 0, "seq+4")], (1, 5))
        assert struct.unpack_from("<Q", m, u64[0])[0] == 9, name
        assert mutate(f, [("truncate", 10)], (1, 5)) == f[:10]
        assert mutate(f, [("flip", 8 * 3 + 2)], (1, 5))[3] == f[3] ^ 4
    kinds = {n.split(" ", 1)[1] for n, _ in seeds if n.startswith("captured")}
    assert kinds == {"orf_token", "mcast", "mcast_encapsulated", "merge_detect", "memb_join",
                     "commit_token", "token_hold_cancel"}
    # the impersonation filter recognises in-ring traffic and nothing else
    net = formed_ring()
    node = net.nodes[1]
    rep, seq = node.ring_id
    assert impersonates_ring_traffic(node, TW.mcast(rep=rep, ring_seq=seq))
    assert impersonates_ring_traffic(node, TW.orf_token(rep=rep, ring_seq=seq))
    assert not impersonates_ring_traffic(node, TW.mcast(rep=rep, ring_seq=seq + 4))
    assert not impersonates_ring_traffic(node, TW.memb_join(ring_seq=seq))
    assert not impersonates_ring_traffic(node, TW.set_u8(TW.mcast(rep=rep, ring_seq=seq), 0, 0))


# ---------------------------------------------------------------------------------------
# (c) replaying an earlier ring's frames to a later ring
# ---------------------------------------------------------------------------------------

def _later_ring_with_history():
    """A ring orders 12 messages, then node 3 leaves and restarts: a later ring of all 3."""
    net = formed_ring()
    first_ring = net.nodes[1].ring_id
    for k in range(12):
        assert net.nodes[1 + k % 3].submit(b"replay-%d" % k, safe=bool(k % 3 == 0))
    assert net.run(lambda: all(net.delivered(i, b"replay-11") for i in IDS), 5_000_000)
    # a later ring with the same members: node 3 leaves and restarts with its ring seq
    net.nodes[3].leave(net.now)
    net.pump(3)
    assert net.run(lambda: net.formed([1, 2]), 20_000_000)
    persisted = [o for o in net.outs[3] if o[0] == "ringid"][-1][2]
    net.nodes[3] = TotemNode(CFG, 3, ring_seq=persisted)
    net.outs[3] = []
    net.nodes[3].start(net.now)
    net.pump(3)
    assert net.run(net.formed, 20_000_000)
    later_ring = net.nodes[1].ring_id
    assert later_ring[1] > first_ring[1]
    return net


def _replay(net: Net, include_sender: bool) -> dict:
    recorded = list(net.frames)
    kinds = collections.Counter(_kind(f) for _, _, f in recorded)
    assert {"orf_token", "mcast", "memb_join", "commit_token"} <= set(kinds), kinds
    counts_before = {i: collections.Counter(o[5] for o in net.deliveries(i)) for i in IDS}

    rng = random.Random(1234)
    replay = recorded + rng.sample(recorded, len(recorded) // 2)  # duplicates
    rng.shuffle(replay)                                           # out of order
    net.record = False
    for k, (src, dest, frame) in enumerate(replay):
        if include_sender:
            targets = list(IDS)
        else:
            targets = [dest] if dest else [i for i in IDS if i != src]
        for i in targets:
            net.feed(i, frame)
        if k % 50 == 0:
            net.drain()
    net.drain()
    return counts_before


def _check_replay(net: Net, counts_before: dict):
    done = ring_orders_a_message(net, 2)
    for i in IDS:
        counts = collections.Counter(o[5] for o in net.deliveries(i))
        dup = {p: c for p, c in counts.items() if c > 1}
        assert not dup, f"node {i} delivered twice: {dup}"
        # nothing old was delivered again during the replay
        for p, c in counts.items():
            if not p.startswith(b"after-"):
                assert c == counts_before[i][p], (i, p)
    assert all(net.delivered(i, b"replay-3") == 1 for i in (1, 2))
    assert net.delivered(3, b"replay-3") == 0  # the restarted node 3 never saw ring one
    states = {i: (n.state, n.ring_id) for i, n in net.nodes.items()}
    assert done, f"no message ordered to all three nodes after the replay: {states}"


def test_replay_of_an_earlier_ring_delivers_nothing_twice():
    """Every recorded frame (two rings, a leave, a restart) replayed, duplicated and
    shuffled, to the nodes it was addressed to."""
    net = _later_ring_with_history()
    _check_replay(net, _replay(net, include_sender=False))


def test_replay_of_recovery_frames_to_the_ring_that_recovered():
    """The frames of a partition and its recovery (encapsulated re-sends included), replayed
    to the ring that recovered: nothing is delivered twice and the ring keeps working."""
    frames = recovery_frames()
    net = formed_ring()
    for k in range(4):
        net.nodes[3].submit(b"part-%d" % k)
    net.drop = lambda s, d, f: s == 3 and d == 1
    assert net.run(lambda: net.formed([1, 2]), 20_000_000)
    del net.nodes[3]  # gone for good: frames to it are dropped
    net.q = collections.deque((d, f) for d, f in net.q if d != 3)
    counts = {i: collections.Counter(o[5] for o in net.deliveries(i)) for i in (1, 2)}
    assert all(counts[i][b"part-3"] == 1 for i in (1, 2))
    assert sum(_kind(f) == "mcast_encapsulated" for f in frames) > 0
    for f in frames + frames[::-1]:
        for i in (1, 2):
            net.feed(i, f)
    net.drain()
    done = ring_orders_a_message(net, 1, ids=(1, 2))
    for i in (1, 2):
        again = collections.Counter(o[5] for o in net.deliveries(i))
        assert {p: c for p, c in again.items() if c > 1} == {}, i
    assert done


# ---------------------------------------------------------------------------------------
# Output contract, then the fuzz runs themselves: last, so -x checks everything else first
# ---------------------------------------------------------------------------------------

def test_core_addresses_itself_only_with_the_token_of_a_lone_ring():
    """docs/core-api.md: a node sends to its own id only what a one-member ring passes to
    its successor — the commit token and the ORF token — exactly as Corosync over udpu
    sends them to its own address. Everything else is multicast or for another node."""
    net = formed_ring()
    recovery_frames()
    sent_to_self = net.self_sends + _CACHE["recovery_self_sends"]
    kinds = {_kind(f) for _, f in sent_to_self}
    assert kinds <= {"orf_token", "commit_token"}, kinds


# ---------------------------------------------------------------------------------------
# (b) the fuzz runs
# ---------------------------------------------------------------------------------------

@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(garbage=_GARBAGE, submitter=st.sampled_from(IDS))
def test_mutated_frames_never_raise_and_outputs_stay_valid(garbage, submitter):
    """No exception, valid responses, no node delivers "after" twice, agreed order."""
    net, fed, impersonated, before = _garbage_then_submit(garbage, submitter, False)
    net.run(lambda: all(net.delivered(i, b"early") for i in IDS), LIVENESS_US // 4)
    for i in IDS:
        assert net.delivered(i, b"early") <= 1, (i, fed)
    if impersonated:
        return  # a forged in-ring message or token: agreement cannot be asked for
    # nodes that delivered in the same ring agree on the order (prefix property)
    by_ring = collections.defaultdict(dict)
    for i in IDS:
        for o in net.deliveries(i)[before[i]:]:
            by_ring[o[2]].setdefault(i, []).append((o[1], o[3], o[5]))
    for ring, per_node in by_ring.items():
        seqs = list(per_node.values())
        for a in seqs:
            for b in seqs:
                k = min(len(a), len(b))
                assert a[:k] == b[:k], (ring, fed)


# ---------------------------------------------------------------------------------------
# (b') liveness after garbage — last, as it needs the whole membership protocol
# ---------------------------------------------------------------------------------------

@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(garbage=_GARBAGE, submitter=st.sampled_from(IDS))
def test_ring_still_orders_a_message_after_garbage(garbage, submitter):
    net, fed, impersonated, before = _garbage_then_submit(garbage, submitter, True)
    done = ring_orders_a_message(net, submitter)
    states = {i: (n.state, n.ring_id) for i, n in net.nodes.items()}
    assert done, (f"no message ordered to all nodes within {LIVENESS_US // 10**6} s after the "
                  f"garbage: states={states} garbage (name, ops, node, reason, hex)={fed}")
    # the message submitted right after the garbage: its sender delivers it, nobody twice
    assert net.delivered(submitter, b"early") == 1, fed
    assert all(net.delivered(i, b"early") <= 1 for i in IDS), fed


def test_replay_heard_by_every_node_including_the_sender():
    """The same replay, but every node hears every frame, its own included — as a
    Corosync node does (its multicasts loop back), and as a node restarted after a leave
    does when a delayed copy of its own leave arrives."""
    net = _later_ring_with_history()
    _check_replay(net, _replay(net, include_sender=True))
