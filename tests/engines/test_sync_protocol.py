"""Corosync's sync protocol as every engine process runs it (engineprocs/sync.py), on simbus.

Toy engines record their sync callbacks; every node must activate the same services in
service-id order for the same ring, abort on a configuration change mid-sync, and treat
a service only other nodes have as Corosync's "Unknown External Service".
"""
import pytest

from coroproc.engineprocs.api import Engine
from coroproc.engineprocs.simbus import SimBus
from coroproc.engineprocs.sync import (SyncMessageError, pack_barrier, pack_service_build,
                                       parse_sync_message)
from coroproc.engineprocs.api import RingId


def recorder(sid, steps=1):
    class Toy(Engine):
        name = f"toy{sid}"
        service_id = sid
        has_sync = True

        def __init__(self, ctx):
            super().__init__(ctx)
            self.calls = []
            self.left = 0

        def sync_init(self, trans, members, ring_id):
            self.calls.append(("init", trans, members, ring_id))
            self.left = steps

        def sync_process(self):
            self.left -= 1
            return self.left <= 0

        def sync_activate(self):
            self.calls.append(("activate", self.ctx.ring_id))

        def sync_abort(self):
            self.calls.append(("abort",))

        def on_sync_completed(self, ring_id, members):
            self.calls.append(("completed", ring_id, members))
    return Toy


@pytest.mark.parametrize("seed", range(30))
def test_every_node_activates_every_service_in_order(seed):
    classes = [recorder(2, steps=3), recorder(0), recorder(5, steps=2)]
    bus = SimBus(classes, [1, 2, 3], seed=seed)
    bus.configure([[1, 2, 3]])
    bus.run()
    rid = bus.ring_ids[frozenset({1, 2, 3})]
    for n in (1, 2, 3):
        assert bus.nodes[n].completed == [rid]
        for sid in (0, 2, 5):
            calls = bus.engine(n, sid).calls
            assert calls[0] == ("init", (), (1, 2, 3), rid)
            assert calls[1] == ("activate", rid)
            assert calls[2] == ("completed", rid, (1, 2, 3))
            assert bus.engine(n, sid).ctx.sync_in_progress is False


@pytest.mark.parametrize("seed", range(30))
def test_partition_and_merge_give_transitional_lists(seed):
    classes = [recorder(0), recorder(2)]
    bus = SimBus(classes, [1, 2, 3, 4], seed=seed)
    bus.configure([[1, 2, 3, 4]])
    bus.run()
    bus.configure([[1, 2], [3, 4]])
    bus.run()
    bus.configure([[1, 2, 3, 4]])
    bus.run()
    final = bus.ring_ids[frozenset({1, 2, 3, 4})]
    for n in (1, 2, 3, 4):
        inits = [c for c in bus.engine(n, 2).calls if c[0] == "init"]
        assert inits[-1][1] == ((1, 2) if n <= 2 else (3, 4))   # transitional ∩ members
        assert bus.nodes[n].completed[-1] == final
        assert len(bus.nodes[n].completed) == 3


@pytest.mark.parametrize("seed", range(40))
def test_new_configuration_mid_sync_aborts_and_the_next_sync_completes(seed):
    classes = [recorder(0, steps=2), recorder(2, steps=4)]
    bus = SimBus(classes, [1, 2, 3], seed=seed)
    bus.configure([[1, 2, 3]])
    for _ in range(bus.rng.randint(0, 12)):   # stop somewhere inside the sync
        bus.step()
    bus.configure([[1, 2], [3]])
    bus.run()
    for n in (1, 2, 3):
        expect = bus.ring_ids[frozenset({1, 2})] if n < 3 else bus.ring_ids[frozenset({3})]
        assert bus.nodes[n].completed[-1] == expect
        for sid in (0, 2):
            calls = bus.engine(n, sid).calls
            assert calls[-1] == ("completed", expect, (1, 2) if n < 3 else (3,))
            # abort only ever for a service that was inside its process phase
            assert calls.count(("abort",)) <= 1


@pytest.mark.parametrize("seed", range(20))
def test_a_service_only_one_node_has_is_synced_by_the_others_as_unknown(seed):
    bus = SimBus([recorder(0), recorder(2)], [1, 2, 3], seed=seed,
                 extra_engines={2: [recorder(5, steps=3)]})
    bus.configure([[1, 2, 3]])
    bus.run()
    rid = bus.ring_ids[frozenset({1, 2, 3})]
    for n in (1, 2, 3):
        assert bus.nodes[n].completed == [rid]
    assert ("activate", rid) in bus.engine(2, 5).calls


def test_sync_messages_are_corosyncs_bytes_and_bad_ones_are_refused():
    rid = RingId(3, 0x1c)
    sb = pack_service_build(rid, [0, 2, 3, 5])
    assert len(sb) == 552 and sb[:8] == bytes([1, 0, 0, 0, 0, 0, 0, 0])
    assert sb[8:12] == (552).to_bytes(4, "little")
    assert sb[16:28] == (3).to_bytes(4, "little") + (0x1c).to_bytes(8, "little")
    assert parse_sync_message(sb) == (1, rid, [0, 2, 3, 5])
    br = pack_barrier(rid)
    assert len(br) == 32 and parse_sync_message(br) == (0, rid, None)
    with pytest.raises(SyncMessageError, match="shorter"):
        parse_sync_message(br[:20])
    bad = bytearray(sb)
    bad[32:36] = (500).to_bytes(4, "little")
    with pytest.raises(SyncMessageError, match="500 services"):
        parse_sync_message(bytes(bad))
    bad = bytearray(br)
    bad[0] = 7
    with pytest.raises(SyncMessageError, match="id 7"):
        parse_sync_message(bytes(bad))
