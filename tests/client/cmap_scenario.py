"""CMAP calls against a live daemon, run inside its namespaces by test_client_cmap.

Prints one JSON report of what the calls returned; the test asserts on it. Events are
awaited with a bounded dispatch loop, so a broken daemon fails instead of hanging.
"""

import asyncio
import json
import select
import sys
import time

from coroproc.client import DISPATCH_ALL, DISPATCH_ONE_NONBLOCKING, Cmap, CsError, aio
from coroproc.client import cmap as C

WAIT_S = 30.0
PREFIX = sys.argv[1] if len(sys.argv) > 1 else "scn."

TYPED = [("i8", C.INT8, -128), ("u8", C.UINT8, 255), ("i16", C.INT16, -32768),
         ("u16", C.UINT16, 65535), ("i32", C.INT32, -(2**31)), ("u32", C.UINT32, 2**32 - 1),
         ("i64", C.INT64, -(2**63)), ("u64", C.UINT64, 2**64 - 1), ("flt", C.FLOAT, 1.5),
         ("dbl", C.DOUBLE, -2.25), ("str", C.STRING, "hello world"),
         ("bin", C.BINARY, b"\x00\x01\xfe\xff")]


def error_name(fn, *args):
    try:
        fn(*args)
    except CsError as exc:
        return exc.name
    return "CS_OK"


def wait_events(handle, events, count):
    deadline = time.monotonic() + WAIT_S
    while len(events) < count and time.monotonic() < deadline:
        select.select([handle.fileno()], [], [], 0.5)
        try:
            handle.dispatch(DISPATCH_ONE_NONBLOCKING)
        except CsError as exc:
            if exc.name != "CS_ERR_TRY_AGAIN":
                raise


def typed_values(c, report):
    got = {}
    for name, value_type, value in TYPED:
        key = f"{PREFIX}typed.{name}"
        c.set(key, value, value_type)
        t, v = c.get(key)
        got[name] = [t, v.hex() if isinstance(v, bytes) else v]
    report["typed"] = got
    report["typed_raw_str"] = c.get_raw(f"{PREFIX}typed.str")[1].hex()
    report["get_uint32"] = c.get_uint32(f"{PREFIX}typed.u32")
    report["get_string"] = c.get_string(f"{PREFIX}typed.str")
    report["mismatch"] = error_name(c.get_uint8, f"{PREFIX}typed.u32")
    report["out_of_range"] = error_name(c.set_uint8, f"{PREFIX}x", 256)
    report["missing"] = error_name(c.get, f"{PREFIX}does.not.exist")
    report["too_long"] = error_name(c.get, "k" * 300)
    report["delete_missing"] = error_name(c.delete, f"{PREFIX}does.not.exist")


def counters(c, report):
    key = f"{PREFIX}counter"
    c.set_uint32(key, 10)
    c.inc(key)
    c.inc(key)
    c.dec(key)
    report["counter"] = c.get_uint32(key)
    report["inc_string"] = error_name(c.inc, f"{PREFIX}typed.str")
    c.delete(key)
    report["after_delete"] = error_name(c.get, key)
    report["iter"] = [list(e) for e in c.iter(PREFIX + "typed.")]


def tracking(c, report):
    events = []
    cb = lambda h, th, ev, key, new, old, ud: events.append(
        [ev, key, new.type, new.value if new.type != C.BINARY else None,
         old.type, old.value if old.type not in (0, C.BINARY) else None, ud])
    flags = C.TRACK_ADD | C.TRACK_DELETE | C.TRACK_MODIFY | C.TRACK_PREFIX
    with Cmap() as watcher:
        th = watcher.track_add(f"{PREFIX}trk.", flags, cb, "ud")
        c.set_uint16(f"{PREFIX}trk.a", 1)
        c.set_uint16(f"{PREFIX}trk.a", 2)
        c.delete(f"{PREFIX}trk.a")
        wait_events(watcher, events, 3)
        watcher.track_delete(th)
        c.set_uint16(f"{PREFIX}trk.b", 3)
        # The daemon queues a notification before it answers the set, so anything
        # still due would already be waiting on the watcher's socket.
        report["after_track_delete"] = watcher.dispatch(DISPATCH_ALL)
        c.delete(f"{PREFIX}trk.b")
    report["track_events"] = events


async def aio_stream(c, report):
    with Cmap() as watcher:
        async with aio.EventStream(watcher, events_max=2) as stream:
            watcher.track_add(f"{PREFIX}aio.", C.TRACK_ADD | C.TRACK_PREFIX,
                              stream.cmap_callback, 7)
            for i in range(5):  # more than events_max: the stream must pause and resume
                c.set_uint32(f"{PREFIX}aio.k{i}", i)
            got = []
            async for ev in stream:
                got.append([ev.key, ev.new.value, ev.user_data])
                if len(got) == 5:
                    break
        report["aio_stream"] = got
    with Cmap() as watcher:
        seen = []
        watcher.track_add(f"{PREFIX}aio.", C.TRACK_DELETE | C.TRACK_PREFIX,
                          lambda *a: seen.append(a[3]))
        reader = aio.attach(watcher)
        for i in range(5):
            c.delete(f"{PREFIX}aio.k{i}")
        deadline = time.monotonic() + WAIT_S
        while len(seen) < 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        reader.close()
        report["aio_reader"] = seen


def stats(report):
    with Cmap(map=C.MAP_STATS) as s:
        report["stats_keys"] = sum(1 for e in s.iter("stats.ipcs.global."))
        report["stats_active_type"] = s.get("stats.ipcs.global.active")[0]
        report["stats_set"] = error_name(s.set_uint32, "stats.coroproc.test", 1)
        report["stats_missing_icmap_key"] = error_name(s.get, "totem.cluster_name")


def main():
    report = {}
    with Cmap() as c:
        report["cluster_name"] = c.get("totem.cluster_name")
        report["token"] = c.get("runtime.config.totem.token")
        typed_values(c, report)
        counters(c, report)
        tracking(c, report)
        asyncio.run(aio_stream(c, report))
        for e in list(c.iter(PREFIX)):
            c.delete(e.key)
        report["left_over"] = [e.key for e in c.iter(PREFIX)]
    stats(report)
    c2 = Cmap()
    c2.finalize()
    report["after_finalize"] = error_name(c2.get, "totem.cluster_name")
    report["double_finalize"] = error_name(c2.finalize)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
