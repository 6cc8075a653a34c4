"""How big one socket-mode IPC message can be on this kernel, found by trying.

This file owns the datagram-size probe. libqb socket mode sends every message as one
AF_UNIX SOCK_DGRAM datagram and raises SO_SNDBUF/SO_RCVBUF to the negotiated
max_msg_size with plain SO_SNDBUF, which the kernel caps at 2 x net.core.wmem_max; a
unix datagram must also fit sk_sndbuf minus a small overhead and the kernel's own
skb allocation limit. The numbers differ per host (docs/ipc.md lists what we
measured), so the server probes once at start, like libqb's
qb_ipcc_verify_dgram_max_msg_size, and warns when the configured maximum cannot pass.
"""

import errno
import socket

PROBE_STEP_BYTES = 4096


def set_buffer_sizes(sock: socket.socket, max_msg_bytes: int) -> None:
    """Raise send/receive buffers to max_msg_bytes as libqb does (never lower them)."""
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        if sock.getsockopt(socket.SOL_SOCKET, opt) <= max_msg_bytes:
            sock.setsockopt(socket.SOL_SOCKET, opt, max_msg_bytes)


def _passes(size_bytes: int, a: socket.socket, b: socket.socket) -> bool:
    try:
        a.send(bytes(size_bytes))
    except OSError as exc:
        if exc.errno in (errno.EMSGSIZE, errno.ENOBUFS, errno.EAGAIN):
            return False
        raise
    got = b.recv(size_bytes + 1)
    assert len(got) == size_bytes
    return True


def datagram_limit_bytes(max_msg_bytes: int) -> int:
    """Largest datagram <= max_msg_bytes that passes after libqb-style buffer sizing.

    Exact to PROBE_STEP_BYTES below the limit (binary search over sizes)."""
    assert max_msg_bytes > 0
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for s in (a, b):
            set_buffer_sizes(s, max_msg_bytes)
        if _passes(max_msg_bytes, a, b):
            return max_msg_bytes
        low, high = 0, max_msg_bytes  # low passes (trivially), high fails
        while high - low > PROBE_STEP_BYTES:
            mid = (low + high) // 2
            if _passes(mid, a, b):
                low = mid
            else:
                high = mid
        return low
    finally:
        a.close()
        b.close()


WMEM_MAX_PATH = "/proc/sys/net/core/wmem_max"
RMEM_MAX_PATH = "/proc/sys/net/core/rmem_max"


def _read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[0])


def raise_kernel_limits(max_msg_bytes: int) -> list[str]:
    """Let one socket-mode datagram carry max_msg_bytes (e.g. a 1 MiB CPG message from
    an unmodified libcpg, which sends up to IPC_REQUEST_SIZE - 1024 bytes in one request).

    libqb sizes each socket's buffers to max_msg_bytes and the kernel caps that at
    net.core.{w,r}mem_max; those two host-wide limits are raised (never lowered) to
    max_msg_bytes plus headroom. Returns what was done or why it could not be, one line
    each, for the daemon's log. Needs root (CAP_NET_ADMIN in the initial namespace)."""
    want = max_msg_bytes + 64 * 1024
    done = []
    for path in (WMEM_MAX_PATH, RMEM_MAX_PATH):
        name = "net.core." + path.rsplit("/", 1)[1]
        try:
            have = _read_int(path)
            if have >= want:
                continue
            with open(path, "w") as f:
                f.write(str(want))
            done.append(f"raised {name} from {have} to {want} so {max_msg_bytes}-byte IPC "
                        "messages fit one datagram (libqb socket mode)")
        except OSError as exc:
            done.append(f"cannot raise {name} to {want} ({exc.strerror}); IPC messages larger "
                        f"than {datagram_limit_bytes(max_msg_bytes)} bytes will fail — set it "
                        "with sysctl (deploy/sysctl.d/90-coroproc.conf)")
    return done
