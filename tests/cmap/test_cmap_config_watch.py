"""quorum.* set by clients at run time reach the node's engines
(engineprocs/cmap/config_watch.py): once per loop turn with every key under the
prefixes, nothing for other keys, nothing for a reload's changes, and the watch survives
a restart from a snapshot."""
from __future__ import annotations

import struct
from pathlib import Path

from coroproc.config.loader import load
from coroproc.engineprocs.cmap import keys as K

from .cmap_helpers import RecConn, new_engine, req_set

SET, DELETE = 0, 1
CONF = """totem {
    version: 2
    cluster_name: watch
    transport: udpu
}
nodelist {
    node {
        nodeid: 1
        ring0_addr: 127.0.0.1
    }
    node {
        nodeid: 2
        ring0_addr: 127.0.0.2
    }
}
quorum {
    provider: corosync_votequorum
    wait_for_all: 1
}
"""


def _engine(tmp_path: Path, text: str = CONF):
    path = tmp_path / "c.conf"
    # the journal of client writes lives in the run dir: one per test
    path.write_text(text + f"coroproc {{\n    run_dir: {tmp_path}/run\n}}\n")
    engine, ctx = new_engine(load(str(path), 1)[0], nodeid=1)
    conn = RecConn()
    engine.on_connect(conn)
    return engine, ctx, conn


def _set(engine, conn, key: str, value_type: int, raw: bytes) -> int:
    return engine.lib_handlers()[SET](conn, memoryview(req_set(key, value_type, raw)))[1]


def test_a_burst_of_client_sets_goes_out_once_with_every_watched_key(tmp_path):
    engine, ctx, conn = _engine(tmp_path)
    assert _set(engine, conn, "quorum.expected_votes", K.UINT32, struct.pack("<I", 3)) == K.CS_OK
    assert _set(engine, conn, "quorum.last_man_standing", K.UINT8, b"\x01") == K.CS_OK
    assert _set(engine, conn, "test.other", K.UINT8, b"\x01") == K.CS_OK
    # nodelist.* is read-only to clients (exec/main.c): only a reload changes it
    assert _set(engine, conn, "nodelist.node.1.quorum_votes", K.UINT32,
                struct.pack("<I", 2)) == K.CS_ERR_ACCESS
    assert ctx.config_keys == []                     # not before the loop's next turn
    ctx.run_timers()
    assert len(ctx.config_keys) == 1
    changed, entries = ctx.config_keys[0]
    assert changed == ("quorum.expected_votes", "quorum.last_man_standing")
    assert entries["quorum.expected_votes"] == 3 and entries["quorum.wait_for_all"] == 1
    assert entries["nodelist.node.0.nodeid"] == 1 and entries["nodelist.node.1.nodeid"] == 2
    assert "nodelist.node.1.quorum_votes" not in entries
    assert not any(k.startswith(("test.", "totem.")) for k in entries)
    assert engine.counters()["config_changes_sent"] == 1
    engine.lib_handlers()[DELETE](conn, memoryview(req_set("quorum.expected_votes",
                                                           K.UINT32, b"")[:264]))
    ctx.run_timers()
    assert ctx.config_keys[1][0] == ("quorum.expected_votes",)
    assert "quorum.expected_votes" not in ctx.config_keys[1][1]


def test_a_reload_is_not_sent_as_client_changes(tmp_path):
    engine, ctx, _conn = _engine(tmp_path)
    path = tmp_path / "new.conf"
    path.write_text(CONF.replace("wait_for_all: 1", "wait_for_all: 0\n    expected_votes: 4")
                    + f"coroproc {{\n    run_dir: {tmp_path}/run\n}}\n")
    engine.on_reload(load(str(path), 1)[0])
    ctx.run_timers()
    assert engine.store.get_value("quorum.expected_votes") == 4
    assert ctx.config_keys == []


def test_the_watch_comes_back_after_a_restore(tmp_path):
    engine, ctx, conn = _engine(tmp_path)
    data = engine.snapshot()
    engine.restore(data)
    assert _set(engine, conn, "quorum.cancel_wait_for_all", K.UINT8, b"\x01") == K.CS_OK
    ctx.run_timers()
    assert [c for c, _e in ctx.config_keys] == [("quorum.cancel_wait_for_all",)]


def test_a_blackbox_key_set_is_answered_once_the_supervisor_wrote_the_dump(tmp_path):
    """corosync-blackbox reads the file right after its set returns (exec/main.c writes
    it inside the set): the set is held (DEFER) until the supervisor answers, or for at
    most BLACKBOX_WAIT_S."""
    from coroproc.engineprocs.cmap.engine import BLACKBOX_WAIT_S
    from coroproc.ipc.server import DEFER
    engine, ctx, conn = _engine(tmp_path)
    body = memoryview(req_set("runtime.blackbox.dump_flight_data", K.STRING, b"1700000000"))
    assert engine.lib_handlers()[SET](conn, body) is DEFER
    assert [(op, args) for op, args, _cb in ctx.requests] == [("dump_flight_data", {})]
    assert engine.lib_handlers()[SET](conn, body) is DEFER         # offered again: held
    ctx.requests[0][2]({"ok": True})                               # the file is out
    assert engine.lib_handlers()[SET](conn, body) == (0, K.CS_OK, b"")
    assert len(ctx.requests) == 1                                  # the same value: no 2nd
    assert engine.store.get_value("runtime.blackbox.dump_flight_data") == "1700000000"
    # a supervisor that never answers holds the client BLACKBOX_WAIT_S at most
    state = memoryview(req_set("runtime.blackbox.dump_state", K.STRING, b"1700000001"))
    assert engine.lib_handlers()[SET](conn, state) is DEFER
    ctx.now_s += BLACKBOX_WAIT_S
    assert engine.lib_handlers()[SET](conn, state) == (0, K.CS_OK, b"")
    assert [op for op, _a, _cb in ctx.requests] == ["dump_flight_data", "dump_state"]
