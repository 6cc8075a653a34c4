"""coroproc.client — the Corosync client libraries in Python.

  errors.py      CsError and the cs_error_t numbers (re-exported from coroproc.ipc.cserror)
  base.py        what every handle shares: connect, request, dispatch flags, finalize
  cpg.py         Cpg: join/leave/mcast/membership/iteration, fragmentation and reassembly
  cmap.py        Cmap: typed get/set, delete, inc/dec, iteration, tracking
  quorum.py      Quorum (libquorum); votequorum.py: Votequorum (libvotequorum)
  cfg.py         Cfg (libcfg): status, kill node, shutdown, reload, addresses
  sam.py         Sam (libsam): health-checked, restarted applications
  aio.py         asyncio integration: fd reader and async event iterators

They speak libqb socket-mode IPC (coroproc.ipc.client) to coroproc's engines or to a
real Corosync started with `system { qb_ipc_type: socket }`. See docs/client.md.
"""

from coroproc.client.cmap import Cmap
from coroproc.client.cpg import Cpg
from coroproc.client.errors import CsError
from coroproc.client.quorum import Quorum
from coroproc.client.sam import Sam
from coroproc.client.votequorum import Votequorum
from coroproc.ipc.cserror import (
    CS_DISPATCH_ALL,
    CS_DISPATCH_BLOCKING,
    CS_DISPATCH_ONE,
    CS_DISPATCH_ONE_NONBLOCKING,
)

DISPATCH_ONE = CS_DISPATCH_ONE
DISPATCH_ALL = CS_DISPATCH_ALL
DISPATCH_BLOCKING = CS_DISPATCH_BLOCKING
DISPATCH_ONE_NONBLOCKING = CS_DISPATCH_ONE_NONBLOCKING

__all__ = [
    "DISPATCH_ALL",
    "DISPATCH_BLOCKING",
    "DISPATCH_ONE",
    "DISPATCH_ONE_NONBLOCKING",
    "Cmap",
    "Cpg",
    "CsError",
    "Quorum",
    "Sam",
    "Votequorum",
]
