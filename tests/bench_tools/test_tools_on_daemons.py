"""coroproc-cpgbench and coroproc-cpghum against real coroproc daemons on loopback.

cpgbench on a 1-node cluster prints cpgbench.c's line for each of 2 sizes; cpghum run as
two processes on two nodes (each a sender and a receiver) finds no gap, duplicate, CRC or
length error, receives from both nodes and reports latencies. Nothing about timing is
asserted: deadlines only turn a hang into a failure.
"""
import re
import subprocess
import sys

import orjson
import pytest

from coroproc.localcluster import LocalCluster
from coroproc.tools.cpgbench import default_sizes, format_line

HANG_GUARD_S = 120
# cpgbench.c: "%5d messages received " "%5d bytes per write " "%7.3f Seconds runtime "
#             "%9.3f TP/s " "%7.3f MB/s.\n"
LINE = re.compile(r"^ *\d{1,} messages received +(\d+) bytes per write +\d+\.\d{3} Seconds "
                  r"runtime +\d+\.\d{3} TP/s +\d+\.\d{3} MB/s\.$")


def _cluster(tmp_path, n):
    lc = LocalCluster(tmp_path, n, token_ms=1000, rate_msgs_per_s=5,
                      extra_sections="service {\n    name: cpg\n}\n")
    lc.start_all()
    nodes = list(lc.addrs)
    lc.wait_members(nodes, nodes, timeout_s=HANG_GUARD_S)
    lc.wait_synced(nodes, HANG_GUARD_S)
    return lc


@pytest.fixture
def one_node(tmp_path):
    lc = None
    try:
        lc = _cluster(tmp_path, 1)
        yield lc
    finally:
        if lc is not None:
            lc.stop_all()


@pytest.fixture
def two_nodes(tmp_path):
    lc = None
    try:
        lc = _cluster(tmp_path, 2)
        yield lc
    finally:
        if lc is not None:
            lc.stop_all()


def test_format_line_is_cpgbench_c():
    assert format_line(12345, 64, 10.0) == (
        "12345 messages received    64 bytes per write  10.000 Seconds runtime  1234.500 "
        "TP/s   0.079 MB/s.")
    # single-precision products, as the C casts: 16777217 is not a float32
    assert format_line(16777217, 1, 1.0).endswith("16777216.000 TP/s  16.777 MB/s.")
    assert default_sizes() == [64, 320, 1600, 8000, 40000, 200000, 1000000]


def test_cpgbench_prints_one_line_per_size(one_node):
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cpgbench", "--ipc-suffix",
                          one_node.suffix(1), "--sizes", "64,1000", "--seconds", "1"],
                         check=False, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    for line, size in zip(lines, (64, 1000)):
        m = LINE.match(line)
        assert m, f"not cpgbench's format: {line!r}"
        assert int(m.group(1)) == size
        assert int(line.split()[0]) > 0              # it did deliver something


def test_cpgbench_json_one_object_per_size(one_node):
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cpgbench", "--ipc-suffix",
                          one_node.suffix(1), "--sizes", "100,2000", "--seconds", "0.5",
                          "--json"], check=False, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0, out.stderr
    objs = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert [o["size_bytes"] for o in objs] == [100, 2000]
    for o in objs:
        assert o["received"] > 0 and o["own_undelivered"] == 0 and o["nodeid"] == 1


def test_cpghum_two_senders_on_two_nodes_check_clean(two_nodes):
    procs = [subprocess.Popen([sys.executable, "-m", "coroproc.tools.cpghum", "--ipc-suffix",
                               two_nodes.suffix(i), "--group", "hum-test", "--size", "512",
                               "--rate", "100", "--seconds", "2", "--wait-members", "2",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in (1, 2)]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=HANG_GUARD_S)
            assert p.returncode == 0, f"exit {p.returncode}: {out} {err}"
            results.append(orjson.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert sorted(r["nodeid"] for r in results) == [1, 2]
    for r in results:
        assert r["ok"] and r["problems"] == []
        assert r["checks"] == {"gap_msgs": 0, "gap_events": 0, "duplicates": 0,
                               "crc_errors": 0, "length_errors": 0, "malformed": 0}
        assert r["sent"] > 0 and r["own_undelivered"] == 0
        assert set(r["received_by_node"]) == {"1", "2"}        # both senders heard
        lat = r["latency_us"]
        assert lat["count"] == r["sent"]
        assert 0 < lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["max_us"]


def test_cpghum_refuses_a_bad_size():
    out = subprocess.run([sys.executable, "-m", "coroproc.tools.cpghum", "--size", "8"],
                         check=False, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 2 and "--size: message size 8 bytes" in out.stderr
