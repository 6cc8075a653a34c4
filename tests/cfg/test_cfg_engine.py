"""The CFG engine on the deterministic harness: every libcfg call, byte for byte as cfg.c.

Nodes 1..5 of a udpu nodelist (FIVE_NODES below; the harness runs some of them), and
the corpus's ipv6-udpu.conf for IPv6 addresses.
"""
import os
import socket
import struct
import tempfile
from pathlib import Path

import orjson
import pytest

from coroproc.config.loader import load
from coroproc.engineprocs.api import NodeFatal
from coroproc.engineprocs.cfg import exec_msgs as X
from coroproc.engineprocs.cfg.engine import CfgEngine
from coroproc.engineprocs.cfg.supervisor_ask import ask_supervisor
from coroproc.engineprocs.context import BaseContext
from coroproc.engineprocs.simbus import SimBus
from coroproc.ipc import cfg_structs as S
from coroproc.ipc.cserror import (
    CS_ERR_ACCESS,
    CS_ERR_BUSY,
    CS_ERR_EXIST,
    CS_ERR_INVALID_PARAM,
    CS_ERR_NOT_EXIST,
    CS_ERR_NOT_SUPPORTED,
    CS_ERR_TRY_AGAIN,
    CS_OK,
)

CORPUS = Path(__file__).resolve().parents[1] / "config" / "corpus" / "good"
SVC = CfgEngine.service_id


FIVE_NODES = """totem {
    version: 2
    cluster_name: cfgsim
    transport: udpu
    ip_version: ipv4
}
nodelist {
""" + "".join(f"    node {{\n        nodeid: {n}\n        ring0_addr: 10.9.0.{n}\n    }}\n"
              for n in range(1, 6)) + "}\n"


def corpus_config(name):
    if name == "five":
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(FIVE_NODES)
        try:
            return load(f.name, 1)[0]
        finally:
            os.unlink(f.name)
    expected = orjson.loads((CORPUS / "expected.json").read_bytes())[name]
    config, _ = load(str(CORPUS / name), expected.get("nodeid_override"))
    return config


def make_bus(name="five", nodes=None, seed=0, cls=SimBus):
    config = corpus_config(name)
    nodes = nodes or [config.local_nodeid]
    bus = cls([CfgEngine], nodes, seed=seed, config_for=lambda n: config)
    bus.configure([nodes])
    bus.run()
    return bus, config


def reasons_logged(bus, nodeid, text):
    return [m for _n, _p, m in bus.nodes[nodeid].log if text in m]


# ---- status calls -----------------------------------------------------------------------
def test_local_get_and_node_addrs_ipv6():
    bus, config = make_bus("ipv6-udpu.conf")
    c = bus.connect(config.local_nodeid, SVC, pid=5)
    assert bus.request(c, S.REQ_LOCAL_GET, b"") == (S.RES_LOCAL_GET, CS_OK,
                                                   struct.pack("<I4x", 61))
    rid, err, body = bus.request(c, S.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 62))
    assert (rid, err) == (S.RES_GET_NODE_ADDRS, CS_OK)
    family, count = struct.unpack_from("<II", body)
    assert (family, count, len(body)) == (socket.AF_INET6, 1, 8 + 16)
    assert socket.inet_ntop(socket.AF_INET6, body[8:24]) == "2001:db8::62"
    _rid, _err, local = bus.request(c, S.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 0))
    assert socket.inet_ntop(socket.AF_INET6, local[8:24]) == "::1"


def test_unknown_node_short_bodies_and_unknown_ids():
    bus, config = make_bus()
    c = bus.connect(config.local_nodeid, SVC, pid=5)
    assert bus.request(c, S.REQ_GET_NODE_ADDRS, struct.pack("<I4x", 999)) == (
        S.RES_GET_NODE_ADDRS, CS_ERR_NOT_EXIST, bytes(8))
    assert bus.request(c, 42, b"") == (0, CS_ERR_INVALID_PARAM, b"")
    assert bus.request(c, S.REQ_GET_NODE_ADDRS, b"\x01") == (0, CS_ERR_INVALID_PARAM, b"")
    assert bus.request(c, S.REQ_RINGREENABLE, b"") == (S.RES_RINGREENABLE,
                                                      CS_ERR_NOT_SUPPORTED, b"")


def test_node_status_follows_membership():
    bus, config = make_bus(nodes=[1, 2, 3])
    c = bus.connect(1, SVC, pid=5)

    def status(nodeid):
        rid, err, body = bus.request(c, S.REQ_NODESTATUSGET, S.pack_nodestatus_req(nodeid))
        assert (rid, err, len(body)) == (S.RES_NODESTATUSGET, CS_OK, S.NODE_STATUS_BYTES)
        return S.unpack_node_status(body)

    st2 = status(2)
    assert (st2.version, st2.nodeid, st2.reachable) == (1, 2, True)
    link0 = st2.links[0]
    assert (link0.enabled, link0.connected, link0.mtu) == (True, True, 1410)
    assert link0.src_ipaddr == config.node(2).addrs[0] and link0.dst_ipaddr == ""
    assert not any(ln.enabled for ln in st2.links[1:])
    st5 = status(5)                          # configured, not a member
    assert (st5.reachable, st5.links[0].enabled, st5.links[0].connected) == (False, True, False)
    bus.crash(3)
    bus.configure([[1, 2]])
    bus.run()
    assert not status(3).reachable and status(2).reachable
    assert status(77) == S.NodeStatus(77)   # not in the nodelist: CS_OK, all zero
    rid, err, body = bus.request(c, S.REQ_NODESTATUSGET, S.pack_nodestatus_req(2, 7))
    assert (rid, err, body) == (S.RES_NODESTATUSGET, CS_ERR_NOT_SUPPORTED, bytes(8))


def test_ring_status_lists_local_links():
    bus, config = make_bus()
    c = bus.connect(config.local_nodeid, SVC, pid=5)
    rid, err, body = bus.request(c, S.REQ_RINGSTATUSGET, b"")
    assert (rid, err, len(body)) == (S.RES_RINGSTATUSGET, CS_OK, S.RING_STATUS_BYTES)
    assert S.unpack_ring_status(body) == [(f"0 {config.local_addrs[0]}", "OK")]


# ---- kill node ---------------------------------------------------------------------------
def test_kill_node_stops_only_the_target_with_corosyncs_line():
    bus, _config = make_bus(nodes=[1, 2, 3])
    c = bus.connect(1, SVC, pid=5)
    assert bus.request(c, S.REQ_KILLNODE, S.pack_killnode_req(4, "x")) == (
        S.RES_KILLNODE, CS_ERR_NOT_EXIST, b"")           # configured but not a member
    assert bus.request(c, S.REQ_KILLNODE, S.pack_killnode_req(2, "Killed by corosync-cfgtool")
                       ) == (S.RES_KILLNODE, CS_OK, b"")
    with pytest.raises(NodeFatal, match="killed by node 1"):
        bus.run()
    assert reasons_logged(bus, 2, "Killed by node 1 : Killed by corosync-cfgtool")
    assert not reasons_logged(bus, 1, "Killed by node")


# ---- shutdown ----------------------------------------------------------------------------
def tracker(bus, nodeid, pid):
    conn = bus.connect(nodeid, SVC, pid=pid)
    assert bus.request(conn, S.REQ_TRACKSTART, S.pack_trackstart_req(0)) == (
        S.RES_STATETRACKSTART, CS_OK, b"")
    return conn


def try_shutdown(bus, conn, flags):
    return bus.request(conn, S.REQ_TRYSHUTDOWN, S.pack_u32_req(flags))


def reply(bus, conn, yes):
    return bus.request(conn, S.REQ_REPLYTOSHUTDOWN, S.pack_u32_req(1 if yes else 0))


def shutdown_events(conn):
    return [(mid, S.unpack_u32_res(b, "ev")) for mid, b in conn.take_events()]


def test_shutdown_without_trackers_goes_down_through_a_safe_message():
    bus, _ = make_bus(nodes=[1, 2])
    c = bus.connect(1, SVC, pid=5)
    assert try_shutdown(bus, c, S.SHUTDOWN_FLAG_REQUEST) == (S.RES_TRYSHUTDOWN, CS_OK, b"")
    bus.run()
    assert bus.nodes[1].supervisor_requests == [("shutdown", {"reason": "cfg: shut down by sysadmin"})]
    assert bus.nodes[2].supervisor_requests == []
    for n in (1, 2):
        assert reasons_logged(bus, n, "Node 1 was shut down by sysadmin")


@pytest.mark.parametrize("seed", range(3))
def test_all_trackers_yes_confirms_one_no_cancels(seed):
    bus, _ = make_bus(nodes=[1, 2], seed=seed)
    t1, t2 = tracker(bus, 1, 10), tracker(bus, 1, 11)
    asker = bus.connect(1, SVC, pid=12)
    assert try_shutdown(bus, asker, S.SHUTDOWN_FLAG_REQUEST) is None
    assert shutdown_events(t1) == [(S.RES_TESTSHUTDOWN, 0)] == shutdown_events(t2)
    other = bus.connect(1, SVC, pid=13)
    assert try_shutdown(bus, other, 0) == (S.RES_TRYSHUTDOWN, CS_ERR_EXIST, b"")
    assert reply(bus, t1, yes=False) == (S.RES_REPLYTOSHUTDOWN, CS_OK, b"")
    assert asker.responses == []
    assert reply(bus, t2, yes=True)[1] == CS_OK
    assert asker.responses == [(S.RES_TRYSHUTDOWN, CS_ERR_BUSY, b"")]
    bus.run()
    assert bus.nodes[1].supervisor_requests == []
    assert reply(bus, t1, yes=True)[1] == CS_ERR_ACCESS     # nothing to answer now
    # second round: everybody agrees
    assert try_shutdown(bus, asker, S.SHUTDOWN_FLAG_REQUEST) is None
    reply(bus, t1, yes=True)
    reply(bus, t2, yes=True)
    assert asker.responses[-1] == (S.RES_TRYSHUTDOWN, CS_OK, b"")
    bus.run()
    assert [op for op, _a in bus.nodes[1].supervisor_requests] == ["shutdown"]


def test_timeout_counts_silence_as_no_unless_regardless():
    bus, _ = make_bus(nodes=[1])
    t1 = tracker(bus, 1, 10)
    asker = bus.connect(1, SVC, pid=12)
    assert try_shutdown(bus, asker, S.SHUTDOWN_FLAG_REQUEST) is None
    bus.advance(4.9)
    assert asker.responses == []
    bus.advance(0.2)                            # past cfg.shutdown_timeout (5000 ms)
    assert asker.responses == [(S.RES_TRYSHUTDOWN, CS_ERR_BUSY, b"")]
    # Corosync's quirk: the timeout notice skips trackers that never asked themselves
    assert [m for m, _b in t1.take_events()] == [S.RES_TESTSHUTDOWN]
    assert bus.nodes[1].supervisor_requests == []
    # REGARDLESS: the trackers are told, silence does not stop the shutdown
    assert try_shutdown(bus, asker, S.SHUTDOWN_FLAG_REGARDLESS) is None
    assert shutdown_events(t1) == [(S.RES_TESTSHUTDOWN, S.SHUTDOWN_FLAG_REGARDLESS)]
    bus.advance(5.1)
    assert asker.responses[-1] == (S.RES_TRYSHUTDOWN, CS_OK, b"")
    assert [op for op, _a in bus.nodes[1].supervisor_requests] == ["shutdown"]


def test_timeout_notice_reaches_trackers_that_once_asked():
    bus, _ = make_bus(nodes=[1])
    t1, t2 = tracker(bus, 1, 10), tracker(bus, 1, 11)
    assert try_shutdown(bus, t1, 0) is None            # t1 asks: only t2 is asked
    reply(bus, t2, yes=False)
    assert t1.responses == [(S.RES_TRYSHUTDOWN, CS_ERR_BUSY, b"")]
    assert shutdown_events(t1) == [] and len(shutdown_events(t2)) == 1
    asker = bus.connect(1, SVC, pid=12)
    assert try_shutdown(bus, asker, 0) is None
    bus.advance(5.1)
    assert [m for m, _b in t1.take_events()] == [S.RES_TESTSHUTDOWN] * 2   # asked + timeout
    assert [m for m, _b in t2.take_events()] == [S.RES_TESTSHUTDOWN]       # asked only


def test_leaving_tracker_is_a_yes_and_leaving_requester_cancels():
    bus, _ = make_bus(nodes=[1])
    t1, t2 = tracker(bus, 1, 10), tracker(bus, 1, 11)
    asker = bus.connect(1, SVC, pid=12)
    assert try_shutdown(bus, asker, 0) is None
    bus.disconnect(t1)
    assert bus.request(t2, S.REQ_TRACKSTOP, b"") == (S.RES_STATETRACKSTOP, CS_OK, b"")
    assert asker.responses == [(S.RES_TRYSHUTDOWN, CS_OK, b"")]
    bus.run()
    # a requester that goes away cancels the vote; a new one may start
    bus2, _ = make_bus(nodes=[1])
    t = tracker(bus2, 1, 10)
    a1, a2 = bus2.connect(1, SVC, pid=12), bus2.connect(1, SVC, pid=13)
    assert try_shutdown(bus2, a1, 0) is None
    bus2.disconnect(a1)
    assert try_shutdown(bus2, a2, 0) is None
    assert len(shutdown_events(t)) == 2
    bus2.advance(6)
    assert a2.responses == [(S.RES_TRYSHUTDOWN, CS_ERR_BUSY, b"")]


def test_immediate_asks_nobody_and_late_tracker_is_asked():
    bus, _ = make_bus(nodes=[1])
    t1 = tracker(bus, 1, 10)
    asker = bus.connect(1, SVC, pid=12)
    assert try_shutdown(bus, asker, 0) is None
    late = tracker(bus, 1, 11)                     # joins the running vote
    assert shutdown_events(late) == [(S.RES_TESTSHUTDOWN, 0)]
    reply(bus, t1, yes=True)
    assert asker.responses == []
    reply(bus, late, yes=True)
    assert asker.responses == [(S.RES_TRYSHUTDOWN, CS_OK, b"")]
    bus3, _ = make_bus(nodes=[1])
    t = tracker(bus3, 1, 10)
    a = bus3.connect(1, SVC, pid=12)
    assert try_shutdown(bus3, a, S.SHUTDOWN_FLAG_IMMEDIATE) == (S.RES_TRYSHUTDOWN, CS_OK, b"")
    assert t.take_events() == []
    bus3.run()
    assert [op for op, _a in bus3.nodes[1].supervisor_requests] == ["shutdown"]


def test_full_submit_ring_is_try_again():
    bus, _ = make_bus(nodes=[1])
    c = bus.connect(1, SVC, pid=5)
    bus.nodes[1].engines[SVC][1].ctx.space_bytes = 0
    assert try_shutdown(bus, c, S.SHUTDOWN_FLAG_IMMEDIATE)[1] == CS_ERR_TRY_AGAIN


# ---- reload and logs ----------------------------------------------------------------------
class ReloadBus(SimBus):
    """Node 2's supervisor fails to re-read its file."""
    def supervisor_answer(self, nodeid, op, args):
        if op == "reload" and nodeid == 2:
            return {"ok": False, "error": "corosync.conf:3: bad token"}
        return {"ok": True}


def test_reload_runs_on_every_node_and_the_requesting_node_answers():
    bus, _ = make_bus(nodes=[1, 2, 3], cls=ReloadBus)
    c1 = bus.connect(1, SVC, pid=5)
    assert bus.request(c1, S.REQ_RELOAD_CONFIG, b"") is None
    bus.run()
    for n in (1, 2, 3):
        assert bus.nodes[n].supervisor_requests == [("reload", {})]
        assert reasons_logged(bus, n, "Config reload requested by node 1")
    assert c1.responses == [(S.RES_RELOAD_CONFIG, CS_OK, b"")]
    c2 = bus.connect(2, SVC, pid=6)
    assert bus.request(c2, S.REQ_RELOAD_CONFIG, b"") is None
    bus.run()
    assert c2.responses == [(S.RES_RELOAD_CONFIG, CS_ERR_INVALID_PARAM, b"")]
    assert reasons_logged(bus, 2, "Unable to reload config file: corosync.conf:3: bad token")
    assert len(c1.responses) == 1


def test_reload_of_readonly_keys_is_logged():
    bus, config = make_bus()
    new_keys = dict(config.keys)
    old = config.keys["totem.transport"]
    new_keys["totem.transport"] = type(old)("udp", old.file, old.line, old.cmap_type)
    new_keys["totem.token"] = type(old)("5000", old.file, old.line, "u32")
    bus.engine(config.local_nodeid, SVC).on_reload(
        type("Cfg", (), {"keys": new_keys})())
    log = [m for _n, _p, m in bus.nodes[config.local_nodeid].log]
    assert log.count("Modified entry 'totem.transport' in corosync.conf cannot be changed "
                     "at run-time") == 1
    assert not any("totem.token" in m for m in log)


def test_reopen_log_files_asks_the_supervisor():
    bus, _ = make_bus(nodes=[1])
    c = bus.connect(1, SVC, pid=5)
    assert bus.request(c, S.REQ_REOPEN_LOG_FILES, b"") is None
    bus.run()
    assert c.responses == [(S.RES_REOPEN_LOG_FILES, CS_OK, b"")]
    assert bus.nodes[1].supervisor_requests == [("reopen_logs", {})]


def test_crypto_reconfig_and_ringreenable_exec_are_accepted_and_ignored():
    bus, _ = make_bus(nodes=[1, 2])
    ctx = bus.nodes[1].engines[SVC][1].ctx
    assert ctx.mcast(X.FN_CRYPTO_RECONFIG, X.pack_crypto_reconfig(1), safe=True)
    assert ctx.mcast(X.FN_RINGREENABLE, X.pack_source(1, 0), safe=True)
    bus.run()
    assert bus.engine(2, SVC).stats["crypto_reconfig_ignored"] == 1
    assert bus.nodes[2].supervisor_requests == []



# ---- a supervisor that never answers -------------------------------------------------------
class SilentSupervisorContext(BaseContext):
    """A host whose supervisor takes requests and never replies (virtual clock)."""
    def __init__(self):
        self.now_s = 0.0
        self.asked = []
        super().__init__(nodeid=1, cluster_name="t", config=None, options={},
                         clock_s=lambda: self.now_s, log_fn=lambda prio, msg: None)

    def supervisor_request(self, op, args, callback=None):
        self.asked.append(op)


def test_unanswered_supervisor_request_fails_once_after_the_guard():
    ctx, results, timeouts = SilentSupervisorContext(), [], []
    ask_supervisor(ctx, "reload", {}, lambda ok, err: results.append((ok, err)), 30000,
                   lambda: timeouts.append(1))
    ctx.now_s = 29.9
    ctx.run_timers()
    assert results == [] and ctx.asked == ["reload"]
    ctx.now_s = 30.1
    ctx.run_timers()
    assert results == [(False, "the supervisor did not answer 'reload' within 30000 ms")]
    assert timeouts == [1]
    # a host without the call fails at once, and only once
    plain = BaseContext(nodeid=1, cluster_name="t", config=None, options={},
                        clock_s=lambda: 0.0, log_fn=lambda prio, msg: None)
    got = []
    ask_supervisor(plain, "reopen_logs", {}, lambda ok, err: got.append(ok), 1000)
    assert got == [False]
    assert plain.next_timer_s() is None          # the guard was cancelled
