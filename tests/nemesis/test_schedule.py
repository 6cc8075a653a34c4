"""The schedule generator keeps its rules: same seed -> same schedule, never more than a
minority occupied, one network fault at a time, all settled before quiet_from, every kind
covered when asked, link cuts only on knet with two links. Pure computation, no root."""
from __future__ import annotations

import dataclasses

import pytest

from nemesis import schedule as S


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("n_nodes,transport,links", [(3, "udpu", 1), (5, "knet", 2),
                                                     (7, "udpu", 1)])
def test_rules_hold_for_many_seeds(seed, n_nodes, transport, links):
    sched = S.generate(seed, n_nodes=n_nodes, fault_window_s=300, faults_min=10,
                       transport=transport, links=links)
    sched.validate()                                  # raises on any broken rule
    assert len(sched.faults) >= 10
    for f in sched.faults:
        assert f.t_s >= 0 and f.end_s + sched.timing.settle_s(f.kind) <= sched.quiet_from_s
        if f.kind == S.SIGSTOP:
            assert sched.timing.token_s < f.duration_s <= S.SIGSTOP_MAX_S
        if f.kind == S.LOSS:
            assert S.LOSS_PCT_RANGE[0] <= f.loss_pct <= S.LOSS_PCT_RANGE[1]
        if f.kind == S.PARTITION:
            assert 1 <= len(f.nodes) <= sched.minority


def test_same_seed_same_schedule_and_other_seed_differs():
    a = S.generate(11, n_nodes=5, fault_window_s=600, faults_min=40)
    b = S.generate(11, n_nodes=5, fault_window_s=600, faults_min=40)
    c = S.generate(12, n_nodes=5, fault_window_s=600, faults_min=40)
    assert a.format() == b.format() and a.to_json() == b.to_json()
    assert a.format() != c.format()


def test_cover_menu_gives_one_of_each_kind_in_a_short_window():
    for seed in range(20):
        sched = S.generate(seed, n_nodes=3, fault_window_s=60, cover_menu=True)
        assert all(n >= 1 for n in sched.counts().values()), (seed, sched.counts())
        assert S.LINK_CUT not in sched.counts()       # udpu has no second link


def test_link_cut_only_with_two_knet_links():
    assert S.LINK_CUT in S.menu_for("knet", 2)
    assert S.LINK_CUT not in S.menu_for("knet", 1)
    assert S.LINK_CUT not in S.menu_for("udpu", 2)
    sched = S.generate(3, n_nodes=5, fault_window_s=400, faults_min=30, transport="knet",
                       links=2)
    assert sched.counts()[S.LINK_CUT] > 0


def test_validate_rejects_a_majority_down_and_overlapping_network_faults():
    sched = S.generate(1, n_nodes=5, fault_window_s=200, faults_min=5)
    two_kills = [S.Fault(10.0, S.DAEMON_KILL, (1,), 1.0), S.Fault(11.0, S.DAEMON_KILL, (2,), 1.0),
                 S.Fault(12.0, S.DAEMON_KILL, (3,), 1.0)]
    with pytest.raises(ValueError, match="minority"):
        dataclasses.replace(sched, faults=two_kills).validate()
    two_net = [S.Fault(10.0, S.LOSS, (1,), 5.0, loss_pct=10.0),
               S.Fault(12.0, S.PARTITION, (2,), 5.0)]
    with pytest.raises(ValueError, match="network fault"):
        dataclasses.replace(sched, faults=two_net).validate()
    late = [S.Fault(195.0, S.PARTITION, (2,), 5.0)]
    with pytest.raises(ValueError, match="quiet_from"):
        dataclasses.replace(sched, faults=late).validate()


def test_impossible_requests_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="give more time"):
        S.generate(1, n_nodes=3, fault_window_s=60, faults_min=200)
    with pytest.raises(ValueError, match="at least 3 nodes"):
        S.generate(1, n_nodes=2, fault_window_s=60)


def test_token_timeout_grows_with_the_cluster_as_corosync_does():
    assert S.Timing(token_ms=1000, n_nodes=3).token_timeout_ms == 1650
    assert S.Timing(token_ms=1000, n_nodes=5).token_timeout_ms == 2950
    assert S.Timing(token_ms=1000, n_nodes=5).consensus_s == 1.2 * 2.95
    with pytest.raises(ValueError, match="heartbeat"):
        S.generate(1, n_nodes=16, fault_window_s=600)


def test_a_printed_schedule_replays_as_the_same_faults():
    for transport, links in (("udpu", 1), ("knet", 2)):
        sched = S.generate(9, n_nodes=5, fault_window_s=400, faults_min=30,
                           transport=transport, links=links)
        again = S.parse(sched.format())
        assert again.faults == sched.faults
        assert (again.seed, again.n_nodes, again.transport, again.links,
                again.quiet_from_s) == (9, 5, transport, links, 400.0)
    with pytest.raises(ValueError, match="line 2"):
        S.parse(sched.format().splitlines()[0] + "\nt=   1.00s  reboot node 3\n")
