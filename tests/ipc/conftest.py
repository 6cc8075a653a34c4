"""Fixtures for the IPC tests: C programs built against Debian's libqb, echo servers.

Every server runs as its own process under a service name unique to the test
(pid + uuid), so pytest -n 2 workers never share a socket. A server fixture's
teardown stops it with SIGTERM, requires a clean exit, and fails the test if any
/dev/shm/qb-<server pid>-* connection directory is left (removing it first, so one
failure does not leak into the next run).
"""

import os
import select
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
C_DIR = os.path.join(HERE, "c")
REPO = os.path.dirname(os.path.dirname(HERE))
ECHO_SERVICE = os.path.join(HERE, "echo_service.py")
STARTUP_GUARD_S = 60  # only guards against a hang; never a performance threshold


def _libqb_missing():
    if shutil.which("gcc") is None:
        return "gcc is not installed (needed to build the libqb test programs)"
    if not os.path.exists("/usr/include/qb/qbipcc.h"):
        return "libqb headers missing (apt-get install libqb-dev)"
    return None


@pytest.fixture(scope="session")
def c_programs(tmp_path_factory):
    """Paths of the compiled C test programs: {'echo_client', 'echo_server', 'layout'}."""
    reason = _libqb_missing()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("ipc_c")
    built = {}
    for name in ("echo_client", "echo_server", "layout"):
        exe = str(out / name)
        subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", exe,
                        os.path.join(C_DIR, f"{name}.c"), "-lqb"], check=True)
        built[name] = exe
    return built


@pytest.fixture
def service_name():
    return f"cpt-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def connection_dirs(server_pid):
    prefix = f"qb-{server_pid}-"
    return sorted(e for e in os.listdir("/dev/shm") if e.startswith(prefix))


class ServerProcess:
    def __init__(self, argv, name, env_extra=None):
        self.name = name
        env = dict(os.environ, PYTHONPATH=REPO, **(env_extra or {}))
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_GUARD_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            self.proc.kill()
            _out, err = self.proc.communicate()
            raise RuntimeError(f"server {argv} did not start: {line!r} {err}")
        self.pid = self.proc.pid
        self.stats = {}
        self.stderr = ""
        self.allow_tracebacks = False  # a test that makes the handler raise sets this

    def stop(self):
        """SIGTERM, wait, parse STATS; returns (exit code, leftover connection dirs)."""
        self.proc.send_signal(signal.SIGTERM)
        out, self.stderr = self.proc.communicate(timeout=STARTUP_GUARD_S)
        for line in out.splitlines():
            if line.startswith("STATS"):
                self.stats = dict(kv.split("=") for kv in line.split()[1:])
                self.stats = {k: int(v) for k, v in self.stats.items()}
        left = connection_dirs(self.pid)
        for entry in left:
            shutil.rmtree(os.path.join("/dev/shm", entry), ignore_errors=True)
        return self.proc.returncode, left


def _serve(argv, name, event_queues=None):
    env = {"ECHO_EVENT_QUEUES": "1"} if event_queues == "arrays" else None
    server = ServerProcess(argv, name, env)
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            code, left = server.stop()
        else:
            code, left = server.proc.returncode, connection_dirs(server.pid)
            for entry in left:
                shutil.rmtree(os.path.join("/dev/shm", entry), ignore_errors=True)
        assert code == 0, f"server exited with {code}: {server.stderr}"
        assert not left, f"server left connection directories in /dev/shm: {left}"
        if not server.allow_tracebacks:
            assert "Traceback" not in server.stderr, server.stderr


# Every Python-server test runs twice: events queued in the connection's deque, and in
# the array-backed queues of ipc/evqueue.py (what the CPG engine uses).
@pytest.fixture(params=["deque", "arrays"])
def event_queues(request):
    return request.param


@pytest.fixture
def py_server(service_name, event_queues):
    """coroproc's IpcServer running the echo service in its own process."""
    yield from _serve([sys.executable, ECHO_SERVICE, service_name], service_name, event_queues)


@pytest.fixture
def py_server_small_queue(service_name, event_queues):
    yield from _serve([sys.executable, ECHO_SERVICE, service_name, "100"], service_name,
                      event_queues)


@pytest.fixture
def py_server_big_queue(service_name, event_queues):
    yield from _serve([sys.executable, ECHO_SERVICE, service_name, "100000"], service_name,
                      event_queues)


@pytest.fixture
def py_server_welcome(service_name, event_queues):
    """Echo service that queues an event from on_connect, before the client is bound."""
    yield from _serve([sys.executable, ECHO_SERVICE, service_name, "1024", "welcome"],
                      service_name, event_queues)


@pytest.fixture
def c_server(c_programs, service_name):
    """Debian's libqb running the same echo service in socket mode."""
    yield from _serve([c_programs["echo_server"], service_name], service_name)
