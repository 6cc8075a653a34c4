"""LinkHealth on a simulated clock, two nodes with their own real link tables.

Node 1 and node 2 each run a LinkHealth for link 0; PINGs of one are handed to the
other's on_ping and the PONG back, with a chosen one-way delay. Every time is an exact
microsecond value, so "goes down exactly at the timeout" is checked to the microsecond.
"""
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.netproc.health import (
    KIND_PING,
    KIND_PONG,
    PING,
    PING_VERSION,
    LinkHealth,
    ping_defaults,
)
from coroproc.netproc.linktable import LinkTable

INTERVAL_MS, TIMEOUT_MS = 250, 500
T0 = 1_000_000


@pytest.fixture
def tables():
    made = []

    def make(nodes, local):
        name = f"/coroproc.test-health-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
        t = LinkTable.create(name, nodes, local_nodeid=local)
        made.append(t)
        return t

    yield make
    for t in made:
        t.unlink()
        t.close()


def health(table, local, peers=(1, 2), link=0, pong_count=2, precision=2048, **kw):
    return LinkHealth(link, local, list(peers), INTERVAL_MS, TIMEOUT_MS, pong_count,
                      precision, table, **kw)


@pytest.fixture
def pair(tables):
    t1, t2 = tables([1, 2], 1), tables([1, 2], 2)
    return health(t1, 1), health(t2, 2), t1


def round_trip(a, b, now_us, rtt_us, peer_of_a=2, peer_of_b=1):
    """a pings (if due at now_us), b answers after rtt/2, a gets the pong at now+rtt."""
    for peer, ping in a.due_pings(now_us):
        assert peer == peer_of_a
        pong = b.on_ping(peer_of_b, ping, now_us + rtt_us // 2)
        a.on_pong(peer_of_a, pong, now_us + rtt_us)


def test_link_comes_up_after_pong_count_pongs(tables):
    t1, t2 = tables([1, 2], 1), tables([1, 2], 2)
    a, b = health(t1, 1, pong_count=3), health(t2, 2, pong_count=3)
    slot = t1.slot_of(2)
    for i in range(2):
        round_trip(a, b, T0 + i * INTERVAL_MS * 1000, 400)
        assert a.tick(T0 + i * INTERVAL_MS * 1000 + 400) == []
        assert not a.connected(2) and t1.state_of(0, slot)[2] == 0
    round_trip(a, b, T0 + 2 * INTERVAL_MS * 1000, 400)
    events = a.tick(T0 + 2 * INTERVAL_MS * 1000 + 400)
    assert [e.text for e in events] == ["link: host: 2 link: 0 is up",
                                        "host: host: 2 (passive) best link: 0 (pri: 1)"]
    assert events[0].kind == "up" and events[0].peer == 2 and events[0].linknumber == 0
    assert a.connected(2) and t1.state_of(0, slot) == (1, 1, 1, 1)
    assert t1.stats[0, slot]["up_count"] == 1
    assert t1.stats[0, slot]["last_change_us"] == T0 + 2 * INTERVAL_MS * 1000 + 400


def test_link_goes_down_exactly_when_the_timeout_passes(pair):
    a, b, t1 = pair
    round_trip(a, b, T0, 100)
    round_trip(a, b, T0 + 250_000, 100)
    assert a.connected(2)
    last_pong = T0 + 250_000 + 100
    a.tick(last_pong)
    assert a.next_deadline_us() == min(T0 + 500_000, last_pong + TIMEOUT_MS * 1000)
    assert a.tick(last_pong + TIMEOUT_MS * 1000 - 1) == [] and a.connected(2)
    events = a.tick(last_pong + TIMEOUT_MS * 1000)
    assert [e.text for e in events] == ["link: host: 2 link: 0 is down",
                                        "host: host: 2 has no active links"]
    assert events[0].reason == "no pong for 500 ms"
    assert not a.connected(2) and t1.state_of(0, t1.slot_of(2))[2] == 0
    assert t1.stats[0, t1.slot_of(2)]["down_count"] == 1


def test_pings_are_paced_by_the_interval_and_self_is_never_pinged(pair):
    a, _, t1 = pair
    assert [p for p, _ in a.due_pings(T0)] == [2]
    assert a.due_pings(T0 + 249_999) == []
    assert a.next_deadline_us() == T0 + 250_000
    assert [p for p, _ in a.due_pings(T0 + 250_000)] == [2]
    assert a.connected(1) and t1.state_of(0, t1.slot_of(1)) == (1, 1, 1, 1)
    assert t1.stats[0, t1.slot_of(2)]["pings_sent"] == 2


def test_rtt_statistics(tables):
    t1, t2 = tables([1, 2], 1), tables([1, 2], 2)
    a, b = health(t1, 1, precision=2), health(t2, 2, precision=2)
    for i, rtt in enumerate([100, 300, 500]):
        round_trip(a, b, T0 + i * 250_000, rtt)
    rec = t1.stats[0, t1.slot_of(2)]
    # capped running mean over precision=2 samples: 100 → 200 → 200 + (500-200)/2 = 350
    assert (int(rec["latency_us"]), int(rec["latency_samples"])) == (350, 2)
    # knet reports min/max of the mean
    assert (int(rec["latency_min_us"]), int(rec["latency_max_us"])) == (100, 350)
    assert int(rec["pongs_received"]) == 3
    del rec
    assert a.latency_us(2) == 350
    assert a.peer_status()[2] == {"enabled": 1, "connected": 1, "mtu": 0, "latency_min": 100,
                                  "latency_max": 350, "latency_ave": 350,
                                  "latency_samples": 2, "up_count": 1, "down_count": 0}


def test_a_pong_slower_than_the_timeout_is_discarded(pair):
    a, b, t1 = pair
    for i in range(3):
        round_trip(a, b, T0 + i * 250_000, TIMEOUT_MS * 1000 + 1)
    assert not a.connected(2)
    assert a.counters()["pongs_late"] == 3
    assert t1.stats[0, t1.slot_of(2)]["pongs_late"] == 3


def test_a_flapping_peer(pair):
    a, b, t1 = pair
    now = T0
    for cycle in range(3):
        for _ in range(2):
            round_trip(a, b, now, 100)
            now += 250_000
        assert [e.kind for e in a.tick(now)] == ["up", "best"], cycle
        now += TIMEOUT_MS * 1000            # the peer goes quiet: no pongs
        assert [e.kind for e in a.tick(now)] == ["down", "best"], cycle
        assert not a.connected(2)
    slot = t1.slot_of(2)
    assert (t1.stats[0, slot]["up_count"], t1.stats[0, slot]["down_count"]) == (3, 3)


def test_pongs_further_apart_than_the_timeout_never_bring_the_link_up(pair):
    a, b, _ = pair
    now = T0
    for _ in range(5):
        round_trip(a, b, now, 100)
        now += TIMEOUT_MS * 1000 + 100     # the streak resets before the next pong
        a.tick(now)
    assert not a.connected(2)
    assert a.counters()["pongs_accepted"] == 5


def test_data_frames_do_not_count_as_pongs(pair):
    a, _, _ = pair
    for i in range(10):
        a.on_data(2, T0 + i)
    assert not a.connected(2) and a.counters()["data_frames"] == 10


def test_malformed_and_stale_payloads_are_counted(pair):
    a, b, t1 = pair
    (_, ping), = a.due_pings(T0)
    good_pong = b.on_ping(1, ping, T0 + 10)
    bad = [b"", ping[:-1], ping + b"\0",
           PING.pack(PING_VERSION + 1, KIND_PING, 0, 1, T0),
           PING.pack(PING_VERSION, KIND_PONG, 0, 1, T0),      # a pong where a ping goes
           PING.pack(PING_VERSION, KIND_PING, 7, 1, T0),
           PING.pack(PING_VERSION, KIND_PING, 0, 0, T0)]
    for payload in bad:
        assert b.on_ping(1, payload, T0) is None
    assert b.counters()["malformed_ping"] == len(bad)
    assert b.on_ping(99, ping, T0) is None and b.counters()["unknown_peer"] == 1
    never_sent = PING.pack(PING_VERSION, KIND_PONG, 0, 5, T0)
    wrong_time = PING.pack(PING_VERSION, KIND_PONG, 0, 1, T0 + 3)
    future = PING.pack(PING_VERSION, KIND_PONG, 0, 1, T0 + 10**9)
    for payload in (never_sent, wrong_time, future, ping):
        a.on_pong(2, payload, T0 + 20)
    assert a.counters()["malformed_pong"] == 4
    a.on_pong(2, good_pong, T0 + 20)
    a.on_pong(2, good_pong, T0 + 21)                          # a duplicate
    assert a.counters()["pongs_accepted"] == 1 and a.counters()["pongs_stale"] == 1
    assert t1.stats[0, t1.slot_of(2)]["malformed"] == 4


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_garbage_never_raises(tables_once, payload):
    a = tables_once
    a.on_ping(2, payload, T0)
    a.on_pong(2, payload, T0)
    a.on_pong(1, payload, T0)
    a.tick(T0)


@pytest.fixture(scope="module")
def tables_once():
    name = f"/coroproc.test-health-fuzz-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
    t = LinkTable.create(name, [1, 2], local_nodeid=1)
    h = health(t, 1)
    h.due_pings(T0)
    yield h
    del h
    t.unlink()
    t.close()


def test_two_links_report_the_passive_best_link(tables):
    t1, t2 = tables([1, 2], 1), tables([1, 2], 2)
    a0, a1 = health(t1, 1, link=0, priority=1), health(t1, 1, link=1, priority=2)
    b0, b1 = health(t2, 2, link=0), health(t2, 2, link=1)
    for i in range(2):
        round_trip(a0, b0, T0 + i * 250_000, 100)
    assert a0.tick(T0 + 300_000)[1].text == "host: host: 2 (passive) best link: 0 (pri: 1)"
    for i in range(2):
        round_trip(a1, b1, T0 + i * 250_000, 100)
    assert a1.tick(T0 + 300_000)[1].text == "host: host: 2 (passive) best link: 1 (pri: 2)"
    a1.shutdown()
    assert t1.state_of(1, t1.slot_of(2)) == (1, 0, 0, 2)


def test_active_mode_reports_the_number_of_active_links(tables):
    t1, t2 = tables([1, 2], 1), tables([1, 2], 2)
    a, b = health(t1, 1, link_mode="active"), health(t2, 2)
    for i in range(2):
        round_trip(a, b, T0 + i * 250_000, 100)
    assert a.tick(T0 + 300_000)[1].text == "host: host: 2 has 1 active links"


def test_priority_comes_from_the_table_when_not_given(tables):
    t1 = tables([1, 2], 1)
    t1.set_state(3, t1.slot_of(2), True, False, False, 7)
    health(t1, 1, link=3)
    assert t1.state_of(3, t1.slot_of(2)) == (1, 1, 0, 7)
    health(t1, 1, link=4)
    assert t1.state_of(4, t1.slot_of(2))[3] == 1              # Corosync's default


def test_restart_starts_disconnected(pair):
    a, b, t1 = pair
    for i in range(2):
        round_trip(a, b, T0 + i * 250_000, 100)
    assert t1.state_of(0, t1.slot_of(2))[2] == 1
    health(t1, 1)                                             # the link process restarted
    assert t1.state_of(0, t1.slot_of(2))[2] == 0


def test_defaults_are_derived_from_the_token_timeout():
    assert ping_defaults(3000) == (750, 1500)                 # Corosync 3.1 defaults
    assert ping_defaults(3650) == (912, 1825)                 # 3 nodes: token + coefficient
    assert ping_defaults(1000, pong_count=5) == (100, 200)
    with pytest.raises(ValueError, match="must both be > 0"):
        ping_defaults(0)


def test_bad_parameters_are_refused(tables):
    t1 = tables([1, 2], 1)
    with pytest.raises(ValueError, match="ping_timeout_ms must be > 0"):
        LinkHealth(0, 1, [1, 2], 250, 0, 2, 2048, t1)
    with pytest.raises(ValueError, match="duplicates"):
        LinkHealth(0, 1, [1, 2, 2], 250, 500, 2, 2048, t1)
