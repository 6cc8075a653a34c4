"""The held token: what a quiet ring does with it, and how a new message gets it back.

After seqno_unchanged_const quiet rotations the representative keeps the token (Corosync's
token hold) and the others know it is held. A message submitted then:

* at the representative goes out at once, with the token it holds: the same call delivers
  it to its sender and sends the message and the token on (Corosync cancels the hold to
  itself and waits for a rotation; the order of messages is the same);
* at another member sends a token_hold_cancel; the representative forwards the token.

Either way the ring keeps its token moving afterwards (a sender's own cancel restarts its
count of quiet rotations, as Corosync's does when it hears its own cancel), every member
delivers the message once, and no member loses the token.
"""
from __future__ import annotations

import sys
from pathlib import Path

from coroproc.ringproc import wire as W
from coroproc.ringproc.state import S_RING_REP, S_SEQ_UNCHANGED, S_TOKEN_HELD

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for any pytest import mode
from test_core_fuzz import IDS, Net  # noqa: E402  (the in-process three-node network)

QUIET_US = 1_000_000


def _held_ring() -> Net:
    """A formed ring that went quiet until its representative holds the token."""
    net = Net()
    net.start()
    assert net.run(net.formed, 10_000_000)
    net.nodes[2].submit(b"first")
    assert net.run(lambda: all(net.delivered(i, b"first") for i in IDS), 5_000_000)
    rep = int(net.nodes[1].st.s[S_RING_REP])
    assert net.run(lambda: net.nodes[rep].st.s[S_TOKEN_HELD] == 1 and not net.q, QUIET_US)
    for i in IDS:
        net.outs[i].clear()
    net.frames.clear()
    return net


def _types(frames) -> list[str]:
    names = {W.T_ORF_TOKEN: "token", W.T_MCAST: "mcast",
             W.T_TOKEN_HOLD_CANCEL: "hold_cancel"}
    return [names.get(f[W.O_TYPE], str(f[W.O_TYPE])) for _, _, f in frames]


def _counter(net: Net, i: int, name: str) -> int:
    return net.nodes[i].counters()[name]


def test_the_representative_sends_with_the_token_it_holds():
    net = _held_ring()
    rep = int(net.nodes[1].st.s[S_RING_REP])
    gathers = [_counter(net, i, "gather_entered") for i in IDS]
    assert net.nodes[rep].submit(b"from-rep")
    net.pump(rep)
    # in the submit itself: delivered to its sender, the message out, the token on
    assert net.delivered(rep, b"from-rep") == 1
    assert _types(net.frames) == ["mcast", "token"], _types(net.frames)
    assert net.nodes[rep].st.s[S_TOKEN_HELD] == 0
    assert net.run(lambda: all(net.delivered(i, b"from-rep") for i in IDS), 5_000_000)
    # the token keeps going round until the ring is quiet again, then is held again
    assert net.run(lambda: net.nodes[rep].st.s[S_TOKEN_HELD] == 1 and not net.q, QUIET_US)
    assert [net.delivered(i, b"from-rep") for i in IDS] == [1, 1, 1]
    assert [_counter(net, i, "gather_entered") for i in IDS] == gathers
    assert _counter(net, rep, "token_hold_cancel_tx") == 0


def test_messages_of_the_representative_keep_their_order_after_a_hold():
    net = _held_ring()
    rep = int(net.nodes[1].st.s[S_RING_REP])
    other = next(i for i in IDS if i != rep)
    for k in range(3):
        assert net.nodes[rep].submit(b"r%d" % k)
        net.pump(rep)
        assert net.nodes[other].submit(b"o%d" % k)
        net.pump(other)
    want = {b"r0", b"r1", b"r2", b"o0", b"o1", b"o2"}
    assert net.run(lambda: all(all(net.delivered(i, p) for p in want) for i in IDS), 5_000_000)
    orders = [[o[5] for o in net.deliveries(i) if o[5] in want] for i in IDS]
    assert orders[0] == orders[1] == orders[2] and len(orders[0]) == 6
    assert [p for p in orders[0] if p.startswith(b"r")] == [b"r0", b"r1", b"r2"]


def test_another_member_cancels_the_hold_and_gets_the_token():
    net = _held_ring()
    rep = int(net.nodes[1].st.s[S_RING_REP])
    other = next(i for i in IDS if i != rep)
    assert net.nodes[other].st.s[S_TOKEN_HELD] == 1
    assert net.nodes[other].submit(b"from-other")
    net.pump(other)
    assert _types(net.frames) == ["hold_cancel"]
    assert net.nodes[other].st.s[S_SEQ_UNCHANGED] == 0
    assert net.run(lambda: all(net.delivered(i, b"from-other") for i in IDS), 5_000_000)
    assert [net.delivered(i, b"from-other") for i in IDS] == [1, 1, 1]
    assert net.run(lambda: net.nodes[rep].st.s[S_TOKEN_HELD] == 1 and not net.q, QUIET_US)


def test_a_token_the_representative_sent_round_again_is_not_visited_twice():
    """A cancel from another member makes the representative send the held token round;
    a message submitted at the representative before it comes back waits for it (a visit
    of the copy it kept would put a second token, numbering the same seqs, on the ring)."""
    net = _held_ring()
    rep = int(net.nodes[1].st.s[S_RING_REP])
    other = next(i for i in IDS if i != rep)
    gathers = [_counter(net, i, "gather_entered") for i in IDS]
    assert net.nodes[other].submit(b"from-other")
    net.pump(other)
    cancel = next(f for d, f in net.q if d == rep)
    net.q = type(net.q)((d, f) for d, f in net.q if d != rep)
    net.feed(rep, cancel)                      # the token goes round again from here
    assert net.nodes[rep].st.s[S_TOKEN_HELD] == 0, "a token sent round is not in hand"
    net.frames.clear()
    assert net.nodes[rep].submit(b"from-rep")
    net.pump(rep)
    assert net.delivered(rep, b"from-rep") == 0, "visited a token it no longer holds"
    assert net.frames == [], "sent a second copy of a token already on its way"
    want = (b"from-other", b"from-rep")
    assert net.run(lambda: all(all(net.delivered(i, p) for p in want) for i in IDS), 5_000_000)
    orders = [[o[5] for o in net.deliveries(i) if o[5] in want] for i in IDS]
    assert orders[0] == orders[1] == orders[2] and sorted(orders[0]) == sorted(want)
    assert net.run(lambda: net.nodes[rep].st.s[S_TOKEN_HELD] == 1 and not net.q, QUIET_US)
    assert [_counter(net, i, "gather_entered") for i in IDS] == gathers
