"""wire.py and names.py against the real compiler's layout of libqb's headers, plus
the validators: any bytes give a value or IpcProtocolError, never another exception."""

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.ipc import names, wire


def test_struct_layout_matches_libqb_headers(c_programs):
    out = subprocess.run([c_programs["layout"]], capture_output=True, text=True, check=True)
    got = {k: int(v) for k, v in (line.split() for line in out.stdout.splitlines())}
    assert got == {
        "request_header.size": wire.REQUEST_HEADER.size,
        "request_header.id": 0,
        "request_header.size_field": 8,
        "response_header.size": wire.RESPONSE_HEADER.size,
        "response_header.size_field": 8,
        "response_header.error": 16,
        "msg_authenticate": wire.MSG_AUTHENTICATE,
        "msg_disconnect": wire.MSG_DISCONNECT,
        "type_socket": wire.IPC_TYPE_SOCKET,
        "type_shm": wire.IPC_TYPE_SHM,
    }


def test_request_round_trip():
    msg = wire.pack_request(7, b"abc")
    msg_id, payload = wire.parse_request(msg, "test", 1024)
    assert (msg_id, bytes(payload)) == (7, b"abc")


def test_truncated_header_is_a_protocol_error():
    with pytest.raises(wire.IpcProtocolError, match="shorter than the 16-byte"):
        wire.parse_request(wire.pack_request(1, b"")[:12], "test", 1024)


def test_size_field_larger_than_datagram_is_a_protocol_error():
    msg = bytearray(wire.pack_request(1, b"abcd"))
    wire.REQUEST_HEADER.pack_into(msg, 0, 1, 1000)
    with pytest.raises(wire.IpcProtocolError, match="size=1000 but the datagram holds 20"):
        wire.parse_request(bytes(msg), "test", 4096)


def test_message_over_negotiated_max_is_a_protocol_error():
    with pytest.raises(wire.IpcProtocolError, match="exceeds the negotiated maximum 64"):
        wire.parse_response(wire.pack_response(1, 0, b"x" * 100), "test", 64)


def test_connection_request_validation():
    assert wire.parse_connection_request(wire.pack_connection_request(4096), "t") == 4096
    bad_id = wire.CONNECTION_REQUEST.pack(5, 24, 4096)
    with pytest.raises(wire.IpcProtocolError, match="id=5"):
        wire.parse_connection_request(bad_id, "t")
    huge = wire.CONNECTION_REQUEST.pack(-1, 24, 2**32 - 1)
    with pytest.raises(wire.IpcProtocolError, match="max_msg_size=4294967295"):
        wire.parse_connection_request(huge, "t")


def test_connection_response_round_trip():
    raw = wire.pack_connection_response(0, max_msg_bytes=65536, connection=9,
                                        request="/dev/shm/qb-1-2-3-x/qb-control-cpg",
                                        response="/dev/shm/qb-1-2-3-x/qb-cpg")
    fields = wire.parse_connection_response(raw, "t")
    assert fields["max_msg_bytes"] == 65536 and fields["response"].endswith("qb-cpg")
    refused = wire.parse_connection_response(wire.pack_connection_response(-13), "t")
    assert refused["error"] == -13


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(min_value=16, max_value=128))
def test_parsers_raise_only_protocol_errors(data, max_bytes):
    for parse in (lambda: wire.parse_request(data, "fuzz", max_bytes),
                  lambda: wire.parse_response(data, "fuzz", max_bytes),
                  lambda: wire.parse_connection_request(data, "fuzz")):
        try:
            parse()
        except wire.IpcProtocolError:
            pass


_path = st.one_of(st.binary(max_size=48), st.just(b"/" * wire.PATH_MAX_BYTES))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([-1, 0, 7]), st.sampled_from([wire.CONNECTION_RESPONSE.size, 24]),
       st.sampled_from([0, -13, 5]), st.sampled_from([0, 1, 9]),
       st.integers(min_value=0, max_value=2**32 - 1), _path, _path, _path)
def test_connection_response_parser_raises_only_protocol_errors(msg_id, size, error, kind,
                                                                max_bytes, req, resp, ev):
    raw = wire.CONNECTION_RESPONSE.pack(msg_id, size, error, kind, max_bytes, 0, req, resp, ev)
    try:
        wire.parse_connection_response(raw, "fuzz")
    except wire.IpcProtocolError:
        pass


def test_abstract_address_is_padded_like_libqb():
    addr = names.abstract_address("cpg")
    assert len(addr) == names.SUN_PATH_BYTES and addr.startswith(b"\0cpg\0")
    with pytest.raises(ValueError, match="at most 107"):
        names.abstract_address("x" * 108)
    with pytest.raises(ValueError, match="without '/'"):
        names.service_name("cp/g")
