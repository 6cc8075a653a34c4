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
