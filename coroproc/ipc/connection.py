"""One established libqb socket-mode connection, server side: its files, sockets and queues.

This file owns what exists per client after the handshake: the /dev/shm connection
directory and control file, the two datagram sockets the server binds (request and
event-tx), the connect-on-first-send to the client's sockets, and the bounded
outgoing queues. It never blocks: a send that would block is queued, and the server
(coroproc/ipc/server.py) asks for EPOLLOUT on that socket until the queue drains.

Why the queues look the way they do:
* Events: a bounded deque per connection (`event_queue_max` messages and
  `event_queue_max_bytes`). The kernel already holds net.unix.max_dgram_qlen datagrams
  (10 by default) per receiving socket; beyond that `send_event` queues here and returns
  False once the deque is full, so a client that never reads costs a bounded amount of
  memory (Corosync queues without a bound). A client whose queue is long but that does
  read — a sender flooding faster than it takes its own deliveries — is slowed instead:
  above EVENT_BACKLOG_ON queued events its control file's flow-control flag goes to 2
  (libqb's QB_IPCS_RATE_OFF_2: cpg_mcast_joined answers CS_ERR_TRY_AGAIN, synchronous
  calls still go through, so nothing waits on itself), back below EVENT_BACKLOG_OFF the
  flag returns to what the service asked for.
* Responses: a client has one outstanding request per sync call, but a hostile one
  may pipeline requests and never read. While a response is queued the server stops
  reading that client's requests, so this queue never grows past one read batch.
"""

import collections
import errno
import logging
import os
import socket
import struct
import time

from coroproc.ipc import names
from coroproc.ipc.control import ControlFile
from coroproc.ipc.limits import set_buffer_sizes
from coroproc.ipc.mmsg import BATCH_MAX
from coroproc.ipc.wire import RESPONSE_HEADER, pack_response

EVENT_BACKLOG_ON = 1024      # queued events that make this client's mcasts TRY_AGAIN
EVENT_BACKLOG_OFF = 256      # ... until its queue is back down to this
EVENT_BACKLOG_FC_LEVEL = 2   # QB_IPCS_RATE_OFF_2: only fc_enable_max=2 calls (mcast) wait

log = logging.getLogger("coroproc.ipc")

# Errors on a datagram send that mean "try later", not "the client is gone".
_RETRY_LATER = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)
# Connecting to a client socket that is not bound yet (the client binds its event
# socket a moment after the handshake answer): keep the event queued and retry.
_NOT_YET_BOUND = (errno.ECONNREFUSED, errno.ENOENT)
# A client that has not bound its event socket this long after the first try never will:
# it is disconnected instead of being retried for ever (EVENT_CONNECT_RETRY_MS apart).
EVENT_BIND_GIVEUP_S = 5.0


class ClientGone(Exception):
    """The client's sockets are gone; the server disconnects the connection."""


class Credentials:
    __slots__ = ("gid", "pid", "uid")

    def __init__(self, pid: int, uid: int, gid: int):
        self.pid, self.uid, self.gid = pid, uid, gid

    def __repr__(self):
        return f"Credentials(pid={self.pid}, uid={self.uid}, gid={self.gid})"


def _dgram_socket(address: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
                         | socket.SOCK_CLOEXEC)
    try:
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class IpcConnection:
    """Handed to the handler callbacks; `context` is free for the service's per-client state."""

    def __init__(self, server, setup_sock: socket.socket, creds: Credentials,
                 max_msg_bytes: int, event_queue_max: int,
                 event_queue_max_bytes: int = 1 << 62):
        assert event_queue_max > 0 and event_queue_max_bytes > 0
        self.server = server
        self.creds = creds
        self.max_msg_bytes = max_msg_bytes
        self.event_queue_max = event_queue_max
        self.event_queue_max_bytes = event_queue_max_bytes
        self._events_bytes = 0
        self._backlogged = False     # EVENT_BACKLOG_ON reached, not yet back to _OFF
        self.context = None
        self.closed = False
        self.setup_sock = setup_sock
        self.request_sock = None
        self.event_sock = None
        self.control = None
        self.directory = None
        self._response_connected = False
        self._event_connected = False
        self._event_unbound_since = None  # monotonic time of the first failed connect
        self._responses = collections.deque()
        self._events = collections.deque()
        # the last flush left events queued: EPOLLOUT sends them, a corked batch does not
        # try (one failing sendmmsg per held batch would be wasted)
        self._event_sock_full = False
        self.stats = collections.Counter()
        self.flow_control_level = 0
        self.deferred = None      # (msg_id, payload) the service asked to see again
        # the array-backed queue (evqueue.py) that replaces _events when the server has
        # event_queues and a slot was free; attached with the channels
        self.evq = None
        self._evq_sent_before_release = 0

    # ---- creation and teardown -------------------------------------------------------

    def create_channels(self, service: str, server_pid: int) -> dict:
        """Make the directory, control file and server sockets; fields for the answer."""
        prefix = names.connection_dir_prefix(server_pid, self.creds.pid, self.setup_sock.fileno())
        self.directory = _mkdtemp(prefix)
        os.chmod(self.directory, 0o770)
        try:
            os.chown(self.directory, self.creds.uid, self.creds.gid)
        except PermissionError:
            pass  # not root: the client must then share our uid, as with libqb
        description = names.description_of(self.directory)
        self.control = ControlFile.create(names.control_path(description, service),
                                          self.creds.uid, self.creds.gid)
        if self.flow_control_level:
            self.control.set_flow_control(self.flow_control_level)
        self._backlogged = False
        self.base = names.channel_base(description, service)
        self.request_sock = _dgram_socket(names.channel_address(self.base, names.SERVER_REQUEST))
        self.event_sock = _dgram_socket(names.channel_address(self.base, names.SERVER_EVENT_TX))
        for sock in (self.request_sock, self.event_sock):
            set_buffer_sizes(sock, self.max_msg_bytes)
        self.client_response_address = names.channel_address(self.base, names.CLIENT_RESPONSE)
        self.client_event_address = names.channel_address(self.base, names.CLIENT_EVENT)
        self._attach_event_queue()
        return {"request": self.control.path, "response": self.base}

    def _attach_event_queue(self) -> None:
        queues = getattr(self.server, "event_queues", None)
        if queues is None:
            return
        self.evq = queues.attach(self.event_queue_max, self.event_queue_max_bytes)
        if self.evq is None:
            return
        while self._events:     # queued by on_connect, before the channels existed
            message = self._events.popleft()
            self._events_bytes -= len(message)
            if not self.evq.push(message):
                self.stats["events_refused"] += 1

    def release(self) -> None:
        """Close sockets, unmap and remove the files; safe to call twice."""
        self.closed = True
        if self.evq is not None:
            self._evq_sent_before_release = self.evq.sent
            self.evq.detach()
            self.evq = None
        for sock in (self.request_sock, self.event_sock, self.setup_sock):
            if sock is not None:
                _close_quietly(sock)
        self._responses.clear()
        self._events.clear()
        self._events_bytes = 0
        if self.control is not None:
            self.control.close()
            _unlink_quietly(self.control.path)
        if self.directory is not None:
            try:
                os.rmdir(self.directory)
            except FileNotFoundError:
                pass  # the libqb client removes it too when it disconnects first
            except OSError as exc:
                log.warning("IPC: could not remove connection directory %s: %s",
                            self.directory, exc)

    # ---- public API for services -----------------------------------------------------

    def send_event(self, msg_id: int, payload: bytes, error: int = 0) -> bool:
        """Queue one event for the client; False when its queue is full (message dropped).

        While the server is corked (an engine handling a batch of deliveries) events
        collect here and go out together, BATCH_MAX per sendmmsg (mmsg.py), at the latest
        when the server is uncorked."""
        server = self.server
        if self.closed or self in server._doomed:
            return False
        message = self._message(msg_id, error, payload, "event")
        if self.evq is not None:
            return self._queue_event(message)
        if not self._events and self._event_connected and not server.corked:
            # the common uncorked case, kept short: nothing queued, send it now
            try:
                self.event_sock.send(message)
            except BlockingIOError:
                # the client's socket is full: queue it and send when it reads (EPOLLOUT),
                # not again now (a second failing send per event doubled this path's cost)
                self._events.append(message)
                self._events_bytes += len(message)
                self._event_sock_full = True
                server._update_interest(self)
                return True
            except OSError:
                pass     # too big or gone: the queue and flush below decide
            else:
                self.control.add_sent("event", 1)
                self.stats["events"] += 1
                return True
        if self._events or server.corked:
            if (len(self._events) >= self.event_queue_max
                    or self._events_bytes + len(message) > self.event_queue_max_bytes):
                self.stats["events_refused"] += 1
                return False
            self._events.append(message)
            self._events_bytes += len(message)
            self.check_backlog()
            if server.corked and not self._event_sock_full:
                if len(self._events) >= BATCH_MAX:
                    return self._flush_or_doom(self.flush_events)
                server._corked[self] = None
            return True
        self._events.append(message)
        self._events_bytes += len(message)
        return self._flush_or_doom(self.flush_events)

    def _queue_event(self, message: bytes) -> bool:
        """send_event through the array-backed queue: queued behind whatever an engine's
        kernel queued there, sent now unless corked or the client's socket is full."""
        if not self.evq.push(message):
            self.stats["events_refused"] += 1
            return False
        self.check_backlog()
        if self._event_sock_full and self._event_connected:
            return True                    # EPOLLOUT sends it
        if self.server.corked:
            self.server._corked[self] = None
            return True
        return self._flush_or_doom(self.flush_events)

    def check_backlog(self) -> None:
        """EVENT_BACKLOG_ON / _OFF, for either queue. (By count, not bytes: a client blocked
        in a send that its flag refuses does not read, so a flag raised by a few large
        events would never come down.)"""
        n = self.events_queued
        if not self._backlogged:
            if n >= EVENT_BACKLOG_ON:
                self._backlogged = True
                self.stats["event_backlog_flow_control"] += 1
                self._apply_flow_control()
        elif n <= EVENT_BACKLOG_OFF:
            self._backlogged = False
            self._apply_flow_control()

    def counters(self) -> dict:
        """This connection's counters (events sent through a kernel included)."""
        out = dict(self.stats)
        sent = self.evq.sent if self.evq is not None else self._evq_sent_before_release
        out["events"] = out.get("events", 0) + sent
        return out

    def send_response(self, msg_id: int, error: int, payload: bytes = b"") -> None:
        """Answer a request; normally done by returning a reply from on_request."""
        if self.closed or self in self.server._doomed:
            return
        self._responses.append(self._message(msg_id, error, payload, "response"))
        self._flush_or_doom(self.flush_responses)

    def send_held_events(self) -> None:
        """At uncork: send what the cork held (a dead client is marked for the server to
        disconnect at its next safe point, as for any send from a service)."""
        self._flush_or_doom(self.flush_events)

    def _flush_or_doom(self, flush) -> bool:
        # Services call us from anywhere (even while handling another client), so a
        # dead client is only marked here; the server disconnects it at a safe point.
        try:
            flush()
        except ClientGone as exc:
            self.server._defer_disconnect(self, str(exc))
            return False
        return True

    def set_flow_control(self, level: int) -> None:
        """0 lets clients send; 1 (or 2) makes libqb clients return EAGAIN before sending.

        May be called during admission, before the control file exists: it is applied
        when the channels are created."""
        self.flow_control_level = level
        self._apply_flow_control()

    def _apply_flow_control(self) -> None:
        """The flag the client sees: the service's level, raised while events back up."""
        if self.control is not None:
            self.control.set_flow_control(max(
                self.flow_control_level, EVENT_BACKLOG_FC_LEVEL if self._backlogged else 0))

    @property
    def events_queued(self) -> int:
        return self.evq.count if self.evq is not None else len(self._events)

    @property
    def responses_queued(self) -> int:
        return len(self._responses)

    def __repr__(self):
        return f"IpcConnection({self.creds!r}, dir={self.directory})"

    # ---- driven by the server ----------------------------------------------------------

    def _message(self, msg_id, error, payload, kind):
        size = RESPONSE_HEADER.size + len(payload)
        if size > self.max_msg_bytes:
            raise ValueError(
                f"IPC {kind} of {size} bytes exceeds this connection's negotiated maximum "
                f"{self.max_msg_bytes} (client pid {self.creds.pid})"
            )
        try:
            return RESPONSE_HEADER.pack(msg_id, size, error) + payload
        except struct.error:
            return pack_response(msg_id, error, payload)   # raises with the field named

    def flush_responses(self) -> None:
        """Send queued responses until done or the client's socket is full."""
        if not self._response_connected and self._responses:
            self._connect(self.request_sock, self.client_response_address, "response")
            self._response_connected = True
        while self._responses:
            if not self._send(self.request_sock, self._responses[0], "response"):
                break
            self._responses.popleft()
            self.stats["responses"] += 1
        self.server._update_interest(self)

    def flush_events(self) -> None:
        if not self.events_queued or self.closed or self.event_sock is None:
            return  # event_sock is None until the handshake (events from on_connect wait)
        if not self._event_connected:
            try:
                self._connect(self.event_sock, self.client_event_address, "event")
            except _NotYetBound:
                now = time.monotonic()
                if self._event_unbound_since is None:
                    self._event_unbound_since = now
                elif now - self._event_unbound_since > EVENT_BIND_GIVEUP_S:
                    self.server._defer_disconnect(
                        self, f"its event socket was not bound {EVENT_BIND_GIVEUP_S:g} s "
                        "after the handshake")
                    return
                self.server._retry_later(self)
                return
            self._event_connected = True
            if self.evq is not None:
                self.evq.connected(self.event_sock.fileno(), self.control.address("event"))
        if self.evq is not None:
            self._send_evq()
        else:
            self._send_queued_events()
        self.check_backlog()
        self.server._update_interest(self)

    def _send_evq(self) -> None:
        """Send the array-backed queue from its head until empty or the socket is full."""
        _sent, err = self.evq.flush()
        while err:
            if err in _RETRY_LATER:
                self._event_sock_full = True
                return
            if err != errno.EMSGSIZE:
                raise ClientGone(f"send on event channel failed: {os.strerror(err)}")
            self._dropped_too_big(self.evq.drop_head(), "event")
            _sent, err = self.evq.flush()
        self._event_sock_full = False

    def _send_queued_events(self) -> None:
        """Send from the head of the queue until it is empty or the client's socket is
        full: runs of events with one sendmmsg each, a lone event with a plain send."""
        events = self._events
        batch = self.server.batch_sender
        self._event_sock_full = True     # until the queue is empty (EPOLLOUT meanwhile)
        while events:
            if batch is not None and len(events) > 1:
                sent, err = batch.send(self.event_sock.fileno(), events)
                if sent:
                    for _ in range(sent):
                        self._events_bytes -= len(events.popleft())
                    self.control.add_sent("event", sent)
                    self.stats["events"] += sent
                    continue
                if err in _RETRY_LATER:
                    return
                # anything else (a message over the staging size, a gone client): the
                # plain send of that one message says what it is and what to do
            if not self._send(self.event_sock, events[0], "event"):
                return
            self._events_bytes -= len(events.popleft())
            self.stats["events"] += 1
        self._event_sock_full = False

    @property
    def wants_response_out(self) -> bool:
        return bool(self._responses)

    @property
    def wants_event_out(self) -> bool:
        return self._event_connected and bool(self.events_queued)

    @property
    def waits_for_event_socket(self) -> bool:
        return not self._event_connected and not self.closed and bool(self.events_queued)

    def _connect(self, sock, address, channel):
        try:
            sock.connect(address)
        except OSError as exc:
            if exc.errno in _NOT_YET_BOUND and channel == "event":
                raise _NotYetBound() from None
            raise ClientGone(f"connect to client's {channel} socket failed: {exc}") from None

    def _send(self, sock, message, channel) -> bool:
        try:
            sock.send(message)
        except OSError as exc:
            if exc.errno in _RETRY_LATER:
                return False
            if exc.errno == errno.EMSGSIZE:
                self._dropped_too_big(len(message), channel)
                return True
            raise ClientGone(f"send on {channel} channel failed: {exc}") from None
        self.control.add_sent(channel, 1)
        return True

    def _dropped_too_big(self, size: int, channel: str) -> None:
        # Dropping is the only non-blocking answer; the size passed the negotiated
        # maximum, so the kernel's datagram limit is below it (docs/ipc.md).
        log.error("IPC: dropped a %d-byte %s for client pid %d: larger than one AF_UNIX "
                  "datagram may be on this host (see docs/ipc.md)", size, channel,
                  self.creds.pid)
        self.stats[f"{channel}s_too_big"] += 1


class _NotYetBound(Exception):
    pass


def _mkdtemp(prefix: str) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix=prefix, dir=names.SHM_DIR)


def _close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
