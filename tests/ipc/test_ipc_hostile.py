"""Hostile and broken clients against coroproc's IpcServer (echo service process).

After each abuse a well-behaved client must still be served, the server must exit
cleanly on SIGTERM with no traceback, and no connection directory may be left (the
server fixture checks the last two)."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from coroproc.ipc import names, wire
from coroproc.ipc.client import IpcClient, IpcDisconnected

HANG_GUARD_MS = 30000  # turns a hang into a failure; never a performance threshold


def raw_setup(name):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANG_GUARD_MS / 1000)
    sock.connect(names.abstract_address(name))
    return sock


def assert_still_serving(name):
    with IpcClient(name) as client:
        assert client.request(3, b"abc") == (3, 0, b"cba")
        assert client.recv_event(-1) == (1003, 0, b"abc")


def assert_server_dropped(client):
    with pytest.raises(IpcDisconnected):
        client.request(4, b"after", timeout_ms=HANG_GUARD_MS)


def test_garbage_handshake_is_closed(py_server):
    sock = raw_setup(py_server.name)
    sock.sendall(os.urandom(wire.CONNECTION_REQUEST.size))
    assert sock.recv(100) == b""  # closed without an answer
    sock.close()
    assert_still_serving(py_server.name)
    py_server.stop()
    assert py_server.stats["protocol_errors"] == 1


def test_oversized_max_msg_size_in_handshake_is_closed(py_server):
    sock = raw_setup(py_server.name)
    sock.sendall(wire.CONNECTION_REQUEST.pack(wire.MSG_AUTHENTICATE, 24, 2**32 - 1))
    assert sock.recv(100) == b""
    sock.close()
    assert_still_serving(py_server.name)


def test_half_open_and_truncated_handshakes_do_not_block_others(py_server):
    silent = raw_setup(py_server.name)
    partial = raw_setup(py_server.name)
    partial.sendall(wire.pack_connection_request(4096)[:10])
    assert_still_serving(py_server.name)
    partial.close()  # truncated then gone
    assert_still_serving(py_server.name)
    silent.close()


def test_truncated_request_header_disconnects_only_that_client(py_server):
    with IpcClient(py_server.name) as bad, IpcClient(py_server.name) as good:
        bad._request.send(b"\x01\x00\x00\x00\x00\x00\x00\x00")  # 8 of 16 header bytes
        assert_server_dropped(bad)
        assert good.request(1, b"xy") == (1, 0, b"yx")
    py_server.stop()
    assert py_server.stats["protocol_errors"] == 1


def test_size_field_larger_than_datagram_disconnects(py_server):
    with IpcClient(py_server.name) as bad:
        bad._request.send(wire.REQUEST_HEADER.pack(1, 4096) + b"short")
        assert_server_dropped(bad)
    assert_still_serving(py_server.name)


def test_datagram_larger_than_negotiated_max_disconnects(py_server):
    with IpcClient(py_server.name) as bad:
        too_big = bad.max_msg_bytes + 4096
        bad._request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, too_big * 2)
        msg = wire.REQUEST_HEADER.pack(1, too_big) + bytes(too_big - 16)
        try:
            bad._request.send(msg)
        except OSError as exc:  # a kernel whose datagram limit is below it stops it here
            pytest.skip(f"kernel refuses a {too_big}-byte datagram itself: {exc}")
        assert_server_dropped(bad)
    assert_still_serving(py_server.name)


def test_disconnect_message_closes_the_connection(py_server):
    with IpcClient(py_server.name) as client:
        client.send(wire.MSG_DISCONNECT)
        assert_server_dropped(client)
    assert_still_serving(py_server.name)


def test_foreign_datagrams_are_ignored_then_refused_by_the_kernel(py_server):
    with IpcClient(py_server.name) as client:
        base = client._request.getpeername()  # the server's request socket address
        intruder = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        intruder.sendto(wire.pack_request(2, b"evil"), base)  # before the first response
        assert client.request(1, b"ok") == (1, 0, b"ko")
        assert client.recv_event(-1) == (1001, 0, b"ok")
        # Once the server has answered, its request socket is connected to the client.
        with pytest.raises(PermissionError):
            intruder.sendto(wire.pack_request(2, b"evil"), base)
        intruder.close()
        assert client.recv_event(0) is None  # nothing was processed for the intruder
    py_server.stop()
    assert py_server.stats["foreign_datagrams"] == 1


def test_requests_the_client_did_not_count_are_all_read(py_server):
    """The server reads as many requests per wake-up as the client counted into the control
    file (libqb's rule): a client that counts none, or far too many, still gets every
    answer, in order."""
    with IpcClient(py_server.name) as client:
        for i in range(1, 6):
            client._request.send(wire.pack_request(i, b"m%d" % i))     # sent, not counted
        answers = [client.recv_response(HANG_GUARD_MS) for _ in range(5)]
        assert answers == [(i, 0, (b"m%d" % i)[::-1]) for i in range(1, 6)]
        client._control.add_sent("request", 1000)    # a count far above what is queued
        assert client.request(7, b"ok", timeout_ms=HANG_GUARD_MS) == (7, 0, b"ko")
    assert_still_serving(py_server.name)


def test_handler_exception_costs_only_that_client(py_server):
    py_server.allow_tracebacks = True
    with IpcClient(py_server.name) as bad, IpcClient(py_server.name) as good:
        bad.send(70998, b"")
        assert_server_dropped(bad)
        assert good.request(1, b"ab") == (1, 0, b"ba")
    py_server.stop()
    assert py_server.stats["handler_errors"] == 1


def test_client_that_never_reads_events_hits_the_queue_bound(py_server_small_queue):
    name = py_server_small_queue.name
    with IpcClient(name) as slow, IpcClient(name) as other:
        _id, _err, sent = slow.request(70999, b"5000")  # 5000 events at once, never read
        accepted = int(sent)
        # The kernel holds a few datagrams (net.unix.max_dgram_qlen), the server 100.
        assert 100 <= accepted < 5000
        for r in range(20):  # meanwhile everyone else is served
            assert other.request(r, b"go")[2] == b"og"
            assert other.recv_event(-1) == (r + 1000, 0, b"go")
        got = 0  # now the slow client reads: every accepted event arrives, in order
        while got < accepted:
            event = slow.recv_event(HANG_GUARD_MS)
            assert event == (70999, 0, b"x" * 64)
            got += 1
        assert slow.recv_event(0) is None
        assert slow.request(5, b"ab")[2] == b"ba"  # and it is served normally again


def test_a_backlog_of_events_slows_the_client_instead_of_dropping_it(py_server_big_queue):
    """20,480 events for a client that reads later (the kernel's socket buffer takes a few
    thousand, the server queues the rest): its flow-control flag goes to 2
    (QB_IPCS_RATE_OFF_2: its cpg_mcast_joined would get TRY_AGAIN) while the backlog is
    above EVENT_BACKLOG_ON, back to 0 once it has read down to EVENT_BACKLOG_OFF; every
    event arrives, none is dropped, the client is never disconnected."""
    from coroproc.ipc.connection import EVENT_BACKLOG_FC_LEVEL, EVENT_BACKLOG_ON
    name = py_server_big_queue.name
    with IpcClient(name) as client:
        total = 20 * EVENT_BACKLOG_ON
        assert int(client.request(70999, str(total).encode())[2]) == total
        assert client.flow_control == EVENT_BACKLOG_FC_LEVEL
        for _ in range(total):
            assert client.recv_event(HANG_GUARD_MS) == (70999, 0, b"x" * 64)
        assert client.recv_event(0) is None
        assert client.flow_control == 0
        assert client.request(5, b"ab")[2] == b"ba"


def test_killed_client_is_cleaned_up(py_server):
    code = (
        "import os, signal, sys\n"
        "from coroproc.ipc.client import IpcClient\n"
        f"c = IpcClient({py_server.name!r})\n"
        "c.send(70999, b'50')\n"  # leaves the server with events queued for a dead client
        "print(os.path.dirname(c._control.path), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=env, timeout=HANG_GUARD_MS / 1000)
    assert proc.returncode == -signal.SIGKILL
    directory = proc.stdout.strip()
    assert directory.startswith(f"/dev/shm/qb-{py_server.pid}-")
    assert_still_serving(py_server.name)
    py_server.stop()
    assert py_server.stats["disconnected"] == 2
    assert not os.path.exists(directory)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")
def test_non_root_client_is_refused_with_eacces(py_server):
    code = (
        "import os\n"
        "from coroproc.ipc.client import IpcClient, IpcRefused\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    IpcClient({py_server.name!r})\n"
        "except IpcRefused as exc:\n"
        "    print('REFUSED', exc.error)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=env, timeout=HANG_GUARD_MS / 1000)
    assert proc.stdout.strip() == "REFUSED -13", proc.stderr
    assert_still_serving(py_server.name)
    py_server.stop()
    assert py_server.stats["refused"] == 1


class _NeverBindsEvents(IpcClient):
    """Completes the handshake but never binds its event socket (a broken or hostile client)."""

    def _channel(self, base, local, remote):
        if local == names.CLIENT_EVENT:
            return socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        return super()._channel(base, local, remote)


def test_client_that_never_binds_its_event_socket_is_dropped(py_server_welcome):
    """The server has an event for it (queued from on_connect) and retries the event
    connection; after EVENT_BIND_GIVEUP_S it disconnects the client instead of retrying
    for ever, and keeps serving others."""
    from coroproc.ipc.connection import EVENT_BIND_GIVEUP_S
    import time
    bad = _NeverBindsEvents(py_server_welcome.name)
    try:
        end = time.monotonic() + EVENT_BIND_GIVEUP_S + 30
        with pytest.raises(IpcDisconnected):
            while time.monotonic() < end:
                bad.request(1, b"ping", timeout_ms=1000)
                time.sleep(0.2)
    finally:
        bad.close()
    with IpcClient(py_server_welcome.name) as good:
        assert good.recv_event(-1) == (70996, 0, b"welcome")
        assert good.request(5, b"abc") == (5, 0, b"cba")
