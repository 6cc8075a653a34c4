"""Address resolution per totem.ip_version, and "is this address one of this host's?".

Resolution follows totemip_parse: literal addresses are taken as written; names go
through getaddrinfo in the family order ip_version names (ipv6-4: IPv6 first, then IPv4).
Locality is decided by binding a UDP socket to the address: the kernel accepts exactly the
addresses it would deliver locally — interface addresses and all of 127.0.0.0/8 — which
is also what the net process will have to bind. When net.ipv4.ip_nonlocal_bind (or the
IPv6 twin) is on, bind accepts anything, so the interface list (SIOCGIFCONF and
/proc/net/if_inet6) is consulted instead.
"""
from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct

_FAMILIES = {
    "ipv4": (socket.AF_INET,),
    "ipv6": (socket.AF_INET6,),
    "ipv4-6": (socket.AF_INET, socket.AF_INET6),
    "ipv6-4": (socket.AF_INET6, socket.AF_INET),
}
SIOCGIFCONF = 0x8912
_IFREQ_BYTES = 40  # struct ifreq on 64-bit Linux
_IFCONF_ENTRIES_MAX = 1024


class ResolveError(ValueError):
    """The name or address does not resolve in any family ip_version allows."""


def resolve(host: str, ip_version: str) -> str:
    """First address of ``host`` in ip_version's family order, as a canonical string."""
    families = _FAMILIES[ip_version]
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        family = socket.AF_INET if literal.version == 4 else socket.AF_INET6
        if family not in families:
            raise ResolveError(f"{host} is an IPv{literal.version} address but "
                               f"ip_version is {ip_version}")
        return str(literal)
    for family in families:
        try:
            infos = socket.getaddrinfo(host, None, family, socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError, ValueError):
            continue
        if infos:
            return str(ipaddress.ip_address(infos[0][4][0].split("%", 1)[0]))
    raise ResolveError(f"{host!r} does not resolve to an address allowed by "
                       f"ip_version {ip_version}")


def _nonlocal_bind_enabled(version: int) -> bool:
    path = ("/proc/sys/net/ipv4/ip_nonlocal_bind" if version == 4
            else "/proc/sys/net/ipv6/ip_nonlocal_bind")
    try:
        with open(path) as f:
            return f.read().strip() != "0"
    except OSError:
        return False


def interface_addresses() -> set[str]:
    """Every IPv4 and IPv6 address configured on this host's interfaces."""
    found: set[str] = set()
    buf = array.array("B", bytes(_IFREQ_BYTES * _IFCONF_ENTRIES_MAX))
    address, _ = buf.buffer_info()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifconf = struct.pack("iL", len(buf), address)
        used = struct.unpack("iL", fcntl.ioctl(s.fileno(), SIOCGIFCONF, ifconf))[0]
    raw = buf.tobytes()
    for offset in range(0, used, _IFREQ_BYTES):
        found.add(socket.inet_ntoa(raw[offset + 20:offset + 24]))
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hex_addr = line.split()[0]
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(hex_addr))))
    except OSError:
        pass
    return found


def is_local(addr: str) -> bool:
    """True when this host would receive packets sent to ``addr``."""
    ip = ipaddress.ip_address(addr)
    if ip.is_multicast or ip.is_unspecified:
        return False  # bind accepts these, but no peer sends unicast Totem to them
    if _nonlocal_bind_enabled(ip.version):
        return addr in interface_addresses() or (ip.version == 4 and ip.is_loopback)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((addr, 0))
        except OSError:
            return False
    return True
