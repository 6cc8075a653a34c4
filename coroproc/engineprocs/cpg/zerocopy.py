"""CPG zero-copy sends (ZC_ALLOC / ZC_FREE / ZC_EXECUTE) as libcpg 3.1.x uses them.

This file owns the per-connection shared mappings behind cpg_zcb_alloc/free and
cpg_zcb_mcast_joined. libcpg creates /dev/shm/corosync_zerocopy-XXXXXX (or
/var/run/…), sends its path; the daemon opens it, unlinks it, maps it and writes a token
("server_address") into its header, which the client echoes in ZC_FREE / ZC_EXECUTE.
ZC_EXECUTE then multicasts the req_lib_cpg_mcast the client wrote into the mapping and
answers like a synchronous mcast (CS_OK, CS_ERR_TRY_AGAIN, CS_ERR_NOT_EXIST).

Mapping layout: coroipcs_zc_header {int map_size @0, u64 server_address @8} (16 bytes),
then req_lib_cpg_mcast {24-byte header, guarantee @24, msglen @32, message @40}.
Request bodies (after the 16-byte header): ZC_ALLOC {map_size u64 @0, path[128] @8};
ZC_FREE {map_size @0, server_address @8}; ZC_EXECUTE {server_address @0}.

Where we are stricter than Corosync (which maps whatever path a client names, as root,
and asserts on failure): the path must be a regular file named corosync_zerocopy-* in
/dev/shm, /run or /var/run, opened without following symlinks and owned by the client's
uid; a mapping is at most one IPC message plus headers; a connection holds at most
ZC_MAPPINGS_PER_CONN_MAX of them. A refused ZC_ALLOC is answered with an error (libcpg
ignores it) and the client's later ZC_EXECUTE gets CS_ERR_INVALID_PARAM.
"""
from __future__ import annotations

import mmap
import os
import stat
import struct

from coroproc.ipc.cserror import (CS_ERR_ACCESS, CS_ERR_INVALID_PARAM, CS_ERR_NO_MEMORY,
                                  CS_ERR_TRY_AGAIN, CS_OK)

from . import lib_msgs as lib
from .conn_state import MCAST_ANSWER, ZC_MAPPINGS_PER_CONN_MAX, CpgConn

ZC_HEADER_BYTES = 16
MCAST_REQ_HEADER_BYTES = 40
CPG_ZC_PATH_LEN = 128
ZC_DIRS = ("/dev/shm", "/run", "/var/run")
ZC_PREFIX = "corosync_zerocopy-"
_ALLOC = struct.Struct(f"<Q{CPG_ZC_PATH_LEN}s")
_FREE = struct.Struct("<QQ")
_EXECUTE = struct.Struct("<Q")
_MSGLEN = struct.Struct("<I")


class ZeroCopy:
    def __init__(self, requests):
        self.requests = requests
        self.engine = requests.engine
        self.ctx = requests.ctx
        self.stats = requests.stats
        self._next_token = 1

    def alloc(self, conn, body):
        cpd: CpgConn = conn.context
        if len(body) < _ALLOC.size:
            raise ValueError(f"mar_req_coroipcc_zc_alloc_t: body of {len(body)} bytes, "
                             f"expected {_ALLOC.size}")
        map_size, raw_path = _ALLOC.unpack_from(body, 0)
        path = raw_path.split(b"\0", 1)[0].decode("utf-8", "replace")
        error = self._check_alloc(cpd, conn, map_size, path)
        if error != CS_OK:
            self.stats["zc_refused"] += 1
            return (0, error, b"")
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            self.ctx.warning(f"zero-copy file {path} of pid {conn.creds.pid}: {exc}")
            self.stats["zc_refused"] += 1
            return (0, CS_ERR_ACCESS, b"")
        try:
            info = os.fstat(fd)
            owner_ok = conn.creds.uid in (0, info.st_uid)
            if not stat.S_ISREG(info.st_mode) or not owner_ok or info.st_size < map_size:
                self.ctx.warning(f"zero-copy file {path} refused: not a regular file of uid "
                                 f"{conn.creds.uid} with {map_size} bytes")
                self.stats["zc_refused"] += 1
                return (0, CS_ERR_ACCESS, b"")
            os.unlink(path)            # as Corosync: the mapping outlives the name
            mapping = mmap.mmap(fd, map_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            self.ctx.warning(f"zero-copy file {path} of pid {conn.creds.pid}: {exc}")
            self.stats["zc_refused"] += 1
            return (0, CS_ERR_ACCESS, b"")
        finally:
            os.close(fd)
        token = self._next_token
        self._next_token += 1
        struct.pack_into("<Q", mapping, 8, token)
        cpd.zc_maps[token] = mapping
        self.stats["zc_mappings"] += 1
        return (0, CS_OK, b"")

    def _check_alloc(self, cpd, conn, map_size: int, path: str) -> int:
        limit = self.engine.ipc_max_msg_bytes + ZC_HEADER_BYTES + MCAST_REQ_HEADER_BYTES
        if len(cpd.zc_maps) >= ZC_MAPPINGS_PER_CONN_MAX:
            self.ctx.warning(f"pid {conn.creds.pid}: more than {ZC_MAPPINGS_PER_CONN_MAX} "
                             "zero-copy buffers refused")
            return CS_ERR_NO_MEMORY
        if not ZC_HEADER_BYTES + MCAST_REQ_HEADER_BYTES <= map_size <= limit:
            self.ctx.warning(f"pid {conn.creds.pid}: zero-copy map_size {map_size} refused "
                             f"(allowed {ZC_HEADER_BYTES + MCAST_REQ_HEADER_BYTES}..{limit})")
            return CS_ERR_INVALID_PARAM
        directory, name = os.path.split(path)
        if directory not in ZC_DIRS or not name.startswith(ZC_PREFIX) or "/" in name:
            self.ctx.warning(f"pid {conn.creds.pid}: zero-copy path {path!r} refused "
                             f"(allowed: {ZC_PREFIX}* in {', '.join(ZC_DIRS)})")
            return CS_ERR_ACCESS
        return CS_OK

    def free(self, conn, body):
        cpd: CpgConn = conn.context
        if len(body) < _FREE.size:
            raise ValueError(f"mar_req_coroipcc_zc_free_t: body of {len(body)} bytes, "
                             f"expected {_FREE.size}")
        _map_size, token = _FREE.unpack_from(body, 0)
        mapping = cpd.zc_maps.pop(token, None)
        if mapping is not None:
            mapping.close()
        return (0, CS_OK, b"")

    def execute(self, conn, body):
        cpd: CpgConn = conn.context
        if len(body) < _EXECUTE.size:
            raise ValueError(f"mar_req_coroipcc_zc_execute_t: body of {len(body)} bytes, "
                             f"expected {_EXECUTE.size}")
        (token,) = _EXECUTE.unpack_from(body, 0)
        reply = lib.MESSAGE_RES_CPG_MCAST
        mapping = cpd.zc_maps.get(token)
        if mapping is None:
            return (reply, CS_ERR_INVALID_PARAM, b"")
        (msglen,) = _MSGLEN.unpack_from(mapping, ZC_HEADER_BYTES + 32)
        start = ZC_HEADER_BYTES + MCAST_REQ_HEADER_BYTES
        if start + msglen > len(mapping):
            return (reply, CS_ERR_INVALID_PARAM, b"")
        error = MCAST_ANSWER[cpd.state]
        if error != CS_OK:
            return (reply, error, b"")
        message = mapping[start:start + msglen]
        if not self.requests.send_mcast(cpd, message):
            return (reply, CS_ERR_TRY_AGAIN, b"")
        return (reply, CS_OK, b"")

    def free_all(self, cpd: CpgConn) -> None:
        for mapping in cpd.zc_maps.values():
            mapping.close()
        cpd.zc_maps.clear()
