"""The template engine on simbus: replicated counters, deferred replies, merge after a
partition, and the lib-request rules every engine gets from EngineCore."""
import pytest

from coroproc.engineprocs.example import wire as W
from coroproc.engineprocs.example.engine import ExampleEngine
from coroproc.engineprocs.simbus import SimBus

CS_OK, CS_ERR_TRY_AGAIN, CS_ERR_INVALID_PARAM, CS_ERR_NOT_EXIST = 1, 6, 7, 12


def formed(nodes=(1, 2, 3), seed=0):
    bus = SimBus([ExampleEngine], list(nodes), seed=seed)
    bus.configure([list(nodes)])
    bus.run()
    return bus


def table(bus, n):
    return bus.engine(n, W.SERVICE_ID).table


def test_add_is_answered_once_ordered_and_applied_everywhere():
    bus = formed()
    c = bus.connect(1, W.SERVICE_ID, pid=10)
    assert bus.request(c, W.REQ_ADD, W.pack_add("jobs", 5)) is None   # deferred
    bus.run()
    # the deferred answer went out through the connection, not as a returned reply
    assert c.responses == [(W.RES_ADD, CS_OK, W.pack_value(5))]
    assert table(bus, 1) == table(bus, 2) == table(bus, 3) == {"jobs": 5}
    reader = bus.connect(3, W.SERVICE_ID, pid=11)
    assert bus.request(reader, W.REQ_GET, W.pack_name("jobs")) == (W.RES_GET, CS_OK,
                                                                    W.pack_value(5))
    assert bus.request(reader, W.REQ_GET, W.pack_name("none"))[1] == CS_ERR_NOT_EXIST


@pytest.mark.parametrize("seed", range(25))
def test_partitioned_sides_merge_to_the_same_table_on_every_node(seed):
    bus = formed((1, 2, 3, 4), seed)
    conns = {n: bus.connect(n, W.SERVICE_ID, pid=100 + n) for n in (1, 2, 3, 4)}
    bus.configure([[1, 2], [3, 4]])
    bus.run()
    for n, delta in ((1, 3), (2, 4), (3, 10), (4, 1)):
        bus.request(conns[n], W.REQ_ADD, W.pack_add("x", delta))
        bus.request(conns[n], W.REQ_ADD, W.pack_add(f"only{n}", n))
    bus.run()
    assert table(bus, 1)["x"] == 7 and table(bus, 3)["x"] == 11
    bus.configure([[1, 2, 3, 4]])
    bus.run()
    merged = table(bus, 1)
    assert merged == {"x": 11, "only1": 1, "only2": 2, "only3": 3, "only4": 4}
    assert all(table(bus, n) == merged for n in (2, 3, 4))


def test_requests_during_sync_get_try_again_and_bad_ones_invalid_param():
    bus = SimBus([ExampleEngine], [1, 2], seed=1)
    bus.configure([[1, 2]])
    bus.run()
    c = bus.connect(1, W.SERVICE_ID, pid=7)
    bus.configure([[1], [2]])          # a new configuration: sync runs until bus.run()
    assert bus.request(c, W.REQ_ADD, W.pack_add("x", 1)) == (0, CS_ERR_TRY_AGAIN, b"")
    assert c.stats["overload"] == 1
    # GET is not flow-controlled: answered during sync
    assert bus.request(c, W.REQ_GET, W.pack_name("x"))[1] == CS_ERR_NOT_EXIST
    bus.run()
    assert bus.request(c, 99, b"") == (0, CS_ERR_INVALID_PARAM, b"")        # unknown id
    assert bus.request(c, W.REQ_GET, b"\x00short") == (0, CS_ERR_INVALID_PARAM, b"")
    assert bus.request(c, W.REQ_GET, W.pack_name("x")[:1] + b"\xff" * 64) == (
        0, CS_ERR_INVALID_PARAM, b"")                                       # bad UTF-8
    assert c.stats["invalid_request"] == 3


def test_a_tracking_client_that_never_reads_is_disconnected():
    bus = formed((1, 2))
    slow = bus.connect(2, W.SERVICE_ID, pid=9, event_queue_max=4)
    bus.request(slow, W.REQ_TRACK, b"")
    writer = bus.connect(1, W.SERVICE_ID, pid=8)
    for i in range(10):
        bus.request(writer, W.REQ_ADD, W.pack_add("n", 1))
    bus.run()
    assert slow.closed and len(slow.events) == 4
    assert table(bus, 2) == {"n": 10}
    assert bus.engine(2, W.SERVICE_ID).trackers == set()


def test_malformed_exec_messages_are_counted_and_dropped_on_every_node():
    bus = formed((1, 2))
    ctx = bus.engine(1, W.SERVICE_ID).ctx
    assert ctx.mcast(W.EXEC_ADD, b"\x05too-short")
    assert ctx.mcast(77, b"")
    bus.run()
    for n in (1, 2):
        core = bus.nodes[n].engines[W.SERVICE_ID][1]
        assert core.stats["exec_malformed"] == 1 and core.stats["exec_unknown"] == 1
        assert table(bus, n) == {}


@pytest.mark.parametrize("seed", range(20))
def test_an_engine_restarted_alone_restores_and_replays_to_the_same_table(seed):
    bus = formed((1, 2, 3), seed)
    writers = {n: bus.connect(n, W.SERVICE_ID, pid=200 + n) for n in (1, 3)}
    for i in range(15):
        n = bus.rng.choice([1, 3])
        bus.request(writers[n], W.REQ_ADD, W.pack_add(f"k{i % 4}", i))
        for _ in range(bus.rng.randint(0, 6)):
            bus.step()
        if i == 7:
            bus.restart_engine(2, W.SERVICE_ID)    # node 2's engine process dies mid-stream
    bus.run()
    assert table(bus, 2) == table(bus, 1) == table(bus, 3)
    assert sum(table(bus, 1).values()) == sum(range(15))
    # and after a partition heals, the restarted engine merges like the others
    bus.configure([[1], [2, 3]])
    bus.run()
    bus.restart_engine(2, W.SERVICE_ID)
    bus.configure([[1, 2, 3]])
    bus.run()
    assert table(bus, 2) == table(bus, 1) == table(bus, 3)
