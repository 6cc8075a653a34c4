"""Python libcfg: node administration and status over libqb socket IPC.

This file owns the client side of CFG as libcfg 3.1.7 behaves (lib/cfg.c): local node id,
node addresses, link/ring and node status, kill node, cluster-wide reload, log reopening,
and try-shutdown with its callback. Every call answers like the C function; errors raise
CsError with the cs_error_t libcfg would return.

The shutdown callback runs from dispatch(): callback(cfg, flags) after trackstart(), when
another client asks the node to shut down; answer with replyto_shutdown(YES/NO).
try_shutdown() blocks until the node decided (up to cfg.shutdown_timeout when trackers
are asked), as corosync_cfg_try_shutdown does.
"""

import socket

from coroproc.client.base import ServiceHandle
from coroproc.ipc import cfg_structs as S
from coroproc.ipc.cfg_structs import (  # re-exported for users of this module
    NODE_STATUS_V1,
    SHUTDOWN_FLAG_IMMEDIATE,
    SHUTDOWN_FLAG_REGARDLESS,
    SHUTDOWN_FLAG_REQUEST,
    SHUTDOWN_REPLY_NO,
    SHUTDOWN_REPLY_YES,
    LinkStatus,
    NodeStatus,
)
from coroproc.ipc.cserror import (
    CS_ERR_INVALID_PARAM,
    CS_ERR_LIBRARY,
    CS_ERR_NOT_SUPPORTED,
    CsError,
)
from coroproc.ipc.mar import StructError

__all__ = ["NODE_STATUS_V1", "SHUTDOWN_FLAG_IMMEDIATE", "SHUTDOWN_FLAG_REGARDLESS",
           "SHUTDOWN_FLAG_REQUEST", "SHUTDOWN_REPLY_NO", "SHUTDOWN_REPLY_YES", "Cfg",
           "LinkStatus", "NodeStatus"]

_AF_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}


class Cfg(ServiceHandle):
    service = "cfg"
    prefix = "corosync_cfg"

    def __init__(self, shutdown_callback=None, suffix: str = "", context=None):
        """corosync_cfg_initialize: shutdown_callback(cfg, flags) or None."""
        super().__init__(suffix=suffix, context=context)
        self.shutdown_callback = shutdown_callback

    # ---- status -----------------------------------------------------------------------
    def local_get(self) -> int:
        call = "corosync_cfg_local_get"
        _, body = self._request(call, S.REQ_LOCAL_GET)
        return self._decode(call, lambda b: S.unpack_u32_res(b, "res_lib_cfg_local_get"), body)

    def node_addrs(self, nodeid: int, max_addrs: int = S.ADDRS_MAX) -> list[str]:
        """corosync_cfg_get_node_addrs: the node's link addresses as text (0 = this node).
        The reply's family applies to every address, as libcfg reads it."""
        call = f"corosync_cfg_get_node_addrs({nodeid})"
        _, body = self._request(call, S.REQ_GET_NODE_ADDRS, S.pack_u32_req(nodeid))
        family, raws = self._decode(call, S.unpack_node_addrs, body)
        size = _AF_SIZES.get(family)
        if size is None and raws:
            raise CsError(CS_ERR_NOT_SUPPORTED, call, f"address family {family}")
        return [socket.inet_ntop(family, raw[:size]) for raw in raws[:max_addrs]]

    def ring_status_get(self) -> list[tuple[str, str]]:
        """corosync_cfg_ring_status_get: (interface name, status) per link."""
        call = "corosync_cfg_ring_status_get"
        _, body = self._request(call, S.REQ_RINGSTATUSGET)
        return self._decode(call, S.unpack_ring_status, body)

    def node_status_get(self, nodeid: int, version: int = NODE_STATUS_V1) -> NodeStatus:
        call = f"corosync_cfg_node_status_get({nodeid})"
        if version != NODE_STATUS_V1:
            raise CsError(CS_ERR_INVALID_PARAM, call, f"version {version}: only "
                          f"{NODE_STATUS_V1} (CFG_NODE_STATUS_V1) exists")
        _, body = self._request(call, S.REQ_NODESTATUSGET, S.pack_nodestatus_req(nodeid, version))
        st = self._decode(call, S.unpack_node_status, body)
        if st.version != version:
            raise CsError(CS_ERR_NOT_SUPPORTED, call, f"the daemon answered version {st.version}")
        return st

    # ---- administration ---------------------------------------------------------------
    def kill_node(self, nodeid: int, reason: str) -> None:
        """Make node `nodeid` (a ring member) exit; the reason appears in its log."""
        call = f"corosync_cfg_kill_node({nodeid})"
        try:
            body = S.pack_killnode_req(nodeid, reason)
        except StructError as exc:
            raise CsError(CS_ERR_INVALID_PARAM, call, str(exc)) from None
        self._request(call, S.REQ_KILLNODE, body)

    def reload_config(self) -> None:
        """Every node re-reads corosync.conf; raises if this node's reload failed."""
        self._request("corosync_cfg_reload_config", S.REQ_RELOAD_CONFIG)

    def reopen_log_files(self) -> None:
        self._request("corosync_cfg_reopen_log_files", S.REQ_REOPEN_LOG_FILES)

    # ---- shutdown ---------------------------------------------------------------------
    def trackstart(self, track_flags: int = 0) -> None:
        self._request("corosync_cfg_trackstart", S.REQ_TRACKSTART,
                      S.pack_trackstart_req(track_flags))

    def trackstop(self) -> None:
        self._request("corosync_cfg_trackstop", S.REQ_TRACKSTOP)

    def try_shutdown(self, flags: int = SHUTDOWN_FLAG_REQUEST) -> None:
        """Blocks until decided: returns when the node goes down; CsError CS_ERR_BUSY when
        a tracker said no (or did not answer in time), CS_ERR_EXIST when a shutdown
        request is already waiting for votes."""
        self._request("corosync_cfg_try_shutdown", S.REQ_TRYSHUTDOWN, S.pack_u32_req(flags))

    def replyto_shutdown(self, response: int) -> None:
        """Answer a shutdown callback: SHUTDOWN_REPLY_YES or SHUTDOWN_REPLY_NO."""
        self._request("corosync_cfg_replyto_shutdown", S.REQ_REPLYTOSHUTDOWN,
                      S.pack_u32_req(response))

    def _on_event(self, call, msg_id, body) -> None:
        if msg_id != S.RES_TESTSHUTDOWN:
            raise CsError(CS_ERR_LIBRARY, call, f"unexpected event id {msg_id}")
        flags = self._decode(call, lambda b: S.unpack_u32_res(b, "res_lib_cfg_testshutdown"),
                             body)
        if self.shutdown_callback is not None:
            self.shutdown_callback(self, flags)

