"""bench/bench_hops.py's reading of a scheduler trace, on hand-written tracefs lines: the
hops of a message in order (and a message whose trace lacks one left out), and the run
time of each task (and of idle CPUs) inside the slowest messages' windows."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_hops as H  # noqa: E402

NAMES = {100: H.CLIENT, 200: "n1 coroproc: cpg", 300: "n1 coroproc: ring",
         400: "n1 coroproc: net link0", 79: "kdamond.0"}
T0_S = 500.0          # the first message's send, seconds on the trace clock


def _ts(us: float) -> str:
    return f"{T0_S + us / 1e6:.6f}"


def wake(us, cpu, pid, comm="x"):
    return (f"  waker-1 [{cpu:03d}] d..2. {_ts(us)}: sched_wakeup: comm={comm} pid={pid} "
            f"prio=120 target_cpu={cpu:03d}")


def switch(us, cpu, prev_pid, next_pid, state="S"):
    return (f"  task-{prev_pid} [{cpu:03d}] d..2. {_ts(us)}: sched_switch: prev_comm=a "
            f"prev_pid={prev_pid} prev_prio=120 prev_state={state} ==> next_comm=b "
            f"next_pid={next_pid} next_prio=120")


def _message(at_us: float) -> list[str]:
    """Every hop of COROPROC_PATH, 10 µs apart from at_us + 10."""
    t = at_us
    return [wake(t + 5, 0, 200), switch(t + 10, 0, 100, 200, "R"),      # engine runs
            switch(t + 20, 0, 200, 100),                                 # engine sleeps
            wake(t + 30, 1, 300), wake(t + 40, 1, 400),                  # ring, link woken
            wake(t + 50, 0, 200), wake(t + 60, 0, 100)]                  # engine, client


def test_parse_names_tasks_and_idle_and_keeps_both_sides_of_a_switch():
    events = H.parse([switch(1, 1, 0, 300, "R"), wake(2, 0, 555, "other"),
                      "# tracer: nop", "garbage"], NAMES)
    assert [(e.kind, e.who, e.cpu) for e in events] == [
        ("out", "idle", 1), ("in", "n1 coroproc: ring", 1), ("wake", "other", 0)]
    assert events[0].ns == round((T0_S + 1e-6) * 1e9)


def test_stages_time_each_hop_after_the_send_and_skip_a_message_missing_one():
    lines = _message(0) + _message(1000)
    del lines[7 + 3]                               # the second message's ring wake-up
    events = H.parse(lines, NAMES)
    t0_ns = round(T0_S * 1e9)
    cols = H.stages(events, [(t0_ns, 100), (t0_ns + 1_000_000, 100)], H.COROPROC_PATH)
    assert {k: v for k, v in cols.items()} == {
        "engine runs": [10.0], "engine sleeps": [20.0], "ring woken": [30.0],
        "link woken": [40.0], "engine woken": [50.0], "client woken": [60.0],
        "latency": [100]}
    report = "\n".join(H.stage_report(cols, H.COROPROC_PATH))
    assert "1 messages with every hop traced" in report and "ring woken" in report


def test_an_engine_that_caught_its_delivery_polling_needs_neither_optional_hop():
    t = 0
    spun = [wake(t + 5, 0, 200), switch(t + 10, 0, 100, 200, "R"),      # engine runs
            wake(t + 30, 1, 300), wake(t + 40, 1, 400),                  # ring, link woken
            wake(t + 60, 0, 100)]                                        # client
    lines = spun + _message(1000)
    events = H.parse(lines, NAMES)
    t0_ns = round(T0_S * 1e9)
    cols = H.stages(events, [(t0_ns, 100), (t0_ns + 1_000_000, 100)], H.COROPROC_PATH)
    assert cols["ring woken"] == [30.0, 30.0] and cols["client woken"] == [60.0, 60.0]
    assert cols["engine sleeps"] == [20.0] and cols["engine woken"] == [50.0]
    report = "\n".join(H.stage_report(cols, H.COROPROC_PATH))
    assert "2 messages with every hop traced" in report and "(in 1 of 2)" in report


def test_a_client_the_engine_preempted_runs_again_instead_of_being_woken():
    lines = [wake(5, 0, 200), switch(10, 0, 100, 200, "R"),             # engine preempts
             wake(30, 1, 300), wake(40, 1, 400),                         # ring, link woken
             switch(60, 0, 200, 100)]                                    # the client again
    cols = H.stages(H.parse(lines, NAMES), [(round(T0_S * 1e9), 100)], H.COROPROC_PATH)
    assert cols["client woken"] == [60.0] and cols["latency"] == [100]


def test_a_required_hop_is_not_skipped_for_a_later_one():
    lines = [wake(5, 0, 200), switch(10, 0, 100, 200, "R"),             # engine runs
             wake(40, 1, 400), wake(60, 0, 100)]                         # no ring wake-up
    cols = H.stages(H.parse(lines, NAMES), [(round(T0_S * 1e9), 100)], H.COROPROC_PATH)
    assert not cols.get("latency")


def test_runtimes_count_each_task_and_idle_inside_the_windows_only():
    lines = [switch(0, 0, 0, 79, "R"),            # kdamond on CPU 0 from 0 µs
             switch(0, 1, 300, 0),                # CPU 1 idle from 0 µs
             switch(3000, 0, 79, 200, "R"),       # the engine gets CPU 0 at 3 ms
             switch(3100, 0, 200, 0)]
    events = H.parse(lines, NAMES)
    t0_ns = round(T0_S * 1e9)
    got = H.runtimes(events, [(t0_ns + 1_000_000, t0_ns + 3_050_000)])
    assert got == {"kdamond.0": 2000.0, "idle": 2050.0, "n1 coroproc: cpg": 50.0}


def test_tail_report_sets_the_slowest_messages_against_median_ones():
    lines = [switch(0, 0, 0, 79, "R"), switch(5000, 0, 79, 0)]
    events = H.parse(lines, NAMES)
    t0_ns = round(T0_S * 1e9)
    samples = [(t0_ns + 6_000_000 + k * 1000, 100) for k in range(99)] + [(t0_ns, 4000)]
    out = "\n".join(H.tail_report(events, sorted(samples), top=3))
    assert "the slowest 1 % (1 messages, ≥ 4000 µs)" in out
    assert "kdamond.0" in out.splitlines()[1] and "4000" in out.splitlines()[1]


def test_a_span_that_began_long_before_the_window_still_counts():
    """An idle CPU (or a long-running task) is one span from its switch in: a window far
    into it takes its share, however long ago it began."""
    lines = [switch(0, 1, 300, 0), switch(0, 0, 0, 79, "R"),
             switch(900_000, 0, 79, 200, "R"), switch(900_000, 1, 0, 300, "R")]
    events = H.parse(lines, NAMES)
    t0_ns = round(T0_S * 1e9)
    got = H.runtimes(events, [(t0_ns + 500_000_000, t0_ns + 500_400_000)])
    assert got == {"idle": 400.0, "kdamond.0": 400.0}


def test_the_buffer_size_written_back_is_the_one_tracing_would_use():
    """An unused trace buffer reads "7 (expanded: 1408)": writing 7 back would leave a
    7 KiB buffer where tracing had 1,408 KiB."""
    assert H.buffer_kb("7 (expanded: 1408)\n") == "1408"
    assert H.buffer_kb("1410\n") == "1410"
