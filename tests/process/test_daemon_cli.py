"""The `coroproc` command as an operator meets it: flags, config errors, the node lock,
sd_notify READY=1, SIGUSR2 state dumps and process titles — with real one-node daemons."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from coroproc.localcluster import LocalCluster
from coroproc.shm.names import node_segments


def _children(c: LocalCluster, i: int) -> dict[int, str]:
    """pid → ps title of node i's children (a child that just exited is left out)."""
    out = {}
    for pid in c.child_pids(i):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out[pid] = f.read().split(b"\0")[0].decode(errors="replace")
        except FileNotFoundError:
            pass
    return out


def _child(c: LocalCluster, i: int, title: str) -> int:
    return next(pid for pid, t in _children(c, i).items() if t.startswith(title))


def _coroproc(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coroproc", *args], capture_output=True,
                          text=True, timeout=120, **kw)


def test_version_flag():
    out = _coroproc("-v")
    assert out.returncode == 0 and "Corosync 3.1 compatible" in out.stdout


def test_config_check_ok_and_broken(tmp_path):
    c = LocalCluster(tmp_path, 2)
    ok = _coroproc("-t", "-c", c.conf(1))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Configuration is OK" in ok.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text(open(c.conf(1)).read().replace("token: 1000", "token: soon"))
    out = _coroproc("-t", "-c", str(bad))
    assert out.returncode == 8
    assert "bad.conf:9: totem.token" in out.stdout


def test_daemon_refuses_a_broken_config_with_file_line_and_key(tmp_path):
    c = LocalCluster(tmp_path, 2)
    bad = tmp_path / "bad.conf"
    bad.write_text(open(c.conf(1)).read().replace("transport: udpu", "transport: sctp"))
    out = _coroproc("-f", "-c", str(bad))
    assert out.returncode == 8
    assert "bad.conf:4: totem.transport" in out.stderr and "udpu" in out.stderr


@pytest.fixture
def one_node(tmp_path):
    c = LocalCluster(tmp_path, 1)
    yield c
    c.stop_all()
    assert node_segments(c.cluster, 1) == []


def test_ready_notification_titles_lock_and_dump(one_node, tmp_path):
    c = one_node
    sock_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(sock_path)
    notify.settimeout(120)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path)
    c.start(1, env=env)
    got = []
    while not any("READY=1" in g for g in got):
        got.append(notify.recv(4096).decode())
    notify.close()
    c.wait_members([1], [1])
    # every process says what it is in ps
    titles = sorted(_children(c, 1).values())
    assert titles == ["coroproc: cfg", "coroproc: cmap", "coroproc: cpg", "coroproc: load",
                      "coroproc: net link0", "coroproc: ring", "coroproc: votequorum"]
    # a second daemon for the same node refuses to start and touches nothing
    second = _coroproc("-f", "-c", c.conf(1))
    assert second.returncode == 10
    assert "already running" in second.stderr + open(c.logfile(1)).read()
    assert c.procs[1].poll() is None
    # SIGUSR2: each child's counters in the log, as it reports them now (the ring's
    # report is its state: ring id, members, counters)
    os.kill(c.procs[1].pid, signal.SIGUSR2)
    c.wait_for_log(1, "coroproc: ring: pid")
    c.wait_for_log(1, 'counters {"ring_id":')


def _ctl(c: LocalCluster, i: int, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coroproc.tools.ctl", "-c", c.conf(i), *args],
                          capture_output=True, text=True, timeout=60)


def test_ctl_status_and_engine_restart_keep_the_ring(tmp_path):
    from coroproc.sim.checker import check_safety
    c = LocalCluster(tmp_path, 2)
    try:
        c.start_all()
        c.wait_members([1, 2], [1, 2], timeout_s=120)
        out = _ctl(c, 1, "status")         # the ring reports its membership when asked
        assert out.returncode == 0, out.stderr
        assert "members: 1 2" in out.stdout and "coroproc: ring" in out.stdout
        old = _child(c, 1, "coroproc: load")
        mark = c.mark()
        assert _ctl(c, 1, "restart", "load").returncode == 0
        c.wait_for_log(1, "coroproc: load (pid %d)" % old)
        time.sleep(1.5)  # the restarted engine resumes its delivery ring under load
        assert not any("was formed" in ln for ln in c.log_lines(1)[mark[1]:])
        bad = _ctl(c, 1, "restart", "nosuch")
        assert bad.returncode == 1 and "no child 'nosuch'" in bad.stderr
    finally:
        c.stop_all()
    assert check_safety(c.event_logs()) == []


def test_status_does_not_wait_for_a_stopped_child(one_node):
    """`status` asks every child for its counters; one that cannot answer (stopped) keeps
    its last report, and the supervisor answers after its wait, counting the late round."""
    import orjson
    c = one_node
    c.start(1)
    c.wait_members([1], [1], timeout_s=120)
    first = orjson.loads(_ctl(c, 1, "--json", "status").stdout)
    assert first["report_rounds_late"] == 0
    assert first["children"]["ring"]["counters"]["members"] == [1]
    cmap = _child(c, 1, "coroproc: cmap")
    os.kill(cmap, signal.SIGSTOP)
    try:
        out = _ctl(c, 1, "--json", "status")
    finally:
        os.kill(cmap, signal.SIGCONT)
    assert out.returncode == 0, out.stderr
    st = orjson.loads(out.stdout)
    assert st["report_rounds_late"] == 1
    assert st["children"]["cmap"]["counters"] == first["children"]["cmap"]["counters"]
    assert st["children"]["ring"]["counters"]["members"] == [1]
    again = orjson.loads(_ctl(c, 1, "--json", "status").stdout)
    assert again["report_rounds_late"] == 1      # the resumed child answers again


def test_scheduler_pause_is_reported_like_corosync(one_node):
    """A ring process that was not scheduled for longer than 0.8 × token says so (Corosync's
    warning) and keeps the event in its stats, then carries on in its ring."""
    c = one_node
    c.start(1)
    c.wait_members([1], [1], timeout_s=120)
    ring = _child(c, 1, "coroproc: ring")
    os.kill(ring, signal.SIGSTOP)
    time.sleep(1.5)  # token 1000 ms: the threshold is 800 ms
    os.kill(ring, signal.SIGCONT)
    c.wait_for_log(1, "Corosync main process was not scheduled")
    line = [ln for ln in c.log_lines(1) if "not scheduled" in ln][-1]
    assert "(threshold is 800.0000 ms). Consider token timeout increase." in line
    assert c.procs[1].poll() is None


def test_stuck_child_is_killed_and_restarted(tmp_path):
    """A child that is alive but silent (here: stopped) past heartbeat_timeout_ms is killed
    and started again; waitpid alone would never notice it."""
    c = LocalCluster(tmp_path, 1, coroproc_keys={"heartbeat_timeout_ms": 1500})
    try:
        c.start(1)
        c.wait_members([1], [1], timeout_s=120)
        net = _child(c, 1, "coroproc: net link0")
        os.kill(net, signal.SIGSTOP)
        c.wait_for_log(1, f"coroproc: net link0 (pid {net}) silent for")
        c.wait_for_log(1, f"coroproc: net link0 (pid {net}) killed by SIGKILL")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            kids = _children(c, 1)
            if net not in kids and "coroproc: net link0" in kids.values():
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the network process was not restarted")
    finally:
        c.stop_all()
    assert node_segments(c.cluster, 1) == []


def test_daemon_refuses_an_rdma_link_without_a_device(tmp_path):
    """knet_transport rdma on a host with no RDMA device (or no pyverbs): exit 8 with the
    reason, before any child is forked (not a network process in a crash loop)."""
    from coroproc.netproc.rdma.devices import list_devices
    from coroproc.netproc.rdma.errors import RdmaError
    try:
        if list_devices():
            pytest.skip("this host has an RDMA device: the refusal cannot be shown here")
    except RdmaError:
        pass                       # pyverbs missing: the refusal names that instead
    c = LocalCluster(tmp_path, 1, transport="knet")
    conf = open(c.conf(1)).read().replace("linknumber: 0",
                                          "linknumber: 0\n        knet_transport: rdma")
    bad = tmp_path / "rdma.conf"
    bad.write_text(conf)
    out = _coroproc("-f", "-c", str(bad))
    assert out.returncode == 8, out.stderr
    assert "link 0 (knet_transport rdma):" in out.stderr, out.stderr
    assert "RDMA" in out.stderr or "pyverbs" in out.stderr, out.stderr


def test_a_stop_during_start_up_passes_through_except_exception():
    """The start-up's SIGTERM lands wherever the supervisor is, numba's compiler included,
    which catches Exception while it types and resolves overloads and carries on: the stop
    must not be one (CI once lost it there: exit 1 after more than a minute)."""
    from coroproc.supervisor.daemon import _StoppedWhileStarting

    def library_code_that_swallows():
        try:
            raise _StoppedWhileStarting(signal.SIGTERM)
        except Exception:
            return "carried on"
    with pytest.raises(_StoppedWhileStarting):
        library_code_that_swallows()


def test_shm_kernels_load_off_the_main_thread_before_any_segment(tmp_path, monkeypatch):
    """ShmRing.create() runs jitted header writes; with an empty numba cache they compiled
    on the main thread right after the first segment appeared, where a stop signal could
    land inside LLVM and be dropped (CI: no exit within 60 s). The supervisor loads them
    in a worker thread first, while no segment of the node exists."""
    import threading

    from coroproc.supervisor import daemon
    seen = []
    real = daemon.load_shm_kernels
    c = LocalCluster(tmp_path, 1)

    def recording():
        seen.append((threading.current_thread() is threading.main_thread(),
                     node_segments(c.cluster, 1)))
        real()

    monkeypatch.setattr(daemon, "load_shm_kernels", recording)

    class Stop(Exception):
        pass

    def stop_after_rings(self):
        raise Stop
    monkeypatch.setattr(daemon.Supervisor, "_warm", stop_after_rings)
    from coroproc.config.loader import load
    from coroproc.logsys import Log
    from coroproc.supervisor.plan import build_plan
    cfg, _ = load(c.conf(1), 1)
    plan = build_plan(cfg, time.time_ns() // 1000, foreground=True)
    sup = daemon.Supervisor(plan, Log(plan.log), None)
    with pytest.raises(Stop):
        sup.run()
    assert seen == [(False, [])]
    assert node_segments(plan.cluster_name, plan.nodeid) == []


def test_a_stop_during_warm_up_is_not_lost_in_a_ctypes_callback(monkeypatch):
    """The start-up's stop handler raises in the main thread. While that thread was inside
    LLVM, which calls back into Python through ctypes, the exception was printed and
    dropped there (a SIGTERM 25 s into an empty-cache compile): _warm runs the warm-up in
    a worker thread, so the handler meets the main thread in its wait instead. (The shm
    ring kernels, compiled before the first segment, go the same way:
    test_shm_kernels_load_off_the_main_thread_before_any_segment.)"""
    import ctypes
    import threading
    from types import SimpleNamespace

    from coroproc.supervisor.daemon import Supervisor, _StoppedWhileStarting
    inside = threading.Event()

    def warm_up_inside_a_callback(*_args):
        @ctypes.CFUNCTYPE(None)
        def callback():
            inside.set()
            time.sleep(3)          # where LLVM's object-cache callback would be
        callback()

    monkeypatch.setattr("coroproc.ringproc.process.warm_up", warm_up_inside_a_callback)
    sup = SimpleNamespace(plan=SimpleNamespace(totem=None, links=[], engines=[]),
                          log=SimpleNamespace(debug=lambda *a: None),
                          _off_main_thread=Supervisor._off_main_thread)
    previous = signal.signal(signal.SIGUSR1, lambda signum, _f: Supervisor._stop_while_starting(
        sup, signum, None))
    threading.Thread(target=lambda: inside.wait(10) and os.kill(os.getpid(), signal.SIGUSR1),
                     daemon=True).start()
    try:
        with pytest.raises(_StoppedWhileStarting):
            Supervisor._warm(sup)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_sigterm_while_starting_removes_what_start_up_created(tmp_path):
    """systemctl stop while the node starts: the supervisor ends its start-up in order
    (exit 0) and unlinks the shared memory it had created. An empty numba cache makes
    start-up compile the ring process's core (a minute or more), so the signal lands
    there for certain; SIGTERM's default action would have left every segment behind."""
    c = LocalCluster(tmp_path, 1)
    env = {**os.environ, "COROPROC_NUMBA_CACHE": str(tmp_path / "empty-numba-cache")}
    c.start(1, env=env)
    try:
        deadline = time.monotonic() + 60
        while not node_segments(c.cluster, 1):
            assert c.procs[1].poll() is None, c.tail(1)
            assert time.monotonic() < deadline, "no shared memory after 60 s: " + c.tail(1)
            time.sleep(0.02)
        assert not any("started; node" in ln for ln in c.log_lines(1))
        c.procs[1].send_signal(signal.SIGTERM)
        assert c.procs[1].wait(timeout=60) == 0, c.tail(1)
    finally:
        c.stop_all()
    assert node_segments(c.cluster, 1) == []
    assert any("Stopped by SIGTERM while starting" in ln for ln in c.log_lines(1)), c.tail(1)
