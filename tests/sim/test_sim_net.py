"""The virtual network does what it is told: latency, loss, duplication, partitions."""
import random

import pytest

from coroproc.sim.net import LOOPBACK_US, VirtualNetwork

NODES = (1, 2, 3, 4, 5)


def make_net(seed=1, **kw):
    return VirtualNetwork(NODES, random.Random(seed), **kw)


def test_multicast_is_one_copy_per_other_node_never_self():
    net = make_net()
    out = net.transmit(1000, 3, 0, b"frame")
    assert sorted(dst for _, dst, _ in out) == [1, 2, 4, 5]
    assert all(frame == b"frame" for _, _, frame in out)
    assert net.counters.sends == 1 and net.counters.copies == 4


def test_unicast_reaches_only_its_destination():
    out = make_net().transmit(0, 1, 2, b"x")
    assert [dst for _, dst, _ in out] == [2]
    net = make_net()
    net.loss = 1.0
    net.set_partition([[1], [2, 3, 4, 5]])
    assert net.transmit(0, 1, 1, b"x") == [(LOOPBACK_US, 1, b"x")]   # a lone node's token
    with pytest.raises(AssertionError):
        make_net().transmit(0, 1, 9, b"x")       # not in the nodelist


def test_latency_is_base_plus_jitter_and_jitter_reorders():
    net = make_net(latency_base_us=100, latency_jitter_us=400)
    arrivals = [net.transmit(t, 1, 2, bytes([t % 256]))[0][0] - t for t in range(0, 2000, 10)]
    assert all(100 <= a < 500 for a in arrivals)
    absolute = [t + a for t, a in zip(range(0, 2000, 10), arrivals)]
    assert absolute != sorted(absolute), "jitter should reorder frames sent 10 µs apart"


def test_no_jitter_keeps_order():
    net = make_net(latency_base_us=250, latency_jitter_us=0)
    assert [net.transmit(t, 1, 2, b"x")[0][0] for t in (0, 5, 9)] == [250, 255, 259]


def test_loss_all_and_none_and_some():
    net = make_net()
    net.loss = 1.0
    assert net.transmit(0, 1, 0, b"x") == []
    assert net.counters.dropped_loss == 4
    net.loss = 0.0
    assert len(net.transmit(0, 1, 0, b"x")) == 4
    net.loss = 0.3
    delivered = sum(len(net.transmit(0, 1, 0, b"x")) for _ in range(2000))
    assert 0.6 * 8000 < delivered < 0.8 * 8000


def test_directional_node_loss():
    net = make_net()
    net.loss_to[2] = 1.0             # node 2 hears nothing
    assert [d for _, d, _ in net.transmit(0, 1, 0, b"x")] == [3, 4, 5]
    assert [d for _, d, _ in net.transmit(0, 2, 0, b"x")] == [1, 3, 4, 5]
    net.loss_to.clear()
    net.loss_from[4] = 1.0           # nobody hears node 4
    assert net.transmit(0, 4, 0, b"x") == []
    assert len(net.transmit(0, 1, 0, b"x")) == 4


def test_symmetric_partition_and_heal():
    net = make_net()
    net.set_partition([[1, 2], [3, 4, 5]])
    assert sorted(d for _, d, _ in net.transmit(0, 1, 0, b"x")) == [2]
    assert sorted(d for _, d, _ in net.transmit(0, 4, 0, b"x")) == [3, 5]
    assert net.transmit(0, 3, 1, b"x") == [] and net.transmit(0, 1, 3, b"x") == []
    assert net.counters.dropped_unreachable == 3 + 2 + 2
    net.heal_partition()
    assert len(net.transmit(0, 1, 0, b"x")) == 4


def test_three_way_partition():
    net = make_net()
    net.set_partition([[1], [2, 3], [4, 5]])
    for a in NODES:
        for b in NODES:
            if a != b:
                same = {a, b} <= {2, 3} or {a, b} <= {4, 5}
                assert net.reachable(a, b) == same


def test_partition_must_cover_every_node_once():
    net = make_net()
    with pytest.raises(AssertionError):
        net.set_partition([[1, 2], [3, 4]])
    with pytest.raises(AssertionError):
        net.set_partition([[1, 2, 3, 4, 5], []])


def test_asymmetric_cut():
    net = make_net()
    net.cut_link(1, 2)
    assert not net.reachable(1, 2) and net.reachable(2, 1)
    assert net.transmit(0, 1, 2, b"x") == [] and len(net.transmit(0, 2, 1, b"x")) == 1
    assert sorted(d for _, d, _ in net.transmit(0, 1, 0, b"x")) == [3, 4, 5]
    net.heal_link(1, 2)
    assert net.reachable(1, 2)


def test_partition_heal_keeps_cuts_and_heal_all_clears_everything():
    net = make_net()
    net.cut_link(3, 4)
    net.set_partition([[1, 2], [3, 4, 5]])
    net.heal_partition()
    assert not net.reachable(3, 4)
    net.loss, net.dup = 0.5, 0.5
    net.loss_to[1] = 1.0
    net.heal_all()
    assert net.reachable(3, 4) and net.loss == 0 and net.dup == 0 and not net.loss_to
    assert all(len(net.transmit(0, n, 0, b"x")) == 4 for n in NODES)


def test_duplication_makes_second_copies_possibly_late():
    net = make_net()
    net.dup = 1.0
    net.dup_delay_max_us = 50_000
    out = net.transmit(0, 1, 0, b"x")
    assert sorted(d for _, d, _ in out) == [2, 2, 3, 3, 4, 4, 5, 5]
    assert net.counters.duplicated == 4
    assert max(t for t, _, _ in out) <= 100 + 400 + 50_000 + 400


def test_spike_delays_and_truncation_shortens():
    net = make_net(latency_base_us=100, latency_jitter_us=0)
    net.spike, net.spike_max_us = 1.0, 10_000
    times = [net.transmit(0, 1, 2, b"x")[0][0] for _ in range(50)]
    assert all(100 <= t <= 10_100 for t in times) and max(times) > 1000
    net.spike = 0.0
    net.truncate = 1.0
    frames = [net.transmit(0, 1, 2, b"0123456789")[0][2] for _ in range(50)]
    assert all(1 <= len(f) < 10 and b"0123456789".startswith(f) for f in frames)


def test_same_seed_same_fates():
    def fates(seed):
        net = make_net(seed)
        net.loss, net.dup, net.dup_delay_max_us = 0.2, 0.1, 1000
        return [net.transmit(t, 1 + t % 5, 0, b"x") for t in range(300)]
    assert fates(7) == fates(7)
    assert fates(7) != fates(8)
