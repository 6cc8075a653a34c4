"""The ring process: the jitted Totem core over real shm rings, the wall clock and a doorbell.

Python here only sleeps, reads the clock, persists ring ids, writes operator log lines and
talks to the supervisor; every frame and every message is handled inside `pump` (numba).
One loop iteration: pump until idle, wake the consumers the pump filled, then sleep on the
doorbell (rx and submit rings + the control socket) until the next Totem deadline. That
loop is jitted as a whole (loop.py); it comes back here for the pump's rows for Python,
the control socket, the heartbeat and the scheduling check.
"""
from __future__ import annotations

import errno
import os
import time

import numpy as np

from coroproc.shm.ring import ShmRing
from coroproc.shm.syscalls import pollfd_array

from . import config as C
from . import events as E
from . import pump as P
from . import totempg as pg
from .records import RT_RING_START
from .loop import LOOP_POLL_FAILED, pay_wakes, ring_loop
from .state import COUNTER_NAMES, EV_CONFIG, EV_LOG, EV_RINGID, OPERATIONAL, S_STATE, S_WAITING_TRANS_ACK, new_state

PUMP_BUDGET = 4096
# How long a pump stalled on a full delivery ring sleeps before it looks again.
STALL_SLEEP_US = 2000
SCHEDMISS_EVENTS_MAX = 10  # Corosync keeps the last 10 (stats.schedmiss.N.*)


def now_us() -> int:
    return time.monotonic_ns() // 1000


def load_ring_seq(state_dir: str, nodeid: int) -> int:
    """Corosync's ringid_<nodeid>: the last ring seq as a native u64 (0 if absent/short)."""
    try:
        with open(os.path.join(state_dir, f"ringid_{nodeid}"), "rb") as f:
            raw = f.read(8)
    except FileNotFoundError:
        return 0
    return int.from_bytes(raw, "little") if len(raw) == 8 else 0


def store_ring_seq(state_dir: str, nodeid: int, seq: int) -> None:
    path = os.path.join(state_dir, f"ringid_{nodeid}")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(int(seq).to_bytes(8, "little"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# Totem values a reload applies to the running core (Corosync's totem_volatile_config_read)
VOLATILE_TOTEM = ((C.C_TOKEN_US, "token_us"), (C.C_TOKEN_RETRANSMIT_US, "token_retransmit_us"),
                  (C.C_HOLD_US, "hold_us"), (C.C_JOIN_US, "join_us"),
                  (C.C_CONSENSUS_US, "consensus_us"), (C.C_MERGE_US, "merge_us"),
                  (C.C_FAIL_RECV_CONST, "fail_recv_const"),
                  (C.C_SEQNO_UNCHANGED_CONST, "seqno_unchanged_const"),
                  (C.C_MISS_COUNT_CONST, "miss_count_const"),
                  (C.C_MAX_MESSAGES, "max_messages"), (C.C_TOKEN_WARNING_US, "token_warning_us"),
                  (C.C_RETRANSMITS_BEFORE_LOSS, "token_retransmits_before_loss_const"),
                  (C.C_CANCEL_HOLD_ON_RETRANSMIT, "cancel_token_hold_on_retransmit"),
                  (C.C_IDLE_TOKEN_PACE_US, "idle_token_pace_us"))
# ... and the ones that size its arrays
FIXED_TOTEM = ((C.C_WINDOW_SIZE, "window_size"), (C.C_NETMTU, "netmtu"))


class RingProcess:
    def __init__(self, plan, log, control, doorbell):
        self.plan = plan
        self.log = log
        self.control = control
        self.rx = [ShmRing.attach(l.rx_name, role="consumer") for l in plan.links]
        self.tx = [ShmRing.attach(l.tx_name, wake_fd=l.wake_fd, role="producer")
                   for l in plan.links]
        self.sub = [ShmRing.attach(e.submit_name, role="consumer") for e in plan.engines]
        self.dl = [ShmRing.attach(e.delivery_name, wake_fd=e.wake_fd, role="producer")
                   for e in plan.engines]
        cfg = plan.totem
        self.cfg = cfg
        # with sync engines, they finish each configuration (and say so); without, the
        # regular configuration is the end of it
        self.engines_sync = any(e.has_sync for e in plan.engines)
        cfg_array = cfg.to_array()
        # the engines acknowledge each completed sync (RT_TRANS_ACK), so until then only
        # their sync traffic is sent (Corosync's waiting_trans_ack)
        cfg_array[C.C_WAIT_TRANS_ACK] = int(self.engines_sync)
        self.st = new_state(cfg_array, plan.nodeid,
                            load_ring_seq(plan.state_dir, plan.nodeid),
                            cfg.new_message_queue_bytes)
        # every service engine follows sync (IPC admission and flow control depend on
        # it), whether or not it has sync work of its own
        route = P.route_table([(tuple(e.service_ids), bool(e.service_ids), e.wants_all_groups)
                               for e in plan.engines])
        # the quorum engine (service 3) logs "[QUORUM] Members[n]: …" when the node runs it
        self.log_quorum_members = not any(3 in e.service_ids for e in plan.engines)
        self.bufs = P.new_pump_bufs(len(cfg.nodelist) + 4, cfg.max_message_bytes, cfg.netmtu,
                                    route)
        P.set_ring_counts(self.bufs.ps, len(self.rx), len(self.sub), len(self.tx), len(self.dl))
        P.set_mcast_nobody(self.bufs.ps, [l.spec.multicast_reaches_nobody() for l in plan.links])
        self.bufs.ps[P.P_INTAKE_BYTES] = P.intake_bytes(cfg.window_size, cfg.netmtu)
        link_slots, engine_slots = pump_slots(len(self.rx), len(self.sub))
        self._rx_t = P.padded(self.rx, link_slots)
        self._sub_t = P.padded(self.sub, engine_slots)
        self._tx_t = P.padded(self.tx, link_slots)
        self._dl_t = P.padded(self.dl, engine_slots)
        self.headroom_bytes = min(min((r.capacity_bytes for r in self.dl), default=1 << 30) // 2,
                                  cfg.queue_slots * cfg.frame_bytes * 2)
        self._pump_at = P.bind_pump(self.st, self._rx_t, self._sub_t, self._tx_t, self._dl_t,
                                    self.bufs, PUMP_BUDGET, self.headroom_bytes)
        # the consumers' eventfds, in the pump's ring order, and the sleep's pollfds: the
        # doorbell, then the control socket
        self._tx_fds = np.array([l.wake_fd for l in plan.links] or [-1], np.int64)
        self._dl_fds = np.array([e.wake_fd for e in plan.engines] or [-1], np.int64)
        self._u64 = np.zeros(1, np.uint64)
        ctrl = [f if isinstance(f, int) else f.fileno() for f in control.fds()]
        self._pfd = pollfd_array([doorbell.fd, *ctrl])
        self._ts = np.zeros(2, np.int64)
        self._err = np.zeros(1, np.int64)
        self._pay = P.compiled_entry(pay_wakes, (self.bufs.ps, self._tx_fds, self._dl_fds,
                                                 self._u64))
        self._loop_args = (self.st, *self._rx_t, *self._sub_t, *self._tx_t, *self._dl_t,
                           self.bufs, PUMP_BUDGET, self.headroom_bytes, self._pfd,
                           self._tx_fds, self._dl_fds, self._u64, self._ts, self._err)
        self._loop_entry = P.compiled_entry(ring_loop, (*self._loop_args, 0, 0))
        self.members: tuple[int, ...] = ()
        self.ring_id = (0, 0)
        self.operational_once = False
        self.schedmiss: list[tuple[int, float]] = []
        control.handlers["reload"] = self._reload

    # ---- the loop ----
    def run(self) -> int:
        # Engines learn the ring restarted (their old membership view is void) before
        # anything of the new incarnation.
        self._announce_start()
        self.bufs.ps[P.P_COMMAND] = P.CMD_START
        sched_prev_us = now_us()
        while True:
            # the jitted loop turns until Python is needed (ringproc/loop.py): rows of the
            # pump for Python, the control socket, the next heartbeat or scheduling check
            token_us = int(self.st.cfg[C.C_TOKEN_US])     # a reload may change it
            sched_period_us = token_us // 3
            until_us = min(sched_prev_us + sched_period_us,
                           now_us() + int(self.control.tick_s * 1e6))
            ret = self._loop(until_us)
            if ret in (P.RET_EVENTS, P.RET_PERSIST):
                self._python_events()
                if ret == P.RET_PERSIST:
                    self.bufs.ps[P.P_PERSIST_PENDING] = 0
            elif ret == P.RET_CORRUPT:
                raise RuntimeError(
                    f"input ring {int(self.bufs.ps[P.P_CORRUPT_RING])} has corrupt framing")
            elif ret == LOOP_POLL_FAILED:
                e = -int(self._err[0])
                raise OSError(e, f"ring process: poll() on the doorbell and control fds "
                                 f"failed: {errno.errorcode.get(e, e)}")
            if not self.control.poll():      # LOOP_INTERRUPTED: a signal handler ran by now
                self._leave()
                return 0
            t = now_us()
            if t - sched_prev_us >= sched_period_us:
                self._check_schedmiss(t - sched_prev_us, token_us)
                sched_prev_us = t

    def _loop(self, until_us: int) -> int:
        return self._loop_entry(*self._loop_args, until_us, STALL_SLEEP_US)

    def _leave(self) -> None:
        """SIGTERM path: tell the ring we go (no token timeout for the others)."""
        self.bufs.ps[P.P_COMMAND] = P.CMD_LEAVE
        self._pump_once()
        self.log.notice("TOTEM", "Leaving the ring (clean shutdown).")

    def _pump_once(self) -> None:
        """pump until it has nothing more for Python, waking the consumers it fills (the
        leave's frames must reach the link processes before this process exits)."""
        ret = P.RET_EVENTS
        while ret in (P.RET_EVENTS, P.RET_PERSIST):
            ret = self._pump_at(now_us())
            self._pay(self.bufs.ps, self._tx_fds, self._dl_fds, self._u64)
            self._python_events()
            if ret == P.RET_PERSIST:
                self.bufs.ps[P.P_PERSIST_PENDING] = 0

    def _announce_start(self) -> None:
        stamp = np.array([self.plan.incarnation_us, now_us()], np.int64).tobytes()
        for r in self.dl:
            if not r.push(RT_RING_START, stamp):
                self.log.warning("MAIN", f"delivery ring {r.name} is full at start")

    # ---- rare events: logs, configurations, ring ids ----
    def _python_events(self) -> None:
        """Rows the pump handed up, in the order the core emitted them. The core emits a
        new ring as: regular configuration, "formed", joined list, left list, failed list;
        Corosync logs one "A new membership" line with both lists, then the failed line,
        then Members[N] and the end of sync, so those lines wait for the end of the batch."""
        b = self.bufs
        n = int(b.ps[P.P_PYEV_N])
        if not n:
            return
        rows = b.pyev[:n].tolist()
        ints = b.pyev_ints
        b.ps[P.P_PYEV_N] = 0
        b.ps[P.P_PYEV_IOFF] = 0
        formed: list | None = None
        later: list[tuple[str, str]] = []
        for kind, a, bb, c, d, _e, off, ln in rows:
            nodes = " ".join(map(str, ints[off:off + ln].tolist()))
            if kind == EV_RINGID:
                store_ring_seq(self.plan.state_dir, self.plan.nodeid, c)
                self.log.debug("MAIN", f"Storing new sequence id for ring {c:x}")
            elif kind == EV_CONFIG:
                later += self._config(a, (bb, c), tuple(ints[off:off + ln].tolist()))
            elif kind != EV_LOG:
                continue
            elif a == E.LOG_MEMBERSHIP_FORMED:
                formed = [bb, c, "", ""]
            elif a == E.LOG_JOINED and formed:
                formed[2] = " joined: " + nodes
            elif a == E.LOG_LEFT and formed:
                formed[3] = " left: " + nodes
            elif a == E.LOG_FAILED:
                later.insert(0, ("TOTEM", "Failed to receive the leave message. failed: " + nodes))
            else:
                self._log_event(a, bb, c, d, nodes)
        if formed:
            rep, seq, joined, left = formed
            self.log.notice("TOTEM", f"A new membership ({rep:x}.{seq:x}) was formed. "
                            f"Members{joined}{left}")
        for subsys, line in later:
            self.log.notice(subsys, line)

    def _config(self, kind: int, ring: tuple[int, int], members: tuple[int, ...]) -> list:
        self.control.send({"op": "event", "ev": "install",
                           "kind": "regular" if kind else "transitional",
                           "ring": list(ring), "members": list(members)})
        if kind != 1:
            return []
        self.members = members
        self.ring_id = ring
        lines = []
        if self.log_quorum_members:
            lines.append(("QUORUM", f"Members[{len(members)}]: " + " ".join(map(str, members))))
        if self.engines_sync:
            return lines   # the sync leader engine reports completion and readiness
        if not self.operational_once:
            self.operational_once = True
            self.control.send({"op": "event", "ev": "ready"})
        return lines + [("MAIN", "Completed service synchronization, ready to provide service.")]

    def _log_event(self, code: int, a: int, b: int, c: int, nodes: str) -> None:
        if code == E.LOG_TOKEN_LOST:
            self.log.notice("TOTEM", "A processor failed, forming new configuration: token "
                            f"timed out ({a}ms), waiting {b}ms for consensus.")
        elif code == E.LOG_TOKEN_WARNING:
            self.log.info("TOTEM", f"Token has not been received in {a} ms ")
        elif code in (E.LOG_GATHER_ENTER, E.LOG_TRANS_ACK):
            self.log.debug("TOTEM", E.describe(code, a, b, c))
        elif code in (E.LOG_FIREWALL, E.LOG_FAILED_TO_RECEIVE):
            self.log.error("TOTEM", E.describe(code, a, b, c))
        else:
            self.log.notice("TOTEM", E.describe(code, a, b, c))

    def _reload(self, msg: dict):
        """corosync.conf was re-read (`cfgtool -R`): Corosync's volatile Totem values —
        the timers and max_messages — take effect at once; what sizes the core's arrays
        (window_size, netmtu) needs a restart of the node."""
        from coroproc.config.loader import load
        try:
            cfg, _warnings = load(self.plan.config_path, self.plan.nodeid)
            new = cfg.totem.to_array()
        except Exception as exc:
            self.log.error("TOTEM", f"reload: new Totem configuration refused: {exc}")
            return {"ok": False, "error": str(exc)}
        changed = []
        for idx, name in VOLATILE_TOTEM:
            if int(self.st.cfg[idx]) != int(new[idx]):
                changed.append(f"{name} {int(self.st.cfg[idx])} -> {int(new[idx])}")
                self.st.cfg[idx] = new[idx]
        for idx, name in FIXED_TOTEM:
            if int(self.st.cfg[idx]) != int(new[idx]):
                self.log.warning("TOTEM", f"reload: {name} cannot change while the node "
                                 "runs; restart the node to apply it")
        if changed:
            self.log.notice("TOTEM", "runtime configuration changed: " + ", ".join(changed))
        return {"ok": True, "changed": changed}

    def _check_schedmiss(self, gap_us: int, token_us: int) -> None:
        threshold_us = token_us * 0.8
        if gap_us <= threshold_us:
            return
        stamp_ms = time.time_ns() // 1_000_000
        self.log.warning("MAIN", f"Corosync main process was not scheduled (@{stamp_ms}) for "
                         f"{gap_us / 1000:0.4f} ms (threshold is {threshold_us / 1000:0.4f} ms). "
                         "Consider token timeout increase.")
        self.schedmiss.append((stamp_ms, gap_us / 1000))
        del self.schedmiss[:-SCHEDMISS_EVENTS_MAX]

    # ---- introspection ----
    def counters(self) -> dict:
        c = {name: int(v) for name, v in zip(COUNTER_NAMES, self.st.cnt)}
        c.update({"pump." + n: int(v) for n, v in zip(P.PC_NAMES, self.bufs.pc)})
        c["operational"] = int(self.st.s[S_STATE] == OPERATIONAL)
        # stats.pg.*: the new-message queue, in full frames of free room (Corosync counts
        # queue slots) and messages waiting to be sent
        q = self.st.pg_q_meta
        c["pg"] = {"msg_queue_avail": int((q[pg.Q_CAP] - q[pg.Q_USED]) // self.cfg.frame_bytes),
                   "msg_reserved": int(q[pg.Q_COUNT])}
        for i, (stamp, delay) in enumerate(reversed(self.schedmiss)):
            c[f"schedmiss.{i}.timestamp"] = stamp
            c[f"schedmiss.{i}.delay"] = delay
        return c

    def state_dump(self) -> dict:
        return {"ring_id": list(self.ring_id), "members": list(self.members),
                "state": int(self.st.s[S_STATE]),
                "waiting_trans_ack": bool(self.st.s[S_WAITING_TRANS_ACK]),
                "counters": self.counters()}

    def close(self) -> None:
        # every holder of ring views first: a ring with live views cannot be unmapped
        self._rx_t = self._sub_t = self._tx_t = self._dl_t = self._pump_at = None
        self._loop_args = self._loop_entry = None
        for r in self.rx + self.tx + self.sub + self.dl:
            r.close()


def warm_up(cfg, n_links: int, n_engines: int) -> None:
    """Load (or compile) every kernel the ring process calls, with the exact argument types
    it will use, so forked ring processes start warm. Touches no shm ring: the scratch
    arrays have the rings' types, and with no command and budget 0 pump returns before
    reading them."""
    st = new_state(cfg.to_array(), 1, 0, 1 << 16)
    bufs = P.new_pump_bufs(2, 1024, cfg.netmtu)
    link_slots, engine_slots = pump_slots(n_links, n_engines)
    # placeholder rings have the real rings' numba types
    link_t, eng_t = P.padded([], link_slots), P.padded([], engine_slots)
    P.pump(st, 0, *link_t, *eng_t, *link_t, *eng_t, bufs, 0, 0)
    # the wake-ups (none asked for), and the loop for one turn: until_us 0 has passed
    fds, u64 = np.array([-1], np.int64), np.zeros(1, np.uint64)
    pay_wakes(bufs.ps, fds, fds, u64)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        ring_loop(st, *link_t, *eng_t, *link_t, *eng_t, bufs, 0, 0, pollfd_array([fd]), fds,
                  fds, u64, np.zeros(2, np.int64), np.zeros(1, np.int64), 0, 0)
    finally:
        os.close(fd)


def pump_slots(n_links: int, n_engines: int) -> tuple[int, int]:
    """The pump's ring-tuple lengths for a node (see pump.LINK_SLOTS): the ring process
    and warm_up must agree, or the ring process compiles a pump of its own."""
    return P.ring_slots(n_links, P.LINK_SLOTS), P.ring_slots(n_engines, P.ENGINE_SLOTS)
