"""CFG: node id and node addresses for libcfg clients (corosync-cpgtool, -cfgtool -a).

This engine answers the read-only calls of Corosync's exec/cfg.c today —
LOCAL_GET and GET_NODE_ADDRS, byte for byte — so tools such as corosync-cpgtool, which
open libcfg to print member addresses, work against coroproc. The administrative calls
(ring and node status, kill node, shutdown with client veto, cluster-wide reload, log
reopening, tracking) belong to the CFG work of the next issue; until then they are
answered CS_ERR_NOT_SUPPORTED with a log line naming the call, never silently.
"""
from __future__ import annotations

import socket
import struct

from coroproc.engineprocs.api import SERVICE_CFG, Engine

CS_OK = 1
CS_ERR_NOT_EXIST = 12
CS_ERR_NOT_SUPPORTED = 19
ADDRESS_BYTES = 16                 # TOTEMIP_ADDRLEN
INTERFACE_MAX = 8

# lib request ids (ipc_cfg.h) and their response ids (numbered differently)
REQ_RINGSTATUSGET, REQ_RINGREENABLE, REQ_KILLNODE, REQ_TRYSHUTDOWN = 0, 1, 2, 3
REQ_REPLYTOSHUTDOWN, REQ_GET_NODE_ADDRS, REQ_LOCAL_GET, REQ_RELOAD_CONFIG = 4, 5, 6, 7
REQ_REOPEN_LOG_FILES, REQ_NODESTATUSGET, REQ_TRACKSTART, REQ_TRACKSTOP = 8, 9, 10, 11
RES_GET_NODE_ADDRS = 11
RES_LOCAL_GET = 12
NOT_YET = {REQ_RINGSTATUSGET: (0, "ring status"), REQ_RINGREENABLE: (1, "ring re-enable"),
           REQ_KILLNODE: (8, "kill node"), REQ_TRYSHUTDOWN: (9, "try shutdown"),
           REQ_REPLYTOSHUTDOWN: (13, "reply to shutdown"),
           REQ_RELOAD_CONFIG: (14, "reload config"),
           REQ_REOPEN_LOG_FILES: (15, "reopen log files"),
           REQ_NODESTATUSGET: (16, "node status"), REQ_TRACKSTART: (2, "track start"),
           REQ_TRACKSTOP: (3, "track stop")}
_NODEID = struct.Struct("<I")
_ADDRS_HDR = struct.Struct("<II")       # family, num_addrs (plain u32s after the header)
_FAMILY = {4: socket.AF_INET, 16: socket.AF_INET6}


def pack_node_addrs(addresses: list[str]) -> bytes:
    """res_lib_cfg_get_node_addrs body: family of the first address, the count, then
    each address's raw bytes zero-padded to 16 (Corosync copies totem_ip_address.addr)."""
    raws = []
    for text in addresses:
        family = socket.AF_INET6 if ":" in text else socket.AF_INET
        raws.append((family, socket.inet_pton(family, text)))
    family = raws[0][0] if raws else 0
    return _ADDRS_HDR.pack(family, len(raws)) + b"".join(
        raw.ljust(ADDRESS_BYTES, b"\0") for _f, raw in raws)


class CfgEngine(Engine):
    name = "cfg"
    service_id = SERVICE_CFG
    ipc_service = "cfg"
    log_subsys = "CFG"
    flow_controlled_requests = frozenset({REQ_RINGSTATUSGET, REQ_RINGREENABLE, REQ_KILLNODE,
                                          REQ_TRYSHUTDOWN, REQ_REPLYTOSHUTDOWN,
                                          REQ_RELOAD_CONFIG, REQ_TRACKSTART, REQ_TRACKSTOP})

    def __init__(self, ctx):
        super().__init__(ctx)
        self.refused = 0

    def lib_handlers(self):
        handlers = {REQ_GET_NODE_ADDRS: self._get_node_addrs, REQ_LOCAL_GET: self._local_get}
        for req, (res, what) in NOT_YET.items():
            handlers[req] = self._not_yet(res, what)
        return handlers

    def _local_get(self, conn, body):
        return (RES_LOCAL_GET, CS_OK, _NODEID.pack(self.ctx.nodeid))

    def _get_node_addrs(self, conn, body):
        (nodeid,) = _NODEID.unpack_from(body, 0)
        if nodeid == 0:
            nodeid = self.ctx.nodeid
        config = self.ctx.config
        try:
            node = config.node(nodeid) if config is not None else None
        except KeyError:
            node = None
        if node is None or not node.addrs:
            return (RES_GET_NODE_ADDRS, CS_ERR_NOT_EXIST, _ADDRS_HDR.pack(0, 0))
        addresses = [node.addrs[link] for link in sorted(node.addrs)][:INTERFACE_MAX]
        return (RES_GET_NODE_ADDRS, CS_OK, pack_node_addrs(addresses))

    def _not_yet(self, response_id: int, what: str):
        def handler(conn, body):
            self.refused += 1
            self.ctx.warning(f"libcfg {what} from pid {conn.creds.pid} is not supported yet")
            return (response_id, CS_ERR_NOT_SUPPORTED, b"")
        return handler

    def counters(self):
        return {"not_supported_requests": self.refused}
