"""Where libqb socket-mode IPC lives: socket addresses and per-connection file names.

This file owns the naming rules both ends must agree on byte for byte:
* the setup (listening) socket is the abstract AF_UNIX name "\\0<service>" zero-padded
  to the full 108-byte sun_path (libqb binds and connects with addrlen =
  sizeof(struct sockaddr_un) = 110), so "\\0cpg" unpadded is a *different* address;
* a connection's description is "/dev/shm/qb-<srvpid>-<clientpid>-<fd>-<random>/qb";
  its control file is "<description>-control-<service>" and its channel base name is
  "<description>-<service>";
* the four datagram channels are abstract sockets "\\0<base>-request", "-event-tx"
  (bound by the server) and "-response", "-event" (bound by the client), padded the
  same way, because names that start with "/" are always abstract in libqb.
"""

import os

SUN_PATH_BYTES = 108
SHM_DIR = "/dev/shm"
CONNECTION_DIR_PREFIX = "qb-"
DESCRIPTION_LEAF = "qb"

# Channel suffixes on the base name; which side binds which is fixed by libqb.
SERVER_REQUEST = "request"   # server binds; client sends requests here
SERVER_EVENT_TX = "event-tx"  # server binds; events leave from here
CLIENT_RESPONSE = "response"  # client binds; responses arrive here
CLIENT_EVENT = "event"        # client binds; events arrive here


def abstract_address(name: str) -> bytes:
    """The padded abstract sun_path libqb uses for `name` (which must not start with NUL)."""
    raw = name.encode()
    if not raw or raw.startswith(b"\0"):
        raise ValueError(f"socket name {name!r}: must be non-empty and not start with NUL")
    if len(raw) + 1 > SUN_PATH_BYTES:
        raise ValueError(
            f"socket name {name!r} is {len(raw)} bytes; at most {SUN_PATH_BYTES - 1} fit "
            f"an abstract sun_path"
        )
    return (b"\0" + raw).ljust(SUN_PATH_BYTES, b"\0")


def service_name(service: str, suffix: str = "") -> str:
    """The libqb service name clients connect to: Corosync's name plus an optional suffix."""
    name = service + suffix
    if not name or "/" in name or "\0" in name:
        raise ValueError(f"IPC service name {name!r}: must be non-empty, without '/' or NUL")
    abstract_address(name)  # length check
    return name


def control_path(description: str, service: str) -> str:
    return f"{description}-control-{service}"


def channel_base(description: str, service: str) -> str:
    return f"{description}-{service}"


def channel_address(base: str, channel: str) -> bytes:
    return abstract_address(f"{base}-{channel}")


def connection_dir_prefix(server_pid: int, client_pid: int, setup_fd: int) -> str:
    return f"{CONNECTION_DIR_PREFIX}{server_pid}-{client_pid}-{setup_fd}-"


def description_of(connection_dir: str) -> str:
    return os.path.join(connection_dir, DESCRIPTION_LEAF)


def connection_dir_of(description: str) -> str:
    """The directory libqb removes on disconnect: the description minus its last part."""
    return os.path.dirname(description)


def stale_connection_dirs(service: str, shm_dir: str = SHM_DIR, *,
                          suffix_only: bool = False) -> list[str]:
    """Connection directories of `service` (its full name, suffix included) left by a
    server process that no longer exists — e.g. an engine killed with SIGKILL whose
    clients died too, so neither end removed them. A live server's are never listed.
    suffix_only: `service` is only the names' suffix (every service of one node)."""
    out = []
    marker = f"qb-control-{service}"
    try:
        entries = os.listdir(shm_dir)
    except OSError:
        return out
    for entry in entries:
        parts = entry.split("-")
        if len(parts) < 5 or parts[0] != "qb" or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _alive(pid):
            continue
        path = os.path.join(shm_dir, entry)
        try:
            files = os.listdir(path)
        except OSError:
            continue
        if suffix_only:
            mine = bool(service) and all(f.startswith("qb-control-") and f.endswith(service)
                                         for f in files)
        else:
            mine = all(f == marker for f in files)
        if files and mine:
            out.append(path)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_connection_dirs(service: str, shm_dir: str = SHM_DIR, *,
                                 suffix_only: bool = False) -> int:
    """Remove what stale_connection_dirs lists; returns how many went."""
    removed = 0
    for path in stale_connection_dirs(service, shm_dir, suffix_only=suffix_only):
        try:
            for f in os.listdir(path):
                os.unlink(os.path.join(path, f))
            os.rmdir(path)
            removed += 1
        except OSError:
            pass  # another process is cleaning it up too
    return removed
