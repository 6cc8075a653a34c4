"""What one UD message carries: the 40-byte GRH area, then a fragment, then data.

UD messages are at most the path MTU (256..4096 bytes) while link frames are up to 65,000
bytes, so every frame travels as 1..N fragments, each with the 20-byte fragment header of
fragments/wire.py (a frame that fits travels as fragment 0 of 1); the header's src_nodeid
is checked against the sender's QPN.

Receive side: the HCA writes a 40-byte Global Routing Header area at the start of every UD
receive buffer, whether or not the packet had a GRH (ibv_wc.wc_flags & IBV_WC_GRH says
whether it is valid), so our header starts at GRH_BYTES and ibv_wc.byte_len counts the
GRH area too. For RoCE v2 over IPv4 the area holds the 20-byte IPv4 header in its last 20
bytes (offset 20) instead of an IPv6-style GRH.
"""
from __future__ import annotations

import ipaddress

GRH_BYTES = 40


def grh_source_gid(grh, roce_v2_ipv4: bool) -> bytes:
    """The sender's 16-byte GID from a receive buffer's 40-byte GRH area.

    RoCE v2/IPv4: an IPv4 header sits at offset 20; its source address maps to the GID
    ::ffff:a.b.c.d. Otherwise (IB, RoCE v1, RoCE v2/IPv6) it is an IPv6-style GRH with
    the source GID at bytes 8..24."""
    assert len(grh) >= GRH_BYTES
    if roce_v2_ipv4:
        src = bytes(grh[20 + 12:20 + 16])
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + src).packed
    return bytes(grh[8:24])


def gid_of_ip(ip: str) -> bytes:
    """The RoCE v2 GID of an IP address: IPv4-mapped for IPv4, the address itself for IPv6."""
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{addr}").packed
    return addr.packed


def gid_text(gid: bytes) -> str:
    """pyverbs' GID string form: eight groups of four hex digits."""
    assert len(gid) == 16
    return ":".join(gid[i:i + 2].hex() for i in range(0, 16, 2))


def gid_from_text(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed
