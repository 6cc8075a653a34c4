"""Idle token pacing (coroproc { idle_token_pace_us }): what a ring that has just gone quiet
does with its token, and that a new message never waits for the pace.

After PACE_AFTER_QUIET_ROTATIONS quiet rotations at full speed, the representative keeps
the token for the pace on each visit before it goes round again, until the ring has been
quiet for seqno_unchanged_const rotations and the token is held as without pacing. The
in-process network has no latency, so every µs of simulated time a quiet rotation takes
is the pace.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from coroproc.ringproc import wire as W
from coroproc.ringproc.state import S_RING_REP, S_SEQ_UNCHANGED, S_TOKEN_HELD
from coroproc.ringproc.token import PACE_AFTER_QUIET_ROTATIONS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for any pytest import mode
from test_core_fuzz import CFG, IDS, Net  # noqa: E402  (the in-process three-node network)

PACE_US = 700
PACED = replace(CFG, idle_token_pace_us=PACE_US)


def _tokens(net: Net) -> list[int]:
    """The simulated time of every token the representative sent, as recorded."""
    return [t for t, src, f in net.timed if f[W.O_TYPE] == W.T_ORF_TOKEN and src == net.rep]


class TimedNet(Net):
    """Net that also stamps each sent frame with the simulated time it went out."""

    def __init__(self, cfg):
        super().__init__(cfg=cfg)
        self.timed: list[tuple[int, int, bytes]] = []

    def pump(self, i):
        before = len(self.frames)
        super().pump(i)
        self.timed += [(self.now, s, f) for s, _d, f in self.frames[before:]]

    @property
    def rep(self) -> int:
        return int(self.nodes[IDS[0]].st.s[S_RING_REP])


def _quiet_after_a_message(cfg) -> TimedNet:
    """A formed ring; a message from node 2, everywhere delivered; the record from then."""
    net = TimedNet(cfg)
    net.start()
    assert net.run(net.formed, 10_000_000)
    net.nodes[2].submit(b"first")
    net.pump(2)
    net.timed.clear()
    assert net.run(lambda: all(net.delivered(i, b"first") for i in IDS), 5_000_000)
    return net


def _paced_ring() -> tuple[TimedNet, int, int]:
    """(net, representative, another member): a few paced rotations into a quiet spell,
    the token waiting at the representative."""
    net = _quiet_after_a_message(PACED)
    rep = net.rep
    assert net.run(lambda: len(set(_tokens(net))) > 3 and not net.q
                   and net.nodes[rep].st.s[S_TOKEN_HELD] == 1, 1_000_000)
    return net, rep, next(i for i in IDS if i != rep)


def _until_held(net: Net) -> bool:
    return net.run(lambda: net.nodes[net.rep].st.s[S_TOKEN_HELD] == 1
                   and net.nodes[net.rep].st.s[S_SEQ_UNCHANGED] > CFG.seqno_unchanged_const
                   and not net.q, 1_000_000)


def test_a_quiet_ring_paces_its_token_until_it_holds_it():
    net = _quiet_after_a_message(PACED)
    t0 = net.now
    assert _until_held(net)
    sent = _tokens(net)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    # the first quiet rotations at once, every later one a pace apart, none faster
    assert gaps[:PACE_AFTER_QUIET_ROTATIONS] == [0] * PACE_AFTER_QUIET_ROTATIONS, gaps
    assert set(gaps[PACE_AFTER_QUIET_ROTATIONS + 1:]) == {PACE_US}, gaps
    quiet_paced = CFG.seqno_unchanged_const - PACE_AFTER_QUIET_ROTATIONS
    assert net.now - t0 >= quiet_paced * PACE_US
    # then the hold as without pacing: the others know it, the token stays put
    assert all(net.nodes[i].st.s[S_TOKEN_HELD] == 1 for i in IDS)
    n = len(_tokens(net))
    assert not net.run(lambda: len(_tokens(net)) > n, net.cfg.effective_hold_ms * 1000 - 1)


def test_without_a_pace_the_quiet_token_goes_round_at_once():
    net = _quiet_after_a_message(CFG)
    t0 = net.now
    assert _until_held(net)
    assert net.now == t0, "no timer between the message and the hold"


def test_the_representative_sends_with_the_token_it_paces():
    net, rep, _other = _paced_ring()
    t = net.now
    net.frames.clear()
    assert net.nodes[rep].submit(b"from-rep")
    net.pump(rep)
    assert net.delivered(rep, b"from-rep") == 1, "delivered in the submit, no pace waited"
    assert [f[W.O_TYPE] for _s, _d, f in net.frames] == [W.T_MCAST, W.T_ORF_TOKEN]
    assert net.run(lambda: all(net.delivered(i, b"from-rep") for i in IDS), 0)
    assert net.now == t


def test_another_member_cancels_the_pace_and_gets_the_token_at_once():
    net, rep, other = _paced_ring()
    assert net.nodes[other].st.s[S_TOKEN_HELD] == 1, "the others know the token waits"
    t = net.now
    net.frames.clear()
    assert net.nodes[other].submit(b"from-other")
    net.pump(other)
    assert [f[W.O_TYPE] for _s, _d, f in net.frames] == [W.T_TOKEN_HOLD_CANCEL]
    assert net.run(lambda: all(net.delivered(i, b"from-other") for i in IDS), 0)
    assert net.now == t, "waited for the pace"


def test_a_pace_a_cancel_ended_sends_no_second_copy_when_its_time_comes():
    net, rep, other = _paced_ring()
    mark = len(net.timed)
    assert net.nodes[other].submit(b"slow-round")
    net.pump(other)
    cancel = next(f for d, f in net.q if d == rep)
    net.q.clear()
    net.feed(rep, cancel)                 # the representative sends the token on
    in_flight = list(net.q)               # ... and it takes longer than a pace to return
    net.q.clear()
    assert not net.run(lambda: False, 2 * PACE_US)
    sent = [f for _t, src, f in net.timed[mark:] if src == rep and f[W.O_TYPE] == W.T_ORF_TOKEN]
    assert len(sent) == 1, "the ended pace's timer sent the token again"
    net.q.extend(in_flight)
    assert net.run(lambda: all(net.delivered(i, b"slow-round") for i in IDS), 5_000_000)


def test_a_cancel_that_crosses_the_token_sends_nothing_again():
    net, rep, other = _paced_ring()
    # the pace ends: the token leaves the representative; a cancel reaches it meanwhile
    net.now = net.nodes[rep].next_deadline_us()
    net.nodes[rep].on_timer(net.now)
    net.pump(rep)
    assert net.nodes[rep].st.s[S_TOKEN_HELD] == 0
    in_flight = list(net.q)
    assert [f[W.O_TYPE] for _d, f in in_flight] == [W.T_ORF_TOKEN]
    net.q.clear()
    net.frames.clear()
    assert net.nodes[other].st.s[S_TOKEN_HELD] == 1
    assert net.nodes[other].submit(b"crossing")
    net.pump(other)
    cancel = next(f for d, f in net.q if d == rep)
    net.q.clear()
    net.feed(rep, cancel)
    assert not any(f[W.O_TYPE] == W.T_ORF_TOKEN for src, _d, f in net.frames if src == rep), \
        "re-sent a token already on its way"
    net.q.extend(in_flight)
    assert net.run(lambda: all(net.delivered(i, b"crossing") for i in IDS), 5_000_000)


def test_a_busy_ring_is_never_paced():
    net = _quiet_after_a_message(PACED)
    t0 = net.now
    # a message every rotation from every member: the seq moves on each visit
    for k in range(40):
        for i in IDS:
            assert net.nodes[i].submit(b"m%d-%d" % (k, i))
            net.pump(i)
        net.drain()
    want = [b"m%d-%d" % (k, i) for k in range(40) for i in IDS]
    assert net.run(lambda: all(net.delivered(i, p) for i in IDS for p in want), 0)
    assert net.now == t0, "a ring with traffic waited for a pace"
    orders = [[o[5] for o in net.deliveries(i) if o[5] in set(want)] for i in IDS]
    assert orders[0] == orders[1] == orders[2] and len(orders[0]) == len(want)


def test_a_lost_paced_token_is_recovered_without_a_new_ring():
    net, rep, _other = _paced_ring()
    gathers = [net.nodes[i].counters()["gather_entered"] for i in IDS]
    # the paced token's release is lost on its way
    net.drop = lambda s, d, f: s == rep and f[W.O_TYPE] == W.T_ORF_TOKEN
    assert net.run(lambda: net.nodes[rep].st.s[S_TOKEN_HELD] == 0, 1_000_000)
    net.drop = None
    assert net.nodes[2].submit(b"after-loss")
    net.pump(2)
    assert net.run(lambda: all(net.delivered(i, b"after-loss") for i in IDS), 5_000_000)
    assert [net.nodes[i].counters()["gather_entered"] for i in IDS] == gathers
