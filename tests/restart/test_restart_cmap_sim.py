"""Per-engine restart of CMAP on SimBus: the whole icmap store (runtime keys clients set,
deleted config keys staying deleted, runtime.members.*) and the totem.config_version state
come back after a restart at a seeded random point, including client writes made after
the last snapshot (the engine's journal, a real file here); the stats map and connection
state do not, and nothing is multicast twice."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from coroproc.config.errors import Entry
from coroproc.engineprocs.cmap import keys as K
from coroproc.engineprocs.cmap import persist
from coroproc.engineprocs.cmap.engine import CmapEngine
from coroproc.engineprocs.simbus import SimBus
from coroproc.ipc import cmap_structs as W

CS_OK = 1


def _bus(tmp_path, seed: int) -> SimBus:
    def config_for(nodeid):
        return SimpleNamespace(keys={"totem.config_version": Entry("7", "corosync.conf", 3,
                                                                   "u64"),
                                     "totem.token": Entry("1000", "corosync.conf", 4, None)},
                               nodes=())
    bus = SimBus([CmapEngine], [1, 2, 3], seed=seed, config_for=config_for,
                 options={"cmap": {"journal_dir": str(tmp_path)}})
    bus.configure([[1, 2, 3]])
    bus.run()
    return bus


def _dump(bus, nodeid) -> dict:
    store = bus.engine(nodeid, 0).store
    return {k: store.get(k) for k in store.names()}


@pytest.mark.parametrize("seed", range(12))
def test_store_and_config_version_survive_restarts_at_random_points(tmp_path, seed):
    rng = random.Random(seed)
    bus = _bus(tmp_path, seed)
    conns = {n: bus.connect(n, 0, pid=100 + n) for n in (1, 2, 3)}
    restarts = 0
    for i in range(60):
        r = rng.random()
        node = rng.choice((1, 2))        # node 3 is the untouched reference for shared keys
        if r < 0.45:
            body = W.pack_req_set(f"test.k{rng.randrange(8)}", K.UINT32, bytes(4))
            assert bus.request(conns[node], W.REQ_SET, body)[1] == CS_OK
            assert bus.request(conns[node], W.REQ_ADJUST_INT,
                               W.pack_req_adjust_int(f"test.k{rng.randrange(8)}", i))[1] in (1, 12)
        elif r < 0.55:
            bus.request(conns[node], W.REQ_DELETE, W.pack_req_delete(f"test.k{rng.randrange(8)}"))
        elif r < 0.60:
            bus.configure([[1, 2], [3]] if rng.random() < 0.5 else [[1, 2, 3]])
        elif r < 0.75:
            before = _dump(bus, node)
            sent_before = bus.engine(node, 0).ctx.sent
            bus.restart_engine(node, 0)
            restarts += 1
            assert _dump(bus, node) == before, f"seed {seed}: node {node} lost keys"
            assert bus.engine(node, 0).ctx.sent == 0 and sent_before >= 0
            conns[node] = bus.connect(node, 0, pid=200 + i)
        for _ in range(rng.randint(0, 4)):
            bus.step()
    bus.configure([[1, 2, 3]])
    bus.run()
    assert restarts > 0
    for n in (1, 2, 3):
        eng = bus.engine(n, 0)
        assert eng.store.get_value("runtime.members.1.config_version") == 7
        assert eng.highest_config_version == 7 and eng.my_config_version == 7
        assert eng.first_sync is False


def test_a_write_after_the_last_snapshot_survives_through_the_journal(tmp_path):
    bus = _bus(tmp_path, 0)
    conn = bus.connect(2, 0, pid=50)
    bus.run()
    # no ordered message after these writes: no snapshot can hold them
    assert bus.request(conn, W.REQ_SET, W.pack_req_set("app.flag", K.UINT8, b"\x01"))[1] == CS_OK
    assert bus.request(conn, W.REQ_DELETE, W.pack_req_delete("totem.token"))[1] == CS_OK
    bus.restart_engine(2, 0)
    store = bus.engine(2, 0).store
    assert store.get("app.flag") == (K.UINT8, b"\x01")
    assert store.get("totem.token") is None
    assert store.get_value("totem.config_version") == 7


def test_a_changed_config_version_is_announced_once_across_a_restart(tmp_path):
    bus = _bus(tmp_path, 1)
    conn = bus.connect(1, 0, pid=51)
    version = W.pack_req_set("totem.config_version", K.UINT64, (9).to_bytes(8, "little"))
    assert bus.request(conn, W.REQ_SET, version)[1] == CS_OK      # its track multicasts
    bus.restart_engine(1, 0)                  # before that message is delivered
    bus.run()
    for n in (1, 2, 3):
        assert bus.engine(n, 0).store.get_value("runtime.members.1.config_version") == 9
        assert bus.engine(n, 0).store.get_value("runtime.services.cmap.0.rx") is not None
    assert bus.engine(1, 0).ctx.sent == 0    # the restarted engine sent nothing again


def test_the_journal_is_compacted_and_keeps_what_no_saved_snapshot_holds(tmp_path):
    j = persist.Journal(persist.journal_path(str(tmp_path), 9))
    for i in range(persist.JOURNAL_COMPACT_RECORDS + 10):
        j.record(f"k.{i % 3}", (K.UINT8, bytes([i % 256])))
    j.snapshot_taken(100)            # saved_seq is still 0: nothing may go
    assert len(j.read()) == persist.JOURNAL_COMPACT_RECORDS + 10
    j.snapshot_taken(j.seq)          # snapshot 100 is saved now: records <= 100 go
    assert [r[0] for r in j.read()][0] == 101
    j.record("k.x", None)
    assert j.read()[-1][1:] == ("k.x", None)
    j.close()
