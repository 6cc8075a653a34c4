"""One bounded cmap read from the CFG engine: the running value of cfg.shutdown_timeout.

Corosync's cfg.c reads `cfg.shutdown_timeout` from icmap when a shutdown vote starts, so
an operator's `corosync-cmapctl -s cfg.shutdown_timeout u32 1000` applies to the next
vote. The CMAP engine is another process here: this file asks it over the node's own IPC
(service "cmap" + the node's suffix) with a short time limit, because the engine loop
must not wait long; any failure (no cmap engine, not answering, key missing, not a u32 —
icmap_get_uint32 is typed) returns None and the caller falls back to the config file.
"""
from __future__ import annotations

from coroproc.ipc import cmap_structs as C
from coroproc.ipc.client import IpcClient
from coroproc.ipc.cserror import CS_OK
from coroproc.ipc.wire import IpcProtocolError

LOOKUP_TIMEOUT_MS = 300        # the whole lookup blocks the CFG engine loop for at most ~2x this
GET_VALUE_BYTES = 8


def get_uint32(key: str, suffix: str, timeout_ms: int = LOOKUP_TIMEOUT_MS) -> int | None:
    try:
        client = IpcClient("cmap", suffix=suffix, timeout_ms=timeout_ms)
    except (OSError, IpcProtocolError):  # no cmap service here, not ready, or refusing
        return None
    try:
        _rid, error, body = client.request(C.REQ_GET, C.pack_req_get(key, GET_VALUE_BYTES),
                                           timeout_ms=timeout_ms)
        if error != CS_OK:
            return None
        value_type, value_len, value = C.unpack_res_get(body)
        if value_type != C.UINT32 or value is None or value_len != 4:
            return None
        return int.from_bytes(bytes(value[:4]), "little")
    except (OSError, ValueError, IpcProtocolError):  # timeout, gone, malformed: use the file
        return None
    finally:
        client.close()
