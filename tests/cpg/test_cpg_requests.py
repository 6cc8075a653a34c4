"""CPG lib requests on a real engine core (SimBus): the ref §2.6 state machine, every
error code, MCAST's missing reply, iteration, finalize, flow control and slow readers."""
import collections
import os
import struct
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from cpg_sim_client import Client, make_bus  # noqa: E402

from coroproc.engineprocs.cpg.conn_state import ITERATIONS_PER_CONN_MAX, CpdState  # noqa: E402
from coroproc.ipc import cpg_structs as cs  # noqa: E402
from coroproc.ipc.server import DEFER  # noqa: E402
from coroproc.ipc.cserror import (CS_ERR_BUSY, CS_ERR_EXIST, CS_ERR_INTERRUPT,  # noqa: E402
                                  CS_ERR_INVALID_PARAM, CS_ERR_LIBRARY,
                                  CS_ERR_NAME_TOO_LONG, CS_ERR_NO_MEMORY, CS_ERR_NO_SECTIONS,
                                  CS_ERR_NOT_EXIST, CS_ERR_TRY_AGAIN, CS_OK)

G = b"group-a"


def state(client):
    return client.conn.context.state


def test_join_then_own_confchg_completes_join():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    assert a.join(G) == CS_OK
    assert state(a) == CpdState.JOIN_STARTED
    assert a.join(G) == CS_ERR_EXIST               # JOIN_STARTED
    assert a.leave(G) == CS_ERR_BUSY               # JOIN_STARTED
    bus.run()
    assert state(a) == CpdState.JOIN_COMPLETED
    assert a.events() == [("confchg", G, [(1, 100)], [], [(1, 100, cs.REASON_JOIN)])]
    assert a.join(b"other") == CS_ERR_EXIST        # one group per handle


def test_leave_states_and_rejoin_after_leave_delivered():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    assert a.leave(G) == CS_ERR_NOT_EXIST          # UNJOINED
    a.join(G)
    bus.run()
    assert a.leave(G) == CS_OK
    assert state(a) == CpdState.LEAVE_STARTED
    assert a.leave(G) == CS_ERR_NOT_EXIST          # LEAVE_STARTED
    assert a.join(G) == CS_ERR_EXIST               # same (pid, group) still on this conn
    assert a.join(b"other") == CS_ERR_BUSY         # LEAVE_STARTED
    bus.run()
    ev = a.events()
    assert ev[-1] == ("confchg", G, [], [(1, 100, cs.REASON_LEAVE)], [])
    assert state(a) == CpdState.UNJOINED
    assert a.join(G) == CS_OK


def test_same_pid_and_group_from_two_handles_is_exist():
    bus = make_bus([1])
    a, b = Client(bus, 1, 100), Client(bus, 1, 100)
    assert a.join(G) == CS_OK
    assert b.join(G) == CS_ERR_EXIST
    assert b.join(b"other") == CS_OK               # same pid, other group: fine


def test_join_while_old_leave_undelivered_is_try_again():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    a.join(G)
    bus.run()
    a.close()                                      # PROCLEAVE(PROCDOWN) queued, not delivered
    b = Client(bus, 1, 100)
    assert b.join(G) == CS_ERR_TRY_AGAIN
    bus.run()
    assert b.join(G) == CS_OK


def test_name_too_long():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    body = bytearray(cs.pack_req_join(b"x" * 128, 100, 0))
    struct.pack_into("<I", body, 0, 129)
    assert a.request(cs.REQ_JOIN, bytes(body)) == (cs.RES_JOIN, CS_ERR_NAME_TOO_LONG, b"")
    assert a.join(b"x" * 128) == CS_OK             # exactly 128 is allowed


def test_join_uses_pid_from_request_not_credentials():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    assert a.join(G, pid=4242) == CS_OK
    bus.run()
    assert a.membership(G) == [(1, 4242)]


def test_mcast_is_never_answered_and_not_joined_is_dropped():
    bus = make_bus([1, 2])
    a, b = Client(bus, 1, 100), Client(bus, 2, 200)
    assert a.mcast(b"too early") is None           # UNJOINED: dropped, logged, no reply
    assert bus.engine(1, 2).counters()["mcast_dropped_not_joined"] == 1
    a.join(G)
    b.join(G)
    assert a.mcast(b"after join") is None          # JOIN_STARTED: accepted
    bus.run()
    a.events()
    b.events()
    assert a.leave(G) == CS_OK
    assert a.mcast(b"leaving") is None             # LEAVE_STARTED: NOT_EXIST, dropped
    bus.run()
    delivered = [e for e in b.events() if e[0] == "deliver"]
    assert delivered == []
    assert bus.engine(1, 2).counters()["mcast_dropped_not_joined"] == 2


def test_message_sent_right_after_join_is_ordered_after_the_join():
    bus = make_bus([1, 2])
    a, b = Client(bus, 1, 100), Client(bus, 2, 200)
    b.join(G)
    bus.run()
    b.events()
    a.join(G)
    a.mcast(b"m1")
    bus.run()
    assert b.events() == [("confchg", G, [(1, 100), (2, 200)], [], [(1, 100, cs.REASON_JOIN)]),
                          ("deliver", G, 1, 100, b"m1")]


def test_partial_mcast_interrupted_by_confchg():
    bus = make_bus([1, 2])
    a, b = Client(bus, 1, 100), Client(bus, 2, 200)
    a.join(G)
    bus.run()
    assert a.partial(10, cs.PARTIAL_FIRST, b"01234") == (cs.RES_PARTIAL_SEND, CS_OK, b"")
    b.join(G)                                      # a confchg reaches `a` between fragments
    bus.run()
    assert a.partial(10, cs.PARTIAL_LAST, b"56789") == (cs.RES_PARTIAL_SEND,
                                                        CS_ERR_INTERRUPT, b"")
    # a new message starts over
    assert a.partial(4, cs.PARTIAL_FIRST, b"ab")[1] == CS_OK
    assert a.partial(4, cs.PARTIAL_LAST, b"cd")[1] == CS_OK
    bus.run()
    parts = [e for e in b.events() if e[0] == "partial"]
    assert parts == [("partial", G, 1, 100, cs.PARTIAL_FIRST, 4, b"ab"),
                     ("partial", G, 1, 100, cs.PARTIAL_LAST, 4, b"cd")]


def test_partial_mcast_not_joined():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    assert a.partial(4, cs.PARTIAL_FIRST, b"ab") == (cs.RES_PARTIAL_SEND, CS_ERR_NOT_EXIST, b"")


def test_flow_controlled_requests_try_again_during_sync():
    bus = make_bus([1, 2])
    a = Client(bus, 1, 100)
    bus.configure([[1], [2]])          # sync starts; do not run it to completion
    assert bus.engine(1, 2).ctx.sync_in_progress
    assert a.request(cs.REQ_JOIN, cs.pack_req_join(G, 100)) == (0, CS_ERR_TRY_AGAIN, b"")
    assert a.request(cs.REQ_LOCAL_GET, b"")[1] == CS_OK     # not flow controlled
    bus.run()
    assert a.join(G) == CS_OK


def test_unknown_request_and_malformed_body():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    assert a.request(13, b"") == (0, CS_ERR_INVALID_PARAM, b"")
    assert a.request(cs.REQ_JOIN, b"short")[1] == CS_ERR_INVALID_PARAM


def test_membership_local_get_and_iteration_orders():
    bus = make_bus([1, 2])
    clients = [Client(bus, 2, 20), Client(bus, 1, 11), Client(bus, 1, 10), Client(bus, 2, 21)]
    for c, g in zip(clients, [b"g1", b"g2", b"g1", b"g2"]):
        assert c.join(g) == CS_OK
    bus.run()
    a = clients[1]
    assert a.request(cs.REQ_LOCAL_GET, b"") == (cs.RES_LOCAL_GET, CS_OK, cs.pack_res_local_get(1))
    assert a.membership(b"g1") == [(1, 10), (2, 20)]
    assert a.membership(b"nope") == []
    # cpg.c's grouped copy: a new group goes to the front, later members after the first
    assert a.iterate(cs.ITERATION_ALL) == [(b"g2", 1, 11), (b"g2", 2, 21),
                                           (b"g1", 1, 10), (b"g1", 2, 20)]
    assert a.iterate(cs.ITERATION_NAME_ONLY) == [(b"g2", 0, 0), (b"g1", 0, 0)]
    assert a.iterate(cs.ITERATION_ONE_GROUP, b"g1") == [(b"g1", 1, 10), (b"g1", 2, 20)]


def test_iteration_handles_bounded_and_unknown():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    for _ in range(ITERATIONS_PER_CONN_MAX):
        assert a.request(cs.REQ_ITERATIONINITIALIZE,
                         cs.pack_req_iterationinitialize(cs.ITERATION_ALL))[1] == CS_OK
    assert a.request(cs.REQ_ITERATIONINITIALIZE,
                     cs.pack_req_iterationinitialize(cs.ITERATION_ALL))[1] == CS_ERR_NO_MEMORY
    assert a.request(cs.REQ_ITERATIONNEXT, cs.pack_req_iterationnext(999999))[1] == CS_ERR_LIBRARY
    assert a.request(cs.REQ_ITERATIONFINALIZE,
                     cs.pack_req_iterationfinalize(999999))[1] == CS_ERR_LIBRARY
    b = Client(bus, 1, 101)        # handles are per connection
    handle = max(a.conn.context.iterations)
    assert b.request(cs.REQ_ITERATIONNEXT, cs.pack_req_iterationnext(handle))[1] == CS_ERR_LIBRARY
    assert a.request(cs.REQ_ITERATIONNEXT, cs.pack_req_iterationnext(handle))[1] == \
        CS_ERR_NO_SECTIONS


def test_finalize_stops_events_and_disconnect_leaves_with_procdown():
    bus = make_bus([1, 2])
    a, b = Client(bus, 1, 100), Client(bus, 2, 200)
    a.join(G)
    b.join(G)
    bus.run()
    a.events()
    b.events()
    assert a.request(cs.REQ_FINALIZE, b"") == (cs.RES_FINALIZE, CS_OK, b"")
    b.mcast(b"x")
    bus.run()
    assert a.events() == []                        # finalized: no more events
    a.close()
    bus.run()
    assert b.events()[-1] == ("confchg", G, [(2, 200)], [(1, 100, cs.REASON_PROCDOWN)], [])


def test_initial_totem_conf_for_v1_flag():
    bus = make_bus([1, 2])
    a = Client(bus, 1, 100, flags=1)
    plain = Client(bus, 1, 101)
    a.join(G)
    plain.join(G)
    bus.run()
    ev = a.events()
    assert ev[0][0] == "confchg" and ev[1][0] == "totem"
    assert ev[1][2] == [1, 2]
    assert [e for e in ev if e[0] == "totem"] == [ev[1]]       # only once
    assert [e for e in plain.events() if e[0] == "totem"] == []


def test_totem_confchg_to_every_connection_after_sync():
    bus = make_bus([1, 2])
    a, idle = Client(bus, 1, 100), Client(bus, 1, 101)
    a.join(G)
    bus.run()
    a.events()
    bus.configure([[1], [2]])
    bus.run()
    for c in (a, idle):
        totem = [e for e in c.events() if e[0] == "totem"]
        assert len(totem) == 1 and totem[0][2] == [1]


def test_mcast_without_submit_room_is_deferred_and_low_room_raises_flow_control():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    a.join(G)
    bus.run()
    a.events()
    ctx = bus.engine(1, 2).ctx
    ctx.space_bytes = 100                  # the exec message cannot fit
    assert a.mcast(b"y" * 64) is DEFER     # kept by the IPC server, offered again later
    assert bus.nodes[1].engines[2][1].stats["lib_deferred"] == 1
    ctx.space_bytes = 2000                 # fits, but under the engine's low-room mark
    assert a.mcast(b"y" * 64) is None      # the offer again: accepted (no reply)
    counters = bus.engine(1, 2).counters()
    assert counters["mcast_dropped_ring_full"] == 0
    assert a.conn.flow_control == 2        # clients now see TRY_AGAIN before sending
    assert counters["flow_control_activations"] == 1
    ctx.space_bytes = 4 << 20
    bus.advance(0.01)                      # the re-check timer clears it
    assert a.conn.flow_control == 0
    a.mcast(b"ok")
    bus.run()
    assert a.events() == [("deliver", G, 1, 100, b"y" * 64), ("deliver", G, 1, 100, b"ok")]


def test_client_that_never_reads_is_disconnected_with_procdown():
    bus = make_bus([1, 2])
    slow = Client(bus, 1, 100, event_queue_max=3)
    b = Client(bus, 2, 200)
    slow.join(G)
    b.join(G)
    bus.run()
    for i in range(5):
        b.mcast(b"m%d" % i)
    bus.run()
    assert slow.conn.closed
    assert bus.engine(1, 2).counters()["clients_disconnected_slow"] == 1
    ev = b.events()
    assert ev[-1] == ("confchg", G, [(2, 200)], [(1, 100, cs.REASON_PROCDOWN)], [])


def test_zero_copy_send_through_a_shared_file():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    a.conn.creds.uid = os.getuid()
    a.join(G)
    bus.run()
    a.events()
    path = f"/dev/shm/corosync_zerocopy-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    payload = b"zero-copy payload"
    map_size = 16 + 40 + len(payload)
    with open(path, "wb") as f:
        f.write(bytes(map_size))
    try:
        assert a.request(cs.REQ_ZC_ALLOC, cs.pack_req_zc_alloc(map_size, path))[1] == CS_OK
        assert not os.path.exists(path)            # unlinked, as Corosync does
        (mapping,) = a.conn.context.zc_maps.values()
        (token,) = struct.unpack_from("<Q", mapping, 8)   # what libcpg reads back
        struct.pack_into("<I", mapping, 16 + 32, len(payload))
        mapping[56:56 + len(payload)] = payload
        assert a.request(cs.REQ_ZC_EXECUTE, cs.pack_req_zc_execute(token)) == \
            (cs.RES_MCAST, CS_OK, b"")
        bus.run()
        assert a.events() == [("deliver", G, 1, 100, payload)]
        assert a.request(cs.REQ_ZC_FREE, cs.pack_req_zc_free(map_size, token))[1] == CS_OK
        assert a.request(cs.REQ_ZC_EXECUTE, cs.pack_req_zc_execute(token))[1] == \
            CS_ERR_INVALID_PARAM
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_zero_copy_refuses_paths_outside_the_allowed_names():
    bus = make_bus([1])
    a = Client(bus, 1, 100)
    missing = f"/dev/shm/corosync_zerocopy-missing-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    for path in ("/etc/passwd", "/dev/shm/../etc/corosync_zerocopy-x", "/tmp/corosync_zerocopy-1",
                 missing):
        assert a.request(cs.REQ_ZC_ALLOC, cs.pack_req_zc_alloc(4096, path))[1] != CS_OK
    assert os.path.exists("/etc/passwd")
    assert bus.engine(1, 2).counters()["zc_refused"] == 4


def test_engine_without_cpg_state_refuses_clients_until_a_sync():
    """An engine restarted on a synchronized node knows no process list: EAGAIN until the
    next membership change has run the CPG sync (the host admits it right away)."""
    from coroproc.engineprocs.api import SERVICE_CPG
    from coroproc.engineprocs.cpg import CpgEngine
    from coroproc.engineprocs.simbus import SimBus
    bus = SimBus([CpgEngine], [1])
    bus.engine(1, SERVICE_CPG).ctx.first_sync_done = True     # as after the supervisor's hello
    try:
        bus.connect(1, SERVICE_CPG, pid=100)
    except ConnectionRefusedError as exc:
        assert "-11" in str(exc)
    else:
        raise AssertionError("a client was admitted without CPG state")
    assert bus.engine(1, SERVICE_CPG).counters()["connections_refused_no_view"] == 1
    bus.configure([[1]])
    bus.run()
    assert Client(bus, 1, 100).join(G) == CS_OK


def test_a_slow_client_is_disconnected_and_logged_once_while_its_close_is_pending():
    """The IPC server closes a dropped connection on its next turn; the deliveries that
    come before that must neither queue for it nor log it again (one warning per client,
    as a 64 B flood's receivers showed: 214 lines for one client)."""
    from types import SimpleNamespace

    from coroproc.engineprocs.cpg.conn_state import CpgConn
    from coroproc.engineprocs.cpg.notify import Notifier

    warnings, dropped = [], []

    class FullConn:
        closed = False                     # the server has not closed it yet
        creds = SimpleNamespace(pid=4242)
        offered = 0

        def send_event(self, _msg_id, _body):
            self.offered += 1
            return False                   # its queue is full

    ctx = SimpleNamespace(warning=warnings.append,
                          disconnect=lambda conn, why: dropped.append((conn, why)))
    stats = collections.Counter()
    notify = Notifier(SimpleNamespace(ctx=ctx, stats=stats))
    conn = FullConn()
    cpd = CpgConn(conn, 1)
    for _ in range(5):                     # five delivery batches before the close
        assert not notify.send(cpd, 1, b"x")
        notify.reap()
    assert conn.offered == 1 and len(dropped) == 1 and dropped[0][0] is conn
    assert warnings == ["disconnecting CPG client: its event queue is full (CPG client "
                        "pid 4242 does not read its events)"]
    assert stats["clients_disconnected_slow"] == 1 and stats["events_dropped"] == 1
