"""CPG/CMAP struct codecs: sizes equal gcc's sizeof, every pack/unpack pair round-trips,
malformed bodies raise StructError (never anything else).

The C sizes below were printed by gcc from Corosync 3.1.7's include/corosync/ipc_cpg.h
and ipc_cmap.h (x86-64; those headers are not installed by libcpg-dev, so the table is
recorded here, see docs/client.md). A request datagram is 16 + len(body) bytes, a
response or event datagram 24 + len(body).
"""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coroproc.ipc import cmap_structs as M
from coroproc.ipc import cpg_structs as C
from coroproc.ipc.mar import StructError

REQ, RES = 16, 24

# (datagram bytes from our packer, sizeof from gcc)
SIZES = [
    (REQ + len(C.pack_req_join("g", 1, 0)), 168),
    (REQ + len(C.pack_req_leave("g", 1)), 160),
    (REQ + len(C.pack_req_mcast(2, b"")), 40),
    (REQ + len(C.pack_req_partial_mcast(2, 5, 1, b"")), 56),
    (REQ + len(C.pack_req_membership_get("g")), 152),
    (RES + len(C.pack_res_membership([])), 9248),
    (RES + len(C.pack_res_local_get(1)), 32),
    (REQ + len(C.pack_req_iterationinitialize(3)), 160),
    (RES + len(C.pack_res_iterationinitialize(1)), 32),
    (REQ + len(C.pack_req_iterationnext(1)), 24),
    (RES + len(C.pack_res_iterationnext("g", 1, 2)), 168),
    (RES + len(C.pack_deliver_event("g", 1, 2, b"")), 184),
    (RES + len(C.pack_partial_deliver_event("g", 9, 1, 2, 1, b"")), 200),
    (RES + len(C.pack_confchg_event("g", [], [], [])), 184),
    (RES + len(C.pack_totem_confchg_event((1, 2), [])), 48),
    (RES + len(C.pack_flowcontrol_event(0)), 32),
    (REQ + len(C.pack_req_zc_alloc(1, "/p")), 152),
    (REQ + len(C.pack_req_zc_free(1, 2)), 32),
    (REQ + len(C.pack_req_zc_execute(1)), 24),
    (REQ + len(M.pack_req_set("k.k", M.UINT8, b"")), 296),
    (REQ + len(M.pack_req_delete("k.k")), 280),
    (REQ + len(M.pack_req_get("k.k", 0)), 288),
    (RES + len(M.pack_res_get(M.UINT8, 0)), 40),
    (REQ + len(M.pack_req_adjust_int("k.k", 1)), 288),
    (REQ + len(M.pack_req_iter_init("k")), 280),
    (RES + len(M.pack_res_iter_init(1)), 32),
    (REQ + len(M.pack_req_iter_next(1)), 24),
    (RES + len(M.pack_res_iter_next("k.k", 1, M.UINT8)), 304),
    (REQ + len(M.pack_req_track_add("k.k", 4, 1)), 296),
    (RES + len(M.pack_res_track_add(1)), 32),
    (REQ + len(M.pack_req_track_delete(1)), 24),
    (RES + len(M.pack_res_track_delete(1)), 32),
    (RES + len(M.pack_notify_event(1, "k.k", 4, 0, b"", 0, b"")), 336),
    (REQ + len(M.pack_req_set_current_map(1)), 24),
]


@pytest.mark.parametrize("ours,gcc", SIZES)
def test_sizes_match_the_c_structs(ours, gcc):
    assert ours == gcc


def test_field_offsets_of_the_quirky_structs():
    # cpg mcast: 8 junk bytes (response-header error slot), guarantee @24, msglen @32
    body = C.pack_req_mcast(3, b"xy")
    assert struct.unpack_from("<II", body, 8)[0] == 3 and body[16] == 2 and body[-2:] == b"xy"
    # confchg: counts are members, joined, left; arrays members, left, joined
    body = C.pack_confchg_event("g", [(1, 10, 0)], [(2, 20, 2)], [(3, 30, 1), (4, 40, 1)])
    assert struct.unpack_from("<I4xI4xI", body, 136) == (1, 2, 1)
    assert struct.unpack_from("<I", body, 160 + 24)[0] == 2     # first of left
    # totem confchg: member_list at datagram offset 44, 4 bytes of padding at the end
    body = C.pack_totem_confchg_event((7, 2**40), [5, 6])
    assert struct.unpack_from("<II", body, 44 - RES) == (5, 6) and len(body) == 24 + 8
    # cmap notify: new value then old value at datagram offset 336
    body = M.pack_notify_event(9, "a.b", 2, M.UINT8, b"\x02", M.UINT8, b"\x01")
    assert body[336 - RES:] == b"\x02\x01"


CPG_PAIRS = [
    (C.pack_req_join, C.unpack_req_join, (b"grp", 123, 1), (b"grp", 123, 1)),
    (C.pack_req_leave, C.unpack_req_leave, (b"grp", 9), (b"grp", 9)),
    (C.pack_req_mcast, C.unpack_req_mcast, (2, b"payload"), (2, b"payload")),
    (C.pack_req_partial_mcast, C.unpack_req_partial_mcast, (1, 10, 2, b"abc"),
     (1, 10, 2, b"abc")),
    (C.pack_req_membership_get, C.unpack_req_membership_get, (b"g" * 128,), b"g" * 128),
    (C.pack_req_iterationinitialize, C.unpack_req_iterationinitialize, (2, b"grp"), (2, b"grp")),
    (C.pack_req_iterationnext, C.unpack_req_iterationnext, (2**64 - 1,), 2**64 - 1),
    (C.pack_req_iterationfinalize, C.unpack_req_iterationfinalize, (5,), 5),
    (C.pack_req_zc_alloc, C.unpack_req_zc_alloc, (4096, "/dev/shm/x"), (4096, b"/dev/shm/x")),
    (C.pack_req_zc_free, C.unpack_req_zc_free, (1, 2), (1, 2)),
    (C.pack_req_zc_execute, C.unpack_req_zc_execute, (3,), 3),
    (C.pack_res_membership, C.unpack_res_membership, ([(1, 2), (3, 4, 5)],),
     [C.CpgAddress(1, 2, 0), C.CpgAddress(3, 4, 5)]),
    (C.pack_res_local_get, C.unpack_res_local_get, (7,), 7),
    (C.pack_res_iterationinitialize, C.unpack_res_iterationinitialize, (8,), 8),
    (C.pack_res_iterationnext, C.unpack_res_iterationnext, (b"g", 1, 2),
     C.IterationDescription(b"g", 1, 2)),
    (C.pack_deliver_event, C.unpack_deliver_event, (b"g", 1, 2, b"m"), C.Deliver(b"g", 1, 2, b"m")),
    (C.pack_partial_deliver_event, C.unpack_partial_deliver_event, (b"g", 9, 1, 2, 3, b"xyz"),
     C.PartialDeliver(b"g", 9, 1, 2, 3, b"xyz")),
    (C.pack_confchg_event, C.unpack_confchg_event, (b"g", [(1, 2, 0)], [(3, 4, 2)], [(5, 6, 1)]),
     C.Confchg(b"g", [(1, 2, 0)], [(3, 4, 2)], [(5, 6, 1)])),
    (C.pack_totem_confchg_event, C.unpack_totem_confchg_event, ((1, 99), [1, 2, 3]),
     C.TotemConfchg(C.RingId(1, 99), [1, 2, 3])),
    (C.pack_flowcontrol_event, C.unpack_flowcontrol_event, (1,), 1),
]

CMAP_PAIRS = [
    (M.pack_req_set, M.unpack_req_set, ("a.b", M.STRING, b"v"), ("a.b", M.STRING, b"v")),
    (M.pack_req_delete, M.unpack_req_delete, ("a.b",), "a.b"),
    (M.pack_req_get, M.unpack_req_get, ("a.b", 12), ("a.b", 12)),
    (M.pack_req_adjust_int, M.unpack_req_adjust_int, ("a.b", -1), ("a.b", -1)),
    (M.pack_req_iter_init, M.unpack_req_iter_init, (None,), ""),
    (M.pack_req_iter_next, M.unpack_req_iter_next, (4,), 4),
    (M.pack_req_iter_finalize, M.unpack_req_iter_finalize, (4,), 4),
    (M.pack_req_track_add, M.unpack_req_track_add, ("a.", 12, 77), ("a.", 12, 77)),
    (M.pack_req_track_delete, M.unpack_req_track_delete, (5,), 5),
    (M.pack_req_set_current_map, M.unpack_req_set_current_map, (1,), 1),
    (M.pack_res_get, M.unpack_res_get, (M.UINT16, 2, b"\x01\x00"), (M.UINT16, 2, b"\x01\x00")),
    (M.pack_res_get, M.unpack_res_get, (M.STRING, 6), (M.STRING, 6, None)),
    (M.pack_res_iter_init, M.unpack_res_iter_init, (3,), 3),
    (M.pack_res_iter_next, M.unpack_res_iter_next, ("a.b", 4, M.UINT32),
     M.IterItem("a.b", 4, M.UINT32)),
    (M.pack_res_track_add, M.unpack_res_track_add, (6,), 6),
    (M.pack_res_track_delete, M.unpack_res_track_delete, (6,), 6),
    (M.pack_notify_event, M.unpack_notify_event, (1, "a.b", 2, M.UINT8, b"\x02", M.UINT8, b"\x01"),
     M.Notify(1, "a.b", 2, M.UINT8, b"\x02", M.UINT8, b"\x01")),
]


@pytest.mark.parametrize("pack,unpack,args,expected", CPG_PAIRS + CMAP_PAIRS,
                         ids=lambda v: getattr(v, "__name__", None))
def test_round_trip(pack, unpack, args, expected):
    body = pack(*args)
    assert unpack(body) == expected
    assert unpack(memoryview(bytearray(body))) == expected  # any buffer type works


@pytest.mark.parametrize("pack,unpack,args,expected", CPG_PAIRS + CMAP_PAIRS,
                         ids=lambda v: getattr(v, "__name__", None))
def test_truncated_body_is_rejected_with_the_struct_name(pack, unpack, args, expected):
    body = pack(*args)
    if not body:
        pytest.skip("header-only message")
    if unpack is C.unpack_res_membership:  # accepts a reply trimmed after the last member
        body = body[:8 + 24 * len(expected)]
    with pytest.raises(StructError) as err:
        unpack(body[:-1] if len(body) > 8 else body[:len(body) // 2])
    assert "lib_" in str(err.value) or "mar_" in str(err.value)


@pytest.mark.parametrize("unpack,body,words", [
    (C.unpack_req_join, C.pack_req_join("g", 1) + b"\0" * 8, "exactly 152"),
    (C.unpack_req_mcast, C.pack_req_mcast(1, b"abc") + b"x", "msglen=3"),
    (C.unpack_req_partial_mcast, C.pack_req_partial_mcast(1, 9, 1, b"ab")[:-1], "fraglen=2"),
    (C.unpack_req_partial_mcast, struct.pack("<8xI4xI4xI4xI4x", 1, 2, 3, 1) + b"abc",
     "fraglen=3 exceeds msglen=2"),
    (C.unpack_req_partial_mcast, struct.pack("<8xI4xI4xI4xI4x", 1, 5, 1, 4) + b"a", "type=4"),
    (C.unpack_req_join, struct.pack("<I4x128sI4xI4x", 129, b"", 1, 0), "length=129"),
    (C.unpack_confchg_event, C.pack_confchg_event("g", [(1, 2)], [], [])[:-24], "members=1"),
    (C.unpack_totem_confchg_event, C.pack_totem_confchg_event((1, 1), [1]) + b"\0" * 8,
     "member_list_entries=1"),
    (C.unpack_res_membership, struct.pack("<I4x", 385), "member_count=385"),
    (C.unpack_deliver_event, C.pack_deliver_event("g", 1, 2, b"ab")[:-1], "msglen=2"),
    (M.unpack_req_set, M.pack_req_set("a.b", M.UINT8, b"\x01") + b"\x02", "value_len=1"),
    (M.unpack_req_set, M.pack_req_set("a.b", M.UINT8, b"")[:-16] + struct.pack("<Q", 0)
     + struct.pack("<B7x", 13), "type=13"),
    (M.unpack_req_delete, struct.pack("<H6x256s", 257, b""), "length=257"),
    (M.unpack_req_delete, struct.pack("<H6x256s", 2, b"\xff\xfe"), "not ASCII"),
    (M.unpack_res_get, M.pack_res_get(M.UINT32, 4, b"\0\0\0\0")[:-2], "value_len=4"),
    (M.unpack_notify_event, M.pack_notify_event(1, "a", 1, M.UINT8, b"\x01", 0, b"") + b"x",
     "old_value_len=0"),
])
def test_inconsistent_bodies_are_rejected(unpack, body, words):
    with pytest.raises(StructError) as err:
        unpack(body)
    assert words in str(err.value)


@pytest.mark.parametrize("call,args,words", [
    (C.pack_req_join, ("g" * 129, 1), "at most 128"),
    (C.pack_req_join, ("g", -1), "pid=-1"),
    (C.pack_req_partial_mcast, (1, 2, 1, b"abc"), "exceeds msglen"),
    (C.pack_req_iterationinitialize, (4,), "iteration_type=4"),
    (C.pack_res_membership, ([(1, 1)] * 385,), "at most 384"),
    (M.pack_req_delete, ("k" * 256,), "at most 255"),
    (M.pack_req_set_current_map, (2,), "map=2"),
    (M.encode_value, (M.UINT8, 256), "out of range"),
    (M.encode_value, (M.INT32, "1"), "expected an int"),
    (M.encode_value, (M.STRING, "a\0b"), "NUL"),
    (M.encode_value, (13, 1), "type=13"),
    (M.decode_value, (M.UINT32, b"\0"), "expected 4"),
])
def test_bad_arguments_to_packers(call, args, words):
    with pytest.raises(StructError) as err:
        call(*args)
    assert words in str(err.value)


@pytest.mark.parametrize("value_type,value", [
    (M.INT8, -128), (M.UINT8, 255), (M.INT16, -2), (M.UINT16, 65535), (M.INT32, -5),
    (M.UINT32, 2**32 - 1), (M.INT64, -(2**63)), (M.UINT64, 2**64 - 1), (M.FLOAT, 0.5),
    (M.DOUBLE, 1e300), (M.STRING, "héllo"), (M.BINARY, b"\0\xff"),
])
def test_typed_values_round_trip(value_type, value):
    raw = M.encode_value(value_type, value)
    assert M.decode_value(value_type, raw) == value
    size = M.value_size(value_type)
    assert size is None or size == len(raw)


def test_strings_decode_up_to_their_nul():
    assert M.decode_value(M.STRING, b"abc\0") == "abc"


UNPACKERS = [pair[1] for pair in CPG_PAIRS + CMAP_PAIRS] + [
    C.unpack_req_local_get, C.unpack_req_finalize]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(UNPACKERS), st.binary(max_size=600))
def test_garbage_gives_a_result_or_struct_error(unpack, data):
    try:
        unpack(data)
    except StructError:
        pass
