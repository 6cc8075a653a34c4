"""The one CFG call corosync-cpgtool needs: a node's link addresses (GET_NODE_ADDRS).

This file owns a minimal libcfg connection for coroproc-cpgtool: connect to the `cfg`
service and ask corosync_cfg_get_node_addrs(nodeid). Layout (include/corosync/ipc_cfg.h,
not aligned(8) after the header): request {hdr, 16 u32 nodeid} = 24 bytes; reply {hdr,
24 u32 family, 28 u32 num_addrs, 32 addrs[num_addrs][16]} where each address is the raw
in_addr/in6_addr of totem_ip_address, zero-padded to 16 bytes. A full CFG client
belongs in coroproc.client when one is written; this stays private to the tool.
"""

import socket
import struct

from coroproc.client.base import ServiceHandle
from coroproc.ipc.cserror import CS_ERR_MESSAGE_ERROR, CsError

REQ_GET_NODE_ADDRS = 5
ADDRESS_BYTES = 16         # TOTEMIP_ADDRLEN = sizeof(struct in6_addr)
INTERFACE_MAX = 8          # the most addresses libcfg's callers ask for
_REQ = struct.Struct("<I4x")
_RES = struct.Struct("<II")
_FAMILIES = {socket.AF_INET: (socket.AF_INET, 4), socket.AF_INET6: (socket.AF_INET6, 16)}


class CfgAddrs(ServiceHandle):
    service = "cfg"
    prefix = "corosync_cfg"

    def node_addrs(self, nodeid: int, addrs_max: int = INTERFACE_MAX) -> list:
        """Addresses as text; None for an all-zero slot (cpgtool skips those but still
        counts them when deciding where to put separating spaces)."""
        call = f"corosync_cfg_get_node_addrs({nodeid})"
        _, body = self._request(call, REQ_GET_NODE_ADDRS, _REQ.pack(nodeid))
        if len(body) < _RES.size:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"reply body of {len(body)} bytes, "
                          f"at least {_RES.size} expected")
        family, count = _RES.unpack_from(body, 0)
        if len(body) < _RES.size + count * ADDRESS_BYTES:
            raise CsError(CS_ERR_MESSAGE_ERROR, call, f"num_addrs={count} does not fit a "
                          f"body of {len(body)} bytes")
        af, size = _FAMILIES.get(family, (None, 0))
        out = []
        for i in range(min(count, addrs_max)):
            raw = body[_RES.size + i * ADDRESS_BYTES:_RES.size + (i + 1) * ADDRESS_BYTES]
            out.append(socket.inet_ntop(af, raw[:size]) if af and any(raw) else None)
        return out
