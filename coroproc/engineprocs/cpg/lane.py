"""The CPG fast lane's Python side: MCAST traffic through jit/deliver.py (ordered
messages to local readers) and jit/requests.py (clients' requests to the submit ring).

Requests: `read_requests` runs the request kernel for one readable connection when the
connection may multicast and nothing about it needs Python (see jit/requests.py), and
counts what it took where the Python path counts it.

Deliveries: the table jit/deliver.py runs on, and what to do with a run's results.

The table is a copy of Python state: the groups that have local connections, each
group's receiving connections (state JOIN_COMPLETED or LEAVE_STARTED, as
notify.Notifier.deliver picks them) by event-queue slot, and the nodes with a process in
the group (the "known node" test). It is rebuilt before a run whenever it may be stale:
the engine host calls `invalidate()` after anything that runs engine code other than
delivering or sending an MCAST (a record or request handled in Python, a connect or
disconnect, a timer, a sync step), and the event queues count their attaches and
detaches. A connection without an event-queue slot, a group with more readers or nodes
than the table holds, or more groups than it holds, sends that traffic through Python.
"""
from __future__ import annotations

import errno

import numpy as np

from coroproc.engineprocs.api import LANE_CORRUPT, LANE_DONE, LANE_PYTHON
from coroproc.ipc.evqueue import EventQueues
from coroproc.jitcache import compiled_entry
from coroproc.ipc.server import REQUESTS_PER_WAKEUP_MAX
from coroproc.shm.syscalls import EPOLL_EVENT_WORDS, pollfd_array

from . import lib_msgs as lib
from .conn_state import RECEIVES_EVENTS, CpdState, CpgConn
from .jit import deliver as K
from .jit import loop as L
from .jit import requests as R

MCAST_STATES = (CpdState.JOIN_STARTED, CpdState.JOIN_COMPLETED)    # conn_state.MCAST_ANSWER OK
_LANE_STOP = {K.R_EMPTY: LANE_DONE, K.R_LIMIT: LANE_DONE, K.R_PYTHON: LANE_PYTHON,
              K.R_CORRUPT: LANE_CORRUPT}

GROUPS_MAX = 256
RECEIVERS_MAX = 64          # local connections in one group
NODES_MAX = 384             # exec_msgs.PROCESSOR_COUNT_MAX
REQUEST_ROWS_MAX = 256      # connections whose requests the delivery loop takes
EPOLL_EVENTS_MAX = 64       # IPC server events the delivery loop looks at per wake-up


class CpgLane:
    # lib requests that change nothing the table holds (host.py invalidates on the rest)
    stateless_requests = frozenset({lib.MESSAGE_REQ_CPG_MCAST})

    def __init__(self, engine, queues: EventQueues, groups_max: int = GROUPS_MAX,
                 receivers_max: int = RECEIVERS_MAX, nodes_max: int = NODES_MAX):
        self.engine = engine
        self.queues = queues
        slots = queues.qs.shape[0]
        self.gmeta = np.zeros((groups_max, K.GM_WORDS), np.int64)
        self.gnames = np.zeros((groups_max, K.NAME_MAX), np.uint8)
        self.grecv = np.zeros((groups_max, receivers_max), np.int64)
        self.gnodes = np.zeros((groups_max, nodes_max), np.int64)
        self.slot_msg_max = np.zeros(slots, np.int64)
        self.touched = np.zeros((slots, K.T_WORDS), np.int64)
        self.out = np.zeros(K.OUT_WORDS, np.int64)
        self.ngroups = 0
        self.complete = True
        self.generation = 0
        self._built = (-1, -1)
        self._slot_conn: dict[int, object] = {}
        self.stats = {"runs": 0, "records": 0, "rebuilds": 0, "stops_for_python": 0,
                      "request_runs": 0, "requests": 0, "requests_to_python": 0,
                      "loops": 0, "loop_sleeps": 0,
                      # the own-delivery spin (jit/loop.py): polls, the ones a delivery
                      # ended, and µs spent in them
                      "spins": 0, "spin_hits": 0, "spin_us": 0}
        self._submit = None
        # the kernels' compiled entry points (jitcache.compiled_entry), made at first use
        self._deliver_entry = self._requests_entry = self._loop_entry = None
        self._acc = np.zeros(L.A_WORDS, np.int64)
        self.spin = np.zeros(L.SPIN_WORDS, np.int64)    # set_spin; the loop keeps its state
        self.spin[L.SPIN_AVOID_CPU] = -1
        # the loop's request table (jit/loop.py RQ_*) and the IPC server's epoll events
        self.rq = np.zeros((REQUEST_ROWS_MAX, L.RQ_WORDS), np.int64)
        self.rq_group = np.zeros((REQUEST_ROWS_MAX, K.NAME_MAX), np.uint8)
        self._rq_conns: list = []
        self._ev = np.zeros(EPOLL_EVENTS_MAX * EPOLL_EVENT_WORDS, np.uint32)
        self._rq_buf0 = np.zeros(1, np.uint8)
        self._rq_buf_src = None
        self._rq_buf = self._rq_buf0
        self._u64 = np.zeros(1, np.uint64)
        self._ts = np.zeros(2, np.int64)
        self._group_arrays: dict[bytes, np.ndarray] = {}
        self._rq_out = np.zeros(R.OUT_WORDS, np.int64)
        self._src = np.zeros(128, np.uint8)
        self._src_len = np.zeros(1, np.uint32)
        self._scratch = np.zeros(1, np.uint64)

    def bind_submit(self, ring, wake_fd, max_message_bytes: int, roomy_used_bytes: int) -> None:
        """The submit ring MCAST requests go to, the ring process's doorbell (None: none),
        Totem's largest message, and the ring's level up to which the host's room checks
        need no arithmetic (host.roomy_used_bytes)."""
        self._submit = ring
        self._wake_fd = -1 if wake_fd is None else int(wake_fd)
        self._max_message_bytes = int(max_message_bytes)
        self._roomy_used_bytes = int(roomy_used_bytes)

    # ---- requests -------------------------------------------------------------------------
    def read_requests(self, conn, buf, limit: int, avail: int, stop_used_bytes: int):
        """(requests taken, length of a datagram left in buf for Python (0: none, -1: a
        read failed), whether the submit ring reached stop_used_bytes); None when this
        connection's requests are not for the lane now (Python reads them)."""
        cpd = conn.context
        if not (self._requests_open() and self._may_multicast(cpd)):
            return None
        group = self._group_arrays.get(cpd.group)
        if group is None:
            if len(self._group_arrays) >= GROUPS_MAX:
                self._group_arrays.clear()
            group = self._group_arrays[cpd.group] = np.frombuffer(cpd.group, np.uint8)
        out, ring = self._rq_out, self._submit
        args = (conn.request_sock.fileno(), np.frombuffer(buf, np.uint8), limit, avail,
                conn.control.address("request"), group, cpd.pid, self.engine.ctx.nodeid,
                cpd.source_id, ring.hdr, ring.data, self._wake_fd, self._max_message_bytes,
                self._roomy_used_bytes, stop_used_bytes, self._src, self._src_len,
                self._scratch, out)
        if self._requests_entry is None:
            self._requests_entry = compiled_entry(R.mcast_requests, args)
        self._requests_entry(*args)
        taken, pending, reason = int(out[R.OUT_TAKEN]), int(out[R.OUT_PENDING]), int(out[R.OUT_REASON])
        st = self.stats
        st["request_runs"] += 1
        if taken:
            st["requests"] += taken
            conn.stats["requests"] += taken
            eng = self.engine
            eng.stats["messages_sent"] += taken
            eng.flow.check()
        if pending:
            st["requests_to_python"] += 1
        if reason == R.RQ_ERROR:
            pending = -1       # Python reads again and says what is wrong
        return taken, pending, reason == R.RQ_FLOW

    def _requests_open(self) -> bool:
        """No request for the lane without a submit ring, during a sync or a replay."""
        ctx = self.engine.ctx
        return self._submit is not None and not (ctx.sync_in_progress or ctx.replaying)

    @staticmethod
    def _may_multicast(cpd) -> bool:
        return isinstance(cpd, CpgConn) and cpd.state in MCAST_STATES

    def invalidate(self) -> None:
        self.generation += 1

    # ---- the table ------------------------------------------------------------------------
    def _rebuild(self) -> None:
        eng = self.engine
        self.stats["rebuilds"] += 1
        self._slot_conn = {}
        self.slot_msg_max[:] = 0
        groups = list(eng._by_group.items())
        self.complete = len(groups) <= self.gmeta.shape[0]
        self.ngroups = g = 0
        for group, conns in groups[:self.gmeta.shape[0]]:
            meta = self.gmeta[g]
            meta[:] = 0
            meta[K.GM_NAME_LEN] = len(group)
            self.gnames[g, :len(group)] = np.frombuffer(group, np.uint8)
            receivers = [c for c in conns if c.state in RECEIVES_EVENTS]
            slow = len(receivers) > self.grecv.shape[1]
            for i, cpd in enumerate(receivers[:self.grecv.shape[1]]):
                conn = cpd.conn
                evq = getattr(conn, "evq", None)
                if evq is None or conn.closed or conn in conn.server._doomed:
                    slow = True
                    break
                self.grecv[g, i] = evq.slot
                self.slot_msg_max[evq.slot] = conn.max_msg_bytes
                self._slot_conn[evq.slot] = conn
            nodes = sorted({n for n, _p in eng.procs.members(group)})
            slow = slow or len(nodes) > self.gnodes.shape[1]
            self.gnodes[g, :min(len(nodes), self.gnodes.shape[1])] = \
                nodes[:self.gnodes.shape[1]]
            meta[K.GM_RECV] = len(receivers)
            meta[K.GM_NODES] = len(nodes)
            meta[K.GM_SLOW] = int(slow)
            g += 1
        self.ngroups = g
        self._built = (self.generation, self.queues.generation)

    # ---- a run ----------------------------------------------------------------------------
    def run(self, dhdr, ddata, pos: int, max_records: int) -> tuple[int, int, int]:
        """Deliver MCAST records from cursor pos: (records handled, cursor after them,
        api.LANE_* why it stopped)."""
        if self._built != (self.generation, self.queues.generation):
            self._rebuild()
        q = self.queues
        out = self.out
        args = (dhdr, ddata, pos, max_records, self.gmeta, self.gnames, self.grecv,
                self.gnodes, self.ngroups, self.complete, self.slot_msg_max, q.qs, q.rows,
                q.arena, q.mm, q.iov, self.touched, out)
        if self._deliver_entry is None:
            self._deliver_entry = compiled_entry(K.deliver_run, args)
        self._deliver_entry(*args)
        records, reason = int(out[K.OUT_RECORDS]), int(out[K.OUT_REASON])
        st = self.stats
        st["runs"] += 1
        st["records"] += records
        if reason == K.R_PYTHON:
            st["stops_for_python"] += 1
        if records:
            es = self.engine.stats
            es["messages_received"] += records
            es["messages_delivered"] += int(out[K.OUT_DELIVERED])
            es["deliver_events"] += int(out[K.OUT_EVENTS])
        for i in range(int(out[K.OUT_TOUCHED])):
            self._after_flush(int(self.touched[i, K.T_SLOT]), int(self.touched[i, K.T_ERRNO]))
        return records, int(out[K.OUT_POS]), _LANE_STOP[reason]

    def set_spin(self, spin_ns: int, avoid_cpu: int) -> None:
        """The own-delivery spin (jit/loop.py): poll up to spin_ns (0: never), not on CPU
        avoid_cpu (-1: any)."""
        self.spin[L.SPIN_NS] = spin_ns
        self.spin[L.SPIN_AVOID_CPU] = avoid_cpu

    def loop(self, dhdr, ddata, pos: int, pos_limit: int, release: bool, max_records: int,
             pfd, until_us: int, moved_until_us: int, ipc=None, ipc_idx: int = -1,
             stop_used_bytes: int = 0):
        """Deliver, take MCAST requests and sleep in jit/loop.py until Python is needed:
        (records handled, cursor after them, the fds of pfd[1:] the last poll saw readable
        or None when that is not known, requests taken, whether one reached
        stop_used_bytes). None when a reader's socket was full or its backlog flag is up:
        those want the Python path after every send (connection.flush_events). `ipc`
        (the IPC server, whose epoll fd is pfd row ipc_idx) offers its connections'
        requests; stop_used_bytes is the host's flow-control level of the submit ring."""
        if self._built != (self.generation, self.queues.generation):
            self._rebuild()
        for conn in self._slot_conn.values():
            if conn._event_sock_full or conn._backlogged:
                return None
        nrq, buf = self._request_rows(ipc)
        q, acc = self.queues, self._acc
        submit = self._submit
        args = (dhdr, ddata, pos, pos_limit, release, max_records, self.gmeta, self.gnames,
                self.grecv, self.gnodes, self.ngroups, self.complete, self.slot_msg_max,
                q.qs, q.rows, q.arena, q.mm, q.iov, self.touched, self.out, pfd, self._u64,
                self._ts, until_us, moved_until_us, acc,
                ipc_idx if nrq else -1, ipc.fileno() if ipc is not None else -1, self._ev,
                self.rq, self.rq_group, nrq, REQUESTS_PER_WAKEUP_MAX, buf,
                self.engine.ctx.nodeid, submit.hdr, submit.data, self._wake_fd,
                self._max_message_bytes, self._roomy_used_bytes,
                min(self._roomy_used_bytes, stop_used_bytes), self._src, self._src_len,
                self._scratch, self._rq_out, self.spin)
        if self._loop_entry is None:
            self._loop_entry = compiled_entry(L.lane_loop, args)
        why = self._loop_entry(*args)
        records = int(acc[L.A_RECORDS])
        st = self.stats
        st["loops"] += 1
        st["loop_sleeps"] += int(acc[L.A_SLEEPS])
        if acc[L.A_SPINS]:
            st["spins"] += int(acc[L.A_SPINS])
            st["spin_hits"] += int(acc[L.A_SPIN_HITS])
            st["spin_us"] += int(acc[L.A_SPIN_NS]) // 1000
        if records:
            st["records"] += records
            es = self.engine.stats
            es["messages_received"] += records
            es["messages_delivered"] += int(acc[L.A_DELIVERED])
            es["deliver_events"] += int(acc[L.A_EVENTS])
        requests = self._count_requests(nrq) if acc[L.A_REQUESTS] else 0
        if why == L.LOOP_FLUSH:
            for i in range(int(acc[L.A_TOUCHED])):
                self._after_flush(int(self.touched[i, K.T_SLOT]),
                                  int(self.touched[i, K.T_ERRNO]))
        elif why == L.LOOP_PENDING:
            st["requests_to_python"] += 1
            ipc.read_pending(self._rq_conns[int(acc[L.A_RQ_ROW])], int(acc[L.A_RQ_PENDING]))
        elif why == L.LOOP_POLL_FAILED:
            e = -int(acc[L.A_ERR])
            raise OSError(e, f"CPG delivery loop: poll() failed: {errno.errorcode.get(e, e)}")
        ready = L.readable_fds(pfd) if why == L.LOOP_FDS else None
        return records, int(acc[L.A_POS]), ready, requests, why == L.LOOP_FLOW

    def _request_rows(self, ipc) -> tuple[int, np.ndarray]:
        """Fill the loop's request table (jit/loop.py RQ_*) with the connections whose
        MCAST requests it may take now — those read_requests would take when the server
        offers them (IpcServer.offers_fast_reads); (rows, the server's request buffer)."""
        self._rq_conns = conns = []
        if ipc is None or not self._requests_open():
            return 0, self._rq_buf0
        rq, limit_max = self.rq, 0
        for cpd in self.engine.active_conns():
            conn = cpd.conn
            if not (self._may_multicast(cpd) and ipc.offers_fast_reads(conn)):
                continue
            n = len(conns)
            if n == rq.shape[0]:
                break
            row = rq[n]
            row[L.RQ_FD] = conn.request_sock.fileno()
            row[L.RQ_CTRL] = conn.control.address("request")
            row[L.RQ_GLEN] = len(cpd.group)
            self.rq_group[n, :len(cpd.group)] = np.frombuffer(cpd.group, np.uint8)
            row[L.RQ_PID] = cpd.pid
            row[L.RQ_SOURCE] = cpd.source_id
            row[L.RQ_LIMIT] = conn.max_msg_bytes
            row[L.RQ_TAKEN] = 0
            limit_max = max(limit_max, conn.max_msg_bytes)
            conns.append(conn)
        if not conns:
            return 0, self._rq_buf0
        raw = ipc.request_buffer(limit_max)
        if self._rq_buf_src is not raw:
            self._rq_buf_src, self._rq_buf = raw, np.frombuffer(raw, np.uint8)
        return len(conns), self._rq_buf

    def _count_requests(self, nrq: int) -> int:
        """What read_requests counts, for the requests the loop took."""
        total = 0
        for i in range(nrq):
            taken = int(self.rq[i, L.RQ_TAKEN])
            if taken:
                self._rq_conns[i].stats["requests"] += taken
                total += taken
        if total:
            self.stats["requests"] += total
            eng = self.engine
            eng.stats["messages_sent"] += total
            eng.flow.check()
        return total

    def _after_flush(self, slot: int, err: int) -> None:
        """What connection.flush_events does after a send, for a queue the kernel sent."""
        conn = self._slot_conn.get(slot)
        if conn is None or conn.closed or not self.queues.in_use(slot):
            return
        server = conn.server
        if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS):
            conn._event_sock_full = True
        elif err:
            conn._flush_or_doom(conn.flush_events)    # says what went wrong, or dooms it
            self.invalidate()                         # a doomed reader gets nothing more
        else:
            conn._event_sock_full = False
        conn.check_backlog()
        if conn.waits_for_event_socket:
            server._retry_later(conn)
        server._update_interest(conn)


def warm_up() -> None:
    """Compile (or load from the cache) the lane's kernels with the argument types the
    engine passes them: one run over a scratch delivery ring with one MCAST record, to a
    connected socket pair, and a Python-side push and flush."""
    import os
    import socket
    import time

    from coroproc.shm.ring import ShmRing

    queues = EventQueues(slots=2, region_bytes=1 << 16, rows_per_slot=64)
    lane = CpgLane(_WarmEngine(), queues, groups_max=2, receivers_max=2, nodes_max=2)
    ring = ShmRing.create(f"/coroproc-warm.{os.getpid()}.lane", 1 << 16)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        q = queues.attach(16, 1 << 15)
        q.connected(a.fileno(), 0)
        q.push(b"warm")
        q.flush()
        q.drop_head()
        lane.run(ring.hdr, ring.data, 0, 1)
        lane.bind_submit(ring, None, 1 << 20, 1 << 15)
        bell = os.eventfd(0, os.EFD_NONBLOCK)
        try:    # until_us now: one turn, then back (the types are the engine host's)
            lane.loop(ring.hdr, ring.data, 0, 1 << 62, True, 1, pollfd_array((bell,)),
                      time.monotonic_ns() // 1000, 1 << 62, None, -1, 1 << 62)
        finally:
            os.close(bell)
        q.detach()
        b.setblocking(False)
        R.mcast_requests(b.fileno(), np.frombuffer(bytearray(64), np.uint8), 63, 1, 0,
                         np.frombuffer(b"warm", np.uint8), 1, 1, 1, ring.hdr, ring.data,
                         lane._wake_fd, lane._max_message_bytes, lane._roomy_used_bytes,
                         1 << 62, lane._src, lane._src_len, lane._scratch, lane._rq_out)
    finally:
        a.close()
        b.close()
        ring.unlink()
        ring.close()


class _WarmEngine:
    """The little of a CpgEngine the table and the loop read: no groups."""
    _by_group: dict = {}
    stats: dict = {}

    class ctx:
        nodeid = 1
        sync_in_progress = False
        replaying = False

    @staticmethod
    def active_conns():
        return []
