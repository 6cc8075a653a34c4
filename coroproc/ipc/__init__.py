"""coroproc.ipc — libqb-compatible client IPC (socket mode), both ends.

Corosync's client libraries (libcpg, libcmap, ... via libqb 2.0) reach the engines
through this transport; it knows nothing of CPG/CMAP semantics. See docs/ipc.md.

  wire.py        byte layouts, IpcProtocolError, validators for peer input
  names.py       abstract socket addresses and /dev/shm connection file names
  control.py     the 24-byte shared control file (counters, flow-control flag)
  limits.py      the AF_UNIX datagram size probe
  connection.py  one server-side connection: files, sockets, bounded queues
  server.py      IpcServer: listen, handshake, non-blocking dispatch
  client.py      IpcClient: the Python client
"""

from coroproc.ipc.client import IpcClient, IpcDisconnected, IpcRefused, IpcTryAgain
from coroproc.ipc.connection import Credentials, IpcConnection
from coroproc.ipc.server import IpcHandler, IpcServer
from coroproc.ipc.wire import IpcProtocolError

__all__ = [
           "Credentials",
           "IpcClient",
           "IpcConnection",
           "IpcDisconnected",
           "IpcHandler",
           "IpcProtocolError",
           "IpcRefused",
           "IpcServer",
           "IpcTryAgain",
]
