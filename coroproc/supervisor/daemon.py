"""The supervisor: one node's process tree, from start to a clean stop.

Start: take the node's lock (run_dir/lock) so two supervisors never share a node's
rings; remove shm segments a crashed earlier run left behind; create the doorbells and
rings; load the numba kernels once (children fork warm); bind the control socket; fork
the network processes, the ring process and the engines. Then watch: waitpid for dead
children, heartbeats for stuck ones, the control socket for events (READY once the node
is in an operational ring), signals (SIGTERM/SIGINT stop, SIGUSR2 dumps state).
Stop: the ring process leaves the ring first (the others re-form without waiting for a
token timeout), then the rest stop; rings are unlinked and the lock released.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import select
import signal
import threading
import time

import orjson
import zmq

from coroproc.blackbox.recorder import shared_ring
from coroproc.engineprocs.snapshots import remove_all as remove_snapshots
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.names import remove_node_segments
from coroproc.shm.ring import ShmRing, load_kernels as load_shm_kernels

from . import children as C
from .beats import BeatBoard
from . import sched_slice
from .control import ControlServer, control_endpoint
from .flight_data import FlightData
from .placement import cpu_list
from .plan import NodePlan
from .reports import Reports
from .scheduling import PathScheduling, apply_to_supervisor, decide, of_process
from .sdnotify import sd_notify
from .watchdog import CrashLoops, SystemdWatchdog

STOP_RING_S = 3.0      # for the leave message to go out
STOP_REST_S = 3.0
# heartbeat and crash-loop checks; with heartbeat_timeout_ms >= 1 s, a second is plenty
WATCH_TICK_S = 1.0
EXIT_ENGINE_FATAL = 1  # an engine stopped the node (Corosync exits non-zero there too)


class AlreadyRunning(RuntimeError):
    pass


class _StoppedWhileStarting(BaseException):
    """Raised by the start-up's SIGTERM/SIGINT handler. A BaseException, as
    KeyboardInterrupt is: numba's type inference and overload resolution catch Exception
    and carry on, so one raised inside the compiler would be lost. (The compile itself now
    runs in a worker thread, _warm, so the handler no longer lands there.)"""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class Supervisor:
    def __init__(self, plan: NodePlan, log, pidfile: str | None = None):
        self.plan = plan
        self.log = log
        self.pidfile = pidfile
        self.children: dict[str, C.Child] = {}
        self.rings: list[ShmRing] = []
        self.link_table = None       # transport knet: the links' shared health table
        self._pending_key = None     # (key id, key) between a reload's add and the drop
        self.doorbells: dict[str, Doorbell] = {}
        self.ready = False
        self.ring = None           # the ring process's latest regular configuration
        self.members: list[int] = []
        self._signals: list[int] = []
        self._lock_fd = -1
        self.control: ControlServer | None = None
        self.reports: Reports | None = None      # children's counters, on demand
        self.watchdog = SystemdWatchdog(log)      # NOTIFY_SOCKET / WATCHDOG_USEC / _PID
        self.crash_loops = CrashLoops(log)
        self._asked_to_stop: set[str] = set()     # roles stopped on purpose (ctl restart)
        self.exit_status = 0                      # non-zero when an engine stopped the node

    # ---- set-up ----
    def _lock(self) -> None:
        os.makedirs(self.plan.run_dir, mode=0o750, exist_ok=True)
        path = os.path.join(self.plan.run_dir, "lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise AlreadyRunning(
                f"Another coroproc instance is already running node {self.plan.nodeid} of "
                f"cluster '{self.plan.cluster_name}' (pid {other or '?'}, lock {path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _create_rings(self) -> None:
        remove_snapshots(self.plan.run_dir)     # engine state of an earlier incarnation
        stale = remove_node_segments(self.plan.cluster_name, self.plan.nodeid)
        if stale:
            self.log.notice("MAIN", f"Removed {len(stale)} shared-memory segments left by an "
                            f"earlier run: {' '.join(stale)}")
        self.doorbells["ring"] = Doorbell()
        self.plan.ring_wake_fd = self.doorbells["ring"].fd
        for link in self.plan.links:
            db = self.doorbells[f"net{link.linknumber}"] = Doorbell()
            link.wake_fd = db.fd
        for eng in self.plan.engines:
            db = self.doorbells[eng.name] = Doorbell()
            eng.wake_fd = db.fd
        for name, size in self.plan.ring_sizes().items():
            self.rings.append(ShmRing.create(name, size))
        if self.plan.link_table_name:
            from coroproc.netproc.linktable import LinkTable
            self.link_table = LinkTable.create(self.plan.link_table_name,
                                               self.plan.link_table_peers, self.plan.nodeid)

    def _warm(self) -> None:
        """Load (or, with an empty cache, compile) the jitted core off the main thread."""
        t0 = time.monotonic()
        from coroproc.ringproc.process import warm_up
        self._off_main_thread(lambda: warm_up(self.plan.totem, len(self.plan.links),
                                              len(self.plan.engines)))
        self.log.debug("MAIN", f"Totem kernels loaded in {time.monotonic() - t0:.2f} s")

    @staticmethod
    def _off_main_thread(fn) -> None:
        """Run fn — numba loading or compiling kernels — in a worker thread while this one
        waits: the start-up's stop handler runs in the main thread, and raised while that
        thread was inside LLVM — which calls back into Python through ctypes, where an
        exception is printed and dropped — the stop was lost and the compile broken (a
        SIGTERM 25 s into an empty-cache compile; CI saw the exit come after more than a
        minute, and later none within 60 s when the signal landed in the compile of the
        shm ring's header kernels). The worker is a daemon thread: a stop leaves it behind,
        and the process exits without waiting for it."""
        failed: list[BaseException] = []

        def work() -> None:
            try:
                fn()
            except BaseException as exc:       # re-raised in the main thread below
                failed.append(exc)

        worker = threading.Thread(target=work, name="coroproc-warm", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(0.1)                   # a signal's handler runs between these
        if failed:
            raise failed[0]

    def _add_children(self, path: PathScheduling) -> None:
        from .roles import engine_target, net_target, ring_target
        endpoint = self.control.endpoint
        for link in self.plan.links:
            role = f"net{link.linknumber}"
            self.children[role] = C.Child(role, f"coroproc: net link{link.linknumber}",
                                          net_target(self.plan, link, self.doorbells[role],
                                                     endpoint), cpus=self.plan.ring_cpus,
                                          sched=path)
        self.children["ring"] = C.Child("ring", "coroproc: ring",
                                        ring_target(self.plan, self.doorbells["ring"], endpoint),
                                        cpus=self.plan.ring_cpus, sched=path)
        for eng in self.plan.engines:
            self.children[eng.name] = C.Child(eng.name, f"coroproc: {eng.name}",
                                              engine_target(self.plan, eng,
                                                            self.doorbells[eng.name], endpoint))
        self.beats = BeatBoard(len(self.children))
        for slot, child in enumerate(self.children.values()):
            child.log_ring = shared_ring()       # its recorder, readable here (flight_data.py)
            child.beat_board, child.beat_slot = self.beats, slot

    # ---- run ----
    def run(self) -> int:
        self._lock()
        # Until the loop watches for them, SIGTERM (systemctl stop) and SIGINT end the
        # start-up through the `finally`, which unlinks what was created so far. SIGTERM's
        # default action would kill the process mid-start-up (loading the jitted core can
        # take seconds) and leave its shared memory behind until the node's next start.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_while_starting)
        try:
            # before any thread starts (ZeroMQ's, the warm-up's): a nice value is per thread
            sched = decide(self.plan.config.scheduling)
            apply_to_supervisor(sched)
            self._off_main_thread(load_shm_kernels)   # before the first segment exists
            self._create_rings()
            self._warm()
            self.control = ControlServer(control_endpoint(self.plan.run_dir))
            self.reports = Reports(self.children, self.control.send)
            self.flight = FlightData(self.children, self.log, self.plan.state_dir)
            if self.pidfile:
                with open(self.pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
            self._ipc_kernel_limits()
            self._add_children(sched.path)
            rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(wfd)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR2,
                        signal.SIGHUP):
                signal.signal(sig, self._on_signal)
            for child in self.children.values():
                C.spawn(child)
            self.log.notice("MAIN", f"Corosync Cluster Engine (coroproc) started; node "
                            f"{self.plan.nodeid} of cluster '{self.plan.cluster_name}'")
            if self.plan.ring_cpus:
                self.log.notice("MAIN", "The ring and link processes run on CPU "
                                f"{cpu_list(self.plan.ring_cpus)} (coroproc.ring_cpu)")
            for level, text in sched.notes:
                self.log.log(level, "MAIN", text)
            sd_notify(f"STATUS=forming the ring (node {self.plan.nodeid})")
            return self._watch(rfd)
        except _StoppedWhileStarting as stop:
            self.log.notice("MAIN", f"Stopped by {signal.Signals(stop.signum).name} while "
                            "starting")
            return 0
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):    # a second one: just noted
                signal.signal(sig, self._on_signal)
            self._shutdown()

    def _stop_while_starting(self, signum, frame) -> None:
        raise _StoppedWhileStarting(signum)

    def _remove_stale_ipc_dirs(self) -> None:
        """Client connection directories of this node's engines that were killed along
        with their clients (a live engine removes its own)."""
        from coroproc.engineprocs.registry import resolve
        from coroproc.ipc.names import remove_stale_connection_dirs, service_name
        for eng in self.plan.engines:
            if eng.service_id < 0:
                continue
            for target in [eng.target or eng.name, *eng.hosted]:
                svc = resolve(target).ipc_service
                if svc:
                    remove_stale_connection_dirs(service_name(svc, self.plan.service_suffix))

    def _ipc_kernel_limits(self) -> None:
        """1 MiB requests from unmodified libqb clients need big unix datagrams."""
        from coroproc.engineprocs.registry import resolve
        from coroproc.ipc.limits import raise_kernel_limits
        sizes = [resolve(e.target or e.name).ipc_max_msg_bytes for e in self.plan.engines
                 if e.service_id >= 0]
        if sizes:
            for line in raise_kernel_limits(max(sizes)):
                self.log.notice("MAIN", line)

    def _on_signal(self, signum, frame) -> None:
        self._signals.append(signum)

    def _watch(self, rfd: int) -> int:
        zfd = self.control.socket.getsockopt(zmq.FD)
        poller = select.poll()
        poller.register(rfd, select.POLLIN)
        poller.register(zfd, select.POLLIN)
        while True:
            # sleep no longer than the next systemd watchdog ping
            poller.poll(self._sleep_s(time.monotonic()) * 1000)
            try:
                while os.read(rfd, 512):
                    pass
            except BlockingIOError:
                pass
            while self._signals:
                sig = self._signals.pop(0)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    self.log.notice("MAIN", f"Node was shut down by a signal ({signal.Signals(sig).name})")
                    return self.exit_status
                if sig == signal.SIGUSR2:
                    self._dump()
            self._control_messages()
            now = time.monotonic()
            self.reports.tick(now)
            self._reap(now)
            self._check_heartbeats(now)
            self._restart_due(now)
            self.crash_loops.update(now)
            self.watchdog.tick(self.crash_loops.healthy(), now, self._status_text())

    def _sleep_s(self, now: float) -> float:
        """Until the next thing the loop must do on its own: a child's restart, the
        systemd watchdog ping, or the once-a-WATCH_TICK_S checks (heartbeats, crash
        loops). Exits and signals wake it through the signal pipe, children through the
        control socket."""
        timeout_s = WATCH_TICK_S
        if self.reports.due_s is not None:
            timeout_s = min(timeout_s, max(0.0, self.reports.due_s - now))
        for child in self.children.values():
            if not child.alive:
                timeout_s = min(timeout_s, max(0.0, child.restart_at - now))
        return self.watchdog.poll_timeout_s(now, timeout_s)

    def _status_text(self) -> str:
        return self.crash_loops.status_text() or (
            "ready: services synchronized" if self.ready
            else f"forming the ring (node {self.plan.nodeid})")

    def _control_messages(self) -> None:
        for role, msg in self.control.recv_all():
            if role.startswith("ctl-"):
                self._operator_command(role, msg)
                continue
            child = self.children.get(role)
            if child is None:
                continue
            child.last_heard = time.monotonic()
            op = msg.get("op")
            if op == "hello":
                child.hello = True
                # a restarted engine joins a node that may have synced long ago
                self.control.send(role, {"op": "node_state", "ready": self.ready,
                                         "ring": self.ring, "members": self.members})
            elif op == "event" and msg.get("ev") == "install" and msg.get("kind") == "regular":
                self.ring, self.members = msg.get("ring"), msg.get("members", [])
            elif op == "report":
                child.counters = msg.get("counters", {})
                self.reports.answered(role)
            elif op == "event" and msg.get("ev") == "ready" and not self.ready:
                self.ready = True
                sd_notify("READY=1\nSTATUS=ready: services synchronized")
            elif op == "event" and msg.get("ev") == "fatal":
                # an engine found the node unfit to run (Corosync's corosync_exit_error)
                self.log.error("MAIN", f"{child.title} stops the node: {msg.get('why')}")
                self.exit_status = EXIT_ENGINE_FATAL
                self._signals.append(signal.SIGTERM)
            elif op == "request":
                reply = self._engine_request(role, msg)
                if reply is not None:          # None: answered later (flight data)
                    self._answer(role, msg.get("id"), reply)
            elif op == "counters":
                # an engine (cmap's stats map) asks for every process's counters
                self.reports.gather(time.monotonic(),
                                    lambda role=role: self._send_node_counters(role))
            elif op == "reply" and msg.get("to") == "reload":
                if not msg.get("ok"):
                    self.log.error("MAIN", f"{role} could not apply the reloaded "
                                   f"configuration: {msg.get('error')}")
            elif op == "reply":
                self.log.notice("MAIN", f"state of {role}: " + orjson.dumps(msg).decode())

    def _send_node_counters(self, role: str) -> None:
        counters = {r: c.counters for r, c in self.children.items()}
        counters["supervisor"] = {
            "cmap": self.crash_loops.cmap_keys(),
            # a dead child keeps its last report above: say who is alive
            "children": {r: {"alive": c.alive, "pid": c.pid, "restarts": c.restarts}
                         for r, c in self.children.items()}}
        self.control.send(role, {"op": "counters", "counters": counters})

    def _reap(self, now: float) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for child in self.children.values():
                if child.pid == pid:
                    C.reaped(child, now)
                    self.reports.answered(child.role)
                    child.restarts += 1
                    how = C.describe_status(status)
                    asked = child.role in self._asked_to_stop
                    if asked:
                        self._asked_to_stop.discard(child.role)
                        # an operator's restart: start it again now, not after a backoff
                        child.restart_at = now
                        child.backoff_s = C.BACKOFF_FIRST_S
                    else:
                        self.crash_loops.record_exit(child.role, now, how)
                    self.log.error("MAIN", f"{child.title} (pid {pid}) {how}; "
                                   f"restarting in {child.restart_at - now:.1f} s")
                    if not asked:           # as Corosync's fatal-signal handler dumps
                        self.flight.crashed(child.title, how, now)
                    if child.role == "ring":
                        self.ready = False  # the node is out of the ring until it re-forms
                    if self.link_table is not None and child.role.startswith("net"):
                        # its last "connected" would keep the other links deferring to it
                        self.link_table.reset_link(int(child.role[3:]))

    def _check_heartbeats(self, now: float) -> None:
        for child in self.children.values():
            if not child.alive:
                continue
            limit = self.plan.heartbeat_timeout_ms / 1000 if child.hello else C.HELLO_TIMEOUT_S
            # a beat is in the board (beats.py); any control message counts too
            heard = max(child.last_heard, self.beats.last_s(child.beat_slot))
            if now - heard > limit:
                self.log.error("MAIN", f"{child.title} (pid {child.pid}) silent for "
                               f"{now - heard:.1f} s; killing it")
                os.kill(child.pid, signal.SIGKILL)
                child.last_heard = now  # the reap restarts it

    def _restart_due(self, now: float) -> None:
        for child in self.children.values():
            if not child.alive and now >= child.restart_at:
                C.spawn(child)

    def _engine_request(self, role: str, msg: dict) -> dict | None:
        """An engine asks the node to act (engineprocs/api.py supervisor_request); the
        reply, or None when it goes out later (a state dump)."""
        req, args = msg.get("req"), msg.get("args") or {}
        if req == "shutdown":
            self.log.notice("MAIN", f"{role} requests shutdown: {args.get('reason', '')}".rstrip(": "))
            self._signals.append(signal.SIGTERM)
            return {"ok": True}
        if req == "reopen_logs":
            return self._reopen_logs()
        if req == "reload":
            return self._reload()
        if req == "status":
            return self._status()        # counters as last reported (not asked for now)
        if req in ("crypto_use", "crypto_drop"):
            return self._crypto_phase(req[len("crypto_"):], args)
        if req == "config_keys":
            return self._forward_config_keys(role, args)
        rid = msg.get("id")
        if req == "dump_flight_data":      # runtime.blackbox.dump_flight_data (cmap)
            return {"ok": self.flight.write() is not None}
        if req == "dump_state":            # runtime.blackbox.dump_state: as SIGUSR2
            self._dump(lambda: self._answer(role, rid, {"ok": True}))
            return None
        return {"ok": False, "error": f"unknown request {req!r} (known: shutdown, "
                                      "reopen_logs, reload, status, crypto_use, crypto_drop, "
                                      "config_keys, dump_flight_data, dump_state)"}

    def _forward_config_keys(self, origin: str, args: dict) -> dict:
        """The CMAP engine's run-time changes of quorum.* / nodelist.* keys
        (engineprocs/cmap/config_watch.py) to every other engine process; one that is
        down reads the file when it starts again, as after any restart."""
        msg = {"op": "config_keys", "changed": list(args.get("changed") or ()),
               "entries": dict(args.get("entries") or {})}
        for eng in self.plan.engines:
            child = self.children.get(eng.name)
            if eng.name != origin and child is not None and child.alive:
                self.control.send(eng.name, msg)
        return {"ok": True}

    def _crypto_reload(self, new_cfg) -> int | None:
        """A reload found a new authkey (same cipher and hash): every link adds it to its
        key ring (receive accepts both); returns the new key id for the CFG engine's
        rotation phases (engineprocs/cfg/key_rotation.py), None when nothing changed."""
        from coroproc.netproc.secure.keys import LinkKey
        from coroproc.netproc.secure.suite import CryptoSuite
        from coroproc.supervisor.plan import read_authkey
        old = self.plan.links[0].secure if self.plan.links else None
        if old is None or new_cfg.knet is None or not new_cfg.knet.crypto.enabled:
            return None
        crypto = new_cfg.knet.crypto
        if (crypto.cipher, crypto.hash) != (old.cipher, old.hash):
            return None       # logged as a read-only change by the CFG engine
        key = read_authkey(new_cfg)
        if key == old.authkey:
            return None
        key_id = LinkKey(key, CryptoSuite(crypto.cipher, crypto.hash),
                         self.plan.cluster_name).key_id
        self._pending_key = (key_id, key)
        for link in self.plan.links:
            self.control.send(f"net{link.linknumber}",
                              {"op": "crypto", "phase": "add", "key": key.hex()})
        self.log.notice("MAIN", f"new authkey loaded as key {key_id} on every link")
        return key_id

    def _crypto_phase(self, phase: str, args: dict) -> dict:
        pending = self._pending_key
        if pending is None or args.get("key_id") != pending[0]:
            return {"ok": False, "error": f"crypto {phase}: no pending key "
                                          f"{args.get('key_id')!r}"}
        key_id, key = pending
        for link in self.plan.links:
            self.control.send(f"net{link.linknumber}",
                              {"op": "crypto", "phase": phase, "key_id": key_id})
            if phase == "use":     # a link process restarted from now on starts with it
                link.secure = dataclasses.replace(link.secure, authkey=key)
        if phase == "drop":
            self._pending_key = None
        self.log.notice("MAIN", f"crypto key {key_id}: {phase} on every link")
        return {"ok": True}

    def _reopen_logs(self) -> dict:
        errors = self.log.reopen() or []
        for child in self.children.values():
            if child.alive:
                self.control.send(child.role, {"op": "reopen_logs"})
        return {"ok": not errors, "error": "; ".join(errors)}

    def _reload(self) -> dict:
        """Re-read corosync.conf; a file that does not load is refused and nothing changes.
        The ring process applies the new Totem timers, engines get the new config
        (Engine.on_reload); links (addresses, ports) are not changed at run time here."""
        from coroproc.config.errors import ConfigParseError
        from coroproc.config.loader import load
        from coroproc.logsys import LogConfigError, settings_from_config
        try:
            new_cfg, _warnings = load(self.plan.config_path, self.plan.nodeid)
            self.log.reconfigure(settings_from_config(new_cfg.logging, self.plan.foreground))
        except (ConfigParseError, LogConfigError, OSError) as exc:
            self.log.error("MAIN", f"configuration reload refused: {exc}")
            return {"ok": False, "error": str(exc)}
        try:
            key_id = self._crypto_reload(new_cfg)
        except (OSError, ValueError) as exc:
            self.log.error("MAIN", f"configuration reload: authkey not changed: {exc}")
            key_id = None
        for child in self.children.values():
            if child.alive and not child.role.startswith("net"):
                self.control.send(child.role, {"op": "reload"})
        self.log.notice("MAIN", "configuration reloaded")
        return {"ok": True, **({"crypto_key_id": key_id} if key_id is not None else {})}

    def _operator_command(self, ctl: str, msg: dict) -> None:
        """`coroproc-ctl`: status (the node and each child's counters, asked for now) and
        restart ROLE."""
        if msg.get("op") == "status":
            self.reports.gather(time.monotonic(), lambda: self.control.send(ctl, self._status()))
            return
        self.control.send(ctl, self._operator_reply(msg))

    def _status(self) -> dict:
        return {"ok": True, "cluster": self.plan.cluster_name, "nodeid": self.plan.nodeid,
                "ready": self.ready, "pid": os.getpid(),
                "crash_loops": self.crash_loops.looping(),
                "report_rounds_late": self.reports.late,
                "children": {c.role: {"title": c.title, "pid": c.pid, "restarts": c.restarts,
                                      "cpus": sorted(c.cpus) if c.cpus else None,
                                      "sched": of_process(c.pid) if c.pid else "",
                                      "slice_ns": sched_slice.slice_ns(c.pid) if c.pid else None,
                                      "counters": c.counters}
                             for c in self.children.values()}}

    def _operator_reply(self, msg: dict) -> dict:
        op = msg.get("op")
        if op == "restart":
            role = msg.get("role", "")
            for eng in self.plan.engines:     # an engine hosted in another's process
                if role in eng.hosted_options:
                    role = eng.name
            child = self.children.get(role)
            if child is None:
                return {"ok": False, "error": f"no child {msg.get('role')!r}; children: "
                        + ", ".join(self.children)}
            if child.alive:
                self._asked_to_stop.add(child.role)
                os.kill(child.pid, signal.SIGTERM)
            return {"ok": True, "restarting": child.role}
        return {"ok": False, "error": f"unknown command {op!r} (known: status, restart)"}

    def _answer(self, role: str, request_id, reply: dict) -> None:
        self.control.send(role, {"op": "request_reply", "id": request_id, "reply": reply})

    def _dump(self, then=None) -> None:
        def log_dump() -> None:
            self._log_dump()
            if then is not None:
                then()
        self.reports.gather(time.monotonic(), log_dump)

    def _log_dump(self) -> None:
        for child in self.children.values():
            self.log.notice("MAIN", f"{child.title}: pid {child.pid} restarts {child.restarts} "
                            f"counters {orjson.dumps(child.counters).decode()}")

    # ---- stop ----
    def _stop_children(self, roles: list[str], timeout_s: float) -> None:
        for role in roles:
            child = self.children.get(role)
            if child and child.alive:
                if not self.control.send(role, {"op": "stop"}):
                    os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap_quiet()
            if not any(self.children[r].alive for r in roles if r in self.children):
                return
            time.sleep(0.02)
        for role in roles:
            child = self.children.get(role)
            if child and child.alive:
                self.log.warning("MAIN", f"{child.title} did not stop in {timeout_s} s; killing it")
                os.kill(child.pid, signal.SIGKILL)
        self._reap_quiet(block=True)

    def _reap_quiet(self, block: bool = False) -> None:
        while any(c.alive for c in self.children.values()):
            try:
                pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                for c in self.children.values():
                    c.pid = 0
                return
            if pid == 0:
                return
            for c in self.children.values():
                if c.pid == pid:
                    c.pid = 0

    def _shutdown(self) -> None:
        sd_notify("STOPPING=1")
        if self.control is not None and self.children:
            self._stop_children(["ring"], STOP_RING_S)
            self._stop_children([r for r in self.children if r != "ring"], STOP_REST_S)
        for ring in self.rings:
            ring.unlink()
            try:
                ring.close()
            except Exception:
                pass
        for db in self.doorbells.values():
            db.close()
        if self.link_table is not None:
            self.link_table.unlink()
            self.link_table.close()
            self.link_table = None
        # and a segment whose creation a stop interrupted (not in self.rings yet): every
        # segment named for this node is this instance's, since it holds the node's lock
        remove_node_segments(self.plan.cluster_name, self.plan.nodeid)
        remove_snapshots(self.plan.run_dir)
        self._remove_stale_ipc_dirs()
        if self.control is not None:
            self.control.close()
            try:
                os.unlink(os.path.join(self.plan.run_dir, "control.sock"))
            except FileNotFoundError:
                pass
        if self.pidfile:
            try:
                os.unlink(self.pidfile)
            except FileNotFoundError:
                pass
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
        self.log.notice("MAIN", "Corosync Cluster Engine exiting normally")
