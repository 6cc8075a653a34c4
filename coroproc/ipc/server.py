"""The libqb socket-mode IPC server: listening socket, handshake and dispatch, non-blocking.

This file owns accepting clients of one IPC service (Corosync's `cpg`, `cmap`, ...)
exactly as libqb 2.0 clients expect, and driving established connections
(coroproc/ipc/connection.py) from one epoll set. The caller owns the loop: poll
`fileno()` (an epoll fd, so it nests in select/poll/zmq.Poller) and call
`process()` when it is readable, or call `process(timeout_ms)` directly.

Handshake (libqb lib/ipc_setup.c, ipc_socket.c):
  client connects to the padded abstract "\\0<service>" stream socket and sends the
  24-byte AUTHENTICATE request {id -1, size 24, max_msg_size}; the server reads the
  peer's pid/uid/gid (SO_PEERCRED), decides, creates the connection directory,
  control file and datagram sockets, and answers the 12 328-byte connection
  response {error 0 | -errno, type SOCKET, max_msg_size, paths}. The stream socket
  then stays open only for liveness: EOF or an error on it is a disconnect.

Admission: uid 0 or gid 0 is always admitted (as corosync does); anyone else only if
`authorize(creds)` says so. The handler's `on_connect(conn)` then has the last
word (True / False, or a negative errno such as -errno.EAGAIN "not ready yet").

No exception escapes `process()` because of what a client sent or did: protocol
errors and handler exceptions are logged and cost that one client its connection.
"""

import collections
import errno
import logging
import os
import select
import socket

from coroproc.ipc import names, wire
from coroproc.ipc.connection import ClientGone, Credentials, IpcConnection
from coroproc.ipc.limits import datagram_limit_bytes
from coroproc.ipc.mmsg import BatchSender

log = logging.getLogger("coroproc.ipc")

DEFAULT_MAX_MSG_BYTES = 1024 * 1024      # corosync's IPC_REQUEST_SIZE (8192 * 128)
MAX_MSG_BYTES_CEILING = 16 * 1024 * 1024  # a client may ask more; we never go beyond this
LISTEN_BACKLOG = 128                      # libqb SERVER_BACKLOG
PENDING_SETUPS_MAX = 64                   # half-open handshakes; the oldest is dropped
REQUESTS_PER_WAKEUP_MAX = 50              # libqb's high-priority batch (MAX_RECV_MSGS)
# per connection, beyond the kernel's queue: a client that stops reading is disconnected
# once either is reached (Corosync queues without a bound; a reading client is slowed
# long before, see connection.py EVENT_BACKLOG_ON). A receiver that only reads falls
# behind a 3-node flood of 64 B messages (~140k/s) by tens of thousands of events a
# second; at 65,536 the side-by-side's receivers were dropped in 2 of 6 such cells. The
# bytes bound is what holds: ~250 B per small deliver event, ~270k events.
EVENT_QUEUE_MAX = 1 << 20
EVENT_QUEUE_MAX_BYTES = 64 << 20
EVENT_CONNECT_RETRY_MS = 10               # client binds its event socket after the answer
DEFER_RETRY_MS = 1                        # a deferred request is offered again this soon

# on_request may return DEFER: "not now, offer me this request again" (e.g. no room to
# multicast it). The server keeps it and reads nothing more from that client until the
# handler takes it, so nothing is lost and the client's order is kept; the client's
# socket fills and its library sees EAGAIN, as with any server that stops reading.
DEFER = object()
SETUP_DRAIN_BYTES = 4096                  # bytes read per wakeup from a setup socket
_UCRED = __import__("struct").Struct("3i")


class IpcHandler:
    """Callbacks of one service; subclass and override what you need."""

    # Optional: read_fast(conn, buf, limit, avail) -> (taken, pending) or None. Offered a
    # readable connection first (one that sends only to its client: its response channel
    # is connected, nothing deferred or waiting to be sent): it may read and handle up to
    # `avail` requests itself, counting them off the control file, and leave one datagram
    # of `pending` bytes in buf for on_request (-1: a read failed, read again; 0: it read
    # until the socket was empty or took `avail`). None: it took nothing up, read as usual.
    read_fast = None

    def on_connect(self, conn: IpcConnection):
        """Admit (True) or refuse (False = -EACCES, or a negative errno) a client."""
        return True

    def on_request(self, conn: IpcConnection, msg_id: int, payload: memoryview):
        """Return (response_id, error, payload_bytes) to answer, or None for no answer.

        `payload` is valid only during this call (copy it to keep it)."""
        return

    def on_disconnect(self, conn: IpcConnection) -> None:
        pass


class _PendingSetup:
    __slots__ = ("data", "sock")

    def __init__(self, sock):
        self.sock = sock
        self.data = bytearray()


class IpcServer:
    def __init__(self, service: str, handler: IpcHandler, *, suffix: str = "",
                 max_msg_bytes: int = DEFAULT_MAX_MSG_BYTES,
                 event_queue_max: int = EVENT_QUEUE_MAX, authorize=None,
                 event_queue_max_bytes: int = EVENT_QUEUE_MAX_BYTES, event_queues=None):
        if not wire.RESPONSE_HEADER.size <= max_msg_bytes <= MAX_MSG_BYTES_CEILING:
            raise ValueError(f"max_msg_bytes={max_msg_bytes}: allowed "
                             f"{wire.RESPONSE_HEADER.size}..{MAX_MSG_BYTES_CEILING}")
        if event_queue_max < 1:
            raise ValueError(f"event_queue_max={event_queue_max}: must be at least 1")
        self.name = names.service_name(service, suffix)
        self.handler = handler
        self.max_msg_bytes = max_msg_bytes
        self.event_queue_max = event_queue_max
        self.event_queue_max_bytes = event_queue_max_bytes
        self.authorize = authorize or (lambda creds: False)
        # ipc/evqueue.EventQueues: connections queue events in its arrays (while slots last)
        self.event_queues = event_queues
        self.pid = os.getpid()
        self.connections: dict[int, IpcConnection] = {}  # setup fd -> connection
        self._pending: collections.OrderedDict[int, _PendingSetup] = collections.OrderedDict()
        self._by_fd: dict[int, tuple] = {}  # any registered fd -> (role, object)
        self._interest: dict[int, int] = {}
        self._retry: set[IpcConnection] = set()
        # Connections found dead while a service was sending to them outside our own
        # dispatch: disconnected at the end of process(), never re-entrantly.
        self._doomed: dict[IpcConnection, str] = {}
        self._deferred: set[IpcConnection] = set()   # connections holding a DEFER request
        self._recv_buf = bytearray(max_msg_bytes + 1)
        # events sent in runs (connection.py); without libc sendmmsg, one send each
        self.batch_sender = BatchSender() if BatchSender.available else None
        self.corked = False
        self._corked: dict[IpcConnection, None] = {}   # connections holding corked events
        self.stats = collections.Counter()
        limit = datagram_limit_bytes(max_msg_bytes)
        if limit < max_msg_bytes:
            log.warning("IPC %s: max_msg_bytes=%d but one AF_UNIX datagram may carry at most "
                        "%d bytes here (net.core.wmem_max); larger messages will fail",
                        self.name, max_msg_bytes, limit)
        self._epoll = select.epoll()
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                                     | socket.SOCK_CLOEXEC)
        try:
            self._listen.bind(names.abstract_address(self.name))
            self._listen.listen(LISTEN_BACKLOG)
        except OSError as exc:
            self._listen.close()
            self._epoll.close()
            raise OSError(exc.errno, f"IPC service {self.name!r}: cannot listen on abstract "
                                     f"socket @{self.name}: {exc.strerror} (another server "
                                     f"with this name running?)") from None
        self._register(self._listen.fileno(), ("listen", None), select.EPOLLIN)
        self._remove_stale_dirs()

    def _remove_stale_dirs(self) -> None:
        """A server killed with its clients leaves their connection directories behind
        (libqb's server would too); the next server of the same name removes them."""
        self.stats["stale_dirs_removed"] += names.remove_stale_connection_dirs(self.name)

    # ---- loop integration --------------------------------------------------------------

    def fileno(self) -> int:
        """An epoll fd that is readable whenever `process()` has work."""
        return self._epoll.fileno()

    def next_wakeup_ms(self):
        """Call `process()` again within this many ms even if nothing is readable (or None)."""
        if self._doomed:
            return 0
        if self._deferred:
            return DEFER_RETRY_MS
        return EVENT_CONNECT_RETRY_MS if self._retry else None

    def process(self, timeout_ms: int = 0) -> int:
        """Handle everything ready (waiting up to timeout_ms); returns events handled."""
        wake_ms = self.next_wakeup_ms()
        if wake_ms is not None and (timeout_ms < 0 or timeout_ms > wake_ms):
            timeout_ms = wake_ms
        ready = self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1)
        for fd, events in ready:
            entry = self._by_fd.get(fd)
            if entry is not None:  # an earlier event in this batch may have closed it
                self._dispatch(fd, events, *entry)
        for conn in list(self._retry):
            self._retry.discard(conn)
            self._guarded(conn, conn.flush_events)
        for conn in list(self._deferred):
            self._guarded(conn, lambda c=conn: self._retry_deferred(c))
        while self._doomed:
            conn, why = self._doomed.popitem()
            self._disconnect(conn, why)
        return len(ready)

    def cork(self) -> None:
        """Hold events (up to mmsg.BATCH_MAX per connection) until uncork(): an engine
        corks around a batch of deliveries so each client gets its events in one
        sendmmsg and wakes once for them."""
        self.corked = True

    def uncork(self) -> None:
        """Send what cork() held, connection by connection in the order they first held
        an event."""
        self.corked = False
        if not self._corked:
            return
        held, self._corked = self._corked, {}
        for conn in held:
            if not conn.closed:
                conn.send_held_events()

    def disconnect(self, conn: IpcConnection, why: str) -> None:
        """Drop one client on the next `process()` (safe inside a handler callback)."""
        if not conn.closed:
            self._defer_disconnect(conn, why)

    def close(self) -> None:
        """Disconnect every client (calling on_disconnect), stop listening, remove files."""
        for conn in list(self.connections.values()):
            self._disconnect(conn, "server closing")
        for pending in list(self._pending.values()):
            self._drop_pending(pending)
        if self._listen.fileno() >= 0:
            self._unregister(self._listen.fileno())
            self._listen.close()
        self._epoll.close()
        self._corked.clear()
        if self.batch_sender is not None:
            self.batch_sender.close()
            self.batch_sender = None

    # ---- dispatch ------------------------------------------------------------------------

    def _dispatch(self, fd, events, role, obj):
        if role == "listen":
            self._accept()
        elif role == "pending":
            self._read_setup(obj, events)
        elif role == "setup":
            self._guarded(obj, lambda: self._read_liveness(obj, events))
        elif role == "request":
            if events & select.EPOLLOUT:
                self._guarded(obj, obj.flush_responses)
            if events & select.EPOLLIN and not obj.closed:
                self._guarded(obj, lambda: self._read_requests(obj))
        elif role == "event":
            if events & select.EPOLLERR:
                self._guarded(obj, lambda: _raise_socket_error(obj.event_sock, "event"))
            self._guarded(obj, obj.flush_events)

    def _guarded(self, conn, action):
        """Run an action for one connection; any failure costs only that connection."""
        if conn.closed:
            return
        try:
            action()
        except ClientGone as exc:
            self._disconnect(conn, str(exc))
        except wire.IpcProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("IPC %s: client pid %d broke the protocol, disconnecting: %s",
                        self.name, conn.creds.pid, exc)
            self._disconnect(conn, "protocol error")
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("IPC %s: error while serving client pid %d; disconnecting it",
                          self.name, conn.creds.pid)
            self._disconnect(conn, "server-side error")

    # ---- handshake ----------------------------------------------------------------------

    def _accept(self):
        for _ in range(LISTEN_BACKLOG):
            try:
                sock, _addr = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: leave it in the backlog
                log.error("IPC %s: accept failed: %s", self.name, exc)
                return
            sock.setblocking(False)
            if len(self._pending) >= PENDING_SETUPS_MAX:
                _fd, oldest = next(iter(self._pending.items()))
                self.stats["pending_evicted"] += 1
                self._drop_pending(oldest)
            pending = _PendingSetup(sock)
            self._pending[sock.fileno()] = pending
            self._register(sock.fileno(), ("pending", pending), select.EPOLLIN)

    def _drop_pending(self, pending):
        fd = pending.sock.fileno()
        self._pending.pop(fd, None)
        self._unregister(fd)
        pending.sock.close()

    def _read_setup(self, pending, events):
        want = wire.CONNECTION_REQUEST.size - len(pending.data)
        try:
            chunk = pending.sock.recv(want)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.stats["setup_aborted"] += 1
            self._drop_pending(pending)
            return
        pending.data += chunk
        if len(pending.data) < wire.CONNECTION_REQUEST.size:
            return
        fd = pending.sock.fileno()
        self._pending.pop(fd)
        self._unregister(fd)
        where = f"IPC {self.name} setup fd {fd}"
        try:
            client_max = wire.parse_connection_request(bytes(pending.data), where)
        except wire.IpcProtocolError as exc:
            self.stats["protocol_errors"] += 1
            log.warning("%s", exc)
            pending.sock.close()
            return
        self._admit(pending.sock, client_max)

    def _admit(self, sock, client_max):
        pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                      _UCRED.size))
        creds = Credentials(pid, uid, gid)
        max_msg = min(max(client_max, self.max_msg_bytes), MAX_MSG_BYTES_CEILING)
        conn = IpcConnection(self, sock, creds, max_msg, self.event_queue_max,
                             self.event_queue_max_bytes)
        error = self._admission(conn)
        fields = {}
        if error == 0:
            try:
                fields = conn.create_channels(self.name, self.pid)
            except OSError as exc:
                log.error("IPC %s: cannot create channels for pid %d: %s", self.name, pid, exc)
                error = -(exc.errno or errno.EIO)
        answer = wire.pack_connection_response(error, max_msg_bytes=max_msg if error == 0 else 0,
                                               connection=id(conn) if error == 0 else 0, **fields)
        try:
            sent = sock.send(answer)
        except OSError:
            sent = -1
        if error != 0 or sent != len(answer):
            # A fresh unix stream socket takes 12 KiB at once; a short write means the
            # client is already gone or misbehaving.
            self.stats["refused" if error else "setup_aborted"] += 1
            conn.release()
            return
        self.connections[sock.fileno()] = conn
        self.stats["connected"] += 1
        self._register(sock.fileno(), ("setup", conn), select.EPOLLIN)
        self._register(conn.request_sock.fileno(), ("request", conn), select.EPOLLIN)
        self._register(conn.event_sock.fileno(), ("event", conn), 0)
        if conn.events_queued:
            self._retry_later(conn)  # queued by on_connect; the client binds its socket next

    def _admission(self, conn) -> int:
        creds = conn.creds
        try:
            if not (creds.uid == 0 or creds.gid == 0 or self.authorize(creds)):
                return -errno.EACCES
            verdict = self.handler.on_connect(conn)
        except Exception:
            log.exception("IPC %s: admission callback failed for %r", self.name, creds)
            return -errno.EIO
        if isinstance(verdict, bool) or verdict is None:
            return 0 if verdict in (True, None) else -errno.EACCES
        if isinstance(verdict, int) and verdict <= 0:
            return verdict
        log.error("IPC %s: on_connect returned %r; expected bool or a negative errno",
                  self.name, verdict)
        return -errno.EIO

    # ---- established connections -------------------------------------------------------

    def _read_liveness(self, conn, events):
        # Socket-mode clients never write on the setup socket after the handshake, so
        # readable means EOF (disconnect) or stray bytes (discarded).
        try:
            data = conn.setup_sock.recv(SETUP_DRAIN_BYTES)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError as exc:
            raise ClientGone(f"setup socket error: {exc}") from None
        if data == b"" or (data is None and events & (select.EPOLLHUP | select.EPOLLERR)):
            raise ClientGone("client closed its setup socket")

    def request_buffer(self, limit: int) -> bytearray:
        """The buffer requests are read into, at least limit + 1 bytes (a handler's own
        jitted loop reads into it too, see read_pending)."""
        if len(self._recv_buf) < limit + 1:
            self._recv_buf = bytearray(limit + 1)
        return self._recv_buf

    def offers_fast_reads(self, conn) -> bool:
        """May a handler read this connection's requests itself (read_fast, or its own
        loop): only the client can send on its request socket (response channel
        connected) and nothing is deferred, waiting to be sent, or doomed."""
        return (conn._response_connected and conn.deferred is None
                and not conn.wants_response_out and not conn.waits_for_event_socket
                and not conn.closed and conn not in self._doomed)

    def read_pending(self, conn, length: int) -> None:
        """A request that the handler's own loop read into request_buffer() and left for
        the Python path: handle it as _read_requests would have (only it: if more wait,
        the socket stays readable)."""
        self._guarded(conn, lambda: self._handle_requests(conn, 1, length))

    def _read_requests(self, conn):
        limit = conn.max_msg_bytes
        self.request_buffer(limit)
        control = conn.control
        # libqb's batch (ipcs.c _request_q_len_get): the requests the client counted into
        # request.sent, at least one per wake-up, at most REQUESTS_PER_WAKEUP_MAX. Reading
        # on until EAGAIN would cost a failing recv on every wake-up of a client that has
        # one request in flight; one left unread keeps the socket readable (level-triggered).
        avail = min(max(control.sent("request"), 1), REQUESTS_PER_WAKEUP_MAX)
        pending = 0
        fast = self.handler.read_fast
        if fast is not None and self.offers_fast_reads(conn):
            result = fast(conn, self._recv_buf, limit, avail)
            if result is not None:
                taken_fast, pending = result
                # nothing pending: it read until the socket was empty or avail was taken
                avail = max(avail - taken_fast, 1) if pending else 0
        self._handle_requests(conn, avail, pending)

    def _handle_requests(self, conn, avail: int, pending: int) -> None:
        """Up to avail requests in Python; the first is already in the buffer when
        pending (its length) is not 0."""
        limit = conn.max_msg_bytes
        view = memoryview(self._recv_buf)
        sock, control = conn.request_sock, conn.control
        taken = 0
        try:
            for _ in range(avail):
                if conn.closed or conn.wants_response_out or conn in self._doomed:
                    return  # backpressure: the client must read its responses first
                if conn.deferred is not None:
                    return  # its earlier request waits; its order must be kept
                if pending > 0:     # read by read_fast, from the connected client
                    length, pending = pending, 0
                else:
                    pending = 0
                    try:
                        length, source = sock.recvfrom_into(view, limit + 1, socket.MSG_TRUNC)
                    except (BlockingIOError, InterruptedError):
                        return
                    except OSError as exc:
                        raise ClientGone(f"request socket error: {exc}") from None
                    if source != conn.client_response_address:
                        # Abstract sockets have no permissions; only the client's own
                        # response socket may talk on this channel (the kernel enforces
                        # it once connected).
                        self.stats["foreign_datagrams"] += 1
                        continue
                taken += 1
                msg_id, payload = self._parse_request(conn, view, length, limit)
                if msg_id == wire.MSG_DISCONNECT:
                    raise ClientGone("client sent QB_IPC_MSG_DISCONNECT")
                conn.stats["requests"] += 1
                if conn.waits_for_event_socket:
                    self._retry.add(conn)  # the client is fully set up once it sends
                reply = self.handler.on_request(conn, msg_id, payload)
                if reply is DEFER:
                    conn.deferred = (msg_id, bytes(payload))
                    conn.stats["deferred"] += 1
                    self._deferred.add(conn)
                    self._update_interest(conn)     # stop reading until it is taken
                    return
                del payload
                if reply is not None and not conn.closed:
                    resp_id, error, body = reply
                    conn.send_response(resp_id, error, body)
        finally:
            if taken and not conn.closed:
                control.add_sent("request", -taken)

    def _parse_request(self, conn, view, length: int, limit: int):
        """(msg_id, payload view) of the datagram in view[:length], or IpcProtocolError."""
        if wire.REQUEST_HEADER.size <= length <= limit:
            msg_id, size = wire.REQUEST_HEADER.unpack_from(view, 0)
            if size == length:
                return msg_id, view[wire.REQUEST_HEADER.size:length]
        where = f"IPC {self.name} client pid {conn.creds.pid}"
        if length > limit:
            raise wire.IpcProtocolError(f"{where}: request of {length} bytes exceeds the "
                                        f"negotiated maximum {limit}")
        return wire.parse_request(view[:length], where, limit)   # raises, saying what

    def _retry_deferred(self, conn):
        msg_id, payload = conn.deferred
        reply = self.handler.on_request(conn, msg_id, memoryview(payload))
        if reply is DEFER:
            return
        conn.deferred = None
        self._deferred.discard(conn)
        if reply is not None and not conn.closed:
            resp_id, error, body = reply
            conn.send_response(resp_id, error, body)
        self._update_interest(conn)
        self._read_requests(conn)

    def _disconnect(self, conn, why):
        self._doomed.pop(conn, None)
        self._deferred.discard(conn)
        if conn.closed:
            return
        log.debug("IPC %s: client pid %d disconnected: %s", self.name, conn.creds.pid, why)
        self.connections.pop(conn.setup_sock.fileno(), None)
        self._retry.discard(conn)
        for sock in (conn.setup_sock, conn.request_sock, conn.event_sock):
            self._unregister(sock.fileno())
        self.stats["disconnected"] += 1
        try:
            self.handler.on_disconnect(conn)
        except Exception:
            log.exception("IPC %s: on_disconnect failed for client pid %d", self.name,
                          conn.creds.pid)
        finally:
            conn.release()

    # ---- epoll bookkeeping (called by connections too) ----------------------------------

    def _defer_disconnect(self, conn, why):
        self._doomed.setdefault(conn, why)

    def _retry_later(self, conn):
        self._retry.add(conn)

    def _update_interest(self, conn):
        if conn.closed:
            return
        fd = conn.request_sock.fileno()
        want = ((select.EPOLLIN if conn.deferred is None else 0)
                | (select.EPOLLOUT if conn.wants_response_out else 0))
        self._modify(fd, want)
        self._modify(conn.event_sock.fileno(), select.EPOLLOUT if conn.wants_event_out else 0)

    def _register(self, fd, entry, mask):
        self._by_fd[fd] = entry
        self._interest[fd] = mask
        self._epoll.register(fd, mask)

    def _modify(self, fd, mask):
        if fd in self._interest and self._interest[fd] != mask:
            self._interest[fd] = mask
            self._epoll.modify(fd, mask)

    def _unregister(self, fd):
        if self._by_fd.pop(fd, None) is not None:
            self._interest.pop(fd, None)
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass


def _raise_socket_error(sock, channel):
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reading clears it
    raise ClientGone(f"{channel} socket error: {os.strerror(code)}")


def serve_forever(server: IpcServer, stop=lambda: False, timeout_ms: int = 1000) -> None:
    """A minimal loop for tools and tests: process until stop() is true."""
    while not stop():
        server.process(timeout_ms)
