"""PathMtu against a simulated path on a simulated clock (real link tables).

Node 1 probes node 2 over link 0. The "path" delivers a probe iff its datagram size is
at most the path MTU, and can refuse locally (EMSGSIZE) above a local limit or lose
chosen replies. Sizes are datagram bytes; the table holds them minus the overhead.
"""
import errno
import math
import os
import uuid

import pytest

from coroproc.netproc.health import NO_DEADLINE_US
from coroproc.netproc.linktable import LinkTable
from coroproc.netproc.pmtud import KIND_REPLY, PROBE, PROBE_VERSION, PathMtu

OVERHEAD = 60
MAX = 1500
MIN = 576
TIMEOUT_MS = 1000
T0 = 5_000_000
MAX_PROBES = 1 + math.ceil(math.log2(MAX - MIN + 1))


@pytest.fixture
def tables():
    made = []

    def make(local):
        name = f"/coroproc.test-pmtud-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
        t = LinkTable.create(name, [1, 2], local_nodeid=local)
        t.set_state(0, t.slot_of(3 - local), True, True, True, 1)   # link 0 is up
        made.append(t)
        return t

    yield make
    for t in made:
        t.unlink()
        t.close()


def pmtu(table, local, fixed=False, max_bytes=MAX):
    return PathMtu(0, local, [1, 2], max_bytes=max_bytes, fixed=fixed, interval_s=30,
                   overhead_bytes=OVERHEAD, table=table, probe_timeout_ms=TIMEOUT_MS)


class Path:
    def __init__(self, sender, receiver, mtu, local_limit=None, lose=()):
        self.a, self.b = sender, receiver
        self.mtu, self.local_limit, self.lose = mtu, local_limit, set(lose)
        self.probes = 0

    def run(self, now_us):
        """Drive the sender until its run ends; returns the time it ended."""
        for _ in range(100):
            for peer, payload in self.a.due_probes(now_us):
                self.probes += 1
                size = len(payload) + OVERHEAD
                if self.local_limit is not None and size > self.local_limit:
                    self.a.on_send_error(peer, size, errno.EMSGSIZE)
                elif size <= self.mtu and self.probes not in self.lose:
                    reply = self.b.on_probe(1, payload, now_us + 100)
                    self.a.on_reply(2, reply, now_us + 200)
            self.a.tick(now_us)
            deadline = self.a.next_deadline_us()
            if deadline >= now_us + 30_000_000 - TIMEOUT_MS * 1000:
                return now_us                 # idle until the next run
            now_us = max(now_us + 200, deadline)
        raise AssertionError("PMTU discovery did not settle in 100 steps")


def mtu_in_table(t):
    return int(t.stats[0, t.slot_of(2)]["mtu_bytes"])


@pytest.mark.parametrize("path_mtu", [MIN, 577, 1000, 1280, 1400, 1499])
def test_converges_to_the_path_mtu_in_a_bounded_number_of_probes(tables, path_mtu):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    path = Path(a, b, path_mtu)
    path.run(T0)
    assert mtu_in_table(t1) == path_mtu - OVERHEAD
    assert a.data_mtu_bytes(2) == path_mtu - OVERHEAD
    assert path.probes <= MAX_PROBES
    assert a.counters()["probe_timeouts"] == path.probes - a.counters()["replies_ok"]


def test_a_clean_path_takes_one_probe_and_logs_the_change(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    (peer, payload), = a.due_probes(T0)
    assert peer == 2 and len(payload) + OVERHEAD == MAX
    a.on_reply(2, b.on_probe(1, payload, T0), T0 + 10)
    events = a.tick(T0 + 10)
    assert [e.text for e in events] == [
        f"pmtud: PMTUD link change for host: 2 link: 0 from 0 to {MAX - OVERHEAD}"]
    assert mtu_in_table(t1) == MAX - OVERHEAD
    assert a.next_deadline_us() == T0 + 10 + 30_000_000      # the next run


def test_local_emsgsize_counts_as_too_big_without_waiting(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    path = Path(a, b, mtu=MAX, local_limit=1300)
    path.run(T0)
    assert mtu_in_table(t1) == 1300 - OVERHEAD
    assert a.counters()["probe_timeouts"] == 0 and a.counters()["send_emsgsize"] >= 1


def test_a_lost_reply_underestimates_until_the_next_run(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    path = Path(a, b, mtu=1400, lose={2})     # probe 2 (1038 B) fits, its reply is lost
    end = path.run(T0)
    found = mtu_in_table(t1)
    assert MIN - OVERHEAD <= found < 1038 - OVERHEAD
    path.lose = set()
    path.run(end + 30_000_000)
    assert mtu_in_table(t1) == 1400 - OVERHEAD


def test_path_shrinking_is_found_by_the_next_run(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    path = Path(a, b, mtu=MAX)
    end = path.run(T0)
    path.mtu = 1200
    path.run(end + 30_000_000)
    assert mtu_in_table(t1) == 1200 - OVERHEAD


def test_nothing_gets_through_keeps_mtu_unknown(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    Path(a, b, mtu=500).run(T0)
    assert mtu_in_table(t1) == 0 and a.counters()["runs_failed"] == 1


def test_no_probes_while_the_link_is_down_and_no_busy_deadline(tables):
    t1 = tables(1)
    t1.set_state(0, t1.slot_of(2), True, True, False, 1)
    a = pmtu(t1, 1)
    assert a.due_probes(T0) == []
    assert a.next_deadline_us() == NO_DEADLINE_US


def test_link_down_mid_run_abandons_it_and_up_restarts_it(tables):
    t1 = tables(1)
    a = pmtu(t1, 1)
    assert len(a.due_probes(T0)) == 1
    t1.set_state(0, t1.slot_of(2), True, True, False, 1)
    assert a.due_probes(T0 + 10) == [] and a.counters()["runs_aborted"] == 1
    t1.set_state(0, t1.slot_of(2), True, True, True, 1)
    (_, payload), = a.due_probes(T0 + 20)
    assert len(payload) + OVERHEAD == MAX


def test_fixed_mtu_is_written_at_once_and_never_probed(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1, fixed=True, max_bytes=1200), pmtu(t2, 2)
    assert mtu_in_table(t1) == 1200 - OVERHEAD
    assert a.due_probes(T0) == [] and a.due_probes(T0 + 10**9) == []
    assert a.next_deadline_us() == 0                         # its change event waits
    assert [e.kind for e in a.tick(T0)] == ["mtu"]
    assert a.next_deadline_us() == NO_DEADLINE_US
    (_, payload), = b.due_probes(T0)
    assert a.on_probe(2, payload, T0) is not None           # still answers its peers


def test_bad_and_stale_replies_are_counted_never_raised(tables):
    t1, t2 = tables(1), tables(2)
    a, b = pmtu(t1, 1), pmtu(t2, 2)
    (_, payload), = a.due_probes(T0)
    good = b.on_probe(1, payload, T0)
    for bad in (b"", b"\x01", good + b"\0", PROBE.pack(PROBE_VERSION + 1, KIND_REPLY, 0, 1, 9),
                PROBE.pack(PROBE_VERSION, 1, 0, 1, 9)):
        a.on_reply(2, bad, T0)
    assert a.counters()["malformed"] == 5
    a.on_reply(2, PROBE.pack(PROBE_VERSION, KIND_REPLY, 0, 99, 9), T0)
    assert a.counters()["replies_stale"] == 1
    a.on_reply(2, PROBE.pack(PROBE_VERSION, KIND_REPLY, 0, 1, 100), T0)   # truncated probe
    assert a.counters()["replies_short"] == 1
    a.on_reply(2, good, T0)                                  # after its verdict: stale
    assert a.counters()["replies_stale"] == 2
    assert b.on_probe(1, b"\x01\x01", T0) is None and a.on_probe(7, payload, T0) is None


def test_other_send_errors_end_the_run_and_retry_after_a_probe_timeout(tables):
    t1 = tables(1)
    a = pmtu(t1, 1)
    a.due_probes(T0)
    a.on_send_error(2, MAX, errno.ENOBUFS)
    assert a.counters()["send_errors"] == 1
    assert a.due_probes(T0 + TIMEOUT_MS * 1000 - 1) == []
    assert len(a.due_probes(T0 + TIMEOUT_MS * 1000)) == 1


def test_bad_ranges_are_refused(tables):
    t1 = tables(1)
    with pytest.raises(ValueError, match="search range"):
        pmtu(t1, 1, max_bytes=500)
    with pytest.raises(ValueError, match="knet_mtu 50 bytes"):
        pmtu(t1, 1, fixed=True, max_bytes=50)
