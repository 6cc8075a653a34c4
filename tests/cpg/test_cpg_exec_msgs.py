"""CPG exec structs: byte offsets against gcc's layout of the C structs (Corosync 3.1.7
headers from the source mirror), fixed offsets from the documented table, round trips,
and rejection of messages that do not fit their struct."""
import os
import shutil
import struct
import subprocess

import pytest

from coroproc.engineprocs.cpg import exec_msgs as xm

MIRROR = "/work/.mirror/corosync+corosync/repo"
HEADERS = ("ipc_cpg.h", "corotypes.h", "mar_gen.h", "swab.h", "cpg.h", "corodefs.h", "hdb.h")
HERE = os.path.dirname(__file__)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    if shutil.which("gcc") is None or not os.path.isdir(MIRROR) or \
            not os.path.exists("/usr/include/qb/qbipc_common.h"):
        pytest.skip("needs gcc, libqb headers and the Corosync source mirror")
    root = tmp_path_factory.mktemp("cpg_layout")
    (root / "corosync").mkdir()
    for name in HEADERS:
        text = subprocess.run(["git", "-C", MIRROR, "show", f"v3.1.7:include/corosync/{name}"],
                              check=True, capture_output=True).stdout
        (root / "corosync" / name).write_bytes(text)
    exe = root / "layout"
    subprocess.run(["gcc", "-I", str(root), "-o", str(exe),
                    os.path.join(HERE, "c", "cpg_exec_layout.c")], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


H = 16   # the qb_ipc_request_header the host puts before every body


def test_offsets_match_gcc(c_layout):
    assert c_layout["name.size"] == xm.NAME_BYTES
    assert c_layout["procjoin.size"] == H + xm.PROCJOIN_BYTES
    assert c_layout["procjoin.pid"] == H + 136 and c_layout["procjoin.reason"] == H + 144
    assert c_layout["mcast.message"] == H + xm.MCAST_HEADER_BYTES
    assert [c_layout[f"mcast.{f}"] for f in ("msglen", "pid", "source_nodeid", "source_conn")] \
        == [H + 136, H + 144, H + 152, H + 160]
    assert c_layout["partial.message"] == H + xm.PARTIAL_MCAST_HEADER_BYTES
    assert [c_layout[f"partial.{f}"] for f in ("msglen", "fraglen", "pid", "type",
                                                "source_nodeid", "source_conn")] \
        == [H + 136, H + 144, H + 152, H + 160, H + 168, H + 176]
    assert c_layout["downlist.size"] == H + xm.DOWNLIST_BYTES
    assert c_layout["downlist.nodeids"] == H + 16 and c_layout["downlist.left_nodes"] == H + 8
    assert c_layout["downlist_old.size"] == H + xm.DOWNLIST_OLD_BYTES
    assert c_layout["joinlist.header"] == H + xm.JOINLIST_HEADER_BYTES
    assert c_layout["join_list_entry.size"] == xm.JOINLIST_ENTRY_BYTES
    assert c_layout["join_list_entry.group_name"] == 8


def test_procjoin_bytes():
    body = xm.pack_procjoin(b"grp", 4242, 5)
    assert len(body) == xm.PROCJOIN_BYTES
    assert struct.unpack_from("<I", body, 0)[0] == 3 and body[8:11] == b"grp"
    assert body[11:136] == bytes(125)
    assert struct.unpack_from("<II", body, 136) == (4242, 0)
    assert struct.unpack_from("<I", body, 144)[0] == 5
    assert xm.unpack_procjoin(body) == xm.ProcJoin(b"grp", 4242, 5)


def test_mcast_bytes_and_round_trip():
    head = xm.pack_mcast_header(b"g", 7, 3, 0x1122334455667788, 5)
    body = head + b"hello"
    assert len(head) == xm.MCAST_HEADER_BYTES
    assert struct.unpack_from("<I", body, 136)[0] == 5
    assert struct.unpack_from("<I", body, 144)[0] == 7
    assert struct.unpack_from("<I", body, 152)[0] == 3
    assert struct.unpack_from("<Q", body, 160)[0] == 0x1122334455667788
    m = xm.unpack_mcast(body)
    assert (m.group, m.pid, m.source_nodeid, bytes(m.message)) == (b"g", 7, 3, b"hello")


def test_mcast_parts_agrees_with_unpack_mcast_on_good_and_bad_bodies():
    """The delivery path's lean unpack: the same fields from a good body, the same error
    from a bad one (short header, name length over 128, msglen past the end)."""
    good = xm.pack_mcast_header(b"grp", 9, 2, 5, 3) + b"abcXX"      # trailing bytes allowed
    group, pid, message = xm.mcast_parts(memoryview(good))
    m = xm.unpack_mcast(good)
    assert (group, pid, bytes(message)) == (m.group, m.pid, bytes(m.message)) == (b"grp", 9, b"abc")
    long_name = bytearray(good)
    long_name[0:4] = struct.pack("<I", 129)
    for bad in (good[:xm.MCAST_HEADER_BYTES - 1], bytes(long_name),
                xm.pack_mcast_header(b"g", 1, 1, 1, 10) + b"short"):
        with pytest.raises(xm.ExecStructError) as want:
            xm.unpack_mcast(bad)
        with pytest.raises(xm.ExecStructError) as got:
            xm.mcast_parts(memoryview(bad))
        assert str(got.value) == str(want.value)


def test_partial_round_trip():
    head = xm.pack_partial_header(b"g", 100, 3, 9, 2, 4, 77)
    assert len(head) == xm.PARTIAL_MCAST_HEADER_BYTES
    assert struct.unpack_from("<I", head, 160)[0] == 2
    p = xm.unpack_partial(head + b"abc")
    assert (p.msglen, p.pid, p.type, p.source_nodeid, p.source_conn, bytes(p.fragment)) == \
        (100, 9, 2, 4, 77, b"abc")


def test_joinlist_round_trip():
    entries = [(b"a", 1), (b"bb", 2), (b"c" * 128, 3)]
    body = xm.pack_joinlist(entries)
    assert len(body) == xm.JOINLIST_HEADER_BYTES + 3 * xm.JOINLIST_ENTRY_BYTES
    assert struct.unpack_from("<I", body, 8 + 144)[0] == 2          # second entry's pid
    assert xm.unpack_joinlist(body) == entries
    assert xm.unpack_joinlist(xm.pack_joinlist([])) == []


def test_downlist_round_trip():
    body = xm.pack_downlist(3, [2, 5])
    assert len(body) == xm.DOWNLIST_BYTES
    assert struct.unpack_from("<III", body, 16) == (2, 5, 0)
    assert xm.unpack_downlist(body) == xm.Downlist(3, (2, 5))


@pytest.mark.parametrize("fn,body", [
    (xm.unpack_procjoin, xm.pack_procjoin(b"g", 1, 1)[:-1]),
    (xm.unpack_mcast, xm.pack_mcast_header(b"g", 1, 1, 1, 10) + b"short"),
    (xm.unpack_partial, xm.pack_partial_header(b"g", 10, 10, 1, 1, 1, 1) + b"short"),
    (xm.unpack_joinlist, xm.pack_joinlist([(b"g", 1)])[:-1]),
    (xm.unpack_downlist, xm.pack_downlist(1, [1])[:100]),
    (xm.unpack_procjoin, struct.pack("<I", 129) + bytes(xm.PROCJOIN_BYTES - 4)),
])
def test_malformed_is_rejected_with_struct_error(fn, body):
    with pytest.raises(xm.ExecStructError):
        fn(body)


def test_pack_refuses_long_names_and_downlists():
    with pytest.raises(xm.ExecStructError, match="at most 128"):
        xm.pack_procjoin(b"x" * 129, 1, 1)
    with pytest.raises(xm.ExecStructError, match="384"):
        xm.pack_downlist(1, range(385))
