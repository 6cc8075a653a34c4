"""MESSAGE_REQ_EXEC_CMAP_MCAST byte for byte (exec/cmap.c structs with aligned(8) fields),
and the parser's answer to garbage: a message or ExecMessageError, nothing else."""
from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.engineprocs.api import EXEC_HEADER
from coroproc.engineprocs.cmap import exec_msgs as X
from coroproc.engineprocs.cmap import keys as K


def test_sync_message_layout_matches_corosync():
    item = X.config_version_item((K.UINT64, struct.pack("<Q", 0x1122334455667788)))
    body = X.pack_mcast(X.REASON_SYNC, [item])
    # whole message as Corosync puts it on the wire: 16-byte header + 32 + one 288-byte item
    message = EXEC_HEADER.pack(0, 16 + len(body)) + body
    assert len(message) == 336
    assert struct.unpack_from("<i", message, 0)[0] == 0            # (CMAP << 16) | MCAST
    assert struct.unpack_from("<i", message, 8)[0] == 336          # header.size
    assert message[16] == X.REASON_SYNC and message[24] == 1       # reason, no_items
    assert message[17:24] == b"\0" * 7 and message[32:48] == b"\0" * 16
    item_at = 48
    assert struct.unpack_from("<H", message, item_at)[0] == len("totem.config_version")
    assert message[item_at + 8:item_at + 28] == b"totem.config_version"
    assert message[item_at + 28] == 0                              # strcpy's NUL
    assert message[item_at + 264] == K.UINT64                      # value_type
    assert struct.unpack_from("<Q", message, item_at + 272)[0] == 8  # value_len
    assert struct.unpack_from("<Q", message, item_at + 280)[0] == 0x1122334455667788
    parsed = X.unpack_mcast(body)
    assert parsed.reason == X.REASON_SYNC and X.config_version_of(parsed) == 0x1122334455667788


def test_absent_key_travels_as_type_zero_and_items_align_to_8():
    body = X.pack_mcast(X.REASON_NEW_CONFIG_VERSION,
                        [X.config_version_item(None), X.McastItem("a.b", K.STRING, b"xyz\0")])
    assert len(body) == 32 + 280 + (280 + 8)          # 4-byte string padded to 8
    parsed = X.unpack_mcast(body)
    assert parsed.items[0] == X.McastItem("totem.config_version", 0, b"")
    assert parsed.items[1] == X.McastItem("a.b", K.STRING, b"xyz\0")
    assert X.config_version_of(parsed) == 0


def test_a_non_u64_config_version_reads_as_zero():
    body = X.pack_mcast(X.REASON_SYNC, [X.McastItem("totem.config_version", K.UINT32,
                                                    b"\5\0\0\0")])
    assert X.config_version_of(X.unpack_mcast(body)) == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=700))
def test_garbage_parses_or_raises_exec_message_error(blob):
    try:
        X.unpack_mcast(blob)
    except X.ExecMessageError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**64 - 1), st.integers(0, 1))
def test_roundtrip(version, reason):
    body = X.pack_mcast(reason, [X.config_version_item((K.UINT64, struct.pack("<Q", version)))])
    parsed = X.unpack_mcast(body)
    assert (parsed.reason, X.config_version_of(parsed)) == (reason, version)
