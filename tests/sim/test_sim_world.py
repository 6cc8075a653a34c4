"""The world's plumbing, driven with a toy core (tests/sim/sim_fakes.py)."""

from coroproc.sim import faults
from coroproc.sim.faults import Fault, Schedule
from coroproc.sim.run import run_seed
from coroproc.sim.trace import logs_digest, read_logs, write_logs
from coroproc.sim.world import NEVER_US, SimConfig, World
from sim_fakes import HEARTBEAT_US, STANDIN_CHECKER, FakeNode, fake_factory


def world(faults_list=(), nodes=3, trace=False, **over):
    over.setdefault("background_loss", 0.0)
    over.setdefault("background_dup", 0.0)
    sim = SimConfig.for_seed(1, nodes, fault_ms=1000, quiet_ms=1000, **over)
    schedule = Schedule(tuple(faults_list) + (Fault(sim.quiet_from_us, "heal_all"),), sim.quiet_from_us)
    FakeNode.instances.clear()
    return World(sim, node_factory=fake_factory, totem_config=object(), schedule=schedule, trace=trace)


def events(w, node, ev):
    return [e for e in w.logs[node] if e["ev"] == ev]


def test_nodes_boot_timers_fire_and_frames_flow():
    w = world().run()
    assert [n.nodeid for n in FakeNode.instances] == [1, 2, 3] or len(FakeNode.instances) == 3
    for n in FakeNode.instances:
        # a heartbeat every 10 ms for ~2 s, each timer fired exactly at its deadline
        assert 190 <= len(n.timer_calls) <= 201
        assert all(b - a == HEARTBEAT_US for a, b in zip(n.timer_calls, n.timer_calls[1:]))
        assert len(n.frames_rx) > 300          # pings of the two others
    assert w.stats["frames_delivered"] == w.net.counters.copies


def test_send_and_deliver_events_are_logged_with_ids_and_hashes():
    w = world().run()
    for n in (1, 2, 3):
        sends = events(w, n, "send")
        delivers = events(w, n, "deliver")
        assert sends, "the workload should have sent something"
        assert [e["id"] for e in sends] == [[n, i] for i in range(1, len(sends) + 1)]
        sent = {tuple(e["id"]): e["hash"] for e in sends}
        assert delivers and all(sent[tuple(d["id"])] == d["hash"] for d in delivers)
        assert all(set(e) >= {"ev", "node", "t_us"} and e["node"] == n for e in w.logs[n])
        times = [e["t_us"] for e in w.logs[n]]
        assert times == sorted(times)
    assert w.stats["submits"] == sum(len(events(w, n, "send")) for n in (1, 2, 3))


def test_crash_and_restart_carry_the_persisted_ring_seq_and_sender_seq():
    w = world([Fault(300_000, "crash", 2, (0,)), Fault(500_000, "restart", 2)]).run()
    twos = [n for n in FakeNode.instances if n.nodeid == 2]
    assert len(twos) == 2, "a restart builds a new core"
    first, second = twos
    assert first.ring_seq_given == 0 and second.ring_seq_given == first.ring[1]
    assert w.ring_seq[2] == second.ring[1]
    kinds = [e["ev"] for e in w.logs[2] if e["ev"] in ("crash", "restart")]
    assert kinds == ["crash", "restart"]
    seqs = [e["id"][1] for e in events(w, 2, "send")]
    assert seqs == list(range(1, len(seqs) + 1)), "the sender seq survives restarts"
    crash_t = events(w, 2, "crash")[0]["t_us"]
    restart_t = events(w, 2, "restart")[0]["t_us"]
    assert (crash_t, restart_t) == (300_000, 500_000)
    assert not [e for e in w.logs[2] if crash_t < e["t_us"] < restart_t]
    assert w.stats["frames_to_dead"] > 0


def test_clean_crash_leaves_first():
    world([Fault(300_000, "crash", 1, (1,))]).run()
    assert FakeNode.instances[0].left or [n for n in FakeNode.instances if n.nodeid == 1][0].left


def test_heal_all_restarts_crashed_nodes():
    w = world([Fault(300_000, "crash", 3, (0,))]).run()
    assert [e["ev"] for e in w.logs[3] if e["ev"] in ("crash", "restart")] == ["crash", "restart"]
    assert events(w, 3, "restart")[0]["t_us"] == w.sim.quiet_from_us
    assert w.node[3] is not None


def test_pause_buffers_frames_boundedly_and_timers_fire_late():
    w = world([Fault(200_000, "pause", 1), Fault(700_000, "resume", 1)], nodes=5, socket_buffer_frames=30)
    w.run()
    node1 = [n for n in FakeNode.instances if n.nodeid == 1][0]
    assert w.stats["frames_buffered"] == 30 and w.stats["socket_overflow"] > 0
    during = [t for t, _ in node1.frames_rx if 200_000 < t < 700_000]
    assert during == []
    at_resume = [t for t, _ in node1.frames_rx if t == 700_000]
    assert len(at_resume) == 30
    late = [t for t in node1.timer_calls if 200_000 <= t <= 700_000]
    assert late == [700_000], "timers that came due while paused fire once, at resume"
    assert [e["ev"] for e in w.logs[1] if e["ev"] in ("pause", "resume")] == ["pause", "resume"]


def test_socket_buffer_never_exceeds_default_bound():
    w = world([Fault(100_000, "pause", 1)], nodes=8, socket_buffer_frames=500)
    w.run()
    assert w.stats["frames_buffered"] == w.sim.socket_buffer_frames
    assert w.stats["socket_overflow"] > 0


def test_slow_timers_fire_late_by_the_factor():
    w = world([Fault(100_000, "slow", 2, (3.0,)), Fault(400_000, "slow_end", 2)], trace=True)
    w.run()
    node2 = [n for n in FakeNode.instances if n.nodeid == 2][0]
    local_gaps = {b - a for a, b in zip(node2.timer_calls, node2.timer_calls[1:])}
    assert local_gaps == {HEARTBEAT_US}, "the node itself sees its timers on time"
    # the toy core logs once per heartbeat; the trace stamps it in virtual time
    fired_us = [round(float(line.split("ms")[0]) * 1000) for line in w.trace.lines if " n2 log " in line]
    gaps = [(a, b - a) for a, b in zip(fired_us, fired_us[1:])]
    inside = [g for a, g in gaps if 110_000 < a < 380_000]
    assert inside and all(abs(g - 3 * HEARTBEAT_US) <= 3 for g in inside)
    after = [g for a, g in gaps if a > 500_000]
    assert after and all(g == HEARTBEAT_US for g in after)


def test_clock_jump_moves_the_node_clock_forward():
    w = world([Fault(100_000, "clock_jump", 3, (50_000,))])
    w.run()
    node3 = [n for n in FakeNode.instances if n.nodeid == 3][0]
    assert w.clock_offset_us[3] == 50_000
    assert max(t for t, _ in node3.frames_rx) > w.sim.end_us - 1000     # local clock ahead
    assert all(b > a for a, b in zip(node3.timer_calls, node3.timer_calls[1:]))


def test_partition_and_cut_faults_reach_the_network():
    w = world([Fault(100_000, "partition", 0, ((1,), (2, 3))), Fault(200_000, "heal_partition"),
               Fault(300_000, "cut", 0, ((1, 2),)), Fault(400_000, "heal_cut", 0, ((1, 2),))])
    w.run()
    node1 = [n for n in FakeNode.instances if n.nodeid == 1][0]
    rx = [t for t, f in node1.frames_rx if 101_000 < t < 199_000]
    assert rx == []
    assert w.net.counters.dropped_unreachable > 0
    assert not w.net.partitioned and not w.net.cut


def test_same_seed_same_logs_and_trace_with_faults():
    def once():
        sim = SimConfig.for_seed(42, 5, fault_ms=1500, quiet_ms=500)
        w = World(sim, node_factory=fake_factory, totem_config=object(), trace=True).run()
        return logs_digest(w.logs), w.trace.text(), w.net.counters.as_dict()
    a, b = once(), once()
    assert a == b
    assert "fault" in a[1] and "install regular" in a[1] and "digest" in a[1]


def test_timer_wakeups_are_lazy():
    w = world()
    w.run()
    assert all(w.wake_us[n] < NEVER_US for n in (1, 2, 3))


def test_exception_in_a_core_becomes_a_violation():
    class Exploding(FakeNode):
        def on_frame(self, now_us, frame):
            raise RuntimeError("boom")
    sim = SimConfig.for_seed(3, 3, fault_ms=200, quiet_ms=200, drain_ms=100)
    w = World(sim, node_factory=Exploding, totem_config=object()).run()
    assert [v.prop for v in w.harness] == ["exception"] and "boom" in w.harness[0].message


def test_run_seed_with_a_standin_checker(tmp_path):
    r = run_seed(5, 4, node_factory=fake_factory, checker=STANDIN_CHECKER, keep_logs=True,
                 fault_ms=800, quiet_ms=500)
    assert r.ok and r.sent > 0 and r.ordered > 0 and r.nodes == 4
    write_logs(str(tmp_path), r.logs)
    assert read_logs(str(tmp_path)) == r.logs
    assert logs_digest(read_logs(str(tmp_path))) == r.digest


def test_schedule_episodes_counted():
    s = faults.generate(__import__("random").Random(1), (1, 2, 3), fault_us=3_000_000, token_us=200_000)
    assert s.episodes() == sum(1 for f in s.faults if f.kind in dict(faults.KIND_WEIGHTS))


def test_a_frame_storm_ends_the_run_as_a_violation(monkeypatch):
    from coroproc.sim import params

    class Echo(FakeNode):
        def on_frame(self, now_us, frame):   # answer every frame with two multicasts
            self.outputs += [("send", 0, frame), ("send", 0, frame)]

    monkeypatch.setattr(params, "HEAP_ENTRIES_MAX", 5_000)
    sim = SimConfig.for_seed(3, 4, fault_ms=200, quiet_ms=200, drain_ms=100)
    w = World(sim, node_factory=Echo, totem_config=object()).run()
    assert w.aborted and [v.prop for v in w.harness] == ["storm"]
    assert "pending frames by Totem type" in w.harness[0].message
    assert w.now_us == sim.end_us
