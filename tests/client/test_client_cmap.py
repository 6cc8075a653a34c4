"""coroproc.client.cmap against the real Corosync 3.1.7 daemon (socket-mode IPC).

One scenario process (cmap_scenario.py) runs every call inside the daemon's
namespaces and reports what came back; each test checks one part of that report.
"""

import json

import pytest

from coroproc.ipc import cmap_structs as S


@pytest.fixture(scope="module")
def report(daemon):
    return json.loads(daemon.scenario("cmap_scenario.py", "clienttest.").stdout)


def test_reads_config_and_runtime_keys(report, daemon):
    assert report["cluster_name"][0] == S.STRING
    assert report["cluster_name"][1].startswith("cl")
    assert report["token"] == [S.UINT32, 1000]


def test_every_value_type_round_trips_through_the_daemon(report):
    assert report["typed"] == {
        "i8": [S.INT8, -128], "u8": [S.UINT8, 255], "i16": [S.INT16, -32768],
        "u16": [S.UINT16, 65535], "i32": [S.INT32, -(2**31)], "u32": [S.UINT32, 2**32 - 1],
        "i64": [S.INT64, -(2**63)], "u64": [S.UINT64, 2**64 - 1], "flt": [S.FLOAT, 1.5],
        "dbl": [S.DOUBLE, -2.25], "str": [S.STRING, "hello world"],
        "bin": [S.BINARY, "0001feff"]}
    # the daemon stores strings with their NUL although libcmap sends them without
    assert report["typed_raw_str"] == b"hello world\0".hex()
    assert report["get_uint32"] == 2**32 - 1
    assert report["get_string"] == "hello world"


def test_errors_carry_corosyncs_codes(report):
    assert report["mismatch"] == "CS_ERR_INVALID_PARAM"
    assert report["out_of_range"] == "CS_ERR_INVALID_PARAM"
    assert report["missing"] == "CS_ERR_NOT_EXIST"
    assert report["too_long"] == "CS_ERR_NAME_TOO_LONG"
    assert report["delete_missing"] == "CS_ERR_NOT_EXIST"
    assert report["inc_string"] == "CS_ERR_INVALID_PARAM"
    assert report["after_finalize"] == "CS_ERR_BAD_HANDLE"
    assert report["double_finalize"] == "CS_ERR_BAD_HANDLE"


def test_inc_dec_delete_and_sorted_iteration(report):
    assert report["counter"] == 11
    assert report["after_delete"] == "CS_ERR_NOT_EXIST"
    names = ["bin", "dbl", "flt", "i16", "i32", "i64", "i8", "str", "u16", "u32", "u64", "u8"]
    sizes = {"bin": 4, "dbl": 8, "flt": 4, "i16": 2, "i32": 4, "i64": 8, "i8": 1,
             "str": 12, "u16": 2, "u32": 4, "u64": 8, "u8": 1}
    assert report["iter"] == [[f"clienttest.typed.{n}", S.TYPES_BY_NAME[n], sizes[n]]
                              for n in names]
    assert report["left_over"] == []


def test_track_events_add_modify_delete_then_nothing_after_track_delete(report):
    assert report["track_events"] == [
        [S.TRACK_ADD, "clienttest.trk.a", S.UINT16, 1, 0, None, "ud"],
        [S.TRACK_MODIFY, "clienttest.trk.a", S.UINT16, 2, S.UINT16, 1, "ud"],
        [S.TRACK_DELETE, "clienttest.trk.a", 0, None, S.UINT16, 2, "ud"],
    ]
    assert report["after_track_delete"] == 0


def test_asyncio_stream_and_reader_deliver_every_event_in_order(report):
    assert report["aio_stream"] == [[f"clienttest.aio.k{i}", i, 7] for i in range(5)]
    assert report["aio_reader"] == [f"clienttest.aio.k{i}" for i in range(5)]


def test_stats_map_is_readable_and_read_only(report):
    assert report["stats_keys"] >= 2
    assert report["stats_active_type"] == S.UINT64
    assert report["stats_set"] == "CS_ERR_ACCESS"
    assert report["stats_missing_icmap_key"] == "CS_ERR_NOT_EXIST"
