"""LinkTable: a real posix_ipc segment shared by real (spawned) processes.

Covers create/attach across processes in both directions, the validation errors an
operator sees (missing, not a table, other layout version, bad name, bad peer list),
replacement of a stale segment, reset of a dead link's row, snapshot, and cleanup.
"""
import mmap
import multiprocessing as mp
import os
import uuid

import numpy as np
import posix_ipc
import pytest

from coroproc.netproc.linktable import (
    HEADER_DTYPE,
    LAYOUT_VERSION,
    LinkTable,
    LinkTableError,
)

NODES = [1, 2, 7]


@pytest.fixture
def name():
    n = f"/coroproc.test-linktable-{os.getpid()}-{uuid.uuid4().hex[:8]}.links"
    yield n
    try:
        posix_ipc.unlink_shared_memory(n)
    except posix_ipc.ExistentialError:
        pass


@pytest.fixture
def table(name):
    t = LinkTable.create(name, NODES, local_nodeid=1)
    yield t
    t.unlink()
    t.close()


def _child_writer(name, conn):
    """Link 2's process: attach, report the layout, write its row, then read the parent's."""
    t = LinkTable.attach(name)
    conn.send((t.peer_nodeids, t.local_nodeid))
    t.set_state(2, t.slot_of(7), True, True, True, 9)
    t.update_stats(2, t.slot_of(7), latency_us=1234, mtu_bytes=1397, up_count=3)
    t.beat(2, 555, pid=os.getpid())
    conn.send("written")
    assert conn.recv() == "parent wrote"
    conn.send(t.state_of(0, t.slot_of(2)))
    t.close()


def test_writer_in_one_process_is_seen_by_another(table, name):
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_writer, args=(name, child))
    proc.start()
    try:
        assert parent.recv() == (tuple(NODES), 1)
        assert parent.recv() == "written"
        assert table.state_of(2, table.slot_of(7)) == (1, 1, 1, 9)
        snap = table.snapshot()
        link2 = next(l for l in snap["links"] if l["linknumber"] == 2)
        assert link2["pid"] == proc.pid and link2["heartbeat_us"] == 555
        peer7 = next(p for p in link2["peers"] if p["nodeid"] == 7)
        assert (peer7["latency_us"], peer7["mtu_bytes"], peer7["up_count"]) == (1234, 1397, 3)
        table.set_state(0, table.slot_of(2), True, False, True, 200)
        parent.send("parent wrote")
        assert parent.recv() == (1, 0, 1, 200)
    finally:
        proc.join()
    assert proc.exitcode == 0


def test_attach_missing_segment_says_so(name):
    with pytest.raises(LinkTableError, match="does not exist"):
        LinkTable.attach(name)


@pytest.mark.parametrize("bad", ["links", "/a/b", "/", 7])
def test_bad_names_are_refused(bad):
    with pytest.raises(LinkTableError, match="not a POSIX shm name"):
        LinkTable.create(bad, NODES)


@pytest.mark.parametrize("peers, local, msg", [
    ([], 0, "allowed 1..384"),
    (list(range(1, 386)), 0, "allowed 1..384"),
    ([1, 0], 0, "invalid"),
    ([1, 2, 2], 0, "duplicates"),
    ([1, 2], 3, "local nodeid 3"),
])
def test_bad_peer_lists_are_refused(name, peers, local, msg):
    with pytest.raises(LinkTableError, match=msg):
        LinkTable.create(name, peers, local_nodeid=local)


def _raw_segment(name, size):
    shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
    mm = mmap.mmap(shm.fd, size)
    shm.close_fd()
    return mm


def test_a_segment_that_is_not_a_table_is_refused(name):
    mm = _raw_segment(name, 4096)
    mm.close()
    with pytest.raises(LinkTableError, match="bad magic"):
        LinkTable.attach(name)


def test_layout_version_mismatch_is_refused(table, name):
    raw = _raw_segment_attach(name)
    hdr = np.frombuffer(raw, HEADER_DTYPE, 1, 0)
    hdr["version"] = LAYOUT_VERSION + 1
    del hdr
    raw.close()
    with pytest.raises(LinkTableError, match=f"layout version {LAYOUT_VERSION + 1}"):
        LinkTable.attach(name)


def test_truncated_segment_is_refused(table, name):
    shm = posix_ipc.SharedMemory(name)
    os.ftruncate(shm.fd, shm.size - 64)
    shm.close_fd()
    with pytest.raises(LinkTableError, match="bytes with offsets"):
        LinkTable.attach(name)


def _raw_segment_attach(name):
    shm = posix_ipc.SharedMemory(name)
    mm = mmap.mmap(shm.fd, shm.size)
    shm.close_fd()
    return mm


def test_stale_segment_is_replaced(name):
    stale = _raw_segment(name, 8192)
    stale[:8] = b"garbage!"
    t = LinkTable.create(name, [4, 5])
    try:
        again = LinkTable.attach(name)
        assert again.peer_nodeids == (4, 5)
        again.close()
        assert stale[:8] == b"garbage!"   # the old mapping is a different, unlinked object
    finally:
        stale.close()
        t.unlink()
        t.close()


def test_close_refuses_while_a_view_is_alive_then_cleans_up(name):
    t = LinkTable.create(name, NODES)
    view = t.stats
    with pytest.raises(LinkTableError, match="views of it are still alive"):
        t.close()
    del view
    t.close()
    t.close()                                  # idempotent
    t.unlink()
    assert not os.path.exists(f"/dev/shm{name}")
    t.unlink()                                 # idempotent


def test_reset_link_clears_enabled_and_connected_keeps_config(table):
    for slot in range(3):
        table.set_state(3, slot, True, True, True, 4)
    table.beat(3, 10, pid=4242)
    table.reset_link(3)
    assert all(table.state_of(3, s) == (1, 0, 0, 4) for s in range(3))
    link3 = next(l for l in table.snapshot()["links"] if l["linknumber"] == 3)
    assert link3["pid"] == 0


def test_state_word_is_one_store_and_generation_moves(table):
    before = bytes(table.gens_mv.cast("B"))
    table.set_state(5, 0, True, True, False, 255)
    assert table.state_of(5, 0) == (1, 1, 0, 255)
    assert table.words_mv[0 * 8 + 5] == 0xFF000101
    assert bytes(table.gens_mv.cast("B")) != before
    with pytest.raises(ValueError, match="allowed 0..255"):
        table.set_state(5, 0, True, True, False, 256)
    with pytest.raises(LinkTableError, match="allowed 0..7"):
        table.set_state(8, 0, True, True, False, 1)


def test_slot_of_unknown_nodeid_names_the_table(table):
    with pytest.raises(LinkTableError, match=r"nodeid 9 has no slot.*\[1, 2, 7\]"):
        table.slot_of(9)


def test_snapshot_lists_only_links_in_use(table):
    assert table.snapshot()["links"] == []
    table.set_state(1, 2, True, True, False, 1)
    snap = table.snapshot()
    assert [l["linknumber"] for l in snap["links"]] == [1]
    assert snap["local_nodeid"] == 1 and snap["peer_nodeids"] == NODES
    assert [p["configured"] for p in snap["links"][0]["peers"]] == [False, False, True]
