"""libqb IPC wire structs (x86_64 Linux, libqb 2.0.x) and validators for peer input.

This file owns the byte layouts of the libqb IPC protocol as the stock C library
(Debian 12: libqb 2.0.6) lays them out, and the one error type a malformed peer
produces. Every struct carries `aligned(8)` on each header field in libqb's headers,
so each int32 occupies an 8-byte slot; the sizes below are asserted here and
re-checked against the real compiler's `sizeof`/`offsetof` in tests/ipc.

Layouts (offset: field):
  qb_ipc_request_header      16 B  0 id i32, 8 size i32 (size = whole message)
  qb_ipc_response_header     24 B  0 id i32, 8 size i32, 16 error i32
  qb_ipc_connection_request  24 B  0 request header, 16 max_msg_size u32
  qb_ipc_connection_response 12328 B  0 response header, 24 connection_type i32,
                                   28 max_msg_size u32, 32 connection intptr,
                                   40 request[4096], 4136 response[4096], 8232 event[4096]
  socket-mode control file   24 B  3 x {sent i32, flow_control i32}: request, response, event
"""

import struct

# Reserved message ids (include/qb/qbipc_common.h): negative ids belong to libqb itself.
MSG_AUTHENTICATE = -1
MSG_NEW_EVENT_SOCK = -2
MSG_DISCONNECT = -3

# enum qb_ipc_type: the server picks the channel kind and the client follows.
IPC_TYPE_SOCKET = 0
IPC_TYPE_SHM = 1

PATH_MAX_BYTES = 4096
INT32_MAX = 2**31 - 1

REQUEST_HEADER = struct.Struct("<i4xi4x")
RESPONSE_HEADER = struct.Struct("<i4xi4xi4x")
CONNECTION_REQUEST = struct.Struct("<i4xi4xI4x")
CONNECTION_RESPONSE = struct.Struct(
    f"<i4xi4xi4xiIq{PATH_MAX_BYTES}s{PATH_MAX_BYTES}s{PATH_MAX_BYTES}s"
)
# One {int32 sent; int32 flow_control} record per channel, in this order.
CONTROL_RECORD = struct.Struct("<ii")
CONTROL_CHANNELS = ("request", "response", "event")
CONTROL_FILE_BYTES = CONTROL_RECORD.size * len(CONTROL_CHANNELS)

assert REQUEST_HEADER.size == 16
assert RESPONSE_HEADER.size == 24
assert CONNECTION_REQUEST.size == 24
assert CONNECTION_RESPONSE.size == 12328
assert CONTROL_FILE_BYTES == 24

# Byte offsets of the fields other modules poke at directly.
CONTROL_SENT_OFFSET = {ch: i * CONTROL_RECORD.size for i, ch in enumerate(CONTROL_CHANNELS)}
CONTROL_FLOW_OFFSET = {ch: i * CONTROL_RECORD.size + 4 for i, ch in enumerate(CONTROL_CHANNELS)}


class IpcProtocolError(Exception):
    """A peer sent bytes that break the libqb IPC protocol; the message says what and where."""


def _check_int32(value, what):
    if not -(2**31) <= value <= INT32_MAX:
        raise ValueError(f"{what}={value} does not fit the int32 field (allowed -2**31..2**31-1)")


def pack_request(msg_id: int, payload: bytes) -> bytes:
    """A request datagram: 16-byte header whose size counts header + payload."""
    _check_int32(msg_id, "request id")
    size = REQUEST_HEADER.size + len(payload)
    _check_int32(size, "request size")
    return REQUEST_HEADER.pack(msg_id, size) + payload


def pack_response(msg_id: int, error: int, payload: bytes) -> bytes:
    """A response or event datagram: 24-byte header {id, size, error} + payload."""
    _check_int32(msg_id, "response id")
    _check_int32(error, "response error")
    size = RESPONSE_HEADER.size + len(payload)
    _check_int32(size, "response size")
    return RESPONSE_HEADER.pack(msg_id, size, error) + payload


def _parse(datagram, header: struct.Struct, kind: str, c_name: str, where: str,
           max_msg_bytes: int):
    """(header fields, payload memoryview); the header's second field is the total size."""
    length = len(datagram)
    if length < header.size:
        raise IpcProtocolError(
            f"{where}: {kind} of {length} bytes is shorter than the "
            f"{header.size}-byte {c_name}"
        )
    fields = header.unpack_from(datagram, 0)
    _check_size(fields[1], length, header.size, where, kind, max_msg_bytes)
    return fields, memoryview(datagram)[header.size:fields[1]]


def parse_request(datagram, where: str, max_msg_bytes: int):
    """(msg_id, payload memoryview) from one request datagram, or IpcProtocolError."""
    (msg_id, _size), payload = _parse(datagram, REQUEST_HEADER, "request",
                                      "qb_ipc_request_header", where, max_msg_bytes)
    return msg_id, payload


def parse_response(datagram, where: str, max_msg_bytes: int):
    """(msg_id, error, payload memoryview) from one response/event datagram."""
    (msg_id, _size, error), payload = _parse(datagram, RESPONSE_HEADER, "response",
                                             "qb_ipc_response_header", where, max_msg_bytes)
    return msg_id, error, payload


def _check_size(size, length, header_bytes, where, kind, max_msg_bytes):
    # libqb receivers read exactly header.size bytes of the datagram, so a size that
    # disagrees with the datagram length means a truncated or padded (forged) message.
    if size != length:
        raise IpcProtocolError(
            f"{where}: {kind} header says size={size} but the datagram holds {length} bytes "
            f"(they must be equal)"
        )
    if size > max_msg_bytes:
        raise IpcProtocolError(
            f"{where}: {kind} of {size} bytes exceeds the negotiated maximum {max_msg_bytes}"
        )
    assert size >= header_bytes


def pack_connection_request(max_msg_bytes: int) -> bytes:
    if not 0 < max_msg_bytes <= INT32_MAX:
        raise ValueError(f"max_msg_bytes={max_msg_bytes}: allowed 1..{INT32_MAX}")
    return CONNECTION_REQUEST.pack(MSG_AUTHENTICATE, CONNECTION_REQUEST.size, max_msg_bytes)


def parse_connection_request(data: bytes, where: str) -> int:
    """The client's max_msg_size from the 24-byte setup request, or IpcProtocolError."""
    if len(data) != CONNECTION_REQUEST.size:
        raise IpcProtocolError(
            f"{where}: connection request is {len(data)} bytes, "
            f"expected exactly {CONNECTION_REQUEST.size}"
        )
    msg_id, size, max_msg_bytes = CONNECTION_REQUEST.unpack(data)
    if msg_id != MSG_AUTHENTICATE:
        raise IpcProtocolError(
            f"{where}: connection request id={msg_id}, expected {MSG_AUTHENTICATE} (AUTHENTICATE)"
        )
    if size != CONNECTION_REQUEST.size:
        raise IpcProtocolError(
            f"{where}: connection request header size={size}, expected {CONNECTION_REQUEST.size}"
        )
    if not 0 < max_msg_bytes <= INT32_MAX:
        raise IpcProtocolError(
            f"{where}: connection request max_msg_size={max_msg_bytes}, allowed 1..{INT32_MAX}"
        )
    return max_msg_bytes


def _path_field(path: str, what: str) -> bytes:
    raw = path.encode()
    if len(raw) >= PATH_MAX_BYTES:
        raise ValueError(f"{what} path of {len(raw)} bytes does not fit {PATH_MAX_BYTES} with its NUL")
    return raw


def pack_connection_response(error: int, *, connection_type: int = IPC_TYPE_SOCKET,
                             max_msg_bytes: int = 0, connection: int = 0,
                             request: str = "", response: str = "", event: str = "") -> bytes:
    """The 12 328-byte setup answer; error is 0 or a negative errno (libqb convention)."""
    _check_int32(error, "connection response error")
    return CONNECTION_RESPONSE.pack(
        MSG_AUTHENTICATE, CONNECTION_RESPONSE.size, error, connection_type, max_msg_bytes,
        connection, _path_field(request, "request"), _path_field(response, "response"),
        _path_field(event, "event"),
    )


def _c_string(raw: bytes, what: str, where: str) -> str:
    end = raw.find(b"\0")
    if end < 0:
        raise IpcProtocolError(f"{where}: {what} path field has no NUL terminator")
    try:
        return raw[:end].decode()
    except UnicodeDecodeError as exc:
        raise IpcProtocolError(f"{where}: {what} path is not UTF-8: {exc}") from None


def parse_connection_response(data: bytes, where: str) -> dict:
    """Fields of the setup answer; paths are checked only for form (absolute, NUL-ended)."""
    if len(data) != CONNECTION_RESPONSE.size:
        raise IpcProtocolError(
            f"{where}: connection response is {len(data)} bytes, expected {CONNECTION_RESPONSE.size}"
        )
    (msg_id, size, error, conn_type, max_msg_bytes, connection,
     request, response, event) = CONNECTION_RESPONSE.unpack(data)
    if msg_id != MSG_AUTHENTICATE or size != CONNECTION_RESPONSE.size:
        raise IpcProtocolError(
            f"{where}: connection response header id={msg_id} size={size}, expected "
            f"id={MSG_AUTHENTICATE} size={CONNECTION_RESPONSE.size}"
        )
    if error > 0:
        raise IpcProtocolError(f"{where}: connection response error={error}, expected 0 or -errno")
    fields = {"error": error, "connection_type": conn_type, "max_msg_bytes": max_msg_bytes,
              "connection": connection}
    if error != 0:
        return fields
    if conn_type not in (IPC_TYPE_SOCKET, IPC_TYPE_SHM):
        raise IpcProtocolError(f"{where}: unknown connection_type={conn_type} (0 socket, 1 shm)")
    if max_msg_bytes < RESPONSE_HEADER.size:
        raise IpcProtocolError(
            f"{where}: negotiated max_msg_size={max_msg_bytes} is below the "
            f"{RESPONSE_HEADER.size}-byte response header"
        )
    for name, raw in (("request", request), ("response", response), ("event", event)):
        fields[name] = _c_string(raw, name, where)
    for name in ("request", "response"):
        if not fields[name].startswith("/"):
            raise IpcProtocolError(
                f"{where}: {name} path {fields[name]!r} is not absolute; only libqb >= 1.0 "
                f"absolute /dev/shm names are supported"
            )
    return fields
