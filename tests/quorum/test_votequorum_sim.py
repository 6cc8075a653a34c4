"""Votequorum decisions on simbus: the formula, every feature, partitions and merges,
as exec/votequorum.c decides them (the expected values are Corosync 3.1.7's)."""
import random
import struct

import pytest

from coroproc.engineprocs.api import SERVICE_CMAP, SERVICE_VOTEQUORUM
from coroproc.engineprocs.cmap.keys import CS_OK
from coroproc.ipc import cmap_structs as C
from coroproc.ipc import votequorum_structs as V
from quorum_helpers import info, logs, make_bus, q, quorate, vq

FLAG = {"2Node": V.INFO_TWONODE, "Quorate": V.INFO_QUORATE, "WaitForAll": V.INFO_WAIT_FOR_ALL,
        "LastManStanding": V.INFO_LAST_MAN_STANDING, "AutoTieBreaker": V.INFO_AUTO_TIE_BREAKER,
        "AllowDownscale": V.INFO_ALLOW_DOWNSCALE}


def flags(i) -> set:
    return {name for name, bit in FLAG.items() if i.flags & bit}


def form(bus, *partitions):
    bus.configure([list(p) for p in partitions])
    bus.run()


def test_three_nodes_majority_and_quorum_never_drops_by_itself():
    bus = make_bus(3)
    form(bus, [1, 2, 3])
    i = info(bus, 1)
    assert (i.node_expected_votes, i.highest_expected, i.total_votes, i.quorum) == (3, 3, 3, 2)
    assert flags(i) == {"Quorate"}
    form(bus, [1, 2], [3])
    assert quorate(bus, 1) and quorate(bus, 2) and not quorate(bus, 3)
    assert (info(bus, 1).total_votes, info(bus, 1).quorum) == (2, 2)
    assert info(bus, 1, 3).node_state == V.NODESTATE_DEAD
    form(bus, [1], [2], [3])
    assert not any(quorate(bus, n) for n in (1, 2, 3))
    form(bus, [1, 2, 3])
    assert all(quorate(bus, n) for n in (1, 2, 3))
    assert "Members[3]: 1 2 3" in logs(bus, 2, "quorum")


def test_nodelist_quorum_votes_set_expected_votes():
    bus = make_bus(5, votes={5: 3})       # 1+1+1+1+3 = 7 expected, quorum 4
    form(bus, [1, 2, 3, 4], [5])
    assert (info(bus, 1).node_expected_votes, info(bus, 1).quorum) == (7, 4)
    assert quorate(bus, 1) and not quorate(bus, 5)
    form(bus, [1, 2], [3, 4, 5])
    assert not quorate(bus, 1) and quorate(bus, 5) and info(bus, 5).total_votes == 5


def test_two_node_waits_for_all_then_survives_the_peer():
    bus = make_bus(2, "\ttwo_node: 1")
    form(bus, [1])
    assert not quorate(bus, 1)
    assert flags(info(bus, 1)) == {"2Node", "WaitForAll"}
    assert any("Waiting for all cluster members. Current votes: 1 expected_votes: 2" in m
               for m in logs(bus, 1))
    form(bus, [1, 2])
    assert quorate(bus, 1) and quorate(bus, 2)
    assert (info(bus, 1).quorum, flags(info(bus, 1))) == (1, {"2Node", "Quorate", "WaitForAll"})
    form(bus, [1], [2])     # fencing decides; both keep quorum (quorum 1)
    assert quorate(bus, 1) and quorate(bus, 2)


def test_wait_for_all_blocks_a_majority_until_everyone_was_seen():
    bus = make_bus(3, "\twait_for_all: 1")
    form(bus, [1, 2])
    assert not quorate(bus, 1)
    form(bus, [1, 2, 3])
    assert quorate(bus, 3)
    form(bus, [1, 2], [3])
    assert quorate(bus, 1) and not quorate(bus, 3)


def test_wait_for_all_is_cleared_by_a_quorate_partner():
    """A restarted node with WFA joins a quorate partition: it does not wait."""
    bus = make_bus(3, "\twait_for_all: 1")
    form(bus, [1, 2, 3])
    bus.crash(3)
    form(bus, [1, 2])
    bus.restart(3)
    form(bus, [1, 2, 3])
    assert quorate(bus, 3)
    bus.crash(2)
    form(bus, [1, 3])
    assert quorate(bus, 3) and quorate(bus, 1)


def _cmap_set(bus, nodeid: int, key: str, value_type: int, value: int) -> int:
    conn = bus.connect(nodeid, SERVICE_CMAP, pid=4000 + nodeid)
    _rid, error, _body = bus.request(conn, C.REQ_SET, C.pack_req_set(
        key, value_type, C.encode_value(value_type, value)))
    bus.disconnect(conn)
    bus.advance(0.0)          # the CMAP engine sends the change on its next loop turn
    return error


def test_cancel_wait_for_all_set_in_cmap_ends_the_wait_on_every_node(tmp_path):
    """`corosync-cmapctl -s quorum.cancel_wait_for_all u8 1` (votequorum(5)): the node
    sets the key back to 0 and tells every node to stop waiting."""
    bus = make_bus(3, "\twait_for_all: 1", cmap_run_dir=str(tmp_path))
    form(bus, [1, 2])
    assert not quorate(bus, 1) and not quorate(bus, 2)
    assert _cmap_set(bus, 2, "quorum.cancel_wait_for_all", C.UINT8, 1) == CS_OK
    assert quorate(bus, 1) and quorate(bus, 2)
    cmap2 = bus.engine(2, SERVICE_CMAP)
    assert cmap2.store.get_value("quorum.cancel_wait_for_all") == 0
    # the flag is the configured feature (Corosync keeps showing it); the wait is over
    assert "WaitForAll" in flags(info(bus, 1))
    assert all(vq(bus, n).runtime.values["runtime.votequorum.wait_for_all_status"] == ("u8", 0)
               for n in (1, 2))
    # 0 again is only a change of a quorum key: read again, nothing cancelled twice
    assert _cmap_set(bus, 2, "quorum.cancel_wait_for_all", C.UINT8, 0) == CS_OK
    assert quorate(bus, 1) and quorate(bus, 2)


def test_expected_votes_set_in_cmap_is_read_again_and_announced(tmp_path):
    bus = make_bus(3, cmap_run_dir=str(tmp_path))
    form(bus, [1, 2, 3])
    assert (info(bus, 1).node_expected_votes, info(bus, 1).quorum) == (3, 2)
    assert _cmap_set(bus, 1, "quorum.expected_votes", C.UINT32, 5) == CS_OK
    assert all(info(bus, n).node_expected_votes == 5 for n in (1, 2, 3))
    assert all(info(bus, n).quorum == 3 and quorate(bus, n) for n in (1, 2, 3))
    form(bus, [1, 2], [3])
    assert not quorate(bus, 1)                       # 2 votes of 5 expected


def test_last_man_standing_lowers_expected_votes_after_the_window():
    bus = make_bus(5, "\tlast_man_standing: 1\n\tlast_man_standing_window: 5000")
    form(bus, [1, 2, 3, 4, 5])
    form(bus, [1, 2, 3], [4, 5])
    assert quorate(bus, 1) and info(bus, 1).quorum == 3
    bus.advance(6.0)
    i = info(bus, 1)
    assert (i.node_expected_votes, i.quorum) == (3, 2)
    assert "LastManStanding" in flags(i)
    form(bus, [1, 2], [3], [4, 5])
    assert quorate(bus, 1)
    bus.advance(6.0)
    assert (info(bus, 1).node_expected_votes, info(bus, 1).quorum) == (2, 2)
    form(bus, [1], [2], [3], [4, 5])    # 1 of 2: no majority, LMS cannot go below it
    assert not quorate(bus, 1)


@pytest.mark.parametrize("atb,winner,loser", [("lowest", 1, 3), ("highest", 4, 1),
                                               ("3 1", 3, 1)])
def test_auto_tie_breaker_decides_an_even_split(atb, winner, loser):
    bus = make_bus(4, f"\tauto_tie_breaker: 1\n\tauto_tie_breaker_node: {atb}")
    form(bus, [1, 2, 3, 4])
    assert "AutoTieBreaker" in flags(info(bus, 1))
    form(bus, [1, 2], [3, 4])
    assert quorate(bus, winner) and not quorate(bus, loser)


def test_auto_tie_breaker_in_odd_cluster_without_wfa_is_disabled():
    bus = make_bus(3, "\tauto_tie_breaker: 1")
    form(bus, [1, 2, 3])
    assert "AutoTieBreaker" not in flags(info(bus, 1))
    assert any("auto_tie_breaker has been disabled" in m for m in logs(bus, 1))


def test_two_node_with_auto_tie_breaker_drops_two_node():
    bus = make_bus(2, "\ttwo_node: 1\n\tauto_tie_breaker: 1")
    form(bus, [1, 2])
    assert flags(info(bus, 1)) == {"Quorate", "WaitForAll", "AutoTieBreaker"}
    form(bus, [1], [2])
    assert quorate(bus, 1) and not quorate(bus, 2)


def test_setexpected_and_setvotes_through_the_library_requests():
    bus = make_bus(3)
    form(bus, [1, 2, 3])
    c = bus.connect(1, SERVICE_VOTEQUORUM, pid=7)
    # below total votes, or making a quorate cluster inquorate: refused
    assert bus.request(c, V.REQ_SETEXPECTED, V.pack_req_setexpected(2))[1] == 7
    assert bus.request(c, V.REQ_SETEXPECTED, V.pack_req_setexpected(9))[1] == 7
    assert bus.request(c, V.REQ_SETEXPECTED, V.pack_req_setexpected(4)) == (V.RES_STATUS, 1, b"")
    bus.run()
    assert all((info(bus, n).node_expected_votes, info(bus, n).quorum) == (4, 3)
               for n in (1, 2, 3))
    assert bus.request(c, V.REQ_SETVOTES, V.pack_req_setvotes(2, 3)) == (V.RES_STATUS, 1, b"")
    bus.run()
    assert info(bus, 2, 3).node_votes == 2 and info(bus, 2).total_votes == 4
    assert bus.request(c, V.REQ_SETVOTES, V.pack_req_setvotes(1, 99))[1] == 17   # NAME_NOT_FOUND
    assert bus.request(c, V.REQ_GETINFO, struct.pack("<i4x", 99))[1] == 12      # NOT_EXIST


def test_notifications_carry_the_trackers_context():
    bus = make_bus(3)
    form(bus, [1, 2, 3])
    c = bus.connect(1, SERVICE_VOTEQUORUM, pid=8)
    assert bus.request(c, V.REQ_TRACKSTART, V.pack_req_trackstart(0xABCDEF0123, 3))[1] == 1
    first = c.take_events()
    assert [m for m, _ in first] == [V.RES_NODELIST_NOTIFICATION, V.RES_QUORUM_NOTIFICATION]
    ctx, rid_node, _seq, nodes = V.unpack_nodelist_notification(first[0][1])
    assert (ctx, rid_node, nodes) == (0xABCDEF0123, 1, [1, 2, 3])
    form(bus, [1], [2, 3])
    ev = c.take_events()
    quorum_evs = [V.unpack_quorum_notification(b) for m, b in ev
                  if m == V.RES_QUORUM_NOTIFICATION]
    assert quorum_evs[-1] == (0, 0xABCDEF0123, [(1, 1), (2, 2), (3, 2)])
    assert bus.request(c, V.REQ_TRACKSTART, V.pack_req_trackstart(1, 2))[1] == 14   # EXIST
    assert bus.request(c, V.REQ_TRACKSTOP, b"")[1] == 1
    assert bus.request(c, V.REQ_TRACKSTOP, b"")[1] == 12


def test_quorum_device_vote_and_master_wins():
    bus = make_bus(2, "\tdevice {\n\t\tmodel: net\n\t\tvotes: 1\n\t}")
    form(bus, [1, 2])
    i = info(bus, 1)
    assert (i.node_expected_votes, i.quorum, i.qdevice_votes) == (3, 2, 1)
    dev = bus.connect(1, SERVICE_VOTEQUORUM, pid=9)
    assert bus.request(dev, V.REQ_QDEVICE_REGISTER, V.pack_req_qdevice_name("dev")) is None
    bus.run()
    assert dev.responses == [(V.RES_STATUS, 1, b"")]
    ring = vq(bus, 1).vq.quorum_ring
    stale = V.pack_req_qdevice_poll("dev", 1, ring[0], ring[1] + 1)
    assert bus.request(dev, V.REQ_QDEVICE_POLL, stale)[1] == 22        # MESSAGE_ERROR
    assert bus.request(dev, V.REQ_QDEVICE_POLL, V.pack_req_qdevice_poll("dev", 1, *ring))[1] == 1
    assert bus.request(dev, V.REQ_QDEVICE_MASTER_WINS,
                       V.pack_req_qdevice_master_wins("dev", 1))[1] == 1
    bus.run()
    i = info(bus, 1)
    assert i.total_votes == 3 and i.flags & V.INFO_QDEVICE_CAST_VOTE
    assert i.flags & V.INFO_QDEVICE_MASTER_WINS and info(bus, 2).qdevice_name == "dev"
    bus.configure([[1], [2]])
    bus.step()
    for _ in range(20000):   # node 1 waits in sync for the device's poll with the new ring
        if not bus._busy():
            break
        if vq(bus, 1).vq.sync_wait_for_poll_or_timeout:
            ring = vq(bus, 1).vq.quorum_ring
            bus.request(dev, V.REQ_QDEVICE_POLL, V.pack_req_qdevice_poll("dev", 1, *ring))
        bus.step()
    assert quorate(bus, 1) and not quorate(bus, 2)
    assert bus.request(dev, V.REQ_QDEVICE_UNREGISTER, V.pack_req_qdevice_name("dev"))[1] == 1
    bus.run()
    assert not info(bus, 1).flags & V.INFO_QDEVICE_REGISTERED


def test_quorum_device_silence_is_noticed_after_its_timeout():
    bus = make_bus(2, "\tdevice {\n\t\tmodel: net\n\t\tvotes: 1\n\t\ttimeout: 2000\n\t}")
    form(bus, [1, 2])
    dev = bus.connect(1, SERVICE_VOTEQUORUM, pid=9)
    bus.request(dev, V.REQ_QDEVICE_REGISTER, V.pack_req_qdevice_name("dev"))
    bus.run()
    ring = vq(bus, 1).vq.quorum_ring
    bus.request(dev, V.REQ_QDEVICE_POLL, V.pack_req_qdevice_poll("dev", 1, *ring))
    bus.run()
    assert info(bus, 1).flags & V.INFO_QDEVICE_ALIVE
    bus.advance(3.0)
    assert not info(bus, 1).flags & (V.INFO_QDEVICE_ALIVE | V.INFO_QDEVICE_CAST_VOTE)
    assert any("lost contact with quorum device dev" in m for m in logs(bus, 1))


def test_snapshot_restore_keeps_the_decision():
    bus = make_bus(3, "\twait_for_all: 1")
    form(bus, [1, 2, 3])
    form(bus, [1, 2], [3])
    e = vq(bus, 1)
    data = e.snapshot()
    before = e.info_for(0)
    e.vq.nodes.clear()
    e.restore(data)
    assert e.info_for(0) == before and e.snapshot() == data
    qe = q(bus, 1)
    qdata = qe.snapshot()
    qe.primary_designated = False
    qe.restore(qdata)
    assert qe.quorate()


def test_runtime_keys_recorded_for_cmap():
    bus = make_bus(2, "\ttwo_node: 1")
    form(bus, [1, 2])
    values = vq(bus, 2).runtime.values
    assert values["runtime.votequorum.this_node_id"] == ("u32", 2)
    assert values["runtime.votequorum.two_node"] == ("u8", 1)
    assert values["runtime.votequorum.wait_for_all_status"] == ("u8", 0)
    assert values["runtime.votequorum.lowest_node_id"] == ("u32", 1)


@pytest.mark.parametrize("seed", range(12))
def test_random_partitions_and_merges_never_give_two_quorate_sides(seed):
    rng = random.Random(seed)
    bus = make_bus(5, seed=seed)
    form(bus, [1, 2, 3, 4, 5])
    for _round in range(8):
        nodes = [1, 2, 3, 4, 5]
        rng.shuffle(nodes)
        cut = sorted(rng.sample(range(1, 5), rng.randint(0, 2)))
        parts = [nodes[a:b] for a, b in zip([0] + cut, cut + [5])]
        form(bus, *parts)
        for p in parts:
            views = {(quorate(bus, n), q(bus, n).view) for n in p}
            assert len(views) == 1, (seed, parts, views)   # one partition, one answer
            assert quorate(bus, p[0]) == (len(p) >= 3)
        assert sum(quorate(bus, p[0]) for p in parts) <= 1
