"""The CFG engine (Corosync service 1, IPC service "cfg"): node administration for libcfg.

Every libcfg call of Corosync 3.1.7 (exec/cfg.c), answered the same way:
* LOCAL_GET, GET_NODE_ADDRS, NODESTATUSGET, RINGSTATUSGET — status.py;
* TRACKSTART/TRACKSTOP, TRYSHUTDOWN, REPLYTOSHUTDOWN — the vote in shutdown.py; the
  node goes down through a SHUTDOWN exec message (SAFE) that every node logs and the
  sender turns into ctx.supervisor_request("shutdown");
* KILLNODE — a SAFE exec message; the target logs "Killed by node N : reason" and
  stops (api.NodeFatal);
* RELOAD_CONFIG — a SAFE exec message; every node asks its supervisor to re-read
  corosync.conf; the requesting node answers its client with its own node's result
  (CS_OK or CS_ERR_INVALID_PARAM), as cfg.c does;
* REOPEN_LOG_FILES — the supervisor reopens the log files; RINGREENABLE —
  CS_ERR_NOT_SUPPORTED (Corosync 3 too); CRYPTO_RECONFIG exec — authkey rotation
  (key_rotation.py; transport knet only; ignored otherwise, as there is no crypto on
  udpu/udp).
Answers that need the supervisor are deferred; a guard timer answers CS_ERR_TIMEOUT if
it never replies, so a client is never left waiting for ever.
"""
from __future__ import annotations

import itertools

from coroproc.engineprocs.api import SERVICE_CFG, SERVICE_CMAP, Engine, NodeFatal
from coroproc.engineprocs.cfg import cmap_lookup, status
from coroproc.engineprocs.cfg import exec_msgs as X
from coroproc.engineprocs.cfg.key_rotation import KeyRotation
from coroproc.engineprocs.cfg.reload_rules import notice_line, readonly_changes
from coroproc.engineprocs.cfg.shutdown import ShutdownVote
from coroproc.engineprocs.cfg.supervisor_ask import ask_supervisor
from coroproc.ipc import cfg_structs as S
from coroproc.ipc.cserror import (
    CS_ERR_FAILED_OPERATION,
    CS_ERR_INVALID_PARAM,
    CS_ERR_LIBRARY,
    CS_ERR_NOT_EXIST,
    CS_ERR_NOT_SUPPORTED,
    CS_ERR_TRY_AGAIN,
    CS_OK,
)

DEFAULT_SHUTDOWN_TIMEOUT_MS = 5000          # cfg.c DEFAULT_SHUTDOWN_TIMEOUT
SUPERVISOR_REPLY_TIMEOUT_MS = 30000         # a reload re-reads files: allow slow disks
LINK_STATE_REFRESH_MS = 5000                # how stale the link-process view may get


class CfgConn:
    """Per-client state: the token that stands for the connection in exec messages."""
    __slots__ = ("token",)

    def __init__(self, token: int):
        self.token = token


class CfgEngine(Engine):
    name = "cfg"
    service_id = SERVICE_CFG
    ipc_service = "cfg"
    log_subsys = "CFG"
    flow_controlled_requests = frozenset({
        S.REQ_RINGSTATUSGET, S.REQ_RINGREENABLE, S.REQ_KILLNODE, S.REQ_TRYSHUTDOWN,
        S.REQ_REPLYTOSHUTDOWN, S.REQ_RELOAD_CONFIG, S.REQ_TRACKSTART, S.REQ_TRACKSTOP})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.config = ctx.config
        self._tokens = itertools.count(1)
        self._by_token: dict[int, object] = {}
        self._net_state: dict | None = None      # role -> counters of the last snapshot
        self._knet_peers: dict = {}              # link -> knet_peers of its link process
        self.rotation = KeyRotation(
            ctx, lambda phase: ctx.mcast(X.FN_CRYPTO_RECONFIG, X.pack_crypto_reconfig(phase),
                                         safe=True), self._ask_supervisor)
        self.vote = ShutdownVote(send_test=self._send_test, answer=self._answer_tryshutdown,
                                 go_down=self._send_shutdown, start_timer=ctx.timer_add,
                                 log=ctx.log)
        self.stats = {"killnode_sent": 0, "reload_requests": 0, "shutdowns_sent": 0,
                      "supervisor_timeouts": 0, "crypto_reconfig_ignored": 0}

    def start(self) -> None:
        self._refresh_links()

    def lib_handlers(self):
        return {S.REQ_RINGSTATUSGET: self._ringstatusget, S.REQ_RINGREENABLE: self._ringreenable,
                S.REQ_KILLNODE: self._killnode, S.REQ_TRYSHUTDOWN: self._tryshutdown,
                S.REQ_REPLYTOSHUTDOWN: self._replytoshutdown,
                S.REQ_GET_NODE_ADDRS: self._get_node_addrs, S.REQ_LOCAL_GET: self._local_get,
                S.REQ_RELOAD_CONFIG: self._reload_config,
                S.REQ_REOPEN_LOG_FILES: self._reopen_log_files,
                S.REQ_NODESTATUSGET: self._nodestatusget, S.REQ_TRACKSTART: self._trackstart,
                S.REQ_TRACKSTOP: self._trackstop}

    def exec_handlers(self):
        return {X.FN_RINGREENABLE: lambda sender, body: None, X.FN_KILLNODE: self._exec_killnode,
                X.FN_SHUTDOWN: self._exec_shutdown, X.FN_RELOAD_CONFIG: self._exec_reload,
                X.FN_CRYPTO_RECONFIG: self._exec_crypto_reconfig}

    # ---- connections ------------------------------------------------------------------
    def on_connect(self, conn):
        conn.context = CfgConn(next(self._tokens))
        self._by_token[conn.context.token] = conn
        return True

    def on_disconnect(self, conn):
        self.vote.forget(conn)
        if isinstance(conn.context, CfgConn):
            self._by_token.pop(conn.context.token, None)

    def _conn_of(self, token: int):
        conn = self._by_token.get(token)
        return conn if conn is not None and not conn.closed else None

    # ---- status -----------------------------------------------------------------------
    def _local_get(self, conn, body):
        return (S.RES_LOCAL_GET, CS_OK, S.pack_u32_res(self.ctx.nodeid))

    def _get_node_addrs(self, conn, body):
        nodeid = S.unpack_u32_req(body, "req_lib_cfg_get_node_addrs")
        addrs = status.node_addrs(self.config, nodeid or self.ctx.nodeid)
        return (S.RES_GET_NODE_ADDRS, CS_OK if addrs else CS_ERR_NOT_EXIST,
                S.pack_node_addrs(addrs))

    def _nodestatusget(self, conn, body):
        nodeid, version = S.unpack_nodestatus_req(body)
        self._refresh_links()
        if version != S.NODE_STATUS_V1:
            return (S.RES_NODESTATUSGET, CS_ERR_NOT_SUPPORTED, S.pack_node_status_version(0))
        if self.config is None:
            return (S.RES_NODESTATUSGET, CS_ERR_FAILED_OPERATION, S.pack_node_status_version(0))
        if self.config.transport == "knet":
            st = status.knet_node_status(self.config, nodeid, self._link_up,
                                         lambda link: self._knet_peers.get(link, {}))
        else:
            st = status.node_status(self.config, self.ctx.members, nodeid, self._link_up)
        return (S.RES_NODESTATUSGET, CS_OK, S.pack_node_status(st))

    def _ringstatusget(self, conn, body):
        self._refresh_links()
        return (S.RES_RINGSTATUSGET, CS_OK,
                S.pack_ring_status(status.ring_status(self.config, self._link_up)))

    def _ringreenable(self, conn, body):
        return (S.RES_RINGREENABLE, CS_ERR_NOT_SUPPORTED, b"")

    def _link_up(self, link: int) -> bool:
        """The node's network process for the link is alive (from the supervisor's last
        answer; before any answer: assume it is, as udpu's bound socket in Corosync)."""
        state = self._net_state
        if not state:
            return True
        return bool(state.get(f"net{link}", {}).get("alive", False))

    def _refresh_links(self) -> None:
        def got(counters: dict) -> None:
            children = (counters.get("supervisor") or {}).get("children") or {}
            self._net_state = {r: c for r, c in children.items() if r.startswith("net")}
            self._knet_peers = {
                int(role[3:]): c.get("knet_peers") or {} for role, c in counters.items()
                if role.startswith("net") and role[3:].isdigit() and isinstance(c, dict)}
        try:
            self.ctx.request_node_counters(got)
        except NotImplementedError:
            pass

    # ---- shutdown ---------------------------------------------------------------------
    def _trackstart(self, conn, body):
        self.vote.track_start(conn)
        return (S.RES_STATETRACKSTART, CS_OK, b"")

    def _trackstop(self, conn, body):
        self.vote.track_stop(conn)
        return (S.RES_STATETRACKSTOP, CS_OK, b"")

    def _tryshutdown(self, conn, body):
        flags = S.unpack_u32_req(body, "req_lib_cfg_tryshutdown")
        error = self.vote.try_shutdown(conn, flags, self._shutdown_timeout_ms())
        return None if error is None else (S.RES_TRYSHUTDOWN, error, b"")

    def _replytoshutdown(self, conn, body):
        response = S.unpack_u32_req(body, "req_lib_cfg_replytoshutdown")
        return (S.RES_REPLYTOSHUTDOWN, self.vote.reply(conn, response != 0), b"")

    def _shutdown_timeout_ms(self) -> int:
        """cmap's running value (as cfg.c), else the file's, else Corosync's default."""
        if SERVICE_CMAP in (self.ctx.node_engines or {}) and not self.ctx.replaying:
            value = cmap_lookup.get_uint32("cfg.shutdown_timeout", self.ctx.service_suffix)
            if value is not None:
                return value
        entry = (getattr(self.config, "keys", None) or {}).get("cfg.shutdown_timeout")
        try:
            return int(entry.value) if entry is not None else DEFAULT_SHUTDOWN_TIMEOUT_MS
        except ValueError:
            return DEFAULT_SHUTDOWN_TIMEOUT_MS

    def _send_test(self, conn, error: int, flags: int) -> None:
        if not conn.closed and not self.ctx.replaying:
            conn.send_event(S.RES_TESTSHUTDOWN, S.pack_u32_res(flags), error)

    def _answer_tryshutdown(self, conn, error: int) -> None:
        if not conn.closed:
            conn.send_response(S.RES_TRYSHUTDOWN, error, b"")

    def _send_shutdown(self) -> bool:
        sent = self.ctx.mcast(X.FN_SHUTDOWN, b"", safe=True)
        self.stats["shutdowns_sent"] += sent
        return sent

    def _exec_shutdown(self, sender: int, body) -> None:
        self.ctx.notice(f"Node {sender} was shut down by sysadmin")
        if sender == self.ctx.nodeid and not self.ctx.replaying:
            self._ask_supervisor("shutdown", {"reason": "cfg: shut down by sysadmin"},
                                 lambda ok, error: None)

    # ---- kill node --------------------------------------------------------------------
    def _killnode(self, conn, body):
        nodeid, length, value = S.unpack_killnode_req(body)
        if nodeid not in self.ctx.members:    # Corosync: runtime.members.N.status != joined
            return (S.RES_KILLNODE, CS_ERR_NOT_EXIST, b"")
        if not self.ctx.mcast(X.FN_KILLNODE, X.pack_killnode(nodeid, length, value), safe=True):
            return (S.RES_KILLNODE, CS_ERR_TRY_AGAIN, b"")
        self.stats["killnode_sent"] += 1
        return (S.RES_KILLNODE, CS_OK, b"")

    def _exec_killnode(self, sender: int, body) -> None:
        target, reason = X.unpack_killnode(body)
        self.ctx.debug(f"request to kill node {target} (us={self.ctx.nodeid})")
        if target == self.ctx.nodeid and not self.ctx.replaying:
            self.ctx.notice(f"Killed by node {sender} : {reason}")
            raise NodeFatal(f"node {target} killed by node {sender} through cfg "
                            f"(corosync-cfgtool -k): {reason}")

    # ---- reload and logs --------------------------------------------------------------
    def _reload_config(self, conn, body):
        msg = X.pack_source(self.ctx.nodeid, conn.context.token)
        if not self.ctx.mcast(X.FN_RELOAD_CONFIG, msg, safe=True):
            return (S.RES_RELOAD_CONFIG, CS_ERR_TRY_AGAIN, b"")
        self.stats["reload_requests"] += 1
        return None                           # answered when the message comes back

    def _exec_reload(self, sender: int, body) -> None:
        _source_node, token = X.unpack_source(body)
        self.ctx.notice(f"Config reload requested by node {sender}")
        if self.ctx.replaying:
            return
        self.rotation.reload_delivered()

        def done(ok: bool, error: str) -> None:
            if not ok:
                self.ctx.error(f"Unable to reload config file: {error}")
            conn = self._conn_of(token) if sender == self.ctx.nodeid else None
            if conn is not None:
                conn.send_response(S.RES_RELOAD_CONFIG, CS_OK if ok else CS_ERR_INVALID_PARAM)
        self._ask_supervisor("reload", {}, done, self._crypto_reply)

    def on_reload(self, config) -> None:
        old = getattr(self.config, "keys", None) or {}
        for key in readonly_changes(old, getattr(config, "keys", None) or {}):
            self.ctx.notice(notice_line(key))
        self.config = config

    def _reopen_log_files(self, conn, body):
        self.ctx.debug("Reopening logging files")

        def done(ok: bool, error: str) -> None:
            if not ok:
                self.ctx.warning(f"Unable to reopen log files: {error}")
            if not conn.closed:
                conn.send_response(S.RES_REOPEN_LOG_FILES, CS_OK if ok else CS_ERR_LIBRARY)
        self._ask_supervisor("reopen_logs", {}, done)     # the answer comes from done()

    def _exec_crypto_reconfig(self, sender: int, body) -> None:
        phase = X.unpack_crypto_reconfig(body)
        if self.ctx.replaying or getattr(self.config, "transport", "") != "knet":
            self.stats["crypto_reconfig_ignored"] += 1
            self.ctx.debug(f"Crypto reconfiguration phase {phase} from node {sender} "
                           f"ignored: no crypto on this transport")
            return
        self.rotation.on_phase(sender, phase)

    def _crypto_reply(self, reply: dict) -> None:
        key_id = reply.get("crypto_key_id")
        if reply.get("ok") and isinstance(key_id, int):
            self.rotation.key_loaded(key_id)

    def _ask_supervisor(self, op: str, args: dict, done, on_reply=None) -> None:
        def timed_out() -> None:
            self.stats["supervisor_timeouts"] += 1
        ask_supervisor(self.ctx, op, args, done, SUPERVISOR_REPLY_TIMEOUT_MS, timed_out,
                       on_reply)

    def on_confchg(self, conf) -> None:
        self.rotation.on_members()     # a member that left is no longer waited for

    def counters(self):
        return dict(self.stats, **self.rotation.stats, trackers=len(self.vote.trackers),
                    shutdown_vote_running=int(self.vote.requester is not None))
