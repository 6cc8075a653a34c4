"""Fault schedules are seeded, bounded and consistent (no restart of a running node…)."""
import random

import pytest

from coroproc.sim import faults, params

TOKEN_US = 200_000
FAULT_US = 3_000_000


def schedule(seed, nodes=5, fault_us=FAULT_US):
    return faults.generate(random.Random(seed), tuple(range(1, nodes + 1)), fault_us=fault_us, token_us=TOKEN_US)


def test_same_seed_same_schedule_and_seeds_differ():
    assert schedule(11) == schedule(11)
    assert len({schedule(s).faults for s in range(20)}) > 15


@pytest.mark.parametrize("seed", range(200))
def test_schedule_is_bounded_sorted_and_ends_with_heal_all(seed):
    nodes = 2 + seed % 31
    s = schedule(seed, nodes)
    times = [f.t_us for f in s.faults]
    assert times == sorted(times)
    assert len(s.faults) <= params.FAULTS_MAX
    assert s.faults[-1] == faults.Fault(FAULT_US, "heal_all")
    assert all(0 <= t <= FAULT_US for t in times)
    assert all(f.kind in faults.KINDS for f in s.faults)
    assert s.episodes() <= FAULT_US * params.FAULT_EPISODES_PER_SECOND_MAX // 1_000_000


@pytest.mark.parametrize("seed", range(300))
def test_schedule_is_consistent(seed):
    """Replay the schedule against a process table: it never asks for the impossible."""
    nodes = 2 + seed % 9
    ids = range(1, nodes + 1)
    s = schedule(seed, nodes)
    state = {n: "up" for n in ids}
    partitioned, cuts, knobs = False, set(), set()
    for f in s.faults[:-1]:
        if f.kind == "crash":
            assert state[f.node] == "up"
            state[f.node] = "crashed"
        elif f.kind == "restart":
            assert state[f.node] == "crashed"
            state[f.node] = "up"
        elif f.kind == "pause":
            assert state[f.node] == "up"
            state[f.node] = "paused"
        elif f.kind == "resume":
            assert state[f.node] == "paused"
            state[f.node] = "up"
        elif f.kind == "partition":
            assert not partitioned
            assert sorted(n for g in f.arg for n in g) == list(ids) and 2 <= len(f.arg) <= 3
            partitioned = True
        elif f.kind == "heal_partition":
            assert partitioned
            partitioned = False
        elif f.kind == "cut":
            assert not cuts and all(a != b for a, b in f.arg)
            cuts = set(f.arg)
        elif f.kind == "heal_cut":
            assert set(f.arg) == cuts
            cuts = set()
        elif f.kind in ("loss", "dup", "spike", "slow", "loss_node"):
            key = (f.kind, f.node)
            assert key not in knobs
            knobs.add(key)
        elif f.kind in ("loss_end", "dup_end", "spike_end", "slow_end", "loss_node_end"):
            key = (f.kind[:-4], f.node)
            assert key in knobs
            knobs.remove(key)
        else:
            assert f.kind == "clock_jump" and f.arg[0] > 0
        assert any(v == "up" for v in state.values()), "some node must keep running"


def test_fault_menu_is_covered_over_seeds():
    seen = set()
    long_pauses = 0
    three_way = 0
    for seed in range(300):
        s = schedule(seed)
        seen |= {f.kind for f in s.faults}
        starts = {}
        for f in s.faults:
            if f.kind == "pause":
                starts[f.node] = f.t_us
            elif f.kind == "resume" and f.t_us - starts.pop(f.node) > TOKEN_US:
                long_pauses += 1
            elif f.kind == "partition" and len(f.arg) == 3:
                three_way += 1
    assert seen == set(faults.KINDS)
    assert long_pauses > 20 and three_way > 10


def test_no_faults_when_the_phase_is_too_short():
    s = schedule(3, fault_us=params.FAULT_START_MS * 1000)
    assert [f.kind for f in s.faults] == ["heal_all"]


def test_describe_is_readable():
    f = faults.Fault(5, "partition", 0, ((1, 2), (3,)))
    assert f.describe() == "partition {1,2}|{3}"
    assert faults.Fault(5, "cut", 0, ((1, 2),)).describe() == "cut 1->2"
    assert faults.Fault(5, "crash", 3, (1,)).describe() == "crash n3 1"
