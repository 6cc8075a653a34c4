"""Both directions against the real libqb 2.0: Debian's C client against coroproc's
IpcServer, and coroproc's Python client against a C server built on libqb's
qb_ipcs_create(QB_IPC_SOCKET), plus Python client against Python server."""

import os
import subprocess

import pytest

from coroproc.ipc.client import IpcClient
from coroproc.ipc.limits import datagram_limit_bytes

ECHO_EVENT_OFFSET = 1000


def connection_dirs(server_pid):
    return sorted(e for e in os.listdir("/dev/shm") if e.startswith(f"qb-{server_pid}-"))


def run_c_client(c_programs, name, rounds, payload_bytes):
    out = subprocess.run([c_programs["echo_client"], name, str(rounds), str(payload_bytes)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"OK {rounds}"


def echo_rounds(client, rounds, payload_bytes):
    for r in range(rounds):
        payload = bytes((r + i) % 251 for i in range(payload_bytes))
        assert client.request(r, payload) == (r, 0, payload[::-1])
        assert client.recv_event(-1) == (r + ECHO_EVENT_OFFSET, 0, payload)


def test_libqb_c_client_against_coroproc_server(c_programs, py_server):
    run_c_client(c_programs, py_server.name, 200, 100)
    assert connection_dirs(py_server.pid) == []  # libqb client and server both tidy up
    code, _left = py_server.stop()
    assert code == 0
    assert py_server.stats["connected"] == 1 and py_server.stats["disconnected"] == 1


def test_libqb_c_clients_in_parallel_with_large_messages(c_programs, py_server):
    big = min(256 * 1024, datagram_limit_bytes(1024 * 1024) - 64)
    procs = [subprocess.Popen([c_programs["echo_client"], py_server.name, "20", str(size)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for size in (0, 1000, big)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "OK 20"


def test_python_client_against_coroproc_server(py_server):
    with IpcClient(py_server.name) as client:
        assert client.server_pid == py_server.pid
        assert client.max_msg_bytes == 1024 * 1024
        echo_rounds(client, 100, 300)
        assert client.recv_event(0) is None  # exactly one event per request
    code, _ = py_server.stop()
    assert code == 0 and py_server.stats["disconnected"] == 1


def test_python_client_against_libqb_c_server(c_server):
    with IpcClient(c_server.name) as client:
        assert client.server_pid == c_server.pid
        echo_rounds(client, 100, 300)
        echo_rounds(client, 2, 200 * 1024)
        assert client.recv_event(0) is None
    # The libqb server removes the connection's files on disconnect, like ours.
    code, _ = c_server.stop()
    assert code == 0


def test_message_at_the_datagram_limit_passes(py_server):
    limit = datagram_limit_bytes(1024 * 1024)
    with IpcClient(py_server.name) as client:
        payload = os.urandom(limit - 24)  # the echo event carries a 24-byte header
        assert client.request(1, payload) == (1, 0, payload[::-1])
        assert client.recv_event(-1)[2] == payload


def test_flow_control_flag_reaches_clients(py_server):
    from coroproc.ipc.client import IpcTryAgain
    with IpcClient(py_server.name) as normal, \
            IpcClient(py_server.name, fc_enable_max=2) as cpg_like:
        assert cpg_like.request(70997, b"2")[1] == 0  # the service sets level 2 on cpg_like
        assert cpg_like.flow_control == 2
        with pytest.raises(IpcTryAgain):
            cpg_like.request(5, b"x")
        assert normal.request(5, b"ab")[2] == b"ba"  # other connections are unaffected
    with IpcClient(py_server.name) as client:  # level 2 does not stop fc_enable_max=1
        assert client.request(70997, b"2")[1] == 0
        client.recv_event(0)
        assert client.request(6, b"ok")[2] == b"ko"


def test_event_queued_before_client_binds_is_delivered(py_server_welcome):
    for _ in range(3):
        with IpcClient(py_server_welcome.name) as client:
            assert client.recv_event(-1) == (70996, 0, b"welcome")
            echo_rounds(client, 3, 10)
