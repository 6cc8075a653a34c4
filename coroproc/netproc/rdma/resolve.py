"""Address resolution: learning each peer's {gid, qpn, qkey, lid, mtu} over a UDP side channel.

Peers are configured by IP (the nodelist's ringN_addr); a UD send needs the peer's GID (for
the address handle), its QP number and QKey. Each carrier binds a small UDP socket on
(local_ip, side_port) and exchanges 48-byte HELLO messages:

    off size                              (little-endian)
      0   4  magic b'CRDH'
      4   1  version 1
      5   1  kind: 1 = HELLO (please answer), 2 = REPLY (no answer)
      6   1  linknumber (a link-1 carrier must not learn link-0 addresses)
      7   1  reserved 0
      8   4  nodeid            the sender
     12   4  qpn               its UD QP number (24 bits used)
     16   4  qkey
     20   2  lid               IB LID (0 on RoCE)
     22   2  mtu_bytes         its port's active MTU: we send min(ours, theirs)
     24  16  gid               the GID it sends from
     40   8  incarnation       random per carrier start: tells a restart from a repeat

At start a carrier sends HELLO to every peer; it repeats HELLO every hello_interval_ms to
peers it has not heard from; it answers every HELLO with a REPLY. A restarted peer (new
QPN, new incarnation) therefore announces itself, and anyone who receives its data before
the announcement (source QPN unknown) asks it again (request(), rate-limited).

Why not librdmacm (RDMA_PS_UDP "UD connect", SIDR): it ties one rdma_cm id to each
exchange and needs the rdma_ucm kernel module and a listening cm id per peer pair; the
side channel is ~150 lines, uses the same IP addresses the nodelist already names, works
identically for IB (IPoIB addresses) and RoCE, and can be tested on a host without RDMA.
A forged HELLO could redirect our sends (denial of service, as forged UDP is for the
UDP link); link frames are sealed by the crypto codec, so it cannot inject or read data.
HELLOs are accepted only from the IP configured for the nodeid they claim.
"""
from __future__ import annotations

import errno as _errno
import ipaddress
import secrets
import socket
import struct
from dataclasses import dataclass

HELLO_MAGIC = b"CRDH"
HELLO_VERSION = 1
KIND_HELLO = 1
KIND_REPLY = 2
_HELLO = struct.Struct("<4sBBBBIIIHH16sQ")
HELLO_BYTES = _HELLO.size
assert HELLO_BYTES == 48
COUNTERS = ("hello_tx", "hello_rx", "hello_bad", "hello_unlisted", "hello_wrong_link",
            "hello_tx_errors", "peer_updates")


class HelloError(ValueError):
    """A side-channel datagram is not a HELLO we accept; the message says why."""


@dataclass(frozen=True)
class PeerAddress:
    nodeid: int
    gid: bytes
    qpn: int
    qkey: int
    lid: int
    mtu_bytes: int
    incarnation: int


def pack_hello(kind: int, linknumber: int, me: PeerAddress) -> bytes:
    assert kind in (KIND_HELLO, KIND_REPLY) and len(me.gid) == 16
    return _HELLO.pack(HELLO_MAGIC, HELLO_VERSION, kind, linknumber, 0, me.nodeid, me.qpn,
                       me.qkey, me.lid, me.mtu_bytes, me.gid, me.incarnation)


def parse_hello(data: bytes) -> tuple[int, int, PeerAddress]:
    """(kind, linknumber, address) of a HELLO/REPLY; HelloError if it is not one."""
    if len(data) != HELLO_BYTES:
        raise HelloError(f"{len(data)} bytes, a HELLO is {HELLO_BYTES}")
    magic, version, kind, link, _, nodeid, qpn, qkey, lid, mtu, gid, inc = _HELLO.unpack(data)
    if magic != HELLO_MAGIC:
        raise HelloError(f"magic {magic!r} is not {HELLO_MAGIC!r}")
    if version != HELLO_VERSION:
        raise HelloError(f"version {version} is not {HELLO_VERSION}")
    if kind not in (KIND_HELLO, KIND_REPLY):
        raise HelloError(f"kind {kind} is neither HELLO (1) nor REPLY (2)")
    if mtu not in (256, 512, 1024, 2048, 4096):
        raise HelloError(f"mtu_bytes {mtu} is not an IB MTU")
    if not 1 <= qpn < 1 << 24:
        raise HelloError(f"qpn {qpn:#x} is not a 24-bit QP number")
    return kind, link, PeerAddress(nodeid, gid, qpn, qkey, lid, mtu, inc)


def new_incarnation() -> int:
    return secrets.randbits(64)


class SideChannel:
    """The UDP socket and the table of resolved peers of one carrier.

    `on_update(PeerAddress)` is called whenever a peer's address is new or changed (the
    carrier rebuilds that peer's address handle there). `sock`: an already bound UDP
    socket to use instead of binding (local_ip, side_port) — tests bind port 0 first."""

    def __init__(self, linknumber: int, me: PeerAddress, local_ip: str, side_port: int,
                 peers: dict[int, tuple[str, int]], hello_interval_ms: int, on_update,
                 sock: socket.socket | None = None):
        self.linknumber = linknumber
        self.me = me
        self.peers = dict(peers)
        self.hello_interval_ms = hello_interval_ms
        self._on_update = on_update
        self.resolved: dict[int, PeerAddress] = {me.nodeid: me}
        self._last_hello_ms: dict[int, int] = {}
        self._ip_of = {n: ipaddress.ip_address(ip) for n, (ip, _) in peers.items()}
        if sock is not None:
            sock.setblocking(False)
            self.sock = sock
        else:
            self.sock = self._bind(linknumber, me.nodeid, local_ip, side_port)
        for name in COUNTERS:
            setattr(self, name, 0)
        self._errnos: dict[str, int] = {}

    @staticmethod
    def _bind(linknumber: int, nodeid: int, local_ip: str, side_port: int) -> socket.socket:
        family = socket.AF_INET6 if ipaddress.ip_address(local_ip).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((local_ip, side_port))
        except OSError as e:
            sock.close()
            raise OSError(e.errno, f"link {linknumber} (node {nodeid}) rdma: cannot bind "
                          f"the address side channel to [{local_ip}]:{side_port}: "
                          f"{e.strerror}; is the port in use or the address not local?") from None
        return sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def counters(self) -> dict[str, int]:
        out = {name: getattr(self, name) for name in COUNTERS}
        out["peers_resolved"] = len(self.resolved) - 1
        out.update(self._errnos)
        return out

    def _send(self, nodeid: int, kind: int, now_ms: int) -> None:
        self._last_hello_ms[nodeid] = now_ms
        try:
            self.sock.sendto(pack_hello(kind, self.linknumber, self.me), self.peers[nodeid])
            self.hello_tx += 1
        except OSError as e:   # peer's host down (ECONNREFUSED, EHOSTUNREACH): retried later
            self.hello_tx_errors += 1
            key = f"hello_error_{_errno.errorcode.get(e.errno, str(e.errno))}"
            self._errnos[key] = self._errnos.get(key, 0) + 1

    def announce(self, now_ms: int) -> None:
        """HELLO to every other peer (at start: tells restarted-peer news to everyone)."""
        for nodeid in self.peers:
            if nodeid != self.me.nodeid:
                self._send(nodeid, KIND_HELLO, now_ms)

    def request(self, nodeid: int, now_ms: int) -> bool:
        """HELLO to one peer unless one went out within hello_interval_ms; True if sent."""
        if nodeid == self.me.nodeid or nodeid not in self.peers:
            return False
        last = self._last_hello_ms.get(nodeid)
        if last is not None and now_ms - last < self.hello_interval_ms:
            return False
        self._send(nodeid, KIND_HELLO, now_ms)
        return True

    def maintain(self, now_ms: int) -> None:
        """Re-ask every peer not yet resolved (rate-limited per peer)."""
        for nodeid in self.peers:
            if nodeid not in self.resolved:
                self.request(nodeid, now_ms)

    def drain(self, now_ms: int, budget: int = 64) -> int:
        """Handle up to `budget` waiting datagrams; return how many were read."""
        handled = 0
        while handled < budget:
            try:
                data, source = self.sock.recvfrom(HELLO_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:          # ICMP errors of earlier sends surface here: ignore
                continue
            handled += 1
            self._handle(data, source, now_ms)
        return handled

    def _handle(self, data: bytes, source: tuple, now_ms: int) -> None:
        try:
            kind, link, addr = parse_hello(data)
        except HelloError:
            self.hello_bad += 1
            return
        expected = self._ip_of.get(addr.nodeid)
        src_ip = ipaddress.ip_address(source[0].split("%", 1)[0])
        if addr.nodeid == self.me.nodeid or expected is None or src_ip != expected:
            self.hello_unlisted += 1
            return
        if link != self.linknumber:
            self.hello_wrong_link += 1
            return
        self.hello_rx += 1
        if self.resolved.get(addr.nodeid) != addr:
            self.resolved[addr.nodeid] = addr
            self.peer_updates += 1
            self._on_update(addr)
        if kind == KIND_HELLO:
            self._send(addr.nodeid, KIND_REPLY, now_ms)

    def close(self) -> None:
        self.sock.close()
