"""RdmaSpec: everything the RDMA carrier of one link needs, and its validation.

The supervisor builds it from `interface { linknumber: N  knet_transport: rdma }` plus the
nodelist (ringN_addr of every node) and an optional `coroproc { rdma { } }` section for the
device knobs; tests build one directly. Peers are (ip, side_port) by nodeid, self included,
as the UDP link's LinkSpec: the side channel (resolve.py) is a small UDP socket on the link
address, and the per-peer port lets several nodes share one host in tests.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from coroproc.netproc.rdma.errors import RdmaSpecError
from coroproc.netproc.fragments.wire import FRAG_HEADER_BYTES

NODEID_MAX = 0xFFFFFFFF
MAX_DATAGRAM_BYTES_LIMIT = 65000      # link frames are at most 65,000 bytes (sealed)
QKEY_DEFAULT = 0x436F5250             # 'CoRP'; any value below 0x80000000 (high bit = privileged)
QKEY_LIMIT = 0x80000000
UD_MTU_CHOICES_BYTES = (256, 512, 1024, 2048, 4096)   # the IB MTU enum, in bytes


@dataclass(frozen=True)
class RdmaSpec:
    linknumber: int
    local_nodeid: int
    local_ip: str                                 # this node's address on the link (RoCE: a GID's IP)
    side_port: int                                # UDP port of the address-exchange side channel
    peers: dict[int, tuple[str, int]]             # nodeid -> (ip, side_port), self included
    device: str | None = None                     # None: the first device with an active port
    port_num: int | None = None                   # None: the first ACTIVE port of that device
    gid_index: int | None = None                  # None: the GID of local_ip (RoCE) or 0 (IB)
    rx_depth: int = 512                           # receive buffers posted (the RQ depth)
    tx_depth: int = 512                           # registered send slots (the SQ depth)
    signal_every: int = 16                        # request a send completion every Nth send
    max_datagram_bytes: int = MAX_DATAGRAM_BYTES_LIMIT
    ud_mtu_cap_bytes: int | None = None           # cap below the port's active MTU (tests, mixed fabrics)
    qkey: int = QKEY_DEFAULT
    reasm_entries: int = 64                       # frames in reassembly at once, all peers
    reasm_timeout_ms: int = 1000                  # an incomplete frame older than this is dropped
    hello_interval_ms: int = 1000                 # re-ask unresolved peers this often
    hop_limit: int = 64                           # RoCE v2 is routed: more than 1 hop needed
    traffic_class: int = 0
    service_level: int = 0

    def __post_init__(self):
        validate(self)


def worst_case_fragments(frame_bytes: int) -> int:
    """Fragments of a frame at the smallest UD MTU (256 bytes) — what tx_depth must hold."""
    chunk_bytes = UD_MTU_CHOICES_BYTES[0] - FRAG_HEADER_BYTES
    return -(-frame_bytes // chunk_bytes)


def _fail(spec: RdmaSpec, what: str) -> None:
    raise RdmaSpecError(f"link {spec.linknumber} (node {spec.local_nodeid}) rdma: {what}")


def _ip(spec: RdmaSpec, name: str, addr) -> ipaddress._BaseAddress:
    try:
        return ipaddress.ip_address(addr)
    except ValueError:
        _fail(spec, f"{name} {addr!r} is not a numeric IP address")


def _port(spec: RdmaSpec, name: str, port) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        _fail(spec, f"{name} {port!r} is not a UDP port number (1..65535)")


def _range(spec: RdmaSpec, name: str, lo: int, hi: int) -> None:
    value = getattr(spec, name)
    if not isinstance(value, int) or not lo <= value <= hi:
        _fail(spec, f"{name} {value!r} is outside {lo}..{hi}")


def validate(spec: RdmaSpec) -> None:
    """Raise RdmaSpecError on the first bad field; a spec that passes only lacks a device."""
    _range(spec, "linknumber", 0, 7)
    _range(spec, "local_nodeid", 1, NODEID_MAX)
    local = _ip(spec, "local_ip", spec.local_ip)
    _port(spec, "side_port", spec.side_port)
    if spec.local_nodeid not in spec.peers:
        _fail(spec, f"peers (the nodelist) must include this node {spec.local_nodeid}")
    for nodeid, entry in spec.peers.items():
        if not isinstance(nodeid, int) or not 1 <= nodeid <= NODEID_MAX:
            _fail(spec, f"peer nodeid {nodeid!r} is outside 1..{NODEID_MAX}")
        if not (isinstance(entry, tuple) and len(entry) == 2):
            _fail(spec, f"peer {nodeid} must be (ip, side_port), got {entry!r}")
        ip = _ip(spec, f"peer {nodeid} ip", entry[0])
        if ip.version != local.version:
            _fail(spec, f"peer {nodeid} ip {entry[0]} is IPv{ip.version} but local_ip "
                  f"{spec.local_ip} is IPv{local.version}")
        _port(spec, f"peer {nodeid} side_port", entry[1])
    if spec.peers[spec.local_nodeid] != (spec.local_ip, spec.side_port):
        _fail(spec, f"peers[{spec.local_nodeid}] {spec.peers[spec.local_nodeid]} must be "
              f"this node's (local_ip, side_port) = {(spec.local_ip, spec.side_port)}")
    if spec.device is not None and (not isinstance(spec.device, str) or not spec.device):
        _fail(spec, f"device {spec.device!r} must be a device name such as 'mlx5_0' or None")
    if spec.port_num is not None:
        _range(spec, "port_num", 1, 255)
    if spec.gid_index is not None:
        _range(spec, "gid_index", 0, 65535)
    _range(spec, "rx_depth", 16, 32768)
    _range(spec, "tx_depth", 16, 32768)
    _range(spec, "signal_every", 1, spec.tx_depth // 2)
    _range(spec, "max_datagram_bytes", 64, MAX_DATAGRAM_BYTES_LIMIT)
    worst = worst_case_fragments(spec.max_datagram_bytes)
    if spec.tx_depth < worst:
        _fail(spec, f"tx_depth {spec.tx_depth} cannot hold one {spec.max_datagram_bytes}-byte "
              f"frame: at the smallest UD MTU (256) it is {worst} fragments; raise tx_depth "
              f"to >= {worst} or lower max_datagram_bytes")
    if spec.ud_mtu_cap_bytes is not None and spec.ud_mtu_cap_bytes not in UD_MTU_CHOICES_BYTES:
        _fail(spec, f"ud_mtu_cap_bytes {spec.ud_mtu_cap_bytes} is not one of "
              f"{UD_MTU_CHOICES_BYTES}")
    _range(spec, "qkey", 0, QKEY_LIMIT - 1)
    _range(spec, "reasm_entries", 1, 4096)
    _range(spec, "reasm_timeout_ms", 1, 60_000)
    _range(spec, "hello_interval_ms", 10, 60_000)
    _range(spec, "hop_limit", 2, 255)
    _range(spec, "traffic_class", 0, 255)
    _range(spec, "service_level", 0, 15)
