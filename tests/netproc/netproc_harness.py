"""Test harness: one real LinkProcess in a forked child; the test process plays ring process.

The parent creates the rx/tx shm rings (unique names: pid + uuid, so xdist workers never
collide), forks a child that attaches to them, opens the link's sockets (optionally inside
a network namespace) and runs LinkProcess under a PipeControl. The child reports "ready"
(after binding) and, when stopped, its counters, as JSON lines on a pipe. Every process,
ring and doorbell is cleaned up by close(), which the tests call from fixtures/finally.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import struct
import subprocess
import time
import traceback
import uuid

from coroproc.netproc.control import PipeControl
from coroproc.netproc.link import LinkProcess
from coroproc.netproc.spec import LinkSpec
from coroproc.shm.doorbell import Doorbell
from coroproc.shm.ring import ShmRing

RING_CAPACITY_BYTES = 1 << 20
GUARD_TIMEOUT_S = 20.0          # only guards against a hang; no test depends on speed
CLONE_NEWNET = 0x40000000
TOTEM_MAGIC_LE = b"\x70\xc0"


def frame(tag: int, size_bytes: int = 64) -> bytes:
    """A datagram that passes the framing check: magic, then a recognisable body."""
    assert size_bytes >= 13
    body = struct.pack("<I", tag) * (size_bytes // 4 + 1)
    return (TOTEM_MAGIC_LE + body)[:size_bytes]


@contextlib.contextmanager
def keyed(ctx, key: bytes):
    """A jitted crypto context (aead.GcmContext, mac.MacContext) keyed, freed afterwards."""
    try:
        ctx.set_key(key)
        yield ctx
    finally:
        ctx.free()


def unique_tag() -> str:
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def kill_child(pid: int) -> None:
    """SIGKILL a forked child of ours (gone already is fine) and reap it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


class LinkHarness:
    def __init__(self, spec: LinkSpec, netns: str | None = None,
                 rx_capacity_bytes: int = RING_CAPACITY_BYTES):
        tag = unique_tag()
        self.spec = spec
        self.rx_name = f"/coroproc-test.netproc.{tag}.rx{spec.local_nodeid}"
        self.tx_name = f"/coroproc-test.netproc.{tag}.tx{spec.local_nodeid}"
        self.pid = None
        self._res = b""
        self.rx_bell = Doorbell()      # we (the "ring process") sleep on the rx ring
        self.tx_bell = Doorbell()      # the link child sleeps on the tx ring
        self.rx = ShmRing.create(self.rx_name, rx_capacity_bytes, role="consumer")
        self.tx = ShmRing.create(self.tx_name, RING_CAPACITY_BYTES, wake_fd=self.tx_bell.fd,
                                 role="producer")
        stop_r, self._stop_w = os.pipe()
        self._res_r, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._stop_w)
            os.close(self._res_r)
            self._child(stop_r, res_w, netns)
        os.close(stop_r)
        os.close(res_w)
        try:
            msg = self._read_msg()
            if "ready" not in msg:
                raise RuntimeError(f"link child for node {spec.local_nodeid} failed:\n"
                                   f"{msg.get('error', msg)}")
            self.bound = msg["ready"]
        except BaseException:
            self.close()
            raise

    # ---- child ------------------------------------------------------------------
    def _child(self, stop_r: int, res_w: int, netns: str | None) -> None:
        rc = 1
        try:
            if netns:
                enter_netns(netns)
            rx = ShmRing.attach(self.rx_name, wake_fd=self.rx_bell.fd, role="producer")
            tx = ShmRing.attach(self.tx_name, role="consumer")
            link = LinkProcess(self.spec, rx, tx, self.tx_bell)
            os.write(res_w, json.dumps({"ready": link.local_addresses()}).encode() + b"\n")
            link.run(PipeControl(stop_r, tick_s=0.05))
            os.write(res_w, json.dumps({"counters": link.counters()}).encode() + b"\n")
            rc = 0
        except BaseException:  # noqa: BLE001  (any failure is reported to the parent)
            try:
                os.write(res_w, json.dumps({"error": traceback.format_exc()}).encode() + b"\n")
            except OSError:
                pass
        finally:
            os._exit(rc)

    def _read_msg(self) -> dict:
        deadline = time.monotonic() + GUARD_TIMEOUT_S
        while b"\n" not in self._res:
            left_s = deadline - time.monotonic()
            r, _, _ = select.select([self._res_r], [], [], max(left_s, 0))
            if not r:
                raise TimeoutError(f"link child {self.pid} said nothing in {GUARD_TIMEOUT_S} s")
            chunk = os.read(self._res_r, 65536)
            if not chunk:
                raise RuntimeError(f"link child {self.pid} exited without a report")
            self._res += chunk
        line, self._res = self._res.split(b"\n", 1)
        return json.loads(line)

    # ---- parent: the ring process's side -----------------------------------------
    def send(self, dest_nodeid: int, payload: bytes) -> None:
        assert self.tx.push(1, struct.pack("<I", dest_nodeid) + payload)

    def receive(self, count: int) -> list[bytes]:
        """Exactly `count` frames from the rx ring (waits as long as the guard allows)."""
        out: list[bytes] = []
        deadline = time.monotonic() + GUARD_TIMEOUT_S
        while len(out) < count:
            for rtype, flags, payload in self.rx.pop_batch(count - len(out)):
                assert (rtype, flags) == (1, 0)
                out.append(payload)
            if len(out) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node {self.spec.local_nodeid}: got {len(out)} of "
                                       f"{count} frames: {out!r:.300}")
                self.rx_bell.wait([self.rx], 0.2)
        return out

    def wait_ring_accounted(self, datagrams: int) -> None:
        """Until the link pushed or refused (ring full) `datagrams` records on the rx ring."""
        deadline = time.monotonic() + GUARD_TIMEOUT_S
        while True:
            c = self.rx.counters()
            if c["records_pushed"] + c["push_full"] >= datagrams:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"rx ring accounted for {c['records_pushed']} pushed + "
                                   f"{c['push_full']} full of {datagrams}")
            time.sleep(0.005)

    def stop(self) -> dict:
        """Stop the child and return its counters."""
        os.write(self._stop_w, b"x")
        msg = self._read_msg()
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if "counters" not in msg:
            raise RuntimeError(f"link child failed:\n{msg.get('error', msg)}")
        assert os.waitstatus_to_exitcode(status) == 0
        return msg["counters"]

    def close(self) -> None:
        if self.pid:
            kill_child(self.pid)
            self.pid = None
        for fd in (self._stop_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for ring in (self.rx, self.tx):
            ring.unlink()
            ring.close()
        self.rx_bell.close()
        self.tx_bell.close()


class NetNs:
    """A uniquely named network namespace; always deleted (delete() in a finally/fixture).

    lo is up with the MULTICAST flag and a route for 224.0.0.0/4, which is enough for IPv4
    multicast between 127.0.0.x nodes. Linux does not loop IPv6 multicast through lo, so
    with veth=True the namespace also gets a veth pair va <-> vb carrying fd00::1/64 and
    fd00::2/64 (no DAD, so they are usable at once); a datagram sent out va arrives on vb.
    """

    def __init__(self, veth: bool = False):
        self.name = f"coroproc-np-{unique_tag()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            cmds = [["link", "set", "lo", "up"],
                    ["link", "set", "lo", "multicast", "on"],
                    ["route", "add", "224.0.0.0/4", "dev", "lo"]]
            if veth:
                cmds += [["link", "add", "va", "type", "veth", "peer", "name", "vb"],
                         ["addr", "add", "fd00::1/64", "dev", "va", "nodad"],
                         ["addr", "add", "fd00::2/64", "dev", "vb", "nodad"],
                         ["link", "set", "va", "up"],
                         ["link", "set", "vb", "up"]]
            for cmd in cmds:
                self.ip(*cmd)
            if veth:
                self._wait_up("va")
                self._wait_up("vb")
        except BaseException:
            self.delete()
            raise

    def ip(self, *args: str) -> str:
        done = subprocess.run(["ip", "-n", self.name, *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ip -n {self.name} {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _wait_up(self, dev: str) -> None:
        """veth carrier comes up asynchronously; frames sent before it would be lost."""
        deadline = time.monotonic() + GUARD_TIMEOUT_S
        while json.loads(self.ip("-j", "link", "show", "dev", dev))[0]["operstate"] != "UP":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dev} in netns {self.name} never came up")
            time.sleep(0.01)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True, check=False)


def free_udp_port(addr: str = "127.0.0.1", family: int = 2, pair: bool = False) -> int:
    """A UDP port free on addr right now (and port-1 too if pair: udp's send socket).

    Bound to port 0 so the kernel picks from the ephemeral range; a tiny race with other
    processes remains, which is why tests bind at once.
    """
    import socket
    for _ in range(100):
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s.bind((addr, 0))
            port = s.getsockname()[1]
            if not pair:
                return port
            t = socket.socket(family, socket.SOCK_DGRAM)
            try:
                t.bind((addr, port - 1))
                return port
            except OSError:
                continue
            finally:
                t.close()
        finally:
            s.close()
    raise RuntimeError(f"no free UDP port (pair={pair}) on {addr}")


def knet_spec(peers: dict, nodeid: int, **kw) -> LinkSpec:
    """A transport knet LinkSpec for node `nodeid` of `peers` ({nodeid: (addr, port)})."""
    import socket
    addr, port = peers[nodeid]
    return LinkSpec(linknumber=0, transport="knet", family=socket.AF_INET, local_nodeid=nodeid,
                    bind_addr=addr, port=port, peers=peers, **kw)


def carrier_recv(carrier, buf, timeout_s: float = 5.0):
    """A secure-link carrier's next accepted datagram, waiting for its socket."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = carrier.recv_into(buf)
        if got is not None:
            return got
        select.select(carrier.fds(), [], [], 0.05)
    raise AssertionError("no datagram")
