"""The quorum service (libquorum view) on simbus, and the IPC struct layouts of both
services against the offsets of Corosync 3.1.7's ipc_quorum.h / ipc_votequorum.h."""
import struct

from coroproc.engineprocs.api import SERVICE_QUORUM
from coroproc.ipc import quorum_structs as Q
from coroproc.ipc import votequorum_structs as V
from quorum_helpers import make_bus


def test_no_provider_is_always_quorate_and_free():
    bus = make_bus(2, "", with_provider=False)
    bus.configure([[1], [2]])
    bus.run()
    c = bus.connect(1, SERVICE_QUORUM, pid=3)
    assert bus.request(c, Q.REQ_GETTYPE, b"") == (Q.RES_GETTYPE, 1, Q.pack_u32_slot(Q.QUORUM_FREE))
    assert bus.request(c, Q.REQ_GETQUORATE, b"") == (Q.RES_GETQUORATE, 1, Q.pack_u32_slot(1))


def test_v0_and_v1_notifications_and_nodelist_changes():
    bus = make_bus(3)
    bus.configure([[1, 2, 3]])
    bus.run()
    v0 = bus.connect(1, SERVICE_QUORUM, pid=4)
    v1 = bus.connect(1, SERVICE_QUORUM, pid=5)
    assert bus.request(v1, Q.REQ_MODEL_GETTYPE, Q.pack_u32_slot(Q.MODEL_V1)) == (
        Q.RES_MODEL_GETTYPE, 1, Q.pack_u32_slot(Q.QUORUM_SET))
    assert bus.request(v1, Q.REQ_MODEL_GETTYPE, Q.pack_u32_slot(7))[1] == 7
    for c in (v0, v1):
        assert bus.request(c, Q.REQ_TRACKSTART, Q.pack_u32_slot(2)) == (Q.RES_TRACKSTART, 1, b"")
    (mid, body), = v0.take_events()
    assert mid == Q.RES_NOTIFICATION and Q.unpack_notification_v0(body)[0] == 1
    assert [m for m, _ in v1.take_events()] == [Q.RES_V1_NODELIST_NOTIFICATION,
                                                 Q.RES_V1_QUORUM_NOTIFICATION]
    bus.configure([[1, 2], [3]])
    bus.run()
    ev = dict(v1.take_events())
    rid_node, _seq, members, joined, left = Q.unpack_nodelist_v1(ev[Q.RES_V1_NODELIST_NOTIFICATION])
    assert (rid_node, members, joined, left) == (1, [1, 2], [], [3])
    assert Q.unpack_notification_v1(ev[Q.RES_V1_QUORUM_NOTIFICATION])[3] == [1, 2]
    assert bus.request(v0, Q.REQ_TRACKSTART, Q.pack_u32_slot(2))[1] == 14      # EXIST
    assert bus.request(v0, Q.REQ_TRACKSTOP, b"")[1] == 1


def test_struct_offsets_match_corosync_headers():
    # header + body sizes, as sizeof() of the C structs
    assert 24 + len(Q.pack_notification_v0(1, 5, [7, 8])) == 48 + 4 * 2
    assert struct.unpack_from("<I", Q.pack_notification_v0(1, 5, [7]), 44 - 24)[0] == 7
    assert 24 + len(Q.pack_notification_v1(1, 2, 5, [7])) == 56 + 4
    assert struct.unpack_from("<I", Q.pack_nodelist_v1(1, 2, [9], [], []), 60 - 24)[0] == 9
    assert 24 + len(V.pack_res_getinfo(V.Info(1, 1, 1, 3, 3, 3, 2, 2, 0, "dev"))) == 320
    assert 16 + len(V.pack_req_qdevice_poll("d", 1, 2, 3)) == 296
    assert struct.unpack_from("<I4xQ", V.pack_req_qdevice_poll("d", 1, 2, 3), 280 - 16) == (2, 3)
    assert 16 + len(V.pack_req_qdevice_master_wins("d", 1)) == 280
    assert 16 + len(V.pack_req_trackstart(1, 2)) == 32
    body = V.pack_nodelist_notification(0xFEED, 4, 0x10, [1, 2])
    assert struct.unpack_from("<QIxxxxQI", body) == (0xFEED, 4, 0x10, 2)
    assert V.unpack_quorum_notification(V.pack_quorum_notification(1, 9, [(1, 1), (2, 2)])) == (
        1, 9, [(1, 1), (2, 2)])
