"""CmapEngine lib handlers through a recording connection: replies and error codes as
exec/cmap.c gives them, handle rules, tracking events, the stats map, runtime.members."""
from __future__ import annotations

import struct

import pytest

from coroproc.engineprocs.api import (
    CONFIG_REGULAR,
    CONFIG_TRANSITIONAL,
    Configuration,
    RingId,
)
from coroproc.engineprocs.cmap import keys as K
from coroproc.engineprocs.cmap.conn_state import ITERATORS_MAX, TRACKS_MAX
from coroproc.engineprocs.cmap.stats_map import STATS_ASK_AGAIN_MS, STATS_WAIT_MS
from coroproc.ipc.server import DEFER
from coroproc.ipc.mar import StructError

from .cmap_helpers import (
    RecConn,
    new_engine,
    notify_event,
    req_adjust,
    req_get,
    req_handle,
    req_set,
    req_track_add,
    res_get,
    res_iter_next,
)

SET, DELETE, GET, ADJUST, ITER_INIT, ITER_NEXT, ITER_FIN, TRACK_ADD, TRACK_DEL, SETMAP = range(10)
T_ADD, T_DEL, T_MOD, T_PREFIX = 4, 1, 2, 8


@pytest.fixture
def eng():
    engine, ctx = new_engine()
    conn = RecConn()
    engine.on_connect(conn)
    engine.stats.request()               # a fresh stats snapshot: reads do not wait for one
    ctx.answer_counters(RING_COUNTERS)
    return engine, ctx, conn


def call(engine, conn, req_id, body):
    return engine.lib_handlers()[req_id](conn, memoryview(body))


def u32(v):
    return struct.pack("<I", v)


def test_set_get_roundtrip_and_reply_ids(eng):
    engine, _, conn = eng
    assert call(engine, conn, SET, req_set("test.a", K.UINT32, u32(7))) == (0, K.CS_OK, b"")
    rid, err, body = call(engine, conn, GET, req_get("test.a", 8))
    assert (rid, err) == (2, K.CS_OK) and res_get(body) == (4, K.UINT32, u32(7))
    # buffer 0: type and length only (what cmap_get(value=NULL) asks)
    assert res_get(call(engine, conn, GET, req_get("test.a", 0))[2]) == (4, K.UINT32, b"")
    # a buffer smaller than the value is CS_ERR_INVALID_PARAM, as icmap_get_r
    assert call(engine, conn, GET, req_get("test.a", 2))[1] == K.CS_ERR_INVALID_PARAM
    rid, err, body = call(engine, conn, GET, req_get("test.missing", 8))
    assert (rid, err, len(body)) == (2, K.CS_ERR_NOT_EXIST, 16)
    # strings come back with their NUL
    call(engine, conn, SET, req_set("test.s", K.STRING, b"hello\0"))
    body = call(engine, conn, GET, req_get("test.s", 100))[2]
    assert res_get(body) == (6, K.STRING, b"hello\0")
    assert len(body) == 16 + 100          # sized for the client's buffer, as Corosync


def test_set_errors(eng):
    engine, _, conn = eng
    assert call(engine, conn, SET, req_set("ab", K.UINT8, b"\1"))[1] == K.CS_ERR_NAME_TOO_LONG
    assert call(engine, conn, SET, req_set("a b.c", K.UINT8, b"\1"))[1] == \
        K.CS_ERR_NAME_TOO_LONG
    assert call(engine, conn, SET, req_set("test.x", K.UINT8, b"\1\2"))[1] == \
        K.CS_ERR_INVALID_PARAM
    for ro in ("nodelist.node.0.ring0_addr", "runtime.config.totem.token",
               "internal_configuration.x", "totem.cluster_name", "system.foo",
               "uidgid.config.uid.5", "runtime.services.cmap.service_id"):
        assert call(engine, conn, SET, req_set(ro, K.UINT8, b"\1"))[1] == K.CS_ERR_ACCESS
        assert call(engine, conn, DELETE, req_set(ro, 0, b"")[:264])[1] == K.CS_ERR_ACCESS
        assert call(engine, conn, ADJUST, req_adjust(ro, 1))[1] == K.CS_ERR_ACCESS


def test_malformed_requests_raise_struct_errors(eng):
    """The host's EngineCore answers these CS_ERR_INVALID_PARAM (test_cmap_sync checks it
    end to end); here: the handler refuses them instead of guessing."""
    engine, _, conn = eng
    with pytest.raises(StructError):
        call(engine, conn, SET, req_set("test.x", 99, b"\1"))
    with pytest.raises(StructError):
        call(engine, conn, SET, req_set("test.a", K.UINT32, u32(7))[:-5])
    with pytest.raises(StructError):
        call(engine, conn, GET, b"\0" * 10)
    bad_name = bytearray(req_get("test.a", 0))
    struct.pack_into("<H", bad_name, 0, 300)
    with pytest.raises(StructError):
        call(engine, conn, GET, bytes(bad_name))


def test_delete_and_adjust(eng):
    engine, _, conn = eng
    call(engine, conn, SET, req_set("test.n", K.UINT8, b"\xff"))
    assert call(engine, conn, ADJUST, req_adjust("test.n", 1)) == (3, K.CS_OK, b"")
    assert res_get(call(engine, conn, GET, req_get("test.n", 1))[2])[2] == b"\0"
    call(engine, conn, SET, req_set("test.s", K.STRING, b"x\0"))
    assert call(engine, conn, ADJUST, req_adjust("test.s", 1))[1] == K.CS_ERR_INVALID_PARAM
    assert call(engine, conn, ADJUST, req_adjust("test.none", 1))[1] == K.CS_ERR_NOT_EXIST
    assert call(engine, conn, DELETE, req_get("test.n")[:264]) == (1, K.CS_OK, b"")
    assert call(engine, conn, DELETE, req_get("test.n")[:264])[1] == K.CS_ERR_NOT_EXIST


def iterate(engine, conn, prefix):
    rid, err, body = call(engine, conn, ITER_INIT, req_get(prefix)[:264])
    assert (rid, err) == (4, K.CS_OK)
    handle = struct.unpack("<Q", body)[0]
    keys = []
    while True:
        rid, err, body = call(engine, conn, ITER_NEXT, req_handle(handle))
        assert rid == 5 and len(body) == 280
        if err == K.CS_ERR_NO_SECTIONS:
            break
        assert err == K.CS_OK
        keys.append(res_iter_next(body))
    assert call(engine, conn, ITER_FIN, req_handle(handle)) == (6, K.CS_OK, b"")
    return handle, keys


def test_iteration_sorted_by_prefix_and_stale_handles(eng):
    engine, _, conn = eng
    for key in ("it.b", "it.a", "it.c.d", "iu.x"):
        call(engine, conn, SET, req_set(key, K.UINT16, b"\1\0"))
    handle, keys = iterate(engine, conn, "it.")
    assert keys == [("it.a", 2, K.UINT16), ("it.b", 2, K.UINT16), ("it.c.d", 2, K.UINT16)]
    assert call(engine, conn, ITER_NEXT, req_handle(handle))[1] == K.CS_ERR_BAD_HANDLE
    assert call(engine, conn, ITER_FIN, req_handle(handle))[1] == K.CS_ERR_BAD_HANDLE
    assert call(engine, conn, ITER_NEXT, req_handle(12345))[1] == K.CS_ERR_BAD_HANDLE
    # an empty prefix walks the whole map in order
    _, every = iterate(engine, conn, "")
    names = [k for k, _, _ in every]
    assert names == sorted(names) and len(names) == len(engine.store)
    # another connection's handle is not valid here
    other = RecConn(pid=99)
    engine.on_connect(other)
    body = call(engine, other, ITER_INIT, req_get("it.")[:264])[2]
    assert call(engine, conn, ITER_NEXT, body)[1] == K.CS_ERR_BAD_HANDLE


def test_iterators_are_bounded(eng):
    engine, _, conn = eng
    for _ in range(ITERATORS_MAX):
        assert call(engine, conn, ITER_INIT, req_get("")[:264])[1] == K.CS_OK
    assert call(engine, conn, ITER_INIT, req_get("")[:264])[1] == K.CS_ERR_NO_RESOURCES


def test_track_events_and_delete(eng):
    engine, _, conn = eng
    rid, err, body = call(engine, conn, TRACK_ADD, req_track_add("tr.", T_ADD | T_MOD | T_DEL |
                                                                 T_PREFIX, 0xABCDEF))
    assert (rid, err) == (7, K.CS_OK)
    handle = struct.unpack("<Q", body)[0]
    call(engine, conn, SET, req_set("tr.a", K.UINT32, u32(1)))
    call(engine, conn, SET, req_set("tr.a", K.UINT32, u32(1)))        # same value: no event
    call(engine, conn, SET, req_set("tr.a", K.UINT32, u32(2)))
    call(engine, conn, DELETE, req_get("tr.a")[:264])
    call(engine, conn, SET, req_set("other.a", K.UINT32, u32(2)))
    events = [notify_event(body) for msg_id, body in conn.events]
    assert all(msg_id == 9 for msg_id, _ in conn.events)
    assert events == [
        (0xABCDEF, T_ADD, "tr.a", (K.UINT32, u32(1)), (0, b"")),
        (0xABCDEF, T_MOD, "tr.a", (K.UINT32, u32(2)), (K.UINT32, u32(1))),
        (0xABCDEF, T_DEL, "tr.a", (0, b""), (K.UINT32, u32(2)))]
    assert call(engine, conn, TRACK_DEL, req_handle(handle)) == \
        (8, K.CS_OK, struct.pack("<Q", 0xABCDEF))
    assert call(engine, conn, TRACK_DEL, req_handle(handle))[1] == K.CS_ERR_BAD_HANDLE
    call(engine, conn, SET, req_set("tr.b", K.UINT32, u32(1)))
    assert len(conn.events) == 3
    assert call(engine, conn, TRACK_ADD, req_track_add("tr.", 0x20, 1))[1] == \
        K.CS_ERR_INVALID_PARAM


def test_tracks_are_bounded_and_dropped_on_disconnect(eng):
    engine, _, conn = eng
    before = engine.store.track_count
    for i in range(TRACKS_MAX):
        assert call(engine, conn, TRACK_ADD, req_track_add(f"t.{i}", T_MOD, i))[1] == K.CS_OK
    assert call(engine, conn, TRACK_ADD, req_track_add("t.x", T_MOD, 0))[1] == \
        K.CS_ERR_NO_RESOURCES
    assert engine.counters()["tracks"] >= TRACKS_MAX
    engine.on_disconnect(conn)
    assert engine.store.track_count == before and engine.counters()["connections"] == 0


def test_full_event_queue_is_counted_not_fatal(eng):
    engine, _, _ = eng
    conn = RecConn(event_queue_max=1)
    engine.on_connect(conn)
    call(engine, conn, TRACK_ADD, req_track_add("q.", T_ADD | T_PREFIX, 1))
    call(engine, conn, SET, req_set("q.a", K.UINT8, b"\1"))
    call(engine, conn, SET, req_set("q.b", K.UINT8, b"\1"))
    assert len(conn.events) == 1 and engine.counters()["events_dropped"] == 1


def test_set_current_map_rules(eng):
    engine, _, conn = eng
    assert call(engine, conn, SETMAP, struct.pack("<i4x", 5)) == (10, K.CS_ERR_NOT_EXIST, b"")
    call(engine, conn, ITER_INIT, req_get("")[:264])
    assert call(engine, conn, SETMAP, struct.pack("<i4x", 1))[1] == K.CS_ERR_BUSY
    fresh = RecConn()
    engine.on_connect(fresh)
    assert call(engine, fresh, SETMAP, struct.pack("<i4x", 1)) == (10, K.CS_OK, b"")
    assert call(engine, fresh, GET, req_get("totem.config_version", 8))[1] == K.CS_ERR_NOT_EXIST
    assert call(engine, fresh, SETMAP, struct.pack("<i4x", 0))[1] == K.CS_OK
    assert call(engine, fresh, GET, req_get("totem.config_version", 8))[1] == K.CS_OK


RING_COUNTERS = {"ring": {"srp": {"orf_token_tx": 10, "mcast_rx": 5, "avg_backlog_calc": 3},
                          "schedmiss.0.timestamp": 1700000000123, "schedmiss.0.delay": 2500.5},
                 "cpg": {"ipc": {"service_id": 2, "global": {"active": 1, "closed": 4},
                                 "connections": {"4242.7": {
                                     "procname": "pacemakerd", "requests": 9, "responses": 9,
                                     "dispatched": 3, "queued": 0, "flow_control": 0}}}}}


def stats_conn(engine):
    conn = RecConn()
    engine.on_connect(conn)
    assert call(engine, conn, SETMAP, struct.pack("<i4x", 1))[1] == K.CS_OK
    return conn


def test_stats_map_values_and_read_only(eng):
    engine, ctx, _ = eng
    conn = stats_conn(engine)
    got = res_get(call(engine, conn, GET, req_get("stats.srp.orf_token_tx", 8))[2])
    assert got == (8, K.UINT64, struct.pack("<Q", 10))
    assert res_get(call(engine, conn, GET, req_get("stats.srp.firewall_enabled_or_nic_failure",
                                                   8))[2])[:2] == (1, K.UINT8)
    base = "stats.ipcs.service2.4242.7."
    assert res_get(call(engine, conn, GET, req_get(base + "procname", 64))[2]) == \
        (11, K.STRING, b"pacemakerd\0")
    assert res_get(call(engine, conn, GET, req_get("stats.ipcs.global.closed", 8))[2])[2] == \
        struct.pack("<Q", 4)
    assert res_get(call(engine, conn, GET, req_get("stats.schedmiss.0.delay", 8))[2]) == \
        (4, K.FLOAT, struct.pack("<f", 2500.5))
    _, keys = iterate(engine, conn, "stats.")
    names = [k for k, _, _ in keys]
    assert "stats.pg.msg_queue_avail" in names and names == sorted(names)
    assert call(engine, conn, SET, req_set("stats.srp.mcast_rx", K.UINT64, b"\0" * 8))[1] == \
        K.CS_ERR_ACCESS
    assert call(engine, conn, DELETE, req_get("stats.srp.mcast_rx")[:264])[1] == K.CS_ERR_ACCESS
    assert call(engine, conn, SET, req_set("stats.clear.bogus", K.UINT8, b"\1"))[1] == \
        K.CS_ERR_NOT_SUPPORTED
    # a clear zeroes our view of counters, not of gauges
    assert call(engine, conn, SET, req_set("stats.clear.all", K.UINT8, b"\1"))[1] == K.CS_OK
    assert res_get(call(engine, conn, GET, req_get("stats.srp.orf_token_tx", 8))[2])[2] == \
        struct.pack("<Q", 0)
    assert res_get(call(engine, conn, GET, req_get("stats.srp.avg_backlog_calc", 8))[2])[2] == \
        struct.pack("<I", 3)
    assert call(engine, conn, GET, req_get("stats.schedmiss.0.delay", 8))[1] == K.CS_ERR_NOT_EXIST


def test_stats_refresh_is_timer_driven_and_tracked(eng):
    engine, ctx, _ = eng
    conn = stats_conn(engine)
    assert call(engine, conn, TRACK_ADD, req_track_add("stats.ipcs.", T_ADD | T_PREFIX, 1))[1] \
        == K.CS_ERR_NOT_SUPPORTED
    call(engine, conn, TRACK_ADD, req_track_add("stats.srp.orf_token_tx", T_MOD, 2))
    call(engine, conn, TRACK_ADD, req_track_add("stats.ipcs.", T_ADD | T_DEL | T_PREFIX, 3))
    assert ctx.counter_callbacks == []          # the snapshot is fresh: nothing asked yet
    ctx.now_s += 1.0
    ctx.run_timers()
    assert len(ctx.counter_callbacks) == 1
    newer = {"ring": {"srp": {"orf_token_tx": 11}}}
    ctx.answer_counters(newer)
    events = [notify_event(body) for _, body in conn.events]
    modify = [e for e in events if e[0] == 2]
    assert modify == [(2, T_MOD, "stats.srp.orf_token_tx", (K.UINT64, struct.pack("<Q", 11)),
                       (K.UINT64, struct.pack("<Q", 11)))]
    deleted = {e[2] for e in events if e[0] == 3}
    assert all(e[1] == T_DEL for e in events if e[0] == 3)
    assert "stats.ipcs.service2.4242.7.procname" in deleted


def test_runtime_members_follow_configurations(eng):
    engine, _, _conn = eng
    rid = RingId(1, 4)
    engine.on_confchg(Configuration(CONFIG_TRANSITIONAL, rid, (), (), ()))
    engine.on_confchg(Configuration(CONFIG_REGULAR, rid, (1, 2), (), (1, 2)))
    assert engine.store.get_value("runtime.members.2.join_count") == 1
    assert engine.store.get_value("runtime.members.2.status") == "joined"
    assert engine.store.get_value("runtime.members.2.ip") == ""     # no config: no address
    engine.on_confchg(Configuration(CONFIG_TRANSITIONAL, RingId(1, 8), (1,), (2,), ()))
    assert engine.store.get_value("runtime.members.2.status") == "left"
    engine.on_confchg(Configuration(CONFIG_REGULAR, RingId(1, 8), (1, 2), (), (2,)))
    assert engine.store.get_value("runtime.members.2.join_count") == 2
    assert engine.store.get("runtime.members.2.join_count")[0] == K.UINT32
    assert engine.store.get_value("runtime.members.2.status") == "joined"


def test_config_version_change_is_multicast(eng):
    engine, ctx, conn = eng
    assert ctx.sent == []
    call(engine, conn, SET, req_set("totem.config_version", K.UINT64, struct.pack("<Q", 9)))
    assert len(ctx.sent) == 1
    fn, body = ctx.sent[0]
    assert fn == 0 and body[0] == 1 and body[8] == 1          # NEW_CONFIG_VERSION, one item
    assert struct.unpack_from("<Q", body, 32 + 280)[0] == 9
    assert engine.store.get_value("runtime.services.cmap.0.tx") == 1
    ctx.space_ok = False
    call(engine, conn, SET, req_set("totem.config_version", K.UINT64, struct.pack("<Q", 10)))
    assert ("error", "Can't inform other nodes about new config version") in ctx.logs


def test_stats_are_refreshed_only_for_readers_and_trackers():
    """An idle node builds no snapshot nobody reads: not for a connected client (votequorum
    stays connected for good) that reads other keys, only while a track watches what a
    refresh changes, and on demand for a read of it."""
    engine, ctx = new_engine()
    conn = RecConn()
    engine.on_connect(conn)
    ctx.now_s += 10.0
    ctx.run_timers()
    call(engine, conn, TRACK_ADD, req_track_add("nodelist.", T_ADD | T_PREFIX, 1))
    assert call(engine, conn, GET, req_get("runtime.members.1.ip", 8))[1] == K.CS_ERR_NOT_EXIST
    ctx.now_s += 10.0
    ctx.run_timers()
    assert ctx.counter_callbacks == [] and engine.stats.refreshes == 0
    # a track over the supervisor's keys (in the main map) waits for a first refresh (the
    # IPC server offers it again), then refreshes every second...
    track = req_track_add("runtime.", T_ADD | T_MOD | T_PREFIX, 2)
    assert call(engine, conn, TRACK_ADD, track) is DEFER
    for tick in range(4):
        assert len(ctx.counter_callbacks) == 1
        ctx.answer_counters({"supervisor": {"cmap": {
            "runtime.coroproc.children.cpg.exits": ("uint32", tick)}}})
        if tick == 0:
            assert call(engine, conn, TRACK_ADD, track)[1] == K.CS_OK
            assert ctx.counter_callbacks == []        # fresh: the timer's tick is a second away
        ctx.now_s += 1.0
        ctx.run_timers()
    assert engine.store.get_value("runtime.coroproc.children.cpg.exits") == 3
    ctx.answer_counters({})
    # ...until it is gone: the next tick stops the timer
    engine.on_disconnect(conn)
    for _ in range(5):
        ctx.now_s += 1.0
        ctx.run_timers()
    assert ctx.counter_callbacks == [] and engine.stats.refreshes == 5


def test_a_read_of_a_stale_snapshot_waits_for_the_refresh():
    """The first client of an idle node reads counters as fresh as a connected one's: its
    reads are deferred (the IPC server offers them again) until the refresh is applied."""
    engine, ctx = new_engine()
    conn = stats_conn(engine)                          # SET_CURRENT_MAP needs no snapshot
    get = req_get("stats.srp.orf_token_tx", 8)
    assert call(engine, conn, GET, get) is DEFER
    assert call(engine, conn, ITER_INIT, b"\0" * 264) is DEFER
    assert call(engine, conn, TRACK_ADD, req_track_add("stats.srp.mcast_rx", T_MOD, 1)) is DEFER
    assert len(ctx.counter_callbacks) == 1            # one request, however many reads wait
    ctx.now_s += 0.01
    ctx.answer_counters(RING_COUNTERS)
    assert res_get(call(engine, conn, GET, get)[2])[2] == struct.pack("<Q", 10)
    assert engine.counters()["stats_deferrals"] == 3
    # the track refreshes it every second: reads do not wait for that refresh
    assert call(engine, conn, TRACK_ADD, req_track_add("stats.srp.mcast_rx", T_MOD, 1))[1] \
        == K.CS_OK
    ctx.answer_counters(RING_COUNTERS)
    ctx.now_s += 1.0
    ctx.run_timers()
    assert call(engine, conn, GET, get)[1] == K.CS_OK
    ctx.answer_counters({"ring": {"srp": {"orf_token_tx": 11}}})
    assert res_get(call(engine, conn, GET, get)[2])[2] == struct.pack("<Q", 11)
    assert engine.counters()["stats_deferrals"] == 3
    # a main-map read that no refresh changes never waits
    ctx.now_s += 60.0
    assert call(engine, conn, SETMAP, struct.pack("<i4x", 0))[1] == K.CS_ERR_BUSY  # a track
    plain = RecConn()
    engine.on_connect(plain)
    assert call(engine, plain, GET, req_get("totem.version", 8))[1] == K.CS_ERR_NOT_EXIST
    assert call(engine, plain, GET, req_get("runtime.coroproc.children.cpg.exits", 8)) \
        is DEFER


def test_a_silent_supervisor_delays_reads_a_bounded_time():
    """No answer: reads wait STATS_WAIT_MS, then get the old snapshot; the request is made
    again after STATS_ASK_AGAIN_MS (an answer may have been lost)."""
    engine, ctx = new_engine()
    conn = stats_conn(engine)
    get = req_get("stats.srp.orf_token_tx", 8)
    assert call(engine, conn, GET, get) is DEFER
    ctx.now_s += STATS_WAIT_MS / 1000
    assert res_get(call(engine, conn, GET, get)[2])[2] == struct.pack("<Q", 0)  # the old one
    assert len(ctx.counter_callbacks) == 1
    ctx.now_s += STATS_ASK_AGAIN_MS / 1000
    assert call(engine, conn, GET, get) is DEFER
    assert len(ctx.counter_callbacks) == 2
    ctx.answer_counters(RING_COUNTERS)
    assert call(engine, conn, GET, get)[1] == K.CS_OK
