"""A Python libqb IPC client in socket mode: connect, request/response, events.

This file owns the client end of the protocol described in coroproc/ipc/server.py
and docs/ipc.md, compatible with a stock libqb 2.0 server started with
QB_IPC_SOCKET (and with coroproc's IpcServer). It refuses SHM-mode servers with a
clear error: SHM mode needs process-shared semaphores at fixed offsets.

Like libqb's client, calls block with an optional timeout and watch the setup socket
for liveness while they wait, so a dead server is reported as IpcDisconnected
rather than a hang. `fileno()` is the event socket, for the caller's poll loop.
"""

import errno
import os
import select
import socket
import struct

from coroproc.ipc import names, wire
from coroproc.ipc.control import ControlFile
from coroproc.ipc.limits import set_buffer_sizes

DEFAULT_MAX_MSG_BYTES = 1024 * 1024  # what corosync's libraries ask for
_UCRED = struct.Struct("3i")


class IpcDisconnected(ConnectionError):
    """The server closed the connection (or was never reachable)."""


class IpcTryAgain(BlockingIOError):
    """The server has flow control on: do not send now (libqb returns -EAGAIN)."""


class IpcRefused(ConnectionRefusedError):
    """The server answered the handshake with an error (-EACCES, -EAGAIN, ...)."""

    def __init__(self, service, error):
        self.error = error
        super().__init__(-error, f"IPC service {service!r} refused the connection: "
                                 f"{os.strerror(-error)} ({error})")


def _wait(fds_events, timeout_ms):
    poller = select.poll()
    for fd, ev in fds_events:
        poller.register(fd, ev)
    return dict(poller.poll(timeout_ms))


class IpcClient:
    def __init__(self, service: str, *, suffix: str = "",
                 max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES, timeout_ms: int = 10000,
                 fc_enable_max: int = 1):
        if fc_enable_max not in (1, 2):
            raise ValueError(f"fc_enable_max={fc_enable_max}: allowed 1 or 2 (libqb)")
        self.name = names.service_name(service, suffix)
        self.fc_enable_max = fc_enable_max
        self._setup = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._request = self._event = self._control = None
        try:
            self._handshake(max_msg_bytes, timeout_ms)
        except BaseException:
            self.close()
            raise

    # ---- setup -------------------------------------------------------------------------

    def _handshake(self, max_msg_bytes, timeout_ms):
        try:
            self._setup.connect(names.abstract_address(self.name))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise IpcDisconnected(f"no IPC service {self.name!r} is listening "
                                  f"(@{self.name}): {exc.strerror}") from None
        self._setup.settimeout(timeout_ms / 1000 if timeout_ms >= 0 else None)
        self._setup.sendall(wire.pack_connection_request(
            max(max_msg_bytes, wire.CONNECTION_RESPONSE.size)))
        answer = bytearray()
        while len(answer) < wire.CONNECTION_RESPONSE.size:
            try:
                chunk = self._setup.recv(wire.CONNECTION_RESPONSE.size - len(answer))
            except TimeoutError:
                raise TimeoutError(f"IPC service {self.name!r} did not answer the handshake "
                                   f"within {timeout_ms} ms") from None
            if not chunk:
                raise IpcDisconnected(f"IPC service {self.name!r} closed the connection "
                                      f"during the handshake")
            answer += chunk
        self._setup.setblocking(False)
        pid, uid, gid = _UCRED.unpack(self._setup.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        self.server_pid, self.server_uid, self.server_gid = pid, uid, gid
        fields = wire.parse_connection_response(bytes(answer), f"IPC service {self.name!r}")
        if fields["error"] != 0:
            raise IpcRefused(self.name, fields["error"])
        if fields["connection_type"] != wire.IPC_TYPE_SOCKET:
            raise wire.IpcProtocolError(
                f"IPC service {self.name!r} chose SHM mode; this client speaks socket mode "
                f"only (start the server with QB_IPC_SOCKET / qb_ipc_type: socket)")
        self.max_msg_bytes = fields["max_msg_bytes"]
        self._control = ControlFile.open(fields["request"])
        base = fields["response"]
        self._request = self._channel(base, names.CLIENT_RESPONSE, names.SERVER_REQUEST)
        self._event = self._channel(base, names.CLIENT_EVENT, names.SERVER_EVENT_TX)
        self._recv_buf = bytearray(self.max_msg_bytes + 1)

    def _channel(self, base, local, remote):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                             | socket.SOCK_CLOEXEC)
        try:
            sock.bind(names.channel_address(base, local))
            sock.connect(names.channel_address(base, remote))
            set_buffer_sizes(sock, self.max_msg_bytes)
        except OSError:
            sock.close()
            raise
        return sock

    # ---- public API --------------------------------------------------------------------

    def fileno(self) -> int:
        """The event socket: readable when an event is waiting."""
        return self._event.fileno()

    @property
    def flow_control(self) -> int:
        return self._control.flow_control()

    def send(self, msg_id: int, payload: bytes = b"") -> None:
        """Send one request without waiting for an answer (e.g. CPG MCAST)."""
        message = wire.pack_request(msg_id, payload)
        if len(message) > self.max_msg_bytes:
            raise ValueError(f"request of {len(message)} bytes exceeds the negotiated "
                             f"maximum {self.max_msg_bytes}")
        fc = self._control.flow_control()
        if 0 < fc <= self.fc_enable_max:
            raise IpcTryAgain(errno.EAGAIN, f"IPC service {self.name!r} has flow control on")
        try:
            self._request.send(message)
        except BlockingIOError:
            # As libqb's client: the server is not draining its request socket; the
            # caller retries later (corosync's libraries loop on CS_ERR_TRY_AGAIN).
            raise IpcTryAgain(errno.EAGAIN, f"IPC service {self.name!r}: request queue "
                                            f"full") from None
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:
                # the kernel caps a unix datagram at the socket buffer (net.core.wmem_max)
                raise ValueError(f"request of {len(message)} bytes is larger than this "
                                 f"host's unix datagram limit (raise net.core.wmem_max)") from None
            raise IpcDisconnected(f"IPC service {self.name!r}: send failed: {exc}") from None
        self._control.add_sent("request", 1)

    def request(self, msg_id: int, payload: bytes = b"", timeout_ms: int = -1):
        """Send a request and wait for its response: (response_id, error, payload bytes)."""
        self.send(msg_id, payload)
        return self.recv_response(timeout_ms)

    def recv_response(self, timeout_ms: int = -1):
        return self._recv(self._request, "response", "response", timeout_ms)

    def recv_event(self, timeout_ms: int = 0):
        """The next event (id, error, payload) or None if none arrived within timeout_ms."""
        try:
            return self._recv(self._event, "event", "event", timeout_ms)
        except TimeoutError:
            return None

    def close(self) -> None:
        """Disconnect; removes the connection's files as libqb's client does."""
        for attr in ("_event", "_request"):
            sock = getattr(self, attr)
            if sock is not None:
                sock.close()
                setattr(self, attr, None)
        if self._control is not None:
            path = self._control.path
            self._control.close()
            self._control = None
            for remove in (os.unlink, lambda p: os.rmdir(names.connection_dir_of(p))):
                try:
                    remove(path)
                except OSError:
                    pass  # the server may have removed it first; both ends try
        if self._setup is not None:
            try:
                self._setup.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._setup.close()
            self._setup = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- internals ---------------------------------------------------------------------

    def _wait_ready(self, sock, events, timeout_ms):
        ready = _wait([(sock.fileno(), events), (self._setup.fileno(), select.POLLIN)],
                      timeout_ms)
        if ready.get(self._setup.fileno()):
            try:
                alive = self._setup.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                alive = b"?"
            except OSError:
                alive = b""
            if not alive:
                raise IpcDisconnected(f"IPC service {self.name!r} closed the connection")
        return bool(ready.get(sock.fileno()))

    def _recv(self, sock, channel, kind, timeout_ms):
        where = f"IPC service {self.name!r} {kind}"
        limit = self.max_msg_bytes
        view = memoryview(self._recv_buf)
        while True:
            try:
                length = sock.recv_into(view, limit + 1, socket.MSG_TRUNC)
                break
            except BlockingIOError:
                if not self._wait_ready(sock, select.POLLIN, timeout_ms) and timeout_ms >= 0:
                    raise TimeoutError(f"{where}: nothing within {timeout_ms} ms") from None
            except OSError as exc:
                raise IpcDisconnected(f"{where}: receive failed: {exc}") from None
        self._control.add_sent(channel, -1)
        if length > limit:
            raise wire.IpcProtocolError(f"{where}: {length} bytes exceed the maximum {limit}")
        msg_id, error, payload = wire.parse_response(view[:length], where, limit)
        return msg_id, error, bytes(payload)
