"""LinkSelector over a real LinkTable: who sends a frame to a peer, per link_mode.

The node's "link processes" are eight selectors on one table; the sums over them are
what the modes promise (exactly one sender for passive and rr, every usable link for
active). One test changes the table from another (spawned) process, to show that the
selectors' cached decisions follow a change they did not make themselves.
"""
import multiprocessing as mp
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.netproc.linktable import LINKS_MAX, LinkTable
from coroproc.netproc.select import LinkSelector, best_links

NODES = [1, 2, 3]          # this node is 1
PEER = 1                   # slot of node 2
SELF = 0


@pytest.fixture
def table():
    name = f"/coroproc.test-select-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
    t = LinkTable.create(name, NODES, local_nodeid=1)
    yield t
    t.unlink()
    t.close()


def link(t, n, connected=True, priority=1, enabled=True, configured=True, slots=(0, 1, 2)):
    for slot in slots:
        t.set_state(n, slot, configured, enabled, connected, priority)


def senders(t, mode, slot, frame=0):
    """Which links send frame `frame` to the peer in `slot`."""
    return [n for n in range(LINKS_MAX)
            if LinkSelector(t, n, mode).sends_to(slot, frame)]


def test_passive_highest_priority_wins(table):
    link(table, 0, priority=1)
    link(table, 1, priority=5)
    link(table, 2, priority=3)
    assert senders(table, "passive", PEER) == [1]
    assert best_links(table, PEER, "passive") == [1]


def test_passive_ties_go_to_the_lowest_linknumber(table):
    link(table, 3, priority=4)
    link(table, 1, priority=4)
    link(table, 0, priority=2)
    assert senders(table, "passive", PEER) == [1]


def test_passive_fails_over_and_back_with_one_selector_per_link(table):
    link(table, 0, priority=1)
    link(table, 1, priority=2)
    sel = [LinkSelector(table, n, "passive") for n in range(2)]
    assert [s.sends_to(PEER, 0) for s in sel] == [False, True]
    link(table, 1, connected=False, priority=2)       # the best link goes down
    assert [s.sends_to(PEER, 1) for s in sel] == [True, False]
    link(table, 1, priority=2)                        # and comes back
    assert [s.sends_to(PEER, 2) for s in sel] == [False, True]
    link(table, 1, enabled=False, priority=2)         # its process stopped
    assert [s.sends_to(PEER, 3) for s in sel] == [True, False]


def test_active_every_connected_link_sends(table):
    link(table, 0)
    link(table, 2, priority=9)
    link(table, 5, connected=False)
    assert senders(table, "active", PEER) == [0, 2]
    assert best_links(table, PEER, "active") == [0, 2]


def test_rr_spreads_frames_evenly_one_sender_each(table):
    for n in (0, 2, 6):
        link(table, n)
    link(table, 4, connected=False)
    sel = [LinkSelector(table, n, "rr") for n in range(LINKS_MAX)]
    counts = [0] * LINKS_MAX
    for frame in range(300):
        who = [n for n in range(LINKS_MAX) if sel[n].sends_to(PEER, frame)]
        assert len(who) == 1, (frame, who)
        counts[who[0]] += 1
    assert counts == [100, 0, 100, 0, 0, 0, 100, 0]


def test_rr_keeps_one_sender_per_frame_while_links_change(table):
    for n in (0, 1, 2):
        link(table, n)
    sel = [LinkSelector(table, n, "rr") for n in range(3)]
    for frame in range(60):
        if frame == 20:
            link(table, 1, connected=False)
        if frame == 40:
            link(table, 1)
        who = [n for n in range(3) if sel[n].sends_to(PEER, frame)]
        assert len(who) == 1, (frame, who)
        assert frame < 20 or frame >= 40 or who != [1]


@pytest.mark.parametrize("mode", ["passive", "rr"])
def test_no_link_connected_the_lowest_configured_link_sends(table, mode):
    link(table, 1, connected=False)
    link(table, 3, connected=False, priority=9)
    assert senders(table, mode, PEER) == [1]
    assert best_links(table, PEER, mode) == []
    link(table, 1, connected=False, enabled=False)    # prefer one whose process runs
    assert senders(table, mode, PEER) == [3]
    link(table, 3, connected=False, enabled=False)
    assert senders(table, mode, PEER) == [1]


def test_no_link_connected_active_sends_on_all(table):
    link(table, 1, connected=False)
    link(table, 3, connected=False)
    assert senders(table, "active", PEER) == [1, 3]


@pytest.mark.parametrize("mode", ["passive", "active", "rr"])
def test_self_goes_out_of_the_lowest_configured_link_only(table, mode):
    link(table, 4, priority=9, slots=(SELF,))
    link(table, 2, priority=1, slots=(SELF,))
    assert senders(table, mode, SELF, frame=1) == [2]


def test_a_link_without_an_address_for_the_peer_never_sends(table):
    link(table, 0, configured=False)
    link(table, 1, connected=False)
    assert senders(table, "passive", PEER) == [1]
    assert senders(table, "active", PEER) == [1]
    link(table, 0, slots=(0, 2))                      # link 0 reaches nodes 1 and 3 only
    assert senders(table, "passive", 2) == [0]


def test_unknown_mode_and_link_are_refused(table):
    with pytest.raises(ValueError, match="not one of"):
        LinkSelector(table, 0, "broadcast")
    with pytest.raises(ValueError, match="allowed 0..7"):
        LinkSelector(table, 8, "rr")


_state = st.tuples(st.booleans(), st.booleans(), st.booleans(), st.integers(0, 255))


@settings(max_examples=200, deadline=None)
@given(states=st.lists(_state, min_size=LINKS_MAX, max_size=LINKS_MAX),
       frame=st.integers(0, 2**40))
def test_any_table_gives_exactly_one_sender_in_passive_and_rr(table_once, states, frame):
    t = table_once
    for n, (configured, enabled, connected, pri) in enumerate(states):
        t.set_state(n, PEER, configured, enabled, connected, pri)
    any_configured = any(s[0] for s in states)
    for mode in ("passive", "rr"):
        assert len(senders(t, mode, PEER, frame)) == (1 if any_configured else 0)
    usable = [n for n, s in enumerate(states) if s[0] and s[1] and s[2]]
    active = senders(t, "active", PEER, frame)
    assert active == (usable or [n for n, s in enumerate(states) if s[0]])


@pytest.fixture(scope="module")
def table_once():
    name = f"/coroproc.test-select-prop-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
    t = LinkTable.create(name, NODES, local_nodeid=1)
    yield t
    t.unlink()
    t.close()


def _other_link_process(name, conn):
    t = LinkTable.attach(name)
    for step in ("down", "up"):
        assert conn.recv() == step
        t.set_state(1, PEER, True, True, step == "up", 5)
        conn.send("done")
    t.close()


def test_a_change_made_by_another_process_is_seen(table):
    link(table, 0, priority=1)
    link(table, 1, priority=5)
    mine = LinkSelector(table, 0, "passive")
    assert not mine.sends_to(PEER, 0)                 # cached: link 1 is best
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_other_link_process, args=(table.name, child))
    proc.start()
    try:
        parent.send("down")
        assert parent.recv() == "done"
        assert mine.sends_to(PEER, 1)
        parent.send("up")
        assert parent.recv() == "done"
        assert not mine.sends_to(PEER, 2)
    finally:
        proc.join()
    assert proc.exitcode == 0
